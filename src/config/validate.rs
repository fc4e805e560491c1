//! [`Config::validate`]: every value against its allowed range, one function per section, every
//! problem reported at once with its dotted key.

use std::fmt;

use super::{
    AppConfig, ClusterConfig, Config, HpaConfig, MAX_TIMEOUT_SECONDS, MAX_WINDOW_SECONDS,
    MIN_NODE_MEMORY_MB, MetricConfig, MetricProfile, MonitoringConfig, SERVER_MAX_SECONDS,
    SelectPolicy, TimeoutConfig,
};

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

/// Whether `s` is a DNS-1123 label (names of namespaces, Services, Deployments).
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The problems found so far.
struct Problems(Vec<Invalid>);

impl Problems {
    fn bad(&mut self, key: &str, message: String) {
        self.0.push(Invalid {
            key: key.into(),
            message,
        });
    }

    /// `value` must lie in `lo..=hi`; `note` follows the range in the message (a unit, a why).
    fn range(&mut self, key: &str, value: u64, lo: u64, hi: u64, note: &str) {
        if !(lo..=hi).contains(&value) {
            self.bad(
                key,
                format!("{value} is out of range: allowed {lo}-{hi}{note}"),
            );
        }
    }
}

impl Config {
    /// Checks every value against its allowed range. Runs before anything touches a cluster.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut p = Problems(Vec::new());
        cluster(&self.cluster, &mut p);
        app(&self.app, &mut p);
        metric(&self.metric, &mut p);
        server(self, &mut p);
        hpa(&self.hpa, &mut p);
        monitoring(&self.monitoring, &mut p);
        for invalid in crate::config::sources::validate(self) {
            p.bad(&invalid.key, invalid.message);
        }
        timeouts(&self.timeouts, &mut p);
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(p.0))
        }
    }
}

/// `[cluster]`: the profile name, node count and sizes minikube accepts.
fn cluster(c: &ClusterConfig, p: &mut Problems) {
    if !is_dns1123_label(&c.profile) {
        p.bad(
            "cluster.profile",
            format!(
                "{:?} must be a DNS-1123 label (lowercase letters, digits, '-'; at most 63)",
                c.profile
            ),
        );
    }
    p.range("cluster.nodes", c.nodes.into(), 1, 10, "");
    if c.memory_mb < MIN_NODE_MEMORY_MB {
        p.bad(
            "cluster.memory_mb",
            format!(
                "{} MB per node is too little for Prometheus, the adapter and the app: at least {MIN_NODE_MEMORY_MB}",
                c.memory_mb
            ),
        );
    }
    if !(2..=64).contains(&c.cpus) {
        p.bad(
            "cluster.cpus",
            format!(
                "{} is out of range: minikube needs 2-64 CPUs per node",
                c.cpus
            ),
        );
    }
    p.range(
        "cluster.hpa_sync_period_seconds",
        c.hpa_sync_period_seconds.into(),
        1,
        300,
        "",
    );
    if c.driver.trim().is_empty() {
        p.bad(
            "cluster.driver",
            "must not be empty (e.g. \"docker\")".into(),
        );
    }
}

/// `[app]`: names and ports, then the server's settings, its drain and its resources.
fn app(a: &AppConfig, p: &mut Problems) {
    if !is_dns1123_label(&a.name) {
        p.bad("app.name", format!("{:?} must be a DNS-1123 label", a.name));
    }
    if !is_dns1123_label(&a.namespace) {
        p.bad(
            "app.namespace",
            format!("{:?} must be a DNS-1123 label", a.namespace),
        );
    }
    if a.port == 0 {
        p.bad("app.port", "must be 1-65535".into());
    }
    if a.node_port != 0 && !(30000..=32767).contains(&a.node_port) {
        p.bad(
            "app.node_port",
            format!(
                "{} is outside the NodePort range 30000-32767 (0 lets Kubernetes choose)",
                a.node_port
            ),
        );
    }
    app_server(a, p);
    app_drain(a, p);
    app_resources(a, p);
}

/// The server's own settings, in the ranges kscale-server accepts.
fn app_server(a: &AppConfig, p: &mut Problems) {
    if !(a.inference_seconds.is_finite()
        && a.inference_seconds > 0.0
        && a.inference_seconds <= 3600.0)
    {
        p.bad(
            "app.inference_seconds",
            format!(
                "{} must be a positive number of seconds, at most 3600",
                a.inference_seconds
            ),
        );
    }
    p.range("app.workers", a.workers.into(), 1, 1024, "");
    p.range("app.max_queue", a.max_queue.into(), 0, 100_000, "");
    p.range(
        "app.keep_alive_seconds",
        a.keep_alive_seconds,
        1,
        SERVER_MAX_SECONDS,
        " seconds (what kscale-server accepts as KEEP_ALIVE_SECONDS)",
    );
    p.range(
        "app.max_connection_age_seconds",
        a.max_connection_age_seconds,
        0,
        SERVER_MAX_SECONDS,
        " seconds (what kscale-server accepts as MAX_CONNECTION_AGE_SECONDS)",
    );
    if !(a.start_delay_seconds.is_finite()
        && (0.0..=MAX_WINDOW_SECONDS as f64).contains(&a.start_delay_seconds))
    {
        p.bad(
            "app.start_delay_seconds",
            format!(
                "{} must be zero or a positive number of seconds, at most {MAX_WINDOW_SECONDS}",
                a.start_delay_seconds
            ),
        );
    }
}

/// Shutdown: the worst-case drain must fit what the server and the pod spec can hold.
fn app_drain(a: &AppConfig, p: &mut Problems) {
    p.range(
        "app.drain_margin_seconds",
        a.drain_margin_seconds,
        0,
        SERVER_MAX_SECONDS,
        " seconds",
    );
    if a.drain_margin_seconds <= SERVER_MAX_SECONDS
        && a.inference_seconds.is_finite()
        && a.inference_seconds > 0.0
        && (1..=1024).contains(&a.workers)
    {
        match a.drain_seconds() {
            Some(drain) if drain <= SERVER_MAX_SECONDS => {}
            drain => p.bad(
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
        p.bad(
            "app.pre_stop_seconds",
            format!(
                "{} s plus the worst-case drain ({} s) and 5 s does not fit terminationGracePeriodSeconds (a 64-bit signed number of seconds): lower app.pre_stop_seconds",
                a.pre_stop_seconds,
                a.drain_seconds().unwrap_or_default()
            ),
        );
    }
}

/// Requests and limits, as Kubernetes quantities.
fn app_resources(a: &AppConfig, p: &mut Problems) {
    for (key, value) in [
        ("app.cpu_request", &a.cpu_request),
        ("app.cpu_limit", &a.cpu_limit),
        ("app.memory_request", &a.memory_request),
        ("app.memory_limit", &a.memory_limit),
    ] {
        if !crate::quantity::is_resource_amount(value) {
            p.bad(
                key,
                format!("{value:?} is not a Kubernetes quantity (e.g. \"500m\", \"128Mi\")"),
            );
        }
    }
}

/// `[metric]`: a Prometheus name, a target a quantity holds, windows that see samples.
fn metric(m: &MetricConfig, p: &mut Problems) {
    if !is_metric_name(&m.name) {
        p.bad(
            "metric.name",
            format!(
                "{:?} must be a Prometheus-style name (letters, digits, '_', ':'; not starting with a digit)",
                m.name
            ),
        );
    }
    // A Kubernetes quantity holds at most 2^63-1 milli-units.
    if !(m.target.is_finite() && m.target > 0.0 && m.target <= 1e15) {
        p.bad(
            "metric.target",
            format!("{} must be a positive number, at most 1e15", m.target),
        );
    }
    p.range(
        "metric.scrape_interval_seconds",
        m.scrape_interval_seconds,
        1,
        300,
        "",
    );
    if m.profile == MetricProfile::MeanDuration
        && m.rate_window_seconds < 4 * m.scrape_interval_seconds
    {
        p.bad(
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
            p.bad(
                key,
                format!("{v} s is out of range: at most {MAX_WINDOW_SECONDS} (a day)"),
            );
        }
    }
    if m.relist_interval_seconds < m.scrape_interval_seconds {
        p.bad(
            "metric.relist_interval_seconds",
            format!(
                "{} s must be at least the scrape interval ({} s), or the adapter drops series between scrapes",
                m.relist_interval_seconds, m.scrape_interval_seconds
            ),
        );
    }
}

/// Whether `s` is a Prometheus metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), which is also a valid
/// external metric name (a path segment without '/' or '%').
fn is_metric_name(s: &str) -> bool {
    is_identifier(s, b":")
}

/// Whether `s` is letters, digits, '_' and the bytes of `extra`, not starting with a digit.
fn is_identifier(s: &str, extra: &[u8]) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || extra.contains(&b))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || extra.contains(&b))
}

/// The server's own keys, and the metric against what that server really exposes.
fn server(c: &Config, p: &mut Problems) {
    let a = &c.app;
    let preset = a.server.preset();
    let supported = preset.profiles();
    if !supported.contains(&c.metric.profile) {
        let why = match preset.profile_gauges(c.metric.profile) {
            Err(why) if c.metric.profile != MetricProfile::MeanDuration => why,
            _ => format!("{} exposes no request-duration histogram", preset.title),
        };
        p.bad(
            "metric.profile",
            format!(
                "{:?} does not fit app.server = {:?}: {why}; allowed {}",
                c.metric.profile.to_string(),
                a.server.as_str(),
                supported
                    .iter()
                    .map(|p| format!("{:?}", p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if !c.metric.gauges.is_empty() && !c.metric.profile.is_per_pod() {
        p.bad(
            "metric.gauges",
            "applies to the \"concurrency\" and \"queue\" profiles: set metric.profile too".into(),
        );
    }
    for g in &c.metric.gauges {
        if !preset.gauges().any(|known| known == g) {
            p.bad(
                "metric.gauges",
                format!(
                    "{:?} is not a gauge {} exposes: allowed {}",
                    g,
                    preset.title,
                    preset.gauges().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    if a.image.chars().any(char::is_whitespace) {
        p.bad(
            "app.image",
            format!("{:?} is not an image reference (no spaces)", a.image),
        );
    }
    if a.model.trim() == crate::config::servers::PLACEHOLDER_MODEL {
        p.bad(
            "app.model",
            "is the placeholder kscale renders when no model is set: name a real model".into(),
        );
    }
    for name in a.env.keys() {
        if !is_identifier(name, b"") {
            p.bad(
                "app.env",
                format!("{name:?} is not an environment variable name (letters, digits, '_')"),
            );
        }
    }
    p.range("app.gpus", a.gpus.into(), 0, 64, "");
    p.range(
        "app.startup_seconds",
        a.startup_seconds,
        1,
        MAX_WINDOW_SECONDS,
        " seconds",
    );
}

/// `[hpa]`: replica bounds and policies as the API's int32 fields take them.
fn hpa(h: &HpaConfig, problems: &mut Problems) {
    if h.min_replicas == 0 {
        problems.bad(
            "hpa.min_replicas",
            "must be at least 1 (scale to zero is an alpha feature kscale does not use)".into(),
        );
    }
    // minReplicas, maxReplicas and a policy's value are int32 in the API.
    if h.max_replicas > i32::MAX as u32 {
        problems.bad(
            "hpa.max_replicas",
            format!("{} is out of range: at most {}", h.max_replicas, i32::MAX),
        );
    }
    if h.max_replicas < h.min_replicas {
        problems.bad(
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
        problems.range(
            &format!("{dir}.stabilization_window_seconds"),
            rules.stabilization_window_seconds.into(),
            0,
            3600,
            "",
        );
        if rules.policies.is_empty() && rules.select_policy != SelectPolicy::Disabled {
            problems.bad(
                &format!("{dir}.policies"),
                "needs at least one policy unless select_policy is Disabled".into(),
            );
        }
        for (i, p) in rules.policies.iter().enumerate() {
            problems.range(
                &format!("{dir}.policies[{i}].value"),
                p.value.into(),
                1,
                i32::MAX.unsigned_abs().into(),
                "",
            );
            problems.range(
                &format!("{dir}.policies[{i}].period_seconds"),
                p.period_seconds.into(),
                1,
                1800,
                "",
            );
        }
        if let Some(t) = rules.tolerance
            && !(t.is_finite() && (0.0..1.0).contains(&t))
        {
            problems.bad(
                &format!("{dir}.tolerance"),
                format!("{t} is out of range: allowed 0 <= tolerance < 1"),
            );
        }
    }
}

/// `[monitoring]`: release names, pinned chart versions, the repository URL.
fn monitoring(mo: &MonitoringConfig, p: &mut Problems) {
    for (key, v) in [
        ("monitoring.namespace", &mo.namespace),
        ("monitoring.prometheus_release", &mo.prometheus_release),
        ("monitoring.adapter_release", &mo.adapter_release),
    ] {
        if !is_dns1123_label(v) {
            p.bad(key, format!("{v:?} must be a DNS-1123 label"));
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
            p.bad(
                key,
                format!("{v:?} must be a pinned chart version like 1.2.3"),
            );
        }
    }
    if !(mo.repo_url.starts_with("https://")
        || mo.repo_url.starts_with("http://")
        || mo.repo_url.starts_with("oci://"))
    {
        p.bad(
            "monitoring.repo_url",
            format!("{:?} must be an http(s):// or oci:// URL", mo.repo_url),
        );
    }
}

/// `[timeouts]`: every deadline between 1 s and [`crate::duration::MAX_DAYS`] days.
fn timeouts(t: &TimeoutConfig, p: &mut Problems) {
    // Every key of the section, read from its serialization: a new deadline cannot be
    // left unchecked.
    // (JSON, not TOML: TOML integers stop at i64::MAX, and such a value must be reported.)
    if let Ok(serde_json::Value::Object(t)) = serde_json::to_value(t) {
        for (name, value) in t {
            let key = format!("timeouts.{name}");
            let v = value.as_u64().unwrap_or(0);
            let unit = format!(" seconds ({} days)", crate::duration::MAX_DAYS);
            p.range(&key, v, 1, MAX_TIMEOUT_SECONDS, &unit);
        }
    }
}
