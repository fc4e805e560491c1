//! `kscale simulate`: how a configuration's autoscaling behaves under a load pattern, before deploying.
//!
//! The model (deterministic for a seed):
//! - each pod serves `app.workers` requests at once for exactly `app.inference_seconds`, queues up to
//!   `app.max_queue` more and sheds the rest with 503, as the server does;
//! - requests go to ready pods only, round-robin per request by default (`--balance random` picks a
//!   random pod, like kube-proxy's iptables mode with a new connection per request);
//! - `--steps` clients run a closed loop (next request 0-0.1 s after the response, 1 s after a 503 or a
//!   refusal); `--rate-steps` arrivals are Poisson;
//! - Prometheus scrapes every ready or draining pod every `metric.scrape_interval_seconds` (random
//!   phase); the metric is the rendered query's meaning (see [`metric`]);
//! - the HPA ([`crate::hpa`]) syncs every `cluster.hpa_sync_period_seconds` (random phase) on
//!   that value;
//! - a new pod is ready `app.start_delay_seconds` (±10 %) after the HPA creates it; a scale-down
//!   removes not-yet-ready pods first, then the most recently ready ones, which stop receiving requests
//!   and finish what they hold (nothing is lost).

mod engine;
pub mod metric;
mod output;
mod params;
#[cfg(test)]
mod tests;

pub use engine::{simulate, simulate_recorded};
pub use output::{SimOutput, Summary, SyncRecord};
pub use params::SimParams;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::SimulateArgs;
use crate::config::{Config, Layers, MetricProfile};
use crate::loadprofile::{LoadKind, LoadProfile};
use crate::timeline::{TimelineRow, TimelineWriter};
use crate::ui::Ui;

/// The load used when neither `--steps` nor `--rate-steps` is given: a 4x step, then back.
pub const DEFAULT_STEPS: &str = "0s:2,120s:8,720s:2";

/// Longest simulated time accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// One simulated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct SimulatedRun {
    /// Where the configuration came from.
    pub label: String,
    /// The model's parameters.
    pub params: SimParams,
    /// The figures.
    pub summary: Summary,
    /// The timeline rows.
    pub timeline: Vec<TimelineRow>,
}

/// The result of `kscale simulate` (also its `--output json` document).
#[derive(Debug, Clone, Serialize)]
pub struct SimulateReport {
    /// The load profile.
    pub load: LoadProfile,
    /// Simulated seconds.
    pub duration_seconds: f64,
    /// The seed.
    pub seed: u64,
    /// One entry per configuration (the second with `--compare`).
    pub runs: Vec<SimulatedRun>,
    /// Wall-clock seconds the simulations took.
    pub elapsed_seconds: f64,
}

/// Runs `kscale simulate`: simulates, reports the summary through `ui` (text, or one JSON
/// document), writes the CSV and the picture when asked, and returns the report. stdout holds
/// one result: with `--csv -` that is the CSV, so the text summary goes to stderr and
/// `--output json` (a second document for stdout) is refused as bad input.
pub fn run(config: &Config, args: &SimulateArgs, ui: &Ui) -> anyhow::Result<SimulateReport> {
    let csv_to_stdout = args.csv.as_deref() == Some(Path::new("-"));
    if csv_to_stdout && ui.json() {
        return Err(crate::BadInput(
            "--csv - writes the CSV to stdout, where --output json writes the report: write the CSV to a file, or drop --output json".into(),
        )
        .into());
    }
    let report = build_report(config, args)?;
    if let Some(path) = &args.csv {
        let text = timeline_csv(&report.runs)?;
        if csv_to_stdout {
            ui.result_bytes(text.as_bytes())
                .context("cannot write the CSV to stdout")?;
        } else {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write the timeline CSV to {}", path.display()))?;
        }
    }
    if csv_to_stdout {
        ui.info(summary_text(&report).trim_end());
    } else {
        ui.result_json(&serde_json::to_value(&report).context("cannot encode the report as JSON")?);
        ui.result_raw(&summary_text(&report))?;
    }
    if let Some(path) = &args.plot {
        let series: Vec<(&str, &[TimelineRow])> = report
            .runs
            .iter()
            .map(|r| (r.label.as_str(), r.timeline.as_slice()))
            .collect();
        // The axis names the configured metric, as `kscale plot` does.
        let options = crate::plot::PlotOptions {
            metric_label: crate::plot::metric_label(config.metric.profile).into(),
            ..crate::plot::PlotOptions::default()
        };
        crate::plot::plot_timelines_with(&series, path, &options)
            .with_context(|| format!("cannot draw the timeline picture {}", path.display()))?;
    }
    Ok(report)
}

/// Simulates the configuration (and the `--compare` one) without printing anything.
pub fn build_report(config: &Config, args: &SimulateArgs) -> anyhow::Result<SimulateReport> {
    if args.duration > MAX_DURATION || args.duration.is_zero() {
        return Err(crate::BadInput(format!(
            "--duration {} is out of range: give between 1s and 7 days",
            humantime::format_duration(args.duration)
        ))
        .into());
    }
    let load = match (&args.steps, &args.rate_steps) {
        (Some(s), _) => s.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => LoadProfile::parse_concurrency(DEFAULT_STEPS)
            .context("the built-in default load profile does not parse")?,
    };
    config.validate()?;
    // Label each run by its metric profile, so a picture's legend says which signal is which.
    let mut configs = vec![(
        format!("config ({})", config.metric.profile),
        config.clone(),
    )];
    if let Some(path) = &args.compare {
        // The same layering as `kscale up` (profile defaults under the file), without env or flags.
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --compare file {}", path.display()))?;
        let other = Config::load(&Layers {
            file: Some((path.clone(), text)),
            ..Layers::default()
        })?;
        other.validate()?;
        let label = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        configs.push((format!("{label} ({})", other.metric.profile), other));
    }
    let duration = args.duration.as_secs_f64();
    let started = std::time::Instant::now();
    let mut runs = Vec::new();
    for (label, c) in configs {
        let mut params = SimParams::from_config(&c);
        params.balance = args.balance;
        params
            .validate()
            .with_context(|| format!("cannot simulate the configuration `{label}`"))?;
        let events = params::estimated_events(&params, &load, duration);
        if events > params::MAX_EVENTS as f64 {
            return Err(crate::BadInput(format!(
                "the load {load} over --duration {} needs about {events:.1e} events with `{label}`, more than the simulator's limit of {}: shorten --duration or lower the load",
                humantime::format_duration(args.duration),
                params::MAX_EVENTS
            ))
            .into());
        }
        let out = simulate(&params, &load, duration, args.seed);
        if let Some(at) = out.summary.truncated_at_seconds {
            anyhow::bail!(
                "the simulation of `{label}` stopped at the limit of {} events at {at:.0} s of {duration:.0} s: its figures would describe a shorter run than asked; shorten --duration or lower the load",
                params::MAX_EVENTS
            );
        }
        runs.push(SimulatedRun {
            label,
            params,
            summary: out.summary,
            timeline: out.timeline,
        });
    }
    Ok(SimulateReport {
        load,
        duration_seconds: duration,
        seed: args.seed,
        runs,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

fn opt(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}{unit}"))
}

fn target_text(p: &SimParams) -> String {
    match p.profile {
        MetricProfile::MeanDuration => format!("{} s mean duration (Value)", p.target),
        MetricProfile::Concurrency => format!("{} req per pod (AverageValue)", p.target),
        MetricProfile::Queue => format!("{} queued per pod (AverageValue)", p.target),
    }
}

/// The human-readable summary: one column per configuration.
pub fn summary_text(report: &SimulateReport) -> String {
    let unit = match report.load.kind {
        LoadKind::Concurrency => "clients",
        LoadKind::Rate => "req/s",
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "simulated {} of {} {unit}, seed {} ({:.0} ms)",
        humantime::format_duration(Duration::from_secs_f64(report.duration_seconds)),
        report.load,
        report.seed,
        report.elapsed_seconds * 1000.0
    );
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |name: &str, f: &dyn Fn(&SimulatedRun) -> String| {
        rows.push((name.to_string(), report.runs.iter().map(f).collect()));
    };
    add("", &|r| r.label.clone());
    add("metric", &|r| r.params.profile.to_string());
    add("target", &|r| target_text(&r.params));
    add("scrape / rate window", &|r| match r.params.profile {
        MetricProfile::MeanDuration => format!(
            "{} s / {} s",
            r.params.scrape_interval_seconds, r.params.rate_window_seconds
        ),
        MetricProfile::Concurrency | MetricProfile::Queue => {
            format!("{} s / -", r.params.scrape_interval_seconds)
        }
    });
    add("load rise", &|r| match (
        r.summary.step_at_seconds,
        r.summary.step_from,
        r.summary.step_to,
    ) {
        (Some(at), Some(from), Some(to)) => format!("{from} -> {to} at {at} s"),
        _ => "-".into(),
    });
    add("first scale-up decision", &|r| {
        opt(r.summary.first_scale_up_decision_seconds, " s after")
    });
    add("first new pod ready", &|r| {
        opt(r.summary.first_new_pod_ready_seconds, " s after")
    });
    add("replicas start/peak/end", &|r| {
        format!(
            "{}/{}/{}",
            r.summary.replicas_initial, r.summary.replicas_peak, r.summary.replicas_final
        )
    });
    add("rescales (reversals, <5 min)", &|r| {
        format!(
            "{} ({}, {})",
            r.summary.scale_events, r.summary.direction_changes, r.summary.quick_reversals
        )
    });
    add("sent / ok", &|r| {
        format!("{} / {}", r.summary.sent, r.summary.ok)
    });
    add("shed / refused / open", &|r| {
        format!(
            "{} / {} / {}",
            r.summary.shed, r.summary.refused, r.summary.in_progress_at_end
        )
    });
    add("latency p50 / p99 / max", &|r| {
        format!(
            "{} / {} / {}",
            opt(r.summary.p50_seconds, " s"),
            opt(r.summary.p99_seconds, " s"),
            opt(r.summary.max_seconds, " s")
        )
    });
    add("peak p99 of a 5 s row", &|r| {
        opt(r.summary.peak_row_p99_seconds, " s")
    });
    add("ready pod-minutes", &|r| {
        format!("{:.0}", r.summary.pod_seconds / 60.0)
    });
    let name_width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let col_width = rows
        .iter()
        .flat_map(|(_, v)| v.iter().map(String::len))
        .max()
        .unwrap_or(0);
    for (name, values) in rows {
        let _ = write!(out, "  {name:<name_width$}");
        for v in values {
            let _ = write!(out, "   {v:<col_width$}");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

/// The timelines as one CSV: a `run` column, then the columns of every timeline file
/// ([`crate::timeline::CSV_COLUMNS`]), written by the one timeline writer.
pub fn timeline_csv(runs: &[SimulatedRun]) -> anyhow::Result<String> {
    let mut w = TimelineWriter::labelled(Vec::new(), "the timeline CSV")?;
    for r in runs {
        w.set_run(&r.label);
        for row in &r.timeline {
            w.append(row)?;
        }
    }
    String::from_utf8(w.into_inner()?).context("the timeline CSV is not UTF-8")
}
