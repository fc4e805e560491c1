//! The Debian bookworm rootfs everything else is cut from: the node base image (systemd,
//! containerd, runc, CNI plugins, sshd and the tools minikube runs over ssh), and the few
//! userland files some images need (iptables for kube-proxy and flannel, busybox's `cp`).
//!
//! A second rootfs, of Debian unstable, holds llama.cpp's `llama-server` (`llama.cpp-tools`,
//! which bookworm lacks and which needs unstable's libc): the kit's llama.cpp image is cut from
//! it. Each rootfs has its own cache folder, since a build removes older builds of its folder.

use crate::{files, process};
use std::path::PathBuf;
use std::process::Command;

use super::{Layout, Mode};

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";

/// The Debian unstable version of `llama.cpp-tools` the kit's llama.cpp image is built from.
/// Unstable moves on: when the archive serves another version, the build fails naming both, and
/// the pin is updated here after checking the image still works.
pub const LLAMA_CPP_VERSION: &str = "1:0.7.0+dfsg-2";
/// The suite that packages `llama.cpp-tools`.
const LLAMA_SUITE: &str = "sid";

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

/// One debootstrap: suite, packages, and the cache folder of its builds.
struct Recipe {
    suite: &'static str,
    packages: &'static [&'static str],
    /// Under the cache: a build removes the older builds in this folder only.
    folder: &'static str,
    /// A package whose installed version must be the given one.
    pin: Option<(&'static str, &'static str)>,
}

const BOOKWORM: Recipe = Recipe {
    suite: SUITE,
    packages: PACKAGES,
    folder: "rootfs",
    pin: None,
};

const LLAMA: Recipe = Recipe {
    suite: LLAMA_SUITE,
    packages: &["llama.cpp-tools"],
    folder: "rootfs-llama",
    pin: Some(("llama.cpp-tools", LLAMA_CPP_VERSION)),
};

impl Recipe {
    fn key(&self) -> String {
        let mut key = files::Key::default()
            .text(self.suite)
            .text(MIRROR)
            .text(&self.packages.join(","));
        if let Some((package, version)) = self.pin {
            key = key.text(package).text(version);
        }
        key.finish()
    }

    fn dir(&self, layout: &Layout) -> PathBuf {
        layout.cache.join(self.folder).join(self.key())
    }

    fn built(&self, layout: &Layout) -> bool {
        self.dir(layout).join("etc/debian_version").is_file()
    }

    /// Runs debootstrap unless this recipe's rootfs exists.
    fn ensure(&self, layout: &Layout, mode: Mode) -> anyhow::Result<Rootfs> {
        let key = self.key();
        let dir = self.dir(layout);
        if self.built(layout) {
            return Ok(Rootfs { dir, key });
        }
        if mode == Mode::Check {
            anyhow::bail!(
                "the Debian {} rootfs is not built: {}",
                self.suite,
                super::NOT_BUILT
            );
        }
        let folder = layout.cache.join(self.folder);
        let partial = folder.join(format!(".{key}.partial"));
        files::remove_tree(&partial)?;
        files::mkdir(&partial)?;
        let debootstrap = process::run(Command::new("debootstrap").args([
            "--variant=minbase",
            &format!("--include={}", self.packages.join(",")),
            self.suite,
            &partial.to_string_lossy(),
            MIRROR,
        ]));
        if let Err(e) = debootstrap {
            return Err(match self.pin {
                Some((package, version)) => e.context(format!(
                    "Debian {} may no longer serve {package} (the kit pins {version}; see \
                     {MIRROR}/pool/main/l/llama.cpp/)",
                    self.suite
                )),
                None => e,
            });
        }
        if let Some((package, version)) = self.pin {
            let installed = process::output(Command::new("chroot").arg(&partial).args([
                "dpkg-query",
                "--show",
                "--showformat=${Version}",
                package,
            ]))?;
            if installed.trim() != version {
                anyhow::bail!(
                    "Debian {} now serves {package} {}, the kit pins {version}: update \
                     LLAMA_CPP_VERSION in xtask/src/kit/rootfs.rs once the kit's llama.cpp test \
                     passes with it",
                    self.suite,
                    installed.trim()
                );
            }
        }
        // Older builds of this recipe only take space (bookworm's about 600 MB each).
        if let Ok(entries) = std::fs::read_dir(&folder) {
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
}

/// True when the bookworm rootfs of the current package list exists.
pub fn status(layout: &Layout) -> anyhow::Result<bool> {
    Ok(BOOKWORM.built(layout))
}

/// True when the unstable rootfs with the pinned llama.cpp exists.
pub fn llama_status(layout: &Layout) -> bool {
    LLAMA.built(layout)
}

/// Runs debootstrap unless the bookworm rootfs for the current package list exists.
pub fn ensure(layout: &Layout, mode: Mode) -> anyhow::Result<Rootfs> {
    BOOKWORM.ensure(layout, mode)
}

/// Runs debootstrap unless the unstable rootfs with the pinned `llama.cpp-tools` exists.
pub fn ensure_llama(layout: &Layout, mode: Mode) -> anyhow::Result<Rootfs> {
    LLAMA.ensure(layout, mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_rootfs_live_in_folders_of_their_own() {
        // Each build removes older builds of its folder: sharing one would delete the other.
        assert_ne!(BOOKWORM.folder, LLAMA.folder);
        assert_ne!(BOOKWORM.key(), LLAMA.key());
    }
}
