//! `[cluster]`: the minikube cluster.

use serde::{Deserialize, Serialize};

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
    /// How often the HPA controller re-reads the metric and decides, in seconds
    /// (kube-controller-manager's `--horizontal-pod-autoscaler-sync-period`, set on the cluster
    /// kscale creates). Kubernetes' default is 15 s; kscale's 2 s lets a load step reach a
    /// decision within a scrape interval or two. A cluster given by `--context` keeps its own.
    pub hpa_sync_period_seconds: u32,
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
            hpa_sync_period_seconds: 2,
            metrics_server_image: String::new(),
        }
    }
}
