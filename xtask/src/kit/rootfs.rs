//! The Debian bookworm rootfs everything else is cut from: the node base image (systemd,
//! containerd, runc, CNI plugins, sshd and the tools minikube runs over ssh), and the few
//! userland files some images need (iptables for kube-proxy and flannel, busybox's `cp`).

use std::path::PathBuf;
use std::process::Command;

use super::{Layout, Mode, shell};

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";

/// What minikube's own kicbase installs that a node needs here, plus `jq` (the runc wrapper) and
/// `busybox-static` (a `cp` for the CNI init container). No Docker, CRI-O or podman: the kit's
/// nodes run containerd only.
const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "conntrack",
    "iptables",
    "iproute2",
    "ethtool",
    "socat",
    "util-linux",
    "mount",
    "ebtables",
    "kmod",
    "libseccomp2",
    "pigz",
    "bash",
    "ca-certificates",
    "curl",
    "rsync",
    "iputils-ping",
    "netcat-openbsd",
    "lz4",
    "sudo",
    "openssh-server",
    "dnsutils",
    "containerd",
    "runc",
    "containernetworking-plugins",
    "jq",
    "procps",
    "gnupg",
    "busybox-static",
];

/// A built rootfs (read-only: consumers copy what they need).
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// Its folder.
    pub dir: PathBuf,
    /// Its content key.
    pub key: String,
}

fn key() -> String {
    shell::Key::default()
        .text(SUITE)
        .text(MIRROR)
        .text(&PACKAGES.join(","))
        .finish()
}

fn dir(layout: &Layout) -> PathBuf {
    layout.cache.join("rootfs").join(key())
}

/// True when the rootfs of the current package list exists.
pub fn status(layout: &Layout) -> anyhow::Result<bool> {
    Ok(dir(layout).join("etc/debian_version").is_file())
}

/// Runs debootstrap unless the rootfs for the current package list exists.
pub fn ensure(layout: &Layout, mode: Mode) -> anyhow::Result<Rootfs> {
    let key = key();
    let dir = dir(layout);
    if status(layout)? {
        return Ok(Rootfs { dir, key });
    }
    if mode == Mode::Check {
        anyhow::bail!("the Debian rootfs is not built: {}", super::NOT_BUILT);
    }
    let partial = layout.cache.join("rootfs").join(format!(".{key}.partial"));
    shell::remove_tree(&partial)?;
    shell::mkdir(&partial)?;
    shell::run(Command::new("debootstrap").args([
        "--variant=minbase",
        &format!("--include={}", PACKAGES.join(",")),
        SUITE,
        &partial.to_string_lossy(),
        MIRROR,
    ]))?;
    // Older rootfs builds only take space (about 600 MB each).
    if let Ok(entries) = std::fs::read_dir(layout.cache.join("rootfs")) {
        for entry in entries.filter_map(Result::ok) {
            if entry.path() != partial {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    std::fs::rename(&partial, &dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot move {} to {}: {e}",
            partial.display(),
            dir.display()
        )
    })?;
    Ok(Rootfs { dir, key })
}
