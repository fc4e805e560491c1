//! `kscale load`: drive the inference service with a load profile, show progress live, and
//! report what was sent and what came back.
//!
//! Bounded by `--duration` and `--max-requests`; Ctrl-C stops at once and still reports. When the
//! sending phase ends by itself, requests in flight are waited for (each bounded by `--timeout`)
//! so that the counts match the server's own.

pub mod api;
pub mod conn;
pub mod stats;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::cli::LoadArgs;
use crate::loadprofile::{LoadKind, LoadProfile};
use crate::timeline::{TimelineRow, TimelineWriter};
use crate::tools::Runner;
use crate::tools::port_forward::{PortForward, PortForwardSpec};
use crate::ui::Ui;
use conn::{Conn, ErrorKind, Outcome, Target};
use stats::Stats;
pub use stats::{LoadReport, StopReason};

impl LoadArgs {
    /// Arguments with a profile and every other option at its default (for callers and tests).
    pub fn with_profile(profile: &LoadProfile) -> LoadArgs {
        let constant = match profile.steps.as_slice() {
            [only] if only.at.is_zero() => Some(only.value),
            _ => None,
        };
        // A constant load is its flag; steps go through the one syntax `profile()` reads.
        let (concurrency, rate, steps, rate_steps) = match (profile.kind, constant) {
            (LoadKind::Concurrency, Some(n)) if n >= 1.0 => (Some(n as u32), None, None, None),
            (LoadKind::Rate, Some(r)) if r > 0.0 => (None, Some(r), None, None),
            (LoadKind::Concurrency, _) => (None, None, Some(profile.to_string()), None),
            (LoadKind::Rate, _) => (None, None, None, Some(profile.to_string())),
        };
        LoadArgs {
            url: None,
            concurrency,
            rate,
            steps,
            rate_steps,
            duration: Duration::from_secs(60),
            max_requests: None,
            reconnect_every: 0,
            retry_refused: 0,
            timeout: Duration::from_secs(120),
            max_in_flight: 1024,
            api: None,
            prompt: "hello".into(),
            max_tokens: None,
            model: None,
            stream: false,
            record: None,
            interval: Duration::from_secs(1),
            quiet: true,
        }
    }

    /// The request the flags describe (`--api`, `--prompt`, `--max-tokens`, `--model`,
    /// `--stream`); the error is bad input.
    pub fn request(&self) -> Result<api::Api, crate::BadInput> {
        api::Api::new(
            self.api.unwrap_or_default(),
            &self.prompt,
            self.max_tokens,
            self.model.as_deref(),
            self.stream,
        )
        .map_err(crate::BadInput)
    }

    /// The load profile the flags describe.
    pub fn profile(&self) -> anyhow::Result<LoadProfile> {
        match (self.concurrency, self.rate, &self.steps, &self.rate_steps) {
            (Some(n), None, None, None) => Ok(LoadProfile::concurrency(n)),
            (None, Some(r), None, None) => Ok(LoadProfile::rate(r)),
            (None, None, Some(spec), None) => {
                LoadProfile::parse_concurrency(spec).context("invalid --steps")
            }
            (None, None, None, Some(spec)) => {
                LoadProfile::parse_rate(spec).context("invalid --rate-steps")
            }
            _ => {
                anyhow::bail!("give exactly one of --concurrency, --rate, --steps and --rate-steps")
            }
        }
    }
}

/// Runs `kscale load --url …`: drives the URL until the profile ends or Ctrl-C, then reports
/// through `ui` (text or one JSON document on stdout). Without `--url` the caller opens a
/// port-forward and uses [`run_against`].
pub async fn run(args: &LoadArgs, ui: &Ui) -> anyhow::Result<LoadReport> {
    let Some(url) = args.url.as_deref() else {
        anyhow::bail!(
            "no --url given and no port-forward was opened: pass --url http://HOST:PORT of the \
             inference service"
        );
    };
    run_against(args, url, ui).await
}

/// Like [`run`] against `base_url` (e.g. a port-forward's `http://127.0.0.1:PORT`).
pub async fn run_against(args: &LoadArgs, base_url: &str, ui: &Ui) -> anyhow::Result<LoadReport> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let report = generate(args, base_url, stop_rx).await;
    ctrl_c.abort();
    let report = report?;
    ui.result_json(&serde_json::to_value(&report).context("cannot encode the report as JSON")?);
    ui.result_raw(&report.to_text())?;
    Ok(report)
}

/// Like [`run`] through a `kubectl port-forward` (started by `runner`, so never in dry-run) to
/// the service that `spec` names, opened for the run and closed after it. kubectl forwards to a
/// single pod: use a NodePort URL with [`run_against`] to spread the load over pods.
pub async fn run_via_port_forward(
    args: &LoadArgs,
    runner: &Runner,
    spec: &PortForwardSpec,
    timeout: Duration,
) -> anyhow::Result<LoadReport> {
    let forward = PortForward::open(runner, spec, timeout).await?;
    if !args.quiet {
        runner.ui().info(&format!(
            "load: port-forward {} -> service/{}:{} (one pod receives every request)",
            forward.local_url, spec.service, spec.remote_port
        ));
    }
    let report = run_against(args, &forward.local_url, runner.ui()).await;
    forward.close().await;
    report
}

/// State shared by the controller and every client task.
struct Shared {
    target: Target,
    stats: Mutex<Stats>,
    in_flight: AtomicU64,
    counters: conn::Counters,
    retry_refused: u32,
    issued: AtomicU64,
    max_requests: u64,
    sending: AtomicBool,
    sending_ended: Notify,
    timeout: Duration,
    reconnect_every: u64,
    /// Failed requests since the last success of any client: the back-off's measure.
    failures_in_a_row: AtomicU64,
    /// Idle connections of the open-loop (rate) profile.
    pool: Mutex<Vec<Conn>>,
}

impl Shared {
    fn stats(&self) -> MutexGuard<'_, Stats> {
        // A panicking client task cannot leave the counts half-updated in a way that matters
        // more than losing the whole report.
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop_sending(&self) {
        if self.sending.swap(false, Ordering::SeqCst) {
            self.sending_ended.notify_waiters();
        }
    }

    /// Permission to start one more request.
    fn take_ticket(&self) -> bool {
        if !self.sending.load(Ordering::SeqCst) {
            return false;
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst);
        if n >= self.max_requests {
            self.stop_sending();
            return false;
        }
        if n + 1 == self.max_requests {
            self.stop_sending();
        }
        true
    }

    async fn one_request(&self, slot: &mut Option<Conn>) {
        self.stats().started();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let outcome = conn::request(
            slot,
            &self.target,
            self.timeout,
            self.reconnect_every,
            self.retry_refused,
            &self.counters,
            started,
        )
        .await;
        let latency = started.elapsed();
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.stats().finished(&outcome, latency);
        let Outcome::Failed { kind, .. } = outcome else {
            self.failures_in_a_row.store(0, Ordering::SeqCst);
            return;
        };
        let in_a_row = self.failures_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
        // A client retrying at once would turn into a flood of failures that says nothing more
        // about the service.
        tokio::time::sleep(failure_pause(kind, in_a_row)).await;
    }
}

/// How long a closed-loop client waits after a refused connection or a 503 before its next
/// request (the server's `Retry-After`, a full inference time, would hide the offered load).
pub const FAILURE_PAUSE: Duration = Duration::from_millis(250);

/// Longest pause after failures: reached when every request fails (a server that closes
/// every connection, answers garbage, or times out at once).
pub const MAX_FAILURE_PAUSE: Duration = Duration::from_secs(4);

/// The pause after a failure of `kind`, the `in_a_row`-th since the last success of any client.
/// Refusals and 503s are the service's own overload signals and keep the short pause; other
/// failures back off exponentially while nothing succeeds.
pub fn failure_pause(kind: ErrorKind, in_a_row: u64) -> Duration {
    match kind {
        ErrorKind::Refused | ErrorKind::Unavailable => FAILURE_PAUSE,
        ErrorKind::Timeout | ErrorKind::BadAnswer | ErrorKind::Other => {
            let doublings = in_a_row.saturating_sub(1).min(8) as u32;
            FAILURE_PAUSE
                .saturating_mul(1 << doublings)
                .min(MAX_FAILURE_PAUSE)
        }
    }
}

/// A closed-loop client: sends while its index is below the wanted concurrency.
async fn client(index: u32, shared: Arc<Shared>, mut wanted: watch::Receiver<u32>) {
    let mut slot: Option<Conn> = None;
    loop {
        if !shared.sending.load(Ordering::SeqCst) {
            break;
        }
        if index >= *wanted.borrow_and_update() {
            // An idle client holds no connection, so the pod it was on is released.
            slot = None;
            if wanted.changed().await.is_err() {
                break;
            }
            continue;
        }
        if !shared.take_ticket() {
            break;
        }
        shared.one_request(&mut slot).await;
    }
}

/// One open-loop request, on a pooled connection when one is idle.
async fn pooled_request(shared: Arc<Shared>) {
    let mut slot = shared.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
    shared.one_request(&mut slot).await;
    if let Some(c) = slot.filter(Conn::is_open) {
        shared
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c);
    }
}

/// Drives `base_url` with the profile of `args` until it ends, `stop` turns true (then requests
/// in flight are abandoned), or `--max-requests` were sent. Progress goes to stderr unless
/// `args.quiet`; nothing is printed on stdout.
pub async fn generate(
    args: &LoadArgs,
    base_url: &str,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<LoadReport> {
    let profile = args.profile()?;
    // The URL and the flags are the user's input: exit 2 when they are wrong.
    let api = args.request()?;
    let target = Target::from_base_url(base_url, &api).map_err(crate::bad_input)?;
    if args.interval < Duration::from_millis(100) {
        return Err(crate::BadInput("--interval must be at least 100ms".into()).into());
    }
    let mut recorder = match &args.record {
        Some(path) => Some(TimelineWriter::create(path)?),
        None => None,
    };
    let shared = Arc::new(Shared {
        target: target.clone(),
        stats: Mutex::new(Stats::default()),
        in_flight: AtomicU64::new(0),
        counters: conn::Counters::default(),
        retry_refused: args.retry_refused,
        issued: AtomicU64::new(0),
        max_requests: args.max_requests.unwrap_or(u64::MAX),
        sending: AtomicBool::new(args.max_requests != Some(0)),
        sending_ended: Notify::new(),
        timeout: args.timeout,
        reconnect_every: args.reconnect_every,
        failures_in_a_row: AtomicU64::new(0),
        pool: Mutex::new(Vec::new()),
    });
    let mut progress = crate::ui::live(args.quiet, args.interval.max(Duration::from_secs(5)));
    let start = Instant::now();
    let tokio_start = tokio::time::Instant::now();
    let end = tokio_start + args.duration;
    let mut tasks = JoinSet::new();

    // Closed loop: one task per client the profile ever wants; the ones above the current
    // count wait.
    let (wanted_tx, wanted_rx) = watch::channel(profile.clients_at(Duration::ZERO).unwrap_or(0));
    for i in 0..profile.max_clients() {
        tasks.spawn(client(i, shared.clone(), wanted_rx.clone()));
    }
    drop(wanted_rx);
    let mut wanted_tx = Some(wanted_tx);
    let step_times: Vec<Duration> = match profile.kind {
        LoadKind::Concurrency => profile
            .steps
            .iter()
            .map(|s| s.at)
            .filter(|at| !at.is_zero())
            .collect(),
        LoadKind::Rate => Vec::new(),
    };
    let mut next_step = step_times.into_iter().peekable();
    let mut arrivals = profile.arrivals();
    let open_loop = arrivals.is_some();
    let mut next_arrival_at = arrivals.as_mut().and_then(Iterator::next);

    let mut tick = tokio::time::interval_at(tokio_start + args.interval, args.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_tick = start;
    let mut stopped_by = StopReason::Duration;
    // A stop sent before the run started counts too.
    let mut interrupted = *stop.borrow_and_update();
    let mut stop_open = true;

    let record_row = |shared: &Shared, since: Instant, recorder: &mut Option<TimelineWriter>| {
        let elapsed = start.elapsed();
        let interval = shared.stats().take_interval();
        if let Some(w) = recorder.as_mut() {
            let dt = since.elapsed().as_secs_f64().max(1e-3);
            let row = TimelineRow {
                t_seconds: elapsed.as_secs_f64(),
                unix_seconds: crate::timeline::unix_now(),
                load: Some(if shared.sending.load(Ordering::SeqCst) {
                    profile.value_at(elapsed)
                } else {
                    0.0
                }),
                p50_seconds: interval.p50_seconds,
                p99_seconds: interval.p99_seconds,
                shed: Some(interval.shed),
                send_rate: Some(interval.sent as f64 / dt),
                ok: Some(interval.ok),
                errors: Some(interval.errors),
                ..TimelineRow::default()
            };
            w.append(&row)
        } else {
            Ok(())
        }
    };

    // A first row at 0 so that the recording starts where the load starts.
    if let Some(w) = recorder.as_mut() {
        w.append(&TimelineRow {
            t_seconds: 0.0,
            unix_seconds: crate::timeline::unix_now(),
            load: Some(profile.value_at(Duration::ZERO)),
            ..TimelineRow::default()
        })?;
    }

    // Sending phase.
    loop {
        if interrupted {
            stopped_by = StopReason::Interrupted;
            break;
        }
        let next_step_at = next_step.peek().map(|d| tokio_start + *d);
        // An arrival due at the end (or later) belongs to no run.
        let next_arrival = next_arrival_at
            .map(|d| tokio_start + d)
            .filter(|at| *at < end);
        tokio::select! {
            _ = tokio::time::sleep_until(end) => {
                stopped_by = StopReason::Duration;
                break;
            }
            changed = stop.changed(), if stop_open => {
                // A dropped sender means no stop will come, not a stop.
                match changed {
                    Err(_) => stop_open = false,
                    Ok(()) if *stop.borrow() => {
                        stopped_by = StopReason::Interrupted;
                        interrupted = true;
                        break;
                    }
                    Ok(()) => {}
                }
            }
            _ = shared.sending_ended.notified() => {}
            _ = async { tokio::time::sleep_until(next_step_at.unwrap_or(end)).await }, if next_step_at.is_some() => {
                next_step.next();
                if let Some(tx) = &wanted_tx {
                    let _ = tx.send(profile.clients_at(start.elapsed()).unwrap_or(0));
                }
            }
            _ = async { tokio::time::sleep_until(next_arrival.unwrap_or(end)).await }, if next_arrival.is_some() => {
                next_arrival_at = arrivals.as_mut().and_then(Iterator::next);
                if shared.take_ticket() {
                    if shared.in_flight.load(Ordering::SeqCst) >= args.max_in_flight {
                        shared.stats().client_limited += 1;
                    } else {
                        tasks.spawn(pooled_request(shared.clone()));
                    }
                }
            }
            _ = tick.tick() => {
                record_row(&shared, last_tick, &mut recorder)?;
                last_tick = Instant::now();
                let line = shared.stats().progress_line(start.elapsed(), shared.in_flight.load(Ordering::SeqCst), &load_label(&profile, start.elapsed()));
                progress.show(line);
            }
            // Finished tasks are reaped as they end, so a long open-loop run holds only the
            // requests in flight.
            Some(_) = tasks.join_next() => {}
        }
        if !shared.sending.load(Ordering::SeqCst) {
            stopped_by = StopReason::MaxRequests;
            break;
        }
        if !open_loop && tasks.is_empty() && profile.max_clients() > 0 {
            break;
        }
    }
    shared.stop_sending();
    // Waiting clients wake up and see that sending ended.
    wanted_tx.take();

    // Drain: let requests in flight finish (each is bounded by --timeout) unless interrupted.
    if !interrupted && shared.in_flight.load(Ordering::SeqCst) > 0 {
        progress.note(&format!(
            "load: stopped sending ({}); waiting for {} requests in flight (Ctrl-C to abandon them)",
            match stopped_by {
                StopReason::MaxRequests => "max requests sent",
                _ => "duration reached",
            },
            shared.in_flight.load(Ordering::SeqCst)
        ));
    }
    let drain_deadline = tokio::time::Instant::now() + args.timeout + Duration::from_secs(5);
    while !interrupted && !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            changed = stop.changed(), if stop_open => {
                match changed {
                    Err(_) => stop_open = false,
                    Ok(()) if *stop.borrow() => {
                        interrupted = true;
                        stopped_by = StopReason::Interrupted;
                    }
                    Ok(()) => {}
                }
            }
            _ = tick.tick() => {
                record_row(&shared, last_tick, &mut recorder)?;
                last_tick = Instant::now();
                let line = shared.stats().progress_line(start.elapsed(), shared.in_flight.load(Ordering::SeqCst), "draining");
                progress.show(line);
            }
            _ = tokio::time::sleep_until(drain_deadline) => break,
        }
    }
    let unfinished = shared.in_flight.load(Ordering::SeqCst);
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    record_row(&shared, last_tick, &mut recorder)?;
    progress.finish();
    let elapsed = start.elapsed();
    let stats = shared.stats();
    Ok(LoadReport::new(
        &stats,
        &target,
        profile.describe(),
        stopped_by,
        elapsed,
        unfinished,
        &shared.counters,
    ))
}

fn load_label(profile: &LoadProfile, elapsed: Duration) -> String {
    match profile.rate_at(elapsed) {
        Some(r) => format!("{r} req/s"),
        None => format!("{} clients", profile.clients_at(elapsed).unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    #[test]
    fn exactly_one_profile_is_required() {
        assert!(Cli::try_parse_from(["x"]).is_err());
        assert!(Cli::try_parse_from(["x", "-c", "2", "--rate", "3"]).is_err());
        assert!(Cli::try_parse_from(["x", "--steps", "0:1", "--rate-steps", "0:1"]).is_err());
        let cli = Cli::try_parse_from(["x", "--rate-steps", "0s:1,5s:4"]).unwrap();
        assert_eq!(
            cli.load.profile().unwrap().rate_at(Duration::from_secs(6)),
            Some(4.0)
        );
        let cli = Cli::try_parse_from(["x", "--steps", "0s:1,10s:3", "-d", "30s"]).unwrap();
        assert_eq!(
            cli.load
                .profile()
                .unwrap()
                .clients_at(Duration::from_secs(11)),
            Some(3)
        );
        assert_eq!(cli.load.duration, Duration::from_secs(30));
        assert!(Cli::try_parse_from(["x", "--rate", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "-c", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "-c", "1", "--timeout", "0s"]).is_err());
    }

    #[test]
    fn with_profile_round_trips() {
        for p in [
            LoadProfile::parse_concurrency("0s:1,1500ms:4").unwrap(),
            LoadProfile::parse_concurrency("10s:3").unwrap(),
            LoadProfile::parse_rate("0s:0.5,1500ms:4").unwrap(),
            LoadProfile::concurrency(2),
            LoadProfile::rate(0.25),
        ] {
            assert_eq!(LoadArgs::with_profile(&p).profile().unwrap(), p);
        }
        assert_eq!(
            LoadArgs::with_profile(&LoadProfile::concurrency(2)).concurrency,
            Some(2)
        );
    }
}
