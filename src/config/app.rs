//! `[app]`: the inference server and its Kubernetes objects, and the values derived from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::servers::ServerKind;

/// The inference server deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Which inference server runs: `kscale` (the simulated model), `vllm`, `tgi`, `triton` or
    /// `llamacpp`. Decides the defaults of the port, probes, resources and metric.
    pub server: ServerKind,
    /// Image to deploy; empty: kscale builds kscale-server, or the server's pinned official image.
    pub image: String,
    /// The model the server loads (a Hugging Face id, a path in the image, a URL, a Triton model
    /// repository); not used by kscale-server.
    pub model: String,
    /// Extra container arguments, after the ones kscale sets.
    pub args: Vec<String>,
    /// Extra container environment variables.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// GPUs per pod (`nvidia.com/gpu` limit); 0 for none.
    pub gpus: u32,
    /// Seconds a new pod may take to start serving (startup probe; model download and load).
    pub startup_seconds: u64,
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
            server: ServerKind::Kscale,
            image: String::new(),
            model: String::new(),
            args: Vec::new(),
            env: BTreeMap::new(),
            gpus: 0,
            startup_seconds: 30,
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
    /// Defaults for a server: its port, image, startup budget, GPUs and resources.
    pub fn defaults_for(server: ServerKind) -> Self {
        let p = server.preset();
        let [cpu_request, cpu_limit, memory_request, memory_limit] = p.resources.map(String::from);
        Self {
            server,
            image: p.image.into(),
            port: p.port,
            startup_seconds: p.startup_seconds,
            gpus: p.gpus,
            cpu_request,
            cpu_limit,
            memory_request,
            memory_limit,
            ..Self::default()
        }
    }

    /// Worst-case seconds a SIGTERM'd pod needs (DRAIN_SECONDS): every worker busy and the queue
    /// full, plus the margin. Other servers bound their own queues, so they get the margin alone.
    /// `None` when it does not fit in a u64.
    pub fn drain_seconds(&self) -> Option<u64> {
        if self.server != ServerKind::Kscale {
            return Some(self.drain_margin_seconds);
        }
        let rounds = (u64::from(self.max_queue) + u64::from(self.workers))
            .div_ceil(u64::from(self.workers.max(1)));
        let work = (rounds as f64 * self.inference_seconds).ceil();
        if !(work.is_finite() && work >= 0.0 && work < u64::MAX as f64) {
            return None;
        }
        (work as u64).checked_add(self.drain_margin_seconds)
    }

    /// `terminationGracePeriodSeconds`: longer than the preStop pause plus the worst-case drain.
    /// `None` when it does not fit in the API's int64.
    pub fn termination_grace_seconds(&self) -> Option<u64> {
        self.pre_stop_seconds
            .checked_add(self.drain_seconds()?)?
            .checked_add(5)
            .filter(|&s| i64::try_from(s).is_ok())
    }
}
