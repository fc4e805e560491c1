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
    /// Queued requests per pod (the server's waiting gauge, e.g. `vllm:num_requests_waiting`),
    /// External metric with an `AverageValue` target.
    Queue,
}

impl MetricProfile {
    /// Every profile.
    pub const ALL: [MetricProfile; 3] = [
        MetricProfile::MeanDuration,
        MetricProfile::Concurrency,
        MetricProfile::Queue,
    ];

    /// Parses `metric.profile`'s text; the error lists the profiles.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.to_string() == text.trim())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "metric.profile: {text:?} is not a profile: allowed {}",
                    Self::ALL.map(|p| format!("{:?}", p.to_string())).join(", ")
                )
            })
    }

    /// Whether the metric is a per-pod average of gauges (`AverageValue`), not a mean duration.
    pub fn is_per_pod(self) -> bool {
        self != MetricProfile::MeanDuration
    }
}

impl fmt::Display for MetricProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricProfile::MeanDuration => "mean-duration",
            MetricProfile::Concurrency => "concurrency",
            MetricProfile::Queue => "queue",
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
    /// Gauges of the server to sum per pod instead of the profile's own (`concurrency` and
    /// `queue` only), e.g. `["vllm:kv_cache_usage_perc"]`; empty: the profile's gauges.
    pub gauges: Vec<String>,
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
            gauges: Vec::new(),
            target: 12.0,
            scrape_interval_seconds: 15,
            rate_window_seconds: 120,
            relist_interval_seconds: 60,
        }
    }
}

impl MetricConfig {
    /// Defaults of a metric profile for kscale-server.
    pub fn defaults_for(profile: MetricProfile) -> Self {
        Self::defaults_for_server(&crate::config::AppConfig::default(), profile)
    }

    /// Defaults of a metric profile on the server `app` runs: the metric's name and target come
    /// from the server's preset.
    pub fn defaults_for_server(app: &crate::config::AppConfig, profile: MetricProfile) -> Self {
        let preset = app.server.preset();
        let base = match profile {
            MetricProfile::MeanDuration => Self::default(),
            // Gauges need no rate window: short scrapes and relists make the signal quick. A 2 s
            // scrape plus the 2 s HPA sync of kscale's clusters puts a decision about 2 s
            // after a load step (5 s measured 6.4 s on the real minikube); the cost is one
            // small scrape per pod every 2 s.
            MetricProfile::Concurrency | MetricProfile::Queue => Self {
                scrape_interval_seconds: 2,
                rate_window_seconds: 20,
                relist_interval_seconds: 15,
                ..Self::default()
            },
        };
        Self {
            profile,
            name: preset.metric_name(profile),
            target: preset.metric_target(profile, app),
            ..base
        }
    }
}
