//! `[monitoring]`: kube-prometheus-stack and prometheus-adapter.

use serde::{Deserialize, Serialize};

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
