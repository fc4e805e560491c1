//! The kit's upstream programs, built by `upstream::gobuild` from the modules `upstream::modules`
//! pins, and where they are installed (minikube and kubectl on the kit's PATH, kubeadm, kubelet
//! and kubectl where minikube looks for them, the pinned helm).

use std::path::{Path, PathBuf};

use crate::upstream::{
    gobuild,
    modules::{self, KUBERNETES_VERSION},
};

use super::images::Built;
use super::{Layout, Mode};
use crate::files;

/// Every built program the kit uses.
#[derive(Debug, Clone)]
pub struct Programs {
    /// Folder of each module's build, by module name.
    dirs: Vec<(&'static str, PathBuf)>,
    /// The pinned module cache (sources read at build time: pause.c, minikube's kicbase files).
    pub gomod: PathBuf,
}

impl Programs {
    /// The path of `program` built by module `module`.
    pub fn path(&self, module: &str, program: &str) -> anyhow::Result<PathBuf> {
        self.dirs
            .iter()
            .find(|(name, _)| *name == module)
            .map(|(_, dir)| dir.join(program))
            .ok_or_else(|| anyhow::anyhow!("internal error: no kit module `{module}`"))
    }

    /// The source folder of a pinned module in the module cache, e.g. `k8s.io/kubernetes@v1.34.0`.
    pub fn source(&self, module_at_version: &str) -> PathBuf {
        self.gomod.join(module_at_version)
    }
}

/// Builds every program that is missing (with `Mode::Check`, fails naming it instead).
pub fn ensure(mode: Mode) -> anyhow::Result<Programs> {
    let cache = gobuild::shared_cache()?;
    let go_version = gobuild::go_version()?;
    let mut dirs = Vec::new();
    let all = modules::kit();
    let count = all.len();
    for (n, module) in all.into_iter().enumerate() {
        let dir = match mode {
            Mode::Build => {
                let built = cache.bin_dir(&module, &go_version)?;
                if !module.is_built_in(&built) {
                    // A cold module takes minutes: say which one, and how far along the kit is.
                    eprintln!(
                        "kit: Go program {} of {count}: {} (not built yet)",
                        n + 1,
                        module.name
                    );
                }
                cache.build(&module, &go_version, |_| Ok(()), |_| true)?
            }
            Mode::Check => {
                let dir = cache.bin_dir(&module, &go_version)?;
                if !module.is_built_in(&dir) {
                    anyhow::bail!("{} is not built: {}", module.name, super::NOT_BUILT);
                }
                dir
            }
        };
        dirs.push((module.name, dir));
    }
    Ok(Programs {
        dirs,
        gomod: cache.dir.join("gomod"),
    })
}

/// Each module and whether its build is present.
pub fn status() -> anyhow::Result<Vec<(&'static str, bool)>> {
    let cache = gobuild::shared_cache()?;
    let go_version = gobuild::go_version()?;
    modules::kit()
        .iter()
        .map(|module| {
            let dir = cache.bin_dir(module, &go_version)?;
            Ok((module.name, module.is_built_in(&dir)))
        })
        .collect()
}

fn link_or_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(to);
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).map_err(|e| {
            anyhow::anyhow!("cannot copy {} to {}: {e}", from.display(), to.display())
        })?;
    }
    Ok(())
}

/// Puts minikube (and helm) on the kit's PATH folder, kubeadm/kubelet/kubectl where minikube
/// looks before downloading them, and the CNI manifest with the built flannel image.
pub fn install(layout: &Layout, programs: &Programs, images: &Built) -> anyhow::Result<()> {
    let bin = layout.bin();
    files::mkdir(&bin)?;
    link_or_copy(
        &programs.path("minikube", "minikube")?,
        &bin.join("minikube"),
    )?;
    // kubectl of the cluster's own release first on PATH (the preinstalled one may be older).
    link_or_copy(
        &programs.path("kubernetes", "kubectl")?,
        &bin.join("kubectl"),
    )?;
    let helm = crate::upstream::helm::ensure(&layout.cache)?;
    link_or_copy(&helm, &bin.join("helm"))?;
    let k8s = layout
        .minikube_home()
        .join("cache")
        .join("linux")
        .join("amd64")
        .join(KUBERNETES_VERSION);
    files::mkdir(&k8s)?;
    for program in ["kubeadm", "kubelet", "kubectl"] {
        link_or_copy(&programs.path("kubernetes", program)?, &k8s.join(program))?;
    }
    let manifest = include_str!("../../kit/flannel.yaml")
        .replace("@FLANNEL_IMAGE@", &images.flannel.to_string());
    files::write(&layout.cni_manifest(), manifest)?;
    files::write(
        &layout.prometheus_values(),
        include_str!("../../kit/prometheus-values.yaml"),
    )?;
    Ok(())
}
