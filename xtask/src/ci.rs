//! `cargo xtask ci`: the whole test gate, the same on a laptop and in CI.

use crate::{deps, run};

/// fmt check, clippy with `-D warnings` over every target, then every test of the workspace.
pub fn ci(_args: &[String]) -> anyhow::Result<()> {
    deps::ensure_test_deps()?;
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // Release binaries are what the benches and the pipeline tests drive; build them once here.
    run("cargo", &["build", "--workspace", "--locked"])?;
    run(
        "cargo",
        &["test", "--workspace", "--locked", "--no-fail-fast"],
    )?;
    Ok(())
}
