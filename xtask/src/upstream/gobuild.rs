//! Builds upstream Go programs from the project's pinned wrapper modules (`go.mod` + `go.sum`
//! committed under `xtask/`) into a content-addressed cache folder that survives between runs.
//!
//! Each module's programs land in `<cache>/bin/<name>-<key>/`, where the key hashes the module's
//! go.mod, go.sum, the link flags, the environment that changes the output and the Go version:
//! changing a pin rebuilds, anything else reuses the binaries. The Go module and build caches live
//! beside them, so a cache of `<cache>` makes a build warm.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::process;

/// One pinned wrapper module and the programs it builds.
#[derive(Debug, Clone)]
pub struct GoModule {
    /// Short name: the cache folder prefix and the name in progress lines.
    pub name: &'static str,
    /// Folder of the wrapper module, relative to the project root.
    pub dir: &'static str,
    /// (Go package, output file name).
    pub programs: &'static [(&'static str, &'static str)],
    /// `GOTOOLCHAIN` for this module (`None`: the local Go). Kubernetes releases are built with
    /// the toolchain of their own release, since newer Go changes behaviour they test for.
    pub toolchain: Option<&'static str>,
    /// Link flags beyond `-s -w` (e.g. `-X` version stamps).
    pub ldflags: String,
    /// Extra environment (e.g. `GONOSUMDB` for a module the checksum database does not know).
    pub env: &'static [(&'static str, &'static str)],
    /// Build tags (e.g. Prometheus' `remove_all_sd` to leave out the cloud discoveries).
    pub tags: &'static [&'static str],
    /// Needs cgo (flannel's UDP backend): linked statically against the host's libc instead.
    pub cgo: bool,
}

impl GoModule {
    /// Whether every program of the module is in `bin`.
    pub fn is_built_in(&self, bin: &Path) -> bool {
        self.programs
            .iter()
            .all(|(_, name)| bin.join(name).is_file())
    }

    /// A module built with the local Go, no extra flags, tags or environment.
    pub fn new(
        name: &'static str,
        dir: &'static str,
        programs: &'static [(&'static str, &'static str)],
    ) -> Self {
        Self {
            name,
            dir,
            programs,
            toolchain: None,
            ldflags: String::new(),
            env: &[],
            tags: &[],
            cgo: false,
        }
    }

    /// The module's folder in this checkout.
    pub fn root(&self) -> PathBuf {
        crate::project_root().join(self.dir)
    }

    /// The version of `path` that the wrapper's go.mod requires.
    pub fn pinned_version(&self, path: &str) -> anyhow::Result<String> {
        let go_mod = self.root().join("go.mod");
        let text = std::fs::read_to_string(&go_mod)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", go_mod.display()))?;
        pinned_version_in(&text, path)
            .ok_or_else(|| anyhow::anyhow!("{} does not require {path}", go_mod.display()))
    }

    fn all_ldflags(&self) -> String {
        let mut flags = "-s -w".to_string();
        if self.cgo {
            flags.push_str(" -linkmode=external -extldflags=-static");
        }
        if !self.ldflags.is_empty() {
            flags.push(' ');
            flags.push_str(&self.ldflags);
        }
        flags
    }

    /// The cache key: pins, link flags, environment and compiler, nothing else.
    pub fn key(&self, go_version: &str) -> anyhow::Result<String> {
        let root = self.root();
        let mut hash = Sha256::new();
        for file in ["go.mod", "go.sum"] {
            let path = root.join(file);
            let bytes = std::fs::read(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            hash.update(&bytes);
        }
        hash.update(go_version.as_bytes());
        hash.update(self.toolchain.unwrap_or("local").as_bytes());
        hash.update(self.all_ldflags().as_bytes());
        for (k, v) in self.env {
            hash.update(format!("{k}={v}").as_bytes());
        }
        hash.update(format!("tags={}", self.tags.join(",")).as_bytes());
        let digest = hash.finalize();
        Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
    }
}

/// The version after `path` in a go.mod's `require` lines.
pub fn pinned_version_in(go_mod: &str, path: &str) -> Option<String> {
    go_mod
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let first = words.next()?;
            let first = if first == "require" {
                words.next()?
            } else {
                first
            };
            (first == path).then(|| words.next().map(str::to_string))?
        })
        .next()
}

/// The file name `go build -o DIR/` gives a main package: its last path element, or the one
/// before a major-version suffix (`go.etcd.io/etcd/server/v3` -> `server`).
pub fn default_binary_name(package: &str) -> &str {
    let mut parts = package.rsplit('/');
    let last = parts.next().unwrap_or(package);
    let is_major =
        last.len() > 1 && last.starts_with('v') && last[1..].bytes().all(|b| b.is_ascii_digit());
    if is_major {
        parts.next().unwrap_or(last)
    } else {
        last
    }
}

/// The `-X` flags that stamp a Kubernetes release version into programs built from modules
/// (otherwise they report `v0.0.0-master+$Format:%H$`, which kubeadm and clients reject).
pub fn kubernetes_version_ldflags(version: &str) -> String {
    let mut parts = version.trim_start_matches('v').split('.');
    let (major, minor) = (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"));
    ["k8s.io/component-base/version", "k8s.io/client-go/pkg/version"]
        .iter()
        .map(|package| {
            format!(
                "-X {package}.gitVersion={version} -X {package}.gitMajor={major} -X {package}.gitMinor={minor} -X {package}.gitTreeState=clean"
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What every `go` command needs: the install when it cannot start.
const INSTALL_GO: &str =
    "the upstream programs are built from Go modules; install Go 1.26 or newer";

/// `go version` of the local Go.
pub fn go_version() -> anyhow::Result<String> {
    let options = process::Options {
        missing: Some(INSTALL_GO),
        ..process::Options::default()
    };
    Ok(process::exec(Command::new("go").arg("version"), options)?
        .trim()
        .to_string())
}

/// The Go caches and binaries shared by the kit and the control plane (they pin the same
/// Kubernetes, etcd and prometheus-adapter): `KSCALE_GO_CACHE`, or `$XDG_CACHE_HOME/kscale/go`.
pub fn shared_cache() -> anyhow::Result<GoCache> {
    Ok(GoCache {
        dir: crate::cache_dir("KSCALE_GO_CACHE", "go")?,
    })
}

/// Where a family of builds keeps its Go caches and binaries.
#[derive(Debug, Clone)]
pub struct GoCache {
    /// The folder holding `gomod/`, `gocache/` and `bin/`.
    pub dir: PathBuf,
}

impl GoCache {
    fn go(&self, module: &GoModule, args: &[&str]) -> anyhow::Result<()> {
        let dir = module.root();
        let mut cmd = Command::new("go");
        cmd.args(args)
            .current_dir(&dir)
            .env("GOMODCACHE", self.dir.join("gomod"))
            .env("GOCACHE", self.dir.join("gocache"))
            // Static binaries: they run in images `FROM scratch` and on any host.
            .env("CGO_ENABLED", if module.cgo { "1" } else { "0" })
            // go.sum is committed: a build must not resolve anything new, only download what it pins.
            .env("GOFLAGS", "-mod=readonly -buildvcs=false");
        if let Some(toolchain) = module.toolchain {
            cmd.env("GOTOOLCHAIN", toolchain);
        }
        for (k, v) in module.env {
            cmd.env(k, v);
        }
        // The echo and the error name the module's folder: every module runs the same commands.
        eprint!("(in {}) ", dir.display());
        let hint = format!(
            "in {}; the Go module proxy must be reachable for a cold build",
            dir.display()
        );
        process::run_with(
            &mut cmd,
            process::Options {
                missing: Some(INSTALL_GO),
                hint: Some(&hint),
                ..process::Options::default()
            },
        )
    }

    /// The folder a module's programs land in for `go_version`.
    pub fn bin_dir(&self, module: &GoModule, go_version: &str) -> anyhow::Result<PathBuf> {
        Ok(self
            .dir
            .join("bin")
            .join(format!("{}-{}", module.name, module.key(go_version)?)))
    }

    /// Builds the module's programs unless a complete build with the same key exists; returns
    /// their folder. `after` may add files to the build folder before it is marked complete.
    pub fn build(
        &self,
        module: &GoModule,
        go_version: &str,
        after: impl FnOnce(&Path) -> anyhow::Result<()>,
        complete: impl Fn(&Path) -> bool,
    ) -> anyhow::Result<PathBuf> {
        let bin = self.bin_dir(module, go_version)?;
        if module.is_built_in(&bin) && complete(&bin) {
            return Ok(bin);
        }
        let started = Instant::now();
        self.go(module, &["mod", "download"])?;
        let downloaded = started.elapsed();
        // Build into a scratch folder and rename, so an interrupted build never looks complete.
        let scratch = self.dir.join("bin").join(format!(
            ".{}.partial",
            bin.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", scratch.display()))?;
        let ldflags = format!("-ldflags={}", module.all_ldflags());
        // One `go build` for every program: the Go command compiles and links them in parallel.
        let out_dir = format!("{}/", scratch.display());
        let tags = format!("-tags={}", module.tags.join(","));
        let mut args = vec![
            "build",
            "-trimpath",
            ldflags.as_str(),
            "-o",
            out_dir.as_str(),
        ];
        if !module.tags.is_empty() {
            args.push(tags.as_str());
        }
        args.extend(module.programs.iter().map(|(package, _)| *package));
        self.go(module, &args)?;
        for (package, name) in module.programs {
            let built = scratch.join(default_binary_name(package));
            if built != scratch.join(name) {
                std::fs::rename(&built, scratch.join(name)).map_err(|e| {
                    anyhow::anyhow!("cannot rename {} to {name}: {e}", built.display())
                })?;
            }
        }
        after(&scratch)?;
        let _ = std::fs::remove_dir_all(&bin);
        std::fs::rename(&scratch, &bin).map_err(|e| {
            anyhow::anyhow!(
                "cannot move {} to {}: {e}",
                scratch.display(),
                bin.display()
            )
        })?;
        self.remove_stale_builds(module, &bin);
        eprintln!(
            "built {} in {:.0}s (download {:.0}s)",
            module.name,
            started.elapsed().as_secs_f64(),
            downloaded.as_secs_f64()
        );
        Ok(bin)
    }

    /// Older builds of the module (other pins) only take space: about 100 MB per program.
    fn remove_stale_builds(&self, module: &GoModule, current: &Path) {
        let Ok(entries) = std::fs::read_dir(self.dir.join("bin")) else {
            return;
        };
        let prefix = format!("{}-", module.name);
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && path != current {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_versions_are_read_from_require_lines() {
        let go_mod = "module x\n\nrequire k8s.io/kubernetes v1.34.0\n\nrequire (\n\tgithub.com/a/b v0.1.0 // indirect\n)\n";
        assert_eq!(
            pinned_version_in(go_mod, "k8s.io/kubernetes").as_deref(),
            Some("v1.34.0")
        );
        assert_eq!(
            pinned_version_in(go_mod, "github.com/a/b").as_deref(),
            Some("v0.1.0")
        );
        assert_eq!(pinned_version_in(go_mod, "example.com/absent"), None);
    }

    #[test]
    fn default_binary_names_follow_the_go_command() {
        assert_eq!(default_binary_name("go.etcd.io/etcd/server/v3"), "server");
        assert_eq!(
            default_binary_name("k8s.io/kube-state-metrics/v2"),
            "kube-state-metrics"
        );
        assert_eq!(
            default_binary_name("k8s.io/kubernetes/cmd/kubeadm"),
            "kubeadm"
        );
        assert_eq!(default_binary_name("github.com/coredns/coredns"), "coredns");
        assert_eq!(default_binary_name("example.com/x/v"), "v");
    }

    #[test]
    fn kubernetes_programs_are_stamped_with_their_release_version() {
        let flags = kubernetes_version_ldflags("v1.34.0");
        assert!(flags.contains("k8s.io/component-base/version.gitVersion=v1.34.0"));
        assert!(flags.contains("k8s.io/component-base/version.gitMinor=34"));
        assert!(flags.contains("k8s.io/client-go/pkg/version.gitMajor=1"));
    }
}
