//! `[timeouts]`: the deadline of every wait and every external command.

use serde::{Deserialize, Serialize};

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
    /// Any other external command (version probes, `minikube profile list`, `helm repo add`,
    /// `docker image inspect`, ...): none may hang kscale for ever.
    pub command_seconds: u64,
    /// `minikube addons enable`.
    pub addon_seconds: u64,
    /// Building the server image (`docker build`, or `cargo build` of the static server).
    pub build_seconds: u64,
    /// `minikube image load` of the server image onto every node.
    pub image_load_seconds: u64,
    /// `docker push` of the server image to `--registry`.
    pub image_push_seconds: u64,
    /// `minikube delete`.
    pub delete_seconds: u64,
    /// `kubectl port-forward` saying where it listens (`kscale load` without `--url`).
    pub port_forward_seconds: u64,
    /// Each apply or delete of one object through the Kubernetes API: an API server that
    /// accepts the connection and never answers must not hold kscale.
    pub api_seconds: u64,
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
            command_seconds: 120,
            addon_seconds: 300,
            build_seconds: 1800,
            image_load_seconds: 600,
            image_push_seconds: 1200,
            delete_seconds: 300,
            port_forward_seconds: 30,
            api_seconds: 30,
        }
    }
}
