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
        // The server's idle clock starts when it answered, a little before this client read
        // the answer; half the timeout proves it was not closed at once.
        idle_since.elapsed() >= Duration::from_millis(500),
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

#[test]
fn a_connection_idle_long_enough_to_be_parked_is_still_reused() {
    let server = Server::start(&[("KEEP_ALIVE_SECONDS", "30"), ("INFERENCE_SECONDS", "0.05")]);
    let mut conn = Conn::open(server.addr).expect("connect");
    for round in 0..3 {
        let response = conn
            .request("POST", "/infer", Some(r#"{"input":"again"}"#))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(response.status, 200, "round {round}: {}", response.body);
        assert!(!response.closes(), "round {round}");
        // Longer than the server's 250 ms parking delay: the next request wakes a parked
        // connection. Elapsed time is the point here, not synchronisation.
        thread::sleep(Duration::from_millis(700));
    }
    // Half a request before the pause and the rest after it: the parked connection resumes.
    conn.write_raw(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        .expect("first half");
    thread::sleep(Duration::from_millis(700));
    conn.write_raw(b"\r\n").expect("second half");
    let response = conn.read_response().expect("response to a split request");
    assert_eq!(response.status, 200, "{}", response.body);
}
