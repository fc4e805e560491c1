//! `kscale metrics --watch`: a live view of the autoscaling loop, optionally recorded as timeline
//! rows in CSV.

use std::time::Instant;

use anyhow::Context as _;

use super::checks::Checker;
use crate::cli::MetricsArgs;
use crate::timeline::{PodSample, TimelineRow};
use crate::ui::Ui;

/// One observation: the HPA, the external metric, and every pod's gauges.
pub async fn observe(checker: &Checker<'_>, t_seconds: f64) -> TimelineRow {
    let mut pods: Vec<PodSample> = Vec::new();
    let _ = checker.stage1_pods(&mut pods).await;
    let values = checker.external_value().await.ok();
    let (_, hpa) = checker
        .stage6_hpa(pods.len() as u32, values.as_deref())
        .await;
    let external = values.and_then(|v| match v.as_slice() {
        [x] => Some(*x),
        _ => None,
    });
    let (current, desired, target, per_pod) = match &hpa {
        Some(h) => (
            h.current_replicas,
            h.desired_replicas,
            h.target.unwrap_or(checker.cfg.metric.target),
            h.target_type == "AverageValue",
        ),
        None => (0, 0, checker.cfg.metric.target, false),
    };
    // An AverageValue target compares the value per pod, as the HPA does.
    let metric_value = external.map(|v| {
        if per_pod {
            v / f64::from(current.max(1))
        } else {
            v
        }
    });
    TimelineRow {
        t_seconds,
        unix_seconds: crate::timeline::unix_now(),
        replicas_current: current,
        replicas_desired: desired,
        metric_value,
        target,
        queue_depth: (!pods.is_empty()).then(|| pods.iter().map(|p| p.queue_depth).sum()),
        in_flight: (!pods.is_empty()).then(|| pods.iter().map(|p| p.in_flight).sum()),
        pods,
        ..TimelineRow::default()
    }
}

/// One line of the live view.
pub fn format_row(r: &TimelineRow) -> String {
    let pods: Vec<String> = r
        .pods
        .iter()
        .map(|p| format!("{}={}+{}", p.pod, p.in_flight, p.queue_depth))
        .collect();
    format!(
        "t={:>6.1}s replicas {}->{} metric {} target {} | per pod in-flight+queued: {}",
        r.t_seconds,
        r.replicas_current,
        r.replicas_desired,
        r.metric_value
            .map(|v| format!("{v:.3}"))
            .unwrap_or_else(|| "<none>".into()),
        r.target,
        if pods.is_empty() {
            "<no pods>".into()
        } else {
            pods.join(" ")
        }
    )
}

/// Refreshes every `--interval` until Ctrl-C or `--watch-for`: a line per observation, one
/// compact JSON document per line with `--output json` (NDJSON).
pub async fn watch(checker: &Checker<'_>, args: &MetricsArgs, ui: &Ui) -> anyhow::Result<()> {
    let start = Instant::now();
    // Opened once: the timeline module owns the format, the header check and per-row flushing.
    let mut recorder = match &args.record {
        Some(path) => Some(crate::timeline::TimelineWriter::append_to(path)?),
        None => None,
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let row = observe(checker, start.elapsed().as_secs_f64()).await;
        ui.result_json_line(&serde_json::to_value(&row).context("serializing a row")?)?;
        ui.result(&format_row(&row));
        if let Some(recorder) = recorder.as_mut() {
            recorder.append(&row)?;
        }
        let mut wait = args.interval;
        if let Some(limit) = args.watch_for {
            let Some(left) = limit.checked_sub(start.elapsed()) else {
                return Ok(());
            };
            wait = wait.min(left);
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        if args.watch_for.is_some_and(|l| start.elapsed() >= l) {
            return Ok(());
        }
    }
}
