//! Every option of the server, as a command-line flag and an environment variable.
//!
//! clap refuses a bad value before anything binds, names the option (flag and variable) and exits
//! with code 2. Each value name is the environment variable, so the message names both.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Largest number of seconds any option accepts: about 11 days, far beyond any real setting, and
/// small enough that no duration arithmetic can overflow.
const MAX_SECONDS: f64 = 1_000_000.0;

/// The inference server kscale deploys: a simulated fixed-time model behind a bounded queue, with
/// Prometheus metrics on /metrics.
#[derive(Debug, Clone, Parser)]
#[command(name = "kscale-server", version, about, max_term_width = 100)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "BIND", value_name = "BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// TCP port to listen on; 0 picks a free port (the chosen address is printed on stdout).
    #[arg(long, env = "PORT", value_name = "PORT", default_value_t = 3000)]
    pub port: u16,

    /// Seconds one simulated inference takes (fractions allowed, 0 for none).
    #[arg(long, env = "INFERENCE_SECONDS", value_name = "INFERENCE_SECONDS", default_value = "10", value_parser = seconds)]
    pub inference_seconds: f64,

    /// Requests served at once; the rest wait in the queue.
    #[arg(long, env = "WORKERS", value_name = "WORKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub workers: u32,

    /// Requests allowed to wait for a worker; one more gets 503 with Retry-After.
    #[arg(long, env = "MAX_QUEUE", value_name = "MAX_QUEUE", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub max_queue: u32,

    /// Seconds an idle keep-alive connection stays open (also the time allowed for a request's
    /// headers); 0 turns keep-alive off.
    #[arg(long, env = "KEEP_ALIVE_SECONDS", value_name = "KEEP_ALIVE_SECONDS", default_value = "10", value_parser = seconds)]
    pub keep_alive_seconds: f64,

    /// Age in seconds after which a connection gets `Connection: close` on its next response, so
    /// long-lived clients spread over new pods; 0 is off.
    #[arg(long, env = "MAX_CONNECTION_AGE_SECONDS", value_name = "MAX_CONNECTION_AGE_SECONDS", default_value = "0", value_parser = seconds)]
    pub max_connection_age_seconds: f64,

    /// Seconds after SIGTERM/SIGINT before work still running is cut; default: the worst case
    /// (accept grace, then every worker busy and the queue full) plus 15 s.
    #[arg(long, env = "DRAIN_SECONDS", value_name = "DRAIN_SECONDS", value_parser = seconds)]
    pub drain_seconds: Option<f64>,

    /// Seconds the listener keeps accepting after SIGTERM/SIGINT, while endpoint removal propagates.
    #[arg(long, env = "ACCEPT_GRACE_SECONDS", value_name = "ACCEPT_GRACE_SECONDS", default_value = "2", value_parser = seconds)]
    pub accept_grace_seconds: f64,

    /// Seconds a client may take to send a request body; slower clients get 408 and never take a
    /// queue place.
    #[arg(long, env = "READ_TIMEOUT_SECONDS", value_name = "READ_TIMEOUT_SECONDS", default_value = "10", value_parser = positive_seconds)]
    pub read_timeout_seconds: f64,

    /// Seconds a response write may make no progress before the connection is closed (a client
    /// that never reads its answers); during a drain at most 1 s.
    #[arg(long, env = "WRITE_TIMEOUT_SECONDS", value_name = "WRITE_TIMEOUT_SECONDS", default_value = "10", value_parser = positive_seconds)]
    pub write_timeout_seconds: f64,

    /// Largest request body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", value_name = "MAX_BODY_BYTES", default_value_t = 65_536,
          value_parser = clap::value_parser!(u64).range(0..=16_777_216))]
    pub max_body_bytes: u64,

    /// Open connections allowed at once, capped to what the open-file limit (RLIMIT_NOFILE)
    /// allows; beyond it a small overload lane answers probes and /metrics, and refuses
    /// inference with 503.
    #[arg(long, env = "MAX_CONNECTIONS", value_name = "MAX_CONNECTIONS", default_value_t = 16_384,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Log format on stderr: `text` for people, `json` for log collectors. Level: RUST_LOG
    /// (default `info`; `debug` logs one line per request).
    #[arg(long, env = "LOG_FORMAT", value_name = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn seconds(value: &str) -> Result<f64, String> {
    let parsed: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a number of seconds (e.g. 10 or 0.5)"))?;
    if !parsed.is_finite() || !(0.0..=MAX_SECONDS).contains(&parsed) {
        return Err(format!(
            "`{value}` is out of range: give seconds from 0 to {MAX_SECONDS}"
        ));
    }
    Ok(parsed)
}

fn positive_seconds(value: &str) -> Result<f64, String> {
    let parsed = seconds(value)?;
    if parsed == 0.0 {
        return Err("must be more than 0 seconds".into());
    }
    Ok(parsed)
}

impl Config {
    /// The simulated inference time.
    pub fn inference(&self) -> Duration {
        Duration::from_secs_f64(self.inference_seconds)
    }

    /// Idle keep-alive timeout, or `None` when keep-alive is off.
    pub fn keep_alive(&self) -> Option<Duration> {
        (self.keep_alive_seconds > 0.0).then(|| Duration::from_secs_f64(self.keep_alive_seconds))
    }

    /// Connection age that triggers `Connection: close`, or `None` when off.
    pub fn max_connection_age(&self) -> Option<Duration> {
        (self.max_connection_age_seconds > 0.0)
            .then(|| Duration::from_secs_f64(self.max_connection_age_seconds))
    }

    /// Time allowed for a request body.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.read_timeout_seconds)
    }

    /// Time a response write may make no progress.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.write_timeout_seconds)
    }

    /// Time the listener keeps accepting after the shutdown signal.
    pub fn accept_grace(&self) -> Duration {
        Duration::from_secs_f64(self.accept_grace_seconds)
    }

    /// Time from the shutdown signal until remaining work is cut: DRAIN_SECONDS, or the worst case
    /// of a full queue admitted at the end of the accept grace, plus a 15 s margin.
    pub fn drain(&self) -> Duration {
        let seconds = self.drain_seconds.unwrap_or_else(|| {
            let workers = u64::from(self.workers);
            let rounds = (u64::from(self.max_queue) + workers).div_ceil(workers);
            self.accept_grace_seconds + rounds as f64 * self.inference_seconds + 15.0
        });
        Duration::from_secs_f64(seconds.min(MAX_SECONDS * 1000.0))
    }

    /// Seconds a rejected client should wait: about the time for one worker to free up.
    pub fn retry_after_seconds(&self) -> u64 {
        let seconds = (self.inference_seconds / f64::from(self.workers)).ceil();
        (seconds as u64).max(1)
    }
}
