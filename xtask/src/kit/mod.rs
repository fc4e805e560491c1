//! `cargo xtask kit build|status|env|engine|clean`: real minikube on a machine without internet.
//!
//! The kit builds, from pinned sources only (the Go module proxy, Debian packages, the project's
//! own files), everything `minikube start --driver=docker` would otherwise download: the minikube
//! binary, Kubernetes' kubeadm/kubelet/kubectl, the control-plane, CNI, metrics-server and
//! monitoring images under their upstream names, and a node base image (`--base-image`) made
//! from a Debian rootfs with every image already in its containerd store, so that both nodes have
//! them. A Docker engine (Debian's `docker.io`) runs as a plain process with its own data root and
//! socket. Everything lands in a cache folder keyed by content, so a second build is a no-op.
//!
//! Apart from the cluster, the kit builds an image of llama.cpp's real `llama-server` (Debian
//! unstable's package) holding a tiny random-weight model written here (`gguf.rs`), for tests
//! that scale a real inference server; `kscale up` loads it into the nodes like a user's image.
//!
//! `kit env` prints what a shell needs to run minikube (and `kscale up`) on the kit by hand.

mod engine;
mod gguf;
mod images;
mod kicbase;
mod programs;
mod rootfs;

use crate::files;
use std::path::PathBuf;
use std::time::Instant;

use crate::upstream::modules::KUBERNETES_VERSION;

const USAGE: &str = "\
usage: cargo xtask kit <command>

commands:
  build    build what is missing (programs, images, node base image) and start the kit's Docker
           engine; prints the time of each part
  status   show each part of the kit and whether the engine runs; exits non-zero if incomplete
  env      print `export` lines for a shell: PATH (the kit's minikube first), DOCKER_HOST,
           MINIKUBE_HOME and KSCALE_KIT_START_FLAGS (the flags `minikube start` needs with the kit),
           KSCALE_KIT_LLAMA_IMAGE and KSCALE_KIT_LLAMA_MODEL (llama.cpp's server and its model);
           `env --format json` prints the same settings as one JSON object
  engine   up|down: start or stop the kit's Docker engine
  clean    stop the engine and remove the kit's cache folder (a cold build follows)

environment:
  KSCALE_KIT_CACHE  cache folder (rootfs, Docker data root with the images, MINIKUBE_HOME)
                    [default: $XDG_CACHE_HOME/kscale/kit]
  KSCALE_GO_CACHE   Go module/build caches and built programs, shared with the control plane
                    [default: $XDG_CACHE_HOME/kscale/go]
  KSCALE_KIT_STATE  run folder of the engine (socket, pid file, logs) [default: /tmp/kscale-kit]
";

/// Where the kit keeps its cache and the running engine's state.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Survives between runs: rootfs, Docker data root, MINIKUBE_HOME, helm.
    pub cache: PathBuf,
    /// The engine's socket, pid file, exec root and logs.
    pub state: PathBuf,
}

impl Layout {
    /// The layout from the environment, with the documented defaults.
    pub fn from_env() -> anyhow::Result<Self> {
        let state = match std::env::var_os("KSCALE_KIT_STATE") {
            Some(dir) => PathBuf::from(dir),
            None => std::env::temp_dir().join("kscale-kit"),
        };
        let cache = crate::cache_dir("KSCALE_KIT_CACHE", "kit")?;
        Ok(Self { cache, state })
    }

    /// `MINIKUBE_HOME` (minikube appends `.minikube` unless the path ends with it).
    pub fn minikube_home(&self) -> PathBuf {
        self.cache.join("minikube").join(".minikube")
    }

    /// The folder with the kit's `minikube`, `kubectl` (v1.34) and the runc wrapper.
    pub fn bin(&self) -> PathBuf {
        self.cache.join("path")
    }

    /// The Docker engine's socket.
    pub fn docker_socket(&self) -> PathBuf {
        self.state.join("docker.sock")
    }

    /// `DOCKER_HOST` for the kit's engine.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.docker_socket().display())
    }

    /// The CNI manifest passed to `minikube start --cni`.
    pub fn cni_manifest(&self) -> PathBuf {
        self.cache.join("flannel.yaml")
    }

    /// kube-prometheus-stack values the kit needs (`monitoring.prometheus_values`).
    pub fn prometheus_values(&self) -> PathBuf {
        self.cache.join("prometheus-values.yaml")
    }
}

/// Debian packages the kit runs on the host, each with a program that proves it is installed.
const HOST_PACKAGES: &[(&str, &str)] = &[
    ("debootstrap", "debootstrap"),
    ("dockerd", "docker.io"),
    ("jq", "jq"),
    ("iptables", "iptables"),
    ("gcc", "gcc"),
];

/// `minikube start` flags the kit needs beyond the base image, runtime, version and CNI.
const EXTRA_START_FLAGS: [&str; 3] = [
    // The preload tarball would be downloaded; the images are in the base image instead.
    "--preload=false",
    // storage-provisioner is off: built from minikube v1.37.0's module it crash-loops (its
    // leader election still uses the removed endpoints lock), and kscale's stack claims no
    // volumes. Addons are enabled one by one (metrics-server).
    "--install-addons=false",
    // The docker driver refuses root without it; CI machines run as root.
    "--force",
];

/// What `kit build` produced: what a shell and the tests need.
#[derive(Debug, Clone)]
pub struct Kit {
    /// The node base image reference.
    pub base_image: String,
    /// The metrics-server image (for `minikube addons enable metrics-server --images=...`).
    pub metrics_server_image: images::Reference,
    /// A busybox image built here, for tests that need a shell, DNS and HTTP (`nc`, `httpd`;
    /// not `wget`, see `images::BUSYBOX_APPLETS`) inside pods.
    pub busybox_image: images::Reference,
    /// llama.cpp's `llama-server` with the tiny model at [`images::LLAMA_MODEL_PATH`].
    pub llama_image: images::Reference,
}

impl Kit {
    /// The flags `minikube start` needs on the kit (nodes and memory are the caller's).
    pub fn start_flags(&self, layout: &Layout) -> Vec<String> {
        [
            "--driver=docker".to_string(),
            format!("--base-image={}", self.base_image),
            "--container-runtime=containerd".into(),
            format!("--kubernetes-version={KUBERNETES_VERSION}"),
            format!("--cni={}", layout.cni_manifest().display()),
        ]
        .into_iter()
        .chain(EXTRA_START_FLAGS.iter().map(|f| f.to_string()))
        .collect()
    }

    /// kscale's settings (key, value) that make `kscale up` work on the kit and offline: its
    /// minikube on the kit's base image, the kit's values for kube-prometheus-stack, no Grafana
    /// (the kit builds no Grafana image) and the server image built on the host (the Dockerfile's
    /// Rust base image cannot be pulled).
    pub fn kscale_settings(&self, layout: &Layout) -> Vec<(&'static str, String)> {
        vec![
            ("cluster.base_image", self.base_image.clone()),
            ("cluster.container_runtime", "containerd".into()),
            ("cluster.kubernetes_version", KUBERNETES_VERSION.into()),
            ("cluster.cni", layout.cni_manifest().display().to_string()),
            ("cluster.start_flags", EXTRA_START_FLAGS.join(" ")),
            (
                "cluster.metrics_server_image",
                self.metrics_server_image.to_string(),
            ),
            (
                "monitoring.prometheus_values",
                layout.prometheus_values().display().to_string(),
            ),
            ("monitoring.grafana", "false".into()),
            ("app.image_build", "host".into()),
        ]
    }

    /// `minikube addons enable metrics-server` flags that select the kit's image.
    pub fn metrics_server_flags(&self) -> Vec<String> {
        vec![
            format!(
                "--images=MetricsServer={}",
                self.metrics_server_image.repository_and_tag()
            ),
            format!(
                "--registries=MetricsServer={}",
                self.metrics_server_image.registry
            ),
        ]
    }
}

/// Whether a missing part is built or reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Build what is missing.
    Build,
    /// Fail naming the first missing part (quick: `kit env` and tests).
    Check,
}

/// The fix named by every "missing" error of [`Mode::Check`].
pub const NOT_BUILT: &str = "run `cargo xtask kit build` (a cold build takes about 40 minutes)";

/// Builds every part that is missing (or, with [`Mode::Check`], fails naming it) and starts the
/// engine.
pub fn build(layout: &Layout, mode: Mode) -> anyhow::Result<Kit> {
    let started = Instant::now();
    let mut timings: Vec<(&str, f64)> = Vec::new();
    let mut step = |name: &'static str, since: Instant| {
        timings.push((name, since.elapsed().as_secs_f64()));
    };
    let t = Instant::now();
    if mode == Mode::Build {
        crate::deps::ensure_packages(HOST_PACKAGES)?;
    }
    step("host packages", t);
    let t = Instant::now();
    let programs = programs::ensure(mode)?;
    step("Go programs", t);
    let t = Instant::now();
    let base = rootfs::ensure(layout, mode)?;
    step("Debian rootfs", t);
    let t = Instant::now();
    let llama_rootfs = rootfs::ensure_llama(layout, mode)?;
    step("Debian unstable rootfs", t);
    let t = Instant::now();
    engine::up(layout)?;
    step("Docker engine", t);
    let t = Instant::now();
    let built = images::ensure(layout, &programs, &base, mode)?;
    step("images", t);
    let t = Instant::now();
    let (model, model_key) = gguf::ensure(layout, mode)?;
    let llama_image = images::ensure_llama(layout, &llama_rootfs, model, &model_key, mode)?;
    step("llama.cpp image", t);
    let t = Instant::now();
    let base_image = kicbase::ensure(layout, &programs, &base, &built, mode)?;
    step("node base image", t);
    let t = Instant::now();
    if mode == Mode::Build {
        programs::install(layout, &programs, &built)?;
    }
    step("MINIKUBE_HOME and PATH", t);
    if mode == Mode::Build {
        for (name, seconds) in &timings {
            eprintln!("kit: {name:<24} {seconds:>7.1}s");
        }
        eprintln!(
            "kit: {:<24} {:>7.1}s",
            "total",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Kit {
        base_image,
        metrics_server_image: built.metrics_server.clone(),
        busybox_image: built.busybox.clone(),
        llama_image,
    })
}

/// Builds the kit for `cargo xtask ci` (the tests read it through `kit env`).
pub fn build_for_tests() -> anyhow::Result<()> {
    build(&Layout::from_env()?, Mode::Build).map(|_| ())
}

/// Stops the engine after the tests (they delete their own minikube profiles).
pub fn down_after_tests() -> anyhow::Result<()> {
    engine::down(&Layout::from_env()?)
}

/// The kit's settings in the order `kit env` prints them: (name, value, quoted in the shell).
pub fn env_vars(layout: &Layout, kit: &Kit) -> Vec<(String, String, bool)> {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut vars = vec![
        (
            "PATH".into(),
            format!("{}:{path}", layout.bin().display()),
            false,
        ),
        ("DOCKER_HOST".into(), layout.docker_host(), false),
        (
            "MINIKUBE_HOME".into(),
            layout.minikube_home().display().to_string(),
            false,
        ),
        ("MINIKUBE_IN_STYLE".into(), "false".into(), false),
        (
            "KSCALE_KIT_START_FLAGS".into(),
            kit.start_flags(layout).join(" "),
            true,
        ),
        (
            "KSCALE_KIT_METRICS_SERVER_FLAGS".into(),
            kit.metrics_server_flags().join(" "),
            true,
        ),
        (
            "KSCALE_KIT_BUSYBOX_IMAGE".into(),
            kit.busybox_image.to_string(),
            false,
        ),
        // `kscale up --set app.server=llamacpp --set app.image=... --set app.model=...`.
        (
            "KSCALE_KIT_LLAMA_IMAGE".into(),
            kit.llama_image.to_string(),
            false,
        ),
        (
            "KSCALE_KIT_LLAMA_MODEL".into(),
            images::LLAMA_MODEL_PATH.into(),
            false,
        ),
    ];
    // kscale's own settings for the kit: `kscale up` in this shell creates its stack on it.
    for (key, value) in kit.kscale_settings(layout) {
        vars.push((kscale_variable(key), value, true));
    }
    vars
}

/// The `KSCALE_*` variable of a kscale key (`cluster.cni` → `KSCALE_CLUSTER_CNI`).
fn kscale_variable(key: &str) -> String {
    format!("KSCALE_{}", key.replace('.', "_").to_uppercase())
}

/// Whether `env` was asked for `--format json` (one JSON object on stdout, for programs such as
/// the tests) rather than `export` lines for a shell (the default, `--format shell`); the
/// options of `kit env` and `controlplane env`.
pub fn env_format_is_json(args: &[String]) -> anyhow::Result<bool> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["--format", "shell"] => Ok(false),
        ["--format", "json"] => Ok(true),
        other => anyhow::bail!("unexpected {other:?}; usage: env [--format shell|json]"),
    }
}

/// Prints settings (name, value, single-quoted in the shell) as `export` lines, or (`json`) as
/// one JSON object; true when it printed the shell form.
pub fn print_env_vars(vars: Vec<(String, String, bool)>, json: bool) -> bool {
    if json {
        let object: serde_json::Map<String, serde_json::Value> = vars
            .into_iter()
            .map(|(name, value, _)| (name, value.into()))
            .collect();
        println!("{}", serde_json::Value::Object(object));
        return false;
    }
    for (name, value, quoted) in vars {
        if quoted {
            println!("export {name}='{value}'");
        } else {
            println!("export {name}={value}");
        }
    }
    true
}

fn print_env(layout: &Layout, kit: &Kit, json: bool) {
    if print_env_vars(env_vars(layout, kit), json) {
        println!("# then: minikube start $KSCALE_KIT_START_FLAGS --nodes 2 --memory 4400");
    }
}

/// Dispatches `cargo xtask kit <command>`.
pub fn kit(args: &[String]) -> anyhow::Result<()> {
    let layout = Layout::from_env()?;
    match args.first().map(String::as_str) {
        Some("build") => {
            let kit = build(&layout, Mode::Build)?;
            eprintln!("kit: ready; `cargo xtask kit env` prints the shell settings");
            eprintln!("kit: base image {}", kit.base_image);
            Ok(())
        }
        Some("env") => {
            // Quick: nothing is built here, only checked (and the engine started).
            let kit = build(&layout, Mode::Check)?;
            print_env(&layout, &kit, env_format_is_json(&args[1..])?);
            Ok(())
        }
        Some("status") => status(&layout),
        Some("engine") => match args.get(1).map(String::as_str) {
            Some("up") => engine::up(&layout),
            Some("down") => engine::down(&layout),
            _ => anyhow::bail!("usage: cargo xtask kit engine up|down"),
        },
        Some("clean") => {
            engine::down(&layout)?;
            files::remove_tree(&layout.cache)?;
            files::remove_tree(&layout.state)?;
            eprintln!("kit: removed {}", layout.cache.display());
            Ok(())
        }
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown kit command `{other}`\n\n{USAGE}"),
    }
}

fn status(layout: &Layout) -> anyhow::Result<()> {
    let mut ok = true;
    let engine = engine::running(layout);
    println!(
        "engine     {}",
        if engine {
            format!("up ({})", layout.docker_host())
        } else {
            "down".into()
        }
    );
    ok &= engine;
    for (name, present) in programs::status()? {
        println!("{name:<10} {}", if present { "built" } else { "missing" });
        ok &= present;
    }
    let rootfs = rootfs::status(layout)?;
    println!("rootfs     {}", if rootfs { "built" } else { "missing" });
    ok &= rootfs;
    let llama = rootfs::llama_status(layout);
    println!(
        "llama      {}",
        if llama {
            format!(
                "rootfs built (llama.cpp-tools {})",
                rootfs::LLAMA_CPP_VERSION
            )
        } else {
            "missing".into()
        }
    );
    ok &= llama;
    // The image lives in the engine: only a running engine can tell.
    if engine {
        let image = images::llama_reference(&gguf::key(&gguf::TINY)).to_string();
        let present = images::image_key(layout, &image).is_some();
        println!(
            "llama      image {image} {}",
            if present { "present" } else { "missing" }
        );
        ok &= present;
    }
    if !ok {
        anyhow::bail!("the kit is incomplete: run `cargo xtask kit build`");
    }
    Ok(())
}
