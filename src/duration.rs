//! Lengths of time as people type them: the one parser behind every duration flag and every
//! load-profile step time, and the one bound, [`MAX`] (366 days), that keeps them far from the
//! overflow of `Instant + Duration` (which panics).

use std::time::Duration;

/// Longest length of time kscale accepts anywhere (flags, step times, `timeouts.*`): a year and
/// a day, beyond any run.
pub const MAX: Duration = Duration::from_secs(MAX_DAYS * 24 * 3600);

/// [`MAX`] in days, for messages.
pub const MAX_DAYS: u64 = 366;

/// Why a text is not a length of time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A number of seconds below 0, or not finite.
    Negative,
    /// Longer than [`MAX`].
    TooLong,
    /// Neither seconds nor humantime; humantime's reason.
    Unreadable(String),
}

/// Bare seconds (`90`, `0.5`, `1.5s`) or humantime text (`90s`, `10m`, `1m30s`), at most [`MAX`].
pub fn parse(text: &str) -> Result<Duration, Problem> {
    let seconds = text.trim();
    let seconds = seconds.strip_suffix('s').unwrap_or(seconds);
    let d = match seconds.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => {
            Duration::try_from_secs_f64(secs).map_err(|_| Problem::TooLong)?
        }
        Ok(_) => return Err(Problem::Negative),
        Err(_) => {
            humantime::parse_duration(text).map_err(|e| Problem::Unreadable(e.to_string()))?
        }
    };
    if d > MAX {
        return Err(Problem::TooLong);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_humantime_up_to_366_days() {
        assert_eq!(parse("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("366days"), Ok(MAX));
        assert_eq!(parse("367days"), Err(Problem::TooLong));
        assert_eq!(parse("1e300"), Err(Problem::TooLong));
        assert_eq!(parse("-1"), Err(Problem::Negative));
        assert_eq!(parse("inf"), Err(Problem::Negative));
        assert!(matches!(parse("soon"), Err(Problem::Unreadable(_))));
    }
}
