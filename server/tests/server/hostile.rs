//! Hostile clients: a dribbled body, clients that never read, a connection flood, an open-file
//! limit below MAX_CONNECTIONS, `HEAD /`, a half-closed client and a second SIGTERM. Each case
//! is bounded in clients and time and talks to 127.0.0.1 only.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Conn, Response, Server, get, spawn_request, value};

/// One request on a fresh connection that gives up after `timeout`.
fn try_request(addr: SocketAddr, method: &str, path: &str, timeout: Duration) -> Option<Response> {
    let mut conn = Conn::open_with_timeout(addr, timeout).ok()?;
    conn.request(method, path, None).ok()
}

#[test]
fn a_body_dribbled_one_byte_per_segment_keeps_memory_bounded() {
    const CLIENTS: usize = 10;
    const DRIBBLE: Duration = Duration::from_secs(8);
    let server = Server::start(&[("READ_TIMEOUT_SECONDS", "30"), ("INFERENCE_SECONDS", "0")]);
    // Warm up the runtime's threads and buffers, then take the idle figure.
    for _ in 0..5 {
        assert_eq!(get(server.addr, "/healthz").status, 200);
    }
    let idle = server.rss_mib();
    let addr = server.addr;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            thread::spawn(move || -> std::io::Result<usize> {
                let mut stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                stream.write_all(
                    b"POST /infer HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n",
                )?;
                let start = Instant::now();
                let mut sent = 0;
                while start.elapsed() < DRIBBLE {
                    // One byte per write with Nagle off: one byte per TCP segment. The pause
                    // is the attack's pace, not a synchronisation.
                    stream.write_all(b" ")?;
                    sent += 1;
                    thread::sleep(Duration::from_millis(1));
                }
                stream.shutdown(Shutdown::Both)?;
                Ok(sent)
            })
        })
        .collect();
    let mut peak = idle;
    while clients.iter().any(|c| !c.is_finished()) {
        peak = peak.max(server.rss_mib());
        thread::sleep(Duration::from_millis(100));
    }
    let mut bytes = 0;
    for client in clients {
        bytes += client.join().expect("client thread").expect("dribble");
    }
    assert!(bytes > CLIENTS * 100, "the clients sent only {bytes} bytes");
    assert!(
        peak < 64.0,
        "RSS grew from {idle:.1} MiB to {peak:.1} MiB while {CLIENTS} clients dribbled {bytes} body bytes"
    );
    // Memory returns near idle once the clients are gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = server.rss_mib();
        if now < idle + 16.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "RSS stayed at {now:.1} MiB (idle {idle:.1} MiB, peak {peak:.1} MiB)"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(server.addr, "/healthz").status, 200);
}

/// Opens a connection, pipelines requests without ever reading, and returns once the server
/// stopped reading them (its own writes are blocked, or it closed the connection), keeping the
/// socket open.
fn never_reading_client(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .expect("write timeout");
    let request = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    let deadline = Instant::now() + Duration::from_secs(60);
    // A write that blocks for 2 s means the server stopped reading: its answers fill both
    // socket buffers. A reset means a short write timeout already closed the connection.
    loop {
        match stream.write_all(&request.repeat(256)) {
            Ok(()) => assert!(
                Instant::now() < deadline,
                "the server kept reading for 60 s"
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                ) =>
            {
                return stream;
            }
            Err(e) => panic!("pipelining failed: {e}"),
        }
    }
}

#[test]
fn clients_that_never_read_are_closed_by_the_write_timeout() {
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "4"),
        ("WRITE_TIMEOUT_SECONDS", "1"),
        ("KEEP_ALIVE_SECONDS", "60"),
        ("INFERENCE_SECONDS", "0"),
    ]);
    let stuck: Vec<TcpStream> = (0..4).map(|_| never_reading_client(server.addr)).collect();
    // Every connection slot is held by a client that does not read: only the write timeout
    // frees them for a new inference client.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(response) = try_request(server.addr, "GET", "/", Duration::from_secs(5))
            && response.status == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no inference answered within 30 s while 4 never-reading clients held MAX_CONNECTIONS=4"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let m = server.metrics();
    assert!(
        value(&m, "kscale_server_write_timeouts_total") >= 4.0,
        "{m:?}"
    );
    drop(stuck);
}

#[test]
fn drain_does_not_wait_for_clients_that_never_read() {
    let mut server = Server::start(&[
        ("WRITE_TIMEOUT_SECONDS", "300"),
        ("DRAIN_SECONDS", "300"),
        ("ACCEPT_GRACE_SECONDS", "0.2"),
        ("KEEP_ALIVE_SECONDS", "300"),
        ("INFERENCE_SECONDS", "0"),
    ]);
    let stuck: Vec<TcpStream> = (0..2).map(|_| never_reading_client(server.addr)).collect();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(60))
        .expect("the drain waited for clients that never read");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    drop(stuck);
}

#[test]
fn probes_answer_while_max_connections_are_held_and_more_wait() {
    let server = Server::start(&[
        ("MAX_CONNECTIONS", "20"),
        ("KEEP_ALIVE_SECONDS", "120"),
        ("INFERENCE_SECONDS", "0"),
    ]);
    // Twenty keep-alive connections, each proven accepted by one answer, then left idle.
    let held: Vec<Conn> = (0..20)
        .map(|_| {
            let mut conn = Conn::open(server.addr).expect("connect");
            let response = conn.request("GET", "/healthz", None).expect("request");
            assert_eq!(response.status, 200);
            conn
        })
        .collect();
    // A flood of connections that send nothing.
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect_timeout(&server.addr, Duration::from_secs(5)).ok())
        .collect();
    assert!(flood.len() >= 100, "only {} flood connections", flood.len());
    // Before: probes waited in the kernel's backlog until an idle connection timed out (120 s).
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = try_request(server.addr, "GET", path, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("{path} did not answer within 20 s under the flood"));
        assert_eq!(response.status, 200, "{path}: {}", response.body);
        assert!(
            response.closes(),
            "{path}: an overload answer keeps its connection"
        );
    }
    let inference = try_request(server.addr, "GET", "/", Duration::from_secs(20))
        .expect("an inference request is answered under the flood");
    assert_eq!(inference.status, 503, "{}", inference.body);
    assert!(inference.header("retry-after").is_some());
    assert!(
        inference.body.contains("MAX_CONNECTIONS"),
        "{}",
        inference.body
    );
    drop(flood);
    drop(held);
}

#[test]
fn max_connections_above_the_open_file_limit_is_capped_with_a_message() {
    let server = Server::start_wrapped(
        &["prlimit", "--nofile=512:512", "--"],
        &[("MAX_CONNECTIONS", "100000")],
    );
    assert_eq!(get(server.addr, "/healthz").status, 200);
    server.wait_stderr(
        "the message about the cap",
        Duration::from_secs(10),
        |log| log.contains("MAX_CONNECTIONS") && log.contains("open-file limit"),
    );
}

#[test]
fn head_of_the_inference_route_runs_no_inference() {
    let server = Server::start(&[
        ("WORKERS", "1"),
        ("MAX_QUEUE", "0"),
        ("INFERENCE_SECONDS", "60"),
    ]);
    let busy = spawn_request(server.addr, "GET", "/", None);
    server.wait_metrics("the worker busy", Duration::from_secs(10), |m| {
        value(m, "inference_requests_in_flight") == 1.0
    });
    // With the only worker busy and no queue, an inference would be refused with 503.
    let head = try_request(server.addr, "HEAD", "/", Duration::from_secs(10)).expect("HEAD /");
    assert_eq!(head.status, 200, "{:?}", head.headers);
    assert!(head.body.is_empty());
    let m = server.metrics();
    assert_eq!(value(&m, "inference_requests_in_flight"), 1.0);
    assert_eq!(value(&m, r#"inference_requests_total{code="503"}"#), 0.0);
    drop(server);
    let _ = busy.join();
}

#[test]
fn a_half_closed_client_is_counted_as_gone_and_frees_its_queue_place() {
    let server = Server::start(&[("WORKERS", "1"), ("INFERENCE_SECONDS", "60")]);
    let busy = spawn_request(server.addr, "GET", "/", None);
    server.wait_metrics("the worker busy", Duration::from_secs(10), |m| {
        value(m, "inference_requests_in_flight") == 1.0
    });
    let mut half = Conn::open(server.addr).expect("connect");
    half.send("GET", "/", None).expect("send");
    server.wait_metrics("one queued", Duration::from_secs(10), |m| {
        value(m, "inference_queue_depth") == 1.0
    });
    half.stream().shutdown(Shutdown::Write).expect("half-close");
    let m = server.wait_metrics("the place given up", Duration::from_secs(10), |m| {
        value(m, "inference_queue_depth") == 0.0
    });
    assert_eq!(value(&m, r#"inference_requests_total{code="499"}"#), 1.0);
    assert_eq!(value(&m, "inference_requests_abandoned_total"), 1.0);
    assert!(
        half.closed_by_server_within(Duration::from_secs(10)),
        "the server kept a half-closed connection"
    );
    drop(server);
    let _ = busy.join();
}

#[test]
fn a_second_sigterm_cuts_at_once_and_exits_non_zero() {
    let mut server = Server::start(&[
        ("INFERENCE_SECONDS", "60"),
        ("ACCEPT_GRACE_SECONDS", "30"),
        ("DRAIN_SECONDS", "300"),
    ]);
    let busy = spawn_request(server.addr, "GET", "/", None);
    server.wait_metrics("the worker busy", Duration::from_secs(10), |m| {
        value(m, "inference_requests_in_flight") == 1.0
    });
    server.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(server.addr, "/readyz").status != 503 {
        assert!(Instant::now() < deadline, "/readyz never turned 503");
    }
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("a second SIGTERM did not stop the server");
    assert_eq!(status.code(), Some(143), "{}", server.stderr());
    assert!(
        server.stderr().contains("second SIGTERM"),
        "{}",
        server.stderr()
    );
    assert!(busy.join().expect("thread").is_err());
}
