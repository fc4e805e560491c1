//! helm: chart repository and releases. Supports helm 3 and helm 4, whose `--wait` differs.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::version::Version;
use super::{Cmd, Runner, ToolError, unreadable};
use crate::config::sources::ChartRef;

/// A release as `helm list -o json` shows it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Release {
    /// Release name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// `deployed`, `failed`, `pending-install`…
    pub status: String,
    /// `<chart>-<version>`.
    pub chart: String,
}

/// What `helm list` knows about one release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseState {
    /// Not installed.
    Absent,
    /// Installed, in some status.
    Present(Release),
}

/// The helm program, bound to a kube context.
pub struct Helm<'a> {
    runner: &'a Runner,
    context: String,
    major: u64,
}

impl<'a> Helm<'a> {
    /// helm commands against `context`; `version` decides the flag dialect.
    pub fn new(runner: &'a Runner, context: &str, version: Option<Version>) -> Self {
        Self {
            runner,
            context: context.to_string(),
            major: version.map_or(3, |v| v.major),
        }
    }

    fn cmd(&self) -> Cmd {
        Cmd::new("helm").args(["--kube-context", &self.context])
    }

    /// Whether a repository named `name` is configured; `None` in dry-run.
    pub fn has_repo(&self, name: &str) -> Result<Option<bool>, ToolError> {
        let cmd = Cmd::new("helm").args(["repo", "list", "-o", "json"]);
        let Some(out) = self.runner.probe(&cmd)? else {
            return Ok(None);
        };
        // helm exits 1 with "no repositories to show" when none is configured.
        if !out.success() {
            return Ok(Some(false));
        }
        // A format change must fail with what helm said, not read as "no such repository".
        let repos: Vec<serde_json::Value> =
            serde_json::from_str(&out.stdout).map_err(|e| unreadable(&cmd, &out, "JSON", &e))?;
        Ok(Some(repos.iter().any(|r| r["name"].as_str() == Some(name))))
    }

    /// Adds a chart repository and refreshes its index.
    pub fn add_repo(&self, name: &str, url: &str) -> Result<(), ToolError> {
        let hint = "check the network connection and the repository URL (monitoring.repo_url)";
        self.runner
            .run(&Cmd::new("helm").args(["repo", "add", name, url]).hint(hint))?;
        self.runner
            .run(&Cmd::new("helm").args(["repo", "update", name]).hint(hint))
            .map(drop)
    }

    /// The release `name` in `namespace`, if installed; `None` in dry-run.
    pub fn release(&self, name: &str, namespace: &str) -> Result<Option<ReleaseState>, ToolError> {
        let cmd = self.cmd().args([
            "list",
            "-n",
            namespace,
            // Every status, spelled so both helm 3 (`-a`) and helm 4 (no `-a`, all by default)
            // accept it: a pending or failed release must be seen, not reinstalled over.
            "--deployed",
            "--failed",
            "--pending",
            "--superseded",
            "--uninstalling",
            "-o",
            "json",
            "--filter",
            &format!("^{name}$"),
        ]);
        let Some(out) = self.runner.probe(&cmd)? else {
            return Ok(None);
        };
        if !out.success() {
            return Err(super::failed(&cmd, &out));
        }
        let releases: Vec<Release> =
            serde_json::from_str(&out.stdout).map_err(|e| unreadable(&cmd, &out, "JSON", &e))?;
        Ok(Some(match releases.into_iter().find(|r| r.name == name) {
            Some(r) => ReleaseState::Present(r),
            None => ReleaseState::Absent,
        }))
    }

    /// The user-supplied values of a release (`helm get values -o yaml`), parsed; `None` in
    /// dry-run. Compared semantically, since helm re-serializes them (sorted keys, no comments).
    pub fn values(
        &self,
        name: &str,
        namespace: &str,
    ) -> Result<Option<serde_json::Value>, ToolError> {
        let cmd = self
            .cmd()
            .args(["get", "values", name, "-n", namespace, "-o", "yaml"]);
        let Some(out) = self.runner.probe(&cmd)? else {
            return Ok(None);
        };
        if !out.success() {
            return Err(super::failed(&cmd, &out));
        }
        let values = crate::manifest::parse_yaml(&out.stdout)
            .map_err(|e| unreadable(&cmd, &out, "YAML", e.as_ref()))?;
        Ok(Some(values))
    }

    /// `helm upgrade --install` with a pinned chart version, values files (later ones win), a
    /// wait and a deadline. A packaged chart file carries its version in itself: no `--version`.
    pub fn upgrade_install(
        &self,
        release: &str,
        chart: &ChartRef,
        version: &str,
        namespace: &str,
        values: &[&Path],
        timeout: Duration,
    ) -> Result<(), ToolError> {
        // helm 4 turned `--wait` into a strategy flag; `watcher` is its kstatus-based wait.
        let wait = if self.major >= 4 {
            "--wait=watcher"
        } else {
            "--wait"
        };
        let mut cmd = self
            .cmd()
            .args(["upgrade", "--install", release, &chart.arg()]);
        if !matches!(chart, ChartRef::File(_)) {
            cmd = cmd.args(["--version", version]);
        }
        cmd = cmd.args(["-n", namespace, "--create-namespace"]);
        for file in values {
            cmd = cmd.arg("-f").arg(file.display().to_string());
        }
        let cmd = cmd
            .arg(wait)
            .args(["--timeout", &format!("{}s", timeout.as_secs())])
            .timeout(timeout + Duration::from_secs(60))
            .hint(format!(
                "inspect with `helm status {release} -n {namespace}` and `kubectl get pods -n {namespace}`; \
                 a release stuck in pending-* can be cleared with `helm rollback` or `helm uninstall`"
            ));
        self.runner.run(&cmd).map(drop)
    }

    /// Uninstalls a release; `Ok(false)` when there was nothing to uninstall.
    pub fn uninstall(
        &self,
        release: &str,
        namespace: &str,
        timeout: Duration,
    ) -> Result<bool, ToolError> {
        let cmd = self
            .cmd()
            .args([
                "uninstall",
                release,
                "-n",
                namespace,
                "--wait",
                "--timeout",
                &format!("{}s", timeout.as_secs()),
            ])
            .timeout(timeout + Duration::from_secs(30));
        match self.runner.run(&cmd) {
            Ok(_) => Ok(true),
            Err(ToolError::Failed { stderr_tail, .. }) if stderr_tail.contains("not found") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
