//! Workers, the bounded queue, and durations that include queue wait.

use std::time::{Duration, Instant};

use crate::support::{Conn, Server, get, ms, request, spawn_request, value};

/// W workers and N concurrent requests take ceil(N/W) rounds of inference.
fn assert_rounds(workers: usize, requests: usize) {
    const INFERENCE: f64 = 1.0;
    let server = Server::start(&[
        ("WORKERS", &workers.to_string()),
        ("INFERENCE_SECONDS", "1"),
        ("MAX_QUEUE", "64"),
    ]);
    let rounds = requests.div_ceil(workers);
    let started = Instant::now();
    let handles: Vec<_> = (0..requests)
        .map(|_| spawn_request(server.addr, "GET", "/", None))
        .collect();
    let responses: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("client thread").expect("request"))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    for r in &responses {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["pod"], "test-pod");
    }
    // Lower bound: W workers cannot finish N inferences faster. Upper bound: generous.
    let floor = rounds as f64 * INFERENCE;
    assert!(elapsed >= floor - 0.05, "{elapsed:.2} s < {floor} s");
    assert!(
        elapsed < floor + 6.0,
        "{elapsed:.2} s, expected about {floor} s"
    );
    // The last request waited for rounds-1 inferences: not 0 (workers ignored), not N-1 (serial).
    let longest_wait = responses
        .iter()
        .map(|r| ms(r, "queue_ms"))
        .fold(0.0, f64::max)
        / 1000.0;
    let expected = (rounds - 1) as f64 * INFERENCE;
    // Half an inference of slack below (clients may start late on a loaded machine, which only
    // shortens their wait) and almost one above: still far from rounds-2 and from serial.
    assert!(
        longest_wait >= expected - 0.5 * INFERENCE && longest_wait < expected + 0.9 * INFERENCE,
        "longest queue wait {longest_wait:.2} s, expected about {expected} s"
    );

    // The histogram records exactly the durations answered, and they include the queue wait.
    let metrics = server.metrics();
    assert_eq!(
        value(&metrics, "inference_request_duration_seconds_count"),
        requests as f64
    );
    let answered: f64 = responses.iter().map(|r| ms(r, "duration_ms")).sum::<f64>() / 1000.0;
    let waited: f64 = responses.iter().map(|r| ms(r, "queue_ms")).sum::<f64>() / 1000.0;
    let sum = value(&metrics, "inference_request_duration_seconds_sum");
    assert!(
        (sum - answered).abs() < 0.01,
        "histogram sum {sum} != answered durations {answered}"
    );
    assert!(
        sum >= requests as f64 * INFERENCE + waited - 0.01,
        "histogram sum {sum} excludes queue wait {waited}"
    );
    assert!(waited > 0.5, "nothing waited: {waited} s");
}

#[test]
fn two_workers_serve_five_requests_in_three_rounds() {
    assert_rounds(2, 5);
}

#[test]
fn three_workers_serve_six_requests_in_two_rounds() {
    assert_rounds(3, 6);
}

#[test]
fn metric_values_after_a_known_set_of_requests() {
    let server = Server::start(&[("WORKERS", "2"), ("INFERENCE_SECONDS", "0.2")]);
    let addr = server.addr;
    for _ in 0..3 {
        assert_eq!(
            request(addr, "POST", "/infer", Some(r#"{"input":"x"}"#)).status,
            200
        );
    }
    assert_eq!(get(addr, "/").status, 200);
    assert_eq!(request(addr, "POST", "/infer", Some("{oops")).status, 400);
    assert_eq!(get(addr, "/infer").status, 405);
    assert_eq!(get(addr, "/nowhere").status, 404);

    let response = get(addr, "/metrics");
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/openmetrics-text")),
        "{:?}",
        response.headers
    );
    assert!(response.body.ends_with("# EOF\n"));
    let m = crate::support::parse_metrics(&response.body);
    assert_eq!(value(&m, r#"inference_requests_total{code="200"}"#), 4.0);
    assert_eq!(value(&m, r#"inference_requests_total{code="400"}"#), 1.0);
    assert_eq!(value(&m, r#"inference_requests_total{code="405"}"#), 1.0);
    assert!(
        !m.keys().any(|k| k.contains(r#"code="404""#)),
        "unknown paths are not inference requests: {m:?}"
    );
    assert_eq!(value(&m, "inference_request_duration_seconds_count"), 4.0);
    let sum = value(&m, "inference_request_duration_seconds_sum");
    assert!((0.8..2.8).contains(&sum), "sum {sum}, expected about 0.8");
    assert_eq!(
        value(
            &m,
            r#"inference_request_duration_seconds_bucket{le="+Inf"}"#
        ),
        4.0
    );
    assert_eq!(
        value(&m, r#"inference_request_duration_seconds_bucket{le="0.1"}"#),
        0.0
    );
    assert_eq!(value(&m, "inference_requests_in_flight"), 0.0);
    assert_eq!(value(&m, "inference_queue_depth"), 0.0);
    assert_eq!(value(&m, "inference_workers"), 2.0);
    assert_eq!(value(&m, "inference_queue_capacity"), 64.0);
    assert_eq!(value(&m, "inference_requests_abandoned_total"), 0.0);
    let version = format!(
        r#"kscale_server_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&m, &version), 1.0, "{m:?}");
}

#[test]
fn metrics_stay_fast_and_a_full_queue_sheds_with_503() {
    let server = Server::start(&[
        ("WORKERS", "1"),
        ("MAX_QUEUE", "8"),
        ("INFERENCE_SECONDS", "30"),
    ]);
    // A busy worker and a full queue.
    let clients = server.occupy(9, ("GET", "/", None), Duration::from_secs(15));

    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let response = get(server.addr, "/metrics");
        slowest = slowest.max(started.elapsed());
        assert_eq!(response.status, 200);
    }
    // Generous: the tight figure (p99 < 5 ms) belongs to `cargo xtask bench-server`.
    assert!(
        slowest < Duration::from_secs(1),
        "slowest /metrics {slowest:?}"
    );

    let refused = request(server.addr, "POST", "/infer", Some(r#"{"input":"late"}"#));
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("30"));
    assert!(
        refused.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("queue full")),
        "{}",
        refused.body
    );
    let m = server.metrics();
    assert_eq!(value(&m, r#"inference_requests_total{code="503"}"#), 1.0);
    assert_eq!(
        value(&m, "inference_queue_depth"),
        8.0,
        "a 503 took no place"
    );
    drop(server);
    for client in clients {
        // The server is gone; these end with an error, which is expected.
        let _ = client.join();
    }
}

#[test]
fn a_queued_request_whose_client_leaves_never_reaches_inference() {
    let server = Server::start(&[("WORKERS", "1"), ("INFERENCE_SECONDS", "3")]);
    let first = spawn_request(server.addr, "GET", "/", None);
    server.wait_metrics(
        "the first request in inference",
        Duration::from_secs(10),
        |m| value(m, "inference_requests_in_flight") == 1.0,
    );
    let mut leaver = Conn::open(server.addr).expect("connect");
    leaver
        .send("POST", "/infer", Some(r#"{"input":"never mind"}"#))
        .expect("send");
    server.wait_metrics("the leaver queued", Duration::from_secs(10), |m| {
        value(m, "inference_queue_depth") == 1.0
    });
    let last = spawn_request(server.addr, "GET", "/", None);
    server.wait_metrics("two queued", Duration::from_secs(10), |m| {
        value(m, "inference_queue_depth") == 2.0
    });

    leaver.close();
    let m = server.wait_metrics("the leaver's place freed", Duration::from_secs(10), |m| {
        value(m, "inference_queue_depth") == 1.0
            && value(m, "inference_requests_abandoned_total") == 1.0
    });
    assert_eq!(value(&m, r#"inference_requests_total{code="499"}"#), 1.0);

    let first = first.join().expect("thread").expect("first request");
    let last = last.join().expect("thread").expect("last request");
    assert_eq!(first.status, 200);
    assert_eq!(last.status, 200);
    // Had the leaver been served, the last request would have waited two inferences (6 s).
    let waited = ms(&last, "queue_ms") / 1000.0;
    assert!(waited < 5.0, "last request waited {waited:.2} s");
    let m = server.metrics();
    assert_eq!(
        value(&m, "inference_request_duration_seconds_count"),
        2.0,
        "the abandoned request ran an inference: {m:?}"
    );
    assert_eq!(value(&m, r#"inference_requests_total{code="200"}"#), 2.0);
}
