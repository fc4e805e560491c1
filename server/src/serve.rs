//! Listening, per-connection HTTP/1.1 handling, and the graceful drain on SIGTERM/SIGINT.

use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderValue, Request, header};
use bytes::{Bytes, BytesMut};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tower::ServiceExt;
use tracing::{debug, info, warn};

use crate::admission::Admission;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::routes::{self, App, Arrival};

/// What every connection needs besides the app.
struct ConnectionSettings {
    router: Router,
    app: Arc<App>,
    keep_alive: Option<Duration>,
    header_timeout: Duration,
    max_age: Option<Duration>,
}

/// SIGTERM and SIGINT, installed before the listener binds so no early signal is missed.
struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Pod name for answers: POD_NAME (the Downward API), else the host name.
fn pod_name() -> String {
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    from_env("POD_NAME")
        .or_else(|| from_env("HOSTNAME"))
        .or_else(|| {
            ["/proc/sys/kernel/hostname", "/etc/hostname"]
                .iter()
                .find_map(|path| std::fs::read_to_string(path).ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Serves until a shutdown signal, then drains; returns when the process may exit 0.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let metrics = Arc::new(Metrics::new(config.workers, config.max_queue));
    let admission = Admission::new(config.workers, config.max_queue, metrics.clone());
    let app = Arc::new(App {
        admission,
        metrics,
        pod: pod_name(),
        draining: false.into(),
        inference: config.inference(),
        retry_after_seconds: config.retry_after_seconds(),
        max_body_bytes: config.max_body_bytes,
        read_timeout: config.read_timeout(),
    });

    let listener = TcpListener::bind((config.bind, config.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{}; choose another PORT/--port or BIND/--bind",
                config.bind, config.port
            )
        })?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    // Tests and scripts read this first stdout line to find a port chosen with PORT=0.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {address}")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    drop(stdout);
    info!(
        %address,
        pod = %app.pod,
        inference_seconds = config.inference_seconds,
        workers = config.workers,
        max_queue = config.max_queue,
        keep_alive_seconds = config.keep_alive_seconds,
        max_connection_age_seconds = config.max_connection_age_seconds,
        drain_seconds = config.drain().as_secs_f64(),
        version = env!("CARGO_PKG_VERSION"),
        "kscale-server listening"
    );

    let settings = Arc::new(ConnectionSettings {
        router: routes::router(app.clone()),
        app: app.clone(),
        keep_alive: config.keep_alive(),
        header_timeout: config.keep_alive().unwrap_or_else(|| config.read_timeout()),
        max_age: config.max_connection_age(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `open_tx`; `recv` yields None once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    let connections = Arc::new(Semaphore::new(config.max_connections as usize));
    tokio::spawn(accept_loop(
        listener,
        settings,
        connections,
        stop_rx,
        open_tx,
    ));

    let first = signals.next().await;
    let signalled = Instant::now();
    let deadline = signalled + config.drain();
    app.draining.store(true, Ordering::Release);
    let (in_flight, queued) = app.admission.occupancy();
    info!(
        signal = first,
        in_flight,
        queued,
        accept_grace_seconds = config.accept_grace_seconds,
        drain_seconds = config.drain().as_secs_f64(),
        "shutdown requested: /readyz now answers 503; still accepting for the grace period"
    );

    let grace_end = (signalled + config.accept_grace()).min(deadline);
    let mut cut_early = None;
    tokio::select! {
        () = tokio::time::sleep_until(grace_end.into()) => {}
        second = signals.next() => cut_early = Some(second),
    }
    // Stops the accept loop (closing the listener) and asks every connection to finish its
    // current request and close.
    let _ = stop_tx.send(true);
    if cut_early.is_none() {
        let (in_flight, queued) = app.admission.occupancy();
        info!(
            in_flight,
            queued, "stopped accepting connections; answering every accepted request"
        );
        tokio::select! {
            _ = open_rx.recv() => {
                info!(
                    drain_seconds = signalled.elapsed().as_secs_f64(),
                    "drained: every accepted request was answered; exiting"
                );
                return Ok(());
            }
            () = tokio::time::sleep_until(deadline.into()) => {}
            second = signals.next() => cut_early = Some(second),
        }
    }
    let (in_flight, queued) = app.admission.occupancy();
    let reason = match cut_early {
        Some(second) => format!("second {second}"),
        None => "drain deadline (DRAIN_SECONDS) reached".to_owned(),
    };
    warn!(
        cut = in_flight + queued,
        in_flight,
        queued,
        drain_seconds = signalled.elapsed().as_secs_f64(),
        "{reason}: cutting the requests still running; exiting"
    );
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    settings: Arc<ConnectionSettings>,
    connections: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
) {
    loop {
        // Holding a connection permit before accepting bounds memory under a connection flood:
        // beyond MAX_CONNECTIONS, new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                // Small JSON answers must not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(
                    stream,
                    settings.clone(),
                    stop.clone(),
                    open.clone(),
                    permit,
                ));
            }
            Err(e) => {
                // Typically EMFILE under a flood: back off instead of spinning.
                warn!(error = %e, "cannot accept a connection; retrying in 50 ms");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    debug!("listener closed");
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

async fn serve_connection(
    stream: TcpStream,
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
    let mut io = Prefixed {
        prefix: Bytes::new(),
        stream,
    };
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
                ready = tokio::time::timeout(left, io.stream.readable()) => {
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
                service_activity.clone(),
                born,
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
                    Pin::new(&mut connection).graceful_shutdown();
                }
                () = tokio::time::sleep_until(park_check), if !stopping && !parking => {
                    let last = born + Duration::from_nanos(activity.last_done.load(Ordering::Acquire));
                    if activity.in_progress.load(Ordering::Acquire) == 0 && last.elapsed() >= PARK_AFTER {
                        parking = true;
                        Pin::new(&mut connection).graceful_shutdown();
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
            let _ = io.stream.shutdown().await;
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

/// The connection's socket, with bytes hyper had read but not used replayed first.
struct Prefixed {
    prefix: Bytes,
    stream: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
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
    activity: Arc<Activity>,
    born: Instant,
) -> Result<axum::response::Response, Infallible> {
    activity.in_progress.fetch_add(1, Ordering::AcqRel);
    let _in_progress = InProgress { activity, born };
    let arrived = Instant::now();
    request.extensions_mut().insert(Arrival(arrived));
    let logged = tracing::enabled!(tracing::Level::DEBUG)
        .then(|| (request.method().clone(), request.uri().path().to_owned()));
    let mut response = match settings.router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let too_old = settings.max_age.is_some_and(|age| born.elapsed() >= age);
    if too_old || settings.app.is_draining() {
        // Sends long-lived keep-alive clients to reconnect, which lets kube-proxy spread them
        // over pods added since (and away from a pod that is shutting down).
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some((method, path)) = logged {
        debug!(
            %method,
            path,
            status = response.status().as_u16(),
            ms = arrived.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    Ok(response)
}
