//! Where the cluster's parts come from when the defaults (minikube's images, the chart
//! repository, the addon's pinned image) are out of reach: air-gapped machines, mirrors, local
//! builds. Turns `cluster.*` and `monitoring.*` settings into minikube and helm arguments, and
//! checks them before anything runs.

use std::path::{Path, PathBuf};

use crate::config::{Config, Invalid};

/// The kube-controller-manager setting behind `cluster.hpa_sync_period_seconds`, as minikube's
/// `--extra-config` names it.
const HPA_SYNC_PERIOD_EXTRA_CONFIG: &str =
    "controller-manager.horizontal-pod-autoscaler-sync-period";

/// `minikube start` flags kscale sets from its own keys: refused in `cluster.start_flags`.
const OWNED_START_FLAGS: &[(&str, &str)] = &[
    ("--nodes", "cluster.nodes"),
    ("-n", "cluster.nodes"),
    ("--memory", "cluster.memory_mb"),
    ("--cpus", "cluster.cpus"),
    ("--driver", "cluster.driver"),
    ("--vm-driver", "cluster.driver"),
    ("--profile", "cluster.profile (or --profile)"),
    ("-p", "cluster.profile (or --profile)"),
    ("--kubernetes-version", "cluster.kubernetes_version"),
    ("--base-image", "cluster.base_image"),
    ("--container-runtime", "cluster.container_runtime"),
    ("--cni", "cluster.cni"),
    (
        "--wait",
        "timeouts.cluster_seconds (kscale waits for every component)",
    ),
    ("--wait-timeout", "timeouts.cluster_seconds"),
];

/// The two charts kscale installs, by chart name.
pub const CHARTS: [&str; 2] = ["kube-prometheus-stack", "prometheus-adapter"];

/// An image reference split as minikube's addon overrides want it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// e.g. `registry.k8s.io`.
    pub registry: String,
    /// e.g. `metrics-server/metrics-server:v0.8.0`.
    pub repository_and_tag: String,
}

/// Splits `REGISTRY/REPOSITORY:TAG`; `None` unless all three parts are there.
pub fn parse_image(reference: &str) -> Option<ImageRef> {
    let (registry, rest) = reference.split_once('/')?;
    let registry_like = registry.contains('.') || registry.contains(':') || registry == "localhost";
    let (_, tag) = rest.rsplit_once(':')?;
    (registry_like && !rest.is_empty() && !tag.is_empty() && !tag.contains('/')).then(|| ImageRef {
        registry: registry.to_string(),
        repository_and_tag: rest.to_string(),
    })
}

/// The extra `minikube start` flags from `cluster.*` (after nodes, memory, cpus, driver).
pub fn minikube_start_flags(cfg: &Config) -> Vec<String> {
    let c = &cfg.cluster;
    let mut flags = Vec::new();
    for (flag, value) in [
        ("--base-image", &c.base_image),
        ("--container-runtime", &c.container_runtime),
        ("--cni", &c.cni),
    ] {
        if !value.is_empty() {
            flags.push(format!("{flag}={value}"));
        }
    }
    flags.push(format!(
        "--extra-config={HPA_SYNC_PERIOD_EXTRA_CONFIG}={}s",
        c.hpa_sync_period_seconds
    ));
    flags.extend(c.start_flags.split_whitespace().map(str::to_string));
    flags
}

/// `minikube addons enable metrics-server` flags for `cluster.metrics_server_image`.
pub fn metrics_server_addon_flags(cfg: &Config) -> Vec<String> {
    match parse_image(&cfg.cluster.metrics_server_image) {
        Some(image) => vec![
            format!("--images=MetricsServer={}", image.repository_and_tag),
            format!("--registries=MetricsServer={}", image.registry),
        ],
        None => Vec::new(),
    }
}

/// How helm finds one chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartRef {
    /// `REPO/CHART` from the repository kscale adds, with `--version`.
    Repository(String),
    /// A packaged chart file (its version is in its name and checked against the pin).
    File(PathBuf),
    /// `oci://.../CHART`, with `--version`.
    Oci(String),
}

impl ChartRef {
    /// The chart argument of `helm upgrade --install`.
    pub fn arg(&self) -> String {
        match self {
            ChartRef::Repository(r) | ChartRef::Oci(r) => r.clone(),
            ChartRef::File(p) => p.display().to_string(),
        }
    }

    /// Whether the repository must be added first.
    pub fn needs_repository(&self) -> bool {
        matches!(self, ChartRef::Repository(_))
    }
}

/// The packaged chart file of `chart` at `version` inside a chart folder.
pub fn chart_file(folder: &Path, chart: &str, version: &str) -> PathBuf {
    folder.join(format!("{chart}-{version}.tgz"))
}

/// Where helm gets `chart` at `version` from.
pub fn chart_ref(cfg: &Config, chart: &str, version: &str) -> ChartRef {
    let source = cfg.monitoring.chart_source.trim();
    if source.is_empty() {
        ChartRef::Repository(format!("{}/{chart}", cfg.monitoring.repo_name))
    } else if let Some(rest) = source.strip_prefix("oci://") {
        ChartRef::Oci(format!("oci://{}/{chart}", rest.trim_end_matches('/')))
    } else {
        ChartRef::File(chart_file(Path::new(source), chart, version))
    }
}

/// The extra values file of a release, if set.
pub fn extra_values<'c>(cfg: &'c Config, chart: &str) -> Option<&'c str> {
    let m = &cfg.monitoring;
    let path = match chart {
        "kube-prometheus-stack" => &m.prometheus_values,
        _ => &m.adapter_values,
    };
    (!path.trim().is_empty()).then_some(path.as_str())
}

/// Deep-merges `over` into `base` as helm merges values files: maps key by key, anything else
/// (lists included) replaced.
pub fn merge_values(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_values(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Every problem with the source settings, by key.
pub fn validate(cfg: &Config) -> Vec<Invalid> {
    let mut errs = Vec::new();
    let mut bad = |key: &str, message: String| {
        errs.push(Invalid {
            key: key.into(),
            message,
        })
    };
    let c = &cfg.cluster;
    for token in c.start_flags.split_whitespace() {
        let flag = token.split('=').next().unwrap_or(token);
        if !token.starts_with('-') {
            bad(
                "cluster.start_flags",
                format!("{token:?} is not a flag: give flags only, as --name=value"),
            );
        } else if flag == "--extra-config"
            && token
                .split_once('=')
                .is_some_and(|(_, v)| v.starts_with(HPA_SYNC_PERIOD_EXTRA_CONFIG))
        {
            bad(
                "cluster.start_flags",
                format!("{token} is set by kscale: use cluster.hpa_sync_period_seconds instead"),
            );
        } else if let Some((_, key)) = OWNED_START_FLAGS.iter().find(|(f, _)| *f == flag) {
            bad(
                "cluster.start_flags",
                format!("{flag} is set by kscale: use {key} instead"),
            );
        }
    }
    if !c.metrics_server_image.is_empty() && parse_image(&c.metrics_server_image).is_none() {
        bad(
            "cluster.metrics_server_image",
            format!(
                "{:?} must be a full reference REGISTRY/REPOSITORY:TAG, e.g. registry.k8s.io/metrics-server/metrics-server:v0.8.0",
                c.metrics_server_image
            ),
        );
    }
    let cni_is_file = c.cni.contains('/') || c.cni.ends_with(".yaml") || c.cni.ends_with(".yml");
    if cni_is_file && !Path::new(&c.cni).is_file() {
        bad(
            "cluster.cni",
            format!(
                "the CNI manifest {:?} does not exist (give a plugin name such as flannel, or an existing file)",
                c.cni
            ),
        );
    }
    let m = &cfg.monitoring;
    let source = m.chart_source.trim();
    if !source.is_empty() && !source.starts_with("oci://") {
        let folder = Path::new(source);
        if !folder.is_dir() {
            bad(
                "monitoring.chart_source",
                format!(
                    "{source:?} is neither a folder of packaged charts nor an oci:// reference"
                ),
            );
        } else {
            for (chart, version) in [
                (CHARTS[0], &m.prometheus_chart_version),
                (CHARTS[1], &m.adapter_chart_version),
            ] {
                let file = chart_file(folder, chart, version);
                if !file.is_file() {
                    bad(
                        "monitoring.chart_source",
                        format!(
                            "{} is missing: the folder must hold the pinned chart (e.g. `helm pull prometheus-community/{chart} --version {version}` there)",
                            file.display()
                        ),
                    );
                }
            }
        }
    }
    for (key, path) in [
        ("monitoring.prometheus_values", &m.prometheus_values),
        ("monitoring.adapter_values", &m.adapter_values),
    ] {
        if path.trim().is_empty() {
            continue;
        }
        match std::fs::read_to_string(path) {
            Err(e) => bad(key, format!("cannot read {path:?}: {e}")),
            Ok(text) => match crate::manifest::parse_yaml(&text) {
                Ok(serde_json::Value::Object(_)) | Ok(serde_json::Value::Null) => {}
                Ok(_) => bad(
                    key,
                    format!("{path:?} must hold a YAML mapping of helm values"),
                ),
                Err(e) => bad(key, format!("{path:?} is not valid YAML: {e:#}")),
            },
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_and_messages(cfg: &Config) -> Vec<(String, String)> {
        validate(cfg)
            .into_iter()
            .map(|i| (i.key, i.message))
            .collect()
    }

    #[test]
    fn image_references_split_into_registry_and_repository() {
        assert_eq!(
            parse_image("registry.k8s.io/metrics-server/metrics-server:v0.8.0"),
            Some(ImageRef {
                registry: "registry.k8s.io".into(),
                repository_and_tag: "metrics-server/metrics-server:v0.8.0".into()
            })
        );
        assert_eq!(
            parse_image("localhost:5000/ms:1").map(|i| i.registry),
            Some("localhost:5000".into())
        );
        for bad in [
            "metrics-server:v0.8.0",
            "metrics-server/metrics-server:v0.8.0",
            "registry.k8s.io/metrics-server",
            "registry.k8s.io/ms:",
        ] {
            assert_eq!(parse_image(bad), None, "{bad}");
        }
    }

    #[test]
    fn start_flags_owned_by_kscale_are_refused_with_the_key_to_use() {
        let mut cfg = Config::default();
        cfg.cluster.start_flags = "--preload=false --memory=2000 force --extra-config=controller-manager.horizontal-pod-autoscaler-sync-period=1s".into();
        let found = keys_and_messages(&cfg);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].1.contains("use cluster.memory_mb"), "{found:?}");
        assert!(found[1].1.contains("\"force\" is not a flag"), "{found:?}");
        assert!(
            found[2].1.contains("use cluster.hpa_sync_period_seconds"),
            "{found:?}"
        );
        // Other kube-controller-manager settings stay the user's.
        cfg.cluster.start_flags =
            "--preload=false --force --extra-config=controller-manager.v=2".into();
        cfg.cluster.base_image = "kscale.local/kit/kicbase:1".into();
        cfg.cluster.cni = "flannel".into();
        assert!(validate(&cfg).is_empty());
        assert_eq!(
            minikube_start_flags(&cfg),
            [
                "--base-image=kscale.local/kit/kicbase:1",
                "--cni=flannel",
                "--extra-config=controller-manager.horizontal-pod-autoscaler-sync-period=2s",
                "--preload=false",
                "--force",
                "--extra-config=controller-manager.v=2"
            ]
        );
    }

    #[test]
    fn a_chart_folder_must_hold_both_pinned_charts() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.monitoring.chart_source = dir.path().display().to_string();
        let found = keys_and_messages(&cfg);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0]
                .1
                .contains("kube-prometheus-stack-88.5.3.tgz is missing")
        );
        assert!(
            found[1]
                .1
                .contains("prometheus-adapter-5.3.0.tgz is missing")
        );
        for chart in [
            "kube-prometheus-stack-88.5.3.tgz",
            "prometheus-adapter-5.3.0.tgz",
        ] {
            std::fs::write(dir.path().join(chart), b"x").unwrap();
        }
        assert!(validate(&cfg).is_empty());
        assert_eq!(
            chart_ref(&cfg, "prometheus-adapter", "5.3.0"),
            ChartRef::File(dir.path().join("prometheus-adapter-5.3.0.tgz"))
        );
        cfg.monitoring.chart_source = "oci://ghcr.io/prometheus-community/charts/".into();
        assert!(validate(&cfg).is_empty());
        assert_eq!(
            chart_ref(&cfg, "prometheus-adapter", "5.3.0").arg(),
            "oci://ghcr.io/prometheus-community/charts/prometheus-adapter"
        );
        cfg.monitoring.chart_source = dir.path().join("absent").display().to_string();
        assert_eq!(validate(&cfg).len(), 1);
    }

    #[test]
    fn values_files_must_exist_and_hold_a_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.yaml");
        std::fs::write(&list, "- a\n- b\n").unwrap();
        let mut cfg = Config::default();
        cfg.monitoring.prometheus_values = list.display().to_string();
        cfg.monitoring.adapter_values = dir.path().join("absent.yaml").display().to_string();
        let found = keys_and_messages(&cfg);
        assert_eq!(found[0].0, "monitoring.prometheus_values");
        assert!(found[0].1.contains("must hold a YAML mapping"));
        assert_eq!(found[1].0, "monitoring.adapter_values");
        assert!(found[1].1.contains("cannot read"));
    }

    #[test]
    fn values_merge_as_helm_merges_them() {
        let mut base = serde_json::json!({"a": {"b": 1, "c": [1, 2]}, "d": true});
        merge_values(
            &mut base,
            serde_json::json!({"a": {"c": [3], "e": "x"}, "d": false}),
        );
        assert_eq!(
            base,
            serde_json::json!({"a": {"b": 1, "c": [3], "e": "x"}, "d": false})
        );
    }
}
