//! The monitoring stack: kube-prometheus-stack and prometheus-adapter as pinned helm releases,
//! installed or upgraded only when their chart version or values changed, and the external
//! metrics APIService waited for.

use std::time::Duration;

use anyhow::Context as _;

use crate::config::Config;
use crate::config::sources;
use crate::kubeapi::{self, EXTERNAL_METRICS_APISERVICE};
use crate::render::RenderedFile;
use crate::session::{Session, blocking};
use crate::tools::helm::{Helm, ReleaseState};
use crate::tools::version::Version;

/// One helm release kscale manages.
#[derive(Debug, Clone)]
pub struct ReleaseSpec {
    /// Release name.
    pub release: String,
    /// Chart name in the repository.
    pub chart: &'static str,
    /// Pinned chart version.
    pub version: String,
    /// Rendered values file name.
    pub values_file: &'static str,
}

/// kube-prometheus-stack then prometheus-adapter (the adapter needs the stack's Prometheus).
pub fn releases(cfg: &Config) -> [ReleaseSpec; 2] {
    let m = &cfg.monitoring;
    [
        ReleaseSpec {
            release: m.prometheus_release.clone(),
            chart: "kube-prometheus-stack",
            version: m.prometheus_chart_version.clone(),
            values_file: crate::render::file::PROMETHEUS_VALUES,
        },
        ReleaseSpec {
            release: m.adapter_release.clone(),
            chart: "prometheus-adapter",
            version: m.adapter_chart_version.clone(),
            values_file: crate::render::file::PROMETHEUS_ADAPTER,
        },
    ]
}

/// What happened to a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseAction {
    /// Installed or upgraded.
    Installed,
    /// Already at this chart version with these values.
    Unchanged,
    /// Not installed, and not ours to install here (`deploy`).
    Missing,
}

/// What `sync_release` does with a release that is not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Install it (`up`).
    Install,
    /// Report it as [`ReleaseAction::Missing`] (`deploy`, which owns no helm release).
    Report,
}

fn values_of<'f>(files: &'f [RenderedFile], name: &str) -> anyhow::Result<&'f RenderedFile> {
    files
        .iter()
        .find(|f| f.name == name)
        .with_context(|| format!("{name} was not rendered"))
}

/// Adds the chart repository when it is missing (not needed with `monitoring.chart_source`).
pub fn ensure_repo(s: &Session, helm: &Helm) -> anyhow::Result<()> {
    let m = &s.cfg.monitoring;
    let needed = releases(&s.cfg)
        .iter()
        .any(|r| sources::chart_ref(&s.cfg, r.chart, &r.version).needs_repository());
    if !needed {
        return Ok(());
    }
    if blocking(|| helm.has_repo(&m.repo_name))? != Some(true) {
        let step = s.ui.step(&format!("helm repository {}", m.repo_name));
        blocking(|| helm.add_repo(&m.repo_name, &m.repo_url))?;
        step.done("added");
    }
    Ok(())
}

/// Installs or upgrades one release when its chart version or values differ from the rendered
/// ones; a missing release is installed or reported, as `if_missing` says.
pub fn sync_release(
    s: &Session,
    helm: &Helm,
    spec: &ReleaseSpec,
    files: &[RenderedFile],
    if_missing: IfMissing,
) -> anyhow::Result<ReleaseAction> {
    let ns = &s.cfg.monitoring.namespace;
    let step = s.ui.step(&format!(
        "helm release {} ({} {})",
        spec.release, spec.chart, spec.version
    ));
    let rendered = values_of(files, spec.values_file)?;
    let mut want: serde_json::Value = crate::manifest::parse_yaml(&rendered.content)?;
    // The user's values file goes on top, as helm layers `-f` files; `helm get values` returns
    // the merged result, so the comparison below sees a changed extra file too.
    let extra = sources::extra_values(&s.cfg, spec.chart);
    if let Some(path) = extra {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        let over: serde_json::Value = crate::manifest::parse_yaml(&text)
            .with_context(|| format!("{path} is not valid YAML"))?;
        if !over.is_null() {
            sources::merge_values(&mut want, over);
        }
    }
    let current = blocking(|| helm.release(&spec.release, ns))?;
    if let Some(ReleaseState::Present(rel)) = &current
        && rel.status == "deployed"
        && rel.chart == format!("{}-{}", spec.chart, spec.version)
        && blocking(|| helm.values(&spec.release, ns))?.as_ref() == Some(&want)
    {
        step.done("unchanged");
        return Ok(ReleaseAction::Unchanged);
    }
    if current == Some(ReleaseState::Absent) && if_missing == IfMissing::Report {
        step.fail("not installed");
        return Ok(ReleaseAction::Missing);
    }
    let dir = tempfile::tempdir().context("cannot create a temporary directory for helm values")?;
    let path = dir.path().join(spec.values_file);
    std::fs::write(&path, &rendered.content)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if s.runner.dry_run() {
        s.ui.plan(&format!(
            "values for release {} ({}):",
            spec.release, spec.values_file
        ));
        s.ui.plan(&rendered.content);
    }
    let chart = sources::chart_ref(&s.cfg, spec.chart, &spec.version);
    let timeout = Duration::from_secs(s.cfg.timeouts.helm_seconds);
    let mut value_files = vec![path.as_path()];
    if let Some(extra) = extra {
        value_files.push(std::path::Path::new(extra));
    }
    step.progress("helm upgrade --install --wait");
    match blocking(|| {
        helm.upgrade_install(
            &spec.release,
            &chart,
            &spec.version,
            ns,
            &value_files,
            timeout,
        )
    }) {
        Ok(()) => {
            step.done(if matches!(current, Some(ReleaseState::Present(_))) {
                "upgraded"
            } else {
                "installed"
            });
            Ok(ReleaseAction::Installed)
        }
        Err(e) => {
            step.fail("helm failed");
            Err(e.into())
        }
    }
}

/// A helm client speaking the dialect of the installed helm.
pub fn helm<'a>(s: &'a Session, version: Option<Version>) -> Helm<'a> {
    Helm::new(&s.runner, &s.context, version)
}

/// Waits until the external metrics APIService is Available.
pub async fn wait_apiservice(s: &Session, client: &kube::Client) -> anyhow::Result<()> {
    let step =
        s.ui.step(&format!("APIService {EXTERNAL_METRICS_APISERVICE}"));
    let deadline = Duration::from_secs(s.cfg.timeouts.apiservice_seconds);
    match kubeapi::wait_until(
        EXTERNAL_METRICS_APISERVICE,
        deadline,
        Duration::from_secs(3),
        || kubeapi::apiservice_unavailable(client, EXTERNAL_METRICS_APISERVICE),
    )
    .await
    {
        Ok(()) => {
            step.done("Available");
            Ok(())
        }
        Err(e) => {
            step.fail("not Available");
            Err(e.context(format!(
                "hint: FailedDiscoveryCheck usually means the adapter pod is not ready yet or cannot reach Prometheus; \
                 check `kubectl -n {} logs deploy/{}`",
                s.cfg.monitoring.namespace, s.cfg.monitoring.adapter_release
            )))
        }
    }
}
