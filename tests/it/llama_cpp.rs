//! The kit's llama.cpp image for real: Debian's `llama-server` with the kit's tiny model, run in
//! the kit's Docker engine the way kscale's Deployment runs it (a non-root user, a read-only root
//! filesystem, no capabilities, one CPU, `--threads 1`). It must load the model, complete a
//! request to exactly `max_tokens` tokens, and report the two gauges the HPA scales on, with a
//! deferred request once more clients than slots ask at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::real_minikube::kit::Kit;
use crate::support::{free_port, http_request};

/// Tokens per completion: with the kit's model about a second of one core (see the kit's
/// `gguf::TINY`), long enough for four clients to queue behind one slot.
const MAX_TOKENS: u64 = 256;

/// Removes the container when dropped, so a failing test leaves nothing running.
struct Container<'a> {
    kit: &'a Kit,
    name: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        self.kit.run("docker", &["rm", "--force", &self.name]);
    }
}

impl Container<'_> {
    fn logs(&self) -> String {
        self.kit
            .run("docker", &["logs", "--tail", "30", &self.name])
    }
}

/// One request with a deadline; (status, body).
async fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    match tokio::time::timeout(
        Duration::from_secs(120),
        http_request(addr, method, path, body),
    )
    .await
    {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => (0, format!("{e:#}")),
        Err(_) => (0, format!("{method} {path}: no answer within 120 s")),
    }
}

fn completion_body(prompt: &str) -> String {
    // Random weights may pick the end-of-sequence token at any step: `ignore_eos` keeps the
    // length exactly `max_tokens`, so every request costs the same.
    serde_json::json!({
        "prompt": prompt,
        "max_tokens": MAX_TOKENS,
        "ignore_eos": true,
    })
    .to_string()
}

/// Checks a completion answer; returns the text's length in bytes.
fn check_completion(status: u16, body: &str) -> usize {
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(body).expect("a JSON answer");
    assert_eq!(
        answer["usage"]["completion_tokens"].as_u64(),
        Some(MAX_TOKENS),
        "{body}"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "length", "{body}");
    let text = answer["choices"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no choices[0].text in {body}"));
    assert!(!text.is_empty(), "{body}");
    text.len()
}

/// The value of an unlabelled gauge in a Prometheus text exposition.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_llama_server_completes_and_reports_deferred_requests() {
    let Some(kit) = Kit::load() else {
        return;
    };
    let (image, model) = (kit.llama_image(), kit.llama_model());
    let port = free_port().expect("a free port");
    let container = Container {
        kit: &kit,
        name: format!("kscale-llama-test-{}", std::process::id()),
    };
    let publish = format!("127.0.0.1:{port}:8080");
    kit.ok(
        "docker",
        &[
            "run",
            "--detach",
            "--name",
            &container.name,
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--cpus",
            "1",
            "--publish",
            &publish,
            &image,
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--metrics",
            "--model",
            &model,
            "--parallel",
            "1",
            "--threads",
            "1",
        ],
        Duration::from_secs(60),
    );
    let user = kit.ok(
        "docker",
        &["inspect", "--format", "{{.Config.User}}", &image],
        Duration::from_secs(30),
    );
    assert_eq!(user.trim(), "65532:65532", "the image runs as non-root");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();

    // 503 while the model loads, then 200.
    let started = Instant::now();
    loop {
        let (status, body) = request(addr, "GET", "/health", None).await;
        if status == 200 {
            break;
        }
        let last = format!("{status} {body}");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "/health did not answer 200 within 60 s (last: {last}); logs:\n{}",
            container.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "llama-server healthy after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let body = completion_body("kscale scales on llama.cpp's queue");
    let t = Instant::now();
    let (status, answer) = request(addr, "POST", "/v1/completions", Some(&body)).await;
    let latency = t.elapsed();
    let bytes = check_completion(status, &answer);
    eprintln!(
        "one completion of {MAX_TOKENS} tokens ({bytes} bytes of text): {:.2} s",
        latency.as_secs_f64()
    );

    let (status, metrics) = request(addr, "GET", "/metrics", None).await;
    assert_eq!(status, 200, "{metrics}");
    for name in ["llamacpp:requests_processing", "llamacpp:requests_deferred"] {
        assert!(gauge(&metrics, name).is_some(), "no {name} in:\n{metrics}");
    }

    // Four clients, one slot: three wait, and the deferred gauge says so while they do.
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let body = completion_body(&format!("client {i} asks"));
            tokio::spawn(async move { request(addr, "POST", "/v1/completions", Some(&body)).await })
        })
        .collect();
    let t = Instant::now();
    let mut most_deferred = 0.0f64;
    let mut busy = 0.0f64;
    while t.elapsed() < Duration::from_secs(30) && most_deferred < 1.0 {
        let (status, metrics) = request(addr, "GET", "/metrics", None).await;
        if status == 200 {
            most_deferred =
                most_deferred.max(gauge(&metrics, "llamacpp:requests_deferred").unwrap_or(0.0));
            busy = busy.max(gauge(&metrics, "llamacpp:requests_processing").unwrap_or(0.0));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "4 clients on 1 slot: requests_deferred reached {most_deferred} after {:.2} s \
         (requests_processing {busy})",
        t.elapsed().as_secs_f64()
    );
    assert!(
        most_deferred >= 1.0,
        "llamacpp:requests_deferred stayed below 1 for 30 s with 4 clients on 1 slot; logs:\n{}",
        container.logs()
    );
    for client in clients {
        let (status, answer) = client.await.expect("client task");
        check_completion(status, &answer);
    }
    eprintln!(
        "4 concurrent completions done {:.2} s after they were sent",
        t.elapsed().as_secs_f64()
    );
    // Every client has its answer: the queue drained and the gauges say so.
    let (_, metrics) = request(addr, "GET", "/metrics", None).await;
    assert_eq!(
        gauge(&metrics, "llamacpp:requests_deferred"),
        Some(0.0),
        "{metrics}"
    );
}

#[test]
fn gauges_are_read_from_the_exposition() {
    let text = "# HELP llamacpp:requests_deferred x\nllamacpp:requests_deferred 3\n\
                llamacpp:requests_deferred_total 9\nllamacpp:requests_processing 1\n";
    assert_eq!(gauge(text, "llamacpp:requests_deferred"), Some(3.0));
    assert_eq!(gauge(text, "llamacpp:requests_processing"), Some(1.0));
    assert_eq!(gauge(text, "llamacpp:n_busy_slots_per_decode"), None);
}
