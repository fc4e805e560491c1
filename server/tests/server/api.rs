//! Routes, answers, and every bad-input case.

use std::time::{Duration, Instant};

use crate::support::{Conn, Server, get, ms, request, value};

fn error_text(response: &crate::support::Response) -> String {
    let json = response.json();
    assert_eq!(json["status"], response.status, "{}", response.body);
    json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error text: {}", response.body))
        .to_owned()
}

#[test]
fn infer_and_the_original_route_answer_with_timings_and_pod() {
    let server = Server::start(&[("INFERENCE_SECONDS", "0.2")]);
    for response in [
        request(server.addr, "POST", "/infer", Some(r#"{"input":"hello"}"#)),
        request(server.addr, "POST", "/infer", None),
        get(server.addr, "/"),
    ] {
        assert_eq!(response.status, 200, "{}", response.body);
        assert_eq!(response.header("content-type"), Some("application/json"));
        let json = response.json();
        assert_eq!(json["pod"], "test-pod");
        assert!(json["result"].is_string(), "{}", response.body);
        let inference = ms(&response, "inference_ms");
        assert!(inference >= 199.0, "inference_ms {inference}");
        assert!(ms(&response, "queue_ms") >= 0.0);
    }
    let health = get(server.addr, "/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let ready = get(server.addr, "/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
}

#[test]
fn bad_input_gets_json_errors() {
    let server = Server::start(&[("INFERENCE_SECONDS", "0.1"), ("MAX_BODY_BYTES", "65536")]);
    let addr = server.addr;

    let malformed = request(addr, "POST", "/infer", Some(r#"{"input": "#));
    assert_eq!(malformed.status, 400);
    assert!(
        error_text(&malformed).contains("not valid JSON"),
        "{}",
        malformed.body
    );

    let wrong_type = request(addr, "POST", "/infer", Some(r#"{"input": 5}"#));
    assert_eq!(wrong_type.status, 400);
    let text = error_text(&wrong_type);
    assert!(
        text.contains("wrong shape") && text.contains("string"),
        "{text}"
    );

    let big = format!(r#"{{"input":"{}"}}"#, "a".repeat(70 * 1024));
    let mut conn = Conn::open(addr).expect("connect");
    conn.send("POST", "/infer", Some(&big)).expect("send");
    let too_large = conn.read_response().expect("413 response");
    assert_eq!(too_large.status, 413);
    assert!(
        error_text(&too_large).contains("65536"),
        "{}",
        too_large.body
    );

    // The same without Content-Length: counted while streaming.
    let mut conn = Conn::open(addr).expect("connect");
    let mut raw = b"POST /infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..9 {
        raw.extend_from_slice(format!("2000\r\n{}\r\n", "b".repeat(0x2000)).as_bytes());
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    // The server may answer and close before reading everything; a write error is fine then.
    let _ = conn.write_raw(&raw);
    let chunked = conn
        .read_response()
        .expect("413 response to a chunked body");
    assert_eq!(chunked.status, 413);

    for (method, path, allowed) in [
        ("GET", "/infer", "POST"),
        ("PUT", "/infer", "POST"),
        ("DELETE", "/", "GET"),
        ("POST", "/metrics", "GET"),
        ("POST", "/healthz", "GET"),
    ] {
        let response = request(addr, method, path, None);
        assert_eq!(response.status, 405, "{method} {path}");
        assert_eq!(response.header("allow"), Some(allowed), "{method} {path}");
        assert!(error_text(&response).contains(method));
    }

    let missing = get(addr, "/v1/models");
    assert_eq!(missing.status, 404);
    assert!(error_text(&missing).contains("/v1/models"));

    let m = server.metrics();
    assert_eq!(value(&m, r#"inference_requests_total{code="400"}"#), 2.0);
    assert_eq!(value(&m, r#"inference_requests_total{code="413"}"#), 2.0);
    assert_eq!(value(&m, "inference_request_duration_seconds_count"), 0.0);
}

#[test]
fn a_slow_client_cannot_hold_a_worker_or_a_queue_place() {
    let server = Server::start(&[
        ("WORKERS", "1"),
        ("MAX_QUEUE", "0"),
        ("INFERENCE_SECONDS", "0.1"),
        ("READ_TIMEOUT_SECONDS", "1"),
        ("KEEP_ALIVE_SECONDS", "1"),
    ]);
    // Headers done, body promised but only partly sent.
    let mut slow_body = Conn::open(server.addr).expect("connect");
    slow_body
        .write_raw(b"POST /infer HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n{\"inp")
        .expect("send partial body");
    // Headers never finished.
    let mut slow_head = Conn::open(server.addr).expect("connect");
    slow_head
        .write_raw(b"POST /infer HTTP/1.1\r\nHost: t\r\n")
        .expect("send partial head");

    // With one worker and no queue, this would get 503 if a slow client held the worker.
    let served = request(server.addr, "POST", "/infer", Some("{}"));
    assert_eq!(served.status, 200, "{}", served.body);
    let m = server.metrics();
    assert_eq!(value(&m, "inference_queue_depth"), 0.0);

    let started = Instant::now();
    let timed_out = slow_body.read_response().expect("408 response");
    assert_eq!(timed_out.status, 408, "{}", timed_out.body);
    assert!(error_text(&timed_out).contains("READ_TIMEOUT_SECONDS"));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        slow_head.closed_by_server_within(Duration::from_secs(15)),
        "a client that never finishes its headers keeps its connection"
    );
}
