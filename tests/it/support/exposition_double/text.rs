//! The exposition double's text: one pod's Prometheus exposition of a real inference server,
//! written from each server's own source (see `docs` and the reference on inference servers),
//! never from kscale's presets, so that a preset that misspells a name, drops a colon or sums
//! the wrong gauge is caught by the chain tests instead of being copied into the double.
//!
//! Only the exposition: no API, no model, no health path. Plain `std`, so that the control-plane
//! harness (`xtask`) serves the same text from a process of its own.

/// Which server's exposition is doubled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoubleOf {
    /// vLLM (`vllm/v1/metrics/loggers.py`, Python `prometheus_client`).
    Vllm,
    /// Text Generation Inference's router (`metrics-exporter-prometheus`).
    Tgi,
    /// Triton's metrics port (8002).
    Triton,
    /// llama.cpp's `llama-server --metrics`.
    Llamacpp,
}

impl DoubleOf {
    /// Parses `vllm`, `tgi`, `triton` or `llamacpp` (the names `app.server` uses).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "vllm" => Some(Self::Vllm),
            "tgi" => Some(Self::Tgi),
            "triton" => Some(Self::Triton),
            "llamacpp" => Some(Self::Llamacpp),
            _ => None,
        }
    }
}

/// The values one pod exposes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Values {
    /// Requests waiting for a slot (vLLM `num_requests_waiting`, TGI `tgi_queue_size`, Triton
    /// `nv_inference_pending_request_count`, llama.cpp `requests_deferred`).
    pub waiting: f64,
    /// Requests being served (vLLM `num_requests_running`, TGI `tgi_batch_current_size`,
    /// llama.cpp `requests_processing`; Triton has no such gauge).
    pub running: f64,
    /// Requests finished since start (the duration histogram's count).
    pub finished: f64,
    /// Their summed duration in seconds (Triton exposes microseconds).
    pub seconds: f64,
}

/// The `Content-Type` every one of these servers answers `/metrics` with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The model every doubled server reports.
pub const MODEL: &str = "test-double";

/// The exposition text of one pod of `server` with `v`.
pub fn exposition(server: DoubleOf, v: &Values) -> String {
    match server {
        DoubleOf::Vllm => vllm(v),
        DoubleOf::Tgi => tgi(v),
        DoubleOf::Triton => triton(v),
        DoubleOf::Llamacpp => llamacpp(v),
    }
}

/// `prometheus_client` prints floats with a decimal point (`3.0`).
fn py(x: f64) -> String {
    format!("{x:?}")
}

fn vllm(v: &Values) -> String {
    let l = format!("engine=\"0\",model_name=\"{MODEL}\"");
    let mut s = String::new();
    let gauge = |s: &mut String, name: &str, help: &str, value: f64| {
        s.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{l}}} {}\n",
            py(value)
        ));
    };
    gauge(
        &mut s,
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        v.running,
    );
    gauge(
        &mut s,
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        v.waiting,
    );
    // Same prefix, another meaning: a selector by prefix or regex would add it in.
    s.push_str(&format!(
        "# HELP vllm:num_requests_waiting_by_reason Number of requests waiting, by reason.\n\
         # TYPE vllm:num_requests_waiting_by_reason gauge\n\
         vllm:num_requests_waiting_by_reason{{{l},reason=\"capacity\"}} {}\n\
         vllm:num_requests_waiting_by_reason{{{l},reason=\"deferred\"}} 0.0\n",
        py(v.waiting)
    ));
    gauge(
        &mut s,
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        0.25,
    );
    s.push_str(&format!(
        "# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.\n\
         # TYPE vllm:num_preemptions_total counter\n\
         vllm:num_preemptions_total{{{l}}} 0.0\n"
    ));
    histogram(
        &mut s,
        "vllm:e2e_request_latency_seconds",
        "Histogram of e2e request latency in seconds.",
        &l,
        v.finished,
        v.seconds,
        &[
            "0.3", "0.5", "0.8", "1.0", "1.5", "2.0", "2.5", "5.0", "10.0", "15.0", "20.0", "30.0",
            "40.0", "50.0", "60.0", "120.0",
        ],
        true,
    );
    // The Python client also exposes the histogram's creation time.
    s.push_str(&format!(
        "# TYPE vllm:e2e_request_latency_seconds_created gauge\n\
         vllm:e2e_request_latency_seconds_created{{{l}}} 1.7650368e+09\n"
    ));
    s
}

fn tgi(v: &Values) -> String {
    let mut s = String::new();
    for (name, value) in [
        ("tgi_batch_current_size", v.running),
        ("tgi_queue_size", v.waiting),
        ("tgi_batch_current_max_tokens", 512.0),
    ] {
        s.push_str(&format!("# TYPE {name} gauge\n{name} {value}\n"));
    }
    s.push_str(
        "# TYPE tgi_request_failure counter\ntgi_request_failure{err=\"validation\"} 0\n\
         # TYPE tgi_request_count counter\n",
    );
    s.push_str(&format!("tgi_request_count {}\n", v.finished));
    histogram(
        &mut s,
        "tgi_request_duration",
        "",
        "",
        v.finished,
        v.seconds,
        &[
            "0.001", "0.0025", "0.01", "0.1", "1", "2.5", "10", "25", "60",
        ],
        false,
    );
    s
}

fn triton(v: &Values) -> String {
    let l = format!("model=\"{MODEL}\",version=\"1\"");
    let micros = (v.seconds * 1e6).round();
    let mut s = String::new();
    let metric = |s: &mut String, name: &str, kind: &str, help: &str, value: f64| {
        s.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{l}}} {value}\n"
        ));
    };
    metric(
        &mut s,
        "nv_inference_request_success",
        "counter",
        "Number of successful inference requests, all batch sizes",
        v.finished,
    );
    s.push_str(&format!(
        "# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes\n\
         # TYPE nv_inference_request_failure counter\n\
         nv_inference_request_failure{{model=\"{MODEL}\",reason=\"REJECTED\",version=\"1\"}} 0\n"
    ));
    metric(
        &mut s,
        "nv_inference_count",
        "counter",
        "Number of inferences performed (does not include cached requests)",
        v.finished,
    );
    metric(
        &mut s,
        "nv_inference_request_duration_us",
        "counter",
        "Cumulative inference request duration in microseconds (includes cached requests)",
        micros,
    );
    metric(
        &mut s,
        "nv_inference_queue_duration_us",
        "counter",
        "Cumulative inference queuing duration in microseconds (includes cached requests)",
        (micros / 2.0).round(),
    );
    metric(
        &mut s,
        "nv_inference_pending_request_count",
        "gauge",
        "Instantaneous number of pending requests awaiting execution per-model.",
        v.waiting,
    );
    s
}

fn llamacpp(v: &Values) -> String {
    let mut s = String::new();
    for (name, kind, help, value) in [
        (
            "llamacpp:prompt_tokens_total",
            "counter",
            "Number of prompt tokens processed.",
            0.0,
        ),
        (
            "llamacpp:prompt_seconds_total",
            "counter",
            "Prompt process time",
            0.0,
        ),
        (
            "llamacpp:tokens_predicted_total",
            "counter",
            "Number of generation tokens processed.",
            0.0,
        ),
        (
            "llamacpp:tokens_predicted_seconds_total",
            "counter",
            "Predict process time",
            0.0,
        ),
        (
            "llamacpp:n_decode_total",
            "counter",
            "Total number of llama_decode() calls",
            0.0,
        ),
        (
            "llamacpp:n_busy_slots_per_decode",
            "counter",
            "Average number of busy slots per llama_decode() call",
            1.5,
        ),
        (
            "llamacpp:prompt_tokens_seconds",
            "gauge",
            "Average prompt throughput in tokens/s.",
            0.0,
        ),
        (
            "llamacpp:predicted_tokens_seconds",
            "gauge",
            "Average generation throughput in tokens/s.",
            0.0,
        ),
        (
            "llamacpp:requests_processing",
            "gauge",
            "Number of requests processing.",
            v.running,
        ),
        (
            "llamacpp:requests_deferred",
            "gauge",
            "Number of requests deferred.",
            v.waiting,
        ),
    ] {
        s.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    }
    s
}

/// A histogram whose every observation lies in the first bucket at or above the mean (enough
/// for `_sum`/`_count`, which is what the mean-duration profile reads).
#[allow(clippy::too_many_arguments)]
fn histogram(
    s: &mut String,
    name: &str,
    help: &str,
    labels: &str,
    count: f64,
    sum: f64,
    bounds: &[&str],
    python: bool,
) {
    let fmt = |x: f64| if python { py(x) } else { x.to_string() };
    let mean = if count > 0.0 { sum / count } else { 0.0 };
    let sep = if labels.is_empty() { "" } else { "," };
    if !help.is_empty() {
        s.push_str(&format!("# HELP {name} {help}\n"));
    }
    s.push_str(&format!("# TYPE {name} histogram\n"));
    for b in bounds.iter().copied().chain(["+Inf"]) {
        let le: f64 = b.parse().unwrap_or(f64::INFINITY);
        let n = if le >= mean { count } else { 0.0 };
        s.push_str(&format!(
            "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {}\n",
            fmt(n)
        ));
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    s.push_str(&format!(
        "{name}_sum{braces} {}\n{name}_count{braces} {}\n",
        fmt(sum),
        fmt(count)
    ));
}
