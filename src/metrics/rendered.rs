//! The adapter rule and scrape job as `kscale render` produces them.
//!
//! Stand-in until `kscale::render::{adapter_rule, scrape_job_yaml}` lands on main: same strings,
//! same shapes; `kscale metrics` and the pipeline harness switch to those functions on merge.

use crate::config::{Config, MetricProfile};

/// The external rule put into prometheus-adapter's values (`rules.external[0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterRule {
    /// `seriesQuery`.
    pub series_query: String,
    /// `metricsQuery`, with the adapter's `<<…>>` placeholders.
    pub metrics_query: String,
    /// `name.as`: the external metric name.
    pub name: String,
}

/// Name of the Prometheus scrape job of the app pods.
pub const JOB: &str = "kscale-inference";

/// The adapter rule for the configured metric profile.
pub fn adapter_rule(cfg: &Config) -> anyhow::Result<AdapterRule> {
    let w = cfg.metric.rate_window_seconds;
    let (series_query, metrics_query) = match cfg.metric.profile {
        MetricProfile::MeanDuration => (
            format!("inference_request_duration_seconds_count{{job=\"{JOB}\"}}"),
            format!(
                "(sum(rate(inference_request_duration_seconds_sum{{job=\"{JOB}\",<<.LabelMatchers>>}}[{w}s])) by (<<.GroupBy>>) / sum(rate(inference_request_duration_seconds_count{{job=\"{JOB}\",<<.LabelMatchers>>}}[{w}s])) by (<<.GroupBy>>)) > 0 or vector(0)"
            ),
        ),
        MetricProfile::Concurrency => (
            format!("inference_requests_in_flight{{job=\"{JOB}\"}}"),
            format!(
                "sum(inference_requests_in_flight{{job=\"{JOB}\",<<.LabelMatchers>>}} + inference_queue_depth{{job=\"{JOB}\",<<.LabelMatchers>>}}) by (<<.GroupBy>>) or vector(0)"
            ),
        ),
    };
    Ok(AdapterRule {
        series_query,
        metrics_query,
        name: cfg.metric.name.clone(),
    })
}

/// The Prometheus scrape job (a YAML list with one job) discovering the app pods.
pub fn scrape_job_yaml(cfg: &Config) -> anyhow::Result<String> {
    Ok(format!(
        r#"- job_name: {JOB}
  scrape_interval: {si}s
  metrics_path: /metrics
  kubernetes_sd_configs:
    - role: pod
      namespaces:
        names:
          - {ns}
  relabel_configs:
    - source_labels: [__meta_kubernetes_pod_label_app]
      action: keep
      regex: {app}
    - source_labels: [__meta_kubernetes_pod_container_port_name]
      action: keep
      regex: http
    - source_labels: [__meta_kubernetes_namespace]
      action: replace
      target_label: namespace
    - source_labels: [__meta_kubernetes_pod_name]
      action: replace
      target_label: pod
"#,
        si = cfg.metric.scrape_interval_seconds,
        ns = cfg.app.namespace,
        app = cfg.app.name,
    ))
}
