//! Keep-alive reuse, the idle timeout, and the maximum connection age.

use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Conn, Server};

#[test]
fn keep_alive_reuses_one_connection_and_closes_it_when_idle() {
    let server = Server::start(&[("INFERENCE_SECONDS", "0.05"), ("KEEP_ALIVE_SECONDS", "1")]);
    let mut conn = Conn::open(server.addr).expect("connect");
    for path in ["/healthz", "/", "/metrics", "/readyz"] {
        let response = conn
            .request("GET", path, None)
            .expect("request on a reused connection");
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        assert!(
            !response.closes(),
            "{path}: the server closed a fresh connection"
        );
    }
    let idle_since = Instant::now();
    assert!(
        conn.closed_by_server_within(Duration::from_secs(15)),
        "an idle connection stayed open past KEEP_ALIVE_SECONDS"
    );
    assert!(
        idle_since.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before the idle timeout",
        idle_since.elapsed()
    );
}

#[test]
fn keep_alive_zero_closes_after_each_response() {
    let server = Server::start(&[("KEEP_ALIVE_SECONDS", "0")]);
    let mut conn = Conn::open(server.addr).expect("connect");
    let response = conn.request("GET", "/healthz", None).expect("request");
    assert_eq!(response.status, 200);
    assert!(response.closes(), "{:?}", response.headers);
    assert!(conn.closed_by_server_within(Duration::from_secs(10)));
}

#[test]
fn an_old_connection_gets_connection_close_on_its_next_response() {
    let server = Server::start(&[
        ("MAX_CONNECTION_AGE_SECONDS", "1"),
        ("KEEP_ALIVE_SECONDS", "30"),
    ]);
    let opened = Instant::now();
    let mut conn = Conn::open(server.addr).expect("connect");
    let first = conn
        .request("GET", "/healthz", None)
        .expect("first request");
    assert_eq!(first.status, 200);
    assert!(!first.closes() || opened.elapsed() >= Duration::from_secs(1));

    let mut closing = None;
    for _ in 0..300 {
        let response = conn.request("GET", "/healthz", None).expect("request");
        assert_eq!(response.status, 200);
        if response.closes() {
            closing = Some(opened.elapsed());
            break;
        }
        // Pacing between requests on the live connection, not synchronisation.
        thread::sleep(Duration::from_millis(50));
    }
    let age = closing.expect("no `Connection: close` within 300 requests (~15 s)");
    assert!(age >= Duration::from_secs(1), "closed at age {age:?}");
    assert!(
        conn.closed_by_server_within(Duration::from_secs(10)),
        "the server announced close but kept the connection"
    );
    // A new connection is served normally.
    let mut fresh = Conn::open(server.addr).expect("reconnect");
    let response = fresh.request("GET", "/healthz", None).expect("request");
    assert!(!response.closes());
}
