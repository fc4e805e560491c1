//! The autoscaling timeline: one row per observation, shared by `kscale metrics --watch --record`,
//! `kscale simulate` and `kscale plot`.

use serde::{Deserialize, Serialize};

/// One observation of the autoscaling loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TimelineRow {
    /// Seconds since the start of the recording.
    pub t_seconds: f64,
    /// Replicas the Deployment has (`status.currentReplicas` of the HPA).
    pub replicas_current: u32,
    /// Replicas the HPA wants (`status.desiredReplicas`).
    pub replicas_desired: u32,
    /// The metric as the HPA sees it; `None` when it could not be read.
    pub metric_value: Option<f64>,
    /// The HPA's target for the metric.
    pub target: f64,
    /// Offered load at this time (concurrent clients or requests/s), when known.
    pub load: Option<f64>,
    /// Requests waiting for a worker, summed over pods.
    pub queue_depth: Option<f64>,
    /// Requests in inference, summed over pods.
    pub in_flight: Option<f64>,
    /// Median latency of requests finished since the previous row, in seconds.
    pub p50_seconds: Option<f64>,
    /// 99th percentile latency of requests finished since the previous row, in seconds.
    pub p99_seconds: Option<f64>,
    /// Requests shed (503) since the previous row.
    pub shed: Option<u64>,
    /// Per-pod `(name, queue depth, in flight)`.
    #[serde(default)]
    pub pods: Vec<PodSample>,
}

/// Queue depth and in-flight requests of one pod at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PodSample {
    /// Pod name.
    pub pod: String,
    /// Requests waiting.
    pub queue_depth: f64,
    /// Requests in inference.
    pub in_flight: f64,
}
