//! An in-process stand-in for the few API server endpoints `kscale metrics` calls (no API server
//! can run here), served over real HTTP on 127.0.0.1 with the shapes of real responses (fixtures
//! in `tests/fixtures/metrics/`). Tests change the answers per endpoint, or queue a sequence of
//! answers to model a stage turning green.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;

/// The endpoints the stub serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /api/v1/namespaces/{ns}/pods?labelSelector=…`
    Pods,
    /// `GET /api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy/metrics`
    PodMetrics,
    /// Prometheus `up{…}` through the service proxy.
    PromUp,
    /// Prometheus: the rule's series query in the namespace.
    PromSeries,
    /// Prometheus: any other query (the adapter's metrics query).
    PromValue,
    /// `GET /apis/apiregistration.k8s.io/v1/apiservices/v1beta1.external.metrics.k8s.io`
    ApiService,
    /// `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}`
    External,
    /// `GET /apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{name}`
    Hpa,
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body (JSON, or exposition text for pod metrics).
    pub body: String,
}

impl Reply {
    /// 200 with `body`.
    pub fn ok(body: impl Into<String>) -> Self {
        Self {
            status: 200,
            body: body.into(),
        }
    }

    /// 200 with a JSON value.
    pub fn json(v: &serde_json::Value) -> Self {
        Self::ok(v.to_string())
    }

    /// A Kubernetes `Status` failure, as the API server sends it.
    pub fn status(code: u16, reason: &str, message: &str) -> Self {
        Self {
            status: code,
            body: serde_json::json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            })
            .to_string(),
        }
    }
}

/// Reads a fixture of `tests/fixtures/metrics/`.
pub fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// A fixture parsed as JSON (to be modified by a test).
pub fn fixture_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// What the stub answers.
#[derive(Debug, Clone)]
pub struct Scenario {
    steady: HashMap<Endpoint, Reply>,
    queued: HashMap<Endpoint, VecDeque<Reply>>,
}

impl Scenario {
    /// A healthy stack: two ready pods, both scraped, a value of 10.048 s, the APIService
    /// Available and the HPA reading the metric.
    pub fn healthy() -> Self {
        let steady = HashMap::from([
            (Endpoint::Pods, Reply::ok(fixture("pods.json"))),
            (Endpoint::PodMetrics, Reply::ok(fixture("pod-metrics.txt"))),
            (Endpoint::PromUp, Reply::ok(fixture("prom-up.json"))),
            (Endpoint::PromSeries, Reply::ok(fixture("prom-series.json"))),
            (Endpoint::PromValue, Reply::ok(fixture("prom-value.json"))),
            (
                Endpoint::ApiService,
                Reply::ok(fixture("apiservice-available.json")),
            ),
            (
                Endpoint::External,
                Reply::ok(fixture("external-metric.json")),
            ),
            (Endpoint::Hpa, Reply::ok(fixture("hpa.json"))),
        ]);
        Self {
            steady,
            queued: HashMap::new(),
        }
    }

    /// Sets the steady answer of `e`.
    pub fn set(&mut self, e: Endpoint, r: Reply) -> &mut Self {
        self.steady.insert(e, r);
        self
    }

    /// Answers `e` with `replies` first, one per request, then with the steady answer.
    pub fn queue(&mut self, e: Endpoint, replies: Vec<Reply>) -> &mut Self {
        self.queued.entry(e).or_default().extend(replies);
        self
    }

    fn answer(&mut self, e: Endpoint) -> Reply {
        if let Some(r) = self.queued.get_mut(&e).and_then(VecDeque::pop_front) {
            return r;
        }
        self.steady
            .get(&e)
            .cloned()
            .unwrap_or_else(|| Reply::status(404, "NotFound", "no answer configured"))
    }
}

#[derive(Clone)]
struct Shared {
    scenario: Arc<Mutex<Scenario>>,
    log: Arc<Mutex<Vec<String>>>,
}

/// The running stub.
pub struct KubeStub {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded `query` parameter of a URI.
pub fn query_param(uri_query: &str, name: &str) -> Option<String> {
    uri_query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn route(path: &str, query: &str) -> Option<Endpoint> {
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match seg.as_slice() {
        ["api", "v1", "namespaces", _, "pods"] => Some(Endpoint::Pods),
        ["api", "v1", "namespaces", _, "pods", _, "proxy", "metrics"] => Some(Endpoint::PodMetrics),
        [
            "api",
            "v1",
            "namespaces",
            _,
            "services",
            _,
            "proxy",
            "api",
            "v1",
            "query",
        ] => {
            let q = query_param(query, "query").unwrap_or_default();
            Some(if q.starts_with("up{") {
                Endpoint::PromUp
            } else if q.starts_with("inference_request_duration_seconds_count{")
                || q.starts_with("inference_queue_depth{")
            {
                Endpoint::PromSeries
            } else {
                Endpoint::PromValue
            })
        }
        ["apis", "apiregistration.k8s.io", "v1", "apiservices", _] => Some(Endpoint::ApiService),
        [
            "apis",
            "external.metrics.k8s.io",
            "v1beta1",
            "namespaces",
            _,
            _,
        ] => Some(Endpoint::External),
        [
            "apis",
            "autoscaling",
            "v2",
            "namespaces",
            _,
            "horizontalpodautoscalers",
            _,
        ] => Some(Endpoint::Hpa),
        _ => None,
    }
}

async fn handle(State(s): State<Shared>, uri: Uri) -> impl IntoResponse {
    let query = uri.query().unwrap_or("");
    let line = match query_param(query, "query") {
        Some(q) => format!("{}?query={q}", uri.path()),
        None => uri.to_string(),
    };
    if let Ok(mut log) = s.log.lock() {
        log.push(line);
    }
    let reply = match route(uri.path(), query) {
        Some(e) => s
            .scenario
            .lock()
            .map(|mut sc| sc.answer(e))
            .unwrap_or_else(|_| Reply::status(500, "InternalError", "poisoned")),
        None => Reply::status(
            404,
            "NotFound",
            &format!(
                "the server could not find the requested resource ({})",
                uri.path()
            ),
        ),
    };
    let ct = if reply.body.starts_with('{') {
        "application/json"
    } else {
        "text/plain; version=0.0.4"
    };
    (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(axum::http::header::CONTENT_TYPE, ct)],
        reply.body,
    )
}

impl KubeStub {
    /// Serves `scenario` on 127.0.0.1 with a free port.
    pub async fn start(scenario: Scenario) -> Self {
        let shared = Shared {
            scenario: Arc::new(Mutex::new(scenario)),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// A kube client talking to the stub, without kube's default retry of 503s (as `kscale
    /// metrics` should be given: the check reports a 503, its --wait does the retrying).
    pub fn client(&self) -> kube::Client {
        let uri = format!("http://{}", self.addr).parse().expect("stub URI");
        let mut cfg = kube::Config::new(uri);
        cfg.default_retry = false;
        kube::Client::try_from(cfg).expect("kube client for the stub")
    }

    /// Changes the answers.
    pub fn update(&self, f: impl FnOnce(&mut Scenario)) {
        f(&mut self.shared.scenario.lock().expect("scenario lock"));
    }

    /// Every request so far (path, and the decoded PromQL for Prometheus queries).
    pub fn requests(&self) -> Vec<String> {
        self.shared.log.lock().expect("log lock").clone()
    }
}
