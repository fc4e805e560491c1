//! Load profiles shared by `kscale load` and `kscale simulate`: one type, one validation.
//!
//! Two kinds, both written as comma-separated `TIME:VALUE` steps:
//! - concurrency steps (`--steps 0s:2,60s:8,300s:2`): that many clients, each sending its next request
//!   as soon as the previous one is answered (a closed loop);
//! - arrival-rate steps (`--rate-steps 0s:0.1,60s:0.4`): requests per second arriving whether or not
//!   earlier ones were answered (an open loop).
//!
//! `TIME` is a duration (`90s`, `2m`, `1m30s`, `1.5s`, or bare seconds `90`), measured from the start
//! of the run. Each step holds until the next one; before the first step the load is 0.
//! `--concurrency N` and `--rate R` are the one-step profiles [`LoadProfile::concurrency`] and
//! [`LoadProfile::rate`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One step of a profile: from `at` on, the load is `value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Time since the start of the run (in JSON: `at_seconds`, as before).
    #[serde(rename = "at_seconds", with = "secs_f64")]
    pub at: Duration,
    /// Concurrent clients (a whole number), or requests per second.
    pub value: f64,
}

/// What a profile's values mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadKind {
    /// Concurrent clients in a closed loop.
    Concurrency,
    /// Requests per second in an open loop.
    Rate,
}

impl fmt::Display for LoadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoadKind::Concurrency => "clients",
            LoadKind::Rate => "req/s",
        })
    }
}

/// A validated load profile: steps in strictly increasing time order, values within the kind's bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadProfile {
    /// What the values mean.
    pub kind: LoadKind,
    /// The steps, strictly increasing in time.
    pub steps: Vec<Step>,
}
/// Why a profile was refused; each variant names the offending item.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadProfileError {
    /// The whole text was empty.
    #[error("empty load profile: give steps as TIME:VALUE separated by commas, e.g. 0s:2,60s:8")]
    Empty,
    /// An item was not `TIME:VALUE`.
    #[error("step {index} `{item}`: expected TIME:VALUE, e.g. 60s:8")]
    Shape {
        /// 1-based position of the item.
        index: usize,
        /// The item as written.
        item: String,
    },
    /// The time of an item did not parse.
    #[error("step {index} `{item}`: bad time `{time}`: {reason} (use e.g. 90s, 2m, 1m30s or 90)")]
    Time {
        /// 1-based position of the item.
        index: usize,
        /// The item as written.
        item: String,
        /// The time part.
        time: String,
        /// What the duration parser said.
        reason: String,
    },
    /// The value of an item did not parse or is out of range.
    #[error("step {index} `{item}`: bad value `{value}`: {reason}")]
    Value {
        /// 1-based position of the item.
        index: usize,
        /// The item as written.
        item: String,
        /// The value part.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Times must strictly increase.
    #[error(
        "step {index} `{item}`: time {at}s is not after the previous step's {previous}s; list steps in time order"
    )]
    Order {
        /// 1-based position of the item.
        index: usize,
        /// The item as written.
        item: String,
        /// Its time in seconds.
        at: f64,
        /// The previous step's time in seconds.
        previous: f64,
    },
}

/// Most concurrent clients a profile may ask for: more is a typo rather than a plan on one machine.
pub const MAX_CLIENTS: u32 = 10_000;

/// Most requests per second a profile may ask for; a guard against typos like `0s:80000000`.
pub const MAX_RATE: f64 = 100_000.0;

impl LoadProfile {
    /// `n` clients from the start (`--concurrency`); the caller has checked `n` against [`MAX_CLIENTS`].
    pub fn concurrency(n: u32) -> Self {
        Self::constant(LoadKind::Concurrency, f64::from(n))
    }

    /// `per_second` arrivals from the start (`--rate`); the caller has checked it against [`MAX_RATE`].
    pub fn rate(per_second: f64) -> Self {
        Self::constant(LoadKind::Rate, per_second)
    }

    fn constant(kind: LoadKind, value: f64) -> Self {
        Self {
            kind,
            steps: vec![Step {
                at: Duration::ZERO,
                value,
            }],
        }
    }

    /// Parses concurrency steps (`0s:2,60s:8`): values are whole numbers of clients.
    pub fn parse_concurrency(text: &str) -> Result<Self, LoadProfileError> {
        Self::parse(text, LoadKind::Concurrency)
    }

    /// Parses arrival-rate steps (`0s:0.1,60s:0.4`): values are requests per second.
    pub fn parse_rate(text: &str) -> Result<Self, LoadProfileError> {
        Self::parse(text, LoadKind::Rate)
    }

    /// Parses steps of the given kind; the one validation of every profile.
    pub fn parse(text: &str, kind: LoadKind) -> Result<Self, LoadProfileError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(LoadProfileError::Empty);
        }
        let mut steps: Vec<Step> = Vec::new();
        for (i, raw) in text.split(',').enumerate() {
            let index = i + 1;
            let item = raw.trim();
            let shape = || LoadProfileError::Shape {
                index,
                item: item.to_string(),
            };
            let (time, value) = item.split_once(':').ok_or_else(shape)?;
            let (time, value) = (time.trim(), value.trim());
            if time.is_empty() || value.is_empty() {
                return Err(shape());
            }
            let at = parse_time(time).map_err(|reason| LoadProfileError::Time {
                index,
                item: item.to_string(),
                time: time.to_string(),
                reason,
            })?;
            let value = parse_value(value, kind).map_err(|reason| LoadProfileError::Value {
                index,
                item: item.to_string(),
                value: value.to_string(),
                reason,
            })?;
            if let Some(prev) = steps.last()
                && at <= prev.at
            {
                return Err(LoadProfileError::Order {
                    index,
                    item: item.to_string(),
                    at: at.as_secs_f64(),
                    previous: prev.at.as_secs_f64(),
                });
            }
            steps.push(Step { at, value });
        }
        Ok(Self { kind, steps })
    }

    /// The load at `elapsed` (0 before the first step).
    pub fn value_at(&self, elapsed: Duration) -> f64 {
        self.last_step_by(|at| at <= elapsed)
    }

    /// [`LoadProfile::value_at`] on the simulator's clock (seconds as `f64`), comparing in
    /// seconds so that an event pushed at a step's time sees that step.
    pub fn value_at_seconds(&self, t: f64) -> f64 {
        self.last_step_by(|at| at.as_secs_f64() <= t)
    }

    fn last_step_by(&self, started: impl Fn(Duration) -> bool) -> f64 {
        self.steps
            .iter()
            .take_while(|s| started(s.at))
            .last()
            .map_or(0.0, |s| s.value)
    }

    /// Clients wanted at `elapsed` (closed loop); `None` for an arrival rate.
    pub fn clients_at(&self, elapsed: Duration) -> Option<u32> {
        // Values of a concurrency profile are whole numbers at most MAX_CLIENTS: the cast is exact.
        (self.kind == LoadKind::Concurrency).then(|| self.value_at(elapsed) as u32)
    }

    /// Requests per second wanted at `elapsed` (open loop); `None` for clients.
    pub fn rate_at(&self, elapsed: Duration) -> Option<f64> {
        (self.kind == LoadKind::Rate).then(|| self.value_at(elapsed))
    }

    /// The most clients the profile ever wants (closed loop), or 0 for a rate.
    pub fn max_clients(&self) -> u32 {
        match self.kind {
            LoadKind::Concurrency => self.peak() as u32,
            LoadKind::Rate => 0,
        }
    }

    /// The first step after the start of the run that raises the load, as `(time, from, to)`.
    ///
    /// Reaction times are measured from it. A profile that only rises at its first step (e.g. `0s:8`)
    /// reports that step, rising from 0.
    pub fn first_rise(&self) -> Option<(Duration, f64, f64)> {
        let mut previous = 0.0;
        let mut first: Option<(Duration, f64, f64)> = None;
        for s in &self.steps {
            if s.value > previous {
                if !s.at.is_zero() {
                    return Some((s.at, previous, s.value));
                }
                first.get_or_insert((s.at, previous, s.value));
            }
            previous = s.value;
        }
        first
    }

    /// The largest value of the profile.
    pub fn peak(&self) -> f64 {
        self.steps.iter().map(|s| s.value).fold(0.0, f64::max)
    }

    /// The arrival schedule of an open-loop profile; `None` for clients.
    pub fn arrivals(&self) -> Option<Arrivals> {
        (self.kind == LoadKind::Rate).then(|| Arrivals {
            steps: self.steps.clone(),
            step: 0,
            k: 0,
        })
    }

    /// A short description for `kscale load`'s report, with times as humantime text.
    pub fn describe(&self) -> String {
        let one_constant = match self.steps.as_slice() {
            [only] if only.at.is_zero() => Some(only.value),
            _ => None,
        };
        let steps = || {
            let parts: Vec<String> = self
                .steps
                .iter()
                .map(|s| format!("{}:{}", humantime::format_duration(s.at), s.value))
                .collect();
            parts.join(",")
        };
        match (self.kind, one_constant) {
            (LoadKind::Concurrency, Some(n)) => format!("{n} concurrent clients"),
            (LoadKind::Rate, Some(r)) => format!("{r} requests/s"),
            (LoadKind::Concurrency, None) => format!("steps {}", steps()),
            (LoadKind::Rate, None) => format!("rate steps {} (req/s)", steps()),
        }
    }
}

/// The profile in its own syntax (`0s:2,1.5s:8`), which [`LoadProfile::parse`] reads back.
impl fmt::Display for LoadProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}s:{}", s.at.as_secs_f64(), s.value)?;
        }
        Ok(())
    }
}

/// When the requests of an open-loop profile start: during a step of rate `r` that starts at
/// `a`, at `a + k / r` for k = 0, 1, … until the next step (computed from the step's start, so
/// rounding never adds or drops an arrival).
#[derive(Debug, Clone)]
pub struct Arrivals {
    steps: Vec<Step>,
    step: usize,
    k: u64,
}

impl Iterator for Arrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        while let Some(s) = self.steps.get(self.step) {
            let end = self.steps.get(self.step + 1).map(|n| n.at);
            if s.value > 0.0 {
                let at = s.at + Duration::from_secs_f64(self.k as f64 / s.value);
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

/// A step time: bare seconds (`90`, `1.5`), seconds with a unit (`1.5s`), or humantime (`2m`,
/// `1m30s`), at most [`crate::duration::MAX`].
fn parse_time(text: &str) -> Result<Duration, String> {
    use crate::duration::{MAX_DAYS, Problem};
    crate::duration::parse(text).map_err(|problem| match problem {
        Problem::Negative => "must be a non-negative number of seconds".into(),
        Problem::TooLong => format!("is too late: at most {MAX_DAYS} days"),
        Problem::Unreadable(e) => e,
    })
}

fn parse_value(text: &str, kind: LoadKind) -> Result<f64, String> {
    match kind {
        LoadKind::Concurrency => {
            let n = u32::from_str(text)
                .map_err(|_| "must be a whole number of clients (0 or more)".to_string())?;
            if n > MAX_CLIENTS {
                return Err(format!("at most {MAX_CLIENTS} concurrent clients"));
            }
            Ok(f64::from(n))
        }
        LoadKind::Rate => {
            let v = f64::from_str(text)
                .map_err(|_| "must be a number of requests per second".to_string())?;
            if !v.is_finite() || v < 0.0 {
                return Err("must be a finite number, 0 or more".into());
            }
            if v > MAX_RATE {
                return Err(format!("at most {MAX_RATE} requests/s"));
            }
            Ok(v)
        }
    }
}

/// `Duration` as seconds in JSON, the unit every other time of the reports uses.
mod secs_f64 {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// A duration as seconds (a float).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    /// Seconds (a float) as a duration; out-of-range values are an error, not a panic.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// How requests are spread over ready pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Each request goes to the next ready pod in turn (a new connection per request through an
    /// IPVS round-robin Service).
    #[default]
    RoundRobin,
    /// Each request goes to a uniformly random ready pod (a new connection per request through
    /// kube-proxy's iptables mode).
    Random,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_concurrency_steps_with_units() {
        let p = LoadProfile::parse_concurrency("0s:2, 60s:8,5m:2,1m30s:3").unwrap_err();
        // 1m30s (90 s) comes after 5m (300 s): refused with both times named.
        assert_eq!(
            p.to_string(),
            "step 4 `1m30s:3`: time 90s is not after the previous step's 300s; list steps in time order"
        );
        let p = LoadProfile::parse_concurrency("0s:2, 60s:8,5m:2").unwrap();
        assert_eq!(p.kind, LoadKind::Concurrency);
        assert_eq!(
            p.steps,
            vec![
                Step {
                    at: Duration::ZERO,
                    value: 2.0
                },
                Step {
                    at: Duration::from_secs(60),
                    value: 8.0
                },
                Step {
                    at: Duration::from_secs(300),
                    value: 2.0
                },
            ]
        );
    }

    #[test]
    fn bare_numbers_are_seconds_and_rates_may_be_fractional() {
        let p = LoadProfile::parse_rate("0:0.1,90:0.4").unwrap();
        assert_eq!(
            p.steps[1],
            Step {
                at: Duration::from_secs(90),
                value: 0.4
            }
        );
        assert_eq!(p.value_at_seconds(89.9), 0.1);
        assert_eq!(p.value_at(Duration::from_secs(90)), 0.4);
        let p = LoadProfile::parse_rate("0s:1,1.5s:2,1500ms:3").unwrap_err();
        assert!(
            p.to_string()
                .starts_with("step 3 `1500ms:3`: time 1.5s is not after"),
            "{p}"
        );
    }

    #[test]
    fn errors_name_the_bad_item() {
        let cases = [
            ("", "empty load profile"),
            ("0s:2,60s", "step 2 `60s`: expected TIME:VALUE"),
            ("0s:2,:8", "step 2 `:8`: expected TIME:VALUE"),
            ("0s:2,6x0:8", "step 2 `6x0:8`: bad time `6x0`"),
            ("0s:2,-5:8", "step 2 `-5:8`: bad time `-5`"),
            (
                "0s:2.5",
                "step 1 `0s:2.5`: bad value `2.5`: must be a whole number",
            ),
            ("0s:-1", "step 1 `0s:-1`: bad value `-1`"),
            (
                "0s:1,10s:999999",
                "step 2 `10s:999999`: bad value `999999`: at most",
            ),
            (
                "0s:20000",
                "step 1 `0s:20000`: bad value `20000`: at most 10000 concurrent clients",
            ),
            ("0s:2,abc:3", "step 2 `abc:3`: bad time `abc`"),
            ("0s:1,0s:2", "step 2 `0s:2`: time 0s is not after"),
        ];
        for (text, want) in cases {
            let err = LoadProfile::parse_concurrency(text)
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(want),
                "{text:?}: got {err:?}, want prefix {want:?}"
            );
        }
        let err = LoadProfile::parse_rate("0s:NaN").unwrap_err().to_string();
        assert!(err.contains("bad value `NaN`"), "{err}");
    }

    #[test]
    fn value_before_first_step_is_zero() {
        let p = LoadProfile::parse_concurrency("10s:4").unwrap();
        assert_eq!(p.value_at(Duration::ZERO), 0.0);
        assert_eq!(p.clients_at(Duration::from_secs(10)), Some(4));
        assert_eq!(p.rate_at(Duration::from_secs(10)), None);
    }

    #[test]
    fn first_rise_skips_the_baseline_at_zero() {
        let p = LoadProfile::parse_concurrency("0s:2,60s:8,300s:2").unwrap();
        assert_eq!(p.first_rise(), Some((Duration::from_secs(60), 2.0, 8.0)));
        let p = LoadProfile::parse_concurrency("0s:8").unwrap();
        assert_eq!(p.first_rise(), Some((Duration::ZERO, 0.0, 8.0)));
        let p = LoadProfile::parse_concurrency("0s:8,60s:2").unwrap();
        assert_eq!(p.first_rise(), Some((Duration::ZERO, 0.0, 8.0)));
        let p = LoadProfile::parse_concurrency("0s:0").unwrap();
        assert_eq!(p.first_rise(), None);
        assert_eq!(
            LoadProfile::parse_concurrency("0s:3,9s:7").unwrap().peak(),
            7.0
        );
    }

    #[test]
    fn steps_give_the_clients_of_the_current_step() {
        let p = LoadProfile::parse_concurrency("0s:2, 60s:8,5m:2").unwrap();
        assert_eq!(p.clients_at(Duration::ZERO), Some(2));
        assert_eq!(p.clients_at(Duration::from_secs(59)), Some(2));
        assert_eq!(p.clients_at(Duration::from_secs(60)), Some(8));
        assert_eq!(p.clients_at(Duration::from_secs(3000)), Some(2));
        assert_eq!(p.max_clients(), 8);
        assert_eq!(p.describe(), "steps 0s:2,1m:8,5m:2");
        assert_eq!(
            LoadProfile::concurrency(3).describe(),
            "3 concurrent clients"
        );
        assert_eq!(LoadProfile::rate(0.5).describe(), "0.5 requests/s");
        assert!(p.arrivals().is_none());
    }

    #[test]
    fn arrivals_follow_the_rate_of_each_step() {
        let secs = |p: &LoadProfile, n: usize| -> Vec<f64> {
            p.arrivals()
                .unwrap()
                .take(n)
                .map(|d| d.as_secs_f64())
                .collect()
        };
        assert_eq!(secs(&LoadProfile::rate(4.0), 3), vec![0.0, 0.25, 0.5]);
        let p = LoadProfile::parse_rate("0s:2,1s:0,3s:1").unwrap();
        assert_eq!(secs(&p, 5), vec![0.0, 0.5, 3.0, 4.0, 5.0]);
        assert_eq!(p.rate_at(Duration::from_secs(2)), Some(0.0));
        assert_eq!(p.clients_at(Duration::from_secs(2)), None);
        assert_eq!(p.max_clients(), 0);
        // 20/s for 2 s is exactly 40 arrivals before 2 s, whatever the rounding.
        let n = LoadProfile::rate(20.0)
            .arrivals()
            .unwrap()
            .take_while(|d| *d < Duration::from_secs(2))
            .count();
        assert_eq!(n, 40);
        let zero = LoadProfile::parse_rate("0s:0").unwrap();
        assert!(
            zero.arrivals().unwrap().next().is_none(),
            "a zero rate never sends"
        );
    }

    #[test]
    fn display_reads_back_to_the_same_profile() {
        for text in ["0s:1,1500ms:4,2m:0", "0:0.5,0.25:4,1m30s:0.1"] {
            for kind in [LoadKind::Concurrency, LoadKind::Rate] {
                let Ok(p) = LoadProfile::parse(text, kind) else {
                    continue;
                };
                assert_eq!(
                    LoadProfile::parse(&p.to_string(), kind).unwrap(),
                    p,
                    "{text}"
                );
            }
        }
        let p = LoadProfile::parse_rate("0:0.5,0.25:4").unwrap();
        assert_eq!(p.to_string(), "0s:0.5,0.25s:4");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["steps"][1]["at_seconds"], 0.25);
        assert_eq!(serde_json::from_value::<LoadProfile>(json).unwrap(), p);
    }
}
