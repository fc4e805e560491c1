//! The open-file budget that bounds connections, and a limiter for log lines that repeat.
//!
//! Every connection is a file descriptor. A MAX_CONNECTIONS above the process' open-file limit
//! (RLIMIT_NOFILE) makes `accept` fail with EMFILE instead of holding clients in the backlog, so
//! the server raises its soft limit to the hard one (as Go's runtime does) and caps the
//! connections to what is left after its own descriptors and the overload lane.

use std::time::{Duration, Instant};

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything that is not a client: stdio, the listener, the runtime's
/// epoll and wake-up descriptors, /proc and /etc reads.
const SPARE_FDS: u64 = 64;
/// Most connections the overload lane holds at once.
const MAX_OVERLOAD_SLOTS: u64 = 1024;
/// Fewest connections of the overload lane, so probes get in under any budget.
const MIN_OVERLOAD_SLOTS: u64 = 8;

/// How many connections each lane may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Connections served normally: MAX_CONNECTIONS, or less when the open-file limit is lower.
    pub connections: u32,
    /// Connections of the overload lane, which answers probes once `connections` are taken.
    pub overload: u32,
    /// The open-file limit the budget came from (`None`: unlimited or unknown).
    pub nofile: Option<u64>,
}

impl Budget {
    /// The budget for `requested` connections under an open-file limit of `nofile`.
    pub fn plan(requested: u32, nofile: Option<u64>) -> Budget {
        let Some(limit) = nofile else {
            return Budget {
                connections: requested,
                overload: MAX_OVERLOAD_SLOTS as u32,
                nofile,
            };
        };
        let overload = (limit / 16).clamp(MIN_OVERLOAD_SLOTS, MAX_OVERLOAD_SLOTS);
        let room = limit.saturating_sub(SPARE_FDS + overload).max(1);
        Budget {
            connections: u32::try_from(room).unwrap_or(u32::MAX).min(requested),
            overload: overload as u32,
            nofile,
        }
    }

    /// The budget for `requested` connections in this process, after raising the soft
    /// open-file limit to the hard one.
    pub fn for_process(requested: u32) -> Budget {
        Budget::plan(requested, raise_open_file_limit())
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force (`None`
/// when unlimited).
fn raise_open_file_limit() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )
        .is_ok()
    {
        return limit.maximum;
    }
    limit.current
}

/// Lets a repeating log line through at most once per window, and counts what it held back.
#[derive(Debug)]
pub struct Repeated {
    window: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Repeated {
    /// At most one line per `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last: None,
            held_back: 0,
        }
    }

    /// Records one occurrence at `now`; `Some(n)` when it should be logged, with the `n`
    /// occurrences held back since the last logged one.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.window => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_fits_the_open_file_limit() {
        let roomy = Budget::plan(16_384, Some(1_048_576));
        assert_eq!((roomy.connections, roomy.overload), (16_384, 1024));
        let tight = Budget::plan(100_000, Some(512));
        assert_eq!(tight.overload, 32);
        assert_eq!(tight.connections, 512 - 64 - 32);
        assert_eq!(Budget::plan(10, Some(512)).connections, 10);
        // A limit below the spare descriptors still allows one connection.
        assert_eq!(Budget::plan(10, Some(20)).connections, 1);
        assert_eq!(Budget::plan(50, None).connections, 50);
    }

    #[test]
    fn a_repeated_line_is_logged_once_per_window_with_the_count_held_back() {
        let mut repeated = Repeated::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(repeated.hit(t0), Some(0));
        for i in 1..=200 {
            // 20 errors per second for 10 s.
            assert_eq!(repeated.hit(t0 + Duration::from_millis(i * 50 - 1)), None);
        }
        assert_eq!(repeated.hit(t0 + Duration::from_secs(10)), Some(200));
        assert_eq!(repeated.hit(t0 + Duration::from_secs(11)), None);
    }
}
