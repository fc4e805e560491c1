//! Load profiles shared by `kscale load` and `kscale simulate`.
//!
//! Two kinds, both written as comma-separated `TIME:VALUE` steps:
//! - concurrency steps (`--steps 0s:2,60s:8,300s:2`): that many clients, each sending its next request
//!   as soon as the previous one is answered (a closed loop);
//! - arrival-rate steps (`--rate-steps 0s:0.1,60s:0.4`): requests per second arriving whether or not
//!   earlier ones were answered (an open loop).
//!
//! `TIME` is a duration (`90s`, `2m`, `1m30s`, or bare seconds `90`), measured from the start of the run.
//! Each step holds until the next one; before the first step the load is 0.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One step of a profile: from `at_seconds` on, the load is `value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Seconds from the start of the run.
    pub at_seconds: f64,
    /// Concurrent clients, or requests per second.
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

/// A parsed load profile: steps in strictly increasing time order.
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

/// Most clients or requests per second a profile may ask for; a guard against typos like `0s:80000`.
pub const MAX_VALUE: f64 = 100_000.0;

impl LoadProfile {
    /// Parses concurrency steps (`0s:2,60s:8`): values are whole numbers of clients.
    pub fn parse_concurrency(text: &str) -> Result<Self, LoadProfileError> {
        Self::parse(text, LoadKind::Concurrency)
    }

    /// Parses arrival-rate steps (`0s:0.1,60s:0.4`): values are requests per second.
    pub fn parse_rate(text: &str) -> Result<Self, LoadProfileError> {
        Self::parse(text, LoadKind::Rate)
    }

    /// Parses steps of the given kind.
    pub fn parse(text: &str, kind: LoadKind) -> Result<Self, LoadProfileError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(LoadProfileError::Empty);
        }
        let mut steps: Vec<Step> = Vec::new();
        for (i, raw) in text.split(',').enumerate() {
            let index = i + 1;
            let item = raw.trim();
            let Some((time, value)) = item.split_once(':') else {
                return Err(LoadProfileError::Shape {
                    index,
                    item: item.to_string(),
                });
            };
            let (time, value) = (time.trim(), value.trim());
            if time.is_empty() || value.is_empty() {
                return Err(LoadProfileError::Shape {
                    index,
                    item: item.to_string(),
                });
            }
            let at_seconds = parse_time(time).map_err(|reason| LoadProfileError::Time {
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
                && at_seconds <= prev.at_seconds
            {
                return Err(LoadProfileError::Order {
                    index,
                    item: item.to_string(),
                    at: at_seconds,
                    previous: prev.at_seconds,
                });
            }
            steps.push(Step { at_seconds, value });
        }
        Ok(Self { kind, steps })
    }

    /// The load at time `t` (0 before the first step).
    pub fn value_at(&self, t: f64) -> f64 {
        self.steps
            .iter()
            .take_while(|s| s.at_seconds <= t)
            .last()
            .map_or(0.0, |s| s.value)
    }

    /// The first step after the start of the run that raises the load, as `(time, from, to)`.
    ///
    /// Reaction times are measured from it. A profile that only rises at its first step (e.g. `0s:8`)
    /// reports that step, rising from 0.
    pub fn first_rise(&self) -> Option<(f64, f64, f64)> {
        let mut previous = 0.0;
        let mut first: Option<(f64, f64, f64)> = None;
        for s in &self.steps {
            if s.value > previous {
                if s.at_seconds > 0.0 {
                    return Some((s.at_seconds, previous, s.value));
                }
                first.get_or_insert((s.at_seconds, previous, s.value));
            }
            previous = s.value;
        }
        first
    }

    /// The largest value of the profile.
    pub fn peak(&self) -> f64 {
        self.steps.iter().map(|s| s.value).fold(0.0, f64::max)
    }
}

impl fmt::Display for LoadProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}s:{}", s.at_seconds, s.value)?;
        }
        Ok(())
    }
}

/// Latest step time: a year and a day, beyond any run of `load` or `simulate`, and far from
/// the overflow of a `Duration` built from it.
const MAX_STEP_SECONDS: f64 = 366.0 * 24.0 * 3600.0;

fn parse_time(text: &str) -> Result<f64, String> {
    let secs = match f64::from_str(text) {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => secs,
        Ok(_) => return Err("must be a non-negative number of seconds".into()),
        Err(_) => humantime::parse_duration(text)
            .map(|d: Duration| d.as_secs_f64())
            .map_err(|e| e.to_string())?,
    };
    if secs > MAX_STEP_SECONDS {
        return Err("is too late: at most 366 days".into());
    }
    Ok(secs)
}

fn parse_value(text: &str, kind: LoadKind) -> Result<f64, String> {
    let v = match kind {
        LoadKind::Concurrency => u32::from_str(text)
            .map(f64::from)
            .map_err(|_| "must be a whole number of clients (0 or more)".to_string())?,
        LoadKind::Rate => {
            let v = f64::from_str(text)
                .map_err(|_| "must be a number of requests per second".to_string())?;
            if !v.is_finite() || v < 0.0 {
                return Err("must be a finite number, 0 or more".into());
            }
            v
        }
    };
    if v > MAX_VALUE {
        return Err(format!("at most {MAX_VALUE} is allowed"));
    }
    Ok(v)
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
                    at_seconds: 0.0,
                    value: 2.0
                },
                Step {
                    at_seconds: 60.0,
                    value: 8.0
                },
                Step {
                    at_seconds: 300.0,
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
                at_seconds: 90.0,
                value: 0.4
            }
        );
        assert_eq!(p.value_at(89.9), 0.1);
        assert_eq!(p.value_at(90.0), 0.4);
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
        assert_eq!(p.value_at(0.0), 0.0);
        assert_eq!(p.value_at(10.0), 4.0);
    }

    #[test]
    fn first_rise_skips_the_baseline_at_zero() {
        let p = LoadProfile::parse_concurrency("0s:2,60s:8,300s:2").unwrap();
        assert_eq!(p.first_rise(), Some((60.0, 2.0, 8.0)));
        let p = LoadProfile::parse_concurrency("0s:8").unwrap();
        assert_eq!(p.first_rise(), Some((0.0, 0.0, 8.0)));
        let p = LoadProfile::parse_concurrency("0s:8,60s:2").unwrap();
        assert_eq!(p.first_rise(), Some((0.0, 0.0, 8.0)));
        let p = LoadProfile::parse_concurrency("0s:0").unwrap();
        assert_eq!(p.first_rise(), None);
        assert_eq!(
            LoadProfile::parse_concurrency("0s:3,9s:7").unwrap().peak(),
            7.0
        );
    }
}
