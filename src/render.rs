//! Renders every manifest and helm values file kscale applies, from `templates/` (embedded in the
//! binary; `--templates DIR` overrides), and checks each Kubernetes object by a typed round trip.
//!
//! Invariant: rendering never talks to a cluster, so `kscale render` and `--dry-run` show exactly
//! what would be applied.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, MetricProfile};

/// The scrape job name of the app pods; the adapter's queries select on it.
pub const SCRAPE_JOB: &str = "kscale-inference";
/// Secret holding the scrape job (kube-prometheus-stack `additionalScrapeConfigsSecret`).
pub const SCRAPE_SECRET: &str = "kscale-scrape-config";
/// Key of the scrape job in [`SCRAPE_SECRET`].
pub const SCRAPE_SECRET_KEY: &str = "scrape-configs.yaml";

/// Declares each template once: its name constant in [`file`] and its text in `EMBEDDED`
/// (`include_str!` needs the literal, so the macro is what keeps the two spellings one).
macro_rules! templates {
    ($($(#[$doc:meta])* $name:ident = $file:literal;)*) => {
        /// Template file names: the one place they are spelled (`--templates DIR` overrides by them).
        pub mod file {
            $($(#[$doc])* pub const $name: &str = $file;)*
        }
        /// Templates compiled into the binary, by file name.
        const EMBEDDED: &[(&str, &str)] = &[$(($file, include_str!(concat!("../templates/", $file)))),*];
    };
}

templates! {
    /// The inference server's Deployment.
    DEPLOYMENT = "deployment.yaml";
    /// Its Service.
    SERVICE = "service.yaml";
    /// The HorizontalPodAutoscaler.
    HPA = "hpa.yaml";
    /// The PodDisruptionBudget: drains take the app's pods one at a time.
    PDB = "pdb.yaml";
    /// The scrape job, as Prometheus reads it.
    SCRAPE_CONFIG = "scrape-config.yaml";
    /// The Secret carrying the scrape job to kube-prometheus-stack.
    SCRAPE_CONFIG_SECRET = "scrape-config-secret.yaml";
    /// The monitoring namespace.
    MONITORING_NAMESPACE = "monitoring-namespace.yaml";
    /// kube-prometheus-stack's helm values.
    PROMETHEUS_VALUES = "prometheus-values.yaml";
    /// prometheus-adapter's helm values.
    PROMETHEUS_ADAPTER = "prometheus-adapter.yaml";
    /// prometheus-adapter's rule file as the adapter reads it.
    PROMETHEUS_ADAPTER_CONFIG = "prometheus-adapter-config.yaml";
    /// The Grafana dashboard's JSON.
    GRAFANA_DASHBOARD_JSON = "grafana-dashboard.json";
    /// The ConfigMap that carries the dashboard to Grafana's sidecar.
    GRAFANA_DASHBOARD = "grafana-dashboard.yaml";
    /// The app's namespace (not rendered for `default`).
    APP_NAMESPACE = "app-namespace.yaml";
}

/// What a rendered file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// A Kubernetes object kscale applies with server-side apply.
    Object,
    /// Values of a helm release.
    HelmValues,
    /// Configuration of a Prometheus-side program: the scrape job (embedded in an object), the
    /// adapter's own config file (for an adapter run outside the chart). Rendered for review and checks.
    PrometheusConfig,
    /// A Grafana dashboard (embedded in a ConfigMap; rendered for review and checks).
    GrafanaDashboard,
}

/// One rendered file.
#[derive(Debug, Clone, Serialize)]
pub struct RenderedFile {
    /// File name, e.g. `deployment.yaml`.
    pub name: String,
    /// What it is for.
    pub kind: FileKind,
    /// The YAML text.
    pub content: String,
}

/// The prometheus-adapter external rule kscale installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdapterRule {
    /// `seriesQuery`: which series the adapter lists under the metric name.
    pub series_query: String,
    /// `metricsQuery`, with the adapter's `<<.LabelMatchers>>` / `<<.GroupBy>>` placeholders.
    pub metrics_query: String,
    /// The external metric name the HPA asks for.
    pub name: String,
}

/// What the metric is computed from, on the configured server.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The mean request duration from a histogram's (or counter pair's) sum and count.
    MeanDuration(crate::config::servers::Duration),
    /// The sum of these gauges per pod (an `AverageValue` target divides by the pods).
    Gauges(Vec<String>),
}

/// The signal of the configured profile on the configured server: `metric.gauges` when set,
/// else the profile's gauges or histogram from the server's preset. [`Config::validate`] refuses
/// a profile the server cannot serve; unvalidated, the server's waiting gauges stand in.
pub fn signal(cfg: &Config) -> Signal {
    let preset = cfg.app.server.preset();
    if let (MetricProfile::MeanDuration, Some(d)) = (cfg.metric.profile, preset.duration) {
        return Signal::MeanDuration(d);
    }
    if !cfg.metric.gauges.is_empty() {
        return Signal::Gauges(cfg.metric.gauges.clone());
    }
    let gauges = preset
        .profile_gauges(cfg.metric.profile)
        .unwrap_or_else(|_| preset.waiting.to_vec());
    Signal::Gauges(gauges.into_iter().map(String::from).collect())
}

/// The adapter rule for the configured metric profile and server.
///
/// Both queries return exactly one series scoped to the HPA's namespace (the adapter adds
/// `namespace="<ns>"` through `<<.LabelMatchers>>`), and a number rather than NaN or nothing at
/// zero traffic: the adapter's external path has no NaN check, and an empty result makes the HPA
/// hold its scale with `FailedGetExternalMetric`. Metric names may hold colons (`vllm:...`,
/// `llamacpp:...`): PromQL selectors take them as they are.
pub fn adapter_rule(cfg: &Config) -> AdapterRule {
    let sel = format!("job=\"{SCRAPE_JOB}\",<<.LabelMatchers>>");
    let name = cfg.metric.name.clone();
    match signal(cfg) {
        Signal::MeanDuration(d) => {
            let w = cfg.metric.rate_window_seconds;
            let scale = if d.scale == 1.0 {
                String::new()
            } else {
                format!(" * {}", d.scale)
            };
            AdapterRule {
                series_query: format!("{}{{job=\"{SCRAPE_JOB}\"}}", d.count),
                // 0/0 is NaN at idle; `> 0` drops it and `or vector(0)` answers 0 instead.
                metrics_query: format!(
                    "(sum(rate({sum}{{{sel}}}[{w}s])) by (<<.GroupBy>>) \
                     / sum(rate({count}{{{sel}}}[{w}s])) by (<<.GroupBy>>){scale}) \
                     > 0 or vector(0)",
                    sum = d.sum,
                    count = d.count,
                ),
                name,
            }
        }
        Signal::Gauges(gauges) => {
            let terms: Vec<String> = gauges.iter().map(|g| format!("{g}{{{sel}}}")).collect();
            AdapterRule {
                // The adapter lists the metric once a series of the last gauge exists.
                series_query: format!(
                    "{}{{job=\"{SCRAPE_JOB}\"}}",
                    gauges.last().map(String::as_str).unwrap_or_default()
                ),
                metrics_query: format!("sum({}) by (<<.GroupBy>>) or vector(0)", terms.join(" + ")),
                name,
            }
        }
    }
}

/// The template set: embedded, or read from a directory that overrides files by name.
#[derive(Debug, Clone)]
pub struct Templates {
    files: Vec<(String, String)>,
}

impl Templates {
    /// The templates compiled into kscale.
    pub fn embedded() -> Self {
        Self {
            files: EMBEDDED
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
        }
    }

    /// The embedded templates, each replaced by the file of the same name in `dir` when present.
    /// A file in `dir` that kscale does not know is refused, since it would silently do nothing.
    pub fn with_overrides(dir: &Path) -> anyhow::Result<Self> {
        let mut t = Self::embedded();
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read templates directory {}", dir.display()))?;
        for entry in entries {
            let entry = entry
                .with_context(|| format!("cannot read templates directory {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(slot) = t.files.iter_mut().find(|(n, _)| *n == name) else {
                let known: Vec<&str> = EMBEDDED.iter().map(|(n, _)| *n).collect();
                anyhow::bail!(
                    "unknown template {} in {}: kscale knows {}",
                    name,
                    dir.display(),
                    known.join(", ")
                );
            };
            slot.1 = std::fs::read_to_string(entry.path())
                .with_context(|| format!("cannot read template {}", entry.path().display()))?;
        }
        t.check_references()
            .with_context(|| format!("invalid templates in {}", dir.display()))?;
        Ok(t)
    }

    /// Refuses templates that include, import or extend themselves, directly or through
    /// others: tera follows such a cycle until the stack overflows (an abort, not an error).
    fn check_references(&self) -> anyhow::Result<()> {
        let refs: Vec<(&str, Vec<String>)> = self
            .files
            .iter()
            .map(|(n, t)| (n.as_str(), references(t)))
            .collect();
        let mut cycles: Vec<Vec<String>> = Vec::new();
        for (start, _) in &refs {
            // Depth-first search for a path from `start` back to itself.
            let mut stack = vec![(start.to_string(), vec![start.to_string()])];
            let mut seen = BTreeSet::new();
            while let Some((name, path)) = stack.pop() {
                let next = refs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, r)| r.as_slice())
                    .unwrap_or_default();
                if next.iter().any(|r| r == start) {
                    let mut members = path.clone();
                    members.sort();
                    if !cycles.iter().any(|c| {
                        let mut sorted = c.clone();
                        sorted.sort();
                        sorted == members
                    }) {
                        cycles.push(path);
                    }
                    break;
                }
                for r in next {
                    if seen.insert(r.clone()) {
                        let mut longer = path.clone();
                        longer.push(r.clone());
                        stack.push((r.clone(), longer));
                    }
                }
            }
        }
        if cycles.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = cycles
            .iter()
            .map(|c| match c.as_slice() {
                [one] => format!("template {one} includes itself"),
                _ => format!(
                    "templates include each other in a cycle: {} -> {}",
                    c.join(" -> "),
                    c[0]
                ),
            })
            .collect();
        anyhow::bail!(
            "{}; tera would recurse until the stack overflows: remove the include",
            lines.join("; ")
        )
    }

    fn get(&self, name: &str) -> anyhow::Result<&str> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .ok_or_else(|| anyhow::anyhow!("template {name} is missing"))
    }
}

/// Names a template refers to with `include`, `import` or `extends` (every quoted name of the
/// tag, so `include ["a", "b"] ignore missing` gives both).
fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else {
            break;
        };
        let tag = after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
        let keyword = tag.split_whitespace().next().unwrap_or_default();
        if matches!(keyword, "include" | "import" | "extends") {
            let mut quoted = tag[keyword.len()..].split(['"', '\'']);
            // Pieces alternate: outside, inside, outside, ...
            quoted.next();
            while let Some(name) = quoted.next() {
                out.push(name.to_string());
                quoted.next();
            }
        }
        rest = &after[end + 2..];
    }
    out
}

/// Renders every file kscale would apply for `cfg`, with the server image `image`.
pub fn render_all(
    cfg: &Config,
    templates: &Templates,
    image: &str,
) -> anyhow::Result<Vec<RenderedFile>> {
    let mut ctx =
        tera::Context::from_serialize(cfg).context("cannot build the template context")?;
    let rule = adapter_rule(cfg);
    let scrape_timeout = cfg.metric.scrape_interval_seconds.clamp(1, 10);
    // `Config::validate` refuses both overflows; this keeps rendering honest without it.
    let drain_seconds = cfg
        .app
        .drain_seconds()
        .context("app: the worst-case drain (DRAIN_SECONDS) overflows; run `kscale config` to see the values")?;
    let termination_grace_seconds = cfg
        .app
        .termination_grace_seconds()
        .context("app.pre_stop_seconds: terminationGracePeriodSeconds overflows a 64-bit number")?;
    let mut k = serde_json::json!({
        "image": image,
        "drain_seconds": drain_seconds,
        "termination_grace_seconds": termination_grace_seconds,
        "target_type": if cfg.metric.profile.is_per_pod() { "AverageValue" } else { "Value" },
        "target_quantity": crate::quantity::format(cfg.metric.target),
        "scrape_job": SCRAPE_JOB,
        "scrape_timeout_seconds": scrape_timeout,
        "scrape_secret": SCRAPE_SECRET,
        "scrape_secret_key": SCRAPE_SECRET_KEY,
        "prometheus_url": cfg.monitoring.prometheus_url(),
        "series_query": rule.series_query,
        "metrics_query": rule.metrics_query,
        "server": server_context(cfg),
    });
    ctx.insert("k", &k);
    let scrape = render_one(templates, file::SCRAPE_CONFIG, &ctx)?;
    k["scrape_config"] = Value::String(scrape.clone());
    let dashboard = render_one(templates, file::GRAFANA_DASHBOARD_JSON, &ctx)?;
    serde_json::from_str::<Value>(&dashboard)
        .context("the rendered grafana-dashboard.json is not valid JSON")?;
    k["dashboard_json"] = Value::String(dashboard.clone());
    ctx.insert("k", &k);

    let mut plan: Vec<(&str, FileKind)> = vec![
        (file::MONITORING_NAMESPACE, FileKind::Object),
        (file::SCRAPE_CONFIG_SECRET, FileKind::Object),
        (file::DEPLOYMENT, FileKind::Object),
        (file::SERVICE, FileKind::Object),
        (file::PDB, FileKind::Object),
        (file::HPA, FileKind::Object),
        (file::PROMETHEUS_VALUES, FileKind::HelmValues),
        (file::PROMETHEUS_ADAPTER, FileKind::HelmValues),
        (file::PROMETHEUS_ADAPTER_CONFIG, FileKind::PrometheusConfig),
    ];
    // Grafana's sidecar is what loads the dashboard ConfigMap: without Grafana nothing reads it.
    if cfg.monitoring.grafana {
        plan.insert(6, (file::GRAFANA_DASHBOARD, FileKind::Object));
    }
    // `default` always exists and is not kscale's to create or delete.
    if cfg.app.namespace != "default" {
        plan.insert(1, (file::APP_NAMESPACE, FileKind::Object));
    }
    let mut out = vec![
        RenderedFile {
            name: file::SCRAPE_CONFIG.into(),
            kind: FileKind::PrometheusConfig,
            content: scrape,
        },
        RenderedFile {
            name: file::GRAFANA_DASHBOARD_JSON.into(),
            kind: FileKind::GrafanaDashboard,
            content: dashboard,
        },
    ];
    for (name, kind) in &plan {
        let content = render_one(templates, name, &ctx)?;
        // Every file must at least be YAML; objects must also survive the typed round trip.
        let value = crate::manifest::parse_yaml(&content)
            .with_context(|| format!("rendered {name} is not valid YAML"))?;
        if *kind == FileKind::Object {
            check_object(&value)
                .with_context(|| format!("rendered {name} is not a valid Kubernetes object"))?;
        }
        out.push(RenderedFile {
            name: name.to_string(),
            kind: *kind,
            content,
        });
    }
    Ok(out)
}

/// What the templates need to know about the server: everything comes from its preset.
fn server_context(cfg: &Config) -> Value {
    let a = &cfg.app;
    let preset = a.server.preset();
    // The startup probe polls every STARTUP_PROBE_PERIOD for the whole startup budget.
    let startup_failures = a.startup_seconds.div_ceil(STARTUP_PROBE_PERIOD).max(1);
    serde_json::json!({
        "kind": a.server.as_str(),
        "kscale": a.server == crate::config::servers::ServerKind::Kscale,
        "title": preset.title,
        "args": preset.args(a),
        "metrics_port": preset.metrics_port,
        "scrape_port_name": preset.metrics_port_name(),
        "metrics_path": preset.metrics_path,
        "live_path": preset.live_path,
        "ready_path": preset.ready_path,
        "startup_period": STARTUP_PROBE_PERIOD,
        "startup_failures": startup_failures,
        "hardened": preset.hardened,
        "placeholder_model": preset.needs_model() && a.model.trim().is_empty(),
        "env": a.env,
    })
}

/// Period of the startup probe of the real servers, in seconds: readiness is probed only once it
/// passes, so its period is added to a new pod's time to serve (5 s kept llama.cpp's new pods
/// at 9-11 s after a load step). Each poll is one GET of the server's health path.
const STARTUP_PROBE_PERIOD: u64 = 2;

fn render_one(templates: &Templates, name: &str, ctx: &tera::Context) -> anyhow::Result<String> {
    let mut tera = tera::Tera::default();
    tera.add_raw_template(name, templates.get(name)?)
        .map_err(|e| anyhow::anyhow!("template {name} does not parse: {}", tera_chain(&e)))?;
    tera.render(name, ctx)
        .map_err(|e| anyhow::anyhow!("template {name} does not render: {}", tera_chain(&e)))
}

/// tera's errors hide the useful part (the undefined variable, the line) in their sources.
fn tera_chain(e: &tera::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    parts.join(": ")
}

/// The multi-document YAML stream of every rendered file, as `kscale render` prints it.
pub fn to_stream(files: &[RenderedFile]) -> String {
    let mut s = String::new();
    for f in files {
        s.push_str(&format!(
            "---\n# Source: {} ({})\n",
            f.name,
            kind_label(f.kind)
        ));
        s.push_str(f.content.trim_end());
        s.push('\n');
    }
    s
}

fn kind_label(k: FileKind) -> &'static str {
    match k {
        FileKind::Object => "Kubernetes object",
        FileKind::HelmValues => "helm values",
        FileKind::PrometheusConfig => "Prometheus configuration",
        FileKind::GrafanaDashboard => "Grafana dashboard",
    }
}

/// Deserializes a Kubernetes object into its k8s-openapi type and back, and fails on any field
/// that did not survive: k8s-openapi ignores unknown keys, so this is what catches a misspelled
/// key before the API server (or worse, nobody) does.
pub fn check_object(value: &Value) -> anyhow::Result<()> {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        anyhow::bail!("metadata.name is missing");
    }
    let Some(known) = crate::manifest::object_kind(api_version, kind) else {
        anyhow::bail!(
            "kscale does not know {api_version}/{kind}; add it to manifest::object_kinds"
        );
    };
    let back = (known.round_trip)(value)?;
    let mut dropped = BTreeSet::new();
    missing_paths(value, &back, String::new(), &mut dropped);
    if !dropped.is_empty() {
        anyhow::bail!(
            "{} {} is unknown to {kind} (misspelled?)",
            if dropped.len() == 1 {
                "field"
            } else {
                "fields"
            },
            dropped.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(())
}

/// Paths present in `input` but absent from `back` (the typed round trip).
fn missing_paths(input: &Value, back: &Value, path: String, out: &mut BTreeSet<String>) {
    match (input, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(bv) => missing_paths(v, bv, p, out),
                    // k8s-openapi drops empty optional values on the way back; only real content counts.
                    None if !is_empty(v) => {
                        out.insert(p);
                    }
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                missing_paths(av, bv, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_from_include_import_and_extends_tags() {
        let text = "a {% include \"x.yaml\" %} {%- import 'm.tera' as m -%}\n\
                    {% include [\"y\", 'z'] ignore missing %} {{ not_a_tag }} {% if x %}{% endif %}";
        assert_eq!(references(text), ["x.yaml", "m.tera", "y", "z"]);
    }

    #[test]
    fn round_trip_names_a_misspelled_field() {
        let v = serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "x"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "targetPrt": 3000}]}
        });
        let err = check_object(&v)
            .expect_err("misspelled key must be refused")
            .to_string();
        assert!(err.contains("spec.ports[0].targetPrt"), "{err}");
    }

    #[test]
    fn round_trip_refuses_wrong_types() {
        let v = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x"}, "spec": {"replicas": "one", "selector": {}, "template": {}}
        });
        assert!(check_object(&v).is_err());
    }
}
