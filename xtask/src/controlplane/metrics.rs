//! The metric chain of the harness: a real Prometheus whose scrape targets come from files (the
//! supervisor writes one per app pod, labelled `namespace` and `pod` as pod discovery would), and
//! a real prometheus-adapter registered with the aggregation layer as
//! `v1beta1.external.metrics.k8s.io`, reached through a selector-less Service whose endpoint is
//! the namespace address (aggregator routing goes to endpoints, and loopback is refused there).

use std::path::{Path, PathBuf};

use super::Layout;
use super::netns::net;

/// Prometheus listens here (inside the namespace, reachable from the host).
pub const PROMETHEUS_PORT: u16 = 9090;
/// prometheus-adapter's secure port.
pub const ADAPTER_PORT: u16 = 6444;
/// The scrape job of the file-based targets; the same name as kscale's rendered scrape job
/// (`SCRAPE_JOB` in src/render.rs), so kscale's adapter rules select these series.
pub const SCRAPE_JOB: &str = "kscale-inference";
/// Namespace of the adapter's Service and Endpoints.
pub const HARNESS_NAMESPACE: &str = "kscale-harness";

/// The Prometheus URL, as the adapter and the host see it.
pub fn prometheus_url() -> String {
    format!("http://{}:{PROMETHEUS_PORT}", net().ns_ip)
}

/// Folder of Prometheus' file-based target lists (`*.json`), re-read within a second or so.
pub fn targets_dir(layout: &Layout) -> PathBuf {
    layout.state.join("prometheus").join("targets")
}

/// Writes the Prometheus configuration and returns its path.
pub fn write_prometheus_config(layout: &Layout) -> anyhow::Result<PathBuf> {
    let dir = layout.state.join("prometheus");
    let targets = targets_dir(layout);
    std::fs::create_dir_all(&targets)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", targets.display()))?;
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: {SCRAPE_JOB}
    file_sd_configs:
      - files: ['{}/*.json']
        refresh_interval: 1s
",
        targets.display()
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Prometheus' command line.
pub fn prometheus_args(layout: &Layout, config: &Path) -> Vec<String> {
    vec![
        format!("--config.file={}", config.display()),
        format!(
            "--storage.tsdb.path={}",
            layout.state.join("prometheus").join("data").display()
        ),
        format!("--web.listen-address={}:{PROMETHEUS_PORT}", net().ns_ip),
        "--web.enable-lifecycle".into(),
    ]
}

/// A rule set that serves the external metrics group before kscale's rules are loaded: the
/// adapter serves `external.metrics.k8s.io` only when it has at least one external rule.
const DEFAULT_ADAPTER_CONFIG: &str = r#"externalRules:
  - seriesQuery: 'up{job="kscale-inference",namespace!=""}'
    resources:
      overrides:
        namespace: {resource: namespace}
    name: {matches: "^up$", as: "kscale_harness_targets_up"}
    metricsQuery: 'sum(up{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;

/// The adapter configuration to use: `custom` when given, else the harness default written
/// into the state folder.
pub fn adapter_config(layout: &Layout, custom: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = custom {
        if !path.is_file() {
            anyhow::bail!("adapter config {} does not exist", path.display());
        }
        return std::fs::canonicalize(path)
            .map_err(|e| anyhow::anyhow!("cannot resolve {}: {e}", path.display()));
    }
    let dir = layout.state.join("adapter");
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("config.yaml");
    std::fs::write(&path, DEFAULT_ADAPTER_CONFIG)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// prometheus-adapter's command line.
pub fn adapter_args(layout: &Layout, config: &Path) -> Vec<String> {
    let kubeconfig = layout.kubeconfig().to_string_lossy().into_owned();
    vec![
        format!("--lister-kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
        format!("--secure-port={ADAPTER_PORT}"),
        format!(
            "--cert-dir={}",
            layout.state.join("adapter").join("certs").display()
        ),
        format!("--prometheus-url={}/", prometheus_url()),
        "--metrics-relist-interval=5s".into(),
        format!("--config={}", config.display()),
    ]
}

/// Namespace and Service name of the Prometheus that kube-prometheus-stack (release
/// `prometheus`) would install: kscale queries Prometheus through the API server's service proxy
/// at `<service>:9090`, so the harness gives that Service an endpoint on the real Prometheus.
pub const PROMETHEUS_SERVICE: (&str, &str) =
    ("monitoring", "prometheus-kube-prometheus-prometheus");

/// The placeholder pod that stands for the Prometheus process in the API.
pub const PROMETHEUS_POD: &str = "prometheus-harness";

/// The objects the prometheus-adapter and kube-prometheus-stack charts would create for the
/// aggregation layer and the service proxy, pointing at the harness processes.
pub fn adapter_manifest() -> String {
    let (prom_ns, prom_svc) = PROMETHEUS_SERVICE;
    let node = super::cluster::NODES[0];
    let ns_ip = &net().ns_ip;
    format!(
        "apiVersion: v1
kind: Namespace
metadata:
  name: {HARNESS_NAMESPACE}
---
apiVersion: v1
kind: Namespace
metadata:
  name: {prom_ns}
---
apiVersion: v1
kind: Service
metadata:
  name: {prom_svc}
  namespace: {prom_ns}
spec:
  ports:
  - name: http-web
    port: {PROMETHEUS_PORT}
    targetPort: {PROMETHEUS_PORT}
---
# The service proxy only forwards to addresses that belong to a Pod with that IP: a host-network
# pod on a kwok node gets the node address, which is where the real Prometheus listens.
apiVersion: v1
kind: Pod
metadata:
  name: {PROMETHEUS_POD}
  namespace: {prom_ns}
  labels:
    app: {PROMETHEUS_POD}
spec:
  hostNetwork: true
  nodeName: {node}
  containers:
  - name: prometheus
    image: kscale-harness.invalid/prometheus:process
---
apiVersion: v1
kind: Endpoints
metadata:
  name: {prom_svc}
  namespace: {prom_ns}
subsets:
- addresses:
  - ip: {ns_ip}
    targetRef:
      kind: Pod
      name: {PROMETHEUS_POD}
      namespace: {prom_ns}
  ports:
  - name: http-web
    port: {PROMETHEUS_PORT}
---
apiVersion: v1
kind: Service
metadata:
  name: prometheus-adapter
  namespace: {HARNESS_NAMESPACE}
spec:
  ports:
  - name: https
    port: 443
    targetPort: {ADAPTER_PORT}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: prometheus-adapter
  namespace: {HARNESS_NAMESPACE}
subsets:
- addresses:
  - ip: {ns_ip}
  ports:
  - name: https
    port: {ADAPTER_PORT}
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1beta1.external.metrics.k8s.io
spec:
  group: external.metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  insecureSkipTLSVerify: true
  service:
    name: prometheus-adapter
    namespace: {HARNESS_NAMESPACE}
    port: 443
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_reads_targets_from_the_harness_folder_under_kscales_job_name() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout {
            state: dir.path().to_path_buf(),
            cache: dir.path().join("cache"),
        };
        let path = write_prometheus_config(&layout).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains("job_name: kscale-inference"));
        assert!(text.contains(&format!("{}/*.json", targets_dir(&layout).display())));
        assert!(targets_dir(&layout).is_dir());
    }

    #[test]
    fn the_adapter_endpoint_is_the_namespace_address_not_loopback() {
        let manifest = adapter_manifest();
        assert!(manifest.contains(&format!("- ip: {}", net().ns_ip)));
        assert!(!manifest.contains("127.0.0.1"));
        assert!(manifest.contains("name: v1beta1.external.metrics.k8s.io"));
        assert!(manifest.contains("name: prometheus-kube-prometheus-prometheus"));
        assert!(manifest.contains("hostNetwork: true"));
    }
}
