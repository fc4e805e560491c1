//! The Grafana dashboard: valid JSON with the expected panels, and every panel's PromQL accepted
//! by Prometheus's own parser (`promtool check rules`; the pipeline harness runs them against a
//! live Prometheus).

use std::process::Command;

use kscale::config::Config;
use kscale::dashboard::{panel_queries, render};

#[test]
fn the_dashboard_has_the_expected_panels() {
    let text = render(&Config::default()).expect("renders");
    let json: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(json["uid"], "kscale-inference");
    let titles: Vec<&str> = json["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in [
        "Request rate by status code",
        "Mean request duration against the HPA target",
        "Queue depth per pod",
        "In-flight requests per pod",
        "Replicas: current and desired",
    ] {
        assert!(
            titles.iter().any(|t| t.starts_with(wanted)),
            "no panel {wanted:?} in {titles:?}"
        );
    }
    let queries = panel_queries(&text, "1m").expect("queries");
    let all: String = queries.iter().map(|q| q.expr.as_str()).collect();
    for series in [
        "inference_requests_total",
        "inference_request_duration_seconds_sum",
        "inference_request_duration_seconds_count",
        "inference_queue_depth",
        "inference_requests_in_flight",
        "kube_horizontalpodautoscaler_status_current_replicas",
        "kube_horizontalpodautoscaler_status_desired_replicas",
        "kube_deployment_status_replicas",
    ] {
        assert!(all.contains(series), "no panel queries {series}");
    }
}

#[test]
fn every_panel_query_parses_as_promql() {
    let text = render(&Config::default()).expect("renders");
    let queries = panel_queries(&text, "1m").expect("queries");
    assert!(queries.len() >= 8, "{queries:#?}");
    // One recording rule per query: promtool parses each expression with Prometheus's parser.
    let rules: Vec<serde_json::Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| serde_json::json!({ "record": format!("kscale:panel_query_{i}"), "expr": q.expr }))
        .collect();
    let file = serde_json::json!({ "groups": [{ "name": "dashboard", "rules": rules }] });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, file.to_string()).expect("write rules");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool runs (cargo xtask ci installs it: Debian package prometheus)");
    assert!(
        out.status.success(),
        "promtool refused a panel query:\n{}\n{}\n{queries:#?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("{} rules found", queries.len())),
        "{said}"
    );
}
