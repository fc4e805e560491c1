//! The one typed configuration of kscale.
//!
//! Layers, lowest first: built-in defaults (which reproduce the original system), `kscale.toml`,
//! `KSCALE_*` environment variables, command-line flags. [`Config::validate`] runs before anything
//! touches a cluster, and every error names the key and the allowed range.

use std::fmt;
use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::hpa::DEFAULT_TOLERANCE;

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
    /// Node image for `minikube start --base-image` (e.g. a mirror's or a local build); empty
    /// means minikube's own kicbase.
    pub base_image: String,
    /// `minikube start --container-runtime` (`containerd`, `docker`, `cri-o`); empty means
    /// minikube's default.
    pub container_runtime: String,
    /// `minikube start --cni`: a plugin name (`flannel`, `calico`, ...) or a manifest file; empty
    /// means minikube's default.
    pub cni: String,
    /// More `minikube start` flags, separated by spaces (e.g. `--preload=false --force`); the
    /// flags kscale sets from other keys are refused here.
    pub start_flags: String,
    /// The metrics-server image as a full reference (`REGISTRY/REPOSITORY:TAG`), for the addon's
    /// `--images`/`--registries` overrides; empty means the addon's pinned image.
    pub metrics_server_image: String,
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
            base_image: String::new(),
            container_runtime: String::new(),
            cni: String::new(),
            start_flags: String::new(),
            metrics_server_image: String::new(),
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
    /// How `deploy` builds the server image: `dockerfile` (server/Dockerfile, multi-stage, pulls
    /// a Rust base image) or `host` (a static binary built with the host's cargo, packaged `FROM
    /// scratch`: no registry needed).
    pub image_build: ImageBuild,
}

/// How the server image is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ImageBuild {
    /// `docker build -f server/Dockerfile` (BuildKit; the Rust toolchain comes from an image).
    #[default]
    Dockerfile,
    /// `cargo build` of a static binary on the host, then `server/Dockerfile.runtime`.
    Host,
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
            cpu_request: "50m".into(),
            cpu_limit: "500m".into(),
            memory_request: "32Mi".into(),
            memory_limit: "128Mi".into(),
            start_delay_seconds: 5.0,
            image_build: ImageBuild::Dockerfile,
        }
    }
}

/// Largest number of seconds `kscale-server` accepts for any option (its `MAX_SECONDS`).
pub const SERVER_MAX_SECONDS: u64 = 1_000_000;

/// Longest deadline of a wait (`timeouts.*`): far beyond any real wait, far from the overflow of
/// `Instant + Duration`.
pub const MAX_TIMEOUT_SECONDS: u64 = 366 * 24 * 3600;

/// Longest Prometheus rate window and adapter relist interval kscale renders: a day.
pub const MAX_WINDOW_SECONDS: u64 = 86_400;

impl AppConfig {
    /// Worst-case seconds a SIGTERM'd pod needs (DRAIN_SECONDS): every worker busy and the queue
    /// full, plus the margin. `None` when it does not fit in a u64.
    pub fn drain_seconds(&self) -> Option<u64> {
        let rounds = (u64::from(self.max_queue) + u64::from(self.workers))
            .div_ceil(u64::from(self.workers.max(1)));
        let work = (rounds as f64 * self.inference_seconds).ceil();
        if !(work.is_finite() && work >= 0.0 && work < u64::MAX as f64) {
            return None;
        }
        (work as u64).checked_add(self.drain_margin_seconds)
    }

    /// `terminationGracePeriodSeconds`: longer than the preStop pause plus the worst-case drain.
    /// `None` when it does not fit in the API's int64.
    pub fn termination_grace_seconds(&self) -> Option<u64> {
        self.pre_stop_seconds
            .checked_add(self.drain_seconds()?)?
            .checked_add(5)
            .filter(|&s| i64::try_from(s).is_ok())
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
    /// Where the charts come from instead of the repository: a folder of packaged charts
    /// (`<chart>-<version>.tgz`, as `helm package` or `helm pull` write them) or an OCI
    /// reference (`oci://REGISTRY/PATH`). Empty means `repo_url`. Versions stay pinned.
    pub chart_source: String,
    /// A values file layered over kscale's own for kube-prometheus-stack (e.g. image mirrors).
    pub prometheus_values: String,
    /// A values file layered over kscale's own for prometheus-adapter.
    pub adapter_values: String,
    /// Install Grafana with the stack (and kscale's dashboard). Off: a lighter stack.
    pub grafana: bool,
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
            chart_source: String::new(),
            prometheus_values: String::new(),
            adapter_values: String::new(),
            grafana: true,
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

/// One problem found by [`Config::validate`]: the key, what is wrong, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted key, as in `kscale.toml` (`hpa.min_replicas`).
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem of a configuration at once, so that one edit fixes them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<Invalid>);

/// Minimum memory per node for kube-prometheus-stack, the adapter and the app (MB).
pub const MIN_NODE_MEMORY_MB: u32 = 3000;

/// Whether `s` is a DNS-1123 label (names of namespaces, Services, Deployments).
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl Config {
    /// Checks every value against its allowed range. Runs before anything touches a cluster.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errs = Vec::new();
        let mut bad = |key: &str, message: String| {
            errs.push(Invalid {
                key: key.into(),
                message,
            })
        };

        let c = &self.cluster;
        if !is_dns1123_label(&c.profile) {
            bad(
                "cluster.profile",
                format!(
                    "{:?} must be a DNS-1123 label (lowercase letters, digits, '-'; at most 63)",
                    c.profile
                ),
            );
        }
        if !(1..=10).contains(&c.nodes) {
            bad(
                "cluster.nodes",
                format!("{} is out of range: allowed 1-10", c.nodes),
            );
        }
        if c.memory_mb < MIN_NODE_MEMORY_MB {
            bad(
                "cluster.memory_mb",
                format!(
                    "{} MB per node is too little for Prometheus, the adapter and the app: at least {MIN_NODE_MEMORY_MB}",
                    c.memory_mb
                ),
            );
        }
        if !(2..=64).contains(&c.cpus) {
            bad(
                "cluster.cpus",
                format!(
                    "{} is out of range: minikube needs 2-64 CPUs per node",
                    c.cpus
                ),
            );
        }
        if c.driver.trim().is_empty() {
            bad(
                "cluster.driver",
                "must not be empty (e.g. \"docker\")".into(),
            );
        }

        let a = &self.app;
        if !is_dns1123_label(&a.name) {
            bad("app.name", format!("{:?} must be a DNS-1123 label", a.name));
        }
        if !is_dns1123_label(&a.namespace) {
            bad(
                "app.namespace",
                format!("{:?} must be a DNS-1123 label", a.namespace),
            );
        }
        if a.port == 0 {
            bad("app.port", "must be 1-65535".into());
        }
        if a.node_port != 0 && !(30000..=32767).contains(&a.node_port) {
            bad(
                "app.node_port",
                format!(
                    "{} is outside the NodePort range 30000-32767 (0 lets Kubernetes choose)",
                    a.node_port
                ),
            );
        }
        if !(a.inference_seconds.is_finite()
            && a.inference_seconds > 0.0
            && a.inference_seconds <= 3600.0)
        {
            bad(
                "app.inference_seconds",
                format!(
                    "{} must be a positive number of seconds, at most 3600",
                    a.inference_seconds
                ),
            );
        }
        if !(1..=1024).contains(&a.workers) {
            bad(
                "app.workers",
                format!("{} is out of range: allowed 1-1024", a.workers),
            );
        }
        if a.max_queue > 100_000 {
            bad(
                "app.max_queue",
                format!("{} is out of range: allowed 0-100000", a.max_queue),
            );
        }
        if !(1..=SERVER_MAX_SECONDS).contains(&a.keep_alive_seconds) {
            bad(
                "app.keep_alive_seconds",
                format!(
                    "{} is out of range: allowed 1-{SERVER_MAX_SECONDS} seconds (what kscale-server accepts as KEEP_ALIVE_SECONDS)",
                    a.keep_alive_seconds
                ),
            );
        }
        if a.max_connection_age_seconds > SERVER_MAX_SECONDS {
            bad(
                "app.max_connection_age_seconds",
                format!(
                    "{} is out of range: allowed 0-{SERVER_MAX_SECONDS} seconds (what kscale-server accepts as MAX_CONNECTION_AGE_SECONDS)",
                    a.max_connection_age_seconds
                ),
            );
        }
        if a.drain_margin_seconds > SERVER_MAX_SECONDS {
            bad(
                "app.drain_margin_seconds",
                format!(
                    "{} is out of range: allowed 0-{SERVER_MAX_SECONDS} seconds",
                    a.drain_margin_seconds
                ),
            );
        } else if a.inference_seconds.is_finite()
            && a.inference_seconds > 0.0
            && (1..=1024).contains(&a.workers)
        {
            match a.drain_seconds() {
                Some(drain) if drain <= SERVER_MAX_SECONDS => {}
                drain => bad(
                    "app.max_queue",
                    format!(
                        "with app.workers = {}, app.inference_seconds = {} and app.drain_margin_seconds = {}, the worst-case drain (DRAIN_SECONDS: every worker busy, {} queued) is {} s, more than kscale-server accepts ({SERVER_MAX_SECONDS} s): lower app.max_queue or app.inference_seconds, or raise app.workers",
                        a.workers,
                        a.inference_seconds,
                        a.drain_margin_seconds,
                        a.max_queue,
                        drain.map_or_else(|| "beyond 2^64".to_string(), |d| d.to_string()),
                    ),
                ),
            }
        }
        if a.termination_grace_seconds().is_none() && a.drain_seconds().is_some() {
            bad(
                "app.pre_stop_seconds",
                format!(
                    "{} s plus the worst-case drain ({} s) and 5 s does not fit terminationGracePeriodSeconds (a 64-bit signed number of seconds): lower app.pre_stop_seconds",
                    a.pre_stop_seconds,
                    a.drain_seconds().unwrap_or_default()
                ),
            );
        }
        if !(a.start_delay_seconds.is_finite()
            && (0.0..=MAX_WINDOW_SECONDS as f64).contains(&a.start_delay_seconds))
        {
            bad(
                "app.start_delay_seconds",
                format!(
                    "{} must be zero or a positive number of seconds, at most {MAX_WINDOW_SECONDS}",
                    a.start_delay_seconds
                ),
            );
        }
        for (key, value) in [
            ("app.cpu_request", &a.cpu_request),
            ("app.cpu_limit", &a.cpu_limit),
            ("app.memory_request", &a.memory_request),
            ("app.memory_limit", &a.memory_limit),
        ] {
            if !crate::quantity::is_resource_amount(value) {
                bad(
                    key,
                    format!("{value:?} is not a Kubernetes quantity (e.g. \"500m\", \"128Mi\")"),
                );
            }
        }

        let m = &self.metric;
        if m.name.is_empty()
            || !m
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            bad(
                "metric.name",
                format!(
                    "{:?} must be a Prometheus-style name (letters, digits, '_')",
                    m.name
                ),
            );
        }
        // A Kubernetes quantity holds at most 2^63-1 milli-units.
        if !(m.target.is_finite() && m.target > 0.0 && m.target <= 1e15) {
            bad(
                "metric.target",
                format!("{} must be a positive number, at most 1e15", m.target),
            );
        }
        if !(1..=300).contains(&m.scrape_interval_seconds) {
            bad(
                "metric.scrape_interval_seconds",
                format!(
                    "{} is out of range: allowed 1-300",
                    m.scrape_interval_seconds
                ),
            );
        }
        if m.profile == MetricProfile::MeanDuration
            && m.rate_window_seconds < 4 * m.scrape_interval_seconds
        {
            bad(
                "metric.rate_window_seconds",
                format!(
                    "{} s is shorter than four scrape intervals ({} s): rate() would often see fewer than two samples and return nothing",
                    m.rate_window_seconds,
                    4 * m.scrape_interval_seconds
                ),
            );
        }
        for (key, v) in [
            ("metric.rate_window_seconds", m.rate_window_seconds),
            ("metric.relist_interval_seconds", m.relist_interval_seconds),
        ] {
            if v > MAX_WINDOW_SECONDS {
                bad(
                    key,
                    format!("{v} s is out of range: at most {MAX_WINDOW_SECONDS} (a day)"),
                );
            }
        }
        if m.relist_interval_seconds < m.scrape_interval_seconds {
            bad(
                "metric.relist_interval_seconds",
                format!(
                    "{} s must be at least the scrape interval ({} s), or the adapter drops series between scrapes",
                    m.relist_interval_seconds, m.scrape_interval_seconds
                ),
            );
        }

        let h = &self.hpa;
        if h.min_replicas == 0 {
            bad(
                "hpa.min_replicas",
                "must be at least 1 (scale to zero is an alpha feature kscale does not use)".into(),
            );
        }
        // minReplicas, maxReplicas and a policy's value are int32 in the API.
        if h.max_replicas > i32::MAX as u32 {
            bad(
                "hpa.max_replicas",
                format!("{} is out of range: at most {}", h.max_replicas, i32::MAX),
            );
        }
        if h.max_replicas < h.min_replicas {
            bad(
                "hpa.max_replicas",
                format!(
                    "{} is below hpa.min_replicas ({})",
                    h.max_replicas, h.min_replicas
                ),
            );
        }
        for (dir, rules) in [
            ("hpa.scale_up", &h.scale_up),
            ("hpa.scale_down", &h.scale_down),
        ] {
            if rules.stabilization_window_seconds > 3600 {
                bad(
                    &format!("{dir}.stabilization_window_seconds"),
                    format!(
                        "{} is out of range: allowed 0-3600",
                        rules.stabilization_window_seconds
                    ),
                );
            }
            if rules.policies.is_empty() && rules.select_policy != SelectPolicy::Disabled {
                bad(
                    &format!("{dir}.policies"),
                    "needs at least one policy unless select_policy is Disabled".into(),
                );
            }
            for (i, p) in rules.policies.iter().enumerate() {
                if p.value == 0 || p.value > i32::MAX as u32 {
                    bad(
                        &format!("{dir}.policies[{i}].value"),
                        format!("{} is out of range: allowed 1-{}", p.value, i32::MAX),
                    );
                }
                if !(1..=1800).contains(&p.period_seconds) {
                    bad(
                        &format!("{dir}.policies[{i}].period_seconds"),
                        format!("{} is out of range: allowed 1-1800", p.period_seconds),
                    );
                }
            }
            if let Some(t) = rules.tolerance
                && !(t.is_finite() && (0.0..1.0).contains(&t))
            {
                bad(
                    &format!("{dir}.tolerance"),
                    format!("{t} is out of range: allowed 0 <= tolerance < 1"),
                );
            }
        }

        let mo = &self.monitoring;
        for (key, v) in [
            ("monitoring.namespace", &mo.namespace),
            ("monitoring.prometheus_release", &mo.prometheus_release),
            ("monitoring.adapter_release", &mo.adapter_release),
        ] {
            if !is_dns1123_label(v) {
                bad(key, format!("{v:?} must be a DNS-1123 label"));
            }
        }
        for (key, v) in [
            (
                "monitoring.prometheus_chart_version",
                &mo.prometheus_chart_version,
            ),
            (
                "monitoring.adapter_chart_version",
                &mo.adapter_chart_version,
            ),
        ] {
            if v.split('.').count() != 3
                || !v
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            {
                bad(
                    key,
                    format!("{v:?} must be a pinned chart version like 1.2.3"),
                );
            }
        }
        if !(mo.repo_url.starts_with("https://")
            || mo.repo_url.starts_with("http://")
            || mo.repo_url.starts_with("oci://"))
        {
            bad(
                "monitoring.repo_url",
                format!("{:?} must be an http(s):// or oci:// URL", mo.repo_url),
            );
        }

        for invalid in crate::sources::validate(self) {
            bad(&invalid.key, invalid.message);
        }

        let t = &self.timeouts;
        for (key, v) in [
            ("timeouts.cluster_seconds", t.cluster_seconds),
            ("timeouts.metrics_server_seconds", t.metrics_server_seconds),
            ("timeouts.helm_seconds", t.helm_seconds),
            ("timeouts.apiservice_seconds", t.apiservice_seconds),
            ("timeouts.rollout_seconds", t.rollout_seconds),
            ("timeouts.metric_seconds", t.metric_seconds),
        ] {
            if !(1..=MAX_TIMEOUT_SECONDS).contains(&v) {
                bad(
                    key,
                    format!(
                        "{v} is out of range: allowed 1-{MAX_TIMEOUT_SECONDS} seconds (366 days)"
                    ),
                );
            }
        }

        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errs))
        }
    }

    /// Applies `KSCALE_<SECTION>_<KEY>` environment variables (e.g. `KSCALE_APP_WORKERS=2`) from
    /// `vars` over this configuration.
    pub fn apply_env<I>(&mut self, vars: I) -> anyhow::Result<()>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let keys = self.leaf_keys()?;
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix("KSCALE_") else {
                continue;
            };
            // Only a configuration section's prefix is checked strictly, so a typo in a key is
            // caught while other variables sharing the prefix (the global flags' KSCALE_CONTEXT,
            // `kscale load`'s KSCALE_LOAD_URL, the test harness' settings) pass through.
            const SECTIONS: &[&str] = &[
                "CLUSTER_",
                "APP_",
                "METRIC_",
                "HPA_",
                "MONITORING_",
                "TIMEOUTS_",
            ];
            if !SECTIONS.iter().any(|p| rest.starts_with(p)) {
                continue;
            }
            let Some(key) = keys
                .iter()
                .find(|k| k.replace('.', "_").to_ascii_uppercase() == rest)
            else {
                anyhow::bail!(
                    "unknown environment variable {name}: it maps to no configuration key (e.g. KSCALE_APP_WORKERS for app.workers)"
                );
            };
            self.set(key, &value)
                .with_context(|| format!("from environment variable {name}"))?;
        }
        Ok(())
    }

    /// This configuration with every optional field set, so that its serialization holds every
    /// key (TOML has no null: an unset `Option` is simply absent).
    fn with_every_key(&self) -> Self {
        let mut full = self.clone();
        for rules in [&mut full.hpa.scale_up, &mut full.hpa.scale_down] {
            rules.tolerance.get_or_insert(DEFAULT_TOLERANCE);
        }
        full
    }

    /// Optional keys that are unset here, for `kscale config` to show as such.
    pub fn unset_keys(&self) -> anyhow::Result<Vec<String>> {
        let set = self.leaf_keys_present()?;
        Ok(self
            .leaf_keys()?
            .into_iter()
            .filter(|k| !set.contains(k))
            .collect())
    }

    /// `kscale config` as TOML: every key with its value; unset optional keys as comments.
    pub fn to_display_toml(&self) -> anyhow::Result<String> {
        let mut text = toml::to_string_pretty(self)?;
        let unset = self.unset_keys()?;
        if !unset.is_empty() {
            text.push_str("\n# Unset (Kubernetes' default applies; set with --set KEY=VALUE):\n");
            for key in unset {
                text.push_str(&format!("# {key}\n"));
            }
        }
        Ok(text)
    }

    /// `kscale config --output json`: every key, unset optional keys as `null`.
    pub fn to_display_json(&self) -> anyhow::Result<serde_json::Value> {
        let mut json = serde_json::to_value(self)?;
        for key in self.unset_keys()? {
            let mut node = &mut json;
            let parts: Vec<&str> = key.split('.').collect();
            for part in &parts[..parts.len() - 1] {
                node = node
                    .get_mut(*part)
                    .with_context(|| format!("{key} has no section in the JSON form"))?;
            }
            if let Some(table) = node.as_object_mut() {
                table.insert(parts[parts.len() - 1].to_string(), serde_json::Value::Null);
            }
        }
        Ok(json)
    }

    /// Sets one dotted key from text (`--set app.workers=2`), typed by the key's value in the
    /// defaults (optional keys included).
    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        let mut template = toml::Value::try_from(self.with_every_key())?;
        let mut kind = &mut template;
        for part in key.split('.') {
            kind = kind
                .get_mut(part)
                .ok_or_else(|| anyhow::anyhow!("unknown configuration key {key:?}"))?;
        }
        let parsed = match kind {
            toml::Value::String(_) => toml::Value::String(value.to_string()),
            toml::Value::Integer(_) => toml::Value::Integer(
                value
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{key}: {value:?} is not a whole number"))?,
            ),
            toml::Value::Float(_) => toml::Value::Float(
                value
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{key}: {value:?} is not a number"))?,
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(
                value
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{key}: {value:?} is not true or false"))?,
            ),
            _ => anyhow::bail!("{key} is a table or list: set it in kscale.toml"),
        };
        let mut doc = toml::Value::try_from(&*self)?;
        let mut node = &mut doc;
        let parts: Vec<&str> = key.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let toml::Value::Table(table) = node else {
                anyhow::bail!("unknown configuration key {key:?}");
            };
            // An unset optional key is absent from the document: create it.
            let last = i + 1 == parts.len();
            node = table.entry(part.to_string()).or_insert_with(|| {
                if last {
                    parsed.clone()
                } else {
                    toml::Value::Table(toml::Table::new())
                }
            });
        }
        *node = parsed;
        *self = doc
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{key}: {}", e.message()))?;
        Ok(())
    }

    /// Every settable dotted key with a scalar value, optional keys included.
    pub fn leaf_keys(&self) -> anyhow::Result<Vec<String>> {
        self.with_every_key().leaf_keys_present()
    }

    /// The dotted scalar keys this configuration's serialization holds (unset options absent).
    fn leaf_keys_present(&self) -> anyhow::Result<Vec<String>> {
        fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
            if let toml::Value::Table(t) = v {
                for (k, v) in t {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    match v {
                        toml::Value::Table(_) => walk(&key, v, out),
                        toml::Value::Array(_) => {}
                        _ => out.push(key),
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk("", &toml::Value::try_from(self)?, &mut out);
        Ok(out)
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

impl HpaConfig {
    /// Defaults of the HPA for a metric profile: the original's slow, steady behaviour for
    /// `mean-duration`; a quick scale-up for `concurrency`, whose signal has no rate window to smooth it.
    pub fn defaults_for(profile: MetricProfile) -> Self {
        match profile {
            MetricProfile::MeanDuration => Self::default(),
            MetricProfile::Concurrency => Self {
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

/// Where configuration layers come from, lowest priority first after the defaults.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    /// Text of `kscale.toml`, with the path for error messages.
    pub file: Option<(std::path::PathBuf, String)>,
    /// Environment variables (all of them; only `KSCALE_*` are read).
    pub env: Vec<(String, String)>,
    /// `key=value` overrides from flags, in order.
    pub sets: Vec<(String, String)>,
}

impl Config {
    /// Defaults of a metric profile for every section.
    pub fn defaults_for(profile: MetricProfile) -> Self {
        Self {
            metric: MetricConfig::defaults_for(profile),
            hpa: HpaConfig::defaults_for(profile),
            ..Self::default()
        }
    }

    /// Builds the configuration from its layers: the profile's defaults, the file, the
    /// environment, the flags. Does not validate; call [`Config::validate`].
    pub fn load(layers: &Layers) -> anyhow::Result<Self> {
        let file_table: toml::Table = match &layers.file {
            Some((path, text)) => toml::from_str(text).map_err(|e| {
                anyhow::anyhow!(
                    "invalid config file {}: {}",
                    path.display(),
                    e.to_string().trim_end()
                )
            })?,
            None => toml::Table::new(),
        };
        // The profile decides the defaults of the other metric and HPA keys, so find it first.
        let profile_text = layers
            .sets
            .iter()
            .rev()
            .find(|(k, _)| k == "metric.profile")
            .map(|(_, v)| v.clone())
            .or_else(|| {
                layers
                    .env
                    .iter()
                    .find(|(k, _)| k == "KSCALE_METRIC_PROFILE")
                    .map(|(_, v)| v.clone())
            })
            .or_else(|| {
                file_table
                    .get("metric")
                    .and_then(|m| m.get("profile"))
                    .and_then(|p| p.as_str())
                    .map(str::to_string)
            });
        let profile = match profile_text.as_deref() {
            None | Some("mean-duration") => MetricProfile::MeanDuration,
            Some("concurrency") => MetricProfile::Concurrency,
            Some(other) => anyhow::bail!(
                "metric.profile: {other:?} is not a profile: allowed \"mean-duration\" (default) or \"concurrency\""
            ),
        };
        let mut base = toml::Value::try_from(Self::defaults_for(profile))?;
        merge(&mut base, toml::Value::Table(file_table));
        let mut config: Config = base.try_into().map_err(|e: toml::de::Error| {
            let place = layers
                .file
                .as_ref()
                .map(|(p, _)| p.display().to_string())
                .unwrap_or_default();
            anyhow::anyhow!("invalid config file {place}: {}", e.to_string().trim_end())
        })?;
        config.apply_env(layers.env.iter().cloned())?;
        for (key, value) in &layers.sets {
            config
                .set(key, value)
                .with_context(|| format!("in --set {key}={value}"))?;
        }
        Ok(config)
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(cfg: &Config) -> Vec<String> {
        match cfg.validate() {
            Ok(()) => Vec::new(),
            Err(ConfigErrors(v)) => v.into_iter().map(|i| i.key).collect(),
        }
    }

    #[test]
    fn defaults_are_valid_and_reproduce_the_original() {
        let c = Config::default();
        assert_eq!(keys(&c), Vec::<String>::new());
        assert_eq!((c.cluster.nodes, c.cluster.memory_mb), (2, 4400));
        assert_eq!(
            (c.app.inference_seconds, c.app.workers, c.app.port),
            (10.0, 1, 3000)
        );
        assert_eq!(c.metric.target, 12.0);
        assert_eq!((c.hpa.min_replicas, c.hpa.max_replicas), (1, 10));
        assert_eq!(c.hpa.scale_up.stabilization_window_seconds, 240);
        assert_eq!(c.hpa.scale_down.stabilization_window_seconds, 300);
        assert!(
            Config::defaults_for(MetricProfile::Concurrency)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn every_error_names_its_key() {
        let mut c = Config::default();
        c.hpa.min_replicas = 5;
        c.hpa.max_replicas = 3;
        c.metric.rate_window_seconds = 30;
        c.cluster.memory_mb = 1024;
        c.app.namespace = "Bad_Name".into();
        c.app.cpu_limit = "lots".into();
        c.hpa.scale_up.policies[0].period_seconds = 0;
        c.hpa.scale_down.tolerance = Some(1.5);
        let err = c.validate().expect_err("invalid");
        let text = err.to_string();
        for key in [
            "hpa.max_replicas",
            "metric.rate_window_seconds",
            "cluster.memory_mb",
            "app.namespace",
            "app.cpu_limit",
            "hpa.scale_up.policies[0].period_seconds",
            "hpa.scale_down.tolerance",
        ] {
            assert!(text.contains(key), "{key} missing from:\n{text}");
        }
        assert!(text.contains("four scrape intervals"), "{text}");
    }

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        let layers = Layers {
            file: Some((
                "kscale.toml".into(),
                "[app]\nworkers = 2\ninference_seconds = 5.0\n".into(),
            )),
            env: vec![
                ("KSCALE_APP_WORKERS".into(), "3".into()),
                ("HOME".into(), "/root".into()),
            ],
            sets: vec![("app.inference_seconds".into(), "2.5".into())],
        };
        let c = Config::load(&layers).expect("loads");
        assert_eq!(c.app.workers, 3, "env over file");
        assert_eq!(c.app.inference_seconds, 2.5, "flag over file");
    }

    #[test]
    fn profile_decides_the_defaults_of_the_metric_and_hpa() {
        let c = Config::load(&Layers {
            file: Some((
                "k.toml".into(),
                "[metric]\nprofile = \"concurrency\"\n".into(),
            )),
            ..Default::default()
        })
        .expect("loads");
        assert_eq!(
            c.metric,
            MetricConfig::defaults_for(MetricProfile::Concurrency)
        );
        assert_eq!(c.hpa, HpaConfig::defaults_for(MetricProfile::Concurrency));
        let err = Config::load(&Layers {
            sets: vec![("metric.profile".into(), "fast".into())],
            ..Default::default()
        })
        .expect_err("unknown profile");
        assert!(err.to_string().contains("metric.profile"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_types_are_refused_with_their_place() {
        let err = Config::load(&Layers {
            file: Some(("k.toml".into(), "[app]\nworkerz = 2\n".into())),
            ..Default::default()
        })
        .expect_err("unknown key");
        assert!(format!("{err:#}").contains("workerz"), "{err:#}");
        let err = Config::load(&Layers {
            sets: vec![("app.workers".into(), "two".into())],
            ..Default::default()
        })
        .expect_err("bad type");
        assert!(format!("{err:#}").contains("app.workers"), "{err:#}");
        let err = Config::load(&Layers {
            env: vec![("KSCALE_APP_WORKRS".into(), "2".into())],
            ..Default::default()
        })
        .expect_err("unknown env");
        assert!(err.to_string().contains("KSCALE_APP_WORKRS"), "{err}");
    }

    #[test]
    fn other_variables_sharing_the_prefix_are_not_configuration() {
        let env = vec![
            (
                "KSCALE_LOAD_URL".to_string(),
                "http://127.0.0.1:3000".to_string(),
            ),
            (
                "KSCALE_CONTROLPLANE_CACHE".to_string(),
                "/tmp/x".to_string(),
            ),
            ("KSCALE_CONTEXT".to_string(), "other".to_string()),
        ];
        assert!(
            Config::load(&Layers {
                env,
                ..Default::default()
            })
            .is_ok()
        );
        let typo = vec![("KSCALE_HPA_MAX_REPLICA".to_string(), "3".to_string())];
        let err = Config::load(&Layers {
            env: typo,
            ..Default::default()
        })
        .expect_err("typo in a section");
        assert!(err.to_string().contains("KSCALE_HPA_MAX_REPLICA"), "{err}");
    }

    /// Every dotted scalar key of the configuration type, read from the fields serde's derive
    /// declares (not from a value, where an unset `Option` is invisible).
    mod schema {
        use serde::de::{
            self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor,
        };

        pub fn keys<T: serde::de::DeserializeOwned>() -> Vec<String> {
            let mut out = Vec::new();
            T::deserialize(Recorder {
                prefix: String::new(),
                out: &mut out,
            })
            .expect("the recorder deserializes every configuration type");
            out
        }

        struct Recorder<'a> {
            prefix: String,
            out: &'a mut Vec<String>,
        }

        #[derive(Debug)]
        struct Error(String);
        impl std::fmt::Display for Error {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::error::Error for Error {}
        impl de::Error for Error {
            fn custom<T: std::fmt::Display>(msg: T) -> Self {
                Error(msg.to_string())
            }
        }

        impl<'de> Deserializer<'de> for Recorder<'_> {
            type Error = Error;
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _name: &'static str,
                fields: &'static [&'static str],
                visitor: V,
            ) -> Result<V::Value, Error> {
                visitor.visit_map(Fields {
                    prefix: self.prefix,
                    fields: fields.iter(),
                    current: None,
                    out: self.out,
                })
            }
            fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.out.push(self.prefix);
                visitor.visit_none()
            }
            fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                // Lists (scaling policies) are set in kscale.toml only.
                visitor.visit_seq(de::value::SeqDeserializer::<_, Error>::new(
                    std::iter::empty::<u8>(),
                ))
            }
            fn deserialize_enum<V: Visitor<'de>>(
                self,
                _name: &'static str,
                variants: &'static [&'static str],
                visitor: V,
            ) -> Result<V::Value, Error> {
                self.out.push(self.prefix);
                visitor.visit_enum(variants[0].into_deserializer())
            }
            fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.out.push(self.prefix);
                visitor.visit_string(String::new())
            }
            fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.out.push(self.prefix);
                visitor.visit_u64(1)
            }
            fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.out.push(self.prefix);
                visitor.visit_f64(1.0)
            }
            fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                self.out.push(self.prefix);
                visitor.visit_bool(true)
            }
            serde::forward_to_deserialize_any! {
                i8 i16 i32 i64 u8 u16 u32 u64 f32 char str bytes byte_buf unit
                unit_struct newtype_struct tuple tuple_struct map identifier ignored_any
            }
        }

        struct Fields<'a> {
            prefix: String,
            fields: std::slice::Iter<'static, &'static str>,
            current: Option<&'static str>,
            out: &'a mut Vec<String>,
        }

        impl<'de> MapAccess<'de> for Fields<'_> {
            type Error = Error;
            fn next_key_seed<K: DeserializeSeed<'de>>(
                &mut self,
                seed: K,
            ) -> Result<Option<K::Value>, Error> {
                let Some(field) = self.fields.next() else {
                    return Ok(None);
                };
                self.current = Some(field);
                seed.deserialize(field.into_deserializer()).map(Some)
            }
            fn next_value_seed<V: DeserializeSeed<'de>>(
                &mut self,
                seed: V,
            ) -> Result<V::Value, Error> {
                let field = self.current.take().unwrap_or_default();
                let prefix = if self.prefix.is_empty() {
                    field.to_string()
                } else {
                    format!("{}.{field}", self.prefix)
                };
                seed.deserialize(Recorder {
                    prefix,
                    out: self.out,
                })
            }
        }
    }

    #[test]
    fn every_key_of_the_type_is_listed_settable_in_every_layer_and_shown() {
        let mut from_type = schema::keys::<Config>();
        from_type.sort();
        let defaults = Config::default();
        let mut listed = defaults.leaf_keys().expect("keys");
        listed.sort();
        assert_eq!(listed, from_type, "Config::leaf_keys and the type disagree");
        assert!(listed.contains(&"hpa.scale_up.tolerance".to_string()));

        let template = toml::Value::try_from(defaults.with_every_key()).expect("toml");
        let shown = defaults.to_display_toml().expect("display");
        let json = defaults.to_display_json().expect("json");
        for key in &listed {
            let mut node = &template;
            for part in key.split('.') {
                node = &node[part];
            }
            let text = match node {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let env = format!("KSCALE_{}", key.replace('.', "_").to_ascii_uppercase());
            for (layer, layers) in [
                (
                    "--set",
                    Layers {
                        sets: vec![(key.clone(), text.clone())],
                        ..Default::default()
                    },
                ),
                (
                    "env",
                    Layers {
                        env: vec![(env.clone(), text.clone())],
                        ..Default::default()
                    },
                ),
            ] {
                let loaded = Config::load(&layers)
                    .unwrap_or_else(|e| panic!("{key} cannot be set through {layer}: {e:#}"));
                assert!(
                    loaded.unset_keys().expect("unset").iter().all(|k| k != key),
                    "{key} set through {layer} is still unset"
                );
            }
            // In a file, a key is written in the table of its section (or sub-section).
            let (table, leaf) = key.rsplit_once('.').expect("dotted");
            let file = format!("[{table}]\n{leaf} = {node}\n");
            let merged = Config::load(&Layers {
                file: Some(("k.toml".into(), file.clone())),
                ..Default::default()
            });
            merged.unwrap_or_else(|e| panic!("{key} cannot be set in kscale.toml ({file}): {e:#}"));
            assert!(
                shown.contains(&format!("\n{leaf} = ")) || shown.contains(&format!("# {key}\n")),
                "kscale config does not show {key}:\n{shown}"
            );
            let mut node = &json;
            for part in key.split('.') {
                node = node
                    .get(part)
                    .unwrap_or_else(|| panic!("kscale config --output json lacks {key}"));
            }
        }
        assert!(shown.contains("# hpa.scale_up.tolerance"), "{shown}");
        assert!(json["hpa"]["scale_up"]["tolerance"].is_null());
        let set = Config::load(&Layers {
            sets: vec![("hpa.scale_up.tolerance".into(), "0.5".into())],
            ..Default::default()
        })
        .expect("tolerance settable");
        assert_eq!(set.hpa.scale_up.tolerance, Some(0.5));
        assert!(set.validate().is_ok());
    }

    #[test]
    fn derived_values_are_checked_against_what_the_server_and_the_api_accept() {
        let with = |f: &dyn Fn(&mut AppConfig)| {
            let mut c = Config::default();
            f(&mut c.app);
            c
        };
        // DRAIN_SECONDS = (100000 + 1) * 10 + 15 = 1000025 > 1000000.
        let err = with(&|a| a.max_queue = 100_000)
            .validate()
            .expect_err("too long a drain");
        let text = err.to_string();
        assert!(
            text.contains("app.max_queue") && text.contains("1000025"),
            "{text}"
        );
        for (key, c) in [
            (
                "app.keep_alive_seconds",
                with(&|a| a.keep_alive_seconds = 2_000_000),
            ),
            (
                "app.max_connection_age_seconds",
                with(&|a| a.max_connection_age_seconds = u64::MAX),
            ),
            (
                "app.drain_margin_seconds",
                with(&|a| a.drain_margin_seconds = u64::MAX),
            ),
            (
                "app.pre_stop_seconds",
                with(&|a| a.pre_stop_seconds = i64::MAX as u64),
            ),
            (
                "app.pre_stop_seconds",
                with(&|a| a.pre_stop_seconds = u64::MAX),
            ),
        ] {
            let text = c.validate().expect_err(key).to_string();
            assert!(text.contains(key), "{key} missing from {text}");
        }
        let mut c = Config::default();
        c.timeouts.rollout_seconds = u64::MAX;
        c.metric.relist_interval_seconds = u64::MAX;
        c.hpa.max_replicas = u32::MAX;
        let text = c.validate().expect_err("out of range").to_string();
        for key in [
            "timeouts.rollout_seconds",
            "metric.relist_interval_seconds",
            "hpa.max_replicas",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        // The largest valid settings stay within the server's and the API's ranges.
        let c = with(&|a| {
            a.max_queue = 99_000;
            a.workers = 1024;
            a.inference_seconds = 3600.0;
            a.drain_margin_seconds = 1000;
            a.pre_stop_seconds = 1_000_000;
        });
        assert!(c.validate().is_ok(), "{:?}", c.validate());
        assert!(
            c.app
                .drain_seconds()
                .is_some_and(|d| d <= SERVER_MAX_SECONDS)
        );
        assert!(c.app.termination_grace_seconds().is_some());
    }
}
