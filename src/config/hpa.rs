//! `[hpa]`: the HorizontalPodAutoscaler and its `behavior`.

use serde::{Deserialize, Serialize};

use super::MetricProfile;

/// The HorizontalPodAutoscaler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HpaConfig {
    /// `minReplicas`.
    pub min_replicas: u32,
    /// `maxReplicas`.
    pub max_replicas: u32,
    /// `behavior.scaleUp`.
    pub scale_up: ScalingRules,
    /// `behavior.scaleDown`.
    pub scale_down: ScalingRules,
}

impl Default for HpaConfig {
    fn default() -> Self {
        Self {
            min_replicas: 1,
            max_replicas: 10,
            scale_up: ScalingRules {
                stabilization_window_seconds: 240,
                select_policy: SelectPolicy::Max,
                policies: vec![ScalingPolicy {
                    kind: PolicyKind::Pods,
                    value: 10,
                    period_seconds: 60,
                }],
                tolerance: None,
            },
            scale_down: ScalingRules {
                stabilization_window_seconds: 300,
                select_policy: SelectPolicy::Max,
                policies: vec![ScalingPolicy {
                    kind: PolicyKind::Pods,
                    value: 10,
                    period_seconds: 120,
                }],
                tolerance: None,
            },
        }
    }
}

/// One direction of `behavior` (`HPAScalingRules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingRules {
    /// `stabilizationWindowSeconds` (0-3600).
    pub stabilization_window_seconds: u32,
    /// `selectPolicy`.
    #[serde(default)]
    pub select_policy: SelectPolicy,
    /// `policies`.
    pub policies: Vec<ScalingPolicy>,
    /// `tolerance` (KEP-4951; beta in Kubernetes 1.35); `None` keeps the cluster's 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
}

/// `selectPolicy` of a scaling direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SelectPolicy {
    /// The policy allowing the largest change.
    #[default]
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// One `HPAScalingPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingPolicy {
    /// `type`: Pods or Percent.
    #[serde(rename = "type")]
    pub kind: PolicyKind,
    /// `value`: pods, or percent of the replicas at the start of the period.
    pub value: u32,
    /// `periodSeconds` (1-1800).
    pub period_seconds: u32,
}

/// `HPAScalingPolicy.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyKind {
    /// An absolute number of pods.
    Pods,
    /// A percentage of the current replicas.
    Percent,
}

impl HpaConfig {
    /// Defaults of the HPA for a metric profile: the original's slow, steady behaviour for
    /// `mean-duration`; a quick scale-up for `concurrency`, whose signal has no rate window to smooth it.
    pub fn defaults_for(profile: MetricProfile) -> Self {
        match profile {
            MetricProfile::MeanDuration => Self::default(),
            MetricProfile::Concurrency | MetricProfile::Queue => Self {
                scale_up: crate::hpa::default_scale_up_rules(),
                scale_down: ScalingRules {
                    // Chosen with `kscale simulate` (examples/tune_fast_profile.rs): a long window
                    // plus a wide scale-down tolerance keeps the fast signal from flapping.
                    stabilization_window_seconds: 600,
                    select_policy: SelectPolicy::Max,
                    policies: vec![ScalingPolicy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_seconds: 15,
                    }],
                    tolerance: Some(0.3),
                },
                ..Self::default()
            },
        }
    }
}
