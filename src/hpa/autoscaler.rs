//! One HPA's sync loop state and decision (`reconcileAutoscaler` and the normalization of
//! `horizontal.go`).

use serde::Serialize;

use super::replicas::{
    MetricError, MetricTarget, PodMetric, Proposal, external_average_value_replicas,
    external_value_replicas, pods_average_value_replicas,
};
use super::{HpaSettings, Rules};
use super::{PolicyKind, SelectPolicy};

/// What the metrics API returned for one metric at this sync.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricReading {
    /// External metric: the value of every returned series (empty means `items: []`).
    External(Vec<f64>),
    /// Pods metric: every pod of the target with its sample.
    Pods(Vec<PodMetric>),
    /// The API call failed (adapter down, metric not listed, ...).
    Unavailable(String),
}

/// One `spec.metrics` entry with what was read for it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInput {
    /// Metric type and target.
    pub target: MetricTarget,
    /// What the metrics API returned.
    pub reading: MetricReading,
}

/// The scale subresource and the metrics as one sync sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncInputs {
    /// `scale.spec.replicas`: the count the HPA set last (the HPA's "current replicas").
    pub spec_replicas: u32,
    /// `scale.status.replicas`: pods that exist and are not being deleted.
    pub status_replicas: u32,
    /// `scale.status.readyReplicas`: those of them that are Ready.
    pub ready_replicas: u32,
    /// One entry per `spec.metrics` item.
    pub metrics: Vec<MetricInput>,
}

/// An HPA status condition (`AbleToScale`, `ScalingActive`, `ScalingLimited`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    /// `True` or `False`.
    pub status: bool,
    /// The machine-readable reason, as Kubernetes spells it.
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
}

impl Condition {
    fn new(status: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The outcome of one sync.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// `status.desiredReplicas` after this sync (equal to the current count when it does not rescale).
    pub desired_replicas: u32,
    /// Whether the HPA writes a new replica count to the scale target.
    pub rescale: bool,
    /// The largest proposal of the valid metrics, before stabilization and policies.
    pub metric_replicas: Option<i32>,
    /// The proposal after the stabilization windows, before rate policies and clamps.
    pub stabilized_replicas: Option<i32>,
    /// Per metric, the current value the HPA status shows, in the metric's units (`None` if invalid).
    pub metric_values: Vec<Option<f64>>,
    /// The rescale reason Kubernetes would put in its event, or why nothing changed.
    pub reason: String,
    /// `AbleToScale`: stabilization and rescale outcome.
    pub able_to_scale: Condition,
    /// `ScalingActive`: whether a replica count could be computed.
    pub scaling_active: Condition,
    /// `ScalingLimited`: whether policies or min/max held the count back (absent when not computed).
    pub scaling_limited: Option<Condition>,
}

#[derive(Debug, Clone, Copy)]
struct Stamped {
    at: f64,
    value: i32,
}

/// One HPA as kube-controller-manager tracks it: settings, recommendation history and scale events.
///
/// Call [`Autoscaler::decide`] once per sync period (15 s by default) with the time in seconds; the
/// caller applies the decision (sets the replica count) when [`Decision::rescale`] is true.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    settings: HpaSettings,
    recommendations: Vec<Stamped>,
    initialized: bool,
    scale_up_events: Vec<Stamped>,
    scale_down_events: Vec<Stamped>,
    last_desired: Option<u32>,
}

impl Autoscaler {
    /// A new HPA with empty history.
    pub fn new(settings: HpaSettings) -> Self {
        Self {
            settings,
            recommendations: Vec::new(),
            initialized: false,
            scale_up_events: Vec::new(),
            scale_down_events: Vec::new(),
            last_desired: None,
        }
    }

    /// The settings this HPA runs with.
    pub fn settings(&self) -> &HpaSettings {
        &self.settings
    }

    /// One sync at time `now` (seconds, non-decreasing between calls).
    pub fn decide(&mut self, now: f64, inputs: &SyncInputs) -> Decision {
        let current = clamp_i32(inputs.spec_replicas);
        let min = clamp_i32(self.settings.min_replicas);
        let max = clamp_i32(self.settings.max_replicas);
        // recordInitialRecommendation: the first sync seeds the history with the current count, so a
        // fresh HPA does not scale down at once.
        if !self.initialized {
            self.initialized = true;
            self.recommendations.push(Stamped {
                at: now,
                value: current,
            });
        }
        let mut able = Condition::new(
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        );
        let mut active = Condition::new(true, "ValidMetricFound", "");
        let mut limited = None;
        let mut metric_replicas = None;
        let mut stabilized = None;
        let mut metric_values = Vec::new();
        let mut rescale = true;
        let mut desired: i32;
        let mut reason = String::new();

        if current == 0 {
            desired = 0;
            rescale = false;
            active = Condition::new(
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            );
            reason = active.message.clone();
        } else if current > max {
            desired = max;
            reason = "Current number of replicas above Spec.MaxReplicas".into();
        } else if current < min {
            desired = min;
            reason = "Current number of replicas below Spec.MinReplicas".into();
        } else {
            let tol = self.settings.tolerances();
            let mut best: i32 = 0;
            let mut invalid = 0usize;
            let mut first_failure: Option<(&'static str, String)> = None;
            let mut best_name = "";
            for m in &inputs.metrics {
                match propose(m, inputs, tol) {
                    Ok(p) => {
                        metric_values.push(Some(p.usage()));
                        if best == 0 || p.replicas > best {
                            best = p.replicas;
                            best_name = target_name(&m.target);
                        }
                    }
                    Err(e) => {
                        metric_values.push(None);
                        invalid += 1;
                        first_failure.get_or_insert((m.target.failure_reason(), e.to_string()));
                    }
                }
            }
            // All metrics invalid, or some invalid while the valid ones would scale down: hold
            // (computeReplicasForMetrics returns -1; since Kubernetes 1.21 a missing metric never
            // lets the HPA scale down).
            if invalid >= inputs.metrics.len() || (invalid > 0 && best < current) {
                let (why, msg) = first_failure.unwrap_or((
                    "FailedGetExternalMetric",
                    "no metrics are configured".to_string(),
                ));
                let message = format!("the HPA was unable to compute the replica count: {msg}");
                return Decision {
                    desired_replicas: self.last_desired.unwrap_or(inputs.spec_replicas),
                    rescale: false,
                    metric_replicas: None,
                    stabilized_replicas: None,
                    metric_values,
                    reason: format!(
                        "invalid metrics ({invalid} invalid out of {}), first error is: {msg}",
                        inputs.metrics.len()
                    ),
                    able_to_scale: able,
                    scaling_active: Condition::new(false, why, message),
                    scaling_limited: None,
                };
            }
            active.message = format!(
                "the HPA was able to successfully calculate a replica count from {best_name}"
            );
            metric_replicas = Some(best);
            desired = best.max(0);
            if desired > current {
                reason = format!("{best_name} above target");
            } else if desired < current {
                reason = "All metrics below target".into();
            }
            let (d, s, a, l) = if self.settings.behavior.is_some() {
                self.normalize_with_behaviors(now, current, desired, min, max)
            } else {
                self.normalize_legacy(now, current, desired, min, max)
            };
            desired = d;
            stabilized = Some(s);
            able = a;
            limited = Some(l);
            rescale = desired != current;
            if !rescale {
                reason = "recommended size matches current size".into();
            }
        }

        if rescale {
            self.store_scale_event(now, current, desired);
            able = Condition::new(
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
        } else if current != 0 {
            desired = current;
        }
        let desired = desired.max(0) as u32;
        self.last_desired = Some(desired);
        Decision {
            desired_replicas: desired,
            rescale,
            metric_replicas,
            stabilized_replicas: stabilized,
            metric_values,
            reason,
            able_to_scale: able,
            scaling_active: active,
            scaling_limited: limited,
        }
    }

    /// `normalizeDesiredReplicas` (behavior == nil): max recommendation over the controller's down
    /// window, then at most max(2 × current, 4), then min/max.
    fn normalize_legacy(
        &mut self,
        now: f64,
        current: i32,
        prenormalized: i32,
        min: i32,
        max: i32,
    ) -> (i32, i32, Condition, Condition) {
        let window = f64::from(self.settings.downscale_stabilization_seconds);
        let cutoff = now - window;
        // stabilizeRecommendation keeps samples that are not Before(cutoff).
        self.recommendations.retain(|r| r.at >= cutoff);
        let stabilized = self
            .recommendations
            .iter()
            .map(|r| r.value)
            .fold(prenormalized, i32::max);
        self.recommendations.push(Stamped {
            at: now,
            value: prenormalized,
        });
        let able = if stabilized != prenormalized {
            Condition::new(
                true,
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
        } else {
            Condition::new(
                true,
                "ReadyForNewScale",
                "recommended size matches current size",
            )
        };
        let scale_up_limit = ((2.0 * f64::from(current)).max(4.0)) as i32;
        let (max_allowed, max_reason, max_msg) = if max > scale_up_limit {
            (
                scale_up_limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        let (desired, reason, msg) = if stabilized < min {
            (
                min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        } else if stabilized > max_allowed {
            (max_allowed, max_reason, max_msg)
        } else {
            (
                stabilized,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            )
        };
        let limited = Condition::new(desired != stabilized, reason, msg);
        (desired, stabilized, able, limited)
    }

    /// `normalizeDesiredReplicasWithBehaviors`: stabilization windows, then the rate policies of the
    /// direction against the scale events of their periods, then min/max.
    fn normalize_with_behaviors(
        &mut self,
        now: f64,
        current: i32,
        prenormalized: i32,
        min: i32,
        max: i32,
    ) -> (i32, i32, Condition, Condition) {
        let (up_window, down_window) = self.windows();
        let up_cutoff = now - up_window;
        let down_cutoff = now - down_window;
        // A sample before both cutoffs can never count again; Kubernetes overwrites one such sample,
        // dropping them all is equivalent.
        self.recommendations
            .retain(|r| !(r.at < up_cutoff && r.at < down_cutoff));
        let mut up_rec = prenormalized;
        let mut down_rec = prenormalized;
        for r in &self.recommendations {
            if r.at > up_cutoff {
                up_rec = up_rec.min(r.value);
            }
            if r.at > down_cutoff {
                down_rec = down_rec.max(r.value);
            }
        }
        let stabilized = current.max(up_rec).min(down_rec);
        self.recommendations.push(Stamped {
            at: now,
            value: prenormalized,
        });
        let able = if stabilized == prenormalized {
            Condition::new(
                true,
                "ReadyForNewScale",
                "recommended size matches current size",
            )
        } else if prenormalized >= current {
            Condition::new(
                true,
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation",
            )
        } else {
            Condition::new(
                true,
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            )
        };
        let (desired, reason, msg) = self.apply_rate_policies(now, current, stabilized, min, max);
        let limited = Condition::new(desired != stabilized, reason, msg);
        (desired, stabilized, able, limited)
    }

    fn windows(&self) -> (f64, f64) {
        let b = self.settings.behavior.as_ref();
        let up = b
            .and_then(|b| b.scale_up.stabilization_window_seconds)
            .unwrap_or(0);
        // maybeInitScaleDownStabilizationWindow: an unset down window takes the controller's flag.
        let down = b
            .and_then(|b| b.scale_down.stabilization_window_seconds)
            .unwrap_or(self.settings.downscale_stabilization_seconds);
        (f64::from(up), f64::from(down))
    }

    /// `convertDesiredReplicasWithBehaviorRate`.
    fn apply_rate_policies(
        &self,
        now: f64,
        current: i32,
        desired: i32,
        min: i32,
        max: i32,
    ) -> (i32, &'static str, &'static str) {
        let Some(b) = self.settings.behavior.as_ref() else {
            return (
                desired,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            );
        };
        if desired > current {
            let limit = scale_up_limit(
                now,
                current,
                &self.scale_up_events,
                &self.scale_down_events,
                &b.scale_up,
            )
            .max(current);
            let (allowed, reason, msg) = if max > limit {
                (
                    limit,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            } else {
                (
                    max,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            };
            if desired > allowed {
                return (allowed, reason, msg);
            }
        } else if desired < current {
            let limit = scale_down_limit(
                now,
                current,
                &self.scale_up_events,
                &self.scale_down_events,
                &b.scale_down,
            )
            .min(current);
            let (allowed, reason, msg) = if min < limit {
                (
                    limit,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
            } else {
                (
                    min,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            };
            if desired < allowed {
                return (allowed, reason, msg);
            }
        }
        (
            desired,
            "DesiredWithinRange",
            "the desired count is within the acceptable range",
        )
    }

    /// `storeScaleEvent`: only the behavior path keeps events.
    fn store_scale_event(&mut self, now: f64, previous: i32, new: i32) {
        let Some(b) = self.settings.behavior.as_ref() else {
            return;
        };
        if new > previous {
            let keep = f64::from(b.scale_up.longest_period());
            self.scale_up_events.retain(|e| e.at >= now - keep);
            self.scale_up_events.push(Stamped {
                at: now,
                value: new - previous,
            });
        } else {
            let keep = f64::from(b.scale_down.longest_period());
            self.scale_down_events.retain(|e| e.at >= now - keep);
            self.scale_down_events.push(Stamped {
                at: now,
                value: previous - new,
            });
        }
    }
}

fn clamp_i32(v: u32) -> i32 {
    v.min(i32::MAX as u32) as i32
}

fn target_name(t: &MetricTarget) -> &'static str {
    match t {
        MetricTarget::ExternalValue(_) | MetricTarget::ExternalAverageValue(_) => "external metric",
        MetricTarget::PodsAverageValue(_) => "pods metric",
    }
}

fn propose(
    m: &MetricInput,
    inputs: &SyncInputs,
    tol: super::Tolerances,
) -> Result<Proposal, MetricError> {
    match (&m.target, &m.reading) {
        (_, MetricReading::Unavailable(msg)) => Err(MetricError::Unavailable(msg.clone())),
        (MetricTarget::ExternalValue(t), MetricReading::External(v)) => {
            external_value_replicas(inputs.spec_replicas, inputs.ready_replicas, v, *t, tol)
        }
        (MetricTarget::ExternalAverageValue(t), MetricReading::External(v)) => {
            external_average_value_replicas(inputs.status_replicas, v, *t, tol)
        }
        (MetricTarget::PodsAverageValue(t), MetricReading::Pods(p)) => {
            pods_average_value_replicas(inputs.spec_replicas, p, *t, tol)
        }
        (target, _) => Err(MetricError::Unavailable(format!(
            "reading does not match the metric type of {target:?}"
        ))),
    }
}

/// `getReplicasChangePerPeriod`: events strictly after `now - period`.
fn change_in_period(now: f64, period: u32, events: &[Stamped]) -> i32 {
    let cutoff = now - f64::from(period);
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.value)
        .sum()
}

/// `calculateScaleUpLimitWithScalingRules`.
fn scale_up_limit(
    now: f64,
    current: i32,
    ups: &[Stamped],
    downs: &[Stamped],
    rules: &Rules,
) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => (i32::MAX, i32::min),
        SelectPolicy::Max => (i32::MIN, i32::max),
    };
    for p in &rules.policies {
        let start = current - change_in_period(now, p.period_seconds, ups)
            + change_in_period(now, p.period_seconds, downs);
        let proposed = match p.kind {
            PolicyKind::Pods => start.saturating_add(clamp_i32(p.value)),
            // Rounded up so that a small percentage still adds a pod.
            PolicyKind::Percent => {
                (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// `calculateScaleDownLimitWithBehaviors`.
fn scale_down_limit(
    now: f64,
    current: i32,
    ups: &[Stamped],
    downs: &[Stamped],
    rules: &Rules,
) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => (i32::MIN, i32::max),
        SelectPolicy::Max => (i32::MAX, i32::min),
    };
    for p in &rules.policies {
        let start = current - change_in_period(now, p.period_seconds, ups)
            + change_in_period(now, p.period_seconds, downs);
        let proposed = match p.kind {
            PolicyKind::Pods => start.saturating_sub(clamp_i32(p.value)),
            // Go's int32(float) conversion truncates toward zero.
            PolicyKind::Percent => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32,
        };
        result = pick(result, proposed);
    }
    result
}
