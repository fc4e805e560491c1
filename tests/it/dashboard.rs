//! The Grafana dashboard: valid JSON with the expected panels, and every panel's PromQL accepted
//! by Prometheus's own parser (`promtool check rules`; the pipeline harness runs them against a
//! live Prometheus).

use std::process::Command;

use crate::support::needs::{Need, needs};
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
    if !needs("promtool's parse of the panel queries", &[Need::Prometheus]) {
        return;
    }
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

/// Every panel's query runs in the real Prometheus of the pipeline harness, scraping real
/// servers under load from `kscale load`: none is refused, and each query of the app's own
/// series returns data (the kube-state-metrics series do not exist here: they must only parse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_runs_in_a_real_prometheus() {
    use std::time::Duration;

    use crate::support::{Pipeline, PodSpec, poll};
    use kscale::cli::LoadArgs;
    use kscale::load::generate;
    use kscale::loadprofile::LoadProfile;

    let mut cfg = Config::default();
    cfg.metric.scrape_interval_seconds = 1;
    let scrape = kscale::metrics::rendered_scrape_job(&cfg).expect("scrape job renders");
    let pods = vec![
        PodSpec::new("default", "inference-0", 0.2),
        PodSpec::new("default", "inference-1", 0.2),
    ];
    let Some(p) = Pipeline::start_if_available(&scrape, pods).await else {
        return;
    };
    let queries = panel_queries(&render(&cfg).expect("renders"), "10s").expect("queries");

    // Load on both pods, long enough for a few scrapes.
    let mut loads = Vec::new();
    for addr in p.addrs_in("default") {
        let mut a = LoadArgs::with_profile(&LoadProfile::concurrency(2));
        a.duration = Duration::from_secs(6);
        a.timeout = Duration::from_secs(10);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        loads.push(tokio::spawn(async move {
            let _keep_open = _tx;
            generate(&a, &format!("http://{addr}"), rx).await
        }));
    }

    for q in &queries {
        let wants_data = q.expr.contains("inference_") || q.expr.starts_with("vector(");
        let found = poll(
            Duration::from_secs(30),
            Duration::from_millis(500),
            || async {
                let r = p.prometheus.query(&q.expr).await?;
                if wants_data && r.samples.is_empty() {
                    anyhow::bail!("no data yet");
                }
                Ok(r)
            },
        )
        .await;
        let r = found.unwrap_or_else(|e| {
            panic!(
                "panel {:?} query {:?}: {e:#}\nPrometheus log:\n{}",
                q.panel,
                q.expr,
                p.prometheus.log()
            )
        });
        if q.expr.contains("by (pod)") {
            assert_eq!(r.samples.len(), 2, "one series per pod: {q:?} {r:?}");
        }
    }
    for l in loads {
        let report = l.await.expect("load task").expect("load runs");
        assert!(report.ok > 0, "{report:#?}");
    }
}
