//! A stub Kubernetes API server for the `kube` crate calls of kscale: real HTTP on 127.0.0.1, a
//! generic object store keyed by the object's URL path, server-side apply that bumps
//! `resourceVersion` only when the applied content changes, and test-supplied routes for
//! anything computed (the metrics APIs, the external metrics APIService).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
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
    /// Query parameters.
    pub query: &'a HashMap<String, String>,
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

/// Where a path points: (namespace, resource plural, name).
fn parse_path(path: &str) -> Option<(Option<String>, String, Option<String>)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segs.as_slice() {
        ["api", "v1", rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => return None,
    };
    let s = |x: &&str| x.to_string();
    match rest {
        ["namespaces", ns, plural, tail @ ..] => Some((
            Some(ns.to_string()),
            plural.to_string(),
            tail.first().map(s),
        )),
        ["namespaces", name] => Some((None, "namespaces".into(), Some(name.to_string()))),
        ["namespaces"] => Some((None, "namespaces".into(), None)),
        [plural] => Some((None, plural.to_string(), None)),
        [plural, name, ..] => Some((None, plural.to_string(), Some(name.to_string()))),
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
    (
        404,
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("{plural} \"{name}\" not found"),
            "reason": "NotFound",
            "details": {"name": name, "kind": plural},
            "code": 404,
        }),
    )
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

fn handle(
    store: &mut Store,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> (u16, Value) {
    store.seen.push(Seen {
        method: method.to_string(),
        path: path.to_string(),
    });
    let req = Request {
        method,
        path,
        query,
    };
    for route in store.routes.clone() {
        if let Some(answer) = route(&req, store) {
            return answer;
        }
    }
    let Some((ns, plural, name)) = parse_path(path) else {
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
            let prefix = format!("{}/", path.trim_end_matches('/'));
            let items: Vec<Value> = store
                .objects
                .iter()
                .filter(|(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
                .map(|(p, o)| present(store, p, o))
                .filter(|o| {
                    query
                        .get("labelSelector")
                        .is_none_or(|s| labels_match(o, s))
                        && query
                            .get("fieldSelector")
                            .is_none_or(|s| fields_match(o, s))
                })
                .collect();
            let _ = ns;
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
        handle(&mut store, &method, uri.path(), &query, &body)
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
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
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

    /// The store, locked.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        match self.store.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds a route consulted before the store; a route added later is asked first, so a test
    /// can override the defaults of [`super::Env`].
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
        let s = self.store();
        s.objects.get(path).map(|o| present(&s, path, o))
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
