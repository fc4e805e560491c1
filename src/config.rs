//! The one typed configuration of kscale.
//!
//! Layers, lowest first: built-in defaults (which reproduce the original system), `kscale.toml`,
//! `KSCALE_*` environment variables, command-line flags. [`Config::validate`] runs before anything
//! touches a cluster, and every error names the key and the allowed range.

use std::fmt;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Everything kscale needs to bring up, deploy, check and simulate the stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The local minikube cluster.
    pub cluster: ClusterConfig,
    /// The inference server and its Kubernetes objects.
    pub app: AppConfig,
    /// The metric the HPA scales on and how Prometheus collects it.
    pub metric: MetricConfig,
    /// The HorizontalPodAutoscaler.
    pub hpa: HpaConfig,
    /// kube-prometheus-stack and prometheus-adapter.
    pub monitoring: MonitoringConfig,
    /// Deadlines of the waits.
    pub timeouts: TimeoutConfig,
}

/// The minikube cluster kscale creates (ignored with `--context`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// minikube profile name; also the kube context name.
    pub profile: String,
    /// Number of nodes.
    pub nodes: u32,
    /// Memory per node in MB (minikube's `--memory`).
    pub memory_mb: u32,
    /// CPUs per node.
    pub cpus: u32,
    /// minikube driver (`docker` by default).
    pub driver: String,
    /// Kubernetes version for `minikube start`; empty means minikube's default.
    pub kubernetes_version: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            profile: "kscale".into(),
            nodes: 2,
            memory_mb: 4400,
            cpus: 2,
            driver: "docker".into(),
            kubernetes_version: String::new(),
        }
    }
}

/// The inference server deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Name of the Deployment, Service and HPA, and the `app` label.
    pub name: String,
    /// Namespace of the app and its HPA.
    pub namespace: String,
    /// Container port and Service port.
    pub port: u16,
    /// NodePort of the Service (30000-32767); 0 lets Kubernetes choose.
    pub node_port: u16,
    /// Simulated inference time per request, in seconds.
    pub inference_seconds: f64,
    /// Requests served at once per pod.
    pub workers: u32,
    /// Requests allowed to wait per pod before the server sheds load with 503.
    pub max_queue: u32,
    /// Idle keep-alive timeout of the server, in seconds.
    pub keep_alive_seconds: u64,
    /// Connection age after which the server asks the client to reconnect; 0 is off.
    pub max_connection_age_seconds: u64,
    /// Extra seconds of drain allowed after the worst-case queue has been served.
    pub drain_margin_seconds: u64,
    /// Seconds the preStop hook waits so endpoint removal propagates before SIGTERM.
    pub pre_stop_seconds: u64,
    /// Replicas when the Deployment is first created (the HPA owns the count afterwards).
    pub initial_replicas: u32,
    /// CPU request of the container.
    pub cpu_request: String,
    /// CPU limit of the container.
    pub cpu_limit: String,
    /// Memory request of the container.
    pub memory_request: String,
    /// Memory limit of the container.
    pub memory_limit: String,
    /// Seconds from pod creation until it is ready (used by `kscale simulate`).
    pub start_delay_seconds: f64,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            name: "inference".into(),
            namespace: "default".into(),
            port: 3000,
            node_port: 31000,
            inference_seconds: 10.0,
            workers: 1,
            max_queue: 64,
            keep_alive_seconds: 10,
            max_connection_age_seconds: 0,
            drain_margin_seconds: 15,
            pre_stop_seconds: 5,
            initial_replicas: 1,
            cpu_request: "50m".into(),
            cpu_limit: "500m".into(),
            memory_request: "32Mi".into(),
            memory_limit: "128Mi".into(),
            start_delay_seconds: 5.0,
        }
    }
}

impl AppConfig {
    /// Worst-case seconds a SIGTERM'd pod needs: every worker busy and the queue full, plus margins.
    pub fn drain_seconds(&self) -> u64 {
        let rounds = (u64::from(self.max_queue) + u64::from(self.workers))
            .div_ceil(u64::from(self.workers.max(1)));
        (rounds as f64 * self.inference_seconds).ceil() as u64 + self.drain_margin_seconds
    }

    /// `terminationGracePeriodSeconds`: longer than the preStop pause plus the worst-case drain.
    pub fn termination_grace_seconds(&self) -> u64 {
        self.pre_stop_seconds + self.drain_seconds() + 5
    }
}

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

/// The monitoring stack (helm releases).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitoringConfig {
    /// Namespace of both releases.
    pub namespace: String,
    /// Release name of kube-prometheus-stack.
    pub prometheus_release: String,
    /// Pinned kube-prometheus-stack chart version.
    pub prometheus_chart_version: String,
    /// Release name of prometheus-adapter.
    pub adapter_release: String,
    /// Pinned prometheus-adapter chart version.
    pub adapter_chart_version: String,
    /// Name of the helm repository kscale adds.
    pub repo_name: String,
    /// URL of the prometheus-community chart repository.
    pub repo_url: String,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            namespace: "monitoring".into(),
            prometheus_release: "prometheus".into(),
            prometheus_chart_version: "88.5.3".into(),
            adapter_release: "prometheus-adapter".into(),
            adapter_chart_version: "5.3.0".into(),
            repo_name: "prometheus-community".into(),
            repo_url: "https://prometheus-community.github.io/helm-charts".into(),
        }
    }
}

impl MonitoringConfig {
    /// Service of the stack's Prometheus (chart fullname truncated to 26 characters + `-prometheus`).
    pub fn prometheus_service(&self) -> String {
        let full = if self.prometheus_release.contains("kube-prometheus-stack") {
            self.prometheus_release.clone()
        } else {
            format!("{}-kube-prometheus", self.prometheus_release)
        };
        let full: String = full.chars().take(26).collect();
        format!("{}-prometheus", full.trim_end_matches('-'))
    }

    /// In-cluster URL of Prometheus, without the port.
    pub fn prometheus_url(&self) -> String {
        format!(
            "http://{}.{}.svc",
            self.prometheus_service(),
            self.namespace
        )
    }
}

/// Deadlines, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutConfig {
    /// `minikube start`.
    pub cluster_seconds: u64,
    /// The resource metrics API after enabling metrics-server.
    pub metrics_server_seconds: u64,
    /// Each `helm upgrade --install --wait`.
    pub helm_seconds: u64,
    /// The external metrics APIService turning Available.
    pub apiservice_seconds: u64,
    /// The app rollout.
    pub rollout_seconds: u64,
    /// The end-to-end metric check at the end of `up`.
    pub metric_seconds: u64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            cluster_seconds: 600,
            metrics_server_seconds: 300,
            helm_seconds: 600,
            apiservice_seconds: 300,
            rollout_seconds: 300,
            metric_seconds: 300,
        }
    }
}

impl Config {
    /// Reads a `kscale.toml` over the defaults. Unknown keys are refused with their path.
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::from_toml_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses TOML text over the defaults.
    pub fn from_toml_str(text: &str) -> anyhow::Result<Self> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))
    }
}
