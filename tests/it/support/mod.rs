//! The local metric pipeline with real components: several real `kscale-server` processes on
//! 127.0.0.1 and a real Prometheus scraping them with the scrape job kscale renders.
//!
//! Debian's Prometheus has no Kubernetes service discovery, so the rendered job's
//! `kubernetes_sd_configs` is replaced by `static_configs` whose targets carry the
//! `__meta_kubernetes_*` labels pod discovery would set; the job's `relabel_configs` then run
//! unchanged and produce the same `namespace` and `pod` labels as in a cluster.
//!
//! Every child is killed on drop (`kill_on_drop`), also when a test fails. Reusable: the
//! dashboard PromQL check and the simulator validation start a [`Pipeline`] the same way:
//!
//! ```ignore
//! let mut cfg = Config::default();
//! cfg.metric.scrape_interval_seconds = 1; // and a short rate window, e.g. 8 s
//! let scrape = kscale::metrics::rendered_scrape_job(&cfg)?;
//! let specs = vec![PodSpec::new("default", "inference-0", 1.0)];
//! let Some(p) = Pipeline::start_if_available(&scrape, specs).await else { return };
//! let load = Load::start(&p.addrs_in("default"), 2, Duration::from_secs(120)); // closed loop
//! let v = p.prometheus.query("sum(inference_queue_depth)").await?.single_finite()?;
//! ```
//!
//! `poll` retries a check with a deadline; `http_request` is a one-shot HTTP/1.1 client;
//! `kube_stub` is the API server stand-in for commands that talk to Kubernetes; `needs` skips
//! (or, with `CI` set, fails) a test whose tools this machine lacks.

#![allow(dead_code)] // Each user of the harness uses a different part of it.

pub mod exposition_double;
pub mod fixtures;
pub mod http;
pub mod kube_stub;
pub mod needs;
pub mod process;
pub mod settings;

pub use http::{http_get, http_request};
pub use process::kscale;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use kscale::metrics::prom::{self, QueryResult};
use tokio::process::{Child, Command};

/// How to install what the pipeline needs, for error messages.
const PROMETHEUS_HINT: &str = "install it with `sudo apt-get install -y prometheus` \
    (or `cargo xtask deps`); the test runs /usr/bin/prometheus and promtool";

/// One `kscale-server` as a pod would run it.
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// `__meta_kubernetes_namespace`.
    pub namespace: String,
    /// `__meta_kubernetes_pod_name` (also the server's POD_NAME).
    pub pod: String,
    /// `__meta_kubernetes_pod_label_app`.
    pub app: String,
    /// `__meta_kubernetes_pod_container_port_name`.
    pub port_name: String,
    /// INFERENCE_SECONDS.
    pub inference_seconds: f64,
    /// WORKERS.
    pub workers: u32,
    /// MAX_QUEUE.
    pub max_queue: u32,
}

impl PodSpec {
    /// A pod of app `inference` in `namespace` with one worker.
    pub fn new(namespace: &str, pod: &str, inference_seconds: f64) -> Self {
        Self {
            namespace: namespace.into(),
            pod: pod.into(),
            app: "inference".into(),
            port_name: "http".into(),
            inference_seconds,
            workers: 1,
            max_queue: 64,
        }
    }
}

/// A running `kscale-server` on 127.0.0.1 with a free port, killed on drop: the one way this
/// test binary starts the server (pipeline, load, dashboard and simulator tests).
pub struct ServerProc {
    /// What it pretends to be.
    pub spec: PodSpec,
    /// Where it listens.
    pub addr: SocketAddr,
    child: std::process::Child,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds the `kscale-server` binary: `KSCALE_SERVER_BIN`, else next to this test executable's
/// directory (`target/<profile>/`), building it with cargo when it is missing.
pub fn server_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("KSCALE_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("cannot find the test executable")?;
    // target/<profile>/deps/it-<hash> -> target/<profile>/kscale-server
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("unexpected test executable location")?;
    let bin = dir.join(format!("kscale-server{}", std::env::consts::EXE_SUFFIX));
    if bin.exists() {
        return Ok(bin);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let status = std::process::Command::new(&cargo)
        .args(["build", "-p", "kscale-server", "--manifest-path"])
        .arg(&manifest)
        .status()
        .with_context(|| format!("cannot run {cargo} to build kscale-server"))?;
    if !status.success() || !bin.exists() {
        bail!(
            "kscale-server is not built at {} and `cargo build -p kscale-server` failed ({status}); \
             build it first (cargo build -p kscale-server) or set KSCALE_SERVER_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

impl ServerProc {
    /// Starts the server as `spec` says, with `env` on top, and waits for its `listening on`
    /// line. Blocking (a thread reads the line), so sync and async tests both use it.
    pub fn start(spec: PodSpec, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let bin = server_binary()?;
        // A developer's shell must not change a test: every setting is cleared.
        let mut cmd = process::clean_command(&bin);
        cmd.args(["--bind", "127.0.0.1", "--port", "0"])
            .env("INFERENCE_SECONDS", spec.inference_seconds.to_string())
            .env("WORKERS", spec.workers.to_string())
            .env("MAX_QUEUE", spec.max_queue.to_string())
            .env("POD_NAME", &spec.pod)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        // Owned from here on, so that a failed start still kills the process.
        let mut server = Self {
            spec,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
        };
        // Both pipes are drained for the server's life, so it never blocks on a full one.
        let errors = std::thread::spawn(move || {
            use std::io::Read as _;
            let mut text = String::new();
            let _ = std::io::BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::{BufRead as _, Read as _};
            let mut reader = std::io::BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        match line.trim().strip_prefix("listening on ").map(str::parse) {
            Some(Ok(addr)) => {
                server.addr = addr;
                Ok(server)
            }
            _ => {
                let _ = server.child.kill();
                let _ = server.child.wait();
                let stderr = errors.join().unwrap_or_default();
                bail!(
                    "kscale-server did not start listening within 30 s (first line {line:?}); \
                     its stderr:\n{stderr}"
                )
            }
        }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The query prometheus-adapter runs for an HPA in `namespace`, substituted from kscale's
/// rendered rule as the adapter does.
pub fn adapter_query_for(cfg: &kscale::config::Config, namespace: &str) -> String {
    use kscale::metrics::adapter_query;
    let rule = kscale::render::adapter_rule(cfg);
    let series =
        adapter_query::series_name(&rule.series_query).expect("series query names a series");
    adapter_query::namespaced_external_query(&rule.metrics_query, series, namespace)
        .expect("rule substitutes")
}

/// Finds a free port on 127.0.0.1 (the OS may hand it out again before it is used; callers retry).
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(l.local_addr().context("no local address")?.port())
}

/// Turns the rendered scrape job (a YAML list with one pod-discovery job) into a Prometheus config
/// with static targets carrying the labels pod discovery would give `servers`.
pub fn prometheus_config(
    scrape_job_yaml: &str,
    servers: &[&ServerProc],
) -> anyhow::Result<serde_json::Value> {
    let targets: Vec<(&PodSpec, SocketAddr)> = servers.iter().map(|s| (&s.spec, s.addr)).collect();
    prometheus_config_for(scrape_job_yaml, &targets)
}

/// [`prometheus_config`] for any target: each address labelled as pod discovery would label the
/// pod `spec` describes (the exposition doubles use it).
pub fn prometheus_config_for(
    scrape_job_yaml: &str,
    targets: &[(&PodSpec, SocketAddr)],
) -> anyhow::Result<serde_json::Value> {
    let jobs: Vec<serde_json::Value> =
        serde_saphyr::from_str(scrape_job_yaml).context("the rendered scrape job is not a list")?;
    let [job] = jobs.as_slice() else {
        bail!("expected one scrape job, got {}", jobs.len());
    };
    let mut job = job.clone();
    let obj = job.as_object_mut().context("the scrape job is not a map")?;
    if obj.remove("kubernetes_sd_configs").is_none() {
        bail!("the rendered scrape job has no kubernetes_sd_configs to replace");
    }
    let targets: Vec<serde_json::Value> = targets
        .iter()
        .map(|(spec, addr)| {
            serde_json::json!({
                "targets": [addr.to_string()],
                "labels": {
                    "__meta_kubernetes_namespace": spec.namespace,
                    "__meta_kubernetes_pod_name": spec.pod,
                    "__meta_kubernetes_pod_label_app": spec.app,
                    "__meta_kubernetes_pod_container_port_name": spec.port_name,
                    "__meta_kubernetes_pod_ip": addr.ip().to_string(),
                    "__meta_kubernetes_pod_ready": "true",
                }
            })
        })
        .collect();
    obj.insert("static_configs".into(), serde_json::Value::Array(targets));
    let interval = obj
        .get("scrape_interval")
        .cloned()
        .unwrap_or_else(|| "1s".into());
    // JSON is YAML: Prometheus reads this file as is.
    Ok(serde_json::json!({
        "global": { "scrape_interval": interval, "evaluation_interval": interval },
        "scrape_configs": [job],
    }))
}

/// A running Prometheus with its own storage directory.
pub struct PrometheusProc {
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

fn require(tool: &str) -> anyhow::Result<PathBuf> {
    needs::on_path(tool).with_context(|| format!("`{tool}` is not installed: {PROMETHEUS_HINT}"))
}

impl PrometheusProc {
    /// Validates `config` with `promtool check config`, then starts Prometheus on a free port and
    /// waits until it is ready.
    pub async fn start(config: &serde_json::Value) -> anyhow::Result<Self> {
        let prometheus = require("prometheus")?;
        let promtool = require("promtool")?;
        let dir = tempfile::tempdir().context("cannot create a temp dir for Prometheus")?;
        let cfg_path = dir.path().join("prometheus.yml");
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(config)?)
            .with_context(|| format!("cannot write {}", cfg_path.display()))?;
        let check = Command::new(&promtool)
            .args(["check", "config"])
            .arg(&cfg_path)
            .output()
            .await
            .context("cannot run promtool")?;
        if !check.status.success() {
            bail!(
                "promtool check config refused the pipeline config:\n{}{}\n{}",
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr),
                serde_json::to_string_pretty(config)?
            );
        }
        let mut last_err = String::new();
        // A free port can be taken between probing and binding: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let log = std::fs::File::create(dir.path().join("prometheus.log"))
                .context("cannot create the Prometheus log")?;
            let mut child = Command::new(&prometheus)
                .arg(format!("--config.file={}", cfg_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("cannot start {}", prometheus.display()))?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().context("waiting for Prometheus")? {
                    last_err = format!(
                        "Prometheus exited with {status}: {}",
                        std::fs::read_to_string(dir.path().join("prometheus.log"))
                            .unwrap_or_default()
                    );
                    break;
                }
                if let Ok((200, _)) = http_get(addr, "/-/ready").await {
                    return Ok(Self { addr, child, dir });
                }
                if Instant::now() > deadline {
                    let _ = child.kill().await;
                    bail!("Prometheus on {addr} not ready within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        bail!("Prometheus did not start: {last_err}")
    }

    /// Runs an instant query.
    pub async fn query(&self, promql: &str) -> anyhow::Result<QueryResult> {
        let (status, body) = http_get(self.addr, &format!("/{}", prom::query_path(promql))).await?;
        prom::parse_query_response(body.as_bytes())
            .with_context(|| format!("query {promql} (HTTP {status})"))
    }

    /// Prometheus's own log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

/// The servers and Prometheus, torn down together on drop.
pub struct Pipeline {
    /// The app's processes, in the order of the specs.
    pub servers: Vec<ServerProc>,
    /// Prometheus scraping them.
    pub prometheus: PrometheusProc,
}

impl Pipeline {
    /// [`Pipeline::start`] for a test that needs it: `None` (the test skips, or fails with `CI`
    /// set; see [`needs`]) without Prometheus, and a failed start fails the test.
    pub async fn start_if_available(scrape_job_yaml: &str, specs: Vec<PodSpec>) -> Option<Self> {
        if !needs::needs("a real Prometheus pipeline", &[needs::Need::Prometheus]) {
            return None;
        }
        Some(
            Self::start(scrape_job_yaml, specs)
                .await
                .expect("pipeline starts"),
        )
    }

    /// Starts one server per spec and a Prometheus running `scrape_job_yaml` against them, and
    /// waits until every target that the job's relabelling keeps has been scraped.
    pub async fn start(scrape_job_yaml: &str, specs: Vec<PodSpec>) -> anyhow::Result<Self> {
        let mut servers = Vec::with_capacity(specs.len());
        for spec in specs {
            servers.push(ServerProc::start(spec, &[])?);
        }
        let refs: Vec<&ServerProc> = servers.iter().collect();
        let config = prometheus_config(scrape_job_yaml, &refs)?;
        let job = config["scrape_configs"][0]["job_name"]
            .as_str()
            .context("no job_name")?
            .to_owned();
        let prometheus = PrometheusProc::start(&config).await?;
        let p = Self {
            servers,
            prometheus,
        };
        // Pods of other apps or ports are dropped by the relabelling: count only the kept ones.
        let expected = p
            .servers
            .iter()
            .filter(|s| s.spec.app == "inference" && s.spec.port_name == "http")
            .count();
        let q = format!("up{{job=\"{job}\"}} == 1");
        poll(
            Duration::from_secs(30),
            Duration::from_millis(250),
            || async {
                let r = p.prometheus.query(&q).await?;
                if r.samples.len() == expected {
                    Ok(())
                } else {
                    bail!("{} of {expected} targets up", r.samples.len())
                }
            },
        )
        .await
        .with_context(|| format!("targets not up; Prometheus log:\n{}", p.prometheus.log()))?;
        Ok(p)
    }

    /// Addresses of the servers in `namespace`.
    pub fn addrs_in(&self, namespace: &str) -> Vec<SocketAddr> {
        self.servers
            .iter()
            .filter(|s| s.spec.namespace == namespace)
            .map(|s| s.addr)
            .collect()
    }
}

/// Retries `f` every `every` until it succeeds or `within` has passed; the error is the last
/// failure.
pub async fn poll<T, F, Fut>(within: Duration, every: Duration, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() + every > deadline => {
                return Err(e.context(format!("still failing after {within:?}")));
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Closed-loop load: `clients` tasks per address, each sending `POST /infer` back to back until
/// stopped (or dropped, or `max` has passed).
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Answers with 200.
    pub ok: Arc<AtomicU64>,
    /// Answers with another status, or transport errors.
    pub failed: Arc<AtomicU64>,
}

impl Load {
    /// Starts the clients.
    pub fn start(addrs: &[SocketAddr], clients: usize, max: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for &addr in addrs {
            for i in 0..clients {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                tasks.push(tokio::spawn(async move {
                    let end = Instant::now() + max;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
                        let body = format!("{{\"input\":\"client {i}\"}}");
                        match http_request(addr, "POST", "/infer", Some(&body)).await {
                            Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                            _ => {
                                // Do not spin on a refused connection.
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                }));
            }
        }
        Self {
            stop,
            tasks,
            ok,
            failed,
        }
    }

    /// Stops the clients (requests in flight are abandoned).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `cargo xtask <args>` from the repository; the output, or the failure with both streams.
pub fn xtask(args: &[&str]) -> Result<String, String> {
    xtask_output(args).map(|(stdout, stderr)| format!("{stdout}{stderr}"))
}

/// [`xtask`] with stdout and stderr apart (stdout alone is what a command prints for programs).
fn xtask_output(args: &[&str]) -> Result<(String, String), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(&cargo)
        .args(["run", "--quiet", "--package", "xtask", "--"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| format!("cannot run `{cargo} xtask {}`: {e}", args.join(" ")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok((stdout, stderr))
    } else {
        Err(format!(
            "`cargo xtask {}` failed with {}:\n{stdout}{stderr}",
            args.join(" "),
            out.status
        ))
    }
}

#[test]
fn a_server_that_refuses_its_settings_fails_to_start_with_its_stderr() {
    let spec = PodSpec::new("default", "refused", 1.0);
    let err = ServerProc::start(spec, &[("WORKERS", "0")])
        .err()
        .expect("WORKERS=0 is refused");
    let text = format!("{err:#}");
    assert!(
        text.contains("did not start") && text.contains("WORKERS"),
        "{text}"
    );
}

/// What the leak test sets in its child's environment: a server setting that changes behaviour
/// (a POST body larger than one byte gets 413) and a kscale setting that changes `kscale config`.
const STRAY: &[(&str, &str)] = &[("MAX_BODY_BYTES", "1"), ("KSCALE_APP_WORKERS", "7")];

/// A variable set on the machine does not reach the processes the tests start: this test binary
/// runs [`started_processes_ignore_the_callers_environment`] again as a child with [`STRAY`] in
/// its environment (the test process's own environment is shared by every test thread, so it is
/// not changed).
#[test]
fn a_stray_variable_on_the_machine_does_not_reach_started_processes() {
    let exe = std::env::current_exe().expect("the test executable");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "support::started_processes_ignore_the_callers_environment",
            "--nocapture",
        ])
        .envs(STRAY.iter().copied())
        .output()
        .expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 passed"),
        "the inner test did not run:\n{text}"
    );
}

/// The server takes a body and kscale keeps its default workers whatever this process's
/// environment holds; the outer test above runs it with [`STRAY`] set, on its own it checks the
/// defaults.
#[test]
fn started_processes_ignore_the_callers_environment() {
    let server = ServerProc::start(PodSpec::new("default", "stray", 0.01), &[]).expect("starts");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (status, body) = runtime
        .block_on(http_request(
            server.addr,
            "POST",
            "/infer",
            Some(r#"{"input":"more than one byte"}"#),
        ))
        .expect("POST /infer");
    assert_eq!(status, 200, "the server saw MAX_BODY_BYTES=1: {body}");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = kscale(dir.path())
        .args(["--output", "json", "config"])
        .output()
        .expect("run kscale");
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "kscale config printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        config["app"]["workers"], 1,
        "kscale saw KSCALE_APP_WORKERS=7"
    );
}
