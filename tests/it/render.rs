//! Rendered manifests: typed k8s-openapi round trips, the values that reproduce the original,
//! snapshots, and the scrape job checked by a real `promtool`.

use crate::support::needs::{Need, needs};
use k8s_openapi::api::{
    apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler, core::v1 as core,
};
use kscale::config::{Config, Layers};
use kscale::render::{self, FileKind, RenderedFile, Templates, file};

const IMAGE: &str = "kscale-server:0123456789ab";

fn rendered(cfg: &Config) -> Vec<RenderedFile> {
    render::render_all(cfg, &Templates::embedded(), IMAGE).expect("default config renders")
}

fn file<'a>(files: &'a [RenderedFile], name: &str) -> &'a RenderedFile {
    files
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("{name} not rendered"))
}

fn typed<T: serde::de::DeserializeOwned>(files: &[RenderedFile], name: &str) -> T {
    let v = kscale::manifest::parse_yaml(&file(files, name).content).expect("yaml");
    serde_path_to_error::deserialize(v).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn concurrency() -> Config {
    Config::load(&Layers {
        sets: vec![("metric.profile".into(), "concurrency".into())],
        ..Default::default()
    })
    .expect("concurrency profile loads")
}

#[test]
fn every_object_survives_a_typed_round_trip() {
    for cfg in [Config::default(), concurrency()] {
        let files = rendered(&cfg);
        let objects: Vec<_> = files
            .iter()
            .filter(|f| f.kind == FileKind::Object)
            .collect();
        assert_eq!(
            objects.len(),
            7,
            "namespace, secret, deployment, service, pdb, hpa, dashboard"
        );
        for f in objects {
            let v = kscale::manifest::parse_yaml(&f.content).expect("yaml");
            render::check_object(&v).unwrap_or_else(|e| panic!("{}: {e:#}", f.name));
        }
    }
}

#[test]
fn pods_spread_over_the_nodes_and_drains_take_them_one_at_a_time() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let files = rendered(&Config::default());
    let d: Deployment = typed(&files, file::DEPLOYMENT);
    let pod = d.spec.expect("spec").template;
    let pod_labels = pod.metadata.expect("metadata").labels.expect("labels");
    let spread = pod
        .spec
        .expect("pod spec")
        .topology_spread_constraints
        .expect("spread");
    assert_eq!(spread.len(), 1, "{spread:?}");
    let s = &spread[0];
    assert_eq!(
        (
            s.max_skew,
            s.topology_key.as_str(),
            s.when_unsatisfiable.as_str()
        ),
        (1, "kubernetes.io/hostname", "ScheduleAnyway")
    );
    let selected = s
        .label_selector
        .as_ref()
        .and_then(|l| l.match_labels.clone())
        .expect("the spread counts the app's pods");
    assert!(
        selected.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "{selected:?}"
    );
    assert_eq!(
        s.match_label_keys.as_deref(),
        Some(&["pod-template-hash".to_string()][..])
    );

    let pdb: PodDisruptionBudget = typed(&files, file::PDB);
    let spec = pdb.spec.expect("spec");
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(
        spec.min_available, None,
        "a single replica must stay drainable"
    );
    assert_eq!(
        spec.unhealthy_pod_eviction_policy.as_deref(),
        Some("AlwaysAllow")
    );
    let selected = spec
        .selector
        .and_then(|l| l.match_labels)
        .expect("the budget selects the app's pods");
    assert!(
        selected.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "{selected:?}"
    );
    assert_eq!(pdb.metadata.namespace.as_deref(), Some("default"));
}

#[test]
fn hpa_reproduces_the_original_by_default() {
    let hpa: HorizontalPodAutoscaler = typed(&rendered(&Config::default()), file::HPA);
    let spec = hpa.spec.expect("spec");
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(1), 10));
    assert_eq!(spec.scale_target_ref.kind, "Deployment");
    let metric = &spec.metrics.as_ref().expect("metrics")[0];
    assert_eq!(metric.type_, "External");
    let ext = metric.external.as_ref().expect("external");
    assert_eq!(
        ext.metric.name,
        "inference_request_duration_seconds_per_request"
    );
    assert_eq!(ext.target.type_, "Value");
    assert_eq!(ext.target.value.as_ref().map(|q| q.0.as_str()), Some("12"));
    let behavior = spec.behavior.expect("behavior");
    let up = behavior.scale_up.expect("scaleUp");
    let down = behavior.scale_down.expect("scaleDown");
    assert_eq!(up.stabilization_window_seconds, Some(240));
    assert_eq!(down.stabilization_window_seconds, Some(300));
    let up_p = &up.policies.expect("policies")[0];
    let down_p = &down.policies.expect("policies")[0];
    assert_eq!(
        (up_p.type_.as_str(), up_p.value, up_p.period_seconds),
        ("Pods", 10, 60)
    );
    assert_eq!(
        (down_p.type_.as_str(), down_p.value, down_p.period_seconds),
        ("Pods", 10, 120)
    );
}

#[test]
fn concurrency_profile_targets_an_average_value() {
    let cfg = concurrency();
    let hpa: HorizontalPodAutoscaler = typed(&rendered(&cfg), file::HPA);
    let ext = hpa.spec.expect("spec").metrics.expect("metrics")[0]
        .external
        .clone()
        .expect("external");
    assert_eq!(ext.target.type_, "AverageValue");
    assert_eq!(
        ext.target.average_value.map(|q| q.0),
        Some(kscale::quantity::format(cfg.metric.target))
    );
    assert_eq!(ext.metric.name, cfg.metric.name);
}

#[test]
fn deployment_is_hardened_and_drains_within_its_grace_period() {
    let cfg = Config::default();
    let d: Deployment = typed(&rendered(&cfg), file::DEPLOYMENT);
    let spec = d.spec.expect("spec");
    assert_eq!(
        spec.replicas, None,
        "the HPA owns replicas; a re-apply must not reset them"
    );
    let pod = spec.template.spec.expect("pod spec");
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let sc = c.security_context.as_ref().expect("securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(
        pod.security_context
            .as_ref()
            .and_then(|s| s.run_as_non_root),
        Some(true)
    );
    assert_eq!(
        c.liveness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.as_deref()),
        Some("/healthz")
    );
    assert_eq!(
        c.readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.as_deref()),
        Some("/readyz")
    );
    let env = c.env.as_ref().expect("env");
    let pod_name = env.iter().find(|e| e.name == "POD_NAME").expect("POD_NAME");
    assert_eq!(
        pod_name
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str()),
        Some("metadata.name")
    );
    let value = |n: &str| {
        env.iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        value("INFERENCE_SECONDS").parse::<f64>().ok(),
        Some(cfg.app.inference_seconds)
    );
    assert_eq!(value("WORKERS"), "1");
    let pre_stop = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.sleep.as_ref())
        .expect("preStop sleep");
    let grace = pod.termination_grace_period_seconds.expect("grace");
    let worst_drain = (cfg.app.max_queue + cfg.app.workers) as f64 / cfg.app.workers as f64
        * cfg.app.inference_seconds;
    assert!(
        grace as f64 > pre_stop.seconds as f64 + worst_drain,
        "grace {grace} must exceed preStop + {worst_drain} s drain"
    );
}

#[test]
fn service_is_a_nodeport_like_the_original() {
    let s: core::Service = typed(&rendered(&Config::default()), file::SERVICE);
    let spec = s.spec.expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    let port = &spec.ports.expect("ports")[0];
    assert_eq!((port.port, port.node_port), (3000, Some(31000)));
}

#[test]
fn scrape_secret_carries_the_rendered_job_and_values_point_at_it() {
    let files = rendered(&Config::default());
    let secret: core::Secret = typed(&files, file::SCRAPE_CONFIG_SECRET);
    let data = secret.string_data.expect("stringData");
    assert_eq!(
        data.get(render::SCRAPE_SECRET_KEY),
        Some(&file(&files, file::SCRAPE_CONFIG).content)
    );
    let values =
        kscale::manifest::parse_yaml(&file(&files, file::PROMETHEUS_VALUES).content).expect("yaml");
    let s = &values["prometheus"]["prometheusSpec"]["additionalScrapeConfigsSecret"];
    assert_eq!(s["enabled"], true);
    assert_eq!(s["name"], render::SCRAPE_SECRET);
    assert_eq!(s["key"], render::SCRAPE_SECRET_KEY);
    assert_eq!(secret.metadata.namespace.as_deref(), Some("monitoring"));
}

#[test]
fn adapter_values_serve_one_namespaced_external_metric_and_nothing_else() {
    let cfg = Config::default();
    let files = rendered(&cfg);
    let v = kscale::manifest::parse_yaml(&file(&files, file::PROMETHEUS_ADAPTER).content)
        .expect("yaml");
    assert_eq!(
        v["rules"]["default"], false,
        "must not take v1beta1.metrics.k8s.io from metrics-server"
    );
    assert!(v["rules"].get("custom").is_none() && v["rules"].get("resource").is_none());
    let ext = v["rules"]["external"].as_array().expect("external rules");
    assert_eq!(ext.len(), 1);
    let rule = render::adapter_rule(&cfg);
    assert_eq!(ext[0]["metricsQuery"], rule.metrics_query.as_str());
    assert_eq!(ext[0]["seriesQuery"], rule.series_query.as_str());
    assert_eq!(ext[0]["name"]["as"], cfg.metric.name.as_str());
    assert_eq!(
        ext[0]["resources"]["overrides"]["namespace"]["resource"],
        "namespace"
    );
    assert_eq!(
        v["prometheus"]["url"],
        "http://prometheus-kube-prometheus-prometheus.monitoring.svc"
    );
    assert_eq!(v["prometheus"]["port"], 9090);
    // Ready once it serves, not after the chart's 30 s: every HPA sync fails until then.
    let ready = &v["readinessProbe"];
    assert_eq!(ready["httpGet"]["path"], "/readyz");
    assert_eq!(ready["httpGet"]["scheme"], "HTTPS");
    // Set, not left out: helm merges the values into the chart's `initialDelaySeconds: 30`.
    assert_eq!(ready["initialDelaySeconds"], 0, "{ready:?}");
    assert!(
        ready["periodSeconds"].as_u64().is_some_and(|p| p <= 5),
        "{ready:?}"
    );
}

#[test]
fn rendered_stream_matches_snapshot() {
    insta::assert_snapshot!(
        "default_stream",
        render::to_stream(&rendered(&Config::default()))
    );
    insta::assert_snapshot!(
        "concurrency_stream",
        render::to_stream(&rendered(&concurrency()))
    );
}

#[test]
fn template_overrides_replace_by_name_and_refuse_unknown_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(file::SERVICE),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: custom-{{ app.name }}\n",
    )
    .expect("write");
    let t = Templates::with_overrides(dir.path()).expect("override loads");
    let files = render::render_all(&Config::default(), &t, IMAGE).expect("renders");
    assert!(
        file(&files, file::SERVICE)
            .content
            .contains("name: custom-inference")
    );

    std::fs::write(dir.path().join("servce.yaml"), "x: 1\n").expect("write");
    let err = Templates::with_overrides(dir.path())
        .expect_err("unknown template refused")
        .to_string();
    assert!(
        err.contains("servce.yaml") && err.contains(file::SERVICE),
        "{err}"
    );
}

#[test]
fn a_template_error_names_the_file_and_the_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(file::HPA), "name: {{ app.nmae }}\n").expect("write");
    let t = Templates::with_overrides(dir.path()).expect("loads");
    let err = format!(
        "{:#}",
        render::render_all(&Config::default(), &t, IMAGE).expect_err("undefined variable")
    );
    assert!(err.contains(file::HPA) && err.contains("nmae"), "{err}");
}

/// Debian's Prometheus has no Kubernetes service discovery: give the job the targets and
/// `__meta_kubernetes_*` labels discovery would produce, and let its relabelling run unchanged.
fn job_with_static_targets(job_yaml: &str) -> serde_json::Value {
    let mut jobs = kscale::manifest::parse_yaml(job_yaml).expect("scrape job yaml");
    let job = &mut jobs[0];
    let obj = job.as_object_mut().expect("job is a mapping");
    assert!(
        obj.remove("kubernetes_sd_configs").is_some(),
        "the rendered job uses pod discovery"
    );
    obj.insert(
        "static_configs".into(),
        serde_json::json!([{
            "targets": ["127.0.0.1:3000"],
            "labels": {
                "__meta_kubernetes_namespace": "default",
                "__meta_kubernetes_pod_name": "inference-abc",
                "__meta_kubernetes_pod_label_app": "inference",
                "__meta_kubernetes_pod_container_port_name": "http"
            }
        }]),
    );
    jobs
}

#[test]
fn scrape_job_passes_a_real_promtool_check() {
    if !needs("promtool's check of the scrape job", &[Need::Prometheus]) {
        return;
    }
    let files = rendered(&Config::default());
    let jobs = job_with_static_targets(&file(&files, file::SCRAPE_CONFIG).content);
    let out = promtool_check(&serde_json::json!({ "scrape_configs": jobs }));
    assert!(
        out.status.success(),
        "promtool refused the rendered job:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And it can fail: a misspelled key is refused by the same check.
    let bad = promtool_check(
        &serde_json::json!({"scrape_configs": [{"job_name": "x", "scrape_intervl": "5s"}]}),
    );
    assert!(!bad.status.success());
}

/// `promtool check config` of a Prometheus configuration (JSON is YAML: promtool reads it as is).
fn promtool_check(config: &serde_json::Value) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, serde_json::to_string_pretty(config).expect("json")).expect("write");
    std::process::Command::new("promtool")
        .arg("check")
        .arg("config")
        .arg(&path)
        .output()
        .expect("promtool must be installed (cargo xtask deps installs it)")
}

#[test]
fn the_adapter_config_file_carries_the_same_rule_as_the_helm_values() {
    for cfg in [Config::default(), concurrency()] {
        let files = rendered(&cfg);
        assert_eq!(
            file(&files, file::PROMETHEUS_ADAPTER_CONFIG).kind,
            FileKind::PrometheusConfig
        );
        let own =
            kscale::manifest::parse_yaml(&file(&files, file::PROMETHEUS_ADAPTER_CONFIG).content)
                .expect("adapter config is YAML");
        let values = kscale::manifest::parse_yaml(&file(&files, file::PROMETHEUS_ADAPTER).content)
            .expect("adapter values are YAML");
        let rules = own["externalRules"].as_array().expect("externalRules list");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0], values["rules"]["external"][0]);
        let rule = render::adapter_rule(&cfg);
        assert_eq!(rules[0]["metricsQuery"], rule.metrics_query.as_str());
        assert_eq!(rules[0]["seriesQuery"], rule.series_query.as_str());
        assert_eq!(rules[0]["name"]["as"], rule.name.as_str());
    }
}

#[test]
fn an_app_outside_default_gets_its_namespace_and_default_never_does() {
    let cfg = Config::load(&Layers {
        sets: vec![("app.namespace".into(), "inference-lab".into())],
        ..Default::default()
    })
    .expect("loads");
    let files = rendered(&cfg);
    let ns: core::Namespace = typed(&files, file::APP_NAMESPACE);
    assert_eq!(ns.metadata.name.as_deref(), Some("inference-lab"));
    let hpa: HorizontalPodAutoscaler = typed(&files, file::HPA);
    assert_eq!(hpa.metadata.namespace.as_deref(), Some("inference-lab"));
    assert!(
        !rendered(&Config::default())
            .iter()
            .any(|f| f.name == file::APP_NAMESPACE),
        "`default` is not kscale's to create or delete"
    );
}

fn server_config(server: &str) -> Config {
    Config::load(&Layers {
        sets: vec![
            ("app.server".into(), server.into()),
            ("app.model".into(), "org/model".into()),
        ],
        ..Default::default()
    })
    .expect("server config loads")
}

/// Each real server: every object survives the typed round trip, the container exposes the
/// server's real port and probes its real health path, the scrape job keeps the port its
/// metrics are on, and the HPA scales on a metric built from names the server really exposes.
#[test]
fn every_server_renders_its_real_port_probes_and_metric() {
    use kscale::config::servers::ServerKind;
    let expect = [
        (
            ServerKind::Vllm,
            8000,
            "/health",
            "vllm:num_requests_waiting",
            "sum(vllm:num_requests_waiting{",
        ),
        (
            ServerKind::Tgi,
            80,
            "/health",
            "tgi_queue_size",
            "sum(tgi_queue_size{",
        ),
        (
            ServerKind::Triton,
            8000,
            "/v2/health/ready",
            "nv_inference_pending_request_count",
            "sum(nv_inference_pending_request_count{",
        ),
        (
            ServerKind::Llamacpp,
            8080,
            "/health",
            "llamacpp_requests_per_pod",
            "sum(llamacpp:requests_processing{job=\"kscale-inference\",<<.LabelMatchers>>} + llamacpp:requests_deferred{",
        ),
    ];
    for (server, port, ready, metric, query) in expect {
        let cfg = server_config(server.as_str());
        cfg.validate().unwrap_or_else(|e| panic!("{server}: {e}"));
        let files = rendered(&cfg);
        for f in files.iter().filter(|f| f.kind == FileKind::Object) {
            let v = kscale::manifest::parse_yaml(&f.content).expect("yaml");
            render::check_object(&v).unwrap_or_else(|e| panic!("{server} {}: {e:#}", f.name));
        }
        let d: Deployment = typed(&files, file::DEPLOYMENT);
        let c = &d.spec.expect("spec").template.spec.expect("pod").containers[0];
        assert_eq!(
            c.ports.as_ref().expect("ports")[0].container_port,
            port,
            "{server}"
        );
        let path = |p: &Option<core::Probe>| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
                .unwrap_or_default()
        };
        assert_eq!(path(&c.readiness_probe), ready, "{server}");
        // Minutes to load a model: the startup probe holds liveness off for the whole budget.
        let startup = c.startup_probe.as_ref().expect("startup probe");
        let budget = startup.period_seconds.unwrap_or(10) * startup.failure_threshold.unwrap_or(3);
        assert!(
            budget as u64 >= cfg.app.startup_seconds,
            "{server}: {budget} s"
        );
        let args = c.args.clone().unwrap_or_default();
        assert!(
            args.iter().any(|a| a.contains("org/model")),
            "{server}: {args:?}"
        );
        let hpa: HorizontalPodAutoscaler = typed(&files, file::HPA);
        let m = &hpa.spec.expect("spec").metrics.expect("metrics")[0];
        assert_eq!(m.external.as_ref().expect("external").metric.name, metric);
        let rule = render::adapter_rule(&cfg);
        assert!(
            rule.metrics_query.starts_with(query),
            "{server}: {}",
            rule.metrics_query
        );
        assert_eq!(rule.name, metric);
        let scrape = &file(&files, file::SCRAPE_CONFIG).content;
        let port_name = if server == ServerKind::Triton {
            "metrics"
        } else {
            "http"
        };
        assert!(
            scrape.contains(&format!("regex: \"{port_name}\"")),
            "{server}: {scrape}"
        );
        if server == ServerKind::Triton {
            assert!(
                c.ports
                    .as_ref()
                    .expect("ports")
                    .iter()
                    .any(|p| p.name.as_deref() == Some("metrics") && p.container_port == 8002),
                "Triton's metrics port"
            );
        }
    }
}

#[test]
fn gpus_render_as_nvidia_limits_and_the_placeholder_model_is_named() {
    let cfg = Config::load(&Layers {
        sets: vec![("app.server".into(), "vllm".into())],
        ..Default::default()
    })
    .expect("loads");
    let files = rendered(&cfg);
    let d = &file(&files, file::DEPLOYMENT).content;
    assert!(d.contains("nvidia.com/gpu: \"1\""), "{d}");
    assert!(
        d.contains(kscale::config::servers::PLACEHOLDER_MODEL)
            && d.contains("app.model is not set"),
        "{d}"
    );
    let none = rendered(&server_config("llamacpp"));
    assert!(
        !file(&none, file::DEPLOYMENT)
            .content
            .contains("nvidia.com/gpu")
    );
}

#[test]
fn every_server_scrape_job_passes_a_real_promtool_check() {
    if !needs("promtool's check of the scrape jobs", &[Need::Prometheus]) {
        return;
    }
    for server in ["vllm", "tgi", "triton", "llamacpp"] {
        let files = rendered(&server_config(server));
        let jobs = job_with_static_targets(&file(&files, file::SCRAPE_CONFIG).content);
        let out = promtool_check(&serde_json::json!({ "scrape_configs": jobs }));
        assert!(
            out.status.success(),
            "{server}: promtool refused the job:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
