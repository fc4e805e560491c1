//! Stages 4-6: the external metrics APIService is Available, the external metrics API serves
//! the value, and the HPA reads it.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::Api;
use serde::Deserialize;

use super::api::{GetError, bounded, get_text};
use super::hpa::{describe, hpa_condition_message, hpa_view};
use super::{Checker, EXTERNAL_APISERVICE, HpaView, StageResult};
use crate::quantity;

impl Checker<'_> {
    /// Stage 4: the external metrics APIService is Available.
    pub async fn stage4_apiservice(&self) -> StageResult {
        const NAME: &str = "APIService v1beta1.external.metrics.k8s.io Available";
        let api: Api<APIService> = Api::all(self.client.clone());
        let adapter_fix = format!(
            "the adapter pod may not be ready yet (seconds after a start) or is crashing: kubectl -n {ns} get pods -l app.kubernetes.io/instance={rel}; kubectl -n {ns} logs deploy/{rel} (a wrong --prometheus-url makes it fail)",
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
                match crate::kubeapi::apiservice_available(&svc) {
                    Ok(c) => StageResult::pass(4, NAME, format!("Available=True ({})", c.reason), None),
                    Err(Some(c)) => StageResult::fail(
                        4, NAME,
                        format!("Available={} ({})", c.status, c.reason),
                        format!("{}: {}", c.reason, c.message),
                        adapter_fix,
                    ),
                    Err(None) => StageResult::fail(4, NAME, "no Available condition yet".into(), "the API server has not checked the adapter yet".into(), adapter_fix),
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
                format!(
                    "the HPA syncs {}: wait (`kscale metrics --wait 1m`)",
                    crate::kubeapi::hpa_sync_period(&self.client).await
                ),
            ),
        };
        (result, Some(view))
    }
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
