//! The one stub Kubernetes API server of the tests (no API server can run here): real HTTP on
//! 127.0.0.1 with the shapes of real responses.
//!
//! [`StubApi`] is a generic object store keyed by the object's URL path, with server-side apply
//! that bumps `resourceVersion` only when the applied content changes, and test-supplied routes
//! for anything computed (the metrics APIs, the external metrics APIService); the orchestration
//! tests drive the real binary against it. [`KubeStub`] is one such route: canned answers per
//! endpoint `kscale metrics` calls (fixtures in `tests/fixtures/metrics/`), changed per test or
//! queued to model a stage turning green.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the stub saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// URL path, without the query.
    pub path: String,
}

impl Seen {
    /// Whether the request could change something.
    pub fn mutating(&self) -> bool {
        !matches!(self.method.as_str(), "GET" | "HEAD")
    }
}

/// How Deployments roll out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Every replica updated and available as soon as the Deployment is written.
    Instant,
    /// The controller has seen the generation but no pod becomes available.
    Stuck,
}

/// The request a route answers.
pub struct Request<'a> {
    /// HTTP method.
    pub method: &'a Method,
    /// URL path.
    pub path: &'a str,
    /// Query parameters, decoded.
    pub query: &'a HashMap<String, String>,
    /// The query as sent (empty without one).
    pub raw_query: &'a str,
}

/// A test-supplied answer: `Some((status, body))` to answer, `None` to fall through to the store.
/// A JSON string body is sent as `text/plain` (a pod's `/metrics` through the proxy).
pub type Route = Arc<dyn Fn(&Request, &Store) -> Option<(u16, Value)> + Send + Sync>;

/// The objects and what was asked.
#[derive(Default)]
pub struct Store {
    objects: BTreeMap<String, Value>,
    /// The last applied configuration of each object, to tell a change from a no-op apply.
    applied: BTreeMap<String, Value>,
    resource_version: u64,
    seen: Vec<Seen>,
    rollout: Option<Rollout>,
    routes: Vec<Route>,
}

impl Store {
    /// Every stored object path.
    pub fn paths(&self) -> Vec<String> {
        self.objects.keys().cloned().collect()
    }

    /// The object at `path`, as a GET returns it.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.objects.get(path).map(|o| present(self, path, o))
    }

    /// The objects directly under the collection `prefix` (a path without trailing slash), as a
    /// list returns them.
    pub fn list(&self, prefix: &str) -> Vec<Value> {
        let prefix = format!("{}/", prefix.trim_end_matches('/'));
        self.objects
            .iter()
            .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
            .map(|(p, o)| present(self, p, o))
            .collect()
    }

    /// What the routes answer to a GET of `path`, as a computed answer that depends on another
    /// (the HPA's status on the external metrics API) sees it, overrides included.
    pub fn route_get(&self, path: &str) -> Option<(u16, Value)> {
        let query = HashMap::new();
        let req = Request {
            method: &Method::GET,
            path,
            query: &query,
            raw_query: "",
        };
        self.routes.iter().find_map(|r| r(&req, self))
    }

    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }
}

/// The running stub; stops when dropped.
pub struct StubApi {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// Where a path points: (resource plural, name); a namespace in the path only scopes it.
fn parse_path(path: &str) -> Option<(String, Option<String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segs.as_slice() {
        ["api", "v1", rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    match rest {
        ["namespaces", _, plural, tail @ ..] => {
            Some((plural.to_string(), tail.first().map(|x| x.to_string())))
        }
        ["namespaces", name] => Some(("namespaces".into(), Some(name.to_string()))),
        [plural] => Some((plural.to_string(), None)),
        [plural, name, ..] => Some((plural.to_string(), Some(name.to_string()))),
        [] => None,
    }
}

/// A `Status` document the way the API server sends it.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn not_found(plural: &str, name: &str) -> (u16, Value) {
    let mut body = status(404, "NotFound", &format!("{plural} \"{name}\" not found"));
    body["details"] = json!({"name": name, "kind": plural});
    (404, body)
}

/// The stored object as a GET returns it: Deployments get the status their rollout mode says.
fn present(store: &Store, path: &str, obj: &Value) -> Value {
    let mut obj = obj.clone();
    if obj["kind"] == "Deployment" && path.contains("/deployments/") {
        let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1);
        let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
        obj["status"] = match store.rollout.unwrap_or(Rollout::Instant) {
            Rollout::Instant => json!({
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }),
            Rollout::Stuck => json!({
                "observedGeneration": generation,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": 0,
                "availableReplicas": 0,
                "unavailableReplicas": replicas,
            }),
        };
    }
    obj
}

/// Whether `obj` has every `key=value` label of `selector`.
pub fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        obj["metadata"]["labels"][k].as_str() == Some(v.trim_start_matches('='))
    })
}

fn fields_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        let mut node = obj;
        for part in k.split('.') {
            node = &node[part];
        }
        node.as_str() == Some(v)
    })
}

/// The applied configuration without what the server owns, to compare two applies.
fn applied_content(body: &Value) -> Value {
    let mut v = body.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "resourceVersion",
            "uid",
            "generation",
            "creationTimestamp",
            "managedFields",
        ] {
            meta.remove(k);
        }
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    v
}

fn handle(store: &mut Store, req: &Request, body: &[u8]) -> (u16, Value) {
    let (method, path, query) = (req.method, req.path, req.query);
    store.seen.push(Seen {
        method: method.to_string(),
        path: path.to_string(),
    });
    for route in store.routes.clone() {
        if let Some(answer) = route(req, store) {
            return answer;
        }
    }
    let Some((plural, name)) = parse_path(path) else {
        return (
            404,
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    };
    match (method.as_str(), name) {
        ("GET", None) => {
            let items: Vec<Value> = store
                .list(path)
                .into_iter()
                .filter(|o| {
                    query
                        .get("labelSelector")
                        .is_none_or(|s| labels_match(o, s))
                        && query
                            .get("fieldSelector")
                            .is_none_or(|s| fields_match(o, s))
                })
                .collect();
            (
                200,
                json!({
                    "kind": "List",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": store.resource_version.to_string()},
                    "items": items,
                }),
            )
        }
        ("GET", Some(name)) => match store.objects.get(path) {
            Some(o) => (200, present(store, path, o)),
            None => not_found(&plural, &name),
        },
        ("PATCH", Some(name)) => {
            let body: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => {
                    return (
                        400,
                        status(400, "BadRequest", &format!("cannot read the body: {e}")),
                    );
                }
            };
            if query.get("fieldManager").is_none() {
                return (
                    422,
                    status(
                        422,
                        "Invalid",
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    ),
                );
            }
            if body["metadata"]["name"].as_str() != Some(name.as_str()) {
                return (
                    400,
                    status(
                        400,
                        "BadRequest",
                        "the name of the object does not match the URL",
                    ),
                );
            }
            let content = applied_content(&body);
            if let (Some(existing), Some(before)) =
                (store.objects.get(path), store.applied.get(path))
                && *before == content
            {
                return (200, present(store, path, existing));
            }
            let rv = store.next_rv();
            let created = !store.objects.contains_key(path);
            let mut obj = body.clone();
            let old = store.objects.get(path).cloned();
            let meta = &mut obj["metadata"];
            meta["resourceVersion"] = json!(rv);
            meta["uid"] = old
                .as_ref()
                .map(|o| o["metadata"]["uid"].clone())
                .unwrap_or_else(|| json!(format!("00000000-0000-4000-8000-{:012}", rv)));
            meta["creationTimestamp"] = json!("2026-11-27T20:00:00Z");
            let spec_changed = old.as_ref().is_none_or(|o| o["spec"] != body["spec"]);
            let generation = old
                .as_ref()
                .and_then(|o| o["metadata"]["generation"].as_i64())
                .unwrap_or(0)
                + i64::from(spec_changed);
            if obj.get("spec").is_some() {
                obj["metadata"]["generation"] = json!(generation.max(1));
            }
            // The API server defaults replicas, and apply keeps a value no manager owns (the HPA's).
            if plural == "deployments" && obj["spec"]["replicas"].is_null() {
                obj["spec"]["replicas"] = old
                    .as_ref()
                    .map(|o| o["spec"]["replicas"].clone())
                    .filter(|r| !r.is_null())
                    .unwrap_or(json!(1));
            }
            store.applied.insert(path.to_string(), content);
            store.objects.insert(path.to_string(), obj);
            let stored = &store.objects[path];
            (
                if created { 201 } else { 200 },
                present(store, path, stored),
            )
        }
        ("DELETE", Some(name)) => match store.objects.remove(path) {
            Some(obj) => {
                store.applied.remove(path);
                if plural == "namespaces" {
                    // Deleting a namespace deletes everything in it.
                    let inside = format!("/namespaces/{name}/");
                    store.objects.retain(|p, _| !p.contains(&inside));
                    store.applied.retain(|p, _| !p.contains(&inside));
                }
                (200, obj)
            }
            None => not_found(&plural, &name),
        },
        _ => (
            405,
            status(
                405,
                "MethodNotAllowed",
                "the stub does not serve this request",
            ),
        ),
    }
}

async fn serve(
    State(store): State<Arc<Mutex<Store>>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let (code, value) = {
        let mut store = match store.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let req = Request {
            method: &method,
            path: uri.path(),
            query: &query,
            raw_query: uri.query().unwrap_or_default(),
        };
        handle(&mut store, &req, &body)
    };
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match value {
        Value::String(text) => (
            code,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            text,
        )
            .into_response(),
        value => (code, axum::Json(value)).into_response(),
    }
}

impl StubApi {
    /// Starts the stub on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime for the stub API");
        let store = Arc::new(Mutex::new(Store::default()));
        // Bound without `block_on`, so that async tests may start a stub too.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener).expect("tokio listener")
        };
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(store.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            store,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store, locked.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        match self.store.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds a route consulted before the store; a route added later is asked first, so a test
    /// can override the defaults of an environment.
    pub fn route(
        &self,
        r: impl Fn(&Request, &Store) -> Option<(u16, Value)> + Send + Sync + 'static,
    ) {
        self.store().routes.insert(0, Arc::new(r));
    }

    /// Sets how Deployments roll out.
    pub fn set_rollout(&self, r: Rollout) {
        self.store().rollout = Some(r);
    }

    /// Stores `obj` at `path` as if some other client created it.
    pub fn put(&self, path: &str, mut obj: Value) {
        let mut s = self.store();
        let rv = s.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv);
        s.objects.insert(path.to_string(), obj);
    }

    /// The object at `path`, as a GET would return it.
    pub fn object(&self, path: &str) -> Option<Value> {
        self.store().get(path)
    }

    /// `resourceVersion` of every stored object.
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.store()
            .objects
            .iter()
            .map(|(p, o)| {
                (
                    p.clone(),
                    o["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.store().seen.clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear_seen(&self) {
        self.store().seen.clear();
    }
}

impl Drop for StubApi {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

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
            body: status(code, reason, message).to_string(),
        }
    }

    /// As a route answers: JSON as a value, anything else (exposition text) as a string.
    fn answer(self) -> (u16, Value) {
        let body = if self.body.starts_with('{') {
            serde_json::from_str(&self.body).unwrap_or(Value::String(self.body))
        } else {
            Value::String(self.body)
        };
        (self.status, body)
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

/// The endpoint a request asks for.
fn endpoint_of(path: &str, query: &HashMap<String, String>) -> Option<Endpoint> {
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
            let q = query.get("query").map_or("", String::as_str);
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

/// The canned-answer stub of `kscale metrics`' tests: a [`StubApi`] whose one route answers
/// every request from a [`Scenario`].
pub struct KubeStub {
    api: StubApi,
    scenario: Arc<Mutex<Scenario>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl KubeStub {
    /// Serves `scenario` on 127.0.0.1 with a free port.
    pub fn start(scenario: Scenario) -> Self {
        let api = StubApi::start();
        let scenario = Arc::new(Mutex::new(scenario));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (answers, seen) = (scenario.clone(), log.clone());
        api.route(move |req, _| {
            let line = match (req.query.get("query"), req.raw_query) {
                (Some(q), _) => format!("{}?query={q}", req.path),
                (None, "") => req.path.to_owned(),
                (None, raw) => format!("{}?{raw}", req.path),
            };
            if let Ok(mut log) = seen.lock() {
                log.push(line);
            }
            let reply = match endpoint_of(req.path, req.query) {
                Some(e) => answers
                    .lock()
                    .map(|mut sc| sc.answer(e))
                    .unwrap_or_else(|_| Reply::status(500, "InternalError", "poisoned")),
                None => Reply::status(
                    404,
                    "NotFound",
                    &format!(
                        "the server could not find the requested resource ({})",
                        req.path
                    ),
                ),
            };
            Some(reply.answer())
        });
        Self { api, scenario, log }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.api.addr()
    }

    /// A kube client talking to the stub, without kube's default retry of 503s (as `kscale
    /// metrics` should be given: the check reports a 503, its --wait does the retrying).
    pub fn client(&self) -> kube::Client {
        let uri = self.api.url().parse().expect("stub URI");
        let mut cfg = kube::Config::new(uri);
        cfg.default_retry = false;
        kube::Client::try_from(cfg).expect("kube client for the stub")
    }

    /// Changes the answers.
    pub fn update(&self, f: impl FnOnce(&mut Scenario)) {
        f(&mut self.scenario.lock().expect("scenario lock"));
    }

    /// Every request so far (path, and the decoded PromQL for Prometheus queries).
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }
}
