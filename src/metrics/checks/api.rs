//! Raw GETs through the API server, each bounded, with failures classified for the stages' hints.

/// A GET through the API server that failed.
#[derive(Debug)]
pub enum GetError {
    /// The API server (or the proxied service) answered with an error status.
    Status {
        /// HTTP status code.
        code: u16,
        /// `Status.reason`.
        reason: String,
        /// `Status.message`.
        message: String,
    },
    /// No answer at all.
    Transport(String),
}

impl std::fmt::Display for GetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GetError::Status {
                code,
                reason,
                message,
            } => {
                write!(f, "HTTP {code}")?;
                if !reason.is_empty() {
                    write!(f, " {reason}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            GetError::Transport(e) => write!(f, "{e}"),
        }
    }
}

fn classify(e: kube::Error) -> GetError {
    match e {
        kube::Error::Api(s) => GetError::Status {
            code: s.code,
            reason: s.reason.clone(),
            message: s.message.clone(),
        },
        other => GetError::Transport(format!("{other:#}")),
    }
}

/// A raw GET through the API server.
pub async fn get_text(client: &kube::Client, path: &str) -> Result<String, GetError> {
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| GetError::Transport(format!("cannot build request for {path}: {e}")))?;
    bounded(client.request_text(req)).await
}

/// Longest wait for one API request of a check: [`crate::kubeapi::REQUEST_TIMEOUT`]. A client
/// with kube's default retry policy retries 503s (an aggregated API or a service proxy without
/// endpoints) with backoff for many minutes; a check must report instead of hanging. Build the
/// client with `default_retry = false` to see the 503 itself.
pub use crate::kubeapi::REQUEST_TIMEOUT;

pub(super) async fn bounded<T>(
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, GetError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
        Ok(r) => r.map_err(classify),
        Err(_) => Err(GetError::Transport(format!(
            "no answer within {} s (the API server, or the service it proxies to, keeps failing)",
            REQUEST_TIMEOUT.as_secs()
        ))),
    }
}
