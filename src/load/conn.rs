//! One HTTP/1.1 connection to the inference service and one request over it.
//!
//! Connections are explicit (hyper's `client::conn::http1` over a tokio `TcpStream`) because
//! kube-proxy balances connections, not requests: how long a connection lives decides which pods
//! see the load.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::api::{self, Answer, Api, EventReader};

/// kscale-server names the pod answering an OpenAI-style request in this header (`/infer`'s
/// answer has a `pod` field).
pub const POD_HEADER: &str = "x-kscale-pod";

/// Where requests go: `POST {base}{api path}` (`/infer`, `/v1/completions`,
/// `/v1/chat/completions`).
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` to connect to.
    pub authority: String,
    /// Path of the inference endpoint.
    pub path: String,
    /// The full URL, for messages.
    pub url: String,
    /// JSON body of every request.
    pub body: Bytes,
    /// The protocol: body, and what a valid answer is.
    pub api: Api,
}

impl Target {
    /// Parses a base URL such as `http://127.0.0.1:3000` (a path prefix is kept); requests go to
    /// `api`'s path under it.
    pub fn from_base_url(base: &str, api: &Api) -> anyhow::Result<Target> {
        let uri: Uri = base
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("`{base}` is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => anyhow::bail!(
                "`{base}`: only http:// URLs are supported (not {other}://); use the service's \
                 plain-HTTP port or a port-forward"
            ),
            None => anyhow::bail!("`{base}` has no scheme: write it as http://HOST:PORT"),
        }
        let Some(authority) = uri.authority() else {
            anyhow::bail!("`{base}` has no host: write it as http://HOST:PORT");
        };
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let path = format!("{}{}", uri.path().trim_end_matches('/'), api.path());
        let body = api
            .body()
            .map_err(|e| anyhow::anyhow!("cannot encode the request body: {e}"))?;
        Ok(Target {
            url: format!("http://{authority}{path}"),
            authority,
            path,
            body,
            api: api.clone(),
        })
    }
}

/// Why a request did not get a 2xx answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The connection was refused: nothing listens (port-forward gone, pod not ready).
    Refused,
    /// 503: the server's queue is full (load shed).
    Unavailable,
    /// No complete answer within the request timeout.
    Timeout,
    /// A 2xx answer that is not the expected JSON (or event stream), or is larger than
    /// [`Api::answer_cap`](super::api::Api::answer_cap).
    BadAnswer,
    /// Anything else: other statuses, resets, broken responses.
    Other,
}

/// What one request came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A 2xx answer.
    Ok {
        /// Status code.
        status: u16,
        /// What the answer said.
        answer: Answer,
    },
    /// A failure.
    Failed {
        /// The class of failure.
        kind: ErrorKind,
        /// The status code when the server answered.
        status: Option<u16>,
        /// What happened, for the report's examples.
        detail: String,
    },
}

/// An open connection and how many requests it carried.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// Requests sent over this connection.
    pub used: u64,
}

impl Conn {
    /// True when the connection can carry another request.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }
}

fn failed(kind: ErrorKind, status: Option<u16>, detail: impl Into<String>) -> Outcome {
    Outcome::Failed {
        kind,
        status,
        detail: detail.into(),
    }
}

/// Opens a connection. A refused connection is [`ErrorKind::Refused`].
pub async fn connect(target: &Target) -> Result<Conn, Outcome> {
    let stream = TcpStream::connect(&target.authority).await.map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::ConnectionRefused {
            ErrorKind::Refused
        } else {
            ErrorKind::Other
        };
        failed(kind, None, format!("connect to {}: {e}", target.authority))
    })?;
    // Requests are small and latency is what is measured.
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(ErrorKind::Other, None, format!("HTTP handshake: {e}")))?;
    tokio::spawn(async move {
        // Ends when the server closes the connection or the sender is dropped; a failure shows
        // up on the request that was using it.
        let _ = connection.await;
    });
    Ok(Conn { sender, used: 0 })
}

/// Sends one request on `conn` and reads the whole answer (a stream as it arrives; `started` is
/// when the request began, for the time to first token). Returns the outcome and whether the
/// connection may be reused. A connection that turns out closed before the request was written
/// is reported as `Err(())` so the caller can reconnect without counting a failure.
pub async fn send(
    conn: &mut Conn,
    target: &Target,
    started: Instant,
) -> Result<(Outcome, bool), ()> {
    let request = Request::post(target.path.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("kscale-load/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(target.body.clone()));
    let request = match request {
        Ok(r) => r,
        Err(e) => {
            return Ok((
                failed(
                    ErrorKind::Other,
                    None,
                    format!("cannot build the request: {e}"),
                ),
                false,
            ));
        }
    };
    if conn.sender.ready().await.is_err() {
        return Err(());
    }
    conn.used += 1;
    let response = match conn.sender.try_send_request(request).await {
        Ok(r) => r,
        Err(e) if e.message().is_some() => return Err(()),
        Err(e) => {
            let e = e.into_error();
            return Ok((
                failed(ErrorKind::Other, None, format!("request: {e}")),
                false,
            ));
        }
    };
    let status = response.status();
    let pod = response
        .headers()
        .get(POD_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let streamed = status.is_success() && target.api.streams();
    if streamed {
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        if !content_type.starts_with("text/event-stream") {
            // The body is not read: the connection cannot carry another request.
            return Ok((
                failed(
                    ErrorKind::BadAnswer,
                    Some(status.as_u16()),
                    format!(
                        "{status} answer to a streamed request is not text/event-stream \
                         (content-type {content_type})"
                    ),
                ),
                false,
            ));
        }
    }
    let cap = target.api.answer_cap();
    let mut events = streamed.then(|| EventReader::new(&target.api));
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => frame.into_data().unwrap_or_default(),
            Err(e) => {
                return Ok((
                    failed(
                        ErrorKind::Other,
                        Some(status.as_u16()),
                        format!("reading the {status} answer: {e}"),
                    ),
                    false,
                ));
            }
        };
        // The cap counts every byte of the answer, a stream's included, not one chunk.
        if data.len() > cap.saturating_sub(read) {
            // The rest is never read: the connection cannot carry another request.
            return Ok((
                failed(
                    ErrorKind::BadAnswer,
                    Some(status.as_u16()),
                    format!("{status} answer larger than {cap} bytes; stopped reading"),
                ),
                false,
            ));
        }
        read += data.len();
        match events.as_mut() {
            // Only the event being assembled is kept.
            Some(reader) => {
                if let Err(why) = reader.feed(&data, started.elapsed()) {
                    return Ok((bad_answer(status, &why, true), false));
                }
            }
            None => bytes.extend_from_slice(&data),
        }
    }
    let reusable = conn.is_open();
    let outcome = match events {
        Some(reader) => match reader.finish(started.elapsed()) {
            Ok(answer) => Outcome::Ok {
                status: status.as_u16(),
                answer: Answer {
                    pod: answer.pod.or(pod),
                    ..answer
                },
            },
            Err(why) => bad_answer(status, &why, true),
        },
        None => classify(&target.api, status, &bytes, pod),
    };
    Ok((outcome, reusable))
}

fn bad_answer(status: StatusCode, why: &str, stream: bool) -> Outcome {
    let what = if stream { "stream" } else { "answer" };
    failed(
        ErrorKind::BadAnswer,
        Some(status.as_u16()),
        format!("{status} {what} {why}"),
    )
}

fn classify(api: &Api, status: StatusCode, body: &[u8], pod: Option<String>) -> Outcome {
    if status.is_success() {
        // Anything else answered, but not with an inference.
        return match api.parse_answer(body) {
            Ok(answer) => Outcome::Ok {
                status: status.as_u16(),
                answer: Answer {
                    pod: answer.pod.or(pod),
                    ..answer
                },
            },
            Err(why) => bad_answer(status, &why, false),
        };
    }
    let kind = if status == StatusCode::SERVICE_UNAVAILABLE {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    };
    failed(
        kind,
        Some(status.as_u16()),
        format!("{status}: {}", api::excerpt(body)),
    )
}

/// Runs `fut` with a deadline; on expiry the request is a [`ErrorKind::Timeout`].
pub async fn with_deadline<F>(deadline: Instant, fut: F) -> Result<F::Output, Outcome>
where
    F: std::future::Future,
{
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::timeout(left, fut).await.map_err(|_| {
        failed(
            ErrorKind::Timeout,
            None,
            "no complete answer within the request timeout",
        )
    })
}

/// Connections opened and refused connections retried, over a whole run.
#[derive(Debug, Default)]
pub struct Counters {
    /// TCP connections opened.
    pub opened: std::sync::atomic::AtomicU64,
    /// Refused connections tried again (`--retry-refused`).
    pub refusals_retried: std::sync::atomic::AtomicU64,
}

/// Pause before connecting again after a refusal: long enough for kube-proxy to pick an
/// endpoint afresh, short beside an inference.
pub const REFUSED_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The client side of one request, started at `started`: reuse `slot`'s connection when
/// allowed, else open one (a refused connection tried again up to `retry_refused` times:
/// the request never reached a server, so a retry is safe); send; keep the connection in
/// `slot` when it may carry more.
pub async fn request(
    slot: &mut Option<Conn>,
    target: &Target,
    timeout: Duration,
    reconnect_every: u64,
    retry_refused: u32,
    counters: &Counters,
    started: Instant,
) -> Outcome {
    let deadline = started + timeout;
    let attempt = async {
        // One retry: a kept-alive connection the server closed meanwhile is not a failure.
        for _ in 0..2 {
            let reuse = slot
                .as_ref()
                .is_some_and(|c| c.is_open() && (reconnect_every == 0 || c.used < reconnect_every));
            if !reuse {
                *slot = None;
                let mut refusals = 0;
                let c = loop {
                    match connect(target).await {
                        Ok(c) => break c,
                        Err(Outcome::Failed {
                            kind: ErrorKind::Refused,
                            ..
                        }) if refusals < retry_refused => {
                            refusals += 1;
                            counters
                                .refusals_retried
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(REFUSED_RETRY_PAUSE).await;
                        }
                        Err(outcome) => return outcome,
                    }
                };
                counters
                    .opened
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *slot = Some(c);
            }
            let Some(conn) = slot.as_mut() else {
                continue;
            };
            match send(conn, target, started).await {
                Ok((outcome, reusable)) => {
                    if !reusable {
                        *slot = None;
                    }
                    return outcome;
                }
                Err(()) => *slot = None,
            }
        }
        failed(
            ErrorKind::Other,
            None,
            "the server closed every connection before a request could be sent",
        )
    };
    match with_deadline(deadline, attempt).await {
        Ok(outcome) => outcome,
        Err(timeout) => {
            // The server may still be working on it: never reuse a connection with a request
            // outstanding.
            *slot = None;
            timeout
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(prompt: &str) -> Api {
        Api::new(super::api::ApiKind::Infer, prompt, None, None, false).unwrap()
    }

    #[test]
    fn base_urls() {
        let x = infer("x");
        let t = Target::from_base_url("http://127.0.0.1:3000", &x).unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:3000", "/infer")
        );
        let t = Target::from_base_url("http://localhost/api/", &x).unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("localhost:80", "/api/infer")
        );
        assert_eq!(t.url, "http://localhost:80/api/infer");
        let t = Target::from_base_url("http://[::1]:8080", &x).unwrap();
        assert_eq!(t.authority, "[::1]:8080");
        assert!(Target::from_base_url("https://a:1", &x).is_err());
        assert!(Target::from_base_url("127.0.0.1:3000", &x).is_err());
        assert_eq!(&t.body[..], br#"{"input":"x"}"#);
        let chat = Api::new(super::api::ApiKind::Chat, "x", None, None, true).unwrap();
        let t = Target::from_base_url("http://localhost:8080/", &chat).unwrap();
        assert_eq!(t.url, "http://localhost:8080/v1/chat/completions");
    }

    #[test]
    fn answers_are_classified() {
        let x = infer("x");
        let ok = classify(
            &x,
            StatusCode::OK,
            br#"{"result":"r","pod":"p-1","queue_ms":5.5,"inference_ms":10000.0}"#,
            None,
        );
        assert!(
            matches!(ok, Outcome::Ok { status: 200, ref answer } if answer.pod.as_deref() == Some("p-1") && answer.queue_ms == Some(5.5))
        );
        let shed = classify(
            &x,
            StatusCode::SERVICE_UNAVAILABLE,
            b"{\"error\":\"queue full\"}",
            None,
        );
        assert!(matches!(
            shed,
            Outcome::Failed {
                kind: ErrorKind::Unavailable,
                status: Some(503),
                ..
            }
        ));
        let other = classify(&x, StatusCode::NOT_FOUND, b"", None);
        assert!(matches!(
            other,
            Outcome::Failed {
                kind: ErrorKind::Other,
                status: Some(404),
                ..
            }
        ));
        // A 2xx that is not kscale-server's JSON is an error of its own kind.
        for body in [&b"plain"[..], b"{}", br#"{"result": 5}"#, b"[1]"] {
            assert!(
                matches!(
                    classify(&x, StatusCode::OK, body, Some("p".into())),
                    Outcome::Failed {
                        kind: ErrorKind::BadAnswer,
                        status: Some(200),
                        ..
                    }
                ),
                "{body:?}"
            );
        }
    }
}
