//! `kscale metrics --watch`: a live view of the autoscaling loop, optionally recorded as timeline
//! rows in CSV.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;

use super::MetricsArgs;
use super::checks::Checker;
use crate::timeline::{PodSample, TimelineRow};

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

/// The CSV header of [`csv_row`].
pub const CSV_HEADER: &str = "t_seconds,replicas_current,replicas_desired,metric_value,target,load,queue_depth,in_flight,p50_seconds,p99_seconds,shed";

/// A timeline row as CSV (per-pod samples are not recorded). A minimal writer until
/// `crate::timeline` grows its own CSV functions.
pub fn csv_row(r: &TimelineRow) -> String {
    fn o(v: Option<f64>) -> String {
        v.map(|v| v.to_string()).unwrap_or_default()
    }
    format!(
        "{},{},{},{},{},{},{},{},{},{},{}",
        r.t_seconds,
        r.replicas_current,
        r.replicas_desired,
        o(r.metric_value),
        r.target,
        o(r.load),
        o(r.queue_depth),
        o(r.in_flight),
        o(r.p50_seconds),
        o(r.p99_seconds),
        r.shed.map(|v| v.to_string()).unwrap_or_default()
    )
}

/// Appends a row, writing the header first when the file is new or empty.
pub fn append_csv(path: &Path, row: &TimelineRow) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {} for appending", path.display()))?;
    let empty = f
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len()
        == 0;
    let mut text = String::new();
    if empty {
        text.push_str(CSV_HEADER);
        text.push('\n');
    }
    text.push_str(&csv_row(row));
    text.push('\n');
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write to {}", path.display()))
}

/// Refreshes every `--interval` until Ctrl-C or `--watch-for`.
pub async fn watch(checker: &Checker<'_>, args: &MetricsArgs, json: bool) -> anyhow::Result<()> {
    let start = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let row = observe(checker, start.elapsed().as_secs_f64()).await;
        if json {
            println!(
                "{}",
                serde_json::to_string(&row).context("serializing a row")?
            );
        } else {
            println!("{}", format_row(&row));
        }
        if let Some(path) = &args.record {
            append_csv(path, &row)?;
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
