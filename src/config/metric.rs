//! `[metric]`: the signal the HPA scales on and how Prometheus collects it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which signal the HPA scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MetricProfile {
    /// The original's signal: mean request duration (queue wait + inference) over a rate window,
    /// External metric with a `Value` target.
    #[default]
    MeanDuration,
    /// The fast signal: in-flight plus queued requests per pod (gauges, no rate window),
    /// External metric with an `AverageValue` target.
    Concurrency,
}

impl fmt::Display for MetricProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricProfile::MeanDuration => "mean-duration",
            MetricProfile::Concurrency => "concurrency",
        })
    }
}

/// The custom metric and its collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricConfig {
    /// Which signal to scale on.
    pub profile: MetricProfile,
    /// Name of the external metric served by prometheus-adapter.
    pub name: String,
    /// Target: seconds per request (`mean-duration`, a `Value` target) or requests per pod
    /// (`concurrency`, an `AverageValue` target).
    pub target: f64,
    /// Prometheus scrape interval of the app pods, in seconds.
    pub scrape_interval_seconds: u64,
    /// `rate()` window of the mean-duration query, in seconds (at least 4 scrape intervals).
    pub rate_window_seconds: u64,
    /// How often prometheus-adapter relists series, in seconds.
    pub relist_interval_seconds: u64,
}

impl Default for MetricConfig {
    fn default() -> Self {
        Self {
            profile: MetricProfile::MeanDuration,
            name: "inference_request_duration_seconds_per_request".into(),
            target: 12.0,
            scrape_interval_seconds: 15,
            rate_window_seconds: 120,
            relist_interval_seconds: 60,
        }
    }
}

impl MetricConfig {
    /// Defaults of a metric profile.
    pub fn defaults_for(profile: MetricProfile) -> Self {
        match profile {
            MetricProfile::MeanDuration => Self::default(),
            MetricProfile::Concurrency => Self {
                profile,
                name: "inference_requests_per_pod".into(),
                target: 1.0,
                scrape_interval_seconds: 5,
                rate_window_seconds: 20,
                relist_interval_seconds: 15,
            },
        }
    }
}
