//! What a run produces: its timeline, its summary figures and its HPA syncs.

use serde::{Deserialize, Serialize};

use super::metric::{ObservedRequest, PodSeries};
use crate::timeline::TimelineRow;

/// The reaction to the first rise of the load, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    /// Time of the first load rise, seconds (see [`crate::loadprofile::LoadProfile::first_rise`]).
    pub step_at_seconds: Option<f64>,
    /// Load before the rise.
    pub step_from: Option<f64>,
    /// Load after the rise.
    pub step_to: Option<f64>,
    /// Seconds from the rise to the first HPA sync that raised the replica count.
    pub first_scale_up_decision_seconds: Option<f64>,
    /// Seconds from the rise to the first pod created at or after it becoming ready.
    pub first_new_pod_ready_seconds: Option<f64>,
    /// Replicas at the start.
    pub replicas_initial: u32,
    /// Most replicas at any time.
    pub replicas_peak: u32,
    /// Replicas at the end.
    pub replicas_final: u32,
    /// Rescales the HPA made.
    pub scale_events: u32,
    /// Rescales in the other direction than the previous one (up then down counts 1).
    pub direction_changes: u32,
    /// Scale-ups less than 5 minutes after a scale-down: flapping.
    pub quick_reversals: u32,
    /// Requests sent (every attempt, including shed and refused ones).
    pub sent: u64,
    /// Requests answered with 200.
    pub ok: u64,
    /// Requests shed with 503 (queue full).
    pub shed: u64,
    /// Requests with no ready pod to go to (connection refused).
    pub refused: u64,
    /// Requests queued or in inference when the simulation ended.
    pub in_progress_at_end: u64,
    /// Median latency of answered requests, seconds.
    pub p50_seconds: Option<f64>,
    /// 99th percentile latency, seconds.
    pub p99_seconds: Option<f64>,
    /// Highest latency, seconds.
    pub max_seconds: Option<f64>,
    /// Mean latency, seconds.
    pub mean_seconds: Option<f64>,
    /// Highest p99 of a single timeline row.
    pub peak_row_p99_seconds: Option<f64>,
    /// Ready pod-seconds (what the run costs).
    pub pod_seconds: f64,
    /// Simulated time at which the run stopped at `MAX_EVENTS`; `None` when it ran to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_at_seconds: Option<f64>,
}

/// What one simulation produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimOutput {
    /// One row every `row_interval_seconds`.
    pub timeline: Vec<TimelineRow>,
    /// The figures of the run.
    pub summary: Summary,
    /// Every HPA sync: time, desired replicas and the metric value it saw.
    pub syncs: Vec<SyncRecord>,
    /// What each pod's server observed (only when asked for, see [`super::simulate_recorded`]).
    pub requests: Vec<ObservedRequest>,
    /// Each pod's scrape series as Prometheus would hold them.
    pub series: Vec<PodSeries>,
}

/// One HPA sync of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRecord {
    /// Time, seconds.
    pub t_seconds: f64,
    /// The query's value at that time (total for `concurrency`, seconds for `mean-duration`).
    pub query_value: f64,
    /// Replicas before the decision.
    pub current: u32,
    /// Replicas after it.
    pub desired: u32,
    /// Why, as the HPA would say.
    pub reason: String,
}
