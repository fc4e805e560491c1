//! The real servers' chain on the real control plane: every server's rendered objects are
//! accepted by the real kube-apiserver (server-side apply, dry run, strict field validation),
//! and `kscale --server vllm` is deployed with each kwok pod's process being vLLM's exposition
//! double (`cargo xtask controlplane exposition-double vllm`), so that the real Prometheus
//! scrapes vLLM's own names, the real prometheus-adapter serves `vllm:num_requests_waiting`
//! (colon and all) as an external metric, and the real HPA controller scales on it.

use std::process::Command;
use std::time::Duration;

use kscale::config::servers::ServerKind;

use super::harness::{Harness, IMAGE, KUBECTL_TIMEOUT, set_args};
use super::{applied_objects, metrics_pass, replicas, running_pods, text};

/// The metric, as vLLM names it and as the HPA asks for it.
const METRIC: &str = "vllm:num_requests_waiting";
/// Requests waiting on every pod's double, and the `AverageValue` target (the preset's queue
/// target): one pod makes the HPA want ceil(12 / 5) = 3.
const WAITING: u32 = 12;
const TARGET: u32 = 5;

/// The deployments of this test: a model name for the args, no GPU (kwok nodes have none),
/// the double's values in the pod's environment, 1 s scrapes; `hpa.max_replicas` per step.
const DOUBLE_SETS: &[&str] = &[
    "app.model=test-double",
    "app.gpus=0",
    "app.env.EXPOSITION_DOUBLE_WAITING=12",
    "app.env.EXPOSITION_DOUBLE_RUNNING=2",
    "metric.scrape_interval_seconds=1",
    "metric.relist_interval_seconds=1",
    "hpa.scale_up.stabilization_window_seconds=0",
];

fn settings(server: ServerKind) -> Vec<String> {
    let mut args = vec!["--server".to_string(), server.as_str().to_string()];
    args.extend(set_args(DOUBLE_SETS));
    args
}

/// The real servers, each with the external metric its default profile scales on, the value
/// one pod's double makes it (waiting 12, running 2) and stage 1's reading of that pod.
const OTHERS: &[(ServerKind, &str, &str, &str)] = &[
    (ServerKind::Tgi, "tgi_queue_size", "12", "12/2"),
    // No running gauge: in flight reads 0. The double listens on the port named `metrics`.
    (
        ServerKind::Triton,
        "nv_inference_pending_request_count",
        "12",
        "12/0",
    ),
    // Concurrency: busy slots plus deferred requests, under a name of kscale's (no colon).
    (
        ServerKind::Llamacpp,
        "llamacpp_requests_per_pod",
        "14",
        "12/2",
    ),
];

/// One adapter config with every real server's rendered rule, as each server's own render
/// writes it, so that one harness serves them all.
fn merged_adapter_config(dir: &std::path::Path) -> std::path::PathBuf {
    let mut rules = Vec::new();
    for server in [
        ServerKind::Vllm,
        ServerKind::Tgi,
        ServerKind::Triton,
        ServerKind::Llamacpp,
    ] {
        let out_dir = dir.join(format!("adapter-{server}"));
        let out = crate::support::kscale(dir)
            .args(settings(server))
            .args(["render", "--output-dir"])
            .arg(&out_dir)
            .output()
            .expect("run kscale render");
        assert!(out.status.success(), "render {server}: {}", text(&out));
        let yaml =
            std::fs::read_to_string(out_dir.join(kscale::render::file::PROMETHEUS_ADAPTER_CONFIG))
                .expect("rendered adapter config");
        let config = kscale::manifest::parse_yaml(&yaml).expect("adapter config is YAML");
        rules.extend(
            config["externalRules"]
                .as_array()
                .cloned()
                .expect("externalRules"),
        );
    }
    let path = dir.join("adapter-config.json");
    // JSON is YAML: the adapter reads it as its config.
    let merged = serde_json::json!({ "externalRules": rules });
    std::fs::write(&path, merged.to_string()).expect("write the adapter config");
    path
}

/// `kubectl <args>` against the harness; the output.
fn kubectl(h: &Harness, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&h.kubeconfig)
        .args(["--context", "kscale-harness", KUBECTL_TIMEOUT])
        .args(args)
        .env("PATH", &h.path)
        .output()
        .expect("run kubectl")
}

/// `kubectl apply` of `file` server-side as kscale applies (its field manager), as a dry run with
/// strict field validation; the output and its text.
fn strict_dry_run(h: &Harness, file: &std::path::Path) -> (std::process::Output, String) {
    let path = file.to_string_lossy();
    let out = kubectl(
        h,
        &[
            "apply",
            "--server-side",
            "--field-manager=kscale",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            &path,
        ],
    );
    let said = text(&out);
    (out, said)
}

/// Every server's rendered objects, applied server-side as a dry run with strict field
/// validation: the API server refuses an unknown or duplicate field instead of warning.
fn step_every_server_applies_strictly(h: &Harness) {
    for server in ServerKind::ALL {
        let dir = h.work.path().join(format!("strict-{server}"));
        let dir_arg = dir.to_string_lossy().into_owned();
        let mut args = vec![
            "--server",
            server.as_str(),
            "--set",
            "app.model=test-double",
            "render",
            "--output-dir",
            &dir_arg,
        ];
        // The real servers render their pinned images; kscale-server's is built, so named here.
        if server == ServerKind::Kscale {
            args.extend(["--image", IMAGE]);
        }
        let out = crate::support::kscale(h.work.path())
            .args(&args)
            .output()
            .expect("run kscale render");
        assert!(
            out.status.success(),
            "kscale --server {server} render failed:\n{}",
            text(&out)
        );
        use kscale::render::file;
        for name in [
            file::MONITORING_NAMESPACE,
            file::SCRAPE_CONFIG_SECRET,
            file::DEPLOYMENT,
            file::SERVICE,
            file::PDB,
            file::HPA,
        ] {
            let (out, said) = strict_dry_run(h, &dir.join(name));
            assert!(
                out.status.success() && !said.to_lowercase().contains("warning"),
                "the API server does not take {server}'s {name} strictly:\n{said}\n{}",
                std::fs::read_to_string(dir.join(name)).unwrap_or_default()
            );
        }
    }
}

/// The control: the same dry run refuses a Deployment with a field the API does not know, so
/// the passes above are strict validation passing, not validation skipped.
fn step_strict_validation_refuses_an_unknown_field(h: &Harness) {
    let dir = h.work.path().join("strict-vllm");
    let rendered = std::fs::read_to_string(dir.join(kscale::render::file::DEPLOYMENT))
        .expect("rendered deployment");
    let bad = rendered.replacen("\nspec:\n", "\nspec:\n  minReadySecond: 5\n", 1);
    assert_ne!(
        bad, rendered,
        "the rendered Deployment has a top-level spec"
    );
    let path = dir.join("misspelled-deployment.yaml");
    std::fs::write(&path, bad).expect("write the misspelled Deployment");
    let (out, said) = strict_dry_run(h, &path);
    assert!(
        !out.status.success() && said.contains("minReadySecond"),
        "strict validation let an unknown field through:\n{said}"
    );
}

/// The adapter's answer for `metric` in `default`: (metricName, value).
fn external_value(h: &Harness, metric: &str) -> Result<(String, String), String> {
    let path = format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/{metric}");
    let out = kubectl(h, &["get", "--raw", &path]);
    if !out.status.success() {
        return Err(text(&out));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", text(&out)))?;
    match v["items"].as_array().map(Vec::as_slice) {
        Some([one]) => Ok((
            one["metricName"].as_str().unwrap_or_default().to_string(),
            one["value"].as_str().unwrap_or_default().to_string(),
        )),
        _ => Err(format!("not one item: {v}")),
    }
}

fn hpa_condition(hpa: &serde_json::Value, kind: &str) -> Option<(String, String)> {
    hpa["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// Deploys vLLM capped at one replica: the adapter serves exactly one pod's 12 under the colon
/// name, and the HPA reads it (ScalingActive) but may not act on it (ScalingLimited).
fn step_one_pod_read_exactly(h: &Harness) {
    let out = h.kscale(&["deploy", "--image", IMAGE, "--set", "hpa.max_replicas=1"]);
    let said = text(&out);
    assert!(
        out.status.success(),
        "kscale --server vllm deploy failed:\n{said}"
    );
    let objects = applied_objects(&said);
    for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "Secret"] {
        assert!(
            objects.iter().any(|(k, _)| k == kind),
            "deploy summary lists no {kind}:\n{said}"
        );
    }
    let d = h.get(&["deployment", "inference", "-n", "default"]);
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["ports"][0]["containerPort"], 8000, "{c}");
    assert_eq!(c["ports"][0]["name"], "http", "{c}");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health", "{c}");
    let args: Vec<&str> = c["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    assert!(
        args.windows(2).any(|w| w == ["--model", "test-double"]),
        "{args:?}"
    );
    let (name, value) = h.until(
        "the adapter serves vllm:num_requests_waiting",
        Duration::from_secs(120),
        || match external_value(h, METRIC)? {
            (n, v) if v == WAITING.to_string() => Ok((n, v)),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(name, METRIC, "the external metric keeps vLLM's colon name");
    assert_eq!(value, WAITING.to_string());
    h.until(
        "the HPA reads the metric (ScalingActive) and is held at one",
        Duration::from_secs(60),
        || {
            let hpa = h.get(&["hpa", "inference", "-n", "default"]);
            let active = hpa_condition(&hpa, "ScalingActive");
            let limited = hpa_condition(&hpa, "ScalingLimited");
            let current = hpa["status"]["currentMetrics"][0]["external"]["current"]["averageValue"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match (&active, &limited) {
                (Some((a, _)), Some((l, r)))
                    if a == "True" && l == "True" && r == "TooManyReplicas" && current == "12" =>
                {
                    Ok(())
                }
                _ => Err(format!(
                    "ScalingActive {active:?}, ScalingLimited {limited:?}, averageValue {current:?}"
                )),
            }
        },
    );
    assert_eq!(replicas(h), 1);
}

/// Lifts the cap to 4: the controller computes ceil(1 × 12 / 5) = 3 from the double's value,
/// then, with three pods of 12 each, ceil(3 × 12 / 5) = 8, held at 4.
fn step_hpa_scales_on_the_colon_metric(h: &Harness) {
    let out = h.kscale(&["deploy", "--image", IMAGE, "--set", "hpa.max_replicas=4"]);
    assert!(
        out.status.success(),
        "kscale deploy failed:\n{}",
        text(&out)
    );
    let mut seen = vec![replicas(h)];
    h.until("four replicas", Duration::from_secs(120), || {
        let n = replicas(h);
        if seen.last() != Some(&n) {
            seen.push(n);
        }
        if n == 4 {
            Ok(())
        } else {
            Err(format!("replicas seen {seen:?}"))
        }
    });
    assert_eq!(
        seen,
        [1, 3, 4],
        "the first decision is ceil({WAITING} / {TARGET}) = 3, then the cap"
    );
    let events = kubectl(
        h,
        &[
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            "involvedObject.kind=HorizontalPodAutoscaler,reason=SuccessfulRescale",
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ],
    );
    let events = text(&events);
    assert!(
        events.lines().any(|l| l.starts_with("New size: 3;")
            && l.contains(METRIC)
            && l.contains("above target")),
        "no rescale to 3 on {METRIC}:\n{events}"
    );
    let (_, value) = h.until(
        "the adapter sums four pods",
        Duration::from_secs(60),
        || match external_value(h, METRIC)? {
            (n, v) if v == (4 * WAITING).to_string() => Ok((n, v)),
            other => Err(format!("{other:?}")),
        },
    );
    assert_eq!(value, "48");
}

/// `kscale --server vllm metrics`: stage 1 reads vLLM's gauges from each pod through the API
/// server's pod proxy, and every later stage follows the same colon name to the HPA.
fn step_metrics_pass(h: &Harness) {
    let report = metrics_pass(h, "2m");
    assert!(
        report.contains(METRIC),
        "the report names {METRIC}:\n{report}"
    );
    // Stage 1's reading of each pod's exposition: queue depth / in flight, the double's values.
    assert_eq!(
        report.matches(" 12/2").count(),
        4,
        "stage 1 read waiting 12 and running 2 from each of the four pods:\n{report}"
    );
    eprintln!("kscale --server vllm metrics:\n{report}");
}

/// Deploys `server` over the previous one, capped at one pod, gives its pod that server's
/// exposition double, and follows its metric through the real adapter, the HPA and
/// `kscale metrics`.
fn step_server_on_its_double(
    h: &Harness,
    server: ServerKind,
    metric: &str,
    value: &str,
    pod: &str,
) {
    let preset = kscale::config::Config::defaults(server, server.preset().default_profile);
    assert_eq!(preset.metric.name, metric, "{server}'s default metric");
    let settings = settings(server);
    let out = h
        .kscale_cmd_with(
            &settings,
            &["deploy", "--image", IMAGE, "--set", "hpa.max_replicas=1"],
        )
        .output()
        .expect("run kscale deploy");
    assert!(
        out.status.success(),
        "kscale --server {server} deploy failed:\n{}",
        text(&out)
    );
    h.supervise(&["--exposition-double", server.as_str()]);
    h.until(
        &format!("{server}: one pod"),
        Duration::from_secs(120),
        || match (replicas(h), running_pods(h).len()) {
            (1, 1) => Ok(()),
            other => Err(format!("(replicas, running pods) {other:?}")),
        },
    );
    h.until(
        &format!("the adapter serves {metric}"),
        Duration::from_secs(120),
        || match external_value(h, metric)? {
            (n, v) if n == metric && v == value => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    h.until(
        &format!("the HPA reads {metric}"),
        Duration::from_secs(60),
        || {
            let hpa = h.get(&["hpa", "inference", "-n", "default"]);
            let active = hpa_condition(&hpa, "ScalingActive");
            let m = &hpa["status"]["currentMetrics"][0]["external"];
            let (name, current) = (
                m["metric"]["name"].as_str().unwrap_or_default(),
                m["current"]["averageValue"].as_str().unwrap_or_default(),
            );
            match &active {
                Some((a, _)) if a == "True" && name == metric && current == value => Ok(()),
                _ => Err(format!("ScalingActive {active:?}, {name} = {current:?}")),
            }
        },
    );
    let out = h
        .kscale_cmd_with(&settings, &["metrics", "--wait", "2m"])
        .output()
        .expect("run kscale metrics");
    let report = text(&out);
    assert!(
        out.status.success() && report.contains("6 of 6 stages passed"),
        "kscale --server {server} metrics:\n{report}"
    );
    assert_eq!(
        report.matches(&format!(" {pod}")).count(),
        1,
        "stage 1 read {pod} (waiting/in flight) from the one pod:\n{report}"
    );
}

#[test]
fn real_servers_on_a_real_control_plane() {
    if !super::needs(
        "the control-plane test (a network namespace, upstream programs built from source)",
        &[super::Need::Root, super::Need::Go],
    ) {
        return;
    }
    let preset =
        kscale::config::Config::defaults(ServerKind::Vllm, kscale::config::MetricProfile::Queue);
    assert_eq!(
        (preset.metric.name.as_str(), preset.metric.target),
        (METRIC, f64::from(TARGET)),
        "vLLM's default queue metric and target"
    );
    let _one_harness = super::one_harness();
    let started = std::time::Instant::now();
    let adapter_dir = tempfile::tempdir().expect("temp dir");
    let adapter_config = merged_adapter_config(adapter_dir.path());
    let h = Harness::start_with(
        settings(ServerKind::Vllm),
        Some(adapter_config),
        &["--exposition-double", "vllm"],
        "20s",
    );
    eprintln!("harness up in {:.0} s", started.elapsed().as_secs_f64());
    step_every_server_applies_strictly(&h);
    step_strict_validation_refuses_an_unknown_field(&h);
    eprintln!(
        "strict dry runs done at {:.0} s",
        started.elapsed().as_secs_f64()
    );
    step_one_pod_read_exactly(&h);
    eprintln!(
        "one pod read exactly at {:.0} s",
        started.elapsed().as_secs_f64()
    );
    step_hpa_scales_on_the_colon_metric(&h);
    eprintln!(
        "scaled 1 -> 3 -> 4 at {:.0} s",
        started.elapsed().as_secs_f64()
    );
    step_metrics_pass(&h);
    eprintln!(
        "kscale metrics passed at {:.0} s",
        started.elapsed().as_secs_f64()
    );
    for &(server, metric, value, pod) in OTHERS {
        step_server_on_its_double(&h, server, metric, value, pod);
        eprintln!(
            "{server}: {metric} = {value} through the adapter, HPA and kscale metrics at {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
}
