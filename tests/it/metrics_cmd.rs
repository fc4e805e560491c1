//! `kscale metrics` against an in-process stand-in for the API server (real HTTP on 127.0.0.1,
//! responses shaped like the real ones): each stage's pass, each failure mode, JSON, --wait and
//! --watch --record.

use std::time::Duration;

use kscale::cli::MetricsArgs;
use kscale::config::Config;
use kscale::metrics::checks::no_prediction;
use kscale::metrics::{MetricsReport, adapter_query};
use kscale::ui::{Mode, Ui};

use crate::support::kube_stub::{Endpoint, KubeStub, Reply, Scenario, fixture_json};

const POD_A: &str = "inference-6b7f9c8d4-k2x9p";
const POD_B: &str = "inference-6b7f9c8d4-q8w4z";

async fn check_with(scenario: Scenario, args: &MetricsArgs) -> (MetricsReport, KubeStub) {
    let stub = KubeStub::start(scenario);
    let report = kscale::metrics::check(
        stub.client(),
        &Config::default(),
        args,
        &Ui::new(Mode::Quiet),
        no_prediction,
    )
    .await
    .expect("the check runs");
    (report, stub)
}

async fn check_once(f: impl FnOnce(&mut Scenario)) -> MetricsReport {
    let mut s = Scenario::healthy();
    f(&mut s);
    check_with(s, &MetricsArgs::default()).await.0
}

/// Asserts that exactly `failing` stages failed, and returns the first failure's text.
fn failed_only(r: &MetricsReport, failing: &[u8]) -> String {
    let failed: Vec<u8> = r
        .stages
        .iter()
        .filter(|s| !s.passed)
        .map(|s| s.stage)
        .collect();
    assert_eq!(failed, failing, "{}", r.to_text());
    assert_eq!(r.exit_code(), 1);
    assert!(!r.passed);
    let f = r.first_failure().expect("a failure");
    assert!(
        f.cause.is_some() && f.fix.is_some(),
        "a failure says cause and fix: {f:?}"
    );
    format!(
        "{} | {} | {}",
        f.seen,
        f.cause.clone().unwrap_or_default(),
        f.fix.clone().unwrap_or_default()
    )
}

fn prom_value(v: &str) -> Reply {
    Reply::json(&serde_json::json!({
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1764273722.512, v]}]}
    }))
}

fn prom_empty() -> Reply {
    Reply::json(&serde_json::json!({
        "status": "success", "data": {"resultType": "vector", "result": []}
    }))
}

#[tokio::test]
async fn every_stage_passes_on_a_healthy_stack() {
    let (r, stub) = check_with(Scenario::healthy(), &MetricsArgs::default()).await;
    assert!(r.passed, "{}", r.to_text());
    assert_eq!(r.exit_code(), 0);
    assert_eq!(r.stages.len(), 6);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.stages[0].value, Some(2.0), "two pods answer /metrics");
    assert_eq!(r.stages[1].value, Some(2.0), "two targets up");
    let v3 = r.stages[2].value.expect("stage 3 value");
    assert!((v3 - 10.0484375).abs() < 1e-9, "{v3}");
    assert_eq!(r.stages[4].value, Some(10.048));
    assert_eq!(r.stages[5].value, Some(10.048));
    let hpa = r.hpa.as_ref().expect("HPA seen");
    assert_eq!((hpa.current_replicas, hpa.desired_replicas), (2, 2));
    assert_eq!(hpa.target, Some(12.0));
    assert_eq!(hpa.target_type, "Value");
    assert_eq!(r.pods.len(), 2);
    assert_eq!((r.pods[0].queue_depth, r.pods[0].in_flight), (2.0, 1.0));

    // The query sent to Prometheus is the rendered rule, substituted as the adapter does.
    let rule = kscale::render::adapter_rule(&Config::default());
    let expected = adapter_query::namespaced_external_query(
        &rule.metrics_query,
        "inference_request_duration_seconds_count",
        "default",
    )
    .unwrap();
    assert_eq!(r.query, expected);
    assert!(expected.contains("namespace=\"default\"") && expected.contains("by ()"));
    let reqs = stub.requests();
    let prom = "/api/v1/namespaces/monitoring/services/prometheus-kube-prometheus-prometheus:9090/proxy/api/v1/query";
    assert!(
        reqs.contains(&format!("{prom}?query={expected}")),
        "{reqs:#?}"
    );
    assert!(
        reqs.contains(&format!(
            "/api/v1/namespaces/default/pods/{POD_A}:3000/proxy/metrics"
        )),
        "{reqs:#?}"
    );
    assert!(reqs.iter().any(|p| p == "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/inference_request_duration_seconds_per_request"), "{reqs:#?}");
    assert!(
        reqs.iter()
            .any(|p| p.starts_with("/api/v1/namespaces/default/pods?")
                && p.contains("labelSelector=app%3Dinference")),
        "{reqs:#?}"
    );

    let text = r.to_text();
    assert!(text.contains("✓ 6. the HPA reads the metric"), "{text}");
    assert!(text.contains("6 of 6 stages passed"), "{text}");
}

#[tokio::test]
async fn no_app_pods_fails_stage_1() {
    let r = check_once(|s| {
        s.set(
            Endpoint::Pods,
            Reply::json(&serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []})),
        );
    })
    .await;
    let why = failed_only(&r, &[1]);
    assert!(
        why.contains("no pod labelled app=inference") && why.contains("kscale deploy"),
        "{why}"
    );
}

#[tokio::test]
async fn a_pod_not_ready_fails_stage_1_with_its_reason() {
    let mut pods = fixture_json("pods.json");
    let b = &mut pods["items"][1]["status"];
    b["conditions"][2]["status"] = "False".into();
    b["conditions"][2]["reason"] = "ContainersNotReady".into();
    b["containerStatuses"][0]["ready"] = false.into();
    b["containerStatuses"][0]["state"] = serde_json::json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container=server pod=inference-6b7f9c8d4-q8w4z_default"}});
    let r = check_once(|s| {
        s.set(Endpoint::Pods, Reply::json(&pods));
    })
    .await;
    // The HPA and the rest still work with one pod, so only stage 1 fails.
    let why = failed_only(&r, &[1]);
    assert!(why.contains(&format!("pod {POD_B} not ready")), "{why}");
    assert!(why.contains("CrashLoopBackOff"), "{why}");
    assert!(why.contains("logs") && why.contains("--previous"), "{why}");
    assert!(
        r.stages[0].seen.starts_with("1/2 pods ready"),
        "{}",
        r.stages[0].seen
    );
}

#[tokio::test]
async fn metrics_unreachable_through_the_pod_proxy_fails_stage_1() {
    let r = check_once(|s| {
        s.set(
            Endpoint::PodMetrics,
            Reply::status(503, "ServiceUnavailable", "error trying to reach service: dial tcp 10.244.1.7:3000: connect: connection refused"),
        );
    })
    .await;
    let why = failed_only(&r, &[1]);
    assert!(
        why.contains("unreachable through the pod proxy") && why.contains("connection refused"),
        "{why}"
    );
}

#[tokio::test]
async fn a_target_down_fails_stage_2() {
    let mut up = fixture_json("prom-up.json");
    up["data"]["result"][1]["value"][1] = "0".into();
    let r = check_once(|s| {
        s.set(Endpoint::PromUp, Reply::json(&up));
    })
    .await;
    let why = failed_only(&r, &[2]);
    assert!(
        why.contains(&format!("target {POD_B} is down (up=0)")),
        "{why}"
    );
    assert_eq!(
        r.stages[1].seen,
        "up=1 for 1 of 2 ready pods in namespace default"
    );
}

#[tokio::test]
async fn a_pod_not_yet_a_target_fails_stage_2() {
    let mut up = fixture_json("prom-up.json");
    up["data"]["result"].as_array_mut().unwrap().pop();
    let r = check_once(|s| {
        s.set(Endpoint::PromUp, Reply::json(&up));
    })
    .await;
    let why = failed_only(&r, &[2]);
    assert!(
        why.contains(&format!("pod {POD_B} is not a target yet")),
        "{why}"
    );
}

#[tokio::test]
async fn series_without_a_namespace_label_fail_stages_2_and_3() {
    // The seed's scrape (through the Service) gives no namespace label; the namespaced rule's
    // matcher then selects nothing, which `or vector(0)` would hide as 0.
    let mut up = fixture_json("prom-up.json");
    for r in up["data"]["result"].as_array_mut().unwrap() {
        r["metric"].as_object_mut().unwrap().remove("namespace");
    }
    let r = check_once(|s| {
        s.set(Endpoint::PromUp, Reply::json(&up));
        s.set(Endpoint::PromSeries, prom_empty());
        s.set(Endpoint::PromValue, prom_value("0"));
    })
    .await;
    let why = failed_only(&r, &[2, 3]);
    assert!(why.contains("lack the `namespace` label"), "{why}");
    assert!(why.contains("__meta_kubernetes_namespace"), "{why}");
    let s3 = &r.stages[2];
    assert!(
        s3.cause.as_deref().unwrap_or("").contains("or vector(0)"),
        "{s3:?}"
    );
}

#[tokio::test]
async fn nan_from_the_query_fails_stage_3() {
    let r = check_once(|s| {
        s.set(Endpoint::PromValue, prom_value("NaN"));
    })
    .await;
    let why = failed_only(&r, &[3]);
    assert!(why.starts_with("the query returned NaN"), "{why}");
    assert!(why.contains("> 0 or vector(0)"), "{why}");
}

#[tokio::test]
async fn an_empty_query_result_fails_stage_3() {
    let r = check_once(|s| {
        s.set(Endpoint::PromValue, prom_empty());
    })
    .await;
    let why = failed_only(&r, &[3]);
    assert!(
        why.contains("no series (empty result)") && why.contains("items: []"),
        "{why}"
    );
}

#[tokio::test]
async fn several_series_fail_stage_3() {
    let r = check_once(|s| {
        s.set(
            Endpoint::PromValue,
            Reply::json(&serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"pod": POD_A}, "value": [1, "10"]},
                {"metric": {"pod": POD_B}, "value": [1, "11"]}]}})),
        );
    })
    .await;
    let why = failed_only(&r, &[3]);
    assert!(
        why.contains("2 series") && why.contains("sums them"),
        "{why}"
    );
}

#[tokio::test]
async fn prometheus_unreachable_fails_stages_2_and_3() {
    let r = check_once(|s| {
        let down = Reply::status(
            503,
            "ServiceUnavailable",
            "no endpoints available for service \"prometheus-kube-prometheus-prometheus:9090\"",
        );
        s.set(Endpoint::PromUp, down.clone());
        s.set(Endpoint::PromSeries, down.clone());
        s.set(Endpoint::PromValue, down);
    })
    .await;
    let why = failed_only(&r, &[2, 3]);
    assert!(
        why.contains("monitoring/prometheus-kube-prometheus-prometheus is not reachable"),
        "{why}"
    );
    assert!(why.contains("no endpoints available"), "{why}");
}

#[tokio::test]
async fn apiservice_failed_discovery_fails_stage_4_with_reason_and_message() {
    let r = check_once(|s| {
        s.set(
            Endpoint::ApiService,
            Reply::ok(crate::support::kube_stub::fixture(
                "apiservice-failed-discovery.json",
            )),
        );
    })
    .await;
    let why = failed_only(&r, &[4]);
    assert!(
        why.starts_with("Available=False (FailedDiscoveryCheck)"),
        "{why}"
    );
    assert!(why.contains("connect: connection refused"), "{why}");
    assert!(why.contains("may not be ready yet"), "{why}");
}

#[tokio::test]
async fn a_missing_apiservice_fails_stage_4() {
    let r = check_once(|s| {
        s.set(
            Endpoint::ApiService,
            Reply::status(
                404,
                "NotFound",
                "apiservices.apiregistration.k8s.io \"v1beta1.external.metrics.k8s.io\" not found",
            ),
        );
    })
    .await;
    let why = failed_only(&r, &[4]);
    assert!(
        why.contains("APIService not found") && why.contains("rules.external"),
        "{why}"
    );
}

#[tokio::test]
async fn series_not_listed_yet_fails_stage_5_with_empty_items() {
    let mut ext = fixture_json("external-metric.json");
    ext["items"] = serde_json::json!([]);
    let r = check_once(|s| {
        s.set(Endpoint::External, Reply::json(&ext));
    })
    .await;
    let why = failed_only(&r, &[5]);
    assert!(why.starts_with("items: []"), "{why}");
    assert!(
        why.contains("relists every 60 s") && why.contains("--wait 180s"),
        "{why}"
    );
}

#[tokio::test]
async fn an_unknown_metric_fails_stage_5() {
    let r = check_once(|s| {
        s.set(
            Endpoint::External,
            Reply::status(404, "NotFound", "the server could not find the metric inference_request_duration_seconds_per_request for "),
        );
    })
    .await;
    let why = failed_only(&r, &[5]);
    assert!(why.starts_with("HTTP 404 NotFound"), "{why}");
    assert!(
        why.contains("has not listed metric inference_request_duration_seconds_per_request"),
        "{why}"
    );
}

#[tokio::test]
async fn nan_converted_by_the_adapter_fails_stage_5() {
    let mut ext = fixture_json("external-metric.json");
    ext["items"][0]["value"] = "-9223372036854775808m".into();
    let r = check_once(|s| {
        s.set(Endpoint::External, Reply::json(&ext));
    })
    .await;
    let why = failed_only(&r, &[5]);
    assert!(why.contains("converted it to the smallest int64"), "{why}");
}

#[tokio::test]
async fn the_hpa_failing_to_get_the_metric_fails_stage_6() {
    let mut hpa = fixture_json("hpa.json");
    let st = &mut hpa["status"];
    st.as_object_mut().unwrap().remove("currentMetrics");
    st["conditions"][1] = serde_json::json!({
        "type": "ScalingActive", "status": "False", "lastTransitionTime": "2026-11-27T20:01:27Z",
        "reason": "FailedGetExternalMetric",
        "message": "the HPA was unable to compute the replica count: unable to get external metric default/inference_request_duration_seconds_per_request/nil: unable to fetch metrics from external metrics API: the server is currently unable to handle the request (get inference_request_duration_seconds_per_request.external.metrics.k8s.io)"
    });
    let r = check_once(|s| {
        s.set(Endpoint::Hpa, Reply::json(&hpa));
    })
    .await;
    let why = failed_only(&r, &[6]);
    assert!(
        why.contains("ScalingActive=False (FailedGetExternalMetric)"),
        "{why}"
    );
    assert!(
        why.contains("unable to fetch metrics from external metrics API"),
        "{why}"
    );
    assert!(why.contains("stages 4 and 5"), "{why}");
    assert!(
        why.contains("metric <none> / target 12.000 (Value); replicas 2 -> 2"),
        "{why}"
    );
}

#[tokio::test]
async fn a_missing_hpa_fails_stage_6() {
    let r = check_once(|s| {
        s.set(
            Endpoint::Hpa,
            Reply::status(
                404,
                "NotFound",
                "horizontalpodautoscalers.autoscaling \"inference\" not found",
            ),
        );
    })
    .await;
    let why = failed_only(&r, &[6]);
    assert!(
        why.contains("no HPA inference") && why.contains("kscale deploy"),
        "{why}"
    );
}

#[tokio::test]
async fn the_report_serializes_to_json_with_every_stage() {
    let r = check_once(|s| {
        s.set(Endpoint::PromValue, prom_value("NaN"));
    })
    .await;
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["passed"], false);
    assert_eq!(v["attempts"], 1);
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 6);
    for (i, s) in stages.iter().enumerate() {
        assert_eq!(s["stage"], i as u64 + 1);
        assert!(s["name"].is_string() && s["seen"].is_string());
    }
    assert_eq!(stages[2]["passed"], false);
    assert!(stages[2]["cause"].as_str().unwrap().contains("0/0"));
    assert!(stages[2]["fix"].is_string());
    assert!(stages[0].get("cause").is_none(), "no cause on a pass");
    assert_eq!(v["hpa"]["desired_replicas"], 2);
    assert_eq!(v["pods"][1]["pod"], POD_B);
    assert!(
        v["query"]
            .as_str()
            .unwrap()
            .contains("namespace=\"default\"")
    );
}

#[tokio::test]
async fn wait_succeeds_once_the_adapter_lists_the_series() {
    let mut s = Scenario::healthy();
    let mut empty = fixture_json("external-metric.json");
    empty["items"] = serde_json::json!([]);
    s.queue(
        Endpoint::External,
        vec![Reply::json(&empty), Reply::json(&empty)],
    );
    let args = MetricsArgs {
        wait: Some(Duration::from_secs(30)),
        interval: Duration::from_millis(20),
        ..MetricsArgs::default()
    };
    let (r, _stub) = check_with(s, &args).await;
    assert!(r.passed, "{}", r.to_text());
    assert_eq!(r.attempts, 3, "two attempts with items: [], then green");
}

#[tokio::test]
async fn wait_fails_at_the_deadline_with_the_last_reason() {
    let mut s = Scenario::healthy();
    s.set(
        Endpoint::ApiService,
        Reply::ok(crate::support::kube_stub::fixture(
            "apiservice-failed-discovery.json",
        )),
    );
    let args = MetricsArgs {
        wait: Some(Duration::from_millis(300)),
        interval: Duration::from_millis(50),
        ..MetricsArgs::default()
    };
    let (r, _stub) = check_with(s, &args).await;
    assert!(!r.passed);
    assert!(r.attempts >= 2, "retried: {}", r.attempts);
    assert!(
        r.elapsed_seconds >= 0.3 && r.elapsed_seconds < 20.0,
        "{}",
        r.elapsed_seconds
    );
    let f = r.first_failure().unwrap();
    assert_eq!(f.stage, 4);
    assert!(f.cause.as_deref().unwrap().contains("FailedDiscoveryCheck"));
}

#[tokio::test]
async fn watch_records_timeline_rows() {
    let stub = KubeStub::start(Scenario::healthy());
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("run.csv");
    let args = MetricsArgs {
        watch: true,
        watch_for: Some(Duration::from_millis(250)),
        record: Some(csv.clone()),
        interval: Duration::from_millis(100),
        ..MetricsArgs::default()
    };
    let r = kscale::metrics::run(
        stub.client(),
        &Config::default(),
        &args,
        &Ui::new(Mode::Plain),
    )
    .await
    .unwrap();
    assert!(r.passed);
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], kscale::timeline::csv_header());
    assert!(lines.len() >= 3, "a header and at least two rows: {text}");
    let rows = kscale::timeline::parse_csv(&text).unwrap();
    let r = &rows[0];
    // replicas 2 -> 2, metric 10.048 against 12, queue 2+2, in flight 1+1.
    assert_eq!(
        (
            r.replicas_current,
            r.replicas_desired,
            r.metric_value,
            r.target,
            r.load,
            r.queue_depth,
            r.in_flight
        ),
        (2, 2, Some(10.048), 12.0, None, Some(4.0), Some(2.0)),
        "{text}"
    );
    // The wall-clock column is what `kscale plot` aligns this file with `load --record`'s on.
    let now = kscale::timeline::unix_now().unwrap();
    assert!(
        rows.iter()
            .all(|r| r.unix_seconds.is_some_and(|u| (now - u).abs() < 60.0)),
        "{text}"
    );
    // Appending again keeps one header.
    kscale::metrics::run(
        stub.client(),
        &Config::default(),
        &args,
        &Ui::new(Mode::Json),
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.matches("t_seconds").count(), 1, "{text}");
}

/// A kubeconfig whose context `stub` points at the stand-in API server.
fn kubeconfig_for(stub: &KubeStub, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let server = format!("http://{}", stub.addr());
    let text = crate::support::fixtures::kubeconfig("stub", &server, Some("default"));
    std::fs::write(&path, text).unwrap();
    path
}

async fn kscale_metrics_binary(stub: &KubeStub, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_for(stub, dir.path());
    let mut cmd = crate::support::kscale(dir.path());
    cmd.args(["--context", "stub"])
        .args(extra)
        .env("KUBECONFIG", &kubeconfig);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("kscale metrics finishes within 60 s")
        .expect("kscale runs")
}

#[tokio::test]
async fn the_binary_prints_json_and_exits_0_only_when_every_stage_passes() {
    let stub = KubeStub::start(Scenario::healthy());
    let out = kscale_metrics_binary(&stub, &["--output", "json", "metrics"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is one JSON document");
    assert_eq!(v["passed"], true);
    assert_eq!(v["stages"].as_array().unwrap().len(), 6);

    stub.update(|s| {
        s.set(Endpoint::PromValue, prom_value("NaN"));
    });
    let out = kscale_metrics_binary(&stub, &["metrics"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .contains("✗ 3. the adapter's query returns one finite number: the query returned NaN"),
        "{stdout}"
    );
    assert!(stdout.contains("5 of 6 stages passed"), "{stdout}");
}

#[tokio::test]
async fn the_concurrency_profile_checks_its_own_rule() {
    let stub = KubeStub::start(Scenario::healthy());
    let mut cfg = Config::default();
    cfg.metric.profile = kscale::config::MetricProfile::Concurrency;
    let r = kscale::metrics::check(
        stub.client(),
        &cfg,
        &MetricsArgs::default(),
        &Ui::new(Mode::Quiet),
        no_prediction,
    )
    .await
    .unwrap();
    assert!(r.passed, "{}", r.to_text());
    assert!(
        r.query.starts_with("sum(inference_requests_in_flight{job=\"kscale-inference\",namespace=\"default\"} + inference_queue_depth{job=\"kscale-inference\",namespace=\"default\"}) by ()"),
        "{}",
        r.query
    );
    let reqs = stub.requests();
    assert!(
        reqs.iter().any(|p| p.ends_with(
            "?query=inference_queue_depth{job=\"kscale-inference\",namespace=\"default\"}"
        )),
        "the series the adapter lists, in the namespace: {reqs:#?}"
    );
}

/// A stand-in for the HPA algorithm: `ceil(sum / target × ready pods)` (External, Value).
fn ratio_times_ready(
    view: &kscale::metrics::HpaView,
    external: Option<&[f64]>,
    ready: u32,
    _: &Config,
) -> Option<u32> {
    let sum: f64 = external?.iter().sum();
    Some((sum / view.target? * f64::from(ready)).ceil() as u32)
}

fn always_five(_: &kscale::metrics::HpaView, _: Option<&[f64]>, _: u32, _: &Config) -> Option<u32> {
    Some(5)
}

#[tokio::test]
async fn the_decision_hook_sees_the_external_value_and_a_disagreement_is_shown() {
    let stub = KubeStub::start(Scenario::healthy());
    let args = MetricsArgs::default();
    let r = kscale::metrics::check(
        stub.client(),
        &Config::default(),
        &args,
        &Ui::new(Mode::Quiet),
        ratio_times_ready,
    )
    .await
    .unwrap();
    // 10.048 / 12 × 2 ready pods = 1.67 -> 2, as the HPA's status says.
    assert_eq!(r.hpa.as_ref().unwrap().expected_desired_replicas, Some(2));
    assert!(
        !r.stages[5].seen.contains("proposes"),
        "{}",
        r.stages[5].seen
    );

    let r = kscale::metrics::check(
        stub.client(),
        &Config::default(),
        &args,
        &Ui::new(Mode::Quiet),
        always_five,
    )
    .await
    .unwrap();
    assert!(
        r.stages[5].seen.contains("the metric alone proposes 5"),
        "{}",
        r.stages[5].seen
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["hpa"]["expected_desired_replicas"], 5);
}
