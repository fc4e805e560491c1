//! `kscale metrics`: proves every link of the metric chain, server → Prometheus →
//! prometheus-adapter → external metrics API → HPA, and watches it.

pub mod adapter_query;
pub mod checks;
pub mod exposition;
pub mod predict;
pub mod prom;
pub mod watch;

use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::MetricsArgs;
use crate::config::Config;
use crate::timeline::PodSample;
use crate::ui::Ui;
pub use checks::{DecisionHook, HpaView, StageResult};

/// Result of `kscale metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsReport {
    /// True when every stage passed.
    pub passed: bool,
    /// The six stages of the last attempt.
    pub stages: Vec<StageResult>,
    /// Attempts made (more than one with --wait).
    pub attempts: u32,
    /// Seconds spent.
    pub elapsed_seconds: f64,
    /// The HPA as stage 6 saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpa: Option<HpaView>,
    /// Queue depth and in-flight requests per pod (stage 1).
    pub pods: Vec<PodSample>,
    /// The adapter query run in stage 3, after substitution.
    pub query: String,
}

impl MetricsReport {
    /// The process exit code: 0 only when every stage passed.
    pub fn exit_code(&self) -> u8 {
        if self.passed { 0 } else { 1 }
    }

    /// The first failing stage.
    pub fn first_failure(&self) -> Option<&StageResult> {
        self.stages.iter().find(|s| !s.passed)
    }

    /// Human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.stages {
            let mark = if s.passed { "✓" } else { "✗" };
            out.push_str(&format!("{mark} {}. {}: {}\n", s.stage, s.name, s.seen));
            if let Some(c) = &s.cause {
                out.push_str(&format!("    cause: {c}\n"));
            }
            if let Some(f) = &s.fix {
                out.push_str(&format!("    fix:   {f}\n"));
            }
        }
        if !self.pods.is_empty() {
            out.push_str("pods (queue depth / in flight):");
            for p in &self.pods {
                out.push_str(&format!(" {} {}/{}", p.pod, p.queue_depth, p.in_flight));
            }
            out.push('\n');
        }
        let n = self.stages.iter().filter(|s| s.passed).count();
        out.push_str(&format!(
            "{} of {} stages passed ({} attempt{}, {:.1} s)\n",
            n,
            self.stages.len(),
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            self.elapsed_seconds
        ));
        out
    }
}

/// Runs `kscale metrics` with the default decision hook (no prediction).
pub async fn run(
    client: kube::Client,
    cfg: &Config,
    args: &MetricsArgs,
    ui: &Ui,
) -> anyhow::Result<MetricsReport> {
    run_with(client, cfg, args, ui, checks::no_prediction).await
}

/// Runs `kscale metrics` with a hook that predicts the HPA's next decision. The report is one
/// JSON document with `--output json`; with `--watch` stdout is NDJSON instead: the report on
/// its first line, then one timeline row per line.
pub async fn run_with(
    client: kube::Client,
    cfg: &Config,
    args: &MetricsArgs,
    ui: &Ui,
    decide: DecisionHook,
) -> anyhow::Result<MetricsReport> {
    let report = check(client.clone(), cfg, args, ui, decide).await?;
    let json = serde_json::to_value(&report).context("serializing the report")?;
    if args.watch {
        ui.result_json_line(&json)?;
    } else {
        ui.result_json(&json);
    }
    ui.result_raw(&report.to_text())?;
    if args.watch {
        let checker = checker(client, cfg, decide)?;
        watch::watch(&checker, args, ui).await?;
    }
    Ok(report)
}

fn checker(
    client: kube::Client,
    cfg: &Config,
    decide: DecisionHook,
) -> anyhow::Result<checks::Checker<'_>> {
    Ok(checks::Checker {
        client,
        cfg,
        rule: crate::render::adapter_rule(cfg),
        job: crate::render::SCRAPE_JOB.to_owned(),
        decide,
    })
}

/// The Prometheus scrape job kscale deploys (a YAML list with one job), as `kscale render` writes
/// it to `scrape-config.yaml`.
pub fn rendered_scrape_job(cfg: &Config) -> anyhow::Result<String> {
    let files = crate::render::render_all(
        cfg,
        &crate::render::Templates::embedded(),
        "kscale-server:metrics-check",
    )?;
    files
        .into_iter()
        .find(|f| f.name == crate::render::file::SCRAPE_CONFIG)
        .map(|f| f.content)
        .context("render produced no scrape-config.yaml")
}

/// Runs the checks (retrying until --wait's deadline) without printing the report.
pub async fn check(
    client: kube::Client,
    cfg: &Config,
    args: &MetricsArgs,
    ui: &Ui,
    decide: DecisionHook,
) -> anyhow::Result<MetricsReport> {
    let checker = checker(client, cfg, decide)?;
    let query = checker.adapter_promql()?;
    let start = Instant::now();
    let deadline = args.wait.map(|w| start + w);
    let mut attempts = 0u32;
    // Bounded: without --wait one attempt; with it, until the deadline.
    loop {
        attempts += 1;
        let pass = checker.run_once().await;
        let passed = pass.stages.iter().all(|s| s.passed);
        let report = MetricsReport {
            passed,
            stages: pass.stages,
            attempts,
            elapsed_seconds: start.elapsed().as_secs_f64(),
            hpa: pass.hpa,
            pods: pass.pods,
            query: query.clone(),
        };
        let Some(deadline) = deadline else {
            return Ok(report);
        };
        if passed {
            return Ok(report);
        }
        let now = Instant::now();
        if now >= deadline {
            if let Some(f) = report.first_failure() {
                ui.info(&format!(
                    "kscale metrics: deadline reached after {attempts} attempts; last failure: stage {} ({}): {}",
                    f.stage,
                    f.name,
                    f.cause.as_deref().unwrap_or(&f.seen)
                ));
            }
            return Ok(report);
        }
        if let Some(f) = report.first_failure() {
            ui.info(&format!(
                "waiting ({:.0} s left): stage {} ({}): {}",
                (deadline - now).as_secs_f64(),
                f.stage,
                f.name,
                f.seen
            ));
        }
        tokio::time::sleep(args.interval.min(deadline - now)).await;
    }
}
