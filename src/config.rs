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

/// Whether `s` is a Kubernetes quantity kscale can pass on (`500m`, `128Mi`, `1`, `0.5`).
fn is_quantity(s: &str) -> bool {
    const SUFFIXES: &[&str] = &["Ki", "Mi", "Gi", "Ti", "m", "k", "M", "G", "T", ""];
    SUFFIXES.iter().any(|suffix| {
        s.strip_suffix(suffix).is_some_and(|num| {
            !num.is_empty() && num.parse::<f64>().is_ok_and(|v| v.is_finite() && v > 0.0)
        })
    })
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
        if a.keep_alive_seconds == 0 {
            bad(
                "app.keep_alive_seconds",
                "must be a positive number of seconds".into(),
            );
        }
        if !(a.start_delay_seconds.is_finite() && a.start_delay_seconds >= 0.0) {
            bad(
                "app.start_delay_seconds",
                "must be zero or a positive number of seconds".into(),
            );
        }
        for (key, value) in [
            ("app.cpu_request", &a.cpu_request),
            ("app.cpu_limit", &a.cpu_limit),
            ("app.memory_request", &a.memory_request),
            ("app.memory_limit", &a.memory_limit),
        ] {
            if !is_quantity(value) {
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
        if !(m.target.is_finite() && m.target > 0.0) {
            bad(
                "metric.target",
                format!("{} must be a positive number", m.target),
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
                if p.value == 0 {
                    bad(
                        &format!("{dir}.policies[{i}].value"),
                        "must be at least 1".into(),
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
            if v == 0 {
                bad(key, "must be a positive number of seconds".into());
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

    /// Sets one dotted key from text (`--set app.workers=2`), typed by the key's current value.
    pub fn set(&mut self, key: &str, value: &str) -> anyhow::Result<()> {
        let mut doc = toml::Value::try_from(&*self)?;
        let mut node = &mut doc;
        for part in key.split('.') {
            node = node
                .get_mut(part)
                .ok_or_else(|| anyhow::anyhow!("unknown configuration key {key:?}"))?;
        }
        let parsed = match node {
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
        *node = parsed;
        *self = doc
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{key}: {}", e.message()))?;
        Ok(())
    }

    /// Every settable dotted key with a scalar value.
    pub fn leaf_keys(&self) -> anyhow::Result<Vec<String>> {
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
                scale_up: ScalingRules {
                    stabilization_window_seconds: 0,
                    select_policy: SelectPolicy::Max,
                    policies: vec![
                        ScalingPolicy {
                            kind: PolicyKind::Pods,
                            value: 4,
                            period_seconds: 15,
                        },
                        ScalingPolicy {
                            kind: PolicyKind::Percent,
                            value: 100,
                            period_seconds: 15,
                        },
                    ],
                    tolerance: None,
                },
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
}
