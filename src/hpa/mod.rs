//! The HorizontalPodAutoscaler's decision, as kube-controller-manager makes it (`autoscaling/v2`).
//!
//! Two layers, mirroring `pkg/controller/podautoscaler` of Kubernetes:
//! - pure functions that turn one metric reading into a replica proposal ([`external_value_replicas`],
//!   [`external_average_value_replicas`], [`pods_average_value_replicas`]; `replica_calculator.go`);
//! - a stateful [`Autoscaler`] for one HPA that keeps its recommendation history and scale events and
//!   applies stabilization windows, `behavior` policies and min/max clamps (`horizontal.go`).
//!
//! Only the metric types kscale uses are covered: External with `Value` or `AverageValue` targets and
//! Pods with `AverageValue`. Resource (CPU) metrics, Object metrics and scale-to-zero are not.

mod autoscaler;
mod replicas;
mod rules;
#[cfg(test)]
mod tests;

pub use autoscaler::{Autoscaler, Condition, Decision, MetricInput, MetricReading, SyncInputs};
pub use replicas::{
    MetricError, MetricTarget, PodMetric, PodPhase, Proposal, Tolerances,
    external_average_value_replicas, external_value_replicas, pods_average_value_replicas,
};
pub use rules::{PolicyKind, ScalingPolicy, ScalingRules, SelectPolicy};

use serde::{Deserialize, Serialize};

/// `--horizontal-pod-autoscaler-tolerance` default of kube-controller-manager.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// `--horizontal-pod-autoscaler-downscale-stabilization` default, in seconds.
pub const DEFAULT_DOWNSCALE_STABILIZATION_SECONDS: u32 = 300;
/// `--horizontal-pod-autoscaler-sync-period` default of kube-controller-manager, in seconds
/// (kscale's own clusters use `cluster.hpa_sync_period_seconds`).
pub const SYNC_PERIOD_SECONDS: f64 = 15.0;

/// The API default for scale-up, as kscale configures it: no stabilization, Max of +4 pods and
/// +100 % per 15 s (`pkg/apis/autoscaling/v2/defaults.go`). The `concurrency` profile's default
/// scale-up is exactly this, so both read it from here.
pub fn default_scale_up_rules() -> ScalingRules {
    ScalingRules {
        stabilization_window_seconds: 0,
        select_policy: SelectPolicy::Max,
        policies: vec![
            ScalingPolicy {
                kind: PolicyKind::Pods,
                value: 4,
                period_seconds: 15,
            },
            ScalingPolicy {
                kind: PolicyKind::Percent,
                value: 100,
                period_seconds: 15,
            },
        ],
        tolerance: None,
    }
}

/// One direction of `spec.behavior` after API defaulting (`HPAScalingRules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    /// `stabilizationWindowSeconds`; `None` on scale-down means the controller's flag (300 s).
    pub stabilization_window_seconds: Option<u32>,
    /// `selectPolicy`.
    pub select_policy: SelectPolicy,
    /// `policies`.
    pub policies: Vec<ScalingPolicy>,
    /// `tolerance` (KEP-4951); `None` keeps the cluster-wide value.
    pub tolerance: Option<f64>,
}

impl Rules {
    /// The API default for scale-up (see [`default_scale_up_rules`]).
    pub fn default_scale_up() -> Self {
        let rules = default_scale_up_rules();
        Self {
            stabilization_window_seconds: Some(rules.stabilization_window_seconds),
            select_policy: rules.select_policy,
            policies: rules.policies,
            tolerance: rules.tolerance,
        }
    }

    /// The API default for scale-down: the controller's stabilization (300 s), -100 % per 15 s.
    pub fn default_scale_down() -> Self {
        Self {
            stabilization_window_seconds: None,
            select_policy: SelectPolicy::Max,
            policies: vec![ScalingPolicy {
                kind: PolicyKind::Percent,
                value: 100,
                period_seconds: 15,
            }],
            tolerance: None,
        }
    }

    fn longest_period(&self) -> u32 {
        self.policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0)
    }
}

/// `spec.behavior` after API defaulting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Behavior {
    /// `scaleUp`.
    pub scale_up: Rules,
    /// `scaleDown`.
    pub scale_down: Rules,
}

impl Default for Behavior {
    /// What the API server fills in for `behavior: {}`.
    fn default() -> Self {
        Self {
            scale_up: Rules::default_scale_up(),
            scale_down: Rules::default_scale_down(),
        }
    }
}

/// Everything the decision depends on besides the metric: the HPA spec and the controller's flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HpaSettings {
    /// `minReplicas`.
    pub min_replicas: u32,
    /// `maxReplicas`.
    pub max_replicas: u32,
    /// `behavior`; `None` takes the legacy path (5 min down stabilization, up to max(2x, 4) per sync).
    pub behavior: Option<Behavior>,
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub cluster_tolerance: f64,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`, in seconds.
    pub downscale_stabilization_seconds: u32,
    /// Whether the `HPAConfigurableTolerance` gate is on (beta, on by default since 1.35).
    pub configurable_tolerance: bool,
}

impl Default for HpaSettings {
    fn default() -> Self {
        Self {
            min_replicas: 1,
            max_replicas: 10,
            behavior: None,
            cluster_tolerance: DEFAULT_TOLERANCE,
            downscale_stabilization_seconds: DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
            configurable_tolerance: true,
        }
    }
}

impl HpaSettings {
    /// The tolerances this HPA uses (`tolerancesForHpa`): per-direction values only with a behavior and
    /// the feature gate on.
    pub fn tolerances(&self) -> Tolerances {
        let mut t = Tolerances::uniform(self.cluster_tolerance);
        if let (Some(b), true) = (&self.behavior, self.configurable_tolerance) {
            if let Some(down) = b.scale_down.tolerance {
                t.scale_down = down;
            }
            if let Some(up) = b.scale_up.tolerance {
                t.scale_up = up;
            }
        }
        t
    }
}

fn rules_from_config(rules: &ScalingRules, defaults: Rules) -> Rules {
    Rules {
        stabilization_window_seconds: Some(rules.stabilization_window_seconds),
        select_policy: rules.select_policy,
        // An empty list renders as no `policies` key, which the API server defaults.
        policies: if rules.policies.is_empty() {
            defaults.policies
        } else {
            rules.policies.clone()
        },
        tolerance: rules.tolerance,
    }
}

impl HpaSettings {
    /// The settings of an HPA with these bounds and rules; kscale always renders a `behavior`,
    /// so the behavior path applies.
    pub fn with_behavior(
        min_replicas: u32,
        max_replicas: u32,
        scale_up: &ScalingRules,
        scale_down: &ScalingRules,
    ) -> Self {
        Self {
            min_replicas,
            max_replicas,
            behavior: Some(Behavior {
                scale_up: rules_from_config(scale_up, Rules::default_scale_up()),
                scale_down: rules_from_config(scale_down, Rules::default_scale_down()),
            }),
            ..Self::default()
        }
    }
}
