//! The inference app: its image (content-tagged, built once, made available on every node) and
//! its objects (applied server-side, then rolled out with a deadline).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::config::ImageBuild;
use crate::manifest;
use crate::render::{FileKind, RenderedFile};

/// Repository name of the server image kscale builds.
pub const IMAGE_REPOSITORY: &str = "kscale-server";

/// The source tree kscale builds the server image from (this repository by default).
pub fn default_source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files whose content decides the image: exactly the Docker build context that
/// `.dockerignore` lets through (the manifests and `server/src`), plus the Dockerfile.
fn image_inputs(source: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let server = source.join("server");
    if !server.join("Dockerfile").is_file() {
        anyhow::bail!(
            "{} has no server/Dockerfile: run kscale from its repository, pass --source DIR, or deploy a prebuilt image with --image REF",
            source.display()
        );
    }
    let mut files: Vec<PathBuf> = [
        "Cargo.toml",
        "Cargo.lock",
        "server/Cargo.toml",
        "server/Dockerfile",
        "server/Dockerfile.runtime",
        "xtask/Cargo.toml",
    ]
    .iter()
    .map(|f| source.join(f))
    .filter(|p| p.is_file())
    .collect();
    let mut stack = vec![server.join("src")];
    while let Some(dir) = stack.pop() {
        if !dir.is_dir() {
            continue;
        }
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot read {}", dir.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `kscale-server:<12 hex digits>`: a tag derived from the content of the server sources and the
/// way the image is built, so a changed server gets a new tag (and a rollout) and an unchanged
/// one gets neither.
pub fn content_tag(source: &Path, build: ImageBuild) -> anyhow::Result<String> {
    let mut hash = Sha256::new();
    if build == ImageBuild::Host {
        hash.update(b"image_build=host\0");
        hash.update(crate::tools::cargo::STATIC_TARGET.as_bytes());
    }
    for file in image_inputs(source)? {
        let rel = file.strip_prefix(source).unwrap_or(&file);
        let bytes =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0]);
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    Ok(format!("{IMAGE_REPOSITORY}:{hex}"))
}

/// The image the configuration names: `--image`, else `app.image` (which a real server's preset
/// fills with its pinned official image). `None`: kscale builds kscale-server.
pub fn chosen_image(cfg: &crate::config::Config, flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| Some(cfg.app.image.trim().to_string()))
        .filter(|i| !i.is_empty())
}

/// What must hold before `up` or `deploy` touches a cluster, beyond [`Config::validate`] (which
/// `kscale render` also passes): a real server needs its model, and GPUs need a cluster that
/// has them.
///
/// [`Config::validate`]: crate::config::Config::validate
pub fn check_deployable(cfg: &crate::config::Config, minikube: bool) -> anyhow::Result<()> {
    let a = &cfg.app;
    let preset = a.server.preset();
    let mut problems = Vec::new();
    if preset.needs_model() && a.model.trim().is_empty() {
        problems.push(format!(
            "app.model: {} needs a model to serve: set it, e.g. --set app.model={}",
            preset.title,
            match a.server {
                crate::config::servers::ServerKind::Triton => "s3://bucket/model_repository",
                crate::config::servers::ServerKind::Llamacpp => "/models/model.gguf",
                _ => "Qwen/Qwen2.5-0.5B-Instruct",
            }
        ));
    }
    let gpu_flag = cfg
        .cluster
        .start_flags
        .split_whitespace()
        .any(|f| f == "--gpus" || f.starts_with("--gpus="));
    if minikube && a.gpus > 0 && !gpu_flag {
        problems.push(format!(
            "app.gpus: {} GPU(s) per pod on a minikube cluster started without GPU support: set app.gpus=0 (a CPU build of the server), add \"--gpus=all\" to cluster.start_flags (docker driver, NVIDIA container toolkit), or use --context with a GPU cluster",
            a.gpus
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(crate::BadInput(format!(
            "cannot deploy {}:\n  - {}",
            preset.title,
            problems.join("\n  - ")
        ))
        .into())
    }
}

/// The rendered objects `deploy` applies, in apply order.
pub fn app_objects(files: &[RenderedFile]) -> Vec<&RenderedFile> {
    use crate::render::file;
    const ORDER: &[&str] = &[
        file::MONITORING_NAMESPACE,
        file::APP_NAMESPACE,
        file::SCRAPE_CONFIG_SECRET,
        file::GRAFANA_DASHBOARD,
        file::DEPLOYMENT,
        file::SERVICE,
        file::PDB,
        file::HPA,
    ];
    let mut objs: Vec<&RenderedFile> = files
        .iter()
        .filter(|f| f.kind == FileKind::Object)
        .collect();
    objs.sort_by_key(|f| {
        ORDER
            .iter()
            .position(|n| *n == f.name)
            .unwrap_or(ORDER.len())
    });
    objs
}

/// The rollout wait: `timeouts.rollout_seconds`, or for a real server, which may need minutes to
/// load its model, at least its startup budget plus a minute (kscale-server starts at once and
/// has no startup probe, so its deadline is the key's alone).
pub fn rollout_deadline_seconds(cfg: &crate::config::Config) -> u64 {
    let key = cfg.timeouts.rollout_seconds;
    if cfg.app.server == crate::config::servers::ServerKind::Kscale {
        key
    } else {
        key.max(cfg.app.startup_seconds.saturating_add(60))
    }
}

/// How long `deploy` waits between rollout checks.
pub const ROLLOUT_POLL: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("server/src")).expect("mkdir");
        std::fs::create_dir_all(root.join("server/target")).expect("mkdir");
        std::fs::write(root.join("server/Dockerfile"), "FROM scratch\n").expect("write");
        std::fs::write(root.join("server/src/main.rs"), "fn main() {}\n").expect("write");
        std::fs::write(root.join("Cargo.lock"), "# lock\n").expect("write");
        dir
    }

    #[test]
    fn content_tag_follows_the_sources_only() {
        let dir = tree();
        let root = dir.path();
        let first = content_tag(root, ImageBuild::Dockerfile).expect("tag");
        assert!(
            first.starts_with("kscale-server:") && first.len() == "kscale-server:".len() + 12,
            "{first}"
        );
        assert_eq!(
            content_tag(root, ImageBuild::Dockerfile).expect("tag"),
            first,
            "stable"
        );
        std::fs::write(root.join("server/target/junk"), "x").expect("write");
        assert_eq!(
            content_tag(root, ImageBuild::Dockerfile).expect("tag"),
            first,
            "build outputs do not count"
        );
        std::fs::write(
            root.join("server/src/main.rs"),
            "fn main() { println!(); }\n",
        )
        .expect("write");
        assert_ne!(
            content_tag(root, ImageBuild::Dockerfile).expect("tag"),
            first,
            "a changed server gets a new tag"
        );
        let host = content_tag(root, ImageBuild::Host).expect("tag");
        assert_ne!(
            host,
            content_tag(root, ImageBuild::Dockerfile).expect("tag")
        );
        std::fs::write(root.join("server/Dockerfile.runtime"), "FROM scratch\n").expect("write");
        assert_ne!(
            content_tag(root, ImageBuild::Host).expect("tag"),
            host,
            "the runtime Dockerfile counts"
        );
    }

    #[test]
    fn a_real_server_waits_for_its_startup_budget_and_kscale_server_for_the_key() {
        use crate::config::servers::ServerKind;
        use crate::config::{Config, MetricProfile};
        let mut c = Config::default();
        c.timeouts.rollout_seconds = 3;
        assert_eq!(rollout_deadline_seconds(&c), 3);
        let mut v = Config::defaults(ServerKind::Vllm, MetricProfile::Queue);
        v.timeouts.rollout_seconds = 300;
        assert_eq!(rollout_deadline_seconds(&v), 960, "900 s startup + 60");
        v.timeouts.rollout_seconds = 2000;
        assert_eq!(rollout_deadline_seconds(&v), 2000);
    }

    #[test]
    fn missing_sources_suggest_image() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = content_tag(dir.path(), ImageBuild::Dockerfile)
            .expect_err("no Dockerfile")
            .to_string();
        assert!(err.contains("--image"), "{err}");
    }
}

/// What `deploy` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeployReport {
    /// The image the Deployment runs.
    pub image: String,
    /// Whether kscale built it in this run.
    pub built: bool,
    /// Each applied object and what the apply did.
    pub objects: Vec<(String, crate::kubeapi::Applied)>,
    /// What happened to the adapter's rules.
    pub adapter: Option<crate::monitoring::ReleaseAction>,
}

/// Resolves the image to deploy: `--image`, else the content-tagged build, made available to
/// the cluster (`minikube image load` on every node, or a push to `--registry`).
pub fn provide_image(
    s: &crate::session::Session,
    args: &crate::cli::ImageArgs,
) -> anyhow::Result<(String, bool)> {
    use crate::session::blocking;
    use crate::tools::docker::Docker;
    use crate::tools::minikube::Minikube;

    if let Some(image) = chosen_image(&s.cfg, args.image.as_deref()) {
        return provide_named_image(s, &image).map(|i| (i, false));
    }
    if !s.minikube && args.registry.is_none() {
        anyhow::bail!(
            "kscale cannot load a locally built image into context {:?}: pass --registry HOST to push it there, or --image REF to deploy a prebuilt image",
            s.context
        );
    }
    let source = args.source.clone().unwrap_or_else(default_source_dir);
    let mode = s.cfg.app.image_build;
    let image = content_tag(&source, mode)?;
    let docker = Docker::new(&s.runner);
    let step = s.ui.step(&format!("image {image}"));
    let mut built = false;
    if s.minikube {
        let mk = Minikube::new(&s.runner, &s.cfg.cluster.profile);
        let present = on_the_nodes(&mk, &image)?;
        if present {
            step.done("unchanged, already in the cluster");
            return Ok((image, false));
        }
        if blocking(|| docker.image_exists(&image))? != Some(true) {
            build_image(s, &step, &source, &image, mode)?;
            built = true;
        }
        step.progress("minikube image load (every node)");
        blocking(|| mk.image_load(&image))?;
        step.done(if built {
            "built, loaded on every node"
        } else {
            "loaded on every node"
        });
        return Ok((image, built));
    }
    let registry = args
        .registry
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('/');
    let target = format!("{registry}/{image}");
    if blocking(|| docker.image_exists(&image))? != Some(true) {
        build_image(s, &step, &source, &image, mode)?;
        built = true;
    }
    step.progress("docker push");
    blocking(|| docker.push(&image, &target))?;
    step.done(&format!("pushed to {target}"));
    Ok((target, built))
}

/// Makes a named image available: on minikube, loaded on every node from the local engine when
/// the nodes lack it and the engine has it (a user's own build); otherwise the nodes pull it.
fn provide_named_image(s: &crate::session::Session, image: &str) -> anyhow::Result<String> {
    use crate::session::blocking;
    use crate::tools::docker::Docker;
    use crate::tools::minikube::Minikube;

    if !s.minikube {
        return Ok(image.to_string());
    }
    let step = s.ui.step(&format!("image {image}"));
    let mk = Minikube::new(&s.runner, &s.cfg.cluster.profile);
    let present = on_the_nodes(&mk, image)?;
    if present {
        step.done("already in the cluster");
        return Ok(image.to_string());
    }
    if blocking(|| Docker::new(&s.runner).image_exists(image))? == Some(true) {
        step.progress("minikube image load (every node)");
        blocking(|| mk.image_load(image))?;
        step.done("loaded on every node from the local engine");
    } else {
        step.done("not in the local engine: the nodes pull it from its registry");
    }
    Ok(image.to_string())
}

/// Whether minikube lists `image` (it names local images `docker.io/library/NAME:TAG`).
fn on_the_nodes(mk: &crate::tools::minikube::Minikube, image: &str) -> anyhow::Result<bool> {
    let list = crate::session::blocking(|| mk.image_list())?;
    Ok(list.is_some_and(|list| {
        list.iter()
            .any(|i| i == image || i.ends_with(&format!("/{image}")))
    }))
}

/// Builds `image` from `source` the configured way.
fn build_image(
    s: &crate::session::Session,
    step: &crate::ui::Step,
    source: &Path,
    image: &str,
    mode: ImageBuild,
) -> anyhow::Result<()> {
    use crate::session::blocking;
    use crate::tools::docker::{Builder, Docker};
    let docker = Docker::new(&s.runner);
    match mode {
        ImageBuild::Dockerfile => {
            step.progress("docker build");
            blocking(|| {
                docker.build(
                    &source.join("server/Dockerfile"),
                    source,
                    image,
                    Builder::BuildKit,
                )
            })?;
        }
        ImageBuild::Host => {
            step.progress("cargo build (static kscale-server)");
            let binary = blocking(|| {
                crate::tools::cargo::Cargo::new(&s.runner).build_static_server(source)
            })?;
            // The context holds the binary alone: nothing else is sent to the engine.
            let context = tempfile::tempdir().context("cannot create the image build context")?;
            if !s.runner.dry_run() {
                std::fs::copy(&binary, context.path().join("kscale-server")).with_context(
                    || format!("cannot copy {} into the build context", binary.display()),
                )?;
            }
            step.progress("docker build (FROM scratch)");
            blocking(|| {
                docker.build(
                    &source.join("server/Dockerfile.runtime"),
                    context.path(),
                    image,
                    Builder::Classic,
                )
            })?;
        }
    }
    Ok(())
}

/// Applies the rendered app objects with server-side apply, then waits for the rollout.
pub async fn apply_and_roll_out(
    s: &crate::session::Session,
    client: Option<&kube::Client>,
    files: &[RenderedFile],
) -> anyhow::Result<Vec<(String, crate::kubeapi::Applied)>> {
    use crate::kubeapi::{self, Applied};
    let mut applied = Vec::new();
    let step =
        s.ui.step("apply app objects (server-side, field manager kscale)");
    let applier = client.map(|c| s.applier(c));
    for f in app_objects(files) {
        let obj = manifest::object_from_yaml(&f.content)
            .with_context(|| format!("rendered {}", f.name))?;
        let what = manifest::describe(&obj);
        match &applier {
            None => {
                s.ui.plan(&format!(
                    "apply {what} (server-side, field manager {}):",
                    kubeapi::FIELD_MANAGER
                ));
                s.ui.plan(&f.content);
                applied.push((what, Applied::Created));
            }
            Some(a) => {
                let result = a.apply(&obj).await?;
                applied.push((what, result));
            }
        }
    }
    let changed = applied
        .iter()
        .filter(|(_, a)| *a != Applied::Unchanged)
        .count();
    step.done(&format!("{} objects, {changed} changed", applied.len()));
    let Some(client) = client else {
        return Ok(applied);
    };

    let (ns, name) = (&s.cfg.app.namespace, &s.cfg.app.name);
    let step = s.ui.step(&format!("rollout of Deployment {ns}/{name}"));
    let deadline = Duration::from_secs(rollout_deadline_seconds(&s.cfg));
    let waited = kubeapi::wait_until("the rollout", deadline, ROLLOUT_POLL, || {
        kubeapi::rollout_incomplete(client, ns, name)
    })
    .await;
    match waited {
        Ok(()) => {
            step.done("complete");
            Ok(applied)
        }
        Err(e) => {
            step.fail("not complete");
            let why = kubeapi::diagnose_pods(client, ns, &format!("app={name}")).await;
            Err(e.context(format!("what is not ready:\n{why}")))
        }
    }
}
