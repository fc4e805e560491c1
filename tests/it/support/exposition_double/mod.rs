//! The exposition double, in process: one loopback listener per "pod" that answers
//! `GET <metrics path>` with a real server's exposition text ([`text`]) and 404 otherwise. It is
//! not a server (no API, no health path, no model): it stands in for what vLLM, TGI, Triton and
//! llama.cpp expose, which cannot run on this machine, so that the rest of the chain (a real
//! Prometheus, the adapter's exact query) is real. The test moves its values while it runs.

pub mod text;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
pub use text::{DoubleOf, Values};

/// One pod's exposition, on 127.0.0.1, until dropped.
pub struct ExpositionDouble {
    /// Where it listens.
    pub addr: SocketAddr,
    values: Arc<Mutex<Values>>,
    task: tokio::task::JoinHandle<()>,
}

impl ExpositionDouble {
    /// Serves `server`'s exposition of `values` at `path` on a free loopback port.
    pub async fn start(server: DoubleOf, path: &str, values: Values) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot bind 127.0.0.1:0 for an exposition double")?;
        let addr = listener.local_addr().context("no local address")?;
        let values = Arc::new(Mutex::new(values));
        let shared = values.clone();
        let path = path.to_string();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let shared = shared.clone();
            let path = path.clone();
            async move {
                use axum::http::{StatusCode, header};
                if uri.path() != path {
                    return (
                        StatusCode::NOT_FOUND,
                        [(header::CONTENT_TYPE, "text/plain")],
                        String::from("not found: an exposition double serves only its metrics"),
                    );
                }
                let v = *shared.lock().expect("values lock");
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, text::CONTENT_TYPE)],
                    text::exposition(server, &v),
                )
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, values, task })
    }

    /// Changes what the next scrape reads.
    pub fn set(&self, change: impl FnOnce(&mut Values)) {
        change(&mut self.values.lock().expect("values lock"));
    }
}

impl Drop for ExpositionDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}
