//! The scaling rules of `behavior` (`HPAScalingRules`), as configured and as the decision uses
//! them: the HPA owns these types; `config` re-exports them for its `[hpa]` section.

use serde::{Deserialize, Serialize};

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
