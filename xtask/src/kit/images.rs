//! The container images the kit's cluster runs, under their upstream names and tags, built from
//! the pinned programs: control plane, kube-proxy, etcd, CoreDNS, pause (upstream's pause.c),
//! flannel, metrics-server, and what the monitoring stack starts with kscale's values
//! (prometheus-operator and its config reloader, Prometheus, kube-state-metrics,
//! prometheus-adapter). Each image is one layer imported into the kit's engine; a label carries
//! its content key, so an unchanged image is not rebuilt.
//!
//! Besides them, an image of llama.cpp's real `llama-server` (from Debian unstable's rootfs) with
//! the kit's tiny model, for the tests that scale an inference server on its metrics. Like a
//! user's image, it is not baked into the nodes: `kscale up` loads it.

use crate::{files, process};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::programs::Programs;
use super::rootfs::Rootfs;
use super::{Layout, Mode, engine};
use crate::upstream::modules::KUBERNETES_VERSION;

/// The label holding an image's content key.
pub const KEY_LABEL: &str = "kscale.kit.key";

/// An image reference split the way minikube's addon overrides want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// e.g. `registry.k8s.io`.
    pub registry: String,
    /// e.g. `metrics-server/metrics-server`.
    pub repository: String,
    /// e.g. `v0.8.0`.
    pub tag: String,
}

impl Reference {
    fn new(registry: &str, repository: &str, tag: &str) -> Self {
        Self {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.into(),
        }
    }

    /// `repository:tag`, without the registry.
    pub fn repository_and_tag(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// The images `ensure` built.
#[derive(Debug, Clone)]
pub struct Built {
    /// Every image the nodes need (baked into the node base image).
    pub node_images: Vec<Reference>,
    /// The flannel image the CNI manifest names.
    pub flannel: Reference,
    /// The metrics-server image for the addon's override.
    pub metrics_server: Reference,
    /// A busybox image for tests (DNS and HTTP from inside pods: `nslookup`, `nc`, `httpd`); not
    /// baked into the nodes.
    pub busybox: Reference,
    /// The combined key of every node image.
    pub key: String,
}

/// Where a file of the image comes from.
enum Source {
    /// A built program or file on the host (made executable).
    Host(PathBuf),
    /// A data file on the host (kept read-only).
    Data(PathBuf),
    /// A file of the Debian rootfs, with the shared libraries it links (`ldd` in a chroot).
    Rootfs(&'static str),
    /// Every file of a rootfs folder, with their libraries (iptables' extensions).
    RootfsDir(&'static str),
}

/// One image to build.
struct Spec {
    reference: Reference,
    files: Vec<(Source, String)>,
    /// (link path, target).
    links: Vec<(String, String)>,
    /// Empty folders to create.
    dirs: Vec<&'static str>,
    entrypoint: Option<Vec<String>>,
    workdir: Option<&'static str>,
    /// `uid:gid` the image runs as (root when `None`).
    user: Option<&'static str>,
}

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// iptables (nft backend) as kube-proxy and flannel call it, and conntrack.
fn xtables() -> Vec<(Source, String)> {
    vec![
        (
            Source::Rootfs("/usr/sbin/xtables-nft-multi"),
            "/usr/sbin/xtables-nft-multi".to_string(),
        ),
        (
            Source::RootfsDir("/usr/lib/x86_64-linux-gnu/xtables"),
            "/usr/lib/x86_64-linux-gnu/xtables".to_string(),
        ),
        (
            Source::Rootfs("/usr/sbin/conntrack"),
            "/usr/sbin/conntrack".to_string(),
        ),
    ]
}

fn xtables_links() -> Vec<(String, String)> {
    [
        "iptables",
        "iptables-save",
        "iptables-restore",
        "ip6tables",
        "ip6tables-save",
        "ip6tables-restore",
        "iptables-nft",
        "iptables-nft-save",
        "iptables-nft-restore",
        "ip6tables-nft",
        "ip6tables-nft-save",
        "ip6tables-nft-restore",
    ]
    .iter()
    .map(|name| (format!("/usr/sbin/{name}"), "xtables-nft-multi".to_string()))
    .collect()
}

fn simple(reference: Reference, program: PathBuf, at: &'static str) -> Spec {
    Spec {
        reference,
        files: vec![(Source::Host(program), at.to_string())],
        links: vec![],
        dirs: vec![],
        entrypoint: Some(vec![at.to_string()]),
        workdir: None,
        user: None,
    }
}

fn specs(programs: &Programs, pause: PathBuf) -> anyhow::Result<Vec<Spec>> {
    let k8s = |name: &str| programs.path("kubernetes", name);
    let mut specs = Vec::new();
    for name in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        let mut spec = simple(
            Reference::new("registry.k8s.io", name, KUBERNETES_VERSION),
            k8s(name)?,
            "",
        );
        let at = format!("/usr/local/bin/{name}");
        spec.files[0].1 = at.clone();
        spec.entrypoint = Some(vec![at]);
        specs.push(spec);
    }
    let mut proxy_files = xtables();
    proxy_files.push((
        Source::Host(k8s("kube-proxy")?),
        "/usr/local/bin/kube-proxy".to_string(),
    ));
    specs.push(Spec {
        reference: Reference::new("registry.k8s.io", "kube-proxy", KUBERNETES_VERSION),
        files: proxy_files,
        links: xtables_links(),
        dirs: vec![],
        entrypoint: Some(vec!["/usr/local/bin/kube-proxy".to_string()]),
        workdir: None,
        user: None,
    });
    specs.push(Spec {
        reference: Reference::new("registry.k8s.io", "etcd", "3.6.4-0"),
        files: vec![
            (
                Source::Host(programs.path("etcd", "etcd")?),
                "/usr/local/bin/etcd".to_string(),
            ),
            (
                Source::Host(programs.path("etcd", "etcdctl")?),
                "/usr/local/bin/etcdctl".to_string(),
            ),
        ],
        links: vec![],
        dirs: vec!["/var/lib/etcd"],
        entrypoint: Some(vec!["/usr/local/bin/etcd".to_string()]),
        workdir: None,
        user: None,
    });
    specs.push(simple(
        Reference::new("registry.k8s.io", "coredns/coredns", "v1.12.1"),
        programs.path("coredns", "coredns")?,
        "/coredns",
    ));
    specs.push(simple(
        Reference::new("registry.k8s.io", "pause", "3.10.1"),
        pause,
        "/pause",
    ));
    let mut flannel_files = xtables();
    flannel_files.push((
        Source::Host(programs.path("flannel", "flanneld")?),
        "/opt/bin/flanneld".to_string(),
    ));
    flannel_files.push((Source::Rootfs("/bin/busybox"), "/bin/busybox".to_string()));
    specs.push(Spec {
        reference: flannel_reference(),
        files: flannel_files,
        links: {
            let mut links = xtables_links();
            links.push(("/bin/cp".to_string(), "busybox".to_string()));
            links.push(("/bin/sh".to_string(), "busybox".to_string()));
            links
        },
        dirs: vec!["/run/flannel"],
        entrypoint: Some(vec!["/opt/bin/flanneld".to_string()]),
        workdir: None,
        user: None,
    });
    specs.push(simple(
        metrics_server_reference(),
        programs.path("metricsserver", "metrics-server")?,
        "/metrics-server",
    ));
    specs.push(simple(
        Reference::new(
            "quay.io",
            "prometheus-operator/prometheus-operator",
            "v0.93.1",
        ),
        programs.path("operator", "operator")?,
        "/bin/operator",
    ));
    specs.push(simple(
        Reference::new(
            "quay.io",
            "prometheus-operator/prometheus-config-reloader",
            "v0.93.1",
        ),
        programs.path("operator", "prometheus-config-reloader")?,
        "/bin/prometheus-config-reloader",
    ));
    specs.push(Spec {
        // The chart (kube-prometheus-stack 88.5.3) runs the `-distroless` flavour; the kit's
        // image is likewise one static binary and no shell.
        reference: Reference::new("quay.io", "prometheus/prometheus", "v3.14.0-distroless"),
        files: vec![(
            Source::Host(programs.path("prometheus", "prometheus")?),
            "/bin/prometheus".to_string(),
        )],
        links: vec![],
        dirs: vec!["/prometheus", "/etc/prometheus"],
        entrypoint: Some(vec!["/bin/prometheus".to_string()]),
        workdir: Some("/prometheus"),
        user: None,
    });
    specs.push(simple(
        Reference::new(
            "registry.k8s.io",
            "kube-state-metrics/kube-state-metrics",
            "v2.20.0",
        ),
        programs.path("kubestatemetrics", "kube-state-metrics")?,
        "/kube-state-metrics",
    ));
    // The chart's args start with `/adapter`, as for upstream's image, which has no entrypoint.
    let mut adapter = simple(
        Reference::new(
            "registry.k8s.io",
            "prometheus-adapter/prometheus-adapter",
            "v0.12.0",
        ),
        programs.path("adapter", "adapter")?,
        "/adapter",
    );
    adapter.entrypoint = None;
    specs.push(adapter);
    Ok(specs)
}

fn flannel_reference() -> Reference {
    Reference::new("ghcr.io", "flannel-io/flannel", "v0.28.4")
}

fn metrics_server_reference() -> Reference {
    Reference::new("registry.k8s.io", "metrics-server/metrics-server", "v0.8.0")
}

/// The busybox image's commands. Not `wget`: bookworm's busybox-static (1.35.0-4) is built
/// without `FEATURE_WGET_TIMEOUT`, and `wget -T N` writes through a null pointer there: a
/// segmentation fault on every request, listening server or not (Debian enabled the feature in
/// 1.36.1-5). Probes use `nc` (the kit's tests) or the server's own client instead. busybox's
/// `sh` still runs any applet by name, links or not.
const BUSYBOX_APPLETS: [&str; 6] = ["sh", "nslookup", "cat", "sleep", "ls", "hostname"];

fn busybox_spec() -> Spec {
    let applets = BUSYBOX_APPLETS;
    Spec {
        reference: Reference::new("kscale.local", "kit/busybox", "bookworm"),
        files: vec![(Source::Rootfs("/bin/busybox"), "/bin/busybox".to_string())],
        links: applets
            .iter()
            .map(|a| (format!("/bin/{a}"), "busybox".to_string()))
            .collect(),
        dirs: vec!["/tmp"],
        entrypoint: None,
        workdir: None,
        user: None,
    }
}

/// Where the llama.cpp image holds the kit's model (`--model` of `llama-server`).
pub const LLAMA_MODEL_PATH: &str = "/models/tiny-llama.gguf";

/// The uid and gid the llama.cpp image runs as (distroless' `nonroot`), so a Deployment with
/// `runAsNonRoot` accepts it without naming a user.
const LLAMA_USER: &str = "65532:65532";

/// The llama.cpp image: Debian's version (a tag has no `:` or `+`) and the model's key.
pub fn llama_reference(model_key: &str) -> Reference {
    let version = super::rootfs::LLAMA_CPP_VERSION.replace([':', '+', '~'], "_");
    Reference::new(
        "kscale.local",
        "kit/llama-server",
        &format!("{version}-{model_key}"),
    )
}

fn llama_spec(model: PathBuf, model_key: &str) -> Spec {
    Spec {
        reference: llama_reference(model_key),
        files: vec![
            (
                Source::Rootfs("/usr/bin/llama-server"),
                "/usr/bin/llama-server".to_string(),
            ),
            // ggml loads its CPU backend at run time (dlopen), the variant that fits the CPU:
            // every variant, with what each links (libgomp).
            (
                Source::RootfsDir("/usr/lib/x86_64-linux-gnu/ggml/backends0"),
                "/usr/lib/x86_64-linux-gnu/ggml/backends0".to_string(),
            ),
            (Source::Data(model), LLAMA_MODEL_PATH.to_string()),
        ],
        links: vec![],
        dirs: vec![],
        entrypoint: Some(vec!["/usr/bin/llama-server".to_string()]),
        workdir: None,
        user: Some(LLAMA_USER),
    }
}

/// Builds the llama.cpp image from the unstable rootfs and the model file unless it exists.
pub fn ensure_llama(
    layout: &Layout,
    rootfs: &Rootfs,
    model: PathBuf,
    model_key: &str,
    mode: Mode,
) -> anyhow::Result<Reference> {
    let spec = llama_spec(model, model_key);
    build_one(layout, &spec, rootfs, mode)?;
    Ok(spec.reference)
}

/// Compiles upstream's pause.c (from the pinned Kubernetes module) as its Makefile does.
fn build_pause(layout: &Layout, programs: &Programs, mode: Mode) -> anyhow::Result<PathBuf> {
    let source = programs
        .source(&format!("k8s.io/kubernetes@{KUBERNETES_VERSION}"))
        .join("build/pause/linux/pause.c");
    let source_text = files::read(&source)?;
    let key = files::Key::default().text(&source_text).finish();
    let out = layout.cache.join("pause").join(format!("pause-{key}"));
    if out.is_file() {
        return Ok(out);
    }
    if mode == Mode::Check {
        anyhow::bail!("pause is not built: {}", super::NOT_BUILT);
    }
    files::mkdir(out.parent().unwrap_or(&layout.cache))?;
    process::output(Command::new("gcc").args([
        "-Os",
        "-Wall",
        "-Werror",
        "-static",
        "-DVERSION=v3.10.1-kscale-kit",
        "-o",
        &out.to_string_lossy(),
        &source.to_string_lossy(),
    ]))?;
    Ok(out)
}

/// The shared libraries a rootfs binary links, as rootfs paths (`ldd` inside a chroot).
fn libraries(rootfs: &Path, binary: &str) -> anyhow::Result<Vec<String>> {
    let mut ldd = Command::new("chroot");
    ldd.arg(rootfs).args(["ldd", binary]);
    let out = match process::output(&mut ldd) {
        Ok(out) => out,
        // A static binary (busybox-static) links nothing.
        Err(e) if e.to_string().contains("not a dynamic executable") => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(out
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect())
}

fn copy_from_rootfs(rootfs: &Path, path: &str, into: &Path) -> anyhow::Result<()> {
    let target = into.join(path.trim_start_matches('/'));
    if target.exists() {
        return Ok(());
    }
    files::mkdir(target.parent().unwrap_or(into))?;
    // Follow symlinks inside the rootfs: the image gets the file under the name asked for.
    let mut source = rootfs.join(path.trim_start_matches('/'));
    for _ in 0..10 {
        match std::fs::read_link(&source) {
            Ok(link) if link.is_absolute() => {
                source = rootfs.join(link.to_string_lossy().trim_start_matches('/'))
            }
            Ok(link) => source = source.parent().unwrap_or(rootfs).join(link),
            Err(_) => break,
        }
    }
    std::fs::copy(&source, &target).map_err(|e| {
        anyhow::anyhow!(
            "cannot copy {} to {}: {e}",
            source.display(),
            target.display()
        )
    })?;
    Ok(())
}

/// Copies one host file into the image tree at `target` (under `into`), creating its folder.
fn copy_file(path: &Path, target: &Path, into: &Path) -> anyhow::Result<()> {
    files::mkdir(target.parent().unwrap_or(into))?;
    std::fs::copy(path, target).map_err(|e| {
        anyhow::anyhow!(
            "cannot copy {} to {}: {e}",
            path.display(),
            target.display()
        )
    })?;
    Ok(())
}

fn copy_with_libraries(rootfs: &Path, path: &str, into: &Path) -> anyhow::Result<()> {
    copy_from_rootfs(rootfs, path, into)?;
    for lib in libraries(rootfs, path)? {
        copy_from_rootfs(rootfs, &lib, into)?;
    }
    Ok(())
}

/// Lays out the image's files under `into`.
fn assemble(spec: &Spec, rootfs: &Path, into: &Path) -> anyhow::Result<()> {
    files::remove_tree(into)?;
    files::mkdir(into)?;
    for (source, at) in &spec.files {
        let target = into.join(at.trim_start_matches('/'));
        match source {
            Source::Host(path) => {
                copy_file(path, &target, into)?;
                files::chmod_x(&target)?;
            }
            Source::Data(path) => {
                copy_file(path, &target, into)?;
                files::chmod(&target, 0o444)?;
            }
            Source::Rootfs(path) => copy_with_libraries(rootfs, path, into)?,
            Source::RootfsDir(dir) => {
                let host_dir = rootfs.join(dir.trim_start_matches('/'));
                let entries = std::fs::read_dir(&host_dir)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", host_dir.display()))?;
                for entry in entries.filter_map(Result::ok) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    copy_with_libraries(rootfs, &format!("{dir}/{name}"), into)?;
                }
            }
        }
    }
    for (link, target) in &spec.links {
        let path = into.join(link.trim_start_matches('/'));
        files::mkdir(path.parent().unwrap_or(into))?;
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(target, &path)
            .map_err(|e| anyhow::anyhow!("cannot link {}: {e}", path.display()))?;
    }
    for dir in &spec.dirs {
        files::mkdir(&into.join(dir.trim_start_matches('/')))?;
    }
    files::mkdir(&into.join("tmp"))?;
    Ok(())
}

fn spec_key(spec: &Spec, rootfs: &Rootfs) -> anyhow::Result<String> {
    let mut key = files::Key::default()
        .text(&spec.reference.to_string())
        .text(&format!(
            "{:?} {:?} {:?} {:?}",
            spec.links, spec.dirs, spec.entrypoint, spec.workdir
        ));
    // Only images that set a user carry it in their key: the others keep their keys.
    if let Some(user) = spec.user {
        key = key.text(user);
    }
    for (source, at) in &spec.files {
        key = key.text(at);
        key = match source {
            Source::Host(path) | Source::Data(path) => key.file(path)?,
            Source::Rootfs(path) | Source::RootfsDir(path) => key.text(path).text(&rootfs.key),
        };
    }
    Ok(key.finish())
}

/// The content key label of an image in the kit's engine, if the image exists.
pub fn image_key(layout: &Layout, reference: &str) -> Option<String> {
    process::output(engine::docker_cmd(layout).args([
        "image",
        "inspect",
        "--format",
        &format!("{{{{ index .Config.Labels \"{KEY_LABEL}\" }}}}"),
        reference,
    ]))
    .ok()
    .map(|out| out.trim().to_string())
}

fn build_one(layout: &Layout, spec: &Spec, rootfs: &Rootfs, mode: Mode) -> anyhow::Result<String> {
    let key = spec_key(spec, rootfs)?;
    let reference = spec.reference.to_string();
    if image_key(layout, &reference).as_deref() == Some(key.as_str()) {
        return Ok(key);
    }
    if mode == Mode::Check {
        anyhow::bail!("the image {reference} is not built: {}", super::NOT_BUILT);
    }
    let slug = reference.replace(['/', ':'], "_");
    let context = layout.state.join("images").join(slug);
    assemble(spec, &rootfs.dir, &context)?;
    let mut import = engine::docker_cmd(layout);
    import.args(["import", "--change", &format!("ENV PATH={PATH}")]);
    import.args(["--change", &format!("LABEL {KEY_LABEL}={key}")]);
    if let Some(entrypoint) = &spec.entrypoint {
        let json = serde_json::to_string(entrypoint)?;
        import.args(["--change", &format!("ENTRYPOINT {json}")]);
    }
    if let Some(workdir) = spec.workdir {
        import.args(["--change", &format!("WORKDIR {workdir}")]);
    }
    if let Some(user) = spec.user {
        import.args(["--change", &format!("USER {user}")]);
    }
    import.args(["-", &reference]);
    let mut tar = Command::new("tar");
    tar.arg("--numeric-owner")
        .arg("-C")
        .arg(&context)
        .args(["-cf", "-", "."]);
    process::pipe(tar, import)?;
    files::remove_tree(&context)?;
    Ok(key)
}

/// Builds every image whose key changed.
pub fn ensure(
    layout: &Layout,
    programs: &Programs,
    rootfs: &Rootfs,
    mode: Mode,
) -> anyhow::Result<Built> {
    let pause = build_pause(layout, programs, mode)?;
    let mut combined = files::Key::default();
    let mut node_images = Vec::new();
    for spec in specs(programs, pause)? {
        let key = build_one(layout, &spec, rootfs, mode)?;
        combined = combined.text(&spec.reference.to_string()).text(&key);
        node_images.push(spec.reference);
    }
    let busybox = busybox_spec();
    build_one(layout, &busybox, rootfs, mode)?;
    Ok(Built {
        node_images,
        flannel: flannel_reference(),
        metrics_server: metrics_server_reference(),
        busybox: busybox.reference,
        key: combined.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_for_minikube_addon_overrides() {
        let r = metrics_server_reference();
        assert_eq!(
            r.to_string(),
            "registry.k8s.io/metrics-server/metrics-server:v0.8.0"
        );
        assert_eq!(
            r.repository_and_tag(),
            "metrics-server/metrics-server:v0.8.0"
        );
    }

    #[test]
    fn the_llama_image_tag_is_a_valid_docker_tag() {
        let tag = llama_reference("0123456789abcdef").tag;
        assert!(tag.len() <= 128, "{tag}");
        assert!(
            tag.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
            "{tag}"
        );
        assert!(tag.ends_with("-0123456789abcdef"), "{tag}");
    }

    #[test]
    fn the_busybox_image_offers_no_crashing_wget() {
        let links: Vec<String> = busybox_spec().links.into_iter().map(|(at, _)| at).collect();
        assert!(links.contains(&"/bin/sh".to_string()), "{links:?}");
        assert!(!links.iter().any(|l| l.ends_with("/wget")), "{links:?}");
    }

    #[test]
    fn the_cni_manifest_and_the_flannel_image_agree() {
        let manifest = include_str!("../../kit/flannel.yaml");
        assert_eq!(manifest.matches("@FLANNEL_IMAGE@").count(), 3, "{manifest}");
        assert_eq!(flannel_reference().tag, "v0.28.4");
    }
}
