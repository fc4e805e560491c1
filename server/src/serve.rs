//! Listening, per-connection HTTP/1.1 handling, and the graceful drain on SIGTERM/SIGINT.

use std::convert::Infallible;
use std::io::Write;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::http::{HeaderValue, Request, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
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

async fn serve_connection(
    stream: TcpStream,
    settings: Arc<ConnectionSettings>,
    mut stop: watch::Receiver<bool>,
    _open: mpsc::Sender<()>,
    _permit: OwnedSemaphorePermit,
) {
    let born = Instant::now();
    let service_settings = settings.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        handle(request, service_settings.clone(), born)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(settings.keep_alive.is_some())
        // hyper restarts this timer whenever the connection waits for a request head, so it is
        // both the idle keep-alive timeout and the limit for a slow client's headers.
        .header_read_timeout(settings.header_timeout);
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|stopped| *stopped) => {}
    }
    // Closes an idle connection now; a busy one after its current response.
    connection.as_mut().graceful_shutdown();
    if let Err(e) = connection.await {
        debug!(error = %e, "connection ended with an error while draining");
    }
}

async fn handle(
    mut request: Request<Incoming>,
    settings: Arc<ConnectionSettings>,
    born: Instant,
) -> Result<axum::response::Response, Infallible> {
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
