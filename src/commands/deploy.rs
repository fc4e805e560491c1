//! `kscale deploy`: image, adapter rules, app objects, rollout, on the current cluster.

use crate::app::{self, DeployReport};
use crate::cli::DeployArgs;
use crate::monitoring::{self, IfMissing, ReleaseAction};
use crate::preflight::{self, Tool};
use crate::session::Session;

/// `kscale deploy`: runs it and reports the result.
pub async fn exec(s: &Session, args: &DeployArgs) -> anyhow::Result<u8> {
    let report = run(s, args).await?;
    s.ui.result_json(&serde_json::to_value(&report)?);
    print(s, &report);
    Ok(super::SUCCESS)
}

/// Deploys the app to the session's cluster.
pub async fn run(s: &Session, args: &DeployArgs) -> anyhow::Result<DeployReport> {
    app::check_deployable(&s.cfg, s.minikube)?;
    let mut tools = vec![Tool::Helm];
    if args.image.image.is_none() || s.minikube {
        tools.push(Tool::Docker);
    }
    if s.minikube {
        tools.push(Tool::Minikube);
    }
    let versions = preflight::check(&s.runner, &tools)?;
    let client = if s.runner.dry_run() {
        None
    } else {
        Some(s.client().await?)
    };
    let report = deploy(
        s,
        client.as_ref(),
        &args.image,
        versions.helm_version(),
        Adapter::Sync,
    )
    .await?;
    Ok(report)
}

/// Whether the deploy steps sync the adapter's release (its rules follow the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// Sync it, reporting it when missing (`deploy`).
    Sync,
    /// The caller has just synced it (`up`).
    SyncedByCaller,
}

/// The deploy steps, shared with `up`.
pub async fn deploy(
    s: &Session,
    client: Option<&kube::Client>,
    image: &crate::cli::ImageArgs,
    helm_version: Option<crate::tools::version::Version>,
    adapter: Adapter,
) -> anyhow::Result<DeployReport> {
    let (image_ref, built) = app::provide_image(s, image)?;
    let files = s.render(&image_ref)?;
    let adapter = if adapter == Adapter::SyncedByCaller {
        None
    } else {
        let helm = monitoring::helm(s, helm_version);
        let [_, adapter_spec] = monitoring::releases(&s.cfg);
        let action = monitoring::sync_release(s, &helm, &adapter_spec, &files, IfMissing::Report)?;
        if action == ReleaseAction::Missing {
            s.ui.warn(&format!(
                "prometheus-adapter is not installed in namespace {}: the HPA reports FailedGetExternalMetric until `kscale up` installs it",
                s.cfg.monitoring.namespace
            ));
        }
        Some(action)
    };
    let objects = app::apply_and_roll_out(s, client, &files).await?;
    Ok(DeployReport {
        image: image_ref,
        built,
        objects,
        adapter,
    })
}

/// Prints a deploy report.
pub fn print(s: &Session, r: &DeployReport) {
    s.ui.result(&format!(
        "image: {}{}",
        r.image,
        if r.built { " (built)" } else { "" }
    ));
    for (what, applied) in &r.objects {
        s.ui.result(&format!(
            "{what}: {}",
            serde_json::to_value(applied)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        ));
    }
}
