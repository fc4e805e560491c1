//! What load to offer over time: a fixed number of clients, a fixed arrival rate, or steps of
//! clients.
//!
//! Interim parser: `src/loadprofile.rs` (being written on another branch) will own the parsing of
//! `--steps`; on merge this module should keep [`Profile`] and [`Profile::concurrency_at`] and
//! take its steps from there.

use std::time::Duration;

/// One step: from `at` on (since the start of the run), keep `clients` requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Start of the step, since the start of the run.
    pub at: Duration,
    /// Concurrent clients during the step.
    pub clients: u32,
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
}

impl Profile {
    /// Parses `--steps`: `TIME:CLIENTS` pairs separated by commas, e.g. `0s:2,60s:8,5m:2`.
    /// Times are humantime durations (`90s`, `2m`, `1m30s`; a bare number is seconds) and must
    /// increase; the first step must start at 0.
    pub fn parse_steps(spec: &str) -> anyhow::Result<Profile> {
        let mut steps: Vec<Step> = Vec::new();
        for (i, part) in spec.split(',').map(str::trim).enumerate() {
            let Some((time, clients)) = part.split_once(':') else {
                anyhow::bail!(
                    "step {} `{part}` is not TIME:CLIENTS (for example `60s:8`)",
                    i + 1
                );
            };
            let at = parse_time(time.trim())
                .map_err(|e| anyhow::anyhow!("step {} `{part}`: time `{time}`: {e}", i + 1))?;
            let clients: u32 = clients.trim().parse().map_err(|_| {
                anyhow::anyhow!(
                    "step {} `{part}`: `{clients}` is not a whole number of clients",
                    i + 1
                )
            })?;
            if clients > MAX_CLIENTS {
                anyhow::bail!(
                    "step {} `{part}`: at most {MAX_CLIENTS} concurrent clients",
                    i + 1
                );
            }
            if let Some(prev) = steps.last()
                && at <= prev.at
            {
                anyhow::bail!(
                    "step {} `{part}` starts no later than the step before it: times must increase",
                    i + 1
                );
            }
            steps.push(Step { at, clients });
        }
        match steps.first() {
            None => anyhow::bail!("--steps is empty; give TIME:CLIENTS pairs like `0s:2,60s:8`"),
            Some(first) if !first.at.is_zero() => anyhow::bail!(
                "the first step starts at {}: it must start at 0s so the load is defined from the start",
                humantime::format_duration(first.at)
            ),
            Some(_) => Ok(Profile::Steps(steps)),
        }
    }

    /// Clients wanted at `elapsed` (closed-loop profiles); `None` for an arrival rate.
    pub fn concurrency_at(&self, elapsed: Duration) -> Option<u32> {
        match self {
            Profile::Concurrency(n) => Some(*n),
            Profile::Rate(_) => None,
            Profile::Steps(steps) => Some(
                steps
                    .iter()
                    .take_while(|s| s.at <= elapsed)
                    .last()
                    .map_or(0, |s| s.clients),
            ),
        }
    }

    /// The most clients the profile ever wants (closed loop), or 0 for a rate.
    pub fn max_concurrency(&self) -> u32 {
        match self {
            Profile::Concurrency(n) => *n,
            Profile::Rate(_) => 0,
            Profile::Steps(steps) => steps.iter().map(|s| s.clients).max().unwrap_or(0),
        }
    }

    /// The offered load at `elapsed`, as recorded in the timeline (`load` column).
    pub fn load_at(&self, elapsed: Duration) -> f64 {
        match self {
            Profile::Rate(r) => *r,
            _ => f64::from(self.concurrency_at(elapsed).unwrap_or(0)),
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
        }
    }
}

/// More clients than this is a typo rather than a plan on one machine.
pub const MAX_CLIENTS: u32 = 10_000;

fn parse_time(s: &str) -> anyhow::Result<Duration> {
    if let Ok(secs) = s.parse::<f64>() {
        if !(secs.is_finite() && secs >= 0.0) {
            anyhow::bail!("must be a duration of 0 or more");
        }
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(s).map_err(|e| anyhow::anyhow!("{e} (use e.g. `90s`, `2m`)"))
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
    }

    #[test]
    fn bare_numbers_are_seconds() {
        let p = Profile::parse_steps("0:1,1.5:3").unwrap();
        assert_eq!(p.concurrency_at(Duration::from_millis(1500)), Some(3));
    }

    #[test]
    fn bad_steps_say_which_step_is_wrong() {
        for (spec, needle) in [
            ("", "step 1"),
            ("0s:2,60s", "step 2 `60s` is not TIME:CLIENTS"),
            ("0s:2,1m:x", "`x` is not a whole number"),
            ("0s:2,1m:3,30s:1", "step 3"),
            ("10s:2", "must start at 0s"),
            ("0s:2,abc:3", "time `abc`"),
            ("0s:20000", "at most"),
        ] {
            let msg = format!("{:#}", Profile::parse_steps(spec).unwrap_err());
            assert!(msg.contains(needle), "{spec:?}: {msg}");
        }
    }
}
