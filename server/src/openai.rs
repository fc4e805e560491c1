//! The OpenAI-style API that real inference servers speak (vLLM, TGI, llama.cpp's
//! `llama-server`): `POST /v1/completions` and `POST /v1/chat/completions`, on the same workers,
//! queue and metrics as `/infer`.
//!
//! The simulated model writes `max_tokens` tokens in one inference time. Without `stream` the
//! answer comes after the inference, as `/infer`'s does. With `"stream": true` the answer is
//! `text/event-stream`: the headers at once (a full queue is still a 503), then one `data:` event
//! per token spread evenly over the inference time (the first after INFERENCE_SECONDS /
//! max_tokens), then `data: [DONE]`. The worker is held until the last token, the request is
//! counted and its duration observed then, and a client that leaves earlier frees its worker or
//! queue place at once and is counted as 499.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use hyper::body::Frame;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::admission::{Entry, QueueFull, Slot};
use crate::routes::{self, App, Outcome, error};

/// Tokens an answer has when the request names no `max_tokens` (OpenAI's default for
/// completions).
pub const DEFAULT_MAX_TOKENS: u32 = 16;

/// Most tokens one request may ask for: a stream holds one event per token.
pub const MAX_TOKENS: u32 = 4096;

/// The `model` of answers to requests that name none.
const DEFAULT_MODEL: &str = "kscale-simulated";

/// Response header naming the pod that answered (the OpenAI answer has no field for it).
pub const POD_HEADER: &str = "x-kscale-pod";

/// The two OpenAI-style endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    /// `POST /v1/completions`: `prompt` in, `choices[0].text` out.
    Completions,
    /// `POST /v1/chat/completions`: `messages` in, `choices[0].message.content` out.
    Chat,
}

impl Api {
    fn expected(self) -> &'static str {
        match self {
            Api::Completions => {
                r#"{"prompt": "...", "max_tokens": N, "stream": false, "model": "..."}"#
            }
            Api::Chat => {
                r#"{"messages": [{"role": "user", "content": "..."}], "max_tokens": N, "stream": false, "model": "..."}"#
            }
        }
    }
}

/// Body of `POST /v1/completions` (fields the simulation uses; others are ignored, as real
/// servers accept sampling options).
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    prompt: String,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    stream: Option<bool>,
}

/// Body of `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<ChatMessage>,
    #[serde(default, alias = "max_completion_tokens")]
    max_tokens: Option<u32>,
    #[serde(default)]
    stream: Option<bool>,
}

/// One message of a chat request.
#[derive(Debug, Deserialize)]
struct ChatMessage {
    #[serde(rename = "role")]
    _role: String,
    content: String,
}

/// What one request asks the simulated model for.
#[derive(Debug)]
struct Generation {
    api: Api,
    model: String,
    prompt_tokens: u64,
    max_tokens: u32,
    stream: bool,
}

/// `POST /v1/completions` and `/v1/chat/completions`, with kscale's JSON 405 for other methods.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/v1/completions",
            post(completions).fallback(routes::inference_wrong_method),
        )
        .route(
            "/v1/chat/completions",
            post(chat).fallback(routes::inference_wrong_method),
        )
}

/// `POST /v1/completions`.
pub async fn completions(State(app): State<Arc<App>>, request: Request) -> Response {
    generate(app, request, Api::Completions).await
}

/// `POST /v1/chat/completions`.
pub async fn chat(State(app): State<Arc<App>>, request: Request) -> Response {
    generate(app, request, Api::Chat).await
}

async fn generate(app: Arc<App>, request: Request, api: Api) -> Response {
    let outcome = Outcome::new(&app);
    let arrived = routes::arrival(&request);
    let bytes = match routes::read_bytes(&app, request).await {
        Ok(bytes) => bytes,
        Err(response) => return outcome.answer(response),
    };
    let generation = match parse(api, &bytes) {
        Ok(g) => g,
        Err(why) => {
            let message = format!("{why}; expected {}", api.expected());
            return outcome.answer(error(StatusCode::BAD_REQUEST, message));
        }
    };
    if generation.stream {
        return stream(app, arrived, generation, outcome);
    }
    let admitted = match routes::admit(&app).await {
        Ok(admitted) => admitted,
        Err(response) => return outcome.answer(response),
    };
    routes::simulate(&app).await;
    drop(admitted);
    app.metrics
        .duration
        .observe(arrived.elapsed().as_secs_f64());
    let text: String = (1..=generation.max_tokens).map(token).collect();
    let choice = match api {
        Api::Completions => json!({
            "index": 0, "text": text, "logprobs": null, "finish_reason": "length",
        }),
        Api::Chat => json!({
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "logprobs": null,
            "finish_reason": "length",
        }),
    };
    let mut body = generation.head(&next_id(api), unix_now());
    body["choices"] = json!([choice]);
    body["usage"] = generation.usage();
    let mut response = (StatusCode::OK, Json(body)).into_response();
    pod_header(&app, &mut response);
    outcome.answer(response)
}

/// Parses and checks a request body; the error says what is wrong (a 400).
fn parse(api: Api, bytes: &[u8]) -> Result<Generation, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the request body is empty".into());
    }
    let shape = |e: serde_json::Error| {
        if e.is_data() {
            format!("request body has the wrong shape: {e}")
        } else {
            format!("request body is not valid JSON: {e}")
        }
    };
    let (model, prompt_tokens, max_tokens, stream) = match api {
        Api::Completions => match serde_json::from_slice::<CompletionRequest>(bytes) {
            Ok(r) => (r.model, words(&r.prompt), r.max_tokens, r.stream),
            Err(e) => return Err(shape(e)),
        },
        Api::Chat => match serde_json::from_slice::<ChatRequest>(bytes) {
            Ok(r) if r.messages.is_empty() => return Err("`messages` is empty".into()),
            Ok(r) => (
                r.model,
                r.messages.iter().map(|m| words(&m.content)).sum(),
                r.max_tokens,
                r.stream,
            ),
            Err(e) => return Err(shape(e)),
        },
    };
    let max_tokens = max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if !(1..=MAX_TOKENS).contains(&max_tokens) {
        return Err(format!(
            "max_tokens must be between 1 and {MAX_TOKENS}, not {max_tokens}"
        ));
    }
    Ok(Generation {
        api,
        model: model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
        prompt_tokens,
        max_tokens,
        stream: stream.unwrap_or(false),
    })
}

/// The simulated model's token count of a text: its words.
fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The `k`-th generated token (from 1).
fn token(k: u32) -> String {
    format!(" tok{k}")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh answer id.
fn next_id(api: Api) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    match api {
        Api::Completions => format!("cmpl-kscale-{n}"),
        Api::Chat => format!("chatcmpl-kscale-{n}"),
    }
}

fn pod_header(app: &App, response: &mut Response) {
    if let Ok(pod) = HeaderValue::from_str(&app.pod) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(POD_HEADER), pod);
    }
}

impl Generation {
    /// `id`, `object`, `created` and `model` of an answer or of one stream event.
    fn head(&self, id: &str, created: u64) -> Value {
        let object = match (self.api, self.stream) {
            (Api::Completions, _) => "text_completion",
            (Api::Chat, false) => "chat.completion",
            (Api::Chat, true) => "chat.completion.chunk",
        };
        json!({ "id": id, "object": object, "created": created, "model": self.model })
    }

    fn usage(&self) -> Value {
        let completion = u64::from(self.max_tokens);
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    /// The stream event carrying token `k`; the last one has the finish reason and the usage
    /// (as llama-server sends them).
    fn event(&self, id: &str, created: u64, k: u32) -> Bytes {
        let last = k == self.max_tokens;
        let finish = if last { json!("length") } else { Value::Null };
        let choice = match self.api {
            Api::Completions => json!({
                "index": 0, "text": token(k), "logprobs": null, "finish_reason": finish,
            }),
            Api::Chat => {
                let delta = if k == 1 {
                    json!({ "role": "assistant", "content": token(k) })
                } else {
                    json!({ "content": token(k) })
                };
                json!({ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish })
            }
        };
        let mut event = self.head(id, created);
        event["choices"] = json!([choice]);
        if last {
            event["usage"] = self.usage();
        }
        Bytes::from(format!("data: {event}\n\n"))
    }
}

/// Answers a streamed request: 503 at once when the queue is full, else the event stream, written
/// by a task that holds the queue place, then the worker.
fn stream(app: Arc<App>, arrived: Instant, generation: Generation, outcome: Outcome) -> Response {
    let entry = match app.admission.enter() {
        Ok(entry) => entry,
        Err(QueueFull) => return outcome.answer(routes::queue_full(&app)),
    };
    // A small buffer: a client that does not read holds the writer, and the write timeout ends
    // the connection.
    let (tx, rx) = mpsc::channel(4);
    let mut response = Response::new(Body::new(EventStream { rx }));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    pod_header(&app, &mut response);
    tokio::spawn(write_stream(app, arrived, generation, entry, outcome, tx));
    response
}

/// Produces the events of one streamed answer. Returns early, freeing the worker or queue place
/// and leaving `outcome` to count 499, as soon as the client is gone.
async fn write_stream(
    app: Arc<App>,
    arrived: Instant,
    generation: Generation,
    entry: Entry,
    outcome: Outcome,
    tx: mpsc::Sender<Bytes>,
) {
    let slot: Slot = match entry {
        Entry::Running(slot) => slot,
        Entry::Waiting(waiting) => tokio::select! {
            slot = waiting.wait() => match slot {
                Some(slot) => slot,
                None => return outcome.count(StatusCode::SERVICE_UNAVAILABLE.as_u16()),
            },
            // Dropping the queue place counts it as abandoned.
            () = tx.closed() => return,
        },
    };
    let started = tokio::time::Instant::now();
    let id = next_id(generation.api);
    let created = unix_now();
    let n = generation.max_tokens;
    for k in 1..=n {
        // A zero-length sleep still waits for a timer tick (see `routes::simulate`).
        if !app.inference.is_zero() {
            let at = started + app.inference.mul_f64(f64::from(k) / f64::from(n));
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = tx.closed() => return,
            }
        }
        if tx.send(generation.event(&id, created, k)).await.is_err() {
            return;
        }
    }
    drop(slot);
    app.metrics
        .duration
        .observe(arrived.elapsed().as_secs_f64());
    outcome.count(StatusCode::OK.as_u16());
    let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
}

/// The body of a streamed answer: the events as the writer task produces them; it ends when
/// the task does.
struct EventStream {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }
}
