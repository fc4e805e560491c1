//! The metric chain a cluster serves once kscale's stack runs, derived from the stub's objects
//! and the fake helm's releases, so `kscale up`'s end-to-end check sees what it would see on
//! minikube:
//!
//! - the app's pods, standing in for the ReplicaSet controller: one per replica of each
//!   Deployment, Ready as far as the Deployment's rollout says (a test that stores pods of its
//!   own in a namespace gets those instead);
//! - each ready pod's `/metrics` through the pod proxy (a real kscale-server exposition);
//! - Prometheus through its service proxy, once a kube-prometheus-stack release is deployed:
//!   targets come from the scrape jobs of the `additionalScrapeConfigs` Secret (pod discovery and
//!   `keep` relabelling), selectors return their series, the adapter's aggregate query one value
//!   (the pods' gauges summed, or [`METRIC_VALUE`] for a rate);
//! - the external metrics API once a prometheus-adapter release is deployed whose rules name the
//!   metric, evaluating the rule's query against that Prometheus;
//! - the HPA's status, read from the external metrics API through the stub's routes (so a test
//!   that breaks the API sees the HPA report FailedGetExternalMetric, as kube-controller-manager
//!   would).

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::kube_stub::{StubApi, labels_match, status};

/// What the simulated Prometheus computes for a rate-based adapter query (the mean-duration
/// profile's seconds per request) while its namespace has targets up; gauge sums (the
/// concurrency profile) come from the pods' exposition instead.
pub const METRIC_VALUE: f64 = 2.5;

/// A real kscale-server's `/metrics`: one request in flight, two waiting.
pub const POD_METRICS: &str = include_str!("../../fixtures/metrics/pod-metrics.txt");

/// When Prometheus evaluated the queries (fixed, so answers are reproducible).
const EVAL_TIME: f64 = 1_764_273_722.512;

/// Serves the chain from `api`'s objects and the fake helm state under `state`.
pub fn install(api: &StubApi, state: PathBuf) {
    api.route(move |req, store| {
        if req.method != "GET" {
            return None;
        }
        let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        let helm = Helm(state.join("helm/releases"));
        match segs.as_slice() {
            ["api", "v1", "namespaces", ns, "pods"] => {
                if !store.list(req.path).is_empty() {
                    return None;
                }
                let items: Vec<Value> = app_pods(store, ns)
                    .into_iter()
                    .filter(|p| {
                        req.query
                            .get("labelSelector")
                            .is_none_or(|s| labels_match(p, s))
                    })
                    .collect();
                Some((
                    200,
                    json!({"kind": "PodList", "apiVersion": "v1",
                           "metadata": {"resourceVersion": "1"}, "items": items}),
                ))
            }
            [
                "api",
                "v1",
                "namespaces",
                ns,
                "pods",
                name_port,
                "proxy",
                rest @ ..,
            ] => Some(pod_proxy(store, ns, name_port, &rest.join("/"))),
            [
                "api",
                "v1",
                "namespaces",
                ns,
                "services",
                svc,
                "proxy",
                rest @ ..,
            ] => {
                let name = svc.trim_start_matches("http:").split(':').next()?;
                if Prometheus::find(&helm, ns).is_none_or(|p| p.service != name) {
                    let msg = format!("services \"{name}\" not found");
                    return Some((404, status(404, "NotFound", &msg)));
                }
                if rest != ["api", "v1", "query"] {
                    return Some((404, json!("404 page not found")));
                }
                let q = req.query.get("query").cloned().unwrap_or_default();
                let targets = targets(store, ns);
                Some((200, query_response(&evaluate(&q, &targets))))
            }
            [
                "apis",
                "external.metrics.k8s.io",
                "v1beta1",
                "namespaces",
                ns,
                metric,
            ] => Some(external_metric(&helm, store, ns, metric)),
            [
                "apis",
                "autoscaling",
                "v2",
                "namespaces",
                ns,
                "horizontalpodautoscalers",
                name,
            ] => {
                let hpa = store.get(req.path)?;
                Some((200, with_status(store, ns, name, hpa)))
            }
            _ => None,
        }
    });
}

/// The fake helm's releases: `<dir>/<namespace>/<release>/{chart,status,values.yaml}`.
struct Helm(PathBuf);

impl Helm {
    /// Deployed releases of `chart`: (namespace, release, directory).
    fn deployed(&self, chart: &str) -> Vec<(String, String, PathBuf)> {
        let mut found = Vec::new();
        for ns in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            for rel in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let dir = rel.path();
                let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                if read("chart").trim() == chart && read("status").trim() == "deployed" {
                    found.push((
                        ns.file_name().to_string_lossy().into_owned(),
                        rel.file_name().to_string_lossy().into_owned(),
                        dir.clone(),
                    ));
                }
            }
        }
        found
    }
}

/// A kube-prometheus-stack release's Prometheus.
struct Prometheus {
    service: String,
}

impl Prometheus {
    /// The release deployed in `namespace`, if any.
    fn find(helm: &Helm, namespace: &str) -> Option<Self> {
        let (_, release, _) = helm
            .deployed("kube-prometheus-stack")
            .into_iter()
            .find(|(ns, _, _)| ns == namespace)?;
        // The chart's `kube-prometheus-stack.fullname`, truncated to 26 characters.
        let full = if release.contains("kube-prometheus-stack") {
            release
        } else {
            format!("{release}-kube-prometheus")
        };
        let full: String = full.chars().take(26).collect();
        Some(Self {
            service: format!("{}-prometheus", full.trim_end_matches('-')),
        })
    }
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `len` characters of the alphabet Kubernetes uses for generated names.
fn name_chars(mut n: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// The pods of every Deployment in `ns`: names `<deployment>-<template hash>-<suffix>`, labels
/// and spec from the pod template, Ready as the Deployment's status says.
fn app_pods(store: &crate::support::kube_stub::Store, ns: &str) -> Vec<Value> {
    let mut pods = Vec::new();
    for d in store.list(&format!("/apis/apps/v1/namespaces/{ns}/deployments")) {
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let template = &d["spec"]["template"];
        let hash = name_chars(fnv(template.to_string().as_bytes()), 10);
        let replicas = d["status"]["replicas"].as_u64().unwrap_or(0);
        let ready = d["status"]["readyReplicas"].as_u64().unwrap_or(0);
        for i in 0..replicas {
            let pod = format!(
                "{name}-{hash}-{}",
                name_chars(fnv(format!("{hash}/{i}").as_bytes()), 5)
            );
            let mut labels = template["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels["pod-template-hash"] = json!(hash);
            let is_ready = i < ready;
            let truth = if is_ready { "True" } else { "False" };
            let mut spec = template["spec"].clone();
            spec["nodeName"] = json!(if i % 2 == 0 { "kscale" } else { "kscale-m02" });
            let containers: Vec<Value> = spec["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    json!({"name": c["name"], "image": c["image"], "imageID": "",
                           "ready": is_ready, "started": true, "restartCount": 0,
                           "state": {"running": {"startedAt": "2026-11-27T20:01:13Z"}}})
                })
                .collect();
            pods.push(json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod,
                    "generateName": format!("{name}-{hash}-"),
                    "namespace": ns,
                    "uid": format!("00000000-0000-4000-9000-{:012}", fnv(pod.as_bytes()) % 1_000_000_000_000),
                    "resourceVersion": "1",
                    "creationTimestamp": "2026-11-27T20:01:12Z",
                    "labels": labels,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                         "name": format!("{name}-{hash}"),
                                         "uid": "b0f0e0c1-1111-4a2b-9c3d-4e5f60718293",
                                         "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": spec,
                "status": {
                    "phase": "Running",
                    "conditions": [
                        {"type": "Initialized", "status": "True", "lastTransitionTime": "2026-11-27T20:01:12Z"},
                        {"type": "Ready", "status": truth, "lastTransitionTime": "2026-11-27T20:01:19Z"},
                        {"type": "ContainersReady", "status": truth, "lastTransitionTime": "2026-11-27T20:01:19Z"},
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-27T20:01:12Z"},
                    ],
                    "hostIP": format!("192.168.49.{}", 2 + i % 2),
                    "podIP": format!("10.244.{}.{}", i % 2, 7 + i),
                    "podIPs": [{"ip": format!("10.244.{}.{}", i % 2, 7 + i)}],
                    "startTime": "2026-11-27T20:01:12Z",
                    "containerStatuses": containers,
                },
            }));
        }
    }
    pods
}

/// The pods the cluster runs in `ns`: stored ones if a test put any, else the derived ones.
fn pods_in(store: &crate::support::kube_stub::Store, ns: &str) -> Vec<Value> {
    let stored = store.list(&format!("/api/v1/namespaces/{ns}/pods"));
    if stored.is_empty() {
        app_pods(store, ns)
    } else {
        stored
    }
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The container port `port` (a number or a port name) of `pod`.
fn container_port(pod: &Value, port: &str) -> Option<u64> {
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| {
            p["name"].as_str() == Some(port)
                || p["containerPort"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .as_deref()
                    == Some(port)
        })
        .and_then(|p| p["containerPort"].as_u64())
}

/// `GET /api/v1/namespaces/{ns}/pods/{name}[:{port}]/proxy/{rest}`.
fn pod_proxy(
    store: &crate::support::kube_stub::Store,
    ns: &str,
    name_port: &str,
    rest: &str,
) -> (u16, Value) {
    let (name, port) = name_port.split_once(':').unwrap_or((name_port, "80"));
    let Some(pod) = pods_in(store, ns)
        .into_iter()
        .find(|p| p["metadata"]["name"] == name)
    else {
        return (
            404,
            status(404, "NotFound", &format!("pods \"{name}\" not found")),
        );
    };
    let ip = pod["status"]["podIP"]
        .as_str()
        .unwrap_or("<none>")
        .to_string();
    match container_port(&pod, port) {
        Some(_) if is_ready(&pod) && rest == "metrics" => (200, json!(POD_METRICS)),
        Some(_) if is_ready(&pod) => (404, json!("not found\n")),
        _ => (
            503,
            status(
                503,
                "ServiceUnavailable",
                &format!(
                    "error trying to reach service: dial tcp {ip}:{port}: connect: connection refused"
                ),
            ),
        ),
    }
}

/// One scrape target: its labels after relabelling, and whether the last scrape succeeded.
struct Target {
    labels: Vec<(String, String)>,
    up: bool,
}

impl Target {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The scrape jobs of the `additionalScrapeConfigs` Secrets in the monitoring namespace.
fn scrape_jobs(store: &crate::support::kube_stub::Store, monitoring_ns: &str) -> Vec<Value> {
    store
        .list(&format!("/api/v1/namespaces/{monitoring_ns}/secrets"))
        .iter()
        .flat_map(|s| {
            s["stringData"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, v)| v.as_str().unwrap_or_default().to_string())
        })
        .filter(|text| text.contains("job_name"))
        .filter_map(|text| serde_saphyr::from_str::<Value>(&text).ok())
        .flat_map(|jobs| jobs.as_array().cloned().unwrap_or_default())
        .collect()
}

/// What a pod contributes to a `__meta_kubernetes_*` source label.
fn meta_label(pod: &Value, source: &str, port_name: &str) -> String {
    match source {
        "__meta_kubernetes_namespace" => pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .into(),
        "__meta_kubernetes_pod_name" => pod["metadata"]["name"].as_str().unwrap_or_default().into(),
        "__meta_kubernetes_pod_container_port_name" => port_name.into(),
        s => match s.strip_prefix("__meta_kubernetes_pod_label_") {
            Some(l) => pod["metadata"]["labels"][l]
                .as_str()
                .unwrap_or_default()
                .into(),
            None => String::new(),
        },
    }
}

/// Prometheus's targets: every pod container port that the jobs' pod discovery finds and their
/// `keep` rules keep (regexes taken literally, which the rendered job's are).
fn targets(store: &crate::support::kube_stub::Store, monitoring_ns: &str) -> Vec<Target> {
    let mut out = Vec::new();
    for job in scrape_jobs(store, monitoring_ns) {
        let job_name = job["job_name"].as_str().unwrap_or_default();
        let namespaces: Vec<String> = job["kubernetes_sd_configs"][0]["namespaces"]["names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(String::from))
            .collect();
        for ns in &namespaces {
            for pod in pods_in(store, ns) {
                let Some(ip) = pod["status"]["podIP"].as_str() else {
                    continue;
                };
                let ports: Vec<Value> = pod["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                    .collect();
                for port in ports {
                    let port_name = port["name"].as_str().unwrap_or_default();
                    let mut labels = vec![
                        ("job".to_string(), job_name.to_string()),
                        ("instance".into(), format!("{ip}:{}", port["containerPort"])),
                    ];
                    let mut kept = true;
                    for rule in job["relabel_configs"].as_array().into_iter().flatten() {
                        let source: Vec<String> = rule["source_labels"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|s| meta_label(&pod, s.as_str().unwrap_or_default(), port_name))
                            .collect();
                        let value = source.join(";");
                        match rule["action"].as_str().unwrap_or("replace") {
                            "keep" => kept &= rule["regex"].as_str() == Some(value.as_str()),
                            "drop" => kept &= rule["regex"].as_str() != Some(value.as_str()),
                            _ => {
                                if let Some(t) = rule["target_label"].as_str() {
                                    labels.push((t.to_string(), value));
                                }
                            }
                        }
                    }
                    if kept {
                        out.push(Target {
                            labels,
                            up: is_ready(&pod),
                        });
                    }
                }
            }
        }
    }
    out
}

/// The sum of the exposition's samples named exactly `name`.
fn exposition_value(name: &str) -> Option<f64> {
    let mut found = None;
    for line in POD_METRICS.lines().filter(|l| !l.starts_with('#')) {
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        if &line[..end] == name {
            let v: f64 = line.rsplit(' ').next()?.parse().ok()?;
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// `name{k="v",…}` with equality matchers only; `None` for anything else.
fn parse_selector(q: &str) -> Option<(String, Vec<(String, String)>)> {
    let q = q.trim();
    let (name, rest) = match q.find('{') {
        Some(i) => (&q[..i], q[i..].strip_prefix('{')?.strip_suffix('}')?),
        None => (q, ""),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut matchers = Vec::new();
    for m in rest.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let (k, v) = m.split_once('=')?;
        if k.ends_with(['!', '=']) || v.starts_with('~') {
            return None;
        }
        matchers.push((
            k.trim().to_string(),
            v.trim().strip_prefix('"')?.strip_suffix('"')?.to_string(),
        ));
    }
    Some((name.to_string(), matchers))
}

/// An instant query: a selector returns its series; any other expression is taken for an
/// adapter query, one value for the namespace it names (or `vector(0)`'s 0 without targets).
fn evaluate(q: &str, targets: &[Target]) -> Vec<(Vec<(String, String)>, f64)> {
    if let Some((name, matchers)) = parse_selector(q) {
        return targets
            .iter()
            .filter_map(|t| {
                let value = if name == "up" {
                    if t.up { 1.0 } else { 0.0 }
                } else if t.up {
                    exposition_value(&name)?
                } else {
                    return None;
                };
                let mut labels = vec![("__name__".to_string(), name.clone())];
                labels.extend(t.labels.iter().cloned());
                let all_match = matchers
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v));
                all_match.then_some((labels, value))
            })
            .collect();
    }
    let namespace = q
        .split("namespace=\"")
        .nth(1)
        .and_then(|r| r.split('"').next());
    let live: Vec<&Target> = targets
        .iter()
        .filter(|t| t.up && namespace.is_none_or(|ns| t.label("namespace") == Some(ns)))
        .collect();
    // Gauges add up across pods (what `sum(a + b)` of the concurrency profile gives); a rate
    // needs traffic history the stub does not keep, so it is the fixed METRIC_VALUE.
    let gauges: f64 = q
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter_map(exposition_value)
        .sum();
    if live.is_empty() {
        if q.contains("or vector(0)") {
            vec![(Vec::new(), 0.0)]
        } else {
            Vec::new()
        }
    } else if q.contains("rate(") {
        vec![(Vec::new(), METRIC_VALUE)]
    } else {
        vec![(Vec::new(), gauges * live.len() as f64)]
    }
}

fn query_response(samples: &[(Vec<(String, String)>, f64)]) -> Value {
    let result: Vec<Value> = samples
        .iter()
        .map(|(labels, v)| {
            let metric: serde_json::Map<String, Value> =
                labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            json!({"metric": metric, "value": [EVAL_TIME, v.to_string()]})
        })
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

/// `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}` from the adapter's rules.
fn external_metric(
    helm: &Helm,
    store: &crate::support::kube_stub::Store,
    ns: &str,
    metric: &str,
) -> (u16, Value) {
    let not_found = || {
        (
            404,
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        )
    };
    let Some((_, _, dir)) = helm.deployed("prometheus-adapter").into_iter().next() else {
        return not_found();
    };
    let values = std::fs::read_to_string(dir.join("values.yaml")).unwrap_or_default();
    let values: Value = serde_saphyr::from_str(&values).unwrap_or(Value::Null);
    let Some(rule) = values["rules"]["external"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"]["as"].as_str() == Some(metric))
    else {
        return not_found();
    };
    let prom = values["prometheus"]["url"].as_str().and_then(|url| {
        let host = url.split("//").nth(1)?.split('.').collect::<Vec<_>>();
        let p = Prometheus::find(helm, host.get(1)?)?;
        (p.service == host[0]).then(|| host[1].to_string())
    });
    let Some(monitoring_ns) = prom else {
        return (
            500,
            status(
                500,
                "InternalError",
                "unable to fetch metrics from external metrics API: the prometheus-adapter cannot reach Prometheus at its --prometheus-url",
            ),
        );
    };
    let query = rule["metricsQuery"]
        .as_str()
        .unwrap_or_default()
        .replace("<<.LabelMatchers>>", &format!("namespace=\"{ns}\""))
        .replace("<<.GroupBy>>", "");
    let items: Vec<Value> = evaluate(&query, &targets(store, &monitoring_ns))
        .into_iter()
        .map(|(_, v)| {
            json!({"metricName": metric, "metricLabels": {}, "timestamp": "2026-11-27T20:02:02Z",
                   "value": kscale::quantity::format(v)})
        })
        .collect();
    (
        200,
        json!({"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1",
               "metadata": {}, "items": items}),
    )
}

/// The HPA with the status kube-controller-manager would give it after reading its external
/// metrics through the stub's own routes.
fn with_status(
    store: &crate::support::kube_stub::Store,
    ns: &str,
    name: &str,
    mut hpa: Value,
) -> Value {
    let spec = hpa["spec"].clone();
    let target = spec["scaleTargetRef"]["name"].as_str().unwrap_or_default();
    let current = store
        .get(&format!(
            "/apis/apps/v1/namespaces/{ns}/deployments/{target}"
        ))
        .and_then(|d| d["status"]["replicas"].as_i64())
        .unwrap_or(0);
    let min = spec["minReplicas"].as_i64().unwrap_or(1);
    let max = spec["maxReplicas"].as_i64().unwrap_or(min);
    let mut metrics = Vec::new();
    let mut failure = None;
    let mut proposals = Vec::new();
    for m in spec["metrics"].as_array().into_iter().flatten() {
        let Some(metric) = m["external"]["metric"]["name"].as_str() else {
            continue;
        };
        let path = format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}");
        let values: Vec<f64> = match store.route_get(&path) {
            Some((200, list)) => list["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| kscale::quantity::parse(i["value"].as_str()?).ok())
                .collect(),
            _ => Vec::new(),
        };
        if values.is_empty() {
            failure = Some(format!(
                "the HPA was unable to compute the replica count: unable to get external metric {ns}/{metric}/nil: no metrics returned from external metrics API"
            ));
            continue;
        }
        let value: f64 = values.iter().sum();
        proposals.push(proposal(&m["external"]["target"], value, current));
        metrics.push(json!({"type": "External", "external": {
            "metric": {"name": metric, "selector": {}},
            "current": {"value": kscale::quantity::format(value)}}}));
    }
    let (active, reason, message) = match &failure {
        None => (
            "True",
            "ValidMetricFound",
            format!(
                "the HPA was able to successfully calculate a replica count from external metrics of {name}"
            ),
        ),
        Some(m) => ("False", "FailedGetExternalMetric", m.clone()),
    };
    hpa["status"] = json!({
        "currentReplicas": current,
        // The controller keeps the scale while a metric is missing; otherwise the largest
        // proposal wins (no stabilization: the stub's HPA has no history).
        "desiredReplicas": if failure.is_some() { current } else {
            proposals.into_iter().max().unwrap_or(current)
        }.clamp(min, max.max(min)),
        "currentMetrics": metrics,
        "conditions": [
            {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
             "message": "recommended size matches current size", "lastTransitionTime": "2026-11-27T20:01:27Z"},
            {"type": "ScalingActive", "status": active, "reason": reason, "message": message,
             "lastTransitionTime": "2026-11-27T20:01:42Z"},
        ],
    });
    hpa
}

/// kube-controller-manager's replica count for one External metric: `Value` scales the current
/// replicas by value/target, `AverageValue` divides the value by the per-pod target; within the
/// default 10 % tolerance the scale stays.
fn proposal(target: &Value, value: f64, current: i64) -> i64 {
    let q = |k: &str| {
        target[k]
            .as_str()
            .and_then(|q| kscale::quantity::parse(q).ok())
    };
    let (ratio, wanted) = match (target["type"].as_str(), q("value"), q("averageValue")) {
        (Some("Value"), Some(t), _) if t > 0.0 => (value / t, current as f64 * value / t),
        (Some("AverageValue"), _, Some(t)) if t > 0.0 && current > 0 => {
            (value / (t * current as f64), value / t)
        }
        _ => return current,
    };
    if (ratio - 1.0).abs() <= 0.1 {
        current
    } else {
        wanted.ceil() as i64
    }
}
