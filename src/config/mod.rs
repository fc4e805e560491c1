//! The one typed configuration of kscale.
//!
//! Layers, lowest first: built-in defaults (which reproduce the original system), `kscale.toml`,
//! `KSCALE_*` environment variables, command-line flags. [`Config::validate`] runs before anything
//! touches a cluster, and every error names the key and the allowed range.
//!
//! One file per section (`cluster`, `app`, `metric`, `hpa`, `monitoring`, `timeouts`), plus the
//! validation (`validate`) and the keys as text (`keys`: environment, `--set`, display).

mod app;
mod cluster;
mod hpa;
mod keys;
mod metric;
mod monitoring;
pub mod servers;
pub mod sources;
#[cfg(test)]
mod tests;
mod timeouts;
mod validate;

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

pub use app::{AppConfig, ImageBuild};
pub use cluster::ClusterConfig;
pub use hpa::{HpaConfig, PolicyKind, ScalingPolicy, ScalingRules, SelectPolicy};
pub use metric::{MetricConfig, MetricProfile};
pub use monitoring::MonitoringConfig;
pub use timeouts::TimeoutConfig;
pub use validate::{ConfigErrors, Invalid, is_dns1123_label};

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

/// Largest number of seconds `kscale-server` accepts for any option (its `MAX_SECONDS`).
pub const SERVER_MAX_SECONDS: u64 = 1_000_000;

/// Longest deadline of a wait (`timeouts.*`): [`crate::duration::MAX`], far beyond any real
/// wait.
pub const MAX_TIMEOUT_SECONDS: u64 = crate::duration::MAX.as_secs();

/// Longest Prometheus rate window and adapter relist interval kscale renders: a day.
pub const MAX_WINDOW_SECONDS: u64 = 86_400;

/// Minimum memory per node for kube-prometheus-stack, the adapter and the app (MB).
pub const MIN_NODE_MEMORY_MB: u32 = 3000;

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
    /// Defaults of a metric profile for every section, with kscale-server.
    pub fn defaults_for(profile: MetricProfile) -> Self {
        Self::defaults(crate::config::servers::ServerKind::Kscale, profile)
    }

    /// Defaults of a server and a metric profile for every section.
    pub fn defaults(server: crate::config::servers::ServerKind, profile: MetricProfile) -> Self {
        let app = AppConfig::defaults_for(server);
        Self {
            metric: MetricConfig::defaults_for_server(&app, profile),
            hpa: HpaConfig::defaults_for(profile),
            app,
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
        // The server decides the defaults of the app and of the profile, and the profile those of
        // the other metric and HPA keys, so find both first.
        let server = match layered(layers, &file_table, "app", "server") {
            None => crate::config::servers::ServerKind::Kscale,
            Some(text) => crate::config::servers::ServerKind::parse(&text)?,
        };
        let profile = match layered(layers, &file_table, "metric", "profile") {
            None => server.preset().default_profile,
            Some(text) => MetricProfile::parse(&text)?,
        };
        let explicit_target = layered(layers, &file_table, "metric", "target").is_some();
        let mut base = toml::Value::try_from(Self::defaults(server, profile))?;
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
        // A default target may follow other keys (llama.cpp's: one request per slot).
        if !explicit_target {
            config.metric.target = server
                .preset()
                .metric_target(config.metric.profile, &config.app);
        }
        Ok(config)
    }
}

/// A key's text from the highest layer that sets it (flags, then environment, then the file).
fn layered(layers: &Layers, file: &toml::Table, section: &str, key: &str) -> Option<String> {
    let dotted = format!("{section}.{key}");
    let env = format!(
        "KSCALE_{}_{}",
        section.to_ascii_uppercase(),
        key.to_ascii_uppercase()
    );
    let as_text = |v: &toml::Value| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    layers
        .sets
        .iter()
        .rev()
        .find(|(k, _)| *k == dotted)
        .map(|(_, v)| v.clone())
        .or_else(|| {
            layers
                .env
                .iter()
                .find(|(k, _)| *k == env)
                .map(|(_, v)| v.clone())
        })
        .or_else(|| file.get(section).and_then(|m| m.get(key)).map(as_text))
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
