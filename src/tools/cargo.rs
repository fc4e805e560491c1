//! cargo: the server built on the host as a static binary, for images `FROM scratch` that need
//! no Rust base image from a registry.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Cmd, Runner, ToolError};

/// The target whose static build runs in a scratch image. glibc with `crt-static` rather than
/// musl: the musl target is often not installed, and rustup may not reach the network.
pub const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The cargo profile of the image's server (`[profile.image]` of the workspace: release
/// optimizations, incremental, no LTO, so a rebuild after a small change takes seconds).
pub const IMAGE_PROFILE: &str = "image";

/// The cargo program.
pub struct Cargo<'a> {
    runner: &'a Runner,
}

impl<'a> Cargo<'a> {
    /// cargo commands.
    pub fn new(runner: &'a Runner) -> Self {
        Self { runner }
    }

    /// Builds `kscale-server` of the workspace at `source` statically, in a target folder of its
    /// own (its RUSTFLAGS must not invalidate the usual build), incrementally; returns the binary.
    pub fn build_static_server(&self, source: &Path) -> Result<PathBuf, ToolError> {
        let target_dir = source.join("target").join("kscale-server-image");
        let cmd = Cmd::new("cargo")
            .args(["build", "--profile", IMAGE_PROFILE, "--locked", "-p", "kscale-server", "--target", STATIC_TARGET])
            .arg("--manifest-path")
            .arg(source.join("Cargo.toml").display().to_string())
            .arg("--target-dir")
            .arg(target_dir.display().to_string())
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .timeout(Duration::from_secs(self.runner.timeouts().build_seconds))
            .hint("the compiler output above names the problem; `cargo build -p kscale-server` reproduces it (or set app.image_build = \"dockerfile\")");
        self.runner.run(&cmd)?;
        Ok(target_dir
            .join(STATIC_TARGET)
            .join(IMAGE_PROFILE)
            .join("kscale-server"))
    }
}
