//! `cargo xtask bench-server`: throughput, /metrics latency under a full queue, memory, and drain
//! time of the release `kscale-server`, measured with `wrk` on 127.0.0.1. Prints a table.
//!
//! The load generator shares the machine with the server, so figures are lower bounds of what
//! the server does alone; the machine and its load average are printed with them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{process, project_root, run};

/// Connections wrk uses for the throughput figure (the setting).
const CONNECTIONS: u32 = 64;
/// Requests queued behind a busy worker for the /metrics and memory figures.
const QUEUED: usize = 1_000;
/// Idle keep-alive connections for the memory figure.
const IDLE_CONNECTIONS: usize = 10_000;
/// Open files this process and the server need: the idle connections on both ends, plus slack.
const NOFILE_NEEDED: u64 = IDLE_CONNECTIONS as u64 + 1_500;

struct Row {
    what: String,
    value: String,
    target: &'static str,
}

/// Runs every measurement and prints the table.
pub fn bench_server(args: &[String]) -> anyhow::Result<()> {
    let mut seconds: u64 = 10;
    let mut hostile_only = false;
    let mut binary_arg: Option<PathBuf> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = rest
                    .next()
                    .and_then(|s| s.parse().ok())
                    .context("--seconds needs a whole number, e.g. --seconds 10")?;
            }
            "--hostile" => hostile_only = true,
            "--binary" => {
                binary_arg = Some(
                    rest.next()
                        .map(PathBuf::from)
                        .context("--binary needs the path of a kscale-server binary")?,
                );
            }
            other => bail!(
                "unknown argument `{other}`; usage: cargo xtask bench-server [--seconds N] [--hostile] [--binary PATH]"
            ),
        }
    }
    if hostile_only {
        // The hostile figures need no wrk; --binary measures another build (e.g. the one
        // before a fix) with the same clients.
        let binary = match binary_arg {
            Some(b) => b,
            None => build_release()?,
        };
        let mut rows = Vec::new();
        hostile(&binary, &mut rows)?;
        print_rows("kscale-server under hostile clients", &rows);
        return Ok(());
    }
    if !crate::deps::have("wrk") {
        bail!("`wrk` is not installed; run `cargo xtask deps` (Debian package wrk)");
    }
    raise_open_file_limit()?;
    let binary = match binary_arg {
        Some(b) => b,
        None => build_release()?,
    };

    let mut rows = Vec::new();
    throughput(&binary, seconds, &mut rows)?;
    under_full_queue(&binary, seconds, &mut rows)?;
    idle_connections(&binary, &mut rows)?;
    drain(&binary, &mut rows)?;
    hostile(&binary, &mut rows)?;
    print_rows("kscale-server benchmark", &rows);
    Ok(())
}

fn build_release() -> anyhow::Result<PathBuf> {
    run(
        "cargo",
        &["build", "--release", "--locked", "-p", "kscale-server"],
    )?;
    let binary = target_dir().join("release").join("kscale-server");
    if !binary.exists() {
        bail!("{} is missing after the build", binary.display());
    }
    Ok(binary)
}

fn print_rows(title: &str, rows: &[Row]) {
    println!();
    println!("{title}, {}", machine());
    println!("{:<62} {:>18}  target", "measurement", "value");
    println!("{}", "-".repeat(96));
    for row in rows {
        println!("{:<62} {:>18}  {}", row.what, row.value, row.target);
    }
}

/// The hostile-client figures: a body dribbled one byte per segment, clients that never read
/// their answers, and probes under a connection flood.
fn hostile(binary: &PathBuf, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    dribble(binary, rows)?;
    never_reading(binary, rows)?;
    flood(binary, rows)
}

fn dribble(binary: &PathBuf, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    const CLIENTS: usize = 10;
    const FOR: Duration = Duration::from_secs(8);
    let server = Server::start(binary, &[("READ_TIMEOUT_SECONDS", "30")])?;
    http_get(server.addr, "/healthz")?;
    let idle = server.rss_mib()?;
    eprintln!("bench: {CLIENTS} clients dribble a body one byte per segment for {FOR:?}");
    let addr = server.addr;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut stream = TcpStream::connect(addr)?;
                stream.set_nodelay(true)?;
                stream.write_all(
                    b"POST /infer HTTP/1.1\r\nHost: b\r\nContent-Length: 65536\r\n\r\n",
                )?;
                let start = Instant::now();
                let mut sent = 0;
                while start.elapsed() < FOR {
                    stream.write_all(b" ")?;
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(sent)
            })
        })
        .collect();
    let mut peak = idle;
    while clients.iter().any(|c| !c.is_finished()) {
        peak = peak.max(server.rss_mib()?);
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut bytes = 0;
    for c in clients {
        bytes += c
            .join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    // The clients' sockets closed with their threads; give the server a moment to free them.
    std::thread::sleep(Duration::from_secs(2));
    let after = server.rss_mib()?;
    rows.push(Row {
        what: format!("RSS, {CLIENTS} clients dribbling 1 byte/segment for 8 s ({bytes} B)"),
        value: format!("{idle:.1} -> {peak:.1} -> {after:.1} MiB"),
        target: "peak < 64 MiB",
    });
    Ok(())
}

/// Opens a connection that pipelines requests and never reads; returns once its writes block.
fn stuck_client(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    let requests = b"GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n".repeat(256);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if stream.write_all(&requests).is_err() {
            return Ok(stream);
        }
    }
    bail!("the server kept reading a client that never reads for 60 s")
}

/// Polls `probe` until it succeeds or `limit` passes; the time it took, or `None`.
fn time_until(limit: Duration, mut probe: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if probe() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// One request with a read timeout; the status, or `None`.
fn status_within(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let mut stream = stream;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: b\r\n\r\n").ok()?;
    read_status(&mut BufReader::new(stream)).ok()
}

fn seconds_or_more(d: Option<Duration>, limit: Duration) -> String {
    d.map_or_else(
        || format!("> {:.0} s", limit.as_secs_f64()),
        |d| format!("{:.2} s", d.as_secs_f64()),
    )
}

fn never_reading(binary: &PathBuf, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    const CLIENTS: usize = 50;
    const LIMIT: Duration = Duration::from_secs(30);
    let mut server = Server::start(
        binary,
        &[
            ("MAX_CONNECTIONS", "50"),
            ("INFERENCE_SECONDS", "0"),
            ("DRAIN_SECONDS", "30"),
            ("ACCEPT_GRACE_SECONDS", "0"),
        ],
    )?;
    eprintln!("bench: {CLIENTS} clients pipeline requests and never read (MAX_CONNECTIONS=50)");
    // All at once, so that every slot is held when the clock starts.
    let addr = server.addr;
    let stuck: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| std::thread::spawn(move || stuck_client(addr)))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| {
            t.join()
                .map_err(|_| anyhow::anyhow!("client thread panicked"))?
        })
        .collect::<anyhow::Result<_>>()?;
    let started = Instant::now();
    let healthz = time_until(LIMIT, || {
        status_within(server.addr, "/healthz", Duration::from_secs(2)) == Some(200)
    });
    rows.push(Row {
        what: format!("/healthz answered while {CLIENTS} never-reading clients hold every slot"),
        value: seconds_or_more(healthz, LIMIT),
        target: "",
    });
    let inference = time_until(LIMIT.saturating_sub(started.elapsed()), || {
        status_within(server.addr, "/", Duration::from_secs(2)) == Some(200)
    })
    .map(|_| started.elapsed());
    rows.push(Row {
        what: "  a new inference client served again (WRITE_TIMEOUT_SECONDS 10)".into(),
        value: seconds_or_more(inference, LIMIT),
        target: "",
    });
    // The drain with clients that never read: a fresh set of them, then SIGTERM.
    let more: Vec<TcpStream> = (0..10)
        .map(|_| std::thread::spawn(move || stuck_client(addr)))
        .collect::<Vec<_>>()
        .into_iter()
        .filter_map(|t| t.join().ok().and_then(Result::ok))
        .collect();
    let signalled = Instant::now();
    let _ = process::signal(server.child.id(), "-TERM", false);
    let exited = time_until(LIMIT + Duration::from_secs(10), || {
        matches!(server.child.try_wait(), Ok(Some(_)))
    })
    .map(|_| signalled.elapsed());
    rows.push(Row {
        what: format!(
            "  SIGTERM to exit with {} never-reading clients (DRAIN_SECONDS 30)",
            more.len()
        ),
        value: seconds_or_more(exited, LIMIT + Duration::from_secs(10)),
        target: "",
    });
    drop(stuck);
    drop(more);
    Ok(())
}

fn flood(binary: &PathBuf, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    const MAX: usize = 2_000;
    const PENDING: usize = 500;
    const LIMIT: Duration = Duration::from_secs(10);
    let server = Server::start(
        binary,
        &[("MAX_CONNECTIONS", "2000"), ("KEEP_ALIVE_SECONDS", "120")],
    )?;
    eprintln!(
        "bench: {MAX} idle keep-alive connections at MAX_CONNECTIONS, {PENDING} more waiting"
    );
    let mut held = Vec::with_capacity(MAX);
    for i in 0..MAX {
        let stream = send_only(server.addr, "/healthz")
            .with_context(|| format!("connection {i} of {MAX}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut reader = BufReader::new(stream);
        read_status(&mut reader)?;
        held.push(reader);
    }
    let pending: Vec<TcpStream> = (0..PENDING)
        .filter_map(|_| TcpStream::connect_timeout(&server.addr, Duration::from_millis(200)).ok())
        .collect();
    let mut times = Vec::new();
    for _ in 0..10 {
        let start = Instant::now();
        let ok = status_within(server.addr, "/healthz", LIMIT) == Some(200);
        times.push(ok.then(|| start.elapsed()));
    }
    let answered: Vec<Duration> = times.iter().flatten().copied().collect();
    let value = if answered.len() == times.len() {
        let mut sorted = answered.clone();
        sorted.sort();
        format!(
            "p50 {:.1} ms, max {:.1} ms",
            sorted[sorted.len() / 2].as_secs_f64() * 1000.0,
            sorted[sorted.len() - 1].as_secs_f64() * 1000.0
        )
    } else {
        format!(
            "{} of {} unanswered in {:.0} s",
            times.len() - answered.len(),
            times.len(),
            LIMIT.as_secs_f64()
        )
    };
    rows.push(Row {
        what: format!(
            "/healthz, {MAX} idle connections at MAX_CONNECTIONS + {} waiting (10 probes)",
            pending.len()
        ),
        value,
        target: "",
    });
    drop(pending);
    drop(held);
    Ok(())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_relative() {
                project_root().join(p)
            } else {
                p
            }
        })
        .unwrap_or_else(|| project_root().join("target"))
}

/// The machine and its load, for the heading of a benchmark table.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cpus} cores ({model}), load average {}", load_average())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// The soft open-file limit, raised towards the hard limit with prlimit(1) when too low for the
/// idle-connection figure. Children (the server) inherit it.
fn raise_open_file_limit() -> anyhow::Result<()> {
    let soft = open_file_limit()?;
    if soft >= NOFILE_NEEDED {
        return Ok(());
    }
    let pid = std::process::id().to_string();
    let prlimit = process::output(Command::new("prlimit").args([
        "--pid",
        &pid,
        &format!("--nofile={NOFILE_NEEDED}:{NOFILE_NEEDED}"),
    ]))
    .map_or_else(|e| e.to_string(), |_| "ran".into());
    let raised = open_file_limit()?;
    if raised < NOFILE_NEEDED {
        bail!(
            "the open-file limit is {raised} and the benchmark needs {NOFILE_NEEDED} \
             (prlimit: {prlimit}); raise it with `ulimit -n {NOFILE_NEEDED}` and rerun"
        );
    }
    Ok(())
}

fn open_file_limit() -> anyhow::Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").context("read /proc/self/limits")?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .context("no `Max open files` in /proc/self/limits")
}

/// A release server child, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(binary: &PathBuf, env: &[(&str, &str)]) -> anyhow::Result<Server> {
        // Nothing set on the machine reaches the server: its settings are unprefixed (WORKERS,
        // MAX_BODY_BYTES, ...), so the environment starts empty.
        let mut child = Command::new(binary)
            .env_clear()
            .env("BIND", "127.0.0.1")
            .env("PORT", "0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("read the server's `listening on` line")?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("unexpected first line from the server: {line:?}"))?;
        Ok(Server { child, addr })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("read the server's /proc status")?;
        let kib: f64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .context("no VmRSS for the server")?;
        Ok(kib / 1024.0)
    }

    fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let body = http_get(self.addr, "/metrics")?;
        body.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .and_then(|v| v.trim().parse().ok())
            })
            .with_context(|| format!("no metric {name}"))
    }

    fn wait_metric(&self, name: &str, want: f64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.metric(name)?;
            if value == want {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{name} is {value}, not {want}, after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Opens a connection and sends one request without reading the answer.
fn send_only(addr: SocketAddr, path: &str) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    Ok(stream)
}

/// Reads one response head and its Content-Length body; returns the status code.
fn read_status(reader: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(status)
}

struct WrkResult {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: String,
}

fn wrk(url: &str, threads: u32, connections: u32, seconds: u64) -> anyhow::Result<WrkResult> {
    let text = process::exec(
        Command::new("wrk").args([
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ]),
        process::Options {
            // wrk stops by itself after `seconds`; this only ends a hung run.
            deadline: Some(Duration::from_secs(seconds + 60)),
            missing: Some("run `cargo xtask deps` (Debian package wrk)"),
            ..process::Options::default()
        },
    )?;
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let requests_per_second = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    let percentile = |p: &str| -> anyhow::Result<f64> {
        field(p)
            .and_then(duration_ms)
            .with_context(|| format!("no {p} latency in wrk output:\n{text}"))
    };
    let errors = [field("Socket errors:"), field("Non-2xx or 3xx responses:")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
    Ok(WrkResult {
        requests_per_second,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
        errors,
    })
}

/// wrk's durations: `180.00us`, `1.20ms`, `2.00s`.
fn duration_ms(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.trim().parse::<f64>().ok().map(|n| n * factor)
}

fn throughput(binary: &PathBuf, seconds: u64, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let server = Server::start(binary, &[("INFERENCE_SECONDS", "0"), ("MAX_QUEUE", "64")])?;
    eprintln!("bench: GET / at INFERENCE_SECONDS=0, {CONNECTIONS} connections, {seconds} s");
    let infer = wrk(&server.url("/"), 2, CONNECTIONS, seconds)?;
    rows.push(Row {
        what: format!("GET / at INFERENCE_SECONDS=0, {CONNECTIONS} connections: req/s"),
        value: format!("{:.0}", infer.requests_per_second),
        target: ">= 60000",
    });
    rows.push(Row {
        what: "  latency p50 / p99".into(),
        value: format!("{:.2} / {:.2} ms", infer.p50_ms, infer.p99_ms),
        target: "",
    });
    if !infer.errors.is_empty() {
        rows.push(Row {
            what: "  wrk errors".into(),
            value: infer.errors,
            target: "none",
        });
    }
    let bare = wrk(&server.url("/healthz"), 2, CONNECTIONS, seconds.min(5))?;
    rows.push(Row {
        what: format!("GET /healthz (no queue, for scale), {CONNECTIONS} connections: req/s"),
        value: format!("{:.0}", bare.requests_per_second),
        target: "",
    });
    Ok(())
}

fn under_full_queue(binary: &PathBuf, seconds: u64, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let queue = QUEUED.to_string();
    let server = Server::start(
        binary,
        &[
            ("INFERENCE_SECONDS", "3600"),
            ("WORKERS", "1"),
            ("MAX_QUEUE", &queue),
        ],
    )?;
    // Measured after a few requests so lazily allocated buffers are counted.
    for _ in 0..10 {
        http_get(server.addr, "/metrics")?;
    }
    rows.push(Row {
        what: "RSS idle".into(),
        value: format!("{:.1} MiB", server.rss_mib()?),
        target: "< 16 MiB",
    });
    eprintln!("bench: queueing {QUEUED} requests behind one busy worker");
    let mut held = Vec::with_capacity(QUEUED + 1);
    for _ in 0..=QUEUED {
        held.push(send_only(server.addr, "/")?);
    }
    server.wait_metric(
        "inference_queue_depth",
        QUEUED as f64,
        Duration::from_secs(60),
    )?;
    rows.push(Row {
        what: format!("RSS with {QUEUED} requests queued"),
        value: format!("{:.1} MiB", server.rss_mib()?),
        target: "< 48 MiB",
    });
    eprintln!("bench: /metrics latency with {QUEUED} queued, one scraper, {seconds} s");
    let scrape = wrk(&server.url("/metrics"), 1, 1, seconds)?;
    rows.push(Row {
        what: format!("/metrics with {QUEUED} queued, 1 connection: p50 / p99"),
        value: format!("{:.2} / {:.2} ms", scrape.p50_ms, scrape.p99_ms),
        target: "p99 < 5 ms",
    });
    let busy = wrk(&server.url("/metrics"), 2, 16, seconds.min(5))?;
    rows.push(Row {
        what: format!("/metrics with {QUEUED} queued, 16 connections: p50 / p99"),
        value: format!("{:.2} / {:.2} ms", busy.p50_ms, busy.p99_ms),
        target: "",
    });
    drop(held);
    Ok(())
}

fn idle_connections(binary: &PathBuf, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let server = Server::start(
        binary,
        &[("KEEP_ALIVE_SECONDS", "600"), ("MAX_CONNECTIONS", "20000")],
    )?;
    eprintln!("bench: opening {IDLE_CONNECTIONS} keep-alive connections, one request each");
    let mut held = Vec::with_capacity(IDLE_CONNECTIONS);
    for i in 0..IDLE_CONNECTIONS {
        let stream = send_only(server.addr, "/healthz")
            .with_context(|| format!("connection {i} of {IDLE_CONNECTIONS}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut reader = BufReader::new(stream);
        let status = read_status(&mut reader)?;
        if status != 200 {
            bail!("connection {i}: /healthz answered {status}");
        }
        held.push(reader);
    }
    rows.push(Row {
        what: format!("RSS with {IDLE_CONNECTIONS} idle keep-alive connections"),
        value: format!("{:.1} MiB", server.rss_mib()?),
        target: "< 96 MiB",
    });
    drop(held);
    Ok(())
}

fn drain(binary: &PathBuf, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    const INFERENCE: f64 = 0.1;
    const MAX_QUEUE: usize = 64;
    let mut server = Server::start(
        binary,
        &[
            ("INFERENCE_SECONDS", "0.1"),
            ("WORKERS", "1"),
            ("MAX_QUEUE", "64"),
            ("ACCEPT_GRACE_SECONDS", "0"),
        ],
    )?;
    let mut clients = Vec::with_capacity(MAX_QUEUE + 1);
    for _ in 0..=MAX_QUEUE {
        clients.push(BufReader::new(send_only(server.addr, "/")?));
    }
    // Signal once the queue is full; on a loaded machine the first requests may finish while
    // the rest connect, so after 10 s the signal goes anyway and the row says what was queued.
    let deadline = Instant::now() + Duration::from_secs(10);
    let queued = loop {
        let depth = server.metric("inference_queue_depth")?;
        if depth >= MAX_QUEUE as f64 || Instant::now() > deadline {
            break depth;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let signalled = Instant::now();
    if !process::signal(server.child.id(), "-TERM", false) {
        bail!("kill -TERM {} failed", server.child.id());
    }
    let mut ok = 0;
    for reader in &mut clients {
        if read_status(reader).is_ok_and(|s| s == 200) {
            ok += 1;
        }
    }
    let exit = loop {
        if let Some(exit) = server.child.try_wait()? {
            break exit;
        }
        if signalled.elapsed() > Duration::from_secs(120) {
            bail!("the server did not exit within 120 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = signalled.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!(
            "drain after SIGTERM, {queued:.0} queued + 1 running x {INFERENCE} s, no grace"
        ),
        value: format!("{took:.2} s"),
        target: "",
    });
    rows.push(Row {
        what: "  ideal (requests x inference) / answered 200 / exit code".into(),
        value: format!(
            "{:.2} s / {ok} of {} / {}",
            (queued + 1.0) * INFERENCE,
            clients.len(),
            exit.code().map_or("signal".into(), |c| c.to_string())
        ),
        target: "all / 0",
    });
    Ok(())
}
