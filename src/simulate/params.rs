//! What the model is given: the simulator's parameters taken from a configuration, and the
//! estimate of a run's size that refuses runaway runs before they start.

use serde::Serialize;

use crate::config::{Config, MetricProfile};
use crate::hpa::HpaSettings;
use crate::loadprofile::{Balance, LoadKind, LoadProfile};

/// Everything the model needs, taken from a [`Config`] plus the simulator's own assumptions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimParams {
    /// Seconds of inference per request (`app.inference_seconds`).
    pub inference_seconds: f64,
    /// Requests served at once per pod (`app.workers`).
    pub workers: u32,
    /// Requests allowed to wait per pod (`app.max_queue`); more are shed with 503.
    pub max_queue: u32,
    /// Seconds from pod creation to ready (`app.start_delay_seconds`).
    pub start_delay_seconds: f64,
    /// Pods at t = 0, all ready (`hpa.min_replicas`, at least 1).
    pub initial_replicas: u32,
    /// The signal the HPA scales on.
    pub profile: MetricProfile,
    /// Its target (seconds, or requests per pod).
    pub target: f64,
    /// Prometheus scrape interval, seconds.
    pub scrape_interval_seconds: f64,
    /// `rate()` window of the mean-duration query, seconds.
    pub rate_window_seconds: f64,
    /// The HPA.
    pub hpa: HpaSettings,
    /// HPA sync period, seconds.
    pub sync_period_seconds: f64,
    /// Request spreading.
    pub balance: Balance,
    /// Seconds between timeline rows.
    pub row_interval_seconds: f64,
    /// Largest random pause of a closed-loop client between a response and its next request, seconds.
    pub client_jitter_seconds: f64,
    /// Relative spread of pod start delays (0.1 = ±10 %).
    pub start_delay_jitter: f64,
    /// Seconds a closed-loop client waits after a 503 or a refused connection (`Retry-After`).
    pub retry_after_seconds: f64,
}

impl SimParams {
    /// The model of a kscale configuration.
    pub fn from_config(c: &Config) -> Self {
        let hpa = HpaSettings::from(&c.hpa);
        Self {
            inference_seconds: c.app.inference_seconds,
            workers: c.app.workers,
            max_queue: c.app.max_queue,
            start_delay_seconds: c.app.start_delay_seconds,
            // The Deployment is created without `replicas` (1), and the HPA lifts it to its minimum.
            initial_replicas: hpa.min_replicas.clamp(1, hpa.max_replicas.max(1)),
            profile: c.metric.profile,
            target: c.metric.target,
            scrape_interval_seconds: c.metric.scrape_interval_seconds as f64,
            rate_window_seconds: c.metric.rate_window_seconds as f64,
            hpa,
            sync_period_seconds: c.cluster.hpa_sync_period_seconds.into(),
            balance: Balance::RoundRobin,
            row_interval_seconds: 5.0,
            client_jitter_seconds: 0.1,
            start_delay_jitter: 0.1,
            retry_after_seconds: 1.0,
        }
    }

    /// Refuses settings the model cannot run, naming the config key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let check = |ok: bool, msg: &str| {
            if ok {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{msg}"))
            }
        };
        check(
            self.inference_seconds.is_finite() && self.inference_seconds > 0.0,
            "app.inference_seconds must be a positive number of seconds",
        )?;
        check(self.workers >= 1, "app.workers must be at least 1")?;
        check(
            self.start_delay_seconds.is_finite() && self.start_delay_seconds >= 0.0,
            "app.start_delay_seconds must be 0 or more",
        )?;
        check(
            self.target.is_finite() && self.target > 0.0,
            "metric.target must be a positive number",
        )?;
        check(
            self.scrape_interval_seconds >= 1.0,
            "metric.scrape_interval_seconds must be at least 1",
        )?;
        check(
            self.profile != MetricProfile::MeanDuration || self.rate_window_seconds >= 1.0,
            "metric.rate_window_seconds must be at least 1",
        )?;
        check(
            self.hpa.max_replicas >= 1 && self.hpa.min_replicas <= self.hpa.max_replicas,
            "hpa.min_replicas must be at most hpa.max_replicas, and hpa.max_replicas at least 1",
        )?;
        check(
            self.hpa.max_replicas <= 1000,
            "hpa.max_replicas above 1000 is beyond what the simulator models",
        )?;
        Ok(())
    }
}

/// Runaway guard: no sensible run needs more events than this (about a minute of work).
pub const MAX_EVENTS: u64 = 200_000_000;

/// About how many events a run of `duration` seconds takes: two per request (send and answer)
/// at the rate the load can reach, plus the fixed scrapes, syncs and rows. A closed-loop
/// client within the pods' capacity sends once per inference; one beyond it is shed or refused
/// and retries after `retry_after_seconds`. Used to refuse a run before it hits [`MAX_EVENTS`].
pub fn estimated_events(p: &SimParams, load: &LoadProfile, duration: f64) -> f64 {
    let capacity =
        f64::from(p.hpa.max_replicas.max(1)) * (f64::from(p.workers) + f64::from(p.max_queue));
    let cycle = (p.inference_seconds + p.client_jitter_seconds / 2.0).max(1e-6);
    let retry = p.retry_after_seconds.max(1e-6);
    let per_second = |value: f64| match load.kind {
        LoadKind::Concurrency => {
            2.0 * (value.min(capacity) / cycle + (value - capacity).max(0.0) / retry)
        }
        LoadKind::Rate => 3.0 * value,
    };
    let mut requests = 0.0;
    for (i, step) in load.steps.iter().enumerate() {
        let from = step.at.as_secs_f64().min(duration);
        let to = load
            .steps
            .get(i + 1)
            .map_or(duration, |next| next.at.as_secs_f64().min(duration));
        requests += per_second(step.value) * (to - from).max(0.0);
    }
    let fixed = duration
        * (1.0 / p.scrape_interval_seconds.max(1e-6)
            + 1.0 / p.sync_period_seconds.max(1e-6)
            + 1.0 / p.row_interval_seconds.max(1e-6));
    requests + fixed
}
