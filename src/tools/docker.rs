//! docker: the daemon check, image builds and pushes.

use std::path::Path;
use std::time::Duration;

use super::{Cmd, Runner, ToolError};

/// Which docker builder runs a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// BuildKit: cache mounts and parallel stages; needs the buildx plugin in recent CLIs.
    BuildKit,
    /// The classic builder: enough for `FROM scratch` + `COPY`, works with any engine.
    Classic,
}

/// The docker program.
pub struct Docker<'a> {
    runner: &'a Runner,
}

impl<'a> Docker<'a> {
    /// docker commands.
    pub fn new(runner: &'a Runner) -> Self {
        Self { runner }
    }

    /// The daemon's version; an error that says how to start it when it does not answer.
    pub fn server_version(&self) -> Result<Option<String>, ToolError> {
        let cmd = Cmd::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .hint("start the Docker daemon (Docker Desktop, or `sudo systemctl start docker`) and check that your user may use it");
        let Some(out) = self.runner.probe(&cmd)? else {
            return Ok(None);
        };
        if !out.success() {
            return Err(super::failed(&cmd, &out));
        }
        Ok(Some(out.stdout.trim().to_string()))
    }

    /// Whether `image` exists locally; `None` in dry-run.
    pub fn image_exists(&self, image: &str) -> Result<Option<bool>, ToolError> {
        let cmd = Cmd::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]);
        Ok(self.runner.probe(&cmd)?.map(|o| o.success()))
    }

    /// Builds `dockerfile` with `context` as `image`. BuildKit for the multi-stage Dockerfile
    /// (cache mounts, parallel stages); the classic builder for a `FROM scratch` + `COPY` one,
    /// which works with any engine and CLI (the docker CLI without the buildx plugin refuses
    /// BuildKit).
    pub fn build(
        &self,
        dockerfile: &Path,
        context: &Path,
        image: &str,
        builder: Builder,
    ) -> Result<(), ToolError> {
        let cmd = Cmd::new("docker")
            .args(["build", "-f", &dockerfile.display().to_string(), "-t", image, &context.display().to_string()])
            .env(
                "DOCKER_BUILDKIT",
                match builder {
                    Builder::BuildKit => "1",
                    Builder::Classic => "0",
                },
            )
            .timeout(Duration::from_secs(self.runner.timeouts().build_seconds))
            .hint("the build log above says which step failed; `docker build -f server/Dockerfile .` reproduces it");
        self.runner.run(&cmd).map(drop)
    }

    /// Tags `image` as `target` and pushes it.
    pub fn push(&self, image: &str, target: &str) -> Result<(), ToolError> {
        self.runner
            .run(&Cmd::new("docker").args(["tag", image, target]))?;
        let cmd = Cmd::new("docker")
            .args(["push", target])
            .timeout(Duration::from_secs(self.runner.timeouts().image_push_seconds))
            .hint("log in to the registry first (`docker login REGISTRY`) and check the --registry value");
        self.runner.run(&cmd).map(drop)
    }
}
