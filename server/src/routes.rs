//! The HTTP API: inference, metrics, probes, and JSON errors for everything else.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::admission::{Admission, Entry, QueueFull, Slot};
use crate::metrics::{CLIENT_CLOSED, Metrics};

/// When a request's head arrived; set by the connection layer so durations include everything.
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// Everything the handlers share.
#[derive(Debug)]
pub struct App {
    /// Worker slots and queue.
    pub admission: Arc<Admission>,
    /// Live metrics.
    pub metrics: Arc<Metrics>,
    /// Pod name reported in answers.
    pub pod: String,
    /// Set on SIGTERM/SIGINT: readiness fails and connections are closed after their response.
    pub draining: AtomicBool,
    /// Simulated inference time.
    pub inference: Duration,
    /// Retry-After value for 503.
    pub retry_after_seconds: u64,
    /// Request body limit in bytes.
    pub max_body_bytes: u64,
    /// Time allowed for a request body.
    pub read_timeout: Duration,
}

impl App {
    /// True once shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// kscale's own routes and the JSON 404 for every other path; `openai::router` adds the
/// OpenAI-style routes beside them (`serve` merges the two).
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/infer", post(infer).fallback(inference_wrong_method))
        .route(
            "/",
            get(infer_root)
                .head(head_root)
                .fallback(inference_wrong_method),
        )
        .route("/metrics", get(metrics).fallback(wrong_method))
        .route("/healthz", get(healthz).fallback(wrong_method))
        .route("/readyz", get(readyz).fallback(wrong_method))
        .fallback(not_found)
}

/// Whether `path` is an inference route (counted in `inference_requests_total`).
pub fn is_inference(path: &str) -> bool {
    matches!(
        path,
        "/" | "/infer" | "/v1/completions" | "/v1/chat/completions"
    )
}

/// Optional body of POST /infer.
#[derive(Debug, Deserialize)]
struct InferRequest {
    #[serde(default)]
    input: Option<String>,
}

/// Answer of an inference.
#[derive(Debug, Serialize)]
struct InferResponse<'a> {
    /// What the simulated model produced.
    result: String,
    /// The pod that answered (POD_NAME, else the host name).
    pod: &'a str,
    /// Time waiting for a worker.
    queue_ms: f64,
    /// Time in inference.
    inference_ms: f64,
    /// Arrival to answer, as recorded in `inference_request_duration_seconds`.
    duration_ms: f64,
    /// Place in the queue on arrival (1 = first waiting); 0 when a worker was free.
    queue_position: usize,
}

/// Counts an inference request once: with its status when answered, or as 499 when it is dropped
/// first (the client disconnected). A streamed answer moves it into the task that writes the
/// stream, so the request is counted when its last event is produced.
pub(crate) struct Outcome {
    metrics: Arc<Metrics>,
    counted: bool,
}

impl Outcome {
    pub(crate) fn new(app: &App) -> Self {
        Self {
            metrics: app.metrics.clone(),
            counted: false,
        }
    }

    /// Counts `response`'s status and hands it back.
    pub(crate) fn answer(self, response: Response) -> Response {
        self.count(response.status().as_u16());
        response
    }

    /// Counts the request under `code`.
    pub(crate) fn count(mut self, code: u16) {
        self.metrics.count(code);
        self.counted = true;
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.counted {
            self.metrics.count(CLIENT_CLOSED);
        }
    }
}

pub(crate) fn arrival(request: &Request) -> Instant {
    request
        .extensions()
        .get::<Arrival>()
        .map_or_else(Instant::now, |a| a.0)
}

/// JSON error body: `{"error": "...", "status": N}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({ "error": message.into(), "status": status.as_u16() });
    (status, Json(body)).into_response()
}

async fn infer(State(app): State<Arc<App>>, request: Request) -> Response {
    let outcome = Outcome::new(&app);
    let arrived = arrival(&request);
    let input = match read_input(&app, request).await {
        Ok(input) => input,
        Err(response) => return outcome.answer(response),
    };
    let response = run_inference(&app, arrived, input).await;
    outcome.answer(response)
}

async fn infer_root(State(app): State<Arc<App>>, request: Request) -> Response {
    let outcome = Outcome::new(&app);
    let arrived = arrival(&request);
    let response = run_inference(&app, arrived, None).await;
    outcome.answer(response)
}

/// `HEAD /` says the route is there without running an inference: a HEAD answer has no body,
/// so an inference would only cost a worker (and could be used to tie workers up cheaply).
async fn head_root() -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
    )
        .into_response()
}

/// Why a request body could not be read.
enum BodyError {
    TooLarge,
    Read(axum::Error),
}

/// Reads a body of at most `max` bytes by copying each frame into one buffer that grows with
/// what arrived. Frames are dropped at once: each one pins the connection's whole read buffer,
/// so collecting them amplified a body dribbled one byte per TCP segment about 4,000 times.
async fn read_body(body: Body, max: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            if data.len() > max.saturating_sub(bytes.len()) {
                return Err(BodyError::TooLarge);
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// Reads a request body within MAX_BODY_BYTES and READ_TIMEOUT_SECONDS; the error is the answer
/// (413, 408 or 400).
pub(crate) async fn read_bytes(app: &App, request: Request) -> Result<Vec<u8>, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is larger than {} bytes (MAX_BODY_BYTES)",
                app.max_body_bytes
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.max_body_bytes) {
        return Err(too_large());
    }
    let limit = usize::try_from(app.max_body_bytes).unwrap_or(usize::MAX);
    let body = read_body(request.into_body(), limit);
    match tokio::time::timeout(app.read_timeout, body).await {
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body not received within {:.1} s (READ_TIMEOUT_SECONDS)",
                app.read_timeout.as_secs_f64()
            ),
        )),
        Ok(Err(BodyError::TooLarge)) => Err(too_large()),
        Ok(Err(BodyError::Read(e))) => Err(error(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        )),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

async fn read_input(app: &App, request: Request) -> Result<Option<String>, Response> {
    let bytes = read_bytes(app, request).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<InferRequest>(&bytes) {
        Ok(parsed) => Ok(parsed.input),
        Err(e) if e.is_data() => Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "request body has the wrong shape: {e}; expected {{\"input\": \"...\"}} or no body"
            ),
        )),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "request body is not valid JSON: {e}; expected {{\"input\": \"...\"}} or no body"
            ),
        )),
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// A request that holds a worker.
pub(crate) struct Admitted {
    /// The worker; dropping it frees it.
    pub(crate) slot: Slot,
    /// Time spent waiting for it.
    pub(crate) queue_wait: Duration,
    /// Place in the queue on arrival (1 = first waiting); 0 when a worker was free.
    pub(crate) position: usize,
}

/// Takes a worker, waiting in the queue if needed; the error is the answer (503 when the queue is
/// full).
pub(crate) async fn admit(app: &App) -> Result<Admitted, Response> {
    let queued_at = Instant::now();
    let (slot, position) = match app.admission.enter() {
        Ok(Entry::Running(slot)) => (slot, 0),
        Ok(Entry::Waiting(waiting)) => {
            let position = waiting.position + 1;
            match waiting.wait().await {
                Some(slot) => (slot, position),
                None => return Err(shutting_down()),
            }
        }
        Err(QueueFull) => return Err(queue_full(app)),
    };
    Ok(Admitted {
        slot,
        queue_wait: queued_at.elapsed(),
        position,
    })
}

/// 503 for a request that lost its queue place to the shutdown (never happens: the slots are
/// never closed).
pub(crate) fn shutting_down() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is shutting down",
    )
}

/// One simulated inference: INFERENCE_SECONDS on the worker the caller holds.
pub(crate) async fn simulate(app: &App) {
    // A zero-length sleep still waits for a timer tick; skip it so INFERENCE_SECONDS=0 measures
    // the server's own overhead.
    if !app.inference.is_zero() {
        tokio::time::sleep(app.inference).await;
    }
}

async fn run_inference(app: &App, arrived: Instant, input: Option<String>) -> Response {
    let Admitted {
        slot,
        queue_wait,
        position,
    } = match admit(app).await {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let started = Instant::now();
    simulate(app).await;
    let inference = started.elapsed();
    drop(slot);
    let duration = arrived.elapsed();
    app.metrics.duration.observe(duration.as_secs_f64());
    let chars = input.as_deref().map_or(0, |s| s.chars().count());
    let body = InferResponse {
        result: format!("simulated inference over {chars} input characters"),
        pod: &app.pod,
        queue_ms: millis(queue_wait),
        inference_ms: millis(inference),
        duration_ms: millis(duration),
        queue_position: position,
    };
    (StatusCode::OK, Json(body)).into_response()
}

/// 503 with Retry-After: every worker is busy and MAX_QUEUE requests wait.
pub(crate) fn queue_full(app: &App) -> Response {
    let (in_flight, queued) = app.admission.occupancy();
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "queue full: {in_flight} requests in inference and {queued} waiting (MAX_QUEUE); retry after {} s",
            app.retry_after_seconds
        ),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(app.retry_after_seconds),
    );
    response
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    match app.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        ),
    }
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        )
            .into_response()
    } else {
        Json(json!({ "status": "ready" })).into_response()
    }
}

fn method_not_allowed(request: &Request, allowed: &'static str) -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {} is not allowed on {}; use {allowed}",
            request.method(),
            request.uri().path()
        ),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

pub(crate) async fn inference_wrong_method(
    State(app): State<Arc<App>>,
    request: Request,
) -> Response {
    let allowed = if request.uri().path() == "/" {
        "GET"
    } else {
        "POST"
    };
    Outcome::new(&app).answer(method_not_allowed(&request, allowed))
}

async fn wrong_method(request: Request) -> Response {
    method_not_allowed(&request, "GET")
}

async fn not_found(request: Request<Body>) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no route {}; routes: POST /infer, GET /, POST /v1/completions, \
             POST /v1/chat/completions, GET /metrics, GET /healthz, GET /readyz",
            request.uri().path()
        ),
    )
}
