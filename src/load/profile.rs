//! What load to offer over time: a fixed number of clients, a fixed arrival rate, or steps of
//! either.
//!
//! The `TIME:VALUE` syntax of `--steps` and `--rate-steps` is parsed by `crate::loadprofile`,
//! shared with `kscale simulate`; this module adds what a real load needs (whole clients, bounds,
//! a load defined from the start) and the schedule the engine follows.

use std::time::Duration;

/// One step: from `at` on (since the start of the run), keep `clients` requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Start of the step, since the start of the run.
    pub at: Duration,
    /// Concurrent clients during the step.
    pub clients: u32,
}

/// One step of an arrival-rate profile: from `at` on, `per_second` new requests per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateStep {
    /// Start of the step, since the start of the run.
    pub at: Duration,
    /// Requests per second during the step (0 pauses the load).
    pub per_second: f64,
}

/// The offered load.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    /// Closed loop: `n` clients, each sending its next request when the previous one finished.
    Concurrency(u32),
    /// Open loop: new requests at a fixed rate, whatever the answers take.
    Rate(f64),
    /// Closed loop with the number of clients changing at given times (sorted, first at 0).
    Steps(Vec<Step>),
    /// Open loop with the arrival rate changing at given times (sorted, first at 0).
    RateSteps(Vec<RateStep>),
}

/// More clients than this is a typo rather than a plan on one machine.
pub const MAX_CLIENTS: u32 = 10_000;

/// Most requests per second a rate profile may ask for.
pub const MAX_RATE: f64 = 100_000.0;

impl Profile {
    /// Parses `--steps`: `TIME:CLIENTS` pairs separated by commas, e.g. `0s:2,60s:8,5m:2`.
    /// Times are humantime durations (`90s`, `2m`, `1m30s`; a bare number is seconds) and must
    /// increase; the first step must start at 0.
    pub fn parse_steps(spec: &str) -> anyhow::Result<Profile> {
        let steps = parse_pairs(spec, "CLIENTS", |value| {
            let clients: u32 = value
                .parse()
                .map_err(|_| format!("`{value}` is not a whole number of clients"))?;
            if clients > MAX_CLIENTS {
                return Err(format!("at most {MAX_CLIENTS} concurrent clients"));
            }
            Ok(clients)
        })?;
        Ok(Profile::Steps(
            steps
                .into_iter()
                .map(|(at, clients)| Step { at, clients })
                .collect(),
        ))
    }

    /// Parses `--rate-steps`: `TIME:REQUESTS_PER_SECOND` pairs, e.g. `0s:0.2,60s:1,5m:0.2`,
    /// with the rules of [`Profile::parse_steps`].
    pub fn parse_rate_steps(spec: &str) -> anyhow::Result<Profile> {
        let steps = parse_pairs(spec, "RATE", |value| {
            let r: f64 = value
                .parse()
                .map_err(|_| format!("`{value}` is not a number of requests per second"))?;
            if !(r.is_finite() && (0.0..=MAX_RATE).contains(&r)) {
                return Err(format!("the rate must be 0 to {MAX_RATE} requests/s"));
            }
            Ok(r)
        })?;
        Ok(Profile::RateSteps(
            steps
                .into_iter()
                .map(|(at, per_second)| RateStep { at, per_second })
                .collect(),
        ))
    }

    /// Clients wanted at `elapsed` (closed-loop profiles); `None` for an arrival rate.
    pub fn concurrency_at(&self, elapsed: Duration) -> Option<u32> {
        match self {
            Profile::Concurrency(n) => Some(*n),
            Profile::Rate(_) | Profile::RateSteps(_) => None,
            Profile::Steps(steps) => Some(
                steps
                    .iter()
                    .take_while(|s| s.at <= elapsed)
                    .last()
                    .map_or(0, |s| s.clients),
            ),
        }
    }

    /// Requests per second wanted at `elapsed` (open-loop profiles); `None` for clients.
    pub fn rate_at(&self, elapsed: Duration) -> Option<f64> {
        match self {
            Profile::Rate(r) => Some(*r),
            Profile::RateSteps(steps) => Some(
                steps
                    .iter()
                    .take_while(|s| s.at <= elapsed)
                    .last()
                    .map_or(0.0, |s| s.per_second),
            ),
            Profile::Concurrency(_) | Profile::Steps(_) => None,
        }
    }

    /// The arrival schedule of an open-loop profile; `None` for clients.
    pub fn arrivals(&self) -> Option<Arrivals> {
        let steps = match self {
            Profile::Rate(r) => vec![RateStep {
                at: Duration::ZERO,
                per_second: *r,
            }],
            Profile::RateSteps(steps) => steps.clone(),
            Profile::Concurrency(_) | Profile::Steps(_) => return None,
        };
        Some(Arrivals {
            steps,
            step: 0,
            k: 0,
        })
    }

    /// The most clients the profile ever wants (closed loop), or 0 for a rate.
    pub fn max_concurrency(&self) -> u32 {
        match self {
            Profile::Concurrency(n) => *n,
            Profile::Rate(_) | Profile::RateSteps(_) => 0,
            Profile::Steps(steps) => steps.iter().map(|s| s.clients).max().unwrap_or(0),
        }
    }

    /// The offered load at `elapsed`, as recorded in the timeline (`load` column): clients, or
    /// requests per second.
    pub fn load_at(&self, elapsed: Duration) -> f64 {
        match self.rate_at(elapsed) {
            Some(r) => r,
            None => f64::from(self.concurrency_at(elapsed).unwrap_or(0)),
        }
    }

    /// A short description for the report.
    pub fn describe(&self) -> String {
        match self {
            Profile::Concurrency(n) => format!("{n} concurrent clients"),
            Profile::Rate(r) => format!("{r} requests/s"),
            Profile::Steps(steps) => {
                let parts: Vec<String> = steps
                    .iter()
                    .map(|s| format!("{}:{}", humantime::format_duration(s.at), s.clients))
                    .collect();
                format!("steps {}", parts.join(","))
            }
            Profile::RateSteps(steps) => {
                let parts: Vec<String> = steps
                    .iter()
                    .map(|s| format!("{}:{}", humantime::format_duration(s.at), s.per_second))
                    .collect();
                format!("rate steps {} (req/s)", parts.join(","))
            }
        }
    }
}

/// When the requests of an open-loop profile start: during a step of rate `r` that starts at
/// `a`, at `a + k / r` for k = 0, 1, … until the next step (computed from the step's start, so
/// rounding never adds or drops an arrival).
#[derive(Debug, Clone)]
pub struct Arrivals {
    steps: Vec<RateStep>,
    step: usize,
    k: u64,
}

impl Iterator for Arrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        while let Some(s) = self.steps.get(self.step) {
            let end = self.steps.get(self.step + 1).map(|n| n.at);
            if s.per_second > 0.0 {
                let at = s.at + Duration::from_secs_f64(self.k as f64 / s.per_second);
                if end.is_none_or(|e| at < e) {
                    self.k += 1;
                    return Some(at);
                }
            }
            end?;
            self.step += 1;
            self.k = 0;
        }
        None
    }
}

/// Parses `TIME:VALUE` pairs with the shared syntax (`crate::loadprofile`), then checks each
/// value and that the load is defined from the start.
fn parse_pairs<T>(
    spec: &str,
    value_name: &str,
    parse_value: impl Fn(&str) -> Result<T, String>,
) -> anyhow::Result<Vec<(Duration, T)>> {
    use crate::loadprofile::{LoadKind, LoadProfile};
    let kind = if value_name == "RATE" {
        LoadKind::Rate
    } else {
        LoadKind::Concurrency
    };
    let parsed = LoadProfile::parse(spec, kind).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut steps = Vec::with_capacity(parsed.steps.len());
    for (i, step) in parsed.steps.iter().enumerate() {
        // The shared parser has checked the syntax; the value text is re-read for this module's
        // own rules (whole clients, bounds) so their messages name the step.
        let part = spec.split(',').nth(i).map(str::trim).unwrap_or_default();
        let value_text = part.split_once(':').map_or("", |(_, v)| v.trim());
        let value =
            parse_value(value_text).map_err(|e| anyhow::anyhow!("step {} `{part}`: {e}", i + 1))?;
        steps.push((Duration::from_secs_f64(step.at_seconds), value));
    }
    match steps.first() {
        None => anyhow::bail!("no steps given; write TIME:{value_name} pairs like `0s:2,60s:8`"),
        Some((first, _)) if !first.is_zero() => anyhow::bail!(
            "the first step starts at {}: it must start at 0s so the load is defined from the start",
            humantime::format_duration(*first)
        ),
        Some(_) => Ok(steps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_give_the_clients_of_the_current_step() {
        let p = Profile::parse_steps("0s:2, 60s:8,5m:2").unwrap();
        assert_eq!(p.concurrency_at(Duration::ZERO), Some(2));
        assert_eq!(p.concurrency_at(Duration::from_secs(59)), Some(2));
        assert_eq!(p.concurrency_at(Duration::from_secs(60)), Some(8));
        assert_eq!(p.concurrency_at(Duration::from_secs(299)), Some(8));
        assert_eq!(p.concurrency_at(Duration::from_secs(3000)), Some(2));
        assert_eq!(p.max_concurrency(), 8);
        assert_eq!(p.describe(), "steps 0s:2,1m:8,5m:2");
        assert!(p.arrivals().is_none());
    }

    #[test]
    fn arrivals_follow_the_rate_of_each_step() {
        let secs = |p: &Profile, n: usize| -> Vec<f64> {
            p.arrivals()
                .unwrap()
                .take(n)
                .map(|d| d.as_secs_f64())
                .collect()
        };
        assert_eq!(secs(&Profile::Rate(4.0), 3), vec![0.0, 0.25, 0.5]);
        let p = Profile::parse_rate_steps("0s:2,1s:0,3s:1").unwrap();
        assert_eq!(secs(&p, 5), vec![0.0, 0.5, 3.0, 4.0, 5.0]);
        assert_eq!(p.load_at(Duration::from_secs(2)), 0.0);
        assert_eq!(p.load_at(Duration::from_secs(3)), 1.0);
        assert_eq!(p.max_concurrency(), 0);
        // 20/s for 2 s is exactly 40 arrivals before 2 s, whatever the rounding.
        let n = Profile::Rate(20.0)
            .arrivals()
            .unwrap()
            .take_while(|d| *d < Duration::from_secs(2))
            .count();
        assert_eq!(n, 40);
        let zero = Profile::parse_rate_steps("0s:0").unwrap();
        assert!(
            zero.arrivals().unwrap().next().is_none(),
            "a zero rate never sends"
        );
        let msg = format!("{:#}", Profile::parse_rate_steps("0s:-1").unwrap_err());
        assert!(msg.contains("step 1") && msg.contains("`-1`"), "{msg}");
    }

    #[test]
    fn bare_numbers_are_seconds() {
        let p = Profile::parse_steps("0:1,1.5:3").unwrap();
        assert_eq!(p.concurrency_at(Duration::from_millis(1500)), Some(3));
    }

    #[test]
    fn bad_steps_say_which_step_is_wrong() {
        for (spec, needle) in [
            ("", "empty load profile"),
            ("0s:2,60s", "step 2 `60s`: expected TIME:VALUE"),
            ("0s:2,1m:x", "step 2 `1m:x`: bad value `x`"),
            ("0s:2,1m:3,30s:1", "step 3"),
            ("10s:2", "must start at 0s"),
            ("0s:2,abc:3", "bad time `abc`"),
            ("0s:20000", "at most"),
        ] {
            let msg = format!("{:#}", Profile::parse_steps(spec).unwrap_err());
            assert!(msg.contains(needle), "{spec:?}: {msg}");
        }
    }
}
