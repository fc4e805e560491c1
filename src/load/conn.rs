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

/// Where requests go: `POST {base}/infer`.
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
}

impl Target {
    /// Parses a base URL such as `http://127.0.0.1:3000` (a path prefix is kept).
    pub fn from_base_url(base: &str, input: &str) -> anyhow::Result<Target> {
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
        let path = format!("{}/infer", uri.path().trim_end_matches('/'));
        let body = serde_json::to_vec(&serde_json::json!({ "input": input }))
            .map(Bytes::from)
            .map_err(|e| anyhow::anyhow!("cannot encode the request body: {e}"))?;
        Ok(Target {
            url: format!("http://{authority}{path}"),
            authority,
            path,
            body,
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
    /// A 2xx answer that is not the server's JSON, or is larger than [`MAX_ANSWER_BYTES`].
    BadAnswer,
    /// Anything else: other statuses, resets, broken responses.
    Other,
}

/// Most bytes read of one answer: the server's answers are a few hundred bytes, and an endless
/// body must not grow the load generator's memory.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What one request came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A 2xx answer.
    Ok {
        /// Status code.
        status: u16,
        /// The `pod` field of the JSON answer, when there is one.
        pod: Option<String>,
        /// The `queue_ms` field.
        queue_ms: Option<f64>,
        /// The `inference_ms` field.
        inference_ms: Option<f64>,
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

/// Sends one request on `conn` and reads the whole answer. Returns the outcome and whether the
/// connection may be reused. A connection that turns out closed before the request was written
/// is reported as `Err(())` so the caller can reconnect without counting a failure.
pub async fn send(conn: &mut Conn, target: &Target) -> Result<(Outcome, bool), ()> {
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
    let mut body = response.into_body();
    let mut bytes = Vec::new();
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
        if data.len() > MAX_ANSWER_BYTES.saturating_sub(bytes.len()) {
            // The rest is never read: the connection cannot carry another request.
            return Ok((
                failed(
                    ErrorKind::BadAnswer,
                    Some(status.as_u16()),
                    format!(
                        "{status} answer larger than {MAX_ANSWER_BYTES} bytes; stopped reading"
                    ),
                ),
                false,
            ));
        }
        bytes.extend_from_slice(&data);
    }
    let reusable = conn.is_open();
    Ok((classify(status, &bytes), reusable))
}

fn classify(status: StatusCode, body: &[u8]) -> Outcome {
    if status.is_success() {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| json.as_ref().and_then(|j| j.get(name));
        // kscale-server's answer always has a `result` text; anything else answered, but not
        // with an inference.
        if !field("result").is_some_and(serde_json::Value::is_string) {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return failed(
                ErrorKind::BadAnswer,
                Some(status.as_u16()),
                format!("{status} answer is not the server's JSON: {}", text.trim()),
            );
        }
        return Outcome::Ok {
            status: status.as_u16(),
            pod: field("pod").and_then(|v| v.as_str()).map(str::to_owned),
            queue_ms: field("queue_ms").and_then(|v| v.as_f64()),
            inference_ms: field("inference_ms").and_then(|v| v.as_f64()),
        };
    }
    let kind = if status == StatusCode::SERVICE_UNAVAILABLE {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    };
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    failed(
        kind,
        Some(status.as_u16()),
        format!("{status}: {}", text.trim()),
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

/// The client side of one request: reuse `slot`'s connection when allowed, else open one; send;
/// keep the connection in `slot` when it may carry more. Counts connections opened in `opened`.
pub async fn request(
    slot: &mut Option<Conn>,
    target: &Target,
    timeout: Duration,
    reconnect_every: u64,
    opened: &std::sync::atomic::AtomicU64,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let attempt = async {
        // One retry: a kept-alive connection the server closed meanwhile is not a failure.
        for _ in 0..2 {
            let reuse = slot
                .as_ref()
                .is_some_and(|c| c.is_open() && (reconnect_every == 0 || c.used < reconnect_every));
            if !reuse {
                *slot = None;
                match connect(target).await {
                    Ok(c) => {
                        opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        *slot = Some(c);
                    }
                    Err(outcome) => return outcome,
                }
            }
            let Some(conn) = slot.as_mut() else {
                continue;
            };
            match send(conn, target).await {
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

    #[test]
    fn base_urls() {
        let t = Target::from_base_url("http://127.0.0.1:3000", "x").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:3000", "/infer")
        );
        let t = Target::from_base_url("http://localhost/api/", "x").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("localhost:80", "/api/infer")
        );
        assert_eq!(t.url, "http://localhost:80/api/infer");
        let t = Target::from_base_url("http://[::1]:8080", "x").unwrap();
        assert_eq!(t.authority, "[::1]:8080");
        assert!(Target::from_base_url("https://a:1", "x").is_err());
        assert!(Target::from_base_url("127.0.0.1:3000", "x").is_err());
        assert_eq!(&t.body[..], br#"{"input":"x"}"#);
    }

    #[test]
    fn answers_are_classified() {
        let ok = classify(
            StatusCode::OK,
            br#"{"result":"r","pod":"p-1","queue_ms":5.5,"inference_ms":10000.0}"#,
        );
        assert!(
            matches!(ok, Outcome::Ok { status: 200, pod: Some(ref p), queue_ms: Some(q), .. } if p == "p-1" && q == 5.5)
        );
        let shed = classify(
            StatusCode::SERVICE_UNAVAILABLE,
            b"{\"error\":\"queue full\"}",
        );
        assert!(matches!(
            shed,
            Outcome::Failed {
                kind: ErrorKind::Unavailable,
                status: Some(503),
                ..
            }
        ));
        let other = classify(StatusCode::NOT_FOUND, b"");
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
                    classify(StatusCode::OK, body),
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
