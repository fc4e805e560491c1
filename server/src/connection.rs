//! One client connection: HTTP/1.1 with keep-alive and parking for normal connections, and the
//! overload lane that answers probes once MAX_CONNECTIONS connections are open.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderValue, Request, StatusCode, header};
use bytes::BytesMut;
use hyper::body::{Body as _, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tower::ServiceExt;
use tracing::debug;

use crate::routes::{self, App, Arrival};
use crate::stream::Stream;

/// What every connection needs besides the app.
pub struct ConnectionSettings {
    /// The routes.
    pub router: Router,
    /// Shared state.
    pub app: Arc<App>,
    /// Idle keep-alive timeout; `None` closes after each response.
    pub keep_alive: Option<Duration>,
    /// Time allowed for a request head.
    pub header_timeout: Duration,
    /// Connection age that triggers `Connection: close`.
    pub max_age: Option<Duration>,
    /// Time a response write may stall.
    pub write_timeout: Duration,
}

/// Which lane a connection was accepted into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Within MAX_CONNECTIONS: served fully, with keep-alive.
    Normal,
    /// Beyond MAX_CONNECTIONS: one request; probes and /metrics are answered, the rest get 503.
    Overload,
}

/// Time an overload connection gets to start its request. A probe writes its request right
/// after connecting; a flood's idle connections send nothing and are dropped quickly, so the
/// lane (and the backlog behind it) keeps moving.
const OVERLOAD_FIRST_BYTE: Duration = Duration::from_millis(500);
/// Whole life of an overload connection: head, answer and write.
const OVERLOAD_LIFETIME: Duration = Duration::from_secs(3);

/// Paths the overload lane answers: the kubelet's probes and Prometheus' scrape.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Time without a request after which an open connection is parked: hyper's two 8 KiB buffers
/// are released and the task only waits for the socket to become readable. This keeps 10,000
/// idle keep-alive connections at a few MiB instead of over 100 MiB, and costs a fresh hyper
/// state (two allocations) when a parked client sends again.
const PARK_AFTER: Duration = Duration::from_millis(250);

/// What the connection task needs to know about its requests in order to park it.
struct Activity {
    in_progress: AtomicUsize,
    /// Nanoseconds after the connection's birth at which the last response was produced.
    last_done: AtomicU64,
}

/// Serves a connection of the normal lane until the client leaves, it idles out, or the server
/// stops. `_open` and `_permit` are held for the connection's life.
pub async fn serve(
    tcp: TcpStream,
    settings: Arc<ConnectionSettings>,
    mut stop: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
    _permit: OwnedSemaphorePermit,
) {
    let born = Instant::now();
    let activity = Arc::new(Activity {
        in_progress: AtomicUsize::new(0),
        last_done: AtomicU64::new(0),
    });
    let mut io = Stream::new(tcp, settings.app.clone(), settings.write_timeout);
    // The first request gets the header timeout; later ones the keep-alive idle timeout.
    let mut idle_limit = settings.header_timeout;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(settings.keep_alive.is_some())
        // hyper restarts this timer whenever the connection waits for a request head, so it is
        // both the idle keep-alive timeout and the limit for a slow client's headers.
        .header_read_timeout(settings.header_timeout);
    loop {
        let idle_since = born + Duration::from_nanos(activity.last_done.load(Ordering::Acquire));
        let left = idle_limit.saturating_sub(idle_since.elapsed());
        // Also bounds a client that dribbles a request head across parking cycles.
        if left.is_zero() {
            return;
        }
        if io.prefix.is_empty() {
            tokio::select! {
                ready = tokio::time::timeout(left, io.tcp.readable()) => {
                    if !matches!(ready, Ok(Ok(()))) {
                        return;
                    }
                }
                // An idle connection has nothing to finish: close it at once.
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
        let service_settings = settings.clone();
        let service_activity = activity.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            // Boxed: polling without shutdown (to park) needs an Unpin response future.
            Box::pin(handle(
                request,
                service_settings.clone(),
                Some(service_activity.clone()),
                born,
                Lane::Normal,
            ))
        });
        let mut connection = builder.serve_connection(TokioIo::new(io), service);
        let mut parking = false;
        let mut stopping = false;
        let mut park_check = tokio::time::Instant::now() + PARK_AFTER;
        let result = loop {
            tokio::select! {
                result = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => break result,
                _ = stop.wait_for(|stopped| *stopped), if !stopping => {
                    stopping = true;
                    parking = false;
                    // Closes an idle connection now; a busy one after its current response.
                    std::pin::Pin::new(&mut connection).graceful_shutdown();
                }
                () = tokio::time::sleep_until(park_check), if !stopping && !parking => {
                    let last = born + Duration::from_nanos(activity.last_done.load(Ordering::Acquire));
                    if activity.in_progress.load(Ordering::Acquire) == 0 && last.elapsed() >= PARK_AFTER {
                        parking = true;
                        std::pin::Pin::new(&mut connection).graceful_shutdown();
                    } else {
                        park_check = tokio::time::Instant::now() + PARK_AFTER;
                    }
                }
            }
        };
        if let Err(e) = result {
            debug!(error = %e, "connection ended with an error");
            return;
        }
        if !parking {
            // The client closed, keep-alive is off, or the server is draining.
            let mut io = connection.into_parts().io.into_inner();
            let _ = io.tcp.shutdown().await;
            return;
        }
        let parts = connection.into_parts();
        io = parts.io.into_inner();
        if !parts.read_buf.is_empty() {
            let mut prefix = BytesMut::from(parts.read_buf.as_ref());
            prefix.extend_from_slice(&io.prefix);
            io.prefix = prefix.freeze();
        }
        idle_limit = settings.keep_alive.unwrap_or(settings.header_timeout);
    }
}

/// Serves one request of a connection accepted beyond MAX_CONNECTIONS, then closes it.
pub async fn serve_overload(
    tcp: TcpStream,
    settings: Arc<ConnectionSettings>,
    _open: mpsc::Sender<()>,
    _permit: OwnedSemaphorePermit,
) {
    if !matches!(
        tokio::time::timeout(OVERLOAD_FIRST_BYTE, tcp.readable()).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let born = Instant::now();
    let io = Stream::new(tcp, settings.app.clone(), settings.write_timeout);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(false)
        .header_read_timeout(OVERLOAD_LIFETIME);
    let service_settings = settings.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        handle(
            request,
            service_settings.clone(),
            None,
            born,
            Lane::Overload,
        )
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    if let Ok(Err(e)) = tokio::time::timeout(OVERLOAD_LIFETIME, connection).await {
        debug!(error = %e, "overload connection ended with an error");
    }
}

/// Marks a request in progress; dropping it (answered or abandoned) records the time.
struct InProgress {
    activity: Arc<Activity>,
    born: Instant,
}

impl Drop for InProgress {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.activity.last_done.store(nanos, Ordering::Release);
        self.activity.in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn handle(
    mut request: Request<Incoming>,
    settings: Arc<ConnectionSettings>,
    activity: Option<Arc<Activity>>,
    born: Instant,
    lane: Lane,
) -> Result<axum::response::Response, Infallible> {
    let in_progress = activity.map(|activity| {
        activity.in_progress.fetch_add(1, Ordering::AcqRel);
        InProgress { activity, born }
    });
    let arrived = Instant::now();
    request.extensions_mut().insert(Arrival(arrived));
    let logged = tracing::enabled!(tracing::Level::DEBUG)
        .then(|| (request.method().clone(), request.uri().path().to_owned()));
    let mut response = if lane == Lane::Overload {
        settings.app.metrics.overload.inc();
        if is_probe(request.uri().path()) {
            route(&settings, request).await
        } else {
            too_many_connections(&settings.app, request.uri().path())
        }
    } else {
        route(&settings, request).await
    };
    let too_old = settings.max_age.is_some_and(|age| born.elapsed() >= age);
    if lane == Lane::Overload || too_old || settings.app.is_draining() {
        // Sends long-lived keep-alive clients to reconnect, which lets kube-proxy spread them
        // over pods added since (and away from a pod that is shutting down).
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    // A streamed answer (no exact length) is in progress until its last byte: the connection
    // must not park in the middle of it.
    let response = match in_progress {
        Some(guard) if response.body().size_hint().exact().is_none() => response.map(|body| {
            axum::body::Body::new(Guarded {
                body,
                _guard: guard,
            })
        }),
        _ => response,
    };
    if let Some((method, path)) = logged {
        debug!(
            %method,
            path,
            status = response.status().as_u16(),
            ms = arrived.elapsed().as_secs_f64() * 1000.0,
            ?lane,
            "request"
        );
    }
    Ok(response)
}

/// A response body that holds `_guard` until it is dropped.
struct Guarded<G> {
    body: axum::body::Body,
    _guard: G,
}

impl<G: Send + Unpin + 'static> hyper::body::Body for Guarded<G> {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

async fn route(
    settings: &ConnectionSettings,
    request: Request<Incoming>,
) -> axum::response::Response {
    match settings.router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// 503 for an inference (or unknown) request on the overload lane; inference requests are
/// counted like any other shed request.
fn too_many_connections(app: &App, path: &str) -> axum::response::Response {
    let mut response = routes::error(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "too many connections: the server holds MAX_CONNECTIONS open connections; retry after {} s",
            app.retry_after_seconds
        ),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(app.retry_after_seconds),
    );
    if routes::is_inference(path) {
        app.metrics.count(StatusCode::SERVICE_UNAVAILABLE.as_u16());
    }
    response
}
