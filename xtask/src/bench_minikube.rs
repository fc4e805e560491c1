//! `cargo xtask bench-minikube`: the real `kscale up` on real minikube (the offline kit), timed
//! step by step against the product's goals. It runs the end-to-end test
//! (`tests/it/real_minikube/up.rs`), which writes its figures once every step has passed, and
//! prints them as a table; a missed goal fails the benchmark.

use std::path::Path;

use anyhow::Context as _;

use crate::project_root;

/// Where the end-to-end test writes its figures (its `out_dir()` and `FIGURES`).
const FIGURES: &str = "target/minikube-e2e/figures.json";

/// One figure: its key in the test's file, what it measures, and its goal (`None`: reported).
struct Goal {
    key: &'static str,
    what: &'static str,
    unit: &'static str,
    at_most: Option<f64>,
}

const GOALS: &[Goal] = &[
    Goal {
        key: "up_fresh_seconds",
        what: "kscale up, fresh, to 6/6 metric stages",
        unit: "s",
        at_most: Some(150.0),
    },
    Goal {
        key: "up_rerun_seconds",
        what: "kscale up again on the healthy stack (no change)",
        unit: "s",
        at_most: Some(2.0),
    },
    Goal {
        key: "deploy_after_change_seconds",
        what: "kscale deploy after a server code change",
        unit: "s",
        at_most: Some(15.0),
    },
    Goal {
        key: "first_scale_up_decision_seconds",
        what: "load step -> first scale-up decision (fast profile)",
        unit: "s",
        at_most: Some(5.0),
    },
    Goal {
        key: "first_new_pod_ready_seconds",
        what: "load step -> first new pod ready",
        unit: "s",
        at_most: Some(8.0),
    },
    Goal {
        key: "requests_failed",
        what: "failed requests, scale-up and scale-down included",
        unit: "",
        at_most: Some(0.0),
    },
    Goal {
        key: "requests_sent",
        what: "requests sent during the load step",
        unit: "",
        at_most: None,
    },
    Goal {
        key: "llamacpp_up_seconds",
        what: "kscale up --server llamacpp on the stack, to 6/6",
        unit: "s",
        at_most: Some(300.0),
    },
    Goal {
        key: "llamacpp_first_scale_up_decision_seconds",
        what: "llama.cpp: load step -> first scale-up decision",
        unit: "s",
        at_most: Some(30.0),
    },
    Goal {
        key: "llamacpp_first_new_pod_ready_seconds",
        what: "llama.cpp: load step -> first new pod ready",
        unit: "s",
        at_most: Some(45.0),
    },
    Goal {
        key: "llamacpp_requests_failed",
        what: "llama.cpp: failed completions, scale-up and down included",
        unit: "",
        at_most: Some(0.0),
    },
    Goal {
        key: "llamacpp_requests_sent",
        what: "llama.cpp: completions sent during the load step",
        unit: "",
        at_most: None,
    },
    Goal {
        key: "teardown_seconds",
        what: "kscale teardown --yes (nothing left)",
        unit: "s",
        at_most: None,
    },
];

/// Builds the kit, runs the end-to-end test alone, and prints its figures against the goals.
pub fn bench_minikube(args: &[String]) -> anyhow::Result<()> {
    if let Some(other) = args.first() {
        anyhow::bail!("unknown argument `{other}`; usage: cargo xtask bench-minikube");
    }
    let figures = project_root().join(FIGURES);
    let _ = std::fs::remove_file(&figures);
    run_end_to_end(&[])?;
    let missed = print_figures(&figures)?;
    if !missed.is_empty() {
        anyhow::bail!("goal missed: {}", missed.join(", "));
    }
    Ok(())
}

/// Builds the kit and runs the end-to-end test alone, with `envs` set for it; fails unless it
/// passed.
pub fn run_end_to_end(envs: &[(&str, &str)]) -> anyhow::Result<()> {
    crate::kit::build_for_tests()?;
    // The one end-to-end test by name: the module also holds plain unit tests.
    let test = crate::ci::run_cluster_tests_with(
        &format!("{}up::kscale_up_on_real_minikube", crate::ci::CLUSTER_TESTS),
        envs,
    );
    let down = crate::kit::down_after_tests();
    let test = test?;
    down?;
    if !test.ok || test.passed != 1 {
        anyhow::bail!(
            "the end-to-end test did not pass ({} passed, {} failed)",
            test.passed,
            test.failed
        );
    }
    Ok(())
}

/// Prints the table; returns the figures that missed their goal.
fn print_figures(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "the end-to-end test passed but wrote no figures at {}",
            path.display()
        )
    })?;
    let values: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON object", path.display()))?;
    println!();
    println!(
        "real kscale up on the offline minikube kit, {}",
        crate::bench_server::machine()
    );
    println!("{:<54} {:>10}  goal", "measurement", "value");
    println!("{}", "-".repeat(78));
    let mut missed = Vec::new();
    for goal in GOALS {
        let value = values.get(goal.key).and_then(serde_json::Value::as_f64);
        let with_unit = |v: f64| match goal.unit {
            "" => format!("{v:.0}"),
            unit => format!("{v:.1} {unit}"),
        };
        let shown = value.map_or_else(|| "-".to_owned(), with_unit);
        let verdict = match (goal.at_most, value) {
            (None, _) => String::new(),
            (Some(limit), Some(v)) if v <= limit => format!("<= {} met", with_unit(limit)),
            (Some(limit), _) => {
                missed.push(goal.what.to_owned());
                format!("<= {} MISSED", with_unit(limit))
            }
        };
        println!("{:<54} {:>10}  {verdict}", goal.what, shown);
    }
    Ok(missed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_figure_over_its_goal_or_missing_is_reported_as_missed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("figures.json");
        let mut all: serde_json::Map<String, serde_json::Value> = GOALS
            .iter()
            .map(|g| {
                (
                    g.key.to_owned(),
                    serde_json::json!(g.at_most.unwrap_or(1.0)),
                )
            })
            .collect();
        std::fs::write(&path, serde_json::to_string(&all).expect("json")).expect("write");
        assert!(print_figures(&path).expect("figures").is_empty());
        all.insert("up_rerun_seconds".into(), serde_json::json!(15.5));
        all.remove("first_new_pod_ready_seconds");
        std::fs::write(&path, serde_json::to_string(&all).expect("json")).expect("write");
        let missed = print_figures(&path).expect("figures");
        assert_eq!(missed.len(), 2, "{missed:?}");
        assert!(print_figures(&dir.path().join("none.json")).is_err());
    }
}
