//! `kscale load` against real `kscale-server` processes on 127.0.0.1: its counts match the
//! servers' own metrics, steps change the concurrency the server sees, failures are classified,
//! Ctrl-C stops it with a report, and the port-forward child process is managed.
//!
//! Needs the server binary next to this test binary (`cargo build -p kscale-server`, which
//! `cargo xtask ci` does before the tests).

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use kscale::cli::LoadArgs;
use kscale::load::{LoadReport, StopReason, generate};
use kscale::loadprofile::LoadProfile;
use kscale::tools::port_forward::{PortForward, PortForwardSpec};

use crate::support::http::blocking_request;
use crate::support::{PodSpec, ServerProc};

/// A real server process for one pod, killed on drop, with the load tests' readers of its metrics.
struct Server(ServerProc);

impl std::ops::Deref for Server {
    type Target = ServerProc;

    fn deref(&self) -> &ServerProc {
        &self.0
    }
}

impl Server {
    fn start(pod: &str, env: &[(&str, &str)]) -> Server {
        // Every test sets INFERENCE_SECONDS; the spec's other values are the server's defaults.
        let spec = PodSpec::new("default", pod, 10.0);
        Server(ServerProc::start(spec, env).expect("start kscale-server"))
    }

    /// `series{labels} -> value` from GET /metrics.
    fn metrics(&self) -> HashMap<String, f64> {
        let body = http_get(self.0.addr, "/metrics");
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_owned(), value.parse().ok()?))
            })
            .collect()
    }

    fn metric(&self, series: &str) -> f64 {
        self.metrics().get(series).copied().unwrap_or(0.0)
    }
}

/// A blocking GET, returning the body of a 200.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let timeouts = (Duration::from_secs(5), Duration::from_secs(5));
    let (status, body) = blocking_request(addr, "GET", path, None, timeouts).expect("GET");
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs a load to its end (no interruption).
fn load(args: &LoadArgs, url: &str) -> LoadReport {
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    runtime()
        .block_on(generate(args, url, stop_rx))
        .expect("load runs")
}

fn args(profile: LoadProfile) -> LoadArgs {
    let mut a = LoadArgs::with_profile(&profile);
    a.duration = Duration::from_secs(30);
    a.timeout = Duration::from_secs(20);
    a
}

fn count(report: &LoadReport, code: &str) -> u64 {
    report.status_counts.get(code).copied().unwrap_or(0)
}

#[test]
fn counts_match_the_server_metrics_and_the_recording() {
    // Capacity 3 (2 workers + 1 waiting) against 5 clients: both 200s and 503s.
    let server = Server::start(
        "pod-a",
        &[
            ("WORKERS", "2"),
            ("MAX_QUEUE", "1"),
            ("INFERENCE_SECONDS", "0.05"),
        ],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("load.csv");
    let mut a = args(LoadProfile::concurrency(5));
    a.max_requests = Some(60);
    a.record = Some(csv.clone());
    a.interval = Duration::from_millis(200);
    let report = load(&a, &server.url());

    assert_eq!(report.stopped_by, StopReason::MaxRequests);
    assert_eq!(report.sent, 60);
    assert_eq!(report.unfinished, 0);
    assert_eq!(report.ok + report.errors.unavailable, 60, "{report:#?}");
    assert!(
        report.ok > 0 && report.errors.unavailable > 0,
        "{report:#?}"
    );
    assert_eq!(
        (
            report.errors.refused,
            report.errors.timeout,
            report.errors.other
        ),
        (0, 0, 0)
    );
    let server_200 = server.metric(r#"inference_requests_total{code="200"}"#);
    let server_503 = server.metric(r#"inference_requests_total{code="503"}"#);
    assert_eq!(server_200 as u64, count(&report, "200"));
    assert_eq!(server_503 as u64, count(&report, "503"));
    assert_eq!(count(&report, "200"), report.ok);
    assert_eq!(report.pods.get("pod-a").copied(), Some(report.ok));
    assert_eq!(report.latency_seconds.count, report.ok);
    let p50 = report.latency_seconds.p50.expect("p50");
    assert!(p50 >= 0.045, "an inference takes 50 ms, p50 was {p50}");

    let rows = kscale::timeline::read_csv(&csv).expect("the recording parses");
    assert!(!rows.is_empty());
    let sum = |f: fn(&kscale::timeline::TimelineRow) -> Option<u64>| -> u64 {
        rows.iter().filter_map(f).sum()
    };
    assert_eq!(sum(|r| r.ok), report.ok, "recorded ok per interval add up");
    assert_eq!(sum(|r| r.shed), report.errors.unavailable);
    assert!(rows.iter().all(|r| r.unix_seconds.is_some()));
}

#[test]
fn reconnect_every_opens_new_connections() {
    let server = Server::start("pod-b", &[("WORKERS", "4"), ("INFERENCE_SECONDS", "0")]);
    let mut a = args(LoadProfile::concurrency(2));
    a.max_requests = Some(12);
    let kept = load(&a, &server.url());
    assert_eq!(kept.ok, 12, "{kept:#?}");
    assert_eq!(kept.connections_opened, 2, "one connection per client");

    // One client, so that the count does not depend on how requests fall between clients.
    let mut a = args(LoadProfile::concurrency(1));
    a.max_requests = Some(12);
    a.reconnect_every = 3;
    let renewed = load(&a, &server.url());
    assert_eq!(renewed.ok, 12, "{renewed:#?}");
    assert_eq!(
        renewed.connections_opened, 4,
        "a new connection every 3 requests"
    );
}

#[test]
fn steps_change_the_concurrency_the_server_sees() {
    let server = Server::start(
        "pod-c",
        &[
            ("WORKERS", "20"),
            ("MAX_QUEUE", "10"),
            ("INFERENCE_SECONDS", "0.2"),
        ],
    );
    let mut a = args(LoadProfile::parse_concurrency("0s:2,2s:6,4s:1").expect("steps"));
    a.duration = Duration::from_secs(6);
    let url = server.url();
    let started = Instant::now();
    let handle = thread::spawn(move || load(&a, &url));
    // Sample the server's own in-flight gauge while the load runs.
    let mut samples: Vec<(f64, f64)> = Vec::new();
    while !handle.is_finished() && started.elapsed() < Duration::from_secs(40) {
        let v = server.metric("inference_requests_in_flight");
        samples.push((started.elapsed().as_secs_f64(), v));
        thread::sleep(Duration::from_millis(40));
    }
    let report = handle.join().expect("load thread");
    assert_eq!(report.stopped_by, StopReason::Duration);
    assert_eq!(report.errors.total(), 0, "{report:#?}");
    // Margins around each step edge absorb scheduling delays on a busy machine.
    let max_in = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|(_, v)| *v)
            .fold(f64::NAN, f64::max)
    };
    assert_eq!(max_in(0.6, 1.7), 2.0, "first step: 2 clients; {samples:?}");
    assert_eq!(max_in(2.7, 3.7), 6.0, "second step: 6 clients; {samples:?}");
    assert_eq!(max_in(4.7, 5.7), 1.0, "third step: 1 client; {samples:?}");
}

#[test]
fn a_closed_port_is_refused() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut a = args(LoadProfile::concurrency(1));
    a.max_requests = Some(3);
    let report = load(&a, &format!("http://127.0.0.1:{port}"));
    assert_eq!(report.sent, 3);
    assert_eq!(report.errors.refused, 3, "{report:#?}");
    assert_eq!(report.ok, 0);
    assert_eq!(report.refusals_retried, 0, "{report:#?}");

    // With retries, each request is tried three times before it counts as refused, once.
    a.retry_refused = 2;
    let report = load(&a, &format!("http://127.0.0.1:{port}"));
    assert_eq!((report.sent, report.errors.refused), (3, 3), "{report:#?}");
    assert_eq!(report.refusals_retried, 6, "{report:#?}");
    assert_eq!(report.connections_opened, 0, "{report:#?}");
}

#[test]
fn a_full_queue_is_503() {
    let server = Server::start(
        "pod-d",
        &[
            ("WORKERS", "1"),
            ("MAX_QUEUE", "0"),
            ("INFERENCE_SECONDS", "0.3"),
        ],
    );
    let mut a = args(LoadProfile::concurrency(3));
    a.max_requests = Some(8);
    let report = load(&a, &server.url());
    assert!(report.ok >= 1, "{report:#?}");
    assert!(report.errors.unavailable >= 1, "{report:#?}");
    assert_eq!(report.ok + report.errors.unavailable, 8, "{report:#?}");
    assert_eq!(
        server.metric(r#"inference_requests_total{code="503"}"#) as u64,
        report.errors.unavailable
    );
}

#[test]
fn a_slow_answer_is_a_timeout() {
    let server = Server::start("pod-e", &[("WORKERS", "1"), ("INFERENCE_SECONDS", "5")]);
    let mut a = args(LoadProfile::concurrency(1));
    a.max_requests = Some(2);
    a.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let report = load(&a, &server.url());
    assert_eq!(report.errors.timeout, 2, "{report:#?}");
    assert_eq!(report.ok, 0);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "timed-out requests are not waited for"
    );
}

#[test]
fn stop_abandons_requests_in_flight_and_reports() {
    let server = Server::start("pod-f", &[("WORKERS", "4"), ("INFERENCE_SECONDS", "30")]);
    let mut a = args(LoadProfile::concurrency(3));
    a.timeout = Duration::from_secs(60);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let url = server.url();
    let rt = runtime();
    let report = rt.block_on(async move {
        let run = tokio::spawn(async move { generate(&a, &url, stop_rx).await });
        // Interrupt once the server has the three requests in inference.
        let deadline = Instant::now() + Duration::from_secs(20);
        while server_in_flight(&server) < 3.0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop_tx.send(true).expect("send stop");
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("load stops within 10 s of the interrupt")
            .expect("task")
            .expect("report")
    });
    assert_eq!(report.stopped_by, StopReason::Interrupted);
    assert_eq!(report.sent, 3);
    assert_eq!(report.unfinished, 3, "{report:#?}");
    assert!(report.to_text().contains("unfinished 3"));
}

fn server_in_flight(server: &Server) -> f64 {
    let addr = server.addr;
    // Blocking I/O off the runtime's threads.
    thread::spawn(move || {
        let body = http_get(addr, "/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix("inference_requests_in_flight "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    })
    .join()
    .unwrap_or(0.0)
}

/// The tools layer's runner, quiet, as `kscale load` gets it.
fn runner() -> kscale::tools::Runner {
    kscale::tools::Runner::new(
        kscale::ui::Ui::new(kscale::ui::Mode::Quiet),
        kscale::tools::Execution::Real,
    )
}

/// A stand-in for kubectl (no cluster runs here): records its arguments and prints kubectl's
/// forwarding line for a real server's port, then waits like kubectl does.
fn fake_kubectl(dir: &std::path::Path, port: u16) -> PathBuf {
    let path = dir.join("kubectl");
    let script = format!(
        "#!/bin/sh\necho \"$@\" > '{}'\necho 'Forwarding from 127.0.0.1:{port} -> 3000'\nexec sleep 60\n",
        dir.join("argv").display()
    );
    std::fs::write(&path, script).expect("write fake kubectl");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn port_forward_gives_a_url_and_is_killed_on_drop() {
    let server = Server::start("pod-g", &[("WORKERS", "2"), ("INFERENCE_SECONDS", "0")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = PortForwardSpec {
        kubectl: fake_kubectl(dir.path(), server.addr.port()),
        context: Some("kscale".into()),
        namespace: "apps".into(),
        service: "inference".into(),
        remote_port: 3000,
    };
    let rt = runtime();
    let (pid, report) = rt.block_on(async {
        let pf = PortForward::open(&runner(), &spec, Duration::from_secs(10))
            .await
            .expect("port-forward opens");
        let pid = pf.pid().expect("kubectl runs");
        let mut a = args(LoadProfile::concurrency(1));
        a.max_requests = Some(3);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let report = generate(&a, &pf.local_url, rx).await.expect("load");
        drop(pf);
        (pid, report)
    });
    assert_eq!(report.ok, 3, "{report:#?}");
    let argv = std::fs::read_to_string(dir.path().join("argv")).expect("argv recorded");
    assert_eq!(
        argv.trim(),
        "--context kscale --namespace apps port-forward --address 127.0.0.1 service/inference :3000"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    while proc_alive(&proc_dir) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !proc_alive(&proc_dir),
        "kubectl {pid} still runs after drop"
    );
}

/// Running and not a zombie.
fn proc_alive(proc_dir: &std::path::Path) -> bool {
    std::fs::read_to_string(proc_dir.join("stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn a_failing_port_forward_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubectl");
    std::fs::write(
        &path,
        "#!/bin/sh\necho 'error: services \"inference\" not found' >&2\nexit 1\n",
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let spec = PortForwardSpec {
        kubectl: path,
        context: None,
        namespace: "default".into(),
        service: "inference".into(),
        remote_port: 3000,
    };
    let err = runtime()
        .block_on(PortForward::open(&runner(), &spec, Duration::from_secs(10)))
        .expect_err("fails");
    let msg = format!("{err:#}");
    assert!(msg.contains("not found") && msg.contains("exited"), "{msg}");
}

#[test]
fn a_rate_sends_on_schedule_over_few_connections() {
    let server = Server::start("pod-h", &[("WORKERS", "4"), ("INFERENCE_SECONDS", "0.05")]);
    let mut a = args(LoadProfile::rate(20.0));
    a.duration = Duration::from_secs(2);
    let report = load(&a, &server.url());
    assert_eq!(report.stopped_by, StopReason::Duration);
    // 20/s for 2 s: 40 arrivals; a few fewer if a busy machine delays the loop past the end.
    assert!((36..=40).contains(&report.sent), "{report:#?}");
    assert_eq!(report.ok, report.sent, "{report:#?}");
    assert_eq!(
        server.metric(r#"inference_requests_total{code="200"}"#) as u64,
        report.ok
    );
    // Answers take 50 ms and arrivals are 50 ms apart: idle connections are reused.
    assert!(report.connections_opened <= 5, "{report:#?}");
}

/// Balances TCP connections (not requests) round-robin over `backends`, as kube-proxy does.
async fn connection_balancer(
    backends: Vec<SocketAddr>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind balancer");
    let addr = listener.local_addr().expect("balancer address");
    let task = tokio::spawn(async move {
        let mut next = 0usize;
        while let Ok((mut inbound, _)) = listener.accept().await {
            let backend = backends[next % backends.len()];
            next += 1;
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, task)
}

#[test]
fn new_connections_spread_over_pods_behind_a_connection_balancer() {
    let x = Server::start("pod-x", &[("WORKERS", "2"), ("INFERENCE_SECONDS", "0.01")]);
    let y = Server::start("pod-y", &[("WORKERS", "2"), ("INFERENCE_SECONDS", "0.01")]);
    let rt = runtime();
    let (kept, renewed) = rt.block_on(async {
        let (addr, balancer) = connection_balancer(vec![x.addr, y.addr]).await;
        let url = format!("http://{addr}");
        let mut a = args(LoadProfile::concurrency(1));
        a.max_requests = Some(10);
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let kept = generate(&a, &url, rx.clone()).await.expect("load");
        a.reconnect_every = 1;
        let renewed = generate(&a, &url, rx).await.expect("load");
        balancer.abort();
        (kept, renewed)
    });
    // One kept-alive connection: every request lands on the pod it reached first.
    assert_eq!(kept.pods.len(), 1, "{kept:#?}");
    assert_eq!(kept.pods.values().sum::<u64>(), 10);
    // A connection per request: the balancer alternates pods.
    assert_eq!(renewed.pods.get("pod-x"), Some(&5), "{renewed:#?}");
    assert_eq!(renewed.pods.get("pod-y"), Some(&5), "{renewed:#?}");
    // And each server counted exactly what the load saw answered by it.
    for (server, pod) in [(&x, "pod-x"), (&y, "pod-y")] {
        let counted = server.metric(r#"inference_requests_total{code="200"}"#) as u64;
        let seen = kept.pods.get(pod).copied().unwrap_or(0) + renewed.pods[pod];
        assert_eq!(counted, seen, "{pod}");
    }
}

#[test]
fn an_unexpected_status_is_other() {
    let server = Server::start("pod-i", &[("INFERENCE_SECONDS", "0")]);
    let mut a = args(LoadProfile::concurrency(1));
    a.max_requests = Some(2);
    // POST /nope/infer: the server answers 404.
    let report = load(&a, &format!("{}/nope", server.url()));
    assert_eq!(report.errors.other, 2, "{report:#?}");
    assert_eq!(count(&report, "404"), 2);
    assert!(
        report
            .other_error_examples
            .iter()
            .any(|e| e.contains("404")),
        "{report:#?}"
    );
}

#[test]
fn run_via_port_forward_loads_through_the_forward() {
    let server = Server::start("pod-j", &[("INFERENCE_SECONDS", "0")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = PortForwardSpec {
        kubectl: fake_kubectl(dir.path(), server.addr.port()),
        context: None,
        namespace: "default".into(),
        service: "inference".into(),
        remote_port: 3000,
    };
    let mut a = args(LoadProfile::concurrency(1));
    a.max_requests = Some(2);
    let report = runtime()
        .block_on(kscale::load::run_via_port_forward(
            &a,
            &runner(),
            &spec,
            Duration::from_secs(10),
        ))
        .expect("load through the forward");
    assert_eq!(report.ok, 2, "{report:#?}");
    assert_eq!(report.pods.get("pod-j"), Some(&2));
}

#[test]
fn rate_steps_pause_and_resume_on_schedule() {
    let server = Server::start("pod-k", &[("WORKERS", "4"), ("INFERENCE_SECONDS", "0.02")]);
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("rate.csv");
    let mut a = args(LoadProfile::parse_rate("0s:10,1s:0,3s:20").expect("steps"));
    a.duration = Duration::from_secs(4);
    a.record = Some(csv.clone());
    a.interval = Duration::from_millis(250);
    let report = load(&a, &server.url());
    // 10 arrivals in the first second, none for two, 20 in the last second.
    assert!((28..=30).contains(&report.sent), "{report:#?}");
    assert_eq!(report.ok, report.sent, "{report:#?}");
    assert_eq!(
        server.metric(r#"inference_requests_total{code="200"}"#) as u64,
        report.ok
    );
    let rows = kscale::timeline::read_csv(&csv).expect("recording");
    let paused: Vec<_> = rows
        .iter()
        .filter(|r| (1.5..2.8).contains(&r.t_seconds))
        .collect();
    assert!(!paused.is_empty(), "{rows:#?}");
    assert!(
        paused
            .iter()
            .all(|r| r.send_rate == Some(0.0) && r.load == Some(0.0)),
        "nothing is sent while the rate is 0: {paused:#?}"
    );
}

#[test]
fn a_dropped_stop_sender_is_not_a_stop() {
    let server = Server::start("pod-l", &[("INFERENCE_SECONDS", "0")]);
    let mut a = args(LoadProfile::concurrency(1));
    a.max_requests = Some(3);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    drop(stop_tx);
    let report = runtime()
        .block_on(generate(&a, &server.url(), stop_rx))
        .expect("load runs");
    assert_eq!(report.stopped_by, StopReason::MaxRequests);
    assert_eq!(report.ok, 3);
}

/// A TCP server on 127.0.0.1 that gives every connection to `serve` on its own thread; it
/// lives as long as the test process, and each connection ends by itself.
fn raw_server(serve: fn(TcpStream)) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    format!("http://{addr}")
}

/// Reads a request head (the body kscale sends is small and follows it in the same buffer).
fn read_head(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
}

#[test]
fn an_endless_body_is_capped_and_counted_as_a_bad_answer() {
    let url = raw_server(|mut stream| {
        read_head(&mut stream);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        // 64 MiB at most: endless for the client, bounded for the test.
        for _ in 0..1024 {
            if stream.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    let mut a = args(LoadProfile::concurrency(1));
    a.max_requests = Some(3);
    let report = load(&a, &url);
    assert_eq!(report.ok, 0, "{report:#?}");
    assert_eq!(report.errors.bad_answer, 3, "{report:#?}");
    assert!(
        report
            .other_error_examples
            .iter()
            .any(|e| e.contains("larger than")),
        "{report:#?}"
    );
}

#[test]
fn an_answer_that_is_not_the_servers_json_is_a_bad_answer() {
    let url = raw_server(|mut stream| {
        read_head(&mut stream);
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nplain");
    });
    let mut a = args(LoadProfile::concurrency(1));
    a.max_requests = Some(2);
    let report = load(&a, &url);
    assert_eq!(report.ok, 0, "{report:#?}");
    assert_eq!(report.errors.bad_answer, 2, "{report:#?}");
}

#[test]
fn clients_back_off_when_every_request_fails() {
    // Accepts and closes at once: every request fails without a status.
    let url = raw_server(drop);
    let mut a = args(LoadProfile::concurrency(4));
    a.duration = Duration::from_secs(3);
    let report = load(&a, &url);
    assert_eq!(report.ok, 0);
    // Without a back-off this was about 19,000 requests in 4 s; with it each client sends a
    // few (0.25 s, 0.5 s, 1 s, 2 s pauses). The bound leaves room for a slow machine.
    assert!(
        report.sent <= 100,
        "{} requests in 3 s: {report:#?}",
        report.sent
    );
    assert!(report.sent >= 4, "{report:#?}");
}

/// Runs the real `kscale` binary (in an empty directory, the clean environment) and returns its
/// exit code, stdout and stderr.
fn kscale(args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = crate::support::kscale(dir.path())
        .args(args)
        .output()
        .expect("kscale runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kscale --output json load --url URL ARGS...` through the real binary: its report.
fn load_json(url: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--output", "json", "load", "--url", url, "-q"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = kscale(&all);
    assert_eq!(code, Some(0), "kscale {all:?}: {stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("kscale {all:?}: not one JSON document ({e}): {stdout}"))
}

fn f64_at(doc: &serde_json::Value, pointer: &str) -> f64 {
    doc.pointer(pointer)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or_else(|| panic!("no number at {pointer}: {doc:#}"))
}

#[test]
fn openai_completions_and_chat_through_the_real_binary() {
    // 2 workers, 0.4 s per inference of 4 tokens: a token every 0.1 s.
    let server = Server::start(
        "pod-o",
        &[
            ("WORKERS", "2"),
            ("MAX_QUEUE", "64"),
            ("INFERENCE_SECONDS", "0.4"),
        ],
    );
    let url = server.url();

    let whole = load_json(
        &url,
        &[
            "--api",
            "completions",
            "-c",
            "2",
            "-n",
            "4",
            "--max-tokens",
            "4",
            "--prompt",
            "hi",
        ],
    );
    assert_eq!(whole["url"], format!("{url}/v1/completions"));
    assert_eq!(whole["api"], "completions");
    assert_eq!(whole["stream"], false);
    assert_eq!(whole["ok"], 4, "{whole:#}");
    assert_eq!(whole["errors"]["bad_answer"], 0, "{whole:#}");
    assert_eq!(
        whole["pods"]["pod-o"], 4,
        "the pod comes from x-kscale-pod: {whole:#}"
    );
    assert!(
        whole["ttft_seconds"].is_null(),
        "no stream, no TTFT: {whole:#}"
    );
    assert_eq!(whole["completion_tokens"], 16, "{whole:#}");
    assert!(f64_at(&whole, "/tokens_per_second") > 0.0);
    assert!(f64_at(&whole, "/latency_seconds/min") >= 0.39, "{whole:#}");

    let streamed = load_json(
        &url,
        &[
            "--api",
            "chat",
            "--stream",
            "-c",
            "2",
            "-n",
            "6",
            "--max-tokens",
            "4",
            "--model",
            "m",
        ],
    );
    assert_eq!(streamed["url"], format!("{url}/v1/chat/completions"));
    assert_eq!(streamed["stream"], true);
    assert_eq!(streamed["ok"], 6, "{streamed:#}");
    assert_eq!(streamed["errors"]["bad_answer"], 0, "{streamed:#}");
    assert_eq!(
        streamed["stream_events"], 24,
        "4 token events per answer: {streamed:#}"
    );
    assert_eq!(streamed["completion_tokens"], 24, "{streamed:#}");
    assert_eq!(
        f64_at(&streamed, "/ttft_seconds/count"),
        6.0,
        "{streamed:#}"
    );
    // The first token comes after a quarter of the inference, and well before the answer ends.
    let (ttft_min, ttft_p50, ttft_max) = (
        f64_at(&streamed, "/ttft_seconds/min"),
        f64_at(&streamed, "/ttft_seconds/p50"),
        f64_at(&streamed, "/ttft_seconds/max"),
    );
    let (latency_min, latency_p50, latency_max) = (
        f64_at(&streamed, "/latency_seconds/min"),
        f64_at(&streamed, "/latency_seconds/p50"),
        f64_at(&streamed, "/latency_seconds/max"),
    );
    assert!(ttft_min >= 0.095, "{streamed:#}");
    assert!(latency_min >= 0.39, "{streamed:#}");
    assert!(
        ttft_p50 <= latency_p50 && ttft_max <= latency_max,
        "{streamed:#}"
    );
    assert!(
        latency_min - ttft_min >= 0.25,
        "the last three tokens take 0.3 s after the first: {streamed:#}"
    );
    for key in ["p90", "p99", "mean"] {
        assert!(
            streamed["ttft_seconds"][key].is_number(),
            "{key}: {streamed:#}"
        );
    }
    // kscale-server counted what kscale saw, streams included.
    assert_eq!(
        server.metric(r#"inference_requests_total{code="200"}"#),
        10.0
    );
    assert_eq!(
        server.metric("inference_request_duration_seconds_count"),
        10.0
    );

    // The text summary has the same lines.
    let (code, stdout, stderr) = kscale(&[
        "load",
        "--url",
        &url,
        "-q",
        "--api",
        "completions",
        "--stream",
        "-c",
        "1",
        "-n",
        "2",
        "--max-tokens",
        "2",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("time to first token (s): min "), "{stdout}");
    assert!(stdout.contains("completion tokens: 4 ("), "{stdout}");
    assert!(stdout.contains("ok answers per pod: pod-o 2"), "{stdout}");
}

#[test]
fn bad_api_flags_are_exit_2_with_a_clear_message() {
    for (args, says) in [
        (
            vec!["--api", "chat", "--max-tokens", "0"],
            "--max-tokens must be between 1 and 131072, not 0",
        ),
        (
            vec!["--api", "completions", "--max-tokens", "200000"],
            "--max-tokens must be between 1 and 131072, not 200000",
        ),
        (
            vec!["--api", "chat", "--max-tokens", "many"],
            "--max-tokens",
        ),
        (
            vec!["--stream"],
            "--stream applies only to --api completions or --api chat",
        ),
        (
            vec!["--api", "infer", "--model", "m"],
            "--model applies only to",
        ),
        (vec!["--api", "grpc"], "--api"),
    ] {
        // A closed port: a run that started would fail with exit 1, not 2.
        let mut all = vec!["load", "--url", "http://127.0.0.1:9", "-c", "1", "-n", "1"];
        all.extend_from_slice(&args);
        let (code, _, stderr) = kscale(&all);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[test]
fn dry_run_says_what_an_openai_request_would_be() {
    let service = crate::support::fixtures::Untouched::new();
    let url = service.url.as_str();
    let (code, stdout, stderr) = kscale(&[
        "--dry-run",
        "--output",
        "json",
        "load",
        "--url",
        url,
        "-c",
        "1",
        "--api",
        "chat",
        "--stream",
        "--prompt",
        "hi",
        "--max-tokens",
        "8",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["sent"], 0);
    assert_eq!(doc["request"]["method"], "POST");
    assert_eq!(doc["request"]["path"], "/v1/chat/completions");
    assert_eq!(
        doc["request"]["body"],
        serde_json::json!({
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, "stream": true
        })
    );
    assert!(
        stderr.contains(&format!("POST {url}/v1/chat/completions, OpenAI chat body")),
        "{stderr}"
    );
    service.assert_untouched("kscale --dry-run load");
}

fn streaming(kind: kscale::load::api::ApiKind) -> LoadArgs {
    let mut a = args(LoadProfile::concurrency(1));
    a.max_requests = Some(2);
    a.api = Some(kind);
    a.stream = true;
    a
}

#[test]
fn a_stream_without_done_or_not_an_event_stream_is_a_bad_answer() {
    use kscale::load::api::ApiKind;
    let no_done = raw_server(|mut stream| {
        read_head(&mut stream);
        let body = "data: {\"choices\":[{\"text\":\"x\"}]}\n\n";
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let report = load(&streaming(ApiKind::Completions), &no_done);
    assert_eq!(report.ok, 0, "{report:#?}");
    assert_eq!(report.errors.bad_answer, 2, "{report:#?}");
    assert!(
        report
            .other_error_examples
            .iter()
            .any(|e| e.contains("[DONE]")),
        "{report:#?}"
    );

    let json = raw_server(|mut stream| {
        read_head(&mut stream);
        let body = r#"{"choices":[{"message":{"content":"x"}}]}"#;
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
    });
    let report = load(&streaming(ApiKind::Chat), &json);
    assert_eq!(report.errors.bad_answer, 2, "{report:#?}");
    assert!(
        report
            .other_error_examples
            .iter()
            .any(|e| e.contains("not text/event-stream")),
        "{report:#?}"
    );
}

#[test]
fn an_endless_stream_of_small_events_is_capped_in_all() {
    let url = raw_server(|mut stream| {
        read_head(&mut stream);
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let event = "data: {\"choices\":[{\"text\":\"x\"}]}\n\n";
        let chunk = format!("{:x}\r\n{event}\r\n", event.len());
        // Each chunk is far below the cap; 10 MB in all is far above it.
        for _ in 0..300_000 {
            if stream.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
    });
    let report = load(&streaming(kscale::load::api::ApiKind::Completions), &url);
    assert_eq!(report.ok, 0, "{report:#?}");
    assert_eq!(report.errors.bad_answer, 2, "{report:#?}");
    // 64 KiB + 1 KiB for each of the 16 tokens asked for.
    let cap = 64 * 1024 + 16 * 1024;
    assert!(
        report
            .other_error_examples
            .iter()
            .any(|e| e.contains(&format!("larger than {cap} bytes"))),
        "{report:#?}"
    );
}
