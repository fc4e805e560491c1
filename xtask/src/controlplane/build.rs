//! Builds the upstream control-plane programs from the project's pinned Go modules
//! (`xtask/controlplane/<module>/go.mod` + `go.sum`) into a cache folder that survives between runs.
//!
//! Each module's programs land in `<cache>/bin/<module>-<key>/`, where the key hashes the module's
//! go.mod, go.sum and the Go version: changing a pin rebuilds, anything else reuses the binaries.
//! The Go module and build caches live beside them, so a CI cache of `<cache>` makes the build warm.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::Layout;

/// One Go module of `xtask/controlplane/` and the programs it pins.
struct GoModule {
    /// Folder name under `xtask/controlplane/`.
    dir: &'static str,
    /// (Go package, output file name).
    programs: &'static [(&'static str, &'static str)],
}

const MODULES: &[GoModule] = &[
    GoModule {
        dir: "kubernetes",
        programs: &[
            ("k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
            (
                "k8s.io/kubernetes/cmd/kube-controller-manager",
                "kube-controller-manager",
            ),
            ("k8s.io/kubernetes/cmd/kube-scheduler", "kube-scheduler"),
        ],
    },
    GoModule {
        dir: "kwok",
        programs: &[("sigs.k8s.io/kwok/cmd/kwok", "kwok")],
    },
    GoModule {
        dir: "adapter",
        programs: &[(
            "sigs.k8s.io/prometheus-adapter/cmd/adapter",
            "prometheus-adapter",
        )],
    },
    // Debian's etcd 3.4.23 works but lacks RequestWatchProgress, so the 1.36 API server refuses
    // the watch-list streams client-go 0.36 asks for (kwok's informers then fail over and over).
    GoModule {
        dir: "etcd",
        programs: &[("go.etcd.io/etcd/server/v3", "etcd")],
    },
];

/// Paths of every program the harness runs.
#[derive(Debug, Clone)]
pub struct Programs {
    /// etcd.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub apiserver: PathBuf,
    /// kube-controller-manager.
    pub controller_manager: PathBuf,
    /// kube-scheduler.
    pub scheduler: PathBuf,
    /// kwok.
    pub kwok: PathBuf,
    /// prometheus-adapter.
    pub adapter: PathBuf,
    /// Prometheus (Debian `prometheus`, installed by `cargo xtask deps`).
    pub prometheus: PathBuf,
    /// kwok's own stage definitions (fast node and pod lifecycle, node leases), read from the
    /// pinned kwok module's source in the module cache so that they match the binary.
    pub kwok_stages: Vec<PathBuf>,
}

impl Programs {
    /// Every program path, for listing.
    pub fn all(&self) -> [&Path; 7] {
        [
            &self.etcd,
            &self.prometheus,
            &self.apiserver,
            &self.controller_manager,
            &self.scheduler,
            &self.kwok,
            &self.adapter,
        ]
    }
}

fn module_root(module: &GoModule) -> PathBuf {
    crate::project_root()
        .join("xtask")
        .join("controlplane")
        .join(module.dir)
}

fn go_version() -> anyhow::Result<String> {
    let out = Command::new("go").arg("version").output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run `go version` ({e}): the control plane is built from Go modules; install Go 1.26 or newer"
        )
    })?;
    if !out.status.success() {
        anyhow::bail!(
            "`go version` failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `-ldflags` for a module's programs. Kubernetes programs built from modules report
/// `v0.0.0-master+$Format:%H$` unless the release version is stamped in, which kubectl and
/// clients that parse the server version reject.
fn ldflags(module: &GoModule) -> anyhow::Result<String> {
    let mut flags = "-s -w".to_string();
    if module.dir == "kubernetes" {
        let version = pinned_version(module, "k8s.io/kubernetes")?;
        let mut parts = version.trim_start_matches('v').split('.');
        let (major, minor) = (parts.next().unwrap_or("1"), parts.next().unwrap_or("0"));
        for package in [
            "k8s.io/component-base/version",
            "k8s.io/client-go/pkg/version",
        ] {
            flags.push_str(&format!(
                " -X {package}.gitVersion={version} -X {package}.gitMajor={major} -X {package}.gitMinor={minor} -X {package}.gitTreeState=clean"
            ));
        }
    }
    Ok(flags)
}

/// The cache key of a module: its pins, link flags and the compiler, nothing else.
fn module_key(module: &GoModule, go: &str) -> anyhow::Result<String> {
    let root = module_root(module);
    let mut hash = Sha256::new();
    for file in ["go.mod", "go.sum"] {
        let path = root.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        hash.update(&bytes);
    }
    hash.update(go.as_bytes());
    hash.update(ldflags(module)?.as_bytes());
    let digest = hash.finalize();
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

fn go(layout: &Layout, dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new("go");
    cmd.args(args)
        .current_dir(dir)
        .env("GOMODCACHE", layout.cache.join("gomod"))
        .env("GOCACHE", layout.cache.join("gocache"))
        // go.sum is committed: a build must not resolve anything new, only download what it pins.
        .env("GOFLAGS", "-mod=readonly -buildvcs=false");
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.to_string()
            }
        })
        .collect();
    eprintln!("$ (cd {} && go {})", dir.display(), shown.join(" "));
    let status = cmd.status().map_err(|e| {
        anyhow::anyhow!(
            "cannot start `go {}` ({e}): install Go 1.26 or newer",
            shown.join(" ")
        )
    })?;
    if !status.success() {
        anyhow::bail!(
            "`go {}` in {} failed with {status} (the Go module proxy must be reachable for a cold build)",
            shown.join(" "),
            dir.display()
        );
    }
    Ok(())
}

/// Older builds of the module (other pins) only take space: about 100 MB per program.
fn remove_stale_builds(layout: &Layout, module: &GoModule, current: &Path) {
    let Ok(entries) = std::fs::read_dir(layout.cache.join("bin")) else {
        return;
    };
    let prefix = format!("{}-", module.dir);
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && path != current {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn build_module(layout: &Layout, module: &GoModule, go_version: &str) -> anyhow::Result<PathBuf> {
    let key = module_key(module, go_version)?;
    let bin = layout
        .cache
        .join("bin")
        .join(format!("{}-{key}", module.dir));
    let complete = module
        .programs
        .iter()
        .all(|(_, name)| bin.join(name).is_file())
        && (module.dir != "kwok" || kwok_stages(&bin).is_ok());
    if complete {
        return Ok(bin);
    }
    let root = module_root(module);
    let started = Instant::now();
    go(layout, &root, &["mod", "download"])?;
    let downloaded = started.elapsed();
    // Build into a scratch folder and rename, so an interrupted build never looks complete.
    let scratch = layout
        .cache
        .join("bin")
        .join(format!(".{}-{key}.partial", module.dir));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", scratch.display()))?;
    let ldflags = format!("-ldflags={}", ldflags(module)?);
    for (package, name) in module.programs {
        let out = scratch.join(name);
        let out = out.to_string_lossy();
        go(
            layout,
            &root,
            &["build", "-trimpath", &ldflags, "-o", &out, package],
        )?;
    }
    if module.dir == "kwok" {
        copy_kwok_stages(layout, &scratch)?;
    }
    let _ = std::fs::remove_dir_all(&bin);
    std::fs::rename(&scratch, &bin).map_err(|e| {
        anyhow::anyhow!(
            "cannot move {} to {}: {e}",
            scratch.display(),
            bin.display()
        )
    })?;
    remove_stale_builds(layout, module, &bin);
    eprintln!(
        "controlplane: built {} in {:.0}s (download {:.0}s)",
        module.dir,
        started.elapsed().as_secs_f64(),
        downloaded.as_secs_f64()
    );
    Ok(bin)
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The kwok version pinned in `xtask/controlplane/kwok/go.mod`.
fn pinned_version(module: &GoModule, path: &str) -> anyhow::Result<String> {
    let go_mod = module_root(module).join("go.mod");
    let text = std::fs::read_to_string(&go_mod)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", go_mod.display()))?;
    text.lines()
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
        .ok_or_else(|| anyhow::anyhow!("{} does not require {path}", go_mod.display()))
}

/// kwok's stage files (under `kustomize/stage/` of the kwok module) that make nodes Ready and keep
/// their leases fresh, and take pods through Running/Ready, completion and deletion at once: what
/// kwokctl configures by default.
const KWOK_STAGES: [&str; 5] = [
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
];

/// Copies the stage files from the pinned kwok module's source into the kwok build folder, so
/// that the folder is complete on its own (a CI cache of `bin/` alone is enough).
fn copy_kwok_stages(layout: &Layout, into: &Path) -> anyhow::Result<()> {
    let version = pinned_version(&MODULES[1], "sigs.k8s.io/kwok")?;
    let source = layout
        .cache
        .join("gomod")
        .join(format!("sigs.k8s.io/kwok@{version}"))
        .join("kustomize")
        .join("stage");
    for (i, file) in KWOK_STAGES.iter().enumerate() {
        let from = source.join(file);
        let to = into.join(format!("stage-{i}.yaml"));
        std::fs::copy(&from, &to).map_err(|e| {
            anyhow::anyhow!(
                "cannot copy kwok stage {} to {}: {e}",
                from.display(),
                to.display()
            )
        })?;
    }
    Ok(())
}

fn kwok_stages(kwok_bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let stages: Vec<PathBuf> = (0..KWOK_STAGES.len())
        .map(|i| kwok_bin.join(format!("stage-{i}.yaml")))
        .collect();
    if let Some(missing) = stages.iter().find(|path| !path.is_file()) {
        anyhow::bail!(
            "kwok stage file {} is missing: remove {} and run `cargo xtask controlplane build`",
            missing.display(),
            kwok_bin.display()
        );
    }
    Ok(stages)
}

/// Builds whatever is missing and returns the path of every program.
pub fn ensure_programs(layout: &Layout) -> anyhow::Result<Programs> {
    let prometheus = find_on_path("prometheus").ok_or_else(|| {
        anyhow::anyhow!(
            "prometheus is not on PATH: run `cargo xtask deps` (Debian package prometheus)"
        )
    })?;
    let go_version = go_version()?;
    let mut bins = Vec::new();
    for module in MODULES {
        bins.push(build_module(layout, module, &go_version)?);
    }
    let [kubernetes, kwok, adapter, etcd] = bins.as_slice() else {
        anyhow::bail!("internal error: expected four Go modules");
    };
    Ok(Programs {
        etcd: etcd.join("etcd"),
        prometheus,
        apiserver: kubernetes.join("kube-apiserver"),
        controller_manager: kubernetes.join("kube-controller-manager"),
        scheduler: kubernetes.join("kube-scheduler"),
        kwok: kwok.join("kwok"),
        adapter: adapter.join("prometheus-adapter"),
        kwok_stages: kwok_stages(kwok)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pinned_module_has_go_mod_and_go_sum_naming_its_programs() {
        for module in MODULES {
            let root = module_root(module);
            let go_mod = std::fs::read_to_string(root.join("go.mod")).unwrap();
            assert!(root.join("go.sum").is_file(), "{} lacks go.sum", module.dir);
            for (package, _) in module.programs {
                assert!(
                    go_mod.contains(package),
                    "{}/go.mod does not pin the tool {package}",
                    module.dir
                );
            }
        }
    }

    #[test]
    fn the_pinned_versions_are_read_from_go_mod() {
        assert_eq!(
            pinned_version(&MODULES[0], "k8s.io/kubernetes").unwrap(),
            "v1.36.3"
        );
        assert!(
            pinned_version(&MODULES[1], "sigs.k8s.io/kwok")
                .unwrap()
                .starts_with('v')
        );
        assert!(pinned_version(&MODULES[1], "example.com/absent").is_err());
    }

    #[test]
    fn kubernetes_programs_are_stamped_with_their_release_version() {
        let flags = ldflags(&MODULES[0]).unwrap();
        assert!(flags.contains("k8s.io/component-base/version.gitVersion=v1.36.3"));
        assert!(flags.contains("k8s.io/component-base/version.gitMinor=36"));
        assert_eq!(ldflags(&MODULES[1]).unwrap(), "-s -w");
    }

    #[test]
    fn the_cache_key_changes_with_the_go_version() {
        let a = module_key(&MODULES[1], "go version go1.26.8").unwrap();
        let b = module_key(&MODULES[1], "go version go1.27.3").unwrap();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
