//! Listening, the two connection lanes, and the graceful drain on SIGTERM/SIGINT.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, info, warn};

use crate::admission::Admission;
use crate::config::Config;
use crate::connection::{self, ConnectionSettings};
use crate::limits::{Budget, Repeated};
use crate::metrics::Metrics;
use crate::openai;
use crate::routes::{self, App};

/// How the server ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every accepted request was answered, or DRAIN_SECONDS cut what was left (the deadline
    /// the operator configured): exit 0.
    Drained,
    /// A second signal cut the drain short: exit 128 + the signal's number, as a shell reports
    /// a process ended by that signal.
    Forced(&'static str),
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

/// Serves until a shutdown signal, then drains; returns how it ended.
pub async fn run(config: Config) -> anyhow::Result<Ending> {
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

    let budget = Budget::for_process(config.max_connections);
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
    if budget.connections < config.max_connections {
        warn!(
            max_connections = config.max_connections,
            open_file_limit = budget.nofile,
            using = budget.connections,
            "MAX_CONNECTIONS={} is more than the open-file limit (RLIMIT_NOFILE {}) allows: serving at most {} connections; raise the limit (ulimit -n, the container runtime's nofile) to allow more",
            config.max_connections,
            budget.nofile.unwrap_or_default(),
            budget.connections
        );
    }

    let settings = Arc::new(ConnectionSettings {
        router: routes::router()
            .merge(openai::router())
            .with_state(app.clone()),
        app: app.clone(),
        keep_alive: config.keep_alive(),
        header_timeout: config.keep_alive().unwrap_or_else(|| config.read_timeout()),
        max_age: config.max_connection_age(),
        write_timeout: config.write_timeout(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `open_tx`; `recv` yields None once all are gone.
    let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
    tokio::spawn(accept_loop(
        listener,
        settings,
        Lanes {
            normal: Arc::new(Semaphore::new(budget.connections as usize)),
            overload: Arc::new(Semaphore::new(budget.overload as usize)),
        },
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
                return Ok(Ending::Drained);
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
    Ok(cut_early.map_or(Ending::Drained, Ending::Forced))
}

/// Connection permits: the normal lane (MAX_CONNECTIONS, capped to the open-file limit) and
/// the overload lane that keeps probes answerable when the normal lane is full.
struct Lanes {
    normal: Arc<Semaphore>,
    overload: Arc<Semaphore>,
}

async fn accept_loop(
    listener: TcpListener,
    settings: Arc<ConnectionSettings>,
    lanes: Lanes,
    mut stop: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
) {
    let mut accept_errors = Repeated::new(Duration::from_secs(10));
    loop {
        // Holding a permit before accepting bounds memory and descriptors under a connection
        // flood: beyond both lanes, new connections wait in the kernel's backlog.
        let permit = match lanes.normal.clone().try_acquire_owned() {
            Ok(permit) => Ok(permit),
            Err(_) => match lanes.overload.clone().try_acquire_owned() {
                Ok(permit) => Err(permit),
                Err(_) => tokio::select! {
                    permit = lanes.normal.clone().acquire_owned() => match permit {
                        Ok(permit) => Ok(permit),
                        Err(_) => break,
                    },
                    permit = lanes.overload.clone().acquire_owned() => match permit {
                        Ok(permit) => Err(permit),
                        Err(_) => break,
                    },
                    _ = stop.wait_for(|stopped| *stopped) => break,
                },
            },
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        match accepted {
            Ok((stream, _peer)) => {
                // Small JSON answers must not wait for Nagle's algorithm.
                let _ = stream.set_nodelay(true);
                // A normal slot may have freed while this one waited in accept.
                let permit = permit.or_else(|overload| {
                    lanes
                        .normal
                        .clone()
                        .try_acquire_owned()
                        .map_err(|_| overload)
                });
                match permit {
                    Ok(permit) => tokio::spawn(connection::serve(
                        stream,
                        settings.clone(),
                        stop.clone(),
                        open.clone(),
                        permit,
                    )),
                    Err(permit) => tokio::spawn(connection::serve_overload(
                        stream,
                        settings.clone(),
                        open.clone(),
                        permit,
                    )),
                };
            }
            Err(e) => {
                // Typically EMFILE when other descriptors ate the budget: back off instead of
                // spinning, and log once per window rather than 20 times a second.
                if let Some(held_back) = accept_errors.hit(Instant::now()) {
                    warn!(
                        error = %e,
                        repeated = held_back,
                        "cannot accept a connection; retrying every 50 ms (logged at most every 10 s)"
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    debug!("listener closed");
}
