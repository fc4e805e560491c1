//! Preflight: every tool kscale drives is present at a minimum version, and the Docker daemon
//! answers. All problems are reported at once, before anything changes.

use crate::tools::version::{self, Version};
use crate::tools::{Cmd, Runner, ToolError, install_hint};

/// A tool kscale may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// minikube.
    Minikube,
    /// helm 3 or 4.
    Helm,
    /// kubectl.
    Kubectl,
    /// Docker CLI and daemon.
    Docker,
}

impl Tool {
    fn program(self) -> &'static str {
        match self {
            Tool::Minikube => "minikube",
            Tool::Helm => "helm",
            Tool::Kubectl => "kubectl",
            Tool::Docker => "docker",
        }
    }

    fn version_cmd(self) -> Cmd {
        match self {
            Tool::Minikube => Cmd::new("minikube").args(["version", "--short"]),
            Tool::Helm => Cmd::new("helm").args(["version", "--short"]),
            Tool::Kubectl => Cmd::new("kubectl").args(["version", "--client", "-o", "json"]),
            Tool::Docker => Cmd::new("docker").arg("--version"),
        }
    }

    fn minimum(self) -> Version {
        match self {
            Tool::Minikube => version::MIN_MINIKUBE,
            Tool::Helm => version::MIN_HELM,
            Tool::Kubectl => version::MIN_KUBECTL,
            Tool::Docker => version::MIN_DOCKER,
        }
    }
}

/// Versions found by preflight (`None` in dry-run).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Versions {
    /// minikube.
    pub minikube: Option<String>,
    /// helm.
    pub helm: Option<String>,
    /// kubectl.
    pub kubectl: Option<String>,
    /// Docker daemon.
    pub docker: Option<String>,
    #[serde(skip)]
    helm_version: Option<Version>,
}

impl Versions {
    /// The helm version (decides its flag dialect).
    pub fn helm_version(&self) -> Option<Version> {
        self.helm_version
    }
}

/// Checks `tools`; one error lists every problem with its fix.
pub fn check(runner: &Runner, tools: &[Tool]) -> anyhow::Result<Versions> {
    let mut found = Versions::default();
    let mut problems = Vec::new();
    for &tool in tools {
        let program = tool.program();
        let out = match runner.probe(&tool.version_cmd()) {
            Ok(Some(out)) => out,
            Ok(None) => continue,
            Err(ToolError::NotFound { .. }) => {
                problems.push(format!(
                    "{program} is not installed: {}",
                    install_hint(program)
                ));
                continue;
            }
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let text = format!("{}{}", out.stdout, out.stderr);
        let Some(v) = Version::find(&text).filter(|_| out.success()) else {
            problems.push(format!(
                "cannot tell the version of {program} (`{}` printed {:?})",
                tool.version_cmd(),
                crate::tools::tail(text.trim(), 3)
            ));
            continue;
        };
        if v < tool.minimum() {
            problems.push(format!(
                "{program} {v} is too old: kscale needs {} or newer; {}",
                tool.minimum(),
                install_hint(program)
            ));
            continue;
        }
        match tool {
            Tool::Minikube => found.minikube = Some(v.to_string()),
            Tool::Helm => {
                found.helm = Some(v.to_string());
                found.helm_version = Some(v);
            }
            Tool::Kubectl => found.kubectl = Some(v.to_string()),
            Tool::Docker => match crate::tools::docker::Docker::new(runner).server_version() {
                Ok(server) => found.docker = server,
                Err(e) => problems.push(format!("the Docker daemon does not answer: {e}")),
            },
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        anyhow::bail!(
            "preflight failed, nothing was changed:\n{}",
            problems
                .iter()
                // Multi-line problems (stderr tails, hints) stay indented under their bullet.
                .map(|p| format!("  - {}", p.replace('\n', "\n    ")))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}
