//! The inference servers kscale deploys and scales: its own simulated model and the real servers
//! people run (vLLM, Text Generation Inference, Triton, llama.cpp's `llama-server`). Each is one
//! typed [`Preset`]: ports, health paths, the arguments that make it serve metrics, the gauges
//! and histograms it really exposes (names as read from each server's source), and the defaults
//! its scaling starts from. Everything server-specific is read from here, never from scattered
//! `if`s: rendering, validation, `kscale metrics` and `kscale load` all ask the preset.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{AppConfig, MetricProfile};

/// Which API requests use (`--api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKind {
    /// kscale-server's `POST /infer` with `{"input": ...}`.
    #[default]
    Infer,
    /// `POST /v1/completions` with `{"prompt", "max_tokens", "stream"}` (OpenAI-style).
    Completions,
    /// `POST /v1/chat/completions` with one user message (OpenAI-style).
    Chat,
}

/// Which inference server the app runs (`app.server`, `--server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ServerKind {
    /// `kscale-server`: the simulated fixed-time model (built from `server/`).
    #[default]
    Kscale,
    /// vLLM's OpenAI-compatible server.
    Vllm,
    /// Hugging Face Text Generation Inference.
    Tgi,
    /// NVIDIA Triton Inference Server.
    Triton,
    /// llama.cpp's `llama-server`.
    Llamacpp,
}

impl ServerKind {
    /// Every server, in the order the README lists them.
    pub const ALL: [ServerKind; 5] = [
        ServerKind::Kscale,
        ServerKind::Vllm,
        ServerKind::Tgi,
        ServerKind::Triton,
        ServerKind::Llamacpp,
    ];

    /// The name as `app.server` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Kscale => "kscale",
            ServerKind::Vllm => "vllm",
            ServerKind::Tgi => "tgi",
            ServerKind::Triton => "triton",
            ServerKind::Llamacpp => "llamacpp",
        }
    }

    /// Parses `app.server`'s text; the error lists the servers kscale knows.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text.trim())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "app.server: {text:?} is not a server kscale knows: allowed {}",
                    Self::ALL.map(|k| format!("{:?}", k.as_str())).join(", ")
                )
            })
    }

    /// Its description.
    pub fn preset(self) -> &'static Preset {
        match self {
            ServerKind::Kscale => &KSCALE,
            ServerKind::Vllm => &VLLM,
            ServerKind::Tgi => &TGI,
            ServerKind::Triton => &TRITON,
            ServerKind::Llamacpp => &LLAMACPP,
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request-duration histogram (or counter pair) a server exposes: the mean is
/// `rate(sum) / rate(count) * scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Duration {
    /// Series of the summed durations.
    pub sum: &'static str,
    /// Series of the request count.
    pub count: &'static str,
    /// Factor to seconds (Triton counts microseconds).
    pub scale: f64,
}

/// How a server takes its model (`app.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelArg {
    /// The server has no model to load (the simulated one).
    None,
    /// One flag followed by the model (`--model M`, `--model-id M`).
    Flag(&'static str),
    /// `--flag=M` in one argument (Triton's `--model-repository=`).
    Joined(&'static str),
    /// llama.cpp: a path (`--model`), an http(s) URL (`--model-url`) or a Hugging Face repository
    /// (`--hf-repo`).
    Llamacpp,
}

/// What kscale knows about one inference server.
#[derive(Debug)]
pub struct Preset {
    /// Which server.
    pub kind: ServerKind,
    /// Its name for people.
    pub title: &'static str,
    /// The pinned official image deployed when `app.image` is not set (empty for kscale-server,
    /// which kscale builds).
    pub image: &'static str,
    /// Default API port (container and Service).
    pub port: u16,
    /// A separate metrics port (Triton), else metrics are on the API port.
    pub metrics_port: Option<u16>,
    /// Path of the Prometheus exposition.
    pub metrics_path: &'static str,
    /// Liveness (and startup) probe path.
    pub live_path: &'static str,
    /// Readiness probe path.
    pub ready_path: &'static str,
    /// Default seconds a pod may take to start (model download and load).
    pub startup_seconds: u64,
    /// Gauges of requests being served now, summed per pod.
    pub running: &'static [&'static str],
    /// Gauges of requests waiting for a slot, summed per pod.
    pub waiting: &'static [&'static str],
    /// Other gauges a user may scale on (`metric.gauges`).
    pub other_gauges: &'static [&'static str],
    /// Its request-duration histogram, for the `mean-duration` profile.
    pub duration: Option<Duration>,
    /// The profile a new configuration starts from.
    pub default_profile: MetricProfile,
    /// Default `AverageValue` per pod of the `queue` profile.
    pub queue_target: f64,
    /// How the model is passed.
    pub model_arg: ModelArg,
    /// Whether the image runs as a non-root user with a read-only root filesystem (the official
    /// GPU servers write caches into their home and run as root).
    pub hardened: bool,
    /// Default GPUs per pod (`nvidia.com/gpu`).
    pub gpus: u32,
    /// Default requests and limits: cpu request, cpu limit, memory request, memory limit.
    pub resources: [&'static str; 4],
    /// The protocol `kscale load` speaks to it by default; `None`: one it does not speak
    /// (Triton's KServe v2).
    pub load_api: Option<ApiKind>,
}

/// kscale's own simulated model.
pub static KSCALE: Preset = Preset {
    kind: ServerKind::Kscale,
    title: "kscale-server (simulated model)",
    image: "",
    port: 3000,
    metrics_port: None,
    metrics_path: "/metrics",
    live_path: "/healthz",
    ready_path: "/readyz",
    startup_seconds: 30,
    running: &["inference_requests_in_flight"],
    waiting: &["inference_queue_depth"],
    other_gauges: &[],
    duration: Some(Duration {
        sum: "inference_request_duration_seconds_sum",
        count: "inference_request_duration_seconds_count",
        scale: 1.0,
    }),
    default_profile: MetricProfile::MeanDuration,
    queue_target: 1.0,
    model_arg: ModelArg::None,
    hardened: true,
    gpus: 0,
    resources: ["50m", "500m", "32Mi", "128Mi"],
    load_api: Some(ApiKind::Infer),
};

/// vLLM (`vllm/v1/metrics/loggers.py`): gauges labelled `model_name` and `engine`.
pub static VLLM: Preset = Preset {
    kind: ServerKind::Vllm,
    title: "vLLM",
    image: "vllm/vllm-openai:v0.11.0",
    port: 8000,
    metrics_port: None,
    metrics_path: "/metrics",
    live_path: "/health",
    ready_path: "/health",
    startup_seconds: 900,
    running: &["vllm:num_requests_running"],
    waiting: &["vllm:num_requests_waiting"],
    other_gauges: &["vllm:kv_cache_usage_perc"],
    duration: Some(Duration {
        sum: "vllm:e2e_request_latency_seconds_sum",
        count: "vllm:e2e_request_latency_seconds_count",
        scale: 1.0,
    }),
    default_profile: MetricProfile::Queue,
    queue_target: 5.0,
    model_arg: ModelArg::Flag("--model"),
    hardened: false,
    gpus: 1,
    resources: ["2", "8", "8Gi", "24Gi"],
    load_api: Some(ApiKind::Completions),
};

/// Text Generation Inference (router metrics; the gauges carry no labels).
pub static TGI: Preset = Preset {
    kind: ServerKind::Tgi,
    title: "Text Generation Inference",
    image: "ghcr.io/huggingface/text-generation-inference:3.3.6",
    port: 80,
    metrics_port: None,
    metrics_path: "/metrics",
    live_path: "/health",
    ready_path: "/health",
    startup_seconds: 900,
    running: &["tgi_batch_current_size"],
    waiting: &["tgi_queue_size"],
    other_gauges: &[],
    duration: Some(Duration {
        sum: "tgi_request_duration_sum",
        count: "tgi_request_duration_count",
        scale: 1.0,
    }),
    default_profile: MetricProfile::Queue,
    queue_target: 5.0,
    model_arg: ModelArg::Flag("--model-id"),
    hardened: false,
    gpus: 1,
    resources: ["2", "8", "8Gi", "24Gi"],
    load_api: Some(ApiKind::Completions),
};

/// Triton: metrics on their own port; pending requests per model (`model`, `version` labels).
pub static TRITON: Preset = Preset {
    kind: ServerKind::Triton,
    title: "Triton Inference Server",
    image: "nvcr.io/nvidia/tritonserver:25.09-py3",
    port: 8000,
    metrics_port: Some(8002),
    metrics_path: "/metrics",
    live_path: "/v2/health/live",
    ready_path: "/v2/health/ready",
    startup_seconds: 600,
    running: &[],
    waiting: &["nv_inference_pending_request_count"],
    other_gauges: &[],
    duration: Some(Duration {
        sum: "nv_inference_request_duration_us",
        count: "nv_inference_request_success",
        scale: 1e-6,
    }),
    default_profile: MetricProfile::Queue,
    queue_target: 5.0,
    model_arg: ModelArg::Joined("--model-repository="),
    hardened: false,
    gpus: 1,
    resources: ["2", "8", "8Gi", "24Gi"],
    load_api: None,
};

/// llama.cpp's `llama-server` (`tools/server`): label-free gauges, only with `--metrics`.
pub static LLAMACPP: Preset = Preset {
    kind: ServerKind::Llamacpp,
    title: "llama.cpp llama-server",
    image: "ghcr.io/ggml-org/llama.cpp:server-b6700",
    port: 8080,
    metrics_port: None,
    metrics_path: "/metrics",
    live_path: "/health",
    ready_path: "/health",
    startup_seconds: 300,
    running: &["llamacpp:requests_processing"],
    waiting: &["llamacpp:requests_deferred"],
    other_gauges: &["llamacpp:n_busy_slots_per_decode"],
    duration: None,
    // Busy slots plus deferred requests per pod, against the slots per pod: a queue-only
    // signal drops to 0 once there are enough pods and would scale straight back down.
    default_profile: MetricProfile::Concurrency,
    queue_target: 1.0,
    model_arg: ModelArg::Llamacpp,
    hardened: true,
    gpus: 0,
    resources: ["250m", "1", "256Mi", "1Gi"],
    load_api: Some(ApiKind::Completions),
};

/// The model text rendered when `app.model` is empty and the server needs one: `kscale render`
/// shows a complete manifest, and `up`/`deploy` refuse it.
pub const PLACEHOLDER_MODEL: &str = "PLACEHOLDER-set-app.model";

impl Preset {
    /// Name of the container port Prometheus scrapes: `metrics` when the server has a separate
    /// metrics port, else `http`.
    pub fn metrics_port_name(&self) -> &'static str {
        if self.metrics_port.is_some() {
            "metrics"
        } else {
            "http"
        }
    }

    /// Whether the server loads a model named by `app.model`.
    pub fn needs_model(&self) -> bool {
        self.model_arg != ModelArg::None
    }

    /// The gauges a scaling metric may sum on this server.
    pub fn gauges(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.running
            .iter()
            .chain(self.waiting)
            .chain(self.other_gauges)
            .copied()
    }

    /// The gauges a profile sums per pod; `Err` says why the profile does not fit this server.
    pub fn profile_gauges(&self, profile: MetricProfile) -> Result<Vec<&'static str>, String> {
        match profile {
            MetricProfile::Concurrency if self.running.is_empty() => Err(format!(
                "{} exposes no gauge of requests being served, only of waiting ones ({}): use \"queue\"",
                self.title,
                self.waiting.join(", ")
            )),
            MetricProfile::Concurrency => {
                Ok(self.running.iter().chain(self.waiting).copied().collect())
            }
            MetricProfile::Queue => Ok(self.waiting.to_vec()),
            MetricProfile::MeanDuration => Err("mean-duration is not a sum of gauges".into()),
        }
    }

    /// The profiles this server supports.
    pub fn profiles(&self) -> Vec<MetricProfile> {
        MetricProfile::ALL
            .into_iter()
            .filter(|p| match p {
                MetricProfile::MeanDuration => self.duration.is_some(),
                _ => self.profile_gauges(*p).is_ok(),
            })
            .collect()
    }

    /// Default external metric name of a profile on this server. A profile that is exactly one
    /// of the server's gauges keeps the gauge's own name, colons included.
    pub fn metric_name(&self, profile: MetricProfile) -> String {
        if self.kind == ServerKind::Kscale {
            return match profile {
                MetricProfile::MeanDuration => "inference_request_duration_seconds_per_request",
                MetricProfile::Concurrency => "inference_requests_per_pod",
                MetricProfile::Queue => "inference_queue_depth_per_pod",
            }
            .into();
        }
        match (profile, self.profile_gauges(profile).as_deref()) {
            (MetricProfile::Queue, Ok([one])) => (*one).into(),
            (MetricProfile::MeanDuration, _) => format!("{}_request_duration_seconds", self.kind),
            _ => format!("{}_requests_per_pod", self.kind),
        }
    }

    /// Default target of a profile: seconds (mean-duration) or requests per pod.
    pub fn metric_target(&self, profile: MetricProfile, app: &AppConfig) -> f64 {
        match profile {
            MetricProfile::MeanDuration if self.kind == ServerKind::Kscale => 12.0,
            MetricProfile::MeanDuration => 30.0,
            // One request per slot: above it, requests wait.
            MetricProfile::Concurrency if self.kind == ServerKind::Llamacpp => {
                f64::from(app.workers.max(1))
            }
            MetricProfile::Concurrency => 1.0,
            MetricProfile::Queue => self.queue_target,
        }
    }

    /// The container's arguments (none for kscale-server, which reads its environment):
    /// listening address and port, metrics, the model, then `app.args`.
    pub fn args(&self, app: &AppConfig) -> Vec<String> {
        let port = app.port.to_string();
        let model = if app.model.trim().is_empty() {
            PLACEHOLDER_MODEL.to_string()
        } else {
            app.model.trim().to_string()
        };
        let mut args: Vec<String> = match self.kind {
            ServerKind::Kscale => Vec::new(),
            ServerKind::Vllm => vec!["--host".into(), "0.0.0.0".into(), "--port".into(), port],
            ServerKind::Tgi => vec!["--hostname".into(), "0.0.0.0".into(), "--port".into(), port],
            ServerKind::Triton => vec![
                "tritonserver".into(),
                format!("--http-port={port}"),
                "--grpc-port=8001".into(),
                format!("--metrics-port={}", self.metrics_port.unwrap_or(8002)),
                "--allow-metrics=true".into(),
            ],
            ServerKind::Llamacpp => vec![
                "--host".into(),
                "0.0.0.0".into(),
                "--port".into(),
                port,
                // Without it /metrics answers 501.
                "--metrics".into(),
                "--parallel".into(),
                app.workers.max(1).to_string(),
            ],
        };
        match self.model_arg {
            ModelArg::None => {}
            ModelArg::Flag(flag) => args.extend([flag.to_string(), model]),
            ModelArg::Joined(prefix) => args.push(format!("{prefix}{model}")),
            ModelArg::Llamacpp => {
                let flag = if model.starts_with("http://") || model.starts_with("https://") {
                    "--model-url"
                } else if model.starts_with('/') || model.ends_with(".gguf") {
                    "--model"
                } else {
                    "--hf-repo"
                };
                args.extend([flag.to_string(), model]);
            }
        }
        args.extend(app.args.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_list_the_choices() {
        for k in ServerKind::ALL {
            assert_eq!(ServerKind::parse(k.as_str()).expect("known"), k);
            assert_eq!(k.preset().kind, k);
            let json = serde_json::to_string(&k).expect("serializes");
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        let err = ServerKind::parse("ollama")
            .expect_err("unknown")
            .to_string();
        assert!(
            err.contains("\"ollama\"") && err.contains("\"llamacpp\""),
            "{err}"
        );
    }

    #[test]
    fn every_server_supports_its_default_profile_and_names_its_metric() {
        for k in ServerKind::ALL {
            let p = k.preset();
            assert!(p.profiles().contains(&p.default_profile), "{k}");
            assert!(!p.waiting.is_empty(), "{k} has a queue gauge");
            assert!(p.metrics_path.starts_with('/') && p.ready_path.starts_with('/'));
            assert_eq!(p.image.is_empty(), k == ServerKind::Kscale, "{k}");
        }
        assert_eq!(
            VLLM.metric_name(MetricProfile::Queue),
            "vllm:num_requests_waiting"
        );
        assert_eq!(
            LLAMACPP.metric_name(MetricProfile::Concurrency),
            "llamacpp_requests_per_pod"
        );
        assert!(
            LLAMACPP
                .profile_gauges(MetricProfile::MeanDuration)
                .is_err()
        );
        assert!(!LLAMACPP.profiles().contains(&MetricProfile::MeanDuration));
        let err = TRITON
            .profile_gauges(MetricProfile::Concurrency)
            .expect_err("triton has no running gauge");
        assert!(err.contains("queue"), "{err}");
    }

    #[test]
    fn llamacpp_args_serve_metrics_and_pick_the_model_flag() {
        let mut app = AppConfig::defaults_for(ServerKind::Llamacpp);
        app.workers = 2;
        for (model, flag) in [
            ("/models/tiny.gguf", "--model"),
            ("https://example.com/m.gguf", "--model-url"),
            ("ggml-org/gemma-3-1b-it-GGUF", "--hf-repo"),
        ] {
            app.model = model.into();
            let args = LLAMACPP.args(&app);
            assert!(args.contains(&"--metrics".to_string()), "{args:?}");
            let at = args.iter().position(|a| a == flag).expect(flag);
            assert_eq!(args[at + 1], model);
            let par = args
                .iter()
                .position(|a| a == "--parallel")
                .expect("parallel");
            assert_eq!(args[par + 1], "2");
        }
        app.args = vec!["--ctx-size".into(), "512".into()];
        assert_eq!(LLAMACPP.args(&app).last().map(String::as_str), Some("512"));
    }

    #[test]
    fn a_missing_model_renders_the_named_placeholder() {
        let app = AppConfig::defaults_for(ServerKind::Vllm);
        let args = VLLM.args(&app);
        assert!(args.contains(&PLACEHOLDER_MODEL.to_string()), "{args:?}");
        let triton = TRITON.args(&AppConfig::defaults_for(ServerKind::Triton));
        assert!(
            triton.contains(&format!("--model-repository={PLACEHOLDER_MODEL}")),
            "{triton:?}"
        );
        assert!(KSCALE.args(&AppConfig::default()).is_empty());
    }
}
