//! The six staged checks of `kscale metrics`, each proving one link of
//! server → Prometheus → prometheus-adapter → external metrics API → HPA.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

use super::adapter_query::{self, go_quote};
use super::{exposition, prom};
use crate::config::{Config, MetricProfile};
use crate::quantity;
use crate::render::AdapterRule;
use crate::timeline::PodSample;

/// Name of the APIService prometheus-adapter registers for external metrics.
pub use crate::kubeapi::EXTERNAL_METRICS_APISERVICE as EXTERNAL_APISERVICE;

/// Outcome of one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageResult {
    /// 1 to 6.
    pub stage: u8,
    /// What the stage proves.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What it saw.
    pub seen: String,
    /// The number it saw, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// On failure: the likely cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// On failure: how to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl StageResult {
    fn pass(stage: u8, name: &str, seen: String, value: Option<f64>) -> Self {
        Self {
            stage,
            name: name.into(),
            passed: true,
            seen,
            value,
            cause: None,
            fix: None,
        }
    }

    fn fail(stage: u8, name: &str, seen: String, cause: String, fix: impl Into<String>) -> Self {
        Self {
            stage,
            name: name.into(),
            passed: false,
            seen,
            value: None,
            cause: Some(cause),
            fix: Some(fix.into()),
        }
    }
}

/// What stage 6 saw of the HPA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaView {
    /// `status.currentReplicas`.
    pub current_replicas: u32,
    /// `status.desiredReplicas`.
    pub desired_replicas: u32,
    /// The metric as the HPA last read it (`value`, or `averageValue` per pod).
    pub metric_value: Option<f64>,
    /// The target (`value` or `averageValue`).
    pub target: Option<f64>,
    /// `Value` or `AverageValue`.
    pub target_type: String,
    /// `spec.minReplicas`.
    pub min_replicas: u32,
    /// `spec.maxReplicas`.
    pub max_replicas: u32,
    /// The ScalingActive condition: status and reason.
    pub scaling_active: Option<(String, String)>,
    /// What the HPA algorithm (`crate::hpa`) says the next decision should be, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_desired_replicas: Option<u32>,
}

/// The hook for "what the HPA should decide next": given what stage 6 saw of the HPA, the items
/// the external metrics API served in stage 5 (the HPA sums them), and the number of ready pods,
/// the replica count kube-controller-manager would propose (`crate::hpa`'s
/// `external_value_replicas` / `external_average_value_replicas`). `None` means no prediction;
/// stage 6 shows a prediction that differs from `status.desiredReplicas`.
pub type DecisionHook = fn(
    view: &HpaView,
    external_values: Option<&[f64]>,
    ready_pods: u32,
    cfg: &Config,
) -> Option<u32>;

/// The default hook: no prediction.
pub fn no_prediction(_: &HpaView, _: Option<&[f64]>, _: u32, _: &Config) -> Option<u32> {
    None
}

/// Everything the checks need.
pub struct Checker<'a> {
    /// Client to the API server.
    pub client: kube::Client,
    /// The configuration that was deployed.
    pub cfg: &'a Config,
    /// The adapter rule that was deployed.
    pub rule: AdapterRule,
    /// The scrape job's name.
    pub job: String,
    /// Predicts the HPA's next decision.
    pub decide: DecisionHook,
}

/// What one full pass of the checks found.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// The six results in order.
    pub stages: Vec<StageResult>,
    /// Per-pod gauges read in stage 1.
    pub pods: Vec<PodSample>,
    /// The HPA as stage 6 saw it.
    pub hpa: Option<HpaView>,
}

/// A GET through the API server that failed.
#[derive(Debug)]
pub enum GetError {
    /// The API server (or the proxied service) answered with an error status.
    Status {
        /// HTTP status code.
        code: u16,
        /// `Status.reason`.
        reason: String,
        /// `Status.message`.
        message: String,
    },
    /// No answer at all.
    Transport(String),
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetError::Status {
                code,
                reason,
                message,
            } => {
                write!(f, "HTTP {code}")?;
                if !reason.is_empty() {
                    write!(f, " {reason}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            GetError::Transport(e) => write!(f, "{e}"),
        }
    }
}

fn classify(e: kube::Error) -> GetError {
    match e {
        kube::Error::Api(s) => GetError::Status {
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
        },
        other => GetError::Transport(format!("{other:#}")),
    }
}

/// A raw GET through the API server.
pub async fn get_text(client: &kube::Client, path: &str) -> Result<String, GetError> {
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| GetError::Transport(format!("cannot build request for {path}: {e}")))?;
    bounded(client.request_text(req)).await
}

/// Longest wait for one API request. A client with kube's default retry policy retries 503s
/// (an aggregated API or a service proxy without endpoints) with backoff for many minutes; a
/// check must report instead of hanging. Build the client with `default_retry = false` to see
/// the 503 itself.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

async fn bounded<T>(
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, GetError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(r) => r.map_err(classify),
        Err(_) => Err(GetError::Transport(format!(
            "no answer within {} s (the API server, or the service it proxies to, keeps failing)",
            REQUEST_TIMEOUT.as_secs()
        ))),
    }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// The container port the scrape job keeps (named `http`), else the configured port.
fn metrics_port(pod: &Pod, default: u16) -> u16 {
    pod.spec
        .as_ref()
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some("http"))
        .and_then(|p| u16::try_from(p.container_port).ok())
        .unwrap_or(default)
}

impl Checker<'_> {
    fn ns(&self) -> &str {
        &self.cfg.app.namespace
    }

    /// Runs the six stages once.
    pub async fn run_once(&self) -> Pass {
        let mut pass = Pass::default();
        let (s1, ready) = self.stage1_pods(&mut pass.pods).await;
        pass.stages.push(s1);
        pass.stages.push(self.stage2_scrape(&ready).await);
        pass.stages.push(self.stage3_query().await);
        pass.stages.push(self.stage4_apiservice().await);
        let (s5, external) = self.stage5_external().await;
        pass.stages.push(s5);
        let (s6, hpa) = self
            .stage6_hpa(ready.len() as u32, external.as_deref())
            .await;
        pass.stages.push(s6);
        pass.hpa = hpa;
        pass
    }

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
            let port = metrics_port(pod, self.cfg.app.port);
            let path = format!(
                "/api/v1/namespaces/{}/pods/{name}:{port}/proxy/metrics",
                self.ns()
            );
            match get_text(&self.client, &path).await {
                Ok(text) if exposition::is_inference_server(&text) => {
                    samples.push(PodSample {
                        pod: name.clone(),
                        queue_depth: exposition::sum_of(&text, "inference_queue_depth")
                            .unwrap_or(0.0),
                        in_flight: exposition::sum_of(&text, "inference_requests_in_flight")
                            .unwrap_or(0.0),
                    });
                    ready.push(name);
                }
                Ok(_) => {
                    problems.push(format!("pod {name}: /metrics on port {port} answers without inference_request_duration_seconds"));
                    fixes.push(
                        "the container is not kscale-server (wrong image?): re-run `kscale deploy`"
                            .into(),
                    );
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
            MetricProfile::Concurrency => "requests in flight + queued, all pods".to_owned(),
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

    /// Stage 4: the external metrics APIService is Available.
    pub async fn stage4_apiservice(&self) -> StageResult {
        const NAME: &str = "APIService v1beta1.external.metrics.k8s.io Available";
        let api: Api<APIService> = Api::all(self.client.clone());
        let adapter_fix = format!(
            "the adapter pod may not be ready yet (its probes start after 30 s) or is crashing: kubectl -n {ns} get pods -l app.kubernetes.io/instance={rel}; kubectl -n {ns} logs deploy/{rel} (a wrong --prometheus-url makes it fail)",
            ns = self.cfg.monitoring.namespace,
            rel = self.cfg.monitoring.adapter_release
        );
        match bounded(api.get_opt(EXTERNAL_APISERVICE)).await {
            Err(e) => StageResult::fail(4, NAME, "cannot read the APIService".into(), e.to_string(), "check the kube context and your permissions (kubectl get apiservice)"),
            Ok(None) => StageResult::fail(
                4, NAME, "APIService not found".into(),
                "prometheus-adapter is not installed, or its values have no rules.external (the chart creates this APIService only then)".into(),
                "run `kscale up`",
            ),
            Ok(Some(svc)) => {
                let cond = svc
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|cs| cs.iter().find(|c| c.type_ == "Available"));
                match cond {
                    Some(c) if c.status == "True" => StageResult::pass(4, NAME, format!("Available=True ({})", c.reason.clone().unwrap_or_default()), None),
                    Some(c) => StageResult::fail(
                        4, NAME,
                        format!("Available={} ({})", c.status, c.reason.clone().unwrap_or_default()),
                        format!("{}: {}", c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()),
                        adapter_fix,
                    ),
                    None => StageResult::fail(4, NAME, "no Available condition yet".into(), "the API server has not checked the adapter yet".into(), adapter_fix),
                }
            }
        }
    }

    /// Reads the metric from the external metrics API, as the HPA does.
    pub async fn external_value(&self) -> Result<Vec<f64>, GetError> {
        let path = format!(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{}",
            self.ns(),
            self.rule.name
        );
        let text = get_text(&self.client, &path).await?;
        let list: ExternalMetricValueList = serde_json::from_str(&text)
            .map_err(|e| GetError::Transport(format!("malformed ExternalMetricValueList: {e}")))?;
        list.items
            .iter()
            .map(|i| quantity::parse(&i.value).map_err(|e| GetError::Transport(format!("{e:#}"))))
            .collect()
    }

    /// Stage 5: the external metrics API serves the value.
    pub async fn stage5_external(&self) -> (StageResult, Option<Vec<f64>>) {
        let got = self.external_value().await;
        let values = got.as_ref().ok().cloned();
        (self.stage5_result(got), values)
    }

    fn stage5_result(&self, got: Result<Vec<f64>, GetError>) -> StageResult {
        const NAME: &str = "external metrics API serves the value";
        let relist = self.cfg.metric.relist_interval_seconds;
        match got {
            Ok(values) => match values.as_slice() {
                [] => StageResult::fail(
                    5, NAME, "items: []".into(),
                    format!("the adapter has not listed the series yet (it relists every {relist} s), or the query's namespace matcher selects nothing (see stages 2-3)"),
                    format!("wait: `kscale metrics --wait {}s`", relist * 3),
                ),
                [v] if quantity::is_converted_nan(*v) => StageResult::fail(
                    5, NAME, format!("{v}"),
                    "the query returned NaN and the adapter converted it to the smallest int64 (see stage 3)".into(),
                    "guard the query with `> 0 or vector(0)` (re-run `kscale up`)",
                ),
                [v] => StageResult::pass(5, NAME, format!("{v:.3}"), Some(*v)),
                many => StageResult::fail(
                    5, NAME, format!("{} items", many.len()),
                    "several items: the HPA sums them".into(),
                    "the query must aggregate to one series: `sum(...) by (<<.GroupBy>>)`",
                ),
            },
            Err(GetError::Status { code: 404, reason, message }) => StageResult::fail(
                5, NAME, format!("HTTP 404 {reason}"),
                format!("{message}: the adapter has not listed metric {} yet (it relists every {relist} s), or the rule's name.as differs", self.rule.name),
                format!("wait: `kscale metrics --wait {}s`; if it persists, compare `kubectl get --raw /apis/external.metrics.k8s.io/v1beta1` with the rule", relist * 3),
            ),
            Err(GetError::Status { code: 503, reason, message }) => StageResult::fail(
                5, NAME, format!("HTTP 503 {reason}"),
                format!("the external metrics API is unavailable: {message}"),
                "see stage 4",
            ),
            Err(e) => StageResult::fail(5, NAME, "request failed".into(), e.to_string(), "see stage 4; kubectl -n monitoring logs deploy/prometheus-adapter"),
        }
    }

    /// Stage 6: the HPA reads the metric and can scale.
    pub async fn stage6_hpa(
        &self,
        ready_pods: u32,
        external_values: Option<&[f64]>,
    ) -> (StageResult, Option<HpaView>) {
        const NAME: &str = "the HPA reads the metric";
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), self.ns());
        let hpa = match bounded(api.get_opt(&self.cfg.app.name)).await {
            Err(e) => {
                return (
                    StageResult::fail(
                        6,
                        NAME,
                        "cannot read the HPA".into(),
                        e.to_string(),
                        "check the kube context",
                    ),
                    None,
                );
            }
            Ok(None) => {
                return (
                    StageResult::fail(
                        6,
                        NAME,
                        format!("no HPA {} in namespace {}", self.cfg.app.name, self.ns()),
                        "the HPA is not created".into(),
                        "run `kscale deploy`",
                    ),
                    None,
                );
            }
            Ok(Some(h)) => h,
        };
        let mut view = hpa_view(&hpa, &self.rule.name);
        view.expected_desired_replicas =
            (self.decide)(&view, external_values, ready_pods, self.cfg);
        let seen = describe(&view);
        let active = view.scaling_active.clone();
        let result = match (&active, view.metric_value) {
            (Some((s, _)), Some(v)) if s == "True" => {
                let mut r = StageResult::pass(6, NAME, seen.clone(), Some(v));
                if let Some(exp) = view.expected_desired_replicas
                    && exp != view.desired_replicas
                {
                    r.seen = format!(
                        "{seen}; on this value the metric alone proposes {exp} (the HPA may hold back within its stabilization window or rate policies)"
                    );
                }
                r
            }
            (Some((s, reason)), _) if s != "True" => {
                let msg = hpa_condition_message(&hpa, "ScalingActive");
                let fix = if reason.contains("FailedGetExternalMetric") {
                    "the HPA cannot read the external metric: see stages 4 and 5 (kubectl describe hpa shows the same)"
                } else {
                    "kubectl describe hpa"
                };
                StageResult::fail(
                    6,
                    NAME,
                    seen,
                    format!("ScalingActive={s} ({reason}): {msg}"),
                    fix,
                )
            }
            _ => StageResult::fail(
                6,
                NAME,
                seen,
                format!(
                    "status.currentMetrics has no value for {} yet",
                    self.rule.name
                ),
                "the HPA syncs every 15 s: wait (`kscale metrics --wait 1m`)",
            ),
        };
        (result, Some(view))
    }
}

fn hpa_condition_message(hpa: &HorizontalPodAutoscaler, type_: &str) -> String {
    hpa.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

/// Reads what the HPA status and spec say about the metric `metric`.
pub fn hpa_view(hpa: &HorizontalPodAutoscaler, metric: &str) -> HpaView {
    let status = hpa.status.as_ref();
    let spec = hpa.spec.as_ref();
    let spec_metric = spec
        .and_then(|s| s.metrics.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|m| m.external.as_ref())
        .find(|e| e.metric.name == metric);
    let (target_type, target) = match spec_metric {
        Some(e) => {
            let t = &e.target;
            let q = match t.type_.as_str() {
                "AverageValue" => t.average_value.as_ref(),
                _ => t.value.as_ref(),
            };
            (t.type_.clone(), q.and_then(|q| quantity::parse(&q.0).ok()))
        }
        None => (String::new(), None),
    };
    let metric_value = status
        .and_then(|s| s.current_metrics.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|m| m.external.as_ref())
        .find(|e| e.metric.name == metric)
        .and_then(|e| {
            let c = &e.current;
            c.value.as_ref().or(c.average_value.as_ref())
        })
        .and_then(|q| quantity::parse(&q.0).ok());
    let scaling_active = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "ScalingActive"))
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()));
    HpaView {
        current_replicas: status.and_then(|s| s.current_replicas).unwrap_or(0).max(0) as u32,
        desired_replicas: status.map(|s| s.desired_replicas).unwrap_or(0).max(0) as u32,
        metric_value,
        target,
        target_type,
        min_replicas: spec.and_then(|s| s.min_replicas).unwrap_or(1).max(0) as u32,
        max_replicas: spec.map(|s| s.max_replicas).unwrap_or(0).max(0) as u32,
        scaling_active,
        expected_desired_replicas: None,
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}"))
        .unwrap_or_else(|| "<none>".into())
}

fn describe(v: &HpaView) -> String {
    format!(
        "metric {} / target {} ({}); replicas {} -> {} (min {}, max {}); ScalingActive={}",
        fmt_opt(v.metric_value),
        fmt_opt(v.target),
        if v.target_type.is_empty() {
            "no External target for this metric"
        } else {
            &v.target_type
        },
        v.current_replicas,
        v.desired_replicas,
        v.min_replicas,
        v.max_replicas,
        v.scaling_active
            .as_ref()
            .map(|(s, r)| format!("{s} ({r})"))
            .unwrap_or_else(|| "<none>".into()),
    )
}

/// `external.metrics.k8s.io/v1beta1` `ExternalMetricValueList` (the fields kscale reads).
#[derive(Debug, Deserialize)]
struct ExternalMetricValueList {
    #[serde(default)]
    items: Vec<ExternalMetricValue>,
}

#[derive(Debug, Deserialize)]
struct ExternalMetricValue {
    value: String,
}
