//! Stages 1-3: the app's pods serve `/metrics`, Prometheus scrapes them with the right labels,
//! and the adapter's exact query returns one finite number.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::api::{GetError, bounded, get_text};
use super::{Checker, StageResult};
use crate::config::MetricProfile;
use crate::kubeapi::HasConditions as _;
use crate::metrics::adapter_query::{self, go_quote};
use crate::metrics::{exposition, prom};
use crate::timeline::PodSample;

impl Checker<'_> {
    /// Stage 1: the app's pods are ready and serve `/metrics` through the pod proxy.
    pub async fn stage1_pods(&self, samples: &mut Vec<PodSample>) -> (StageResult, Vec<String>) {
        const NAME: &str = "app pods ready and /metrics reachable";
        let app = &self.cfg.app.name;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), self.ns());
        let list = match bounded(pods.list(&ListParams::default().labels(&format!("app={app}"))))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                return (
                    StageResult::fail(
                        1,
                        NAME,
                        "cannot list pods".into(),
                        format!("listing pods in namespace {}: {}", self.ns(), e),
                        "check the kube context (--context) and that the API server answers: kubectl get pods",
                    ),
                    Vec::new(),
                );
            }
        };
        if list.items.is_empty() {
            return (
                StageResult::fail(
                    1,
                    NAME,
                    format!("no pod labelled app={app} in namespace {}", self.ns()),
                    "the app is not deployed (or under another name/namespace)".into(),
                    "run `kscale deploy` (or `kscale up`)",
                ),
                Vec::new(),
            );
        }
        let total = list.items.len();
        let mut problems = Vec::new();
        let mut fixes = Vec::new();
        let mut ready = Vec::new();
        for pod in &list.items {
            let name = pod_name(pod);
            if !is_ready(pod) {
                let problem = crate::kubeapi::pod_problem(pod);
                problems.push(format!("pod {name} not ready: {}", problem.why));
                fixes.push(problem.fix);
                continue;
            }
            let preset = self.cfg.app.server.preset();
            let port = metrics_port(
                pod,
                preset.metrics_port_name(),
                preset.metrics_port.unwrap_or(self.cfg.app.port),
            );
            let path = format!(
                "/api/v1/namespaces/{}/pods/{name}:{port}/proxy{}",
                self.ns(),
                preset.metrics_path
            );
            // The series the HPA's metric is computed from must be in the pod's own exposition.
            let needed = signal_series(self.cfg);
            match get_text(&self.client, &path).await {
                Ok(text)
                    if needed
                        .iter()
                        .all(|m| exposition::sum_of(&text, m).is_some()) =>
                {
                    let sum = |names: &[&str]| -> f64 {
                        // An f64 sum starts at -0.0: a server without such gauges (Triton has
                        // no running one) would show "-0"; adding 0.0 makes it 0.
                        names
                            .iter()
                            .filter_map(|m| exposition::sum_of(&text, m))
                            .sum::<f64>()
                            + 0.0
                    };
                    samples.push(PodSample {
                        pod: name.clone(),
                        queue_depth: sum(preset.waiting),
                        in_flight: sum(preset.running),
                    });
                    ready.push(name);
                }
                Ok(text) => {
                    let missing: Vec<&str> = needed
                        .iter()
                        .filter(|m| exposition::sum_of(&text, m).is_none())
                        .map(String::as_str)
                        .collect();
                    problems.push(format!(
                        "pod {name}: {} on port {port} answers without {}",
                        preset.metrics_path,
                        missing.join(", ")
                    ));
                    fixes.push(format!(
                        "the container is not {} with its metrics on (wrong image or app.server? llama.cpp needs --metrics), or it has served no request yet for a histogram: check `kscale config` and re-run `kscale deploy`",
                        preset.title
                    ));
                    ready.push(name);
                }
                Err(e) => {
                    problems.push(format!(
                        "pod {name}: /metrics on port {port} unreachable through the pod proxy: {e}"
                    ));
                    fixes.push(format!("check the container port ({port}, named http) and the server's log: kubectl -n {} logs {name}", self.ns()));
                    ready.push(name);
                }
            }
        }
        let seen = format!(
            "{}/{total} pods ready, /metrics answers on {}",
            list.items.iter().filter(|p| is_ready(p)).count(),
            samples.len()
        );
        if problems.is_empty() {
            (
                StageResult::pass(1, NAME, seen, Some(samples.len() as f64)),
                ready,
            )
        } else {
            fixes.dedup();
            (
                StageResult::fail(1, NAME, seen, problems.join("; "), fixes.join("; ")),
                ready,
            )
        }
    }

    /// Runs an instant query in Prometheus through the API server's service proxy.
    pub async fn prom_query(&self, promql: &str) -> Result<prom::QueryResult, String> {
        let m = &self.cfg.monitoring;
        let path = format!(
            "/api/v1/namespaces/{}/services/{}:9090/proxy/{}",
            m.namespace,
            m.prometheus_service(),
            prom::query_path(promql)
        );
        let body = get_text(&self.client, &path).await.map_err(|e| match e {
            GetError::Status { code, .. } if code == 404 || code == 503 => format!(
                "Prometheus service {}/{} is not reachable ({e}): is kube-prometheus-stack installed and its Prometheus pod running?",
                m.namespace,
                m.prometheus_service()
            ),
            e => format!("querying Prometheus through the service proxy: {e}"),
        })?;
        prom::parse_query_response(body.as_bytes()).map_err(|e| format!("{e:#}"))
    }

    fn prom_fix(&self) -> String {
        format!(
            "kubectl -n {ns} get pods; helm -n {ns} status {rel}; re-run `kscale up`",
            ns = self.cfg.monitoring.namespace,
            rel = self.cfg.monitoring.prometheus_release
        )
    }

    /// Stage 2: Prometheus scrapes every ready pod, with the labels the query needs.
    pub async fn stage2_scrape(&self, ready: &[String]) -> StageResult {
        const NAME: &str = "Prometheus scrapes every pod";
        let q = format!("up{{job={}}}", go_quote(&self.job));
        let res = match self.prom_query(&q).await {
            Ok(r) => r,
            Err(e) => {
                return StageResult::fail(2, NAME, format!("query {q} failed"), e, self.prom_fix());
            }
        };
        if res.samples.is_empty() {
            return StageResult::fail(
                2,
                NAME,
                format!("{q}: no target"),
                format!(
                    "Prometheus has no target in job {}: the scrape job is not loaded, or its relabelling drops every pod",
                    self.job
                ),
                format!(
                    "check Status > Targets in Prometheus; the job comes from additionalScrapeConfigs of release {} (re-run `kscale up`); pods need label app={} and a container port named http",
                    self.cfg.monitoring.prometheus_release, self.cfg.app.name
                ),
            );
        }
        let without_ns = res
            .samples
            .iter()
            .filter(|s| !s.labels.contains_key("namespace"))
            .count();
        if without_ns == res.samples.len() {
            return StageResult::fail(
                2, NAME, format!("{} targets, none with a namespace label", res.samples.len()),
                "the series lack the `namespace` label, so the adapter's namespace matcher selects nothing (the `or vector(0)` guard would then hide it as 0)".into(),
                "the scrape job must relabel __meta_kubernetes_namespace to namespace (and __meta_kubernetes_pod_name to pod): re-run `kscale up` with the rendered job",
            );
        }
        let by_pod: BTreeMap<&str, f64> = res
            .samples
            .iter()
            .filter(|s| s.labels.get("namespace").map(String::as_str) == Some(self.ns()))
            .filter_map(|s| Some((s.labels.get("pod")?.as_str(), s.value)))
            .collect();
        let mut problems = Vec::new();
        let mut fix = String::new();
        for pod in ready {
            match by_pod.get(pod.as_str()) {
                Some(v) if *v == 1.0 => {}
                Some(_) => {
                    problems.push(format!("target {pod} is down (up=0)"));
                    fix = format!(
                        "Prometheus cannot scrape {pod}:{}/metrics: see the target's error in Status > Targets; check network policies and the container port",
                        self.cfg.app.port
                    );
                }
                None => {
                    problems.push(format!("pod {pod} is not a target yet"));
                    if fix.is_empty() {
                        fix = format!(
                            "Prometheus discovers new pods within a scrape interval ({} s); if it persists, the pod lacks label app={} or a container port named http",
                            self.cfg.metric.scrape_interval_seconds, self.cfg.app.name
                        );
                    }
                }
            }
        }
        let up = by_pod.values().filter(|v| **v == 1.0).count();
        let seen = format!(
            "up=1 for {up} of {} ready pods in namespace {}",
            ready.len(),
            self.ns()
        );
        if problems.is_empty() {
            StageResult::pass(2, NAME, seen, Some(up as f64))
        } else {
            StageResult::fail(2, NAME, seen, problems.join("; "), fix)
        }
    }

    /// The adapter's query, substituted as prometheus-adapter does for this namespace.
    pub fn adapter_promql(&self) -> anyhow::Result<String> {
        let series = adapter_query::series_name(&self.rule.series_query).ok_or_else(|| {
            anyhow::anyhow!(
                "the rule's seriesQuery {:?} names no series",
                self.rule.series_query
            )
        })?;
        adapter_query::namespaced_external_query(&self.rule.metrics_query, series, self.ns())
    }

    /// The rule's seriesQuery restricted to the app namespace.
    fn series_in_namespace(&self) -> String {
        let sq = self.rule.series_query.trim();
        let m = format!("namespace={}", go_quote(self.ns()));
        match sq.strip_suffix('}') {
            Some(head) if head.trim_end().ends_with('{') => format!("{head}{m}}}"),
            Some(head) => format!("{head},{m}}}"),
            None => format!("{sq}{{{m}}}"),
        }
    }

    /// Stage 3: the adapter's query returns exactly one finite number.
    pub async fn stage3_query(&self) -> StageResult {
        const NAME: &str = "the adapter's query returns one finite number";
        let promql = match self.adapter_promql() {
            Ok(q) => q,
            Err(e) => {
                return StageResult::fail(
                    3,
                    NAME,
                    "cannot substitute the rule".into(),
                    format!("{e:#}"),
                    "fix the adapter rule in the templates",
                );
            }
        };
        let series_q = self.series_in_namespace();
        match self.prom_query(&series_q).await {
            Err(e) => {
                return StageResult::fail(
                    3,
                    NAME,
                    format!("query {series_q} failed"),
                    e,
                    self.prom_fix(),
                );
            }
            Ok(r) if r.samples.is_empty() => {
                return StageResult::fail(
                    3,
                    NAME,
                    format!("{series_q}: no series"),
                    format!(
                        "the series the adapter lists ({}) do not exist in namespace {}: not scraped yet, or missing the namespace label (see stage 2); the query's `or vector(0)` would hide this as 0",
                        self.rule.series_query,
                        self.ns()
                    ),
                    "wait one scrape interval after the pods are ready; otherwise fix the scrape job (stage 2)",
                );
            }
            Ok(_) => {}
        }
        let unit = match self.cfg.metric.profile {
            MetricProfile::MeanDuration => format!(
                "mean seconds per request over {} s",
                self.cfg.metric.rate_window_seconds
            ),
            MetricProfile::Concurrency | MetricProfile::Queue => {
                match crate::render::signal(self.cfg) {
                    crate::render::Signal::Gauges(g) => format!("{}, all pods", g.join(" + ")),
                    crate::render::Signal::MeanDuration(_) => "requests, all pods".to_owned(),
                }
            }
        };
        match self.prom_query(&promql).await {
            Err(e) => StageResult::fail(
                3,
                NAME,
                format!("query {promql} failed"),
                e,
                self.prom_fix(),
            ),
            Ok(r) => match r.single_finite() {
                Ok(v) => StageResult::pass(3, NAME, format!("{v:.3} ({unit})"), Some(v)),
                Err(e) => {
                    let (cause, fix) = match e {
                        prom::SingleValueError::NaN => (
                            "0/0 with no traffic in the rate window; prometheus-adapter does not filter NaN on the external path and turns it into a huge negative quantity".to_owned(),
                            "guard the ratio: `(<ratio>) > 0 or vector(0)` (kscale's rendered rule does; re-run `kscale up` to update the adapter's rules)",
                        ),
                        prom::SingleValueError::Empty => (
                            "the query selects nothing, so the adapter answers items: [] and the HPA reports FailedGetExternalMetric".to_owned(),
                            "append `or vector(0)` to the query and check its label matchers against the series (re-run `kscale up`)",
                        ),
                        prom::SingleValueError::Several(_) => (
                            "the query returns several series and the HPA sums them".to_owned(),
                            "aggregate with `sum(...) by (<<.GroupBy>>)` (re-run `kscale up`)",
                        ),
                        prom::SingleValueError::Infinite(_) => (
                            "a division by zero".to_owned(),
                            "guard the division: `(<ratio>) > 0 or vector(0)`",
                        ),
                    };
                    StageResult::fail(3, NAME, format!("{e} for {promql}"), cause, fix)
                }
            },
        }
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.condition("Ready").is_some_and(|c| c.is_true())
}

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// The container port the scrape job keeps (named `http`), else the configured port.
/// The series of the configured signal (a histogram's count, or each gauge).
fn signal_series(cfg: &crate::config::Config) -> Vec<String> {
    match crate::render::signal(cfg) {
        crate::render::Signal::MeanDuration(d) => vec![d.count.to_string()],
        crate::render::Signal::Gauges(g) => g,
    }
}

fn metrics_port(pod: &Pod, name: &str, default: u16) -> u16 {
    pod.spec
        .as_ref()
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(default)
}
