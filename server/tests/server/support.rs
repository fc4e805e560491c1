//! Test support: the real server binary as a child process, and a minimal blocking HTTP/1.1
//! client over `std::net::TcpStream` that gives full control of connections (keep-alive reuse,
//! half-sent requests, disconnects).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The only variables the server inherits from the test process (`PATH` finds a wrapper such
/// as `prlimit`; `LLVM_PROFILE_FILE` is coverage output). Every other one is cleared, so neither
/// a developer's shell nor CI can change a test: the server's settings are unprefixed
/// (`WORKERS`, `MAX_BODY_BYTES`, ..., `RUST_LOG`, `POD_NAME`).
const INHERITED: &[&str] = &["PATH", "LLVM_PROFILE_FILE"];

/// The one way these tests start the server: through `wrapper` (none, or e.g.
/// `prlimit --nofile=256 --`), on 127.0.0.1 with a free port, with the clean environment and
/// `env` on top, stdin closed and both output streams piped.
fn command(wrapper: &[&str], env: &[(&str, &str)]) -> Command {
    let binary = env!("CARGO_BIN_EXE_kscale-server");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command.env_clear();
    for name in INHERITED {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command
        .env("BIND", "127.0.0.1")
        .env("PORT", "0")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the binary with `args` and `env` and waits for it to exit; for invalid configurations.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let child = command(&[], env)
        .args(args)
        .spawn()
        .expect("spawn kscale-server");
    let mut guard = ChildGuard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let child = guard.0.as_mut().expect("child present");
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut out = String::new();
            let mut err = String::new();
            if let Some(mut s) = child.stdout.take() {
                s.read_to_string(&mut out).expect("read stdout");
            }
            if let Some(mut s) = child.stderr.take() {
                s.read_to_string(&mut err).expect("read stderr");
            }
            return (status, out, err);
        }
        assert!(
            Instant::now() < deadline,
            "kscale-server did not exit within 20 s for {args:?} {env:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Kills the child on drop, even when an assertion failed.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running server process, killed on drop.
pub struct Server {
    guard: ChildGuard,
    /// Where it listens.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// The thread copying stderr; joined once the process exits so nothing written is missed.
    stderr_reader: Option<thread::JoinHandle<()>>,
    exit: Option<ExitStatus>,
}

impl Server {
    /// Starts the server on 127.0.0.1 with a free port and waits for its `listening on` line.
    pub fn start(env: &[(&str, &str)]) -> Server {
        Self::start_wrapped(&[], env)
    }

    /// Like [`Server::start`], run through `wrapper` (e.g. `prlimit --nofile=256 --`).
    pub fn start_wrapped(wrapper: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = command(wrapper, &[("POD_NAME", "test-pod")])
            .envs(env.iter().copied())
            .spawn()
            .expect("spawn kscale-server");
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr_pipe = child.stderr.take().expect("stderr piped");
        let guard = ChildGuard(Some(child));
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let stderr_reader = thread::spawn(move || {
            let mut reader = BufReader::new(stderr_pipe);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.lock().expect("stderr lock").push_str(&line);
                line.clear();
            }
        });
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the child never blocks on a full pipe.
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server printed no `listening on` line within 30 s");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line {line:?}"))
            .parse()
            .expect("listening address parses");
        Server {
            guard,
            addr,
            stderr,
            stderr_reader: Some(stderr_reader),
            exit: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.guard.0.as_ref().expect("child present").id()
    }

    /// Resident memory of the process in MiB, from /proc.
    pub fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"));
        kib / 1024.0
    }

    /// Polls stderr until `ready` holds; panics with the log after `timeout`. The log is copied
    /// by a reader thread, so a line the server already wrote may arrive a moment later.
    pub fn wait_stderr(
        &self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.stderr();
            if ready(&log) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "stderr: {what} not seen within {timeout:?}: {log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Sends a signal (`TERM`, `INT`) with kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.guard.0.as_ref().expect("child present").id();
        let status = Command::new("kill")
            .args(["-s", name, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} {pid} failed");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let deadline = Instant::now() + timeout;
        let child = self.guard.0.as_mut().expect("child present");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.exit = Some(status);
                // The pipe closed with the process: the reader ends after its last line.
                if let Some(reader) = self.stderr_reader.take() {
                    let _ = reader.join();
                }
                return self.exit;
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.wait_exit(Duration::ZERO).is_none()
    }

    /// The metrics as `series -> value`, e.g. `inference_requests_total{code="200"}`.
    pub fn metrics(&self) -> HashMap<String, f64> {
        let response = get(self.addr, "/metrics");
        assert_eq!(response.status, 200, "GET /metrics: {}", response.body);
        parse_metrics(&response.body)
    }

    /// Polls the metrics until `ready` holds; panics with the last values after `timeout`.
    pub fn wait_metrics(
        &self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&HashMap<String, f64>) -> bool,
    ) -> HashMap<String, f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let metrics = self.metrics();
            if ready(&metrics) {
                return metrics;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; metrics: {metrics:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `n` requests on connections of their own and waits (`within`) until the one worker
    /// is busy with the first and the other `n - 1` are queued; the clients.
    pub fn occupy(
        &self,
        n: usize,
        (method, path, body): (&'static str, &'static str, Option<&'static str>),
        within: Duration,
    ) -> Vec<thread::JoinHandle<std::io::Result<Response>>> {
        let clients = (0..n)
            .map(|_| spawn_request(self.addr, method, path, body))
            .collect();
        let queued = (n - 1) as f64;
        self.wait_metrics(&format!("one in inference, {queued} queued"), within, |m| {
            value(m, "inference_requests_in_flight") == 1.0
                && value(m, "inference_queue_depth") == queued
        });
        clients
    }
}

/// Parses OpenMetrics/Prometheus text into `series -> value`.
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// A metric value, 0 when the series is absent (counters with labels appear on first use).
pub fn value(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    metrics.get(series).copied().unwrap_or(0.0)
}

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Response {
    /// First header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// True when the server announced it closes the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A client connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects with a 60 s read timeout (a bound, not a synchronisation).
    pub fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        Self::open_with_timeout(addr, Duration::from_secs(60))
    }

    /// Connects with the given read timeout.
    pub fn open_with_timeout(addr: SocketAddr, read_timeout: Duration) -> std::io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(read_timeout))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    /// Writes raw bytes.
    pub fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Sends one request; `body` gets a Content-Length.
    pub fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> std::io::Result<()> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or("").as_bytes());
        self.write_raw(&bytes)
    }

    /// Reads one response (Content-Length or chunked bodies).
    pub fn read_response(&mut self) -> std::io::Result<Response> {
        let mut response = self.read_head()?;
        let mut body = Vec::new();
        if let Some(length) = response.header("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| std::io::Error::other("bad content-length"))?;
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        } else if response
            .header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
        {
            while let Some(chunk) = self.read_chunk()? {
                body.extend_from_slice(&chunk);
            }
        }
        response.body = String::from_utf8_lossy(&body).into_owned();
        Ok(response)
    }

    /// Reads the next chunk of a chunked body; `None` after the last one.
    pub fn read_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let size = usize::from_str_radix(line.trim(), 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(None);
        }
        chunk.truncate(size);
        Ok(Some(chunk))
    }

    /// Reads a response's status line and headers (the body is left unread and empty).
    pub fn read_head(&mut self) -> std::io::Result<Response> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((name, value)) = trimmed.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        Ok(Response {
            status,
            headers,
            body: String::new(),
        })
    }

    /// Reads a streamed (chunked `text/event-stream`) body to its end: each server-sent event's
    /// `data` with when it arrived.
    pub fn read_events(&mut self) -> std::io::Result<Vec<(Instant, String)>> {
        let mut events = Vec::new();
        let mut pending = String::new();
        while let Some(chunk) = self.read_chunk()? {
            let at = Instant::now();
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some((event, rest)) = pending.split_once("\n\n") {
                let data = event
                    .strip_prefix("data: ")
                    .ok_or_else(|| std::io::Error::other(format!("not a data event: {event:?}")))?;
                events.push((at, data.to_owned()));
                pending = rest.to_owned();
            }
        }
        if !pending.is_empty() {
            return Err(std::io::Error::other(format!(
                "stream ended inside an event: {pending:?}"
            )));
        }
        Ok(events)
    }

    /// Sends a request and reads its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        self.send(method, path, body)?;
        self.read_response()
    }

    /// Waits up to `timeout` for the server to close the connection; true if it did.
    pub fn closed_by_server_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut byte = [0u8; 1];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if self.reader.get_ref().set_read_timeout(Some(left)).is_err() {
                return true;
            }
            match self.reader.read(&mut byte) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    /// The socket, for hostile clients that need it raw.
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Closes both directions, as a client that gives up does.
    pub fn close(self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Both);
    }
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Response {
    let mut conn = Conn::open(addr).expect("connect");
    conn.request(method, path, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// GET on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, None)
}

/// Starts `request` on its own thread; join for the result.
pub fn spawn_request(
    addr: SocketAddr,
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
) -> thread::JoinHandle<std::io::Result<Response>> {
    thread::spawn(move || Conn::open(addr)?.request(method, path, body))
}

/// Milliseconds field of an /infer answer.
pub fn ms(response: &Response, field: &str) -> f64 {
    response.json()[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {field} in {}", response.body))
}
