//! `kscale up`'s last step, the end-to-end metric check, against the metric chain the stub
//! derives from what `up` installed: a broken link fails `up` with the stage and its fix and
//! leaves the stack in place; `--output json` carries the report.

use serde_json::json;

use super::metric_chain::METRIC_VALUE;
use super::{Env, mutating_requests};

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/default/deployments/inference";
const HPA: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/inference";
const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/";

#[test]
fn an_adapter_that_serves_no_items_fails_up_with_the_stage_and_leaves_the_stack() {
    let env = Env::new();
    // The adapter answers, but has listed no series (as while its relist has not run yet).
    env.api.route(|req, _| {
        req.path.starts_with(EXTERNAL).then(|| {
            (
                200,
                json!({"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1",
                       "metadata": {}, "items": []}),
            )
        })
    });
    let src = env.source().display().to_string();
    let run = env.kscale(&["up", "--source", &src, "--wait", "3s"]);
    run.expect_code(1).stderr_has(&[
        "the stack is up but the metric chain is not working",
        "✓ 4. APIService v1beta1.external.metrics.k8s.io Available",
        "✗ 5. external metrics API serves the value: items: []",
        "the adapter has not listed the series yet (it relists every 60 s)",
        "fix:   wait: `kscale metrics --wait 180s`",
        // The HPA reads the same API, so it cannot scale either.
        "✗ 6. the HPA reads the metric",
        "ScalingActive=False (FailedGetExternalMetric)",
        "deadline reached after",
    ]);
    let attempts = run.stderr.matches("waiting (").count();
    assert!(
        attempts >= 1,
        "the check retried until --wait's deadline:\n{}",
        run.stderr
    );
    assert!(
        run.elapsed.as_secs() < 60,
        "--wait 3s bounds the check, took {:?}",
        run.elapsed
    );

    // Nothing is torn down: the releases, the app and its HPA stay for `kscale metrics`.
    let log = env.log();
    assert!(
        !log.iter()
            .any(|l| l.contains(" uninstall ") || l.starts_with("minikube delete")),
        "{log:?}"
    );
    let deletes: Vec<String> = mutating_requests(&env)
        .into_iter()
        .filter(|r| r.starts_with("DELETE "))
        .collect();
    assert_eq!(deletes, Vec::<String>::new());
    assert_eq!(
        env.releases("monitoring"),
        ["prometheus", "prometheus-adapter"]
    );
    assert!(env.api.object(DEPLOYMENT).is_some());
    assert!(env.api.object(HPA).is_some());
    assert!(env.profile_exists("kscale"));
}

#[test]
fn output_json_carries_the_metric_report() {
    let env = Env::new();
    let src = env.source().display().to_string();
    let run = env.kscale(&["--output", "json", "up", "--source", &src]);
    run.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", run.stdout));
    let m = &doc["metrics"];
    assert_eq!(m["passed"], true, "{m:#}");
    let stages = m["stages"].as_array().expect("stages");
    assert_eq!(
        stages
            .iter()
            .map(|s| s["stage"].clone())
            .collect::<Vec<_>>(),
        (1..=6).map(|n| json!(n)).collect::<Vec<_>>()
    );
    assert!(stages.iter().all(|s| s["passed"] == true), "{m:#}");

    // One coherent value from Prometheus through the adapter to the HPA.
    for stage in [3, 5, 6] {
        assert_eq!(stages[stage - 1]["value"], json!(METRIC_VALUE), "{m:#}");
    }
    let replicas = env.api.object(DEPLOYMENT).expect("Deployment")["spec"]["replicas"]
        .as_u64()
        .expect("replicas");
    assert_eq!(m["hpa"]["current_replicas"], json!(replicas), "{m:#}");
    assert_eq!(
        m["hpa"]["scaling_active"],
        json!(["True", "ValidMetricFound"])
    );
    // 2.5 s against the 12 s target: the stub's HPA and kscale's model both keep one replica.
    assert_eq!(m["hpa"]["desired_replicas"], json!(1), "{m:#}");
    assert_eq!(m["hpa"]["expected_desired_replicas"], json!(1), "{m:#}");

    // Every replica's pod was read through the pod proxy, named as the ReplicaSet names them.
    let pods = m["pods"].as_array().expect("pods");
    assert_eq!(pods.len() as u64, replicas, "{m:#}");
    for p in pods {
        let name = p["pod"].as_str().expect("pod name");
        let parts: Vec<&str> = name.split('-').collect();
        assert!(
            parts.len() == 3
                && parts[0] == "inference"
                && parts[1].len() == 10
                && parts[2].len() == 5,
            "{name}"
        );
        assert_eq!(
            (p["queue_depth"].clone(), p["in_flight"].clone()),
            (json!(2.0), json!(1.0))
        );
    }
    assert!(
        m["query"]
            .as_str()
            .is_some_and(|q| q.contains("namespace=\"default\"")),
        "{m:#}"
    );
    assert!(run.stderr.contains("every stage passes"), "{}", run.stderr);
}

#[test]
fn the_chain_follows_the_stack_kscale_metrics_names_an_uninstalled_prometheus() {
    let env = Env::new();
    env.up_fresh();
    env.kscale(&["metrics"])
        .expect_code(0)
        .stdout_has(&["6 of 6 stages passed"]);
    // As if someone ran `helm -n monitoring uninstall prometheus`.
    std::fs::remove_dir_all(env.state().join("helm/releases/monitoring/prometheus"))
        .expect("remove the release");
    env.kscale(&["metrics"]).expect_code(1).stdout_has(&[
        "✓ 1. app pods ready and /metrics reachable",
        "✗ 2. Prometheus scrapes every pod",
        "Prometheus service monitoring/prometheus-kube-prometheus-prometheus is not reachable",
        "helm -n monitoring status prometheus",
    ]);
}

#[test]
fn metrics_watch_with_output_json_is_ndjson() {
    let env = Env::new();
    env.up_fresh();
    let run = env.kscale(&[
        "--output",
        "json",
        "metrics",
        "--watch",
        "--watch-for",
        "1s",
        "--interval",
        "300ms",
    ]);
    run.expect_code(0);
    let docs: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON document per line: {e}\n{}", run.stdout))
        })
        .collect();
    assert!(docs.len() >= 2, "the report, then rows:\n{}", run.stdout);
    assert_eq!(docs[0]["passed"], true, "the report comes first");
    for row in &docs[1..] {
        assert!(row["t_seconds"].is_number(), "a timeline row: {row}");
    }
}

#[test]
fn the_concurrency_profile_checks_its_own_series_and_the_hpa_proposes_a_scale_up() {
    let env = Env::new();
    let src = env.source().display().to_string();
    let run = env.kscale(&[
        "--output",
        "json",
        "up",
        "--source",
        &src,
        "--set",
        "metric.profile=concurrency",
    ]);
    run.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", run.stdout));
    let m = &doc["metrics"];
    assert_eq!(m["passed"], true, "{m:#}");
    assert!(
        m["query"]
            .as_str()
            .is_some_and(|q| q.contains("inference_queue_depth{")),
        "{m:#}"
    );
    assert_eq!(m["hpa"]["target_type"], "AverageValue", "{m:#}");
    // The pod reports 1 request in flight and 2 queued: 3 against 1 per pod proposes 3 replicas,
    // in the stub's HPA status and in kscale's own model alike.
    let stages = m["stages"].as_array().expect("stages");
    for stage in [3, 5, 6] {
        assert_eq!(stages[stage - 1]["value"], json!(3.0), "{m:#}");
    }
    assert_eq!(m["hpa"]["current_replicas"], json!(1), "{m:#}");
    assert_eq!(m["hpa"]["desired_replicas"], json!(3), "{m:#}");
    assert_eq!(m["hpa"]["expected_desired_replicas"], json!(3), "{m:#}");
}
