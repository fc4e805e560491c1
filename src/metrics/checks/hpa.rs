//! What an HPA's spec and status say about the metric, as stage 6 shows it.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde::{Deserialize, Serialize};

use crate::kubeapi::HasConditions as _;
use crate::quantity;

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

pub(super) fn hpa_condition_message(hpa: &HorizontalPodAutoscaler, type_: &str) -> String {
    hpa.condition(type_).map(|c| c.message).unwrap_or_default()
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
    let scaling_active = hpa.condition("ScalingActive").map(|c| (c.status, c.reason));
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

pub(super) fn describe(v: &HpaView) -> String {
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
