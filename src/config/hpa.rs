//! `[hpa]`: the HorizontalPodAutoscaler and its `behavior`.

use serde::{Deserialize, Serialize};

use super::MetricProfile;
use crate::hpa::HpaSettings;
pub use crate::hpa::{PolicyKind, ScalingPolicy, ScalingRules, SelectPolicy};

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

impl From<&HpaConfig> for HpaSettings {
    /// kscale always renders a `behavior`, so the behavior path applies.
    fn from(c: &HpaConfig) -> Self {
        HpaSettings::with_behavior(c.min_replicas, c.max_replicas, &c.scale_up, &c.scale_down)
    }
}
