//! The OpenAI-style endpoints (`/v1/completions`, `/v1/chat/completions`): answer shape, streams
//! spread over the inference time, the shared admission (workers, queue, 503, metrics), clients
//! leaving mid-stream, bad bodies, and the drain.

use std::time::{Duration, Instant};

use crate::support::{Conn, Server, request, value};

const COMPLETION: &str = r#"{"prompt":"say something nice","max_tokens":5}"#;
const CHAT: &str =
    r#"{"model":"m-1","messages":[{"role":"user","content":"hi there"}],"max_tokens":3}"#;

fn streamed(body: &str) -> String {
    let mut json: serde_json::Value = serde_json::from_str(body).expect("test body is JSON");
    json["stream"] = true.into();
    json.to_string()
}

#[test]
fn completions_and_chat_answer_openai_shaped_after_the_inference() {
    let server = Server::start(&[("INFERENCE_SECONDS", "0.3")]);
    let started = Instant::now();
    let completion = request(server.addr, "POST", "/v1/completions", Some(COMPLETION));
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert_eq!(completion.status, 200, "{}", completion.body);
    assert_eq!(completion.header("content-type"), Some("application/json"));
    assert_eq!(completion.header("x-kscale-pod"), Some("test-pod"));
    let json = completion.json();
    assert!(
        json["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("cmpl-")),
        "{json}"
    );
    assert_eq!(json["object"], "text_completion");
    assert!(json["created"].as_u64().is_some_and(|t| t > 1_700_000_000));
    assert_eq!(json["model"], "kscale-simulated", "no model asked for");
    assert_eq!(json["choices"][0]["text"], " tok1 tok2 tok3 tok4 tok5");
    assert_eq!(json["choices"][0]["finish_reason"], "length");
    assert_eq!(json["usage"]["completion_tokens"], 5);
    assert_eq!(json["usage"]["prompt_tokens"], 3);
    assert_eq!(json["usage"]["total_tokens"], 8);

    let chat = request(server.addr, "POST", "/v1/chat/completions", Some(CHAT));
    assert_eq!(chat.status, 200, "{}", chat.body);
    let json = chat.json();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["model"], "m-1");
    assert_eq!(json["choices"][0]["message"]["role"], "assistant");
    assert_eq!(json["choices"][0]["message"]["content"], " tok1 tok2 tok3");
    assert_eq!(json["choices"][0]["finish_reason"], "length");
    assert_eq!(json["usage"]["completion_tokens"], 3);

    // Without max_tokens: 16, OpenAI's default.
    let default = request(
        server.addr,
        "POST",
        "/v1/completions",
        Some(r#"{"prompt":"x"}"#),
    );
    assert_eq!(default.json()["usage"]["completion_tokens"], 16);

    let m = server.metrics();
    assert_eq!(value(&m, r#"inference_requests_total{code="200"}"#), 3.0);
    assert_eq!(value(&m, "inference_request_duration_seconds_count"), 3.0);
    assert!(value(&m, "inference_request_duration_seconds_sum") >= 0.9 - 0.01);
}

#[test]
fn a_stream_spreads_max_tokens_events_over_the_inference_then_says_done() {
    let server = Server::start(&[("INFERENCE_SECONDS", "1"), ("WORKERS", "1")]);
    for (path, body) in [
        ("/v1/completions", streamed(COMPLETION)),
        (
            "/v1/chat/completions",
            streamed(r#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":5}"#),
        ),
    ] {
        let mut conn = Conn::open(server.addr).expect("connect");
        let sent = Instant::now();
        conn.send("POST", path, Some(&body)).expect("send");
        let head = conn.read_head().expect("head");
        assert_eq!(head.status, 200, "{path}");
        assert_eq!(head.header("content-type"), Some("text/event-stream"));
        assert_eq!(head.header("x-kscale-pod"), Some("test-pod"));
        // The headers come at once, not after the inference.
        assert!(
            sent.elapsed() < Duration::from_millis(900),
            "{path}: {:?}",
            sent.elapsed()
        );
        // The worker is held while the tokens come.
        server.wait_metrics("the stream's worker busy", Duration::from_secs(5), |m| {
            value(m, "inference_requests_in_flight") == 1.0
        });
        let events = conn.read_events().expect("events");
        assert_eq!(events.len(), 6, "{path}: 5 tokens then [DONE]: {events:?}");
        assert_eq!(events[5].1, "[DONE]");
        let mut text = String::new();
        for (k, (at, data)) in events[..5].iter().enumerate() {
            let json: serde_json::Value = serde_json::from_str(data).expect("event is JSON");
            let choice = &json["choices"][0];
            let piece = if path == "/v1/completions" {
                assert_eq!(json["object"], "text_completion");
                choice["text"].as_str()
            } else {
                assert_eq!(json["object"], "chat.completion.chunk");
                choice["delta"]["content"].as_str()
            };
            text.push_str(piece.expect("a token"));
            // Token k+1 comes no earlier than (k+1)/5 of the inference.
            let due = Duration::from_millis(200 * (k as u64 + 1));
            let after = at.duration_since(sent);
            assert!(
                after + Duration::from_millis(10) >= due,
                "{path}: token {} at {after:?}",
                k + 1
            );
            let last = k == 4;
            assert_eq!(choice["finish_reason"].is_null(), !last, "{data}");
            assert_eq!(
                json["usage"]["completion_tokens"].as_u64(),
                last.then_some(5),
                "{data}"
            );
        }
        assert_eq!(text, " tok1 tok2 tok3 tok4 tok5");
        // Spread out, not all at the end: the first token well before the last.
        let first = events[0].0.duration_since(sent);
        let done = events[5].0.duration_since(sent);
        assert!(
            first < Duration::from_millis(700),
            "{path}: first token at {first:?}"
        );
        assert!(
            done >= Duration::from_millis(990) && done < Duration::from_secs(5),
            "{path}: {done:?}"
        );
        server.wait_metrics("the worker freed", Duration::from_secs(5), |m| {
            value(m, "inference_requests_in_flight") == 0.0
        });
        // The connection stays usable after a stream longer than the parking delay.
        let next = conn
            .request(
                "POST",
                "/v1/completions",
                Some(r#"{"prompt":"x","max_tokens":1}"#),
            )
            .expect("a second request on the connection");
        assert_eq!(next.status, 200, "{path}: {}", next.body);
    }
    let m = server.metrics();
    assert_eq!(value(&m, r#"inference_requests_total{code="200"}"#), 4.0);
    assert_eq!(value(&m, "inference_request_duration_seconds_count"), 4.0);
    assert!(value(&m, "inference_request_duration_seconds_sum") >= 4.0 - 0.04);
}

#[test]
fn the_queue_is_shared_a_full_one_is_503_and_a_client_leaving_mid_stream_frees_its_worker() {
    let server = Server::start(&[
        ("INFERENCE_SECONDS", "30"),
        ("WORKERS", "1"),
        ("MAX_QUEUE", "1"),
    ]);
    // A stream holds the worker; an /infer request waits behind it.
    let mut stream = Conn::open(server.addr).expect("connect");
    stream
        .send("POST", "/v1/chat/completions", Some(&streamed(CHAT)))
        .expect("send");
    assert_eq!(stream.read_head().expect("head").status, 200);
    server.wait_metrics("the stream in inference", Duration::from_secs(10), |m| {
        value(m, "inference_requests_in_flight") == 1.0
    });
    let mut queued = Conn::open(server.addr).expect("connect");
    queued
        .send("POST", "/v1/completions", Some(COMPLETION))
        .expect("send");
    server.wait_metrics("one queued", Duration::from_secs(10), |m| {
        value(m, "inference_queue_depth") == 1.0
    });
    // Full: both endpoints, whole or streamed, shed at once.
    for (path, body) in [
        ("/v1/completions", COMPLETION.to_owned()),
        ("/v1/chat/completions", streamed(CHAT)),
        ("/infer", "{}".to_owned()),
    ] {
        let started = Instant::now();
        let shed = request(server.addr, "POST", path, Some(&body));
        assert_eq!(shed.status, 503, "{path}: {}", shed.body);
        assert!(shed.header("retry-after").is_some(), "{path}");
        assert!(started.elapsed() < Duration::from_secs(5), "{path}");
    }
    // The client of the stream leaves: its worker goes to the queued request at once, not
    // after the 30 s inference.
    let left = Instant::now();
    stream.close();
    let m = server.wait_metrics(
        "the queued request takes the worker",
        Duration::from_secs(10),
        |m| {
            value(m, "inference_queue_depth") == 0.0
                && value(m, "inference_requests_in_flight") == 1.0
                && value(m, r#"inference_requests_total{code="499"}"#) == 1.0
        },
    );
    assert!(left.elapsed() < Duration::from_secs(10));
    assert_eq!(value(&m, r#"inference_requests_total{code="503"}"#), 3.0);
    assert_eq!(value(&m, "inference_request_duration_seconds_count"), 0.0);
    drop(queued);
}

#[test]
fn bad_bodies_are_400_with_json_errors() {
    let server = Server::start(&[("INFERENCE_SECONDS", "0")]);
    for (path, body, says) in [
        ("/v1/completions", r#"{"prompt": "#, "not valid JSON"),
        ("/v1/completions", r#"{"max_tokens": 3}"#, "prompt"),
        ("/v1/completions", r#"{"prompt": 5}"#, "wrong shape"),
        (
            "/v1/completions",
            r#"{"prompt": "x", "max_tokens": 0}"#,
            "between 1 and 4096",
        ),
        (
            "/v1/completions",
            r#"{"prompt": "x", "max_tokens": 5000}"#,
            "between 1 and 4096",
        ),
        ("/v1/completions", "", "empty"),
        (
            "/v1/chat/completions",
            r#"{"messages": []}"#,
            "`messages` is empty",
        ),
        ("/v1/chat/completions", r#"{"prompt": "x"}"#, "messages"),
        (
            "/v1/chat/completions",
            r#"{"messages": [{"role": "user"}]}"#,
            "content",
        ),
    ] {
        let response = request(server.addr, "POST", path, Some(body));
        assert_eq!(response.status, 400, "{path} {body}: {}", response.body);
        let json = response.json();
        assert_eq!(json["status"], 400);
        let error = json["error"].as_str().expect("error text");
        assert!(error.contains(says), "{path} {body}: {error}");
    }
    let wrong = request(server.addr, "GET", "/v1/completions", None);
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.header("allow"), Some("POST"));
    let m = server.metrics();
    assert_eq!(value(&m, r#"inference_requests_total{code="400"}"#), 9.0);
    assert_eq!(value(&m, r#"inference_requests_total{code="405"}"#), 1.0);
}

#[test]
fn sigterm_lets_a_stream_finish_then_exits_0() {
    let mut server = Server::start(&[
        ("INFERENCE_SECONDS", "1.5"),
        ("ACCEPT_GRACE_SECONDS", "0.1"),
    ]);
    let mut conn = Conn::open(server.addr).expect("connect");
    conn.send("POST", "/v1/completions", Some(&streamed(COMPLETION)))
        .expect("send");
    assert_eq!(conn.read_head().expect("head").status, 200);
    server.wait_metrics("the stream in inference", Duration::from_secs(10), |m| {
        value(m, "inference_requests_in_flight") == 1.0
    });
    server.signal("TERM");
    let events = conn.read_events().expect("the stream completes");
    assert_eq!(events.len(), 6, "{events:?}");
    assert_eq!(events[5].1, "[DONE]");
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exits after the stream");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let log = server.stderr();
    assert!(log.contains("drained") && !log.contains("cutting"), "{log}");
}
