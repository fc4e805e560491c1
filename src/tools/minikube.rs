//! minikube: the local cluster (profile), its addons and its images.

use std::time::Duration;

use serde::Deserialize;

use super::{Cmd, Runner, ToolError};
use crate::config::ClusterConfig;

/// The label minikube's docker driver puts on what it creates for a profile.
const NETWORK_LABEL: &str = "name.minikube.sigs.k8s.io";

/// What minikube knows about a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileState {
    /// No such profile.
    Absent,
    /// The profile exists; `status` is minikube's word for it (Running, Stopped, Starting, Error…).
    Present {
        /// minikube's status word.
        status: String,
        /// Number of nodes in the profile.
        nodes: usize,
    },
}

/// `minikube profile list -o json`. `valid` is required: a document without it is another
/// format (or minikube's error document), not an empty list.
#[derive(Debug, Deserialize)]
struct ProfileList {
    valid: Vec<Profile>,
    #[serde(default)]
    invalid: Vec<Profile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Profile {
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    config: Option<ProfileConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProfileConfig {
    #[serde(default)]
    nodes: Vec<serde_json::Value>,
}

/// The minikube program.
pub struct Minikube<'a> {
    runner: &'a Runner,
    profile: String,
}

impl<'a> Minikube<'a> {
    /// minikube commands on `profile`.
    pub fn new(runner: &'a Runner, profile: &str) -> Self {
        Self {
            runner,
            profile: profile.to_string(),
        }
    }

    fn cmd(&self) -> Cmd {
        Cmd::new("minikube")
    }

    /// The state of the profile; `None` in dry-run.
    pub fn profile_state(&self) -> Result<Option<ProfileState>, ToolError> {
        let cmd = self.cmd().args(["profile", "list", "-o", "json"]);
        let Some(out) = self.runner.probe(&cmd)? else {
            return Ok(None);
        };
        // With no profile at all minikube exits non-zero and prints an error document instead.
        let Ok(list) = serde_json::from_str::<ProfileList>(&out.stdout) else {
            if out.success() {
                return Err(super::failed(
                    &cmd.hint("minikube printed something kscale cannot read; run it yourself"),
                    &out,
                ));
            }
            return Ok(Some(ProfileState::Absent));
        };
        let found = list
            .valid
            .into_iter()
            .chain(list.invalid)
            .find(|p| p.name == self.profile);
        Ok(Some(match found {
            None => ProfileState::Absent,
            Some(p) => ProfileState::Present {
                status: p.status,
                nodes: p.config.map_or(0, |c| c.nodes.len()),
            },
        }))
    }

    /// Creates and starts the profile; `extra` are the flags of [`crate::config::sources`].
    pub fn create(
        &self,
        c: &ClusterConfig,
        extra: &[String],
        timeout: Duration,
    ) -> Result<(), ToolError> {
        let mut cmd = self.cmd().args([
            "start",
            "-p",
            &self.profile,
            "--nodes",
            &c.nodes.to_string(),
            "--memory",
            &c.memory_mb.to_string(),
            "--cpus",
            &c.cpus.to_string(),
            "--driver",
            &c.driver,
            "--wait",
            "all",
            "--wait-timeout",
            &format!("{}s", timeout.as_secs()),
        ]);
        if !c.kubernetes_version.is_empty() {
            cmd = cmd.arg("--kubernetes-version").arg(&c.kubernetes_version);
        }
        for flag in extra {
            cmd = cmd.arg(flag);
        }
        let cmd = cmd
            .timeout(timeout + Duration::from_secs(60))
            .hint("see `minikube logs -p PROFILE`; with the docker driver, check that Docker has enough memory for every node");
        self.runner.run(&cmd).map(drop)
    }

    /// Starts a stopped profile with its existing settings.
    pub fn start(&self, timeout: Duration) -> Result<(), ToolError> {
        let cmd = self
            .cmd()
            .args([
                "start",
                "-p",
                &self.profile,
                "--wait",
                "all",
                "--wait-timeout",
                &format!("{}s", timeout.as_secs()),
            ])
            .timeout(timeout + Duration::from_secs(60))
            .hint("see `minikube logs -p PROFILE`");
        self.runner.run(&cmd).map(drop)
    }

    /// Whether an addon is enabled; `None` in dry-run.
    pub fn addon_enabled(&self, addon: &str) -> Result<Option<bool>, ToolError> {
        let cmd = self
            .cmd()
            .args(["addons", "list", "-p", &self.profile, "-o", "json"]);
        let Some(out) = self.runner.probe(&cmd)? else {
            return Ok(None);
        };
        if !out.success() {
            return Err(super::failed(&cmd, &out));
        }
        // A format change must fail with what minikube said, not read as "addon disabled".
        let v: serde_json::Value = serde_json::from_str(&out.stdout)
            .map_err(|e| super::unreadable(&cmd, &out, "JSON", &e))?;
        let status = v[addon]["Status"].as_str().ok_or_else(|| {
            super::unreadable(
                &cmd,
                &out,
                "JSON",
                &std::io::Error::other(format!("no {addon}.Status")),
            )
        })?;
        Ok(Some(status == "enabled"))
    }

    /// Enables an addon; `flags` such as `--images=...` select other images.
    pub fn enable_addon(&self, addon: &str, flags: &[String]) -> Result<(), ToolError> {
        let mut cmd = self
            .cmd()
            .args(["addons", "enable", addon, "-p", &self.profile]);
        for flag in flags {
            cmd = cmd.arg(flag);
        }
        let cmd = cmd
            .timeout(Duration::from_secs(self.runner.timeouts().addon_seconds))
            .hint("see `minikube addons list -p PROFILE` and `kubectl -n kube-system get pods`");
        self.runner.run(&cmd).map(drop)
    }

    /// Loads a local image into every node (works on multi-node clusters, unlike `docker-env`).
    pub fn image_load(&self, image: &str) -> Result<(), ToolError> {
        let cmd = self
            .cmd()
            .args(["image", "load", image, "-p", &self.profile])
            .timeout(Duration::from_secs(
                self.runner.timeouts().image_load_seconds,
            ))
            .hint("check free disk space in the minikube nodes (`minikube ssh -p PROFILE df -h`)");
        self.runner.run(&cmd).map(drop)
    }

    /// Images present in the cluster (`minikube image ls`); `None` in dry-run.
    pub fn image_list(&self) -> Result<Option<Vec<String>>, ToolError> {
        let cmd = self.cmd().args(["image", "ls", "-p", &self.profile]);
        let Some(out) = self.runner.probe(&cmd)? else {
            return Ok(None);
        };
        if !out.success() {
            return Err(super::failed(&cmd, &out));
        }
        Ok(Some(
            out.stdout
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
        ))
    }

    /// Deletes the profile and everything in it. With the docker driver, minikube v1.37 can
    /// return success and leave the profile's Docker network behind (its removal races the
    /// containers' and is not retried); a second delete removes it, and a network that survives
    /// that is an error naming the command that removes it.
    pub fn delete(&self) -> Result<(), ToolError> {
        let cmd = self
            .cmd()
            .args(["delete", "-p", &self.profile])
            .timeout(Duration::from_secs(self.runner.timeouts().delete_seconds));
        self.runner.run(&cmd)?;
        if self.networks_left()?.is_empty() {
            return Ok(());
        }
        self.runner.run(&cmd)?;
        let left = self.networks_left()?;
        if left.is_empty() {
            return Ok(());
        }
        Err(ToolError::Failed {
            command: cmd.to_string(),
            code: Some(0),
            stderr_tail: format!(
                "the profile's Docker network is still there: {}",
                left.join(", ")
            ),
            hint: Some(format!(
                "remove it with `docker network rm {}`",
                left.join(" ")
            )),
        })
    }

    /// Docker networks labelled with this profile. Empty when Docker is not installed or does
    /// not answer (another driver; nothing of the profile can be in it then), and in dry-run.
    fn networks_left(&self) -> Result<Vec<String>, ToolError> {
        if self.runner.dry_run() || self.runner.which("docker").is_none() {
            return Ok(Vec::new());
        }
        let cmd = Cmd::new("docker")
            .args(["network", "ls", "--format", "{{.Name}}", "--filter"])
            .arg(format!("label={NETWORK_LABEL}={}", self.profile));
        let Some(out) = self.runner.probe(&cmd)? else {
            return Ok(Vec::new());
        };
        if !out.success() {
            return Ok(Vec::new());
        }
        Ok(out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_minikube_profile_list() {
        let text = r#"{"invalid":[],"valid":[{"Name":"kscale","Status":"Running","Config":{"Name":"kscale","Nodes":[{"Name":"","ControlPlane":true},{"Name":"m02","ControlPlane":false}]},"Active":false}]}"#;
        let list: ProfileList = serde_json::from_str(text).expect("parses");
        assert_eq!(list.valid[0].name, "kscale");
        assert_eq!(
            list.valid[0].config.as_ref().map(|c| c.nodes.len()),
            Some(2)
        );
        // Another shape is not "no profile".
        assert!(serde_json::from_str::<ProfileList>(r#"{"profiles":[]}"#).is_err());
    }
}
