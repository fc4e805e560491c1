//! The node base image for `minikube start --base-image`: the Debian rootfs, minikube's own
//! kicbase files (entrypoint, containerd config, sysctls, automount; read from the pinned
//! minikube module), crictl, the flannel CNI plugin, the runc wrapper, and every node image
//! already imported into containerd's store. minikube's docker driver fills each node's `/var`
//! volume from the image, so both nodes start with every image (minikube's image cache reaches
//! only the first node).

use crate::{files, process};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::images::{Built, KEY_LABEL, image_key};
use super::programs::Programs;
use super::rootfs::Rootfs;
use super::{Layout, Mode, engine};

const REPOSITORY: &str = "kscale.local/kit/kicbase";

/// Files of minikube's `deploy/kicbase/` and where they go in the image.
const KICBASE_FILES: &[(&str, &str)] = &[
    ("entrypoint", "usr/local/bin/entrypoint"),
    ("containerd.toml", "etc/containerd/config.toml"),
    (
        "10-network-security.conf",
        "etc/sysctl.d/10-network-security.conf",
    ),
    (
        "11-tcp-mtu-probing.conf",
        "etc/sysctl.d/11-tcp-mtu-probing.conf",
    ),
    (
        "automount/minikube-automount",
        "usr/sbin/minikube-automount",
    ),
    (
        "automount/minikube-automount.service",
        "usr/lib/systemd/system/minikube-automount.service",
    ),
    (
        "scheduled-stop/minikube-scheduled-stop",
        "var/lib/minikube/scheduled-stop/minikube-scheduled-stop",
    ),
    (
        "scheduled-stop/minikube-scheduled-stop.service",
        "usr/lib/systemd/system/minikube-scheduled-stop.service",
    ),
];

const SETUP: &str = include_str!("../../kit/node-setup.sh");

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    files::mkdir(to.parent().unwrap_or(to))?;
    std::fs::copy(from, to)
        .map_err(|e| anyhow::anyhow!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    Ok(())
}

/// Imports the node images into a containerd store rooted at `root` with the host's containerd
/// (the same Debian release as the nodes'), so the store's format is the nodes' own.
fn bake_images(layout: &Layout, built: &Built, root: &Path) -> anyhow::Result<()> {
    let dir = layout.state.join("bake");
    files::remove_tree(&dir)?;
    files::mkdir(&dir)?;
    let archive = dir.join("images.tar");
    let mut save = engine::docker_cmd(layout);
    save.args(["save", "-o", &archive.to_string_lossy()]);
    for image in &built.node_images {
        save.arg(image.to_string());
    }
    process::run(&mut save)?;
    let socket = dir.join("containerd.sock");
    let config = dir.join("config.toml");
    files::write(
        &config,
        format!(
            "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n",
            root.display(),
            dir.join("state").display(),
            socket.display()
        ),
    )?;
    let mut containerd = process::spawn_logged(
        Command::new("containerd").arg("--config").arg(&config),
        &dir.join("containerd.log"),
        process::Group::Shared,
        Some("install Debian's containerd"),
    )?;
    let result = (|| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            if Instant::now() > deadline {
                anyhow::bail!("containerd did not open {} within 30 s", socket.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        process::run(
            Command::new("ctr")
                .arg("--address")
                .arg(&socket)
                .args(["--namespace", "k8s.io", "images", "import"])
                .arg(&archive),
        )
    })();
    let _ = process::signal(containerd.id(), "-TERM", false);
    let _ = containerd.wait();
    result?;
    files::remove_tree(&dir)
}

/// Builds the base image unless one with the same key exists; returns its reference.
pub fn ensure(
    layout: &Layout,
    programs: &Programs,
    rootfs: &Rootfs,
    built: &Built,
    mode: Mode,
) -> anyhow::Result<String> {
    let kicbase_dir = programs
        .source("k8s.io/minikube@v1.37.0")
        .join("deploy/kicbase");
    let crictl = programs.path("critools", "crictl")?;
    let cni_flannel = programs.path("cniplugins", "flannel")?;
    let wrapper = engine::runc_wrapper("/usr/sbin/runc.real");
    let mut key = files::Key::default()
        .text(&rootfs.key)
        .text(&built.key)
        .text(SETUP)
        .text(&wrapper)
        .file(&crictl)?
        .file(&cni_flannel)?;
    for (file, _) in KICBASE_FILES {
        key = key.file(&kicbase_dir.join(file))?;
    }
    let key = key.finish();
    let reference = format!("{REPOSITORY}:{key}");
    if image_key(layout, &reference).as_deref() == Some(key.as_str()) {
        return Ok(reference);
    }
    if mode == Mode::Check {
        anyhow::bail!("the node base image is not built: {}", super::NOT_BUILT);
    }
    let work = layout.state.join("kicbase");
    files::remove_tree(&work)?;
    process::run(Command::new("cp").args(["-a"]).arg(&rootfs.dir).arg(&work))?;
    for (file, at) in KICBASE_FILES {
        copy(&kicbase_dir.join(file), &work.join(at))?;
        if !at.ends_with(".service") && !at.ends_with(".toml") && !at.ends_with(".conf") {
            files::chmod_x(&work.join(at))?;
        }
    }
    copy(&crictl, &work.join("usr/bin/crictl"))?;
    files::chmod_x(&work.join("usr/bin/crictl"))?;
    files::write(&work.join("kit-setup.sh"), SETUP)?;
    process::run(
        Command::new("chroot")
            .arg(&work)
            .args(["/bin/sh", "/kit-setup.sh"]),
    )?;
    std::fs::remove_file(work.join("kit-setup.sh"))
        .map_err(|e| anyhow::anyhow!("cannot remove the setup script: {e}"))?;
    copy(&cni_flannel, &work.join("opt/cni/bin/flannel"))?;
    files::chmod_x(&work.join("opt/cni/bin/flannel"))?;
    files::write(&work.join("usr/sbin/runc"), &wrapper)?;
    files::chmod_x(&work.join("usr/sbin/runc"))?;
    bake_images(layout, built, &work.join("var/lib/containerd"))?;
    // `docker import` of Debian's engine accepts no STOPSIGNAL change, so the rootfs is imported
    // first and a one-line Dockerfile adds the rest (the classic builder needs no registry).
    let rootfs_ref = format!("{REPOSITORY}-rootfs:{key}");
    let mut import = engine::docker_cmd(layout);
    import.args(["import", "-", &rootfs_ref]);
    let mut tar = Command::new("tar");
    tar.args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-C"])
        .arg(&work)
        .args(["-cf", "-", "."]);
    process::pipe(tar, import)?;
    let context = layout.state.join("kicbase-config");
    files::write(
        &context.join("Dockerfile"),
        format!(
            "FROM {rootfs_ref}\nENV container=docker\nEXPOSE 22\n\
             # systemd halts on SIGRTMIN+3 (SIGTERM would make it re-execute itself).\n\
             STOPSIGNAL SIGRTMIN+3\nLABEL {KEY_LABEL}={key}\n\
             ENTRYPOINT [\"/usr/local/bin/entrypoint\", \"/sbin/init\"]\n"
        ),
    )?;
    process::run(
        engine::docker_cmd(layout)
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", &reference])
            .arg(&context),
    )?;
    files::remove_tree(&context)?;
    files::remove_tree(&work)?;
    // Older base images only take space (about 1.5 GB each).
    let listed = process::output(engine::docker_cmd(layout).args([
        "image",
        "ls",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]))?;
    let ours = |l: &&str| l.starts_with(REPOSITORY) && !l.ends_with(&format!(":{key}"));
    for old in listed.lines().filter(ours) {
        let _ = process::output(engine::docker_cmd(layout).args(["image", "rm", old]));
    }
    Ok(reference)
}
