//! The upstream programs the harness runs, built by `upstream::gobuild` from the modules
//! `upstream::modules` pins: kwok and the kit's Kubernetes, etcd and prometheus-adapter, into the
//! shared Go cache.

use std::path::{Path, PathBuf};

use crate::upstream::gobuild::{self, GoModule};
use crate::upstream::modules;

/// The harness's modules: kwok of its own; Kubernetes, etcd and prometheus-adapter are the kit's
/// (one build serves both).
fn modules() -> anyhow::Result<Vec<GoModule>> {
    Ok(vec![
        modules::kit_module("kubernetes")?,
        modules::kwok(),
        modules::kit_module("adapter")?,
        // Debian's etcd 3.4.23 lacks RequestWatchProgress, which kwok's client-go 0.36 asks for
        // (its informers then fail over and over).
        modules::kit_module("etcd")?,
    ])
}

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

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
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
fn copy_kwok_stages(kwok: &GoModule, into: &Path) -> anyhow::Result<()> {
    let version = kwok.pinned_version("sigs.k8s.io/kwok")?;
    let source = gobuild::shared_cache()?
        .dir
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
pub fn ensure_programs() -> anyhow::Result<Programs> {
    let prometheus = find_on_path("prometheus").ok_or_else(|| {
        anyhow::anyhow!(
            "prometheus is not on PATH: run `cargo xtask deps` (Debian package prometheus)"
        )
    })?;
    let go_version = gobuild::go_version()?;
    let cache = gobuild::shared_cache()?;
    let mut bins = Vec::new();
    for module in modules()? {
        let bin = if module.name == "kwok" {
            cache.build(
                &module,
                &go_version,
                |dir| copy_kwok_stages(&module, dir),
                |dir| kwok_stages(dir).is_ok(),
            )?
        } else {
            cache.build(&module, &go_version, |_| Ok(()), |_| true)?
        };
        bins.push(bin);
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
        adapter: adapter.join("adapter"),
        kwok_stages: kwok_stages(kwok)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pinned_module_has_go_mod_and_go_sum_naming_its_programs() {
        for module in modules().unwrap() {
            let root = module.root();
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
    fn the_harness_runs_the_kits_kubernetes_etcd_and_adapter() {
        let names: Vec<(&str, &str)> = modules().unwrap().iter().map(|m| (m.name, m.dir)).collect();
        assert_eq!(
            names,
            [
                ("kubernetes", "xtask/kit/kubernetes"),
                ("kwok", "xtask/controlplane/kwok"),
                ("adapter", "xtask/kit/adapter"),
                ("etcd", "xtask/kit/etcd"),
            ]
        );
    }

    #[test]
    fn the_cache_key_changes_with_the_go_version() {
        let modules = modules().unwrap();
        let a = modules[1].key("go version go1.26.8").unwrap();
        let b = modules[1].key("go version go1.27.3").unwrap();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
