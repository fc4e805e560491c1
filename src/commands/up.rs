//! `kscale up`: from nothing to an autoscaling inference service, idempotently.

use super::deploy::Adapter;
use crate::cli::UpArgs;
use crate::cluster::{self, ClusterAction};
use crate::manifest;
use crate::monitoring::{self, IfMissing, ReleaseAction};
use crate::preflight::{self, Tool, Versions};
use crate::session::Session;

/// What `up` did, for the summary and `--output json`.
#[derive(Debug, serde::Serialize)]
pub struct UpReport {
    /// Tool versions found.
    pub versions: Versions,
    /// What happened to the cluster (`None` with `--context`).
    pub cluster: Option<ClusterAction>,
    /// What happened to each helm release.
    pub releases: Vec<(String, ReleaseAction)>,
    /// The deploy step.
    pub deploy: crate::app::DeployReport,
    /// The end-to-end metric check (`None` in dry-run).
    pub metrics: Option<crate::metrics::MetricsReport>,
    /// How to reach each part.
    pub access: Vec<(String, String)>,
}

/// `kscale up`: runs it and reports the result.
pub async fn exec(s: &Session, args: &UpArgs) -> anyhow::Result<u8> {
    let report = run(s, args).await?;
    s.ui.result_json(&serde_json::to_value(&report)?);
    print(s, &report);
    Ok(super::SUCCESS)
}

/// Runs every step; stops at the first failure with what failed and how to fix it.
pub async fn run(s: &Session, args: &UpArgs) -> anyhow::Result<UpReport> {
    crate::app::check_deployable(&s.cfg, s.minikube)?;
    let mut tools = vec![Tool::Helm, Tool::Kubectl];
    if s.minikube {
        tools.insert(0, Tool::Minikube);
    }
    if crate::app::chosen_image(&s.cfg, args.image.image.as_deref()).is_none() || s.minikube {
        tools.push(Tool::Docker);
    }
    let step = s.ui.step("preflight: tools and versions");
    let versions = match preflight::check(&s.runner, &tools) {
        Ok(v) => {
            step.done(&summary(&v));
            v
        }
        Err(e) => {
            step.fail("missing or too old");
            return Err(e);
        }
    };

    let cluster = if s.minikube {
        Some(cluster::ensure(s)?)
    } else {
        None
    };
    let client = if s.runner.dry_run() {
        None
    } else {
        Some(s.client().await?)
    };
    if s.minikube {
        cluster::enable_metrics_server(s)?;
    }

    // The scrape job Secret must exist before the Prometheus it configures.
    let image_hint = crate::app::chosen_image(&s.cfg, args.image.image.as_deref())
        .unwrap_or_else(|| "kscale-server:pending".into());
    let files = s.render(&image_hint)?;
    let step = s.ui.step("monitoring namespace and scrape job");
    let applier = client.as_ref().map(|c| s.applier(c));
    for name in [
        crate::render::file::MONITORING_NAMESPACE,
        crate::render::file::SCRAPE_CONFIG_SECRET,
    ] {
        let f = files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| anyhow::anyhow!("{name} was not rendered"))?;
        let obj = manifest::object_from_yaml(&f.content)?;
        match &applier {
            Some(a) => {
                a.apply(&obj).await?;
            }
            None => {
                s.ui.plan(&format!("apply {}:", manifest::describe(&obj)));
                s.ui.plan(&f.content);
            }
        }
    }
    step.done("applied");

    let helm = monitoring::helm(s, versions.helm_version());
    monitoring::ensure_repo(s, &helm)?;
    let mut releases = Vec::new();
    for spec in monitoring::releases(&s.cfg) {
        let action = monitoring::sync_release(s, &helm, &spec, &files, IfMissing::Install)?;
        releases.push((spec.release.clone(), action));
    }
    if let Some(c) = &client {
        monitoring::wait_apiservice(s, c).await?;
    }

    let deploy = super::deploy::deploy(
        s,
        client.as_ref(),
        &args.image,
        versions.helm_version(),
        Adapter::SyncedByCaller,
    )
    .await?;

    // metrics-server has been starting since it was enabled; nothing before needed it.
    if let (true, Some(c)) = (s.minikube, &client) {
        cluster::wait_metrics_server(s, c).await?;
    }

    // Last, prove the chain end to end. Right after a deploy the adapter has not listed the new
    // series yet, so the check retries until its deadline.
    let metrics = match &client {
        None => {
            s.ui.plan("check every link of the metric chain (kscale metrics --wait)");
            None
        }
        Some(client) => {
            let wait = args.wait.unwrap_or(std::time::Duration::from_secs(
                s.cfg.timeouts.metric_seconds,
            ));
            let step = s.ui.step("end-to-end metric check (pods → Prometheus → adapter → external metrics API → HPA)");
            let margs = crate::cli::MetricsArgs {
                wait: Some(wait),
                ..Default::default()
            };
            let report = crate::metrics::check(
                client.clone(),
                &s.cfg,
                &margs,
                &s.ui,
                crate::metrics::predict::metric_proposal,
            )
            .await?;
            if report.exit_code() != 0 {
                step.fail("a link is broken");
                // A JSON consumer still gets the report of what is broken.
                s.ui.result_json(&serde_json::json!({ "ok": false, "metrics": &report }));
                anyhow::bail!(
                    "the stack is up but the metric chain is not working:\n{}",
                    report.to_text()
                );
            }
            step.done("every stage passes");
            Some(report)
        }
    };
    Ok(UpReport {
        versions,
        cluster,
        releases,
        deploy,
        metrics,
        access: super::access_lines(s),
    })
}

fn summary(v: &Versions) -> String {
    let parts: Vec<String> = [
        ("minikube", &v.minikube),
        ("helm", &v.helm),
        ("kubectl", &v.kubectl),
        ("docker", &v.docker),
    ]
    .iter()
    .filter_map(|(n, v)| v.as_ref().map(|v| format!("{n} {v}")))
    .collect();
    if parts.is_empty() {
        "skipped in dry-run".into()
    } else {
        parts.join(", ")
    }
}

/// Prints the final summary: how to reach the service, Prometheus and Grafana.
pub fn print(s: &Session, r: &UpReport) {
    s.ui.result(&format!("kscale: the stack is up on context {}", s.context));
    s.ui.result(&format!("  image: {}", r.deploy.image));
    s.ui.result(&format!(
        "  HPA {}/{} scales on {} (target {} {})",
        s.cfg.app.namespace,
        s.cfg.app.name,
        s.cfg.metric.name,
        s.cfg.metric.target,
        match s.cfg.metric.profile {
            crate::config::MetricProfile::MeanDuration => "s per request",
            crate::config::MetricProfile::Concurrency => "requests per pod",
            crate::config::MetricProfile::Queue => "queued requests per pod",
        }
    ));
    for (what, how) in &r.access {
        s.ui.result(&format!("  {what:<10} {how}"));
    }
}
