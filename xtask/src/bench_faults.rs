//! `cargo xtask bench-faults [FAULT,...]`: the end-to-end test on the offline minikube kit with
//! all six faults (or those named) during a steady load (`KSCALE_E2E_FAULTS`; CI runs two of
//! them), printed as a table from the test's `faults.json`. A missed goal fails the benchmark.

use std::path::Path;

use anyhow::Context as _;

use crate::project_root;

/// Where the end-to-end test writes its faults (`tests/it/real_minikube/up/faults.rs`).
const FAULTS: &str = "target/minikube-e2e/faults.json";

/// One fault as the test wrote it.
#[derive(serde::Deserialize)]
struct Fault {
    title: String,
    requests: u64,
    failed: u64,
    held: u64,
    allowed_failures: Option<u64>,
    desired_at_start: i64,
    desired_low: i64,
    desired_high: i64,
    hpa_reasons: Vec<String>,
    scale_downs: Vec<ScaleDown>,
    metrics_said: String,
    /// (seconds since the fault's start, what `kscale metrics` said), one entry per change.
    metrics_timeline: Vec<(f64, String)>,
    recovery_seconds: f64,
    /// The goals it missed, as the test judged them (the goals live in the test).
    missed: Vec<String>,
}

/// A drop of the HPA's desired replicas while a fault lasted.
#[derive(serde::Deserialize)]
struct ScaleDown {
    from: i64,
    to: i64,
    reason: String,
}

/// Runs the end-to-end test with every fault (or the faults named, by key, in one argument
/// separated by commas; the test checks the keys) and prints the table, also when the test
/// failed on a goal after writing its faults.
pub fn bench_faults(args: &[String]) -> anyhow::Result<()> {
    let faults = match args {
        [] => "all",
        [keys] if !keys.starts_with('-') => keys.as_str(),
        _ => anyhow::bail!(
            "unexpected arguments {args:?}; usage: cargo xtask bench-faults [FAULT,...] \
             (keys: pod_kill, drain, rollout, prometheus_deleted, adapter_down, node_restart)"
        ),
    };
    let path = project_root().join(FAULTS);
    let _ = std::fs::remove_file(&path);
    let run = crate::bench_minikube::run_end_to_end(&[("KSCALE_E2E_FAULTS", faults)]);
    let missed = if path.is_file() {
        print_faults(&path)?
    } else {
        Vec::new()
    };
    run?;
    if !missed.is_empty() {
        anyhow::bail!("goal missed: {}", missed.join(", "));
    }
    Ok(())
}

/// Prints the table; returns "fault: goal" for every missed goal.
fn print_faults(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let faults: Vec<Fault> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not the test's list of faults", path.display()))?;
    println!();
    println!(
        "faults during a steady load (3 clients, 10 s requests) on the offline minikube kit, {}",
        crate::bench_server::machine()
    );
    println!(
        "| fault | requests | failed (held; goal) | HPA desired: start; low-high | scale-downs (reason) | HPA ScalingActive | kscale metrics during | back to 6/6 |"
    );
    println!("|---|---:|---|---|---|---|---|---:|");
    let mut missed = Vec::new();
    for f in &faults {
        let goal = f
            .allowed_failures
            .map_or_else(|| "reported".to_owned(), |a| format!("<= {a}"));
        let downs: Vec<String> = f
            .scale_downs
            .iter()
            .map(|d| format!("{} -> {} ({})", d.from, d.to, d.reason))
            .collect();
        println!(
            "| {} | {} | {} ({}; {goal}) | {}; {}-{} | {} | {} | {} | {:.1} s |",
            f.title,
            f.requests,
            f.failed,
            f.held,
            f.desired_at_start,
            f.desired_low,
            f.desired_high,
            if downs.is_empty() {
                "none".to_owned()
            } else {
                downs.join(", ")
            },
            f.hpa_reasons.join(", "),
            f.metrics_said.replace('|', "/"),
            f.recovery_seconds
        );
        missed.extend(f.missed.iter().map(|m| format!("{}: {m}", f.title)));
    }
    if faults.is_empty() {
        missed.push("no fault ran".to_owned());
    }
    println!();
    println!(
        "what `kscale metrics` said, from each fault's start until 6/6 (seconds since the start):"
    );
    for f in &faults {
        let said: Vec<String> = f
            .metrics_timeline
            .iter()
            .map(|(at, said)| format!("{at:.1} {said}"))
            .collect();
        println!("- {}: {}", f.title, said.join("; "));
    }
    Ok(missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_goals_the_test_missed_are_reported_and_a_bad_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faults.json");
        let fault = |missed: &[&str]| {
            serde_json::json!({
                "key": "k", "title": "t", "started": 0.0, "ended": 1.0, "requests": 10,
                "failed": 1, "held": 1, "allowed_failures": 1, "desired_at_start": 3,
                "desired_low": 3, "desired_high": 4, "hpa_reasons": ["ValidMetricFound"],
                "scale_downs": [{"at": 2.0, "from": 4, "to": 3, "reason": "ValidMetricFound"}],
                "metrics_said": "stage 2: a | b",
                "metrics_timeline": [[0.5, "stage 2: a | b"], [12.0, "6/6"]],
                "recovery_seconds": 10.0, "missed": missed,
            })
        };
        let write = |v: serde_json::Value| {
            std::fs::write(&path, v.to_string()).expect("write");
        };
        write(serde_json::json!([fault(&[]), fault(&[])]));
        assert!(print_faults(&path).expect("faults").is_empty());
        write(serde_json::json!([fault(&["recovery"]), fault(&[])]));
        assert_eq!(print_faults(&path).expect("faults"), ["t: recovery"]);
        write(serde_json::json!([]));
        assert_eq!(print_faults(&path).expect("faults"), ["no fault ran"]);
        write(serde_json::json!({"not": "a list"}));
        assert!(print_faults(&path).is_err());
    }
}
