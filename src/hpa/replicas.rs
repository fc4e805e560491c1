//! Metric reading to replica proposal: the pure part of `replica_calculator.go`.
//!
//! Values travel as milli-units (`int64`) as they do in Kubernetes: prometheus-adapter converts a sample
//! with `NewMilliQuantity(int64(v*1000))` (truncation) and targets are read with `MilliValue()`
//! (rounded up). Keeping that arithmetic makes the tolerance edges match the real controller.

use crate::quantity::{quantity_milli, target_milli};
use serde::{Deserialize, Serialize};

/// Dead band around a usage ratio of 1 (`Tolerances` in `replica_calculator.go`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerances {
    /// Allowed fall below the target before scaling down.
    pub scale_down: f64,
    /// Allowed rise above the target before scaling up.
    pub scale_up: f64,
}

impl Tolerances {
    /// The same tolerance both ways.
    pub fn uniform(t: f64) -> Self {
        Self {
            scale_down: t,
            scale_up: t,
        }
    }

    /// `isWithin`: `1 - down <= ratio <= 1 + up` (a NaN ratio is never within).
    pub fn is_within(&self, ratio: f64) -> bool {
        (1.0 - self.scale_down) <= ratio && ratio <= (1.0 + self.scale_up)
    }
}

/// The metric of one `spec.metrics` entry and its target, in the metric's units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "target")]
pub enum MetricTarget {
    /// External metric, `target.type: Value`: the sum of the series against the target, times ready pods.
    ExternalValue(f64),
    /// External metric, `target.type: AverageValue`: the sum of the series divided by the per-pod target.
    ExternalAverageValue(f64),
    /// Pods metric, `target.type: AverageValue`: the average over pods against the target.
    PodsAverageValue(f64),
}

impl MetricTarget {
    /// The target value, in the metric's units.
    pub fn value(&self) -> f64 {
        match *self {
            MetricTarget::ExternalValue(v)
            | MetricTarget::ExternalAverageValue(v)
            | MetricTarget::PodsAverageValue(v) => v,
        }
    }

    /// The condition reason Kubernetes sets when this metric cannot be read.
    pub fn failure_reason(&self) -> &'static str {
        match self {
            MetricTarget::ExternalValue(_) | MetricTarget::ExternalAverageValue(_) => {
                "FailedGetExternalMetric"
            }
            MetricTarget::PodsAverageValue(_) => "FailedGetPodsMetric",
        }
    }
}

/// Why a metric gave no proposal (the HPA then counts it as invalid).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// The external metrics API answered `items: []` (`GetExternalMetric`).
    #[error("no metrics returned from external metrics API")]
    EmptyExternal,
    /// The selector matched no pods (`calcPlainMetricReplicas`).
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    /// No pod had a sample (`calcPlainMetricReplicas`).
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoPodMetrics,
    /// The target is not a positive number; the API server refuses such an HPA.
    #[error("target {0} is not a positive number")]
    BadTarget(f64),
    /// The metrics API could not be reached or failed.
    #[error("{0}")]
    Unavailable(String),
}

/// A replica proposal from one metric.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Proposed replicas (Kubernetes' `int32`, so possibly negative for negative metrics).
    pub replicas: i32,
    /// The current value the HPA status shows (`Value` or `AverageValue`), in milli-units.
    pub usage_milli: i64,
    /// The usage ratio the tolerance was checked on.
    pub ratio: f64,
}

impl Proposal {
    /// The status value in the metric's units.
    pub fn usage(&self) -> f64 {
        self.usage_milli as f64 / 1000.0
    }
}

/// Phase of a pod as `groupPods` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    /// Not running yet: counted as unready.
    Pending,
    /// Running (Ready or not: readiness matters only for CPU metrics).
    Running,
    /// Failed: ignored.
    Failed,
}

/// One pod of the scale target with its Pods-metric sample, if any.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PodMetric {
    /// Pod phase.
    pub phase: PodPhase,
    /// Whether the pod has a deletion timestamp (ignored when set).
    pub deleting: bool,
    /// Its sample, in the metric's units; `None` when the metrics API returned none for it.
    pub value: Option<f64>,
}

fn check_target(target: f64) -> Result<i64, MetricError> {
    let milli = target_milli(target);
    if target.is_finite() && milli > 0 {
        Ok(milli)
    } else {
        Err(MetricError::BadTarget(target))
    }
}

/// `int32(math.Ceil(x))`, clamped to `MaxInt32` like the overflow guards of the Go code.
fn ceil_i32(x: f64) -> i32 {
    if x.is_nan() {
        0
    } else if x >= i32::MAX as f64 {
        i32::MAX
    } else if x <= i32::MIN as f64 {
        i32::MIN
    } else {
        x.ceil() as i32
    }
}

fn sum_milli(values: &[f64]) -> i64 {
    values
        .iter()
        .fold(0i64, |acc, v| acc.saturating_add(quantity_milli(*v)))
}

/// External metric with a `Value` target (`GetExternalMetricReplicas` → `getUsageRatioReplicaCount`).
///
/// The series are summed; `ratio = sum / target`. Inside the tolerance the proposal is `spec_replicas`;
/// otherwise `ceil(ratio × ready_replicas)`, using the scale's `status.readyReplicas`. With
/// `spec_replicas == 0` it is `ceil(ratio)` and no tolerance applies.
pub fn external_value_replicas(
    spec_replicas: u32,
    ready_replicas: u32,
    values: &[f64],
    target: f64,
    tol: Tolerances,
) -> Result<Proposal, MetricError> {
    let target = check_target(target)?;
    if values.is_empty() {
        return Err(MetricError::EmptyExternal);
    }
    let usage = sum_milli(values);
    let ratio = usage as f64 / target as f64;
    let replicas = if spec_replicas != 0 {
        if tol.is_within(ratio) {
            spec_replicas.min(i32::MAX as u32) as i32
        } else {
            ceil_i32(ratio * f64::from(ready_replicas))
        }
    } else {
        ceil_i32(ratio)
    };
    Ok(Proposal {
        replicas,
        usage_milli: usage,
        ratio,
    })
}

/// External metric with an `AverageValue` target (`GetExternalPerPodMetricReplicas`).
///
/// The series are summed; the tolerance is checked on `sum / (target × status_replicas)`; outside it the
/// proposal is `ceil(sum / target)`. Pod readiness plays no role. The status value is
/// `ceil(sum / status_replicas)`.
pub fn external_average_value_replicas(
    status_replicas: u32,
    values: &[f64],
    target_per_pod: f64,
    tol: Tolerances,
) -> Result<Proposal, MetricError> {
    let target = check_target(target_per_pod)?;
    if values.is_empty() {
        return Err(MetricError::EmptyExternal);
    }
    let usage = sum_milli(values);
    let ratio = usage as f64 / (target as f64 * f64::from(status_replicas));
    let replicas = if tol.is_within(ratio) {
        status_replicas.min(i32::MAX as u32) as i32
    } else {
        ceil_i32(usage as f64 / target as f64)
    };
    let average = if status_replicas == 0 {
        // Go divides by a zero float here and converts +Inf; report the total instead of garbage.
        usage
    } else {
        (usage as f64 / f64::from(status_replicas)).ceil() as i64
    };
    Ok(Proposal {
        replicas,
        usage_milli: average,
        ratio,
    })
}

/// Pods metric with an `AverageValue` target (`GetMetricReplicas` → `calcPlainMetricReplicas`).
///
/// `groupPods`: deleting and Failed pods are ignored, Pending pods are unready, pods without a sample
/// are missing, and every other pod counts as ready (readiness matters only for CPU). The ratio is the
/// average over pods with a sample against the target. With missing or (on a scale-up) unready pods,
/// the ratio is recomputed with missing pods at the target (scale-down) or 0 (scale-up) and unready
/// pods at 0, and the HPA holds if that lands in the tolerance or flips the direction.
pub fn pods_average_value_replicas(
    current_replicas: u32,
    pods: &[PodMetric],
    target_per_pod: f64,
    tol: Tolerances,
) -> Result<Proposal, MetricError> {
    let target = check_target(target_per_pod)?;
    let current = current_replicas.min(i32::MAX as u32) as i32;
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    let mut ready = 0usize;
    let mut unready = 0usize;
    let mut missing = 0usize;
    let mut total: i64 = 0;
    for p in pods {
        if p.deleting || p.phase == PodPhase::Failed {
            continue;
        }
        if p.phase == PodPhase::Pending {
            unready += 1;
            continue;
        }
        match p.value {
            None => missing += 1,
            Some(v) => {
                ready += 1;
                total = total.saturating_add(quantity_milli(v));
            }
        }
    }
    if ready == 0 {
        return Err(MetricError::NoPodMetrics);
    }
    // GetMetricUsageRatio: integer average, then a float ratio.
    let average = total / ready as i64;
    let ratio = average as f64 / target as f64;
    let scale_up_with_unready = unready > 0 && ratio > 1.0;
    if !scale_up_with_unready && missing == 0 {
        let replicas = if tol.is_within(ratio) {
            current
        } else {
            ceil_i32(ratio * ready as f64)
        };
        return Ok(Proposal {
            replicas,
            usage_milli: average,
            ratio,
        });
    }
    let mut filled_total = total;
    let mut counted = ready;
    if missing > 0 {
        if ratio < 1.0 {
            filled_total = filled_total.saturating_add(target.saturating_mul(missing as i64));
            counted += missing;
        } else if ratio > 1.0 {
            counted += missing;
        }
    }
    if scale_up_with_unready {
        counted += unready;
    }
    let new_ratio = (filled_total / counted as i64) as f64 / target as f64;
    let hold = Proposal {
        replicas: current,
        usage_milli: average,
        ratio,
    };
    if tol.is_within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(hold);
    }
    let replicas = ceil_i32(new_ratio * counted as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(hold);
    }
    Ok(Proposal {
        replicas,
        usage_milli: average,
        ratio: new_ratio,
    })
}
