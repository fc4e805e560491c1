//! SIGTERM/SIGINT: readiness fails at once, accepted work completes, exit 0; only work still
//! running after DRAIN_SECONDS is cut, and counted in the log.

use std::time::{Duration, Instant};

use crate::support::{Server, get, spawn_request};

#[test]
fn sigterm_drains_every_accepted_request_and_exits_0() {
    let mut server = Server::start(&[
        ("WORKERS", "1"),
        ("INFERENCE_SECONDS", "0.7"),
        ("MAX_QUEUE", "10"),
        ("ACCEPT_GRACE_SECONDS", "4"),
    ]);
    let infer = ("POST", "/infer", Some(r#"{"input":"x"}"#));
    let before = server.occupy(3, infer, Duration::from_secs(10));

    server.signal("TERM");
    let signalled = Instant::now();
    let deadline = signalled + Duration::from_secs(10);
    loop {
        let ready = get(server.addr, "/readyz");
        if ready.status == 503 {
            assert_eq!(ready.json()["status"], "draining");
            assert!(ready.closes(), "a draining server keeps connections open");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz never turned 503");
    }
    // Within the accept grace a request still gets in, and completes.
    let during_grace = spawn_request(server.addr, "GET", "/", None);

    for handle in before.into_iter().chain([during_grace]) {
        let response = handle
            .join()
            .expect("client thread")
            .expect("request completed");
        assert_eq!(response.status, 200, "{}", response.body);
    }
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("the server did not exit after draining");
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; stderr: {}",
        server.stderr()
    );
    let log = server.stderr();
    assert!(log.contains("drained"), "{log}");
    assert!(!log.contains("cutting"), "{log}");
}

#[test]
fn work_still_running_after_drain_seconds_is_cut_and_counted() {
    let mut server = Server::start(&[
        ("WORKERS", "1"),
        ("INFERENCE_SECONDS", "60"),
        ("DRAIN_SECONDS", "1.5"),
        ("ACCEPT_GRACE_SECONDS", "0.2"),
        ("LOG_FORMAT", "json"),
    ]);
    let clients = server.occupy(3, ("GET", "/", None), Duration::from_secs(10));
    let signalled = Instant::now();
    server.signal("INT");
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("the server did not exit at DRAIN_SECONDS");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(1400),
        "cut before DRAIN_SECONDS: {:?}",
        signalled.elapsed()
    );
    assert!(!server.running());
    let log = server.stderr();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let cut = lines
        .iter()
        .find(|l| l.get("cut").is_some())
        .unwrap_or_else(|| panic!("no line with the cut count: {log}"));
    assert_eq!(cut["cut"], 3, "{cut}");
    assert_eq!(cut["level"], "WARN");
    for client in clients {
        let outcome = client.join().expect("client thread");
        assert!(outcome.is_err(), "a cut request got an answer: {outcome:?}");
    }
}
