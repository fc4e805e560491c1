//! Counting what the load generator sent and got back, for the live line, the timeline and the
//! final report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::api::ApiKind;
use super::conn::{ErrorKind, Outcome, Target};

/// Latencies are recorded in microseconds up to an hour, 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

/// Failures by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// Connection refused.
    pub refused: u64,
    /// 503 answers (queue full).
    #[serde(rename = "503")]
    pub unavailable: u64,
    /// No answer within the request timeout.
    pub timeout: u64,
    /// 2xx answers that are not the expected JSON or event stream, or too large.
    pub bad_answer: u64,
    /// Everything else.
    pub other: u64,
}

impl ErrorCounts {
    fn add(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Refused => self.refused += 1,
            ErrorKind::Unavailable => self.unavailable += 1,
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::BadAnswer => self.bad_answer += 1,
            ErrorKind::Other => self.other += 1,
        }
    }

    /// All failures.
    pub fn total(&self) -> u64 {
        self.refused + self.unavailable + self.timeout + self.bad_answer + self.other
    }
}

/// Running totals, shared by every client task behind a mutex.
#[derive(Debug)]
pub struct Stats {
    /// Requests started.
    pub sent: u64,
    /// Requests answered with 2xx.
    pub ok: u64,
    /// Failures by kind.
    pub errors: ErrorCounts,
    /// Answers by status code (2xx and errors the server answered).
    pub statuses: BTreeMap<u16, u64>,
    /// Successful answers per pod (the `pod` field of the answer).
    pub pods: BTreeMap<String, u64>,
    /// Latency of 2xx answers, whole run (µs).
    pub latency: Histogram<u64>,
    /// Time to first token of streamed 2xx answers, whole run (µs).
    pub ttft: Histogram<u64>,
    /// Sum of the `usage.completion_tokens` answers reported, and how many reported it.
    pub completion_tokens: (u64, u64),
    /// Events of streamed answers, `[DONE]` excluded.
    pub stream_events: u64,
    /// Latency of 2xx answers since the last interval snapshot (µs).
    interval_latency: Histogram<u64>,
    interval_sent: u64,
    interval_ok: u64,
    interval_shed: u64,
    interval_errors: u64,
    /// Sum of the server-reported queue waits (ms), and how many answers carried one.
    queue_ms: (f64, u64),
    /// Sum of the server-reported inference times (ms), and how many answers carried one.
    inference_ms: (f64, u64),
    /// Up to a few distinct descriptions of failures of kind `other` or `bad_answer`.
    pub other_examples: Vec<String>,
    /// Arrivals not sent because the client was at its in-flight limit (rate profile).
    pub client_limited: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            sent: 0,
            ok: 0,
            errors: ErrorCounts::default(),
            statuses: BTreeMap::new(),
            pods: BTreeMap::new(),
            latency: new_histogram(),
            ttft: new_histogram(),
            completion_tokens: (0, 0),
            stream_events: 0,
            interval_latency: new_histogram(),
            interval_sent: 0,
            interval_ok: 0,
            interval_shed: 0,
            interval_errors: 0,
            queue_ms: (0.0, 0),
            inference_ms: (0.0, 0),
            other_examples: Vec::new(),
            client_limited: 0,
        }
    }
}

/// What happened between two snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Requests started.
    pub sent: u64,
    /// 2xx answers.
    pub ok: u64,
    /// 503 answers.
    pub shed: u64,
    /// Other failures.
    pub errors: u64,
    /// Median latency of the 2xx answers, seconds.
    pub p50_seconds: Option<f64>,
    /// 99th percentile latency of the 2xx answers, seconds.
    pub p99_seconds: Option<f64>,
}

fn seconds(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// A duration in whole microseconds, at least 1 (the histograms' lowest value).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Stats {
    /// Counts a request as started.
    pub fn started(&mut self) {
        self.sent += 1;
        self.interval_sent += 1;
    }

    /// Counts a finished request.
    pub fn finished(&mut self, outcome: &Outcome, latency: Duration) {
        match outcome {
            Outcome::Ok { status, answer } => {
                self.ok += 1;
                self.interval_ok += 1;
                *self.statuses.entry(*status).or_default() += 1;
                *self
                    .pods
                    .entry(answer.pod.clone().unwrap_or_else(|| "(not named)".into()))
                    .or_default() += 1;
                let micros = micros(latency);
                self.latency.saturating_record(micros);
                self.interval_latency.saturating_record(micros);
                if let Some(t) = answer.ttft {
                    self.ttft.saturating_record(self::micros(t));
                }
                if let Some(n) = answer.completion_tokens {
                    self.completion_tokens.0 = self.completion_tokens.0.saturating_add(n);
                    self.completion_tokens.1 += 1;
                }
                self.stream_events += answer.events.unwrap_or(0);
                if let Some(q) = answer.queue_ms {
                    self.queue_ms.0 += q;
                    self.queue_ms.1 += 1;
                }
                if let Some(i) = answer.inference_ms {
                    self.inference_ms.0 += i;
                    self.inference_ms.1 += 1;
                }
            }
            Outcome::Failed {
                kind,
                status,
                detail,
            } => {
                self.errors.add(*kind);
                if let Some(s) = status {
                    *self.statuses.entry(*s).or_default() += 1;
                }
                if *kind == ErrorKind::Unavailable {
                    self.interval_shed += 1;
                } else {
                    self.interval_errors += 1;
                }
                if matches!(kind, ErrorKind::Other | ErrorKind::BadAnswer)
                    && self.other_examples.len() < 5
                    && !self.other_examples.contains(detail)
                {
                    self.other_examples.push(detail.clone());
                }
            }
        }
    }

    /// Takes the counts since the previous call.
    pub fn take_interval(&mut self) -> Interval {
        let h = &self.interval_latency;
        let (p50, p99) = if h.is_empty() {
            (None, None)
        } else {
            (
                Some(seconds(h.value_at_quantile(0.5))),
                Some(seconds(h.value_at_quantile(0.99))),
            )
        };
        let out = Interval {
            sent: self.interval_sent,
            ok: self.interval_ok,
            shed: self.interval_shed,
            errors: self.interval_errors,
            p50_seconds: p50,
            p99_seconds: p99,
        };
        self.interval_latency.reset();
        self.interval_sent = 0;
        self.interval_ok = 0;
        self.interval_shed = 0;
        self.interval_errors = 0;
        out
    }

    /// The live progress line.
    pub fn progress_line(&self, elapsed: Duration, in_flight: u64, load: &str) -> String {
        let q = |p: f64| {
            if self.latency.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.3}s", seconds(self.latency.value_at_quantile(p)))
            }
        };
        let ttft = if self.ttft.is_empty() {
            String::new()
        } else {
            format!(
                "  ttft p50 {:.3}s",
                seconds(self.ttft.value_at_quantile(0.5))
            )
        };
        format!(
            "{:>6.1}s  {load}  sent {}  ok {}  errors: refused {} 503 {} timeout {} bad answer {} other {}  in flight {}  p50 {} p99 {}{ttft}",
            elapsed.as_secs_f64(),
            self.sent,
            self.ok,
            self.errors.refused,
            self.errors.unavailable,
            self.errors.timeout,
            self.errors.bad_answer,
            self.errors.other,
            in_flight,
            q(0.5),
            q(0.99),
        )
    }

    /// Mean server-reported queue wait and inference time, in ms.
    pub fn server_times(&self) -> (Option<f64>, Option<f64>) {
        let mean = |(sum, n): (f64, u64)| (n > 0).then(|| sum / n as f64);
        (mean(self.queue_ms), mean(self.inference_ms))
    }
}

/// Latency summary of the 2xx answers, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Answers measured.
    pub count: u64,
    /// Fastest.
    pub min: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
    /// Slowest.
    pub max: Option<f64>,
    /// The distribution: answers with a latency up to `le` seconds (and above the previous
    /// bucket's bound).
    pub buckets: Vec<Bucket>,
}

/// One bucket of the latency distribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// Upper bound, seconds.
    pub le: f64,
    /// Answers in the bucket.
    pub count: u64,
}

impl LatencySummary {
    /// Summarises an HDR histogram of microseconds into ten equal-width buckets.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let q = |p: f64| Some(seconds(h.value_at_quantile(p)));
        let (lo, hi) = (h.min(), h.max());
        let width = ((hi - lo) / 10).max(1);
        let mut buckets = Vec::new();
        let mut low = lo;
        while low <= hi && buckets.len() < 10 {
            let high = if buckets.len() == 9 {
                hi
            } else {
                (low + width - 1).min(hi)
            };
            buckets.push(Bucket {
                le: seconds(h.highest_equivalent(high)),
                count: h.count_between(low, high),
            });
            low = h.highest_equivalent(high) + 1;
        }
        Self {
            count: h.len(),
            min: Some(seconds(lo)),
            mean: Some(h.mean() / 1e6),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: Some(seconds(h.max())),
            buckets,
        }
    }
}

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `--duration` elapsed.
    Duration,
    /// `--max-requests` were sent.
    MaxRequests,
    /// Ctrl-C (or the caller's stop signal).
    Interrupted,
}

/// The end-of-run report (`--output json` prints it as is).
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The endpoint loaded.
    pub url: String,
    /// The API spoken (`--api`).
    pub api: ApiKind,
    /// Whether answers were asked for as streams (`--stream`).
    pub stream: bool,
    /// The load profile.
    pub profile: String,
    /// Why the run ended.
    pub stopped_by: StopReason,
    /// Wall time from the first request to the end, seconds.
    pub elapsed_seconds: f64,
    /// Requests started.
    pub sent: u64,
    /// Requests answered with 2xx.
    pub ok: u64,
    /// Failures by kind.
    pub errors: ErrorCounts,
    /// Requests still without an answer when the run was cut (Ctrl-C during the drain).
    pub unfinished: u64,
    /// Answers by HTTP status code.
    pub status_counts: BTreeMap<String, u64>,
    /// 2xx answers per pod.
    pub pods: BTreeMap<String, u64>,
    /// Latency of the 2xx answers.
    pub latency_seconds: LatencySummary,
    /// Time to first token of the streamed 2xx answers (from the request's start to the first
    /// event carrying text); `null` without `--stream`.
    pub ttft_seconds: Option<LatencySummary>,
    /// `usage.completion_tokens` summed over the answers that reported it; `null` when none did.
    pub completion_tokens: Option<u64>,
    /// Those tokens per second of the run (`elapsed_seconds`).
    pub tokens_per_second: Option<f64>,
    /// Events of the streamed answers, `[DONE]` excluded; `null` without `--stream`.
    pub stream_events: Option<u64>,
    /// Mean queue wait the server reported, ms.
    pub mean_server_queue_ms: Option<f64>,
    /// Mean inference time the server reported, ms.
    pub mean_server_inference_ms: Option<f64>,
    /// TCP connections opened.
    pub connections_opened: u64,
    /// Refused connections tried again (`--retry-refused`); not failures unless every try was
    /// refused.
    pub refusals_retried: u64,
    /// Arrivals skipped because the client was at `--max-in-flight` (rate profile).
    pub client_limited: u64,
    /// Examples of failures of kind `other` and `bad_answer`.
    pub other_error_examples: Vec<String>,
}

impl LoadReport {
    /// Builds the report from the final counts of a run against `target`.
    pub fn new(
        stats: &Stats,
        target: &Target,
        profile: String,
        stopped_by: StopReason,
        elapsed: Duration,
        unfinished: u64,
        counters: &super::conn::Counters,
    ) -> Self {
        let (queue, inference) = stats.server_times();
        let elapsed_seconds = elapsed.as_secs_f64();
        let tokens = (stats.completion_tokens.1 > 0).then_some(stats.completion_tokens.0);
        let stream = target.api.streams();
        Self {
            url: target.url.clone(),
            api: target.api.kind,
            stream,
            profile,
            stopped_by,
            elapsed_seconds,
            sent: stats.sent,
            ok: stats.ok,
            errors: stats.errors.clone(),
            unfinished,
            status_counts: stats
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            pods: stats.pods.clone(),
            latency_seconds: LatencySummary::from_histogram(&stats.latency),
            ttft_seconds: stream.then(|| LatencySummary::from_histogram(&stats.ttft)),
            completion_tokens: tokens,
            tokens_per_second: tokens
                .filter(|_| elapsed_seconds > 0.0)
                .map(|n| n as f64 / elapsed_seconds),
            stream_events: stream.then_some(stats.stream_events),
            mean_server_queue_ms: queue,
            mean_server_inference_ms: inference,
            connections_opened: counters.opened.load(std::sync::atomic::Ordering::SeqCst),
            refusals_retried: counters
                .refusals_retried
                .load(std::sync::atomic::Ordering::SeqCst),
            client_limited: stats.client_limited,
            other_error_examples: stats.other_examples.clone(),
        }
    }

    /// The human-readable summary.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let stopped = match self.stopped_by {
            StopReason::Duration => "duration reached",
            StopReason::MaxRequests => "max requests sent",
            StopReason::Interrupted => "interrupted",
        };
        let rate = if self.elapsed_seconds > 0.0 {
            self.sent as f64 / self.elapsed_seconds
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "load: {} requests to {} in {:.1} s ({rate:.2} req/s; {}; {stopped})",
            self.sent, self.url, self.elapsed_seconds, self.profile
        );
        let e = &self.errors;
        let _ = writeln!(
            s,
            "  ok {}   errors {}: refused {}, 503 {}, timeout {}, bad answer {}, other {}{}",
            self.ok,
            e.total(),
            e.refused,
            e.unavailable,
            e.timeout,
            e.bad_answer,
            e.other,
            if self.unfinished > 0 {
                format!("   unfinished {}", self.unfinished)
            } else {
                String::new()
            }
        );
        if !self.status_counts.is_empty() {
            let codes: Vec<String> = self
                .status_counts
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(s, "  status codes: {}", codes.join(", "));
        }
        let l = &self.latency_seconds;
        let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        if l.count > 0 {
            let _ = writeln!(
                s,
                "  latency of ok answers (s): min {} mean {} p50 {} p90 {} p99 {} p99.9 {} max {}",
                f(l.min),
                f(l.mean),
                f(l.p50),
                f(l.p90),
                f(l.p99),
                f(l.p999),
                f(l.max)
            );
            let top = l.buckets.iter().map(|b| b.count).max().unwrap_or(1).max(1);
            for b in &l.buckets {
                let bar = "#".repeat(((b.count * 40).div_ceil(top)) as usize);
                let _ = writeln!(s, "    <= {:>9.3} s {:>7}  {bar}", b.le, b.count);
            }
        }
        if let Some(t) = self.ttft_seconds.as_ref().filter(|t| t.count > 0) {
            let _ = writeln!(
                s,
                "  time to first token (s): min {} mean {} p50 {} p90 {} p99 {} max {}",
                f(t.min),
                f(t.mean),
                f(t.p50),
                f(t.p90),
                f(t.p99),
                f(t.max)
            );
        }
        if let Some(n) = self.stream_events {
            let _ = writeln!(s, "  stream events: {n}");
        }
        if let Some(n) = self.completion_tokens {
            let _ = writeln!(
                s,
                "  completion tokens: {n} ({:.1} tokens/s)",
                self.tokens_per_second.unwrap_or(0.0)
            );
        }
        if let (Some(q), Some(i)) = (self.mean_server_queue_ms, self.mean_server_inference_ms) {
            let _ = writeln!(
                s,
                "  server-reported means: queue wait {:.1} ms, inference {:.1} ms",
                q, i
            );
        }
        if !self.pods.is_empty() {
            let pods: Vec<String> = self.pods.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "  ok answers per pod: {}", pods.join(", "));
        }
        let _ = writeln!(s, "  connections opened: {}", self.connections_opened);
        if self.refusals_retried > 0 {
            let _ = writeln!(
                s,
                "  refused connections tried again: {}",
                self.refusals_retried
            );
        }
        if self.client_limited > 0 {
            let _ = writeln!(
                s,
                "  not sent (client at --max-in-flight): {}",
                self.client_limited
            );
        }
        for ex in &self.other_error_examples {
            let _ = writeln!(s, "  error: {ex}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(pod: &str) -> Outcome {
        Outcome::Ok {
            status: 200,
            answer: super::super::api::Answer {
                pod: Some(pod.into()),
                queue_ms: Some(10.0),
                inference_ms: Some(100.0),
                ..Default::default()
            },
        }
    }

    #[test]
    fn counts_and_intervals() {
        let mut s = Stats::default();
        for _ in 0..4 {
            s.started();
        }
        s.finished(&ok("a"), Duration::from_millis(100));
        s.finished(&ok("b"), Duration::from_millis(300));
        s.finished(
            &Outcome::Failed {
                kind: ErrorKind::Unavailable,
                status: Some(503),
                detail: "full".into(),
            },
            Duration::from_millis(1),
        );
        s.finished(
            &Outcome::Failed {
                kind: ErrorKind::Refused,
                status: None,
                detail: "refused".into(),
            },
            Duration::from_millis(1),
        );
        let i = s.take_interval();
        assert_eq!((i.sent, i.ok, i.shed, i.errors), (4, 2, 1, 1));
        let p50 = i.p50_seconds.unwrap();
        assert!((0.099..0.101).contains(&p50), "{p50}");
        assert_eq!(s.take_interval().sent, 0, "an interval starts from zero");
        let target = Target::from_base_url("http://u", &super::super::api::Api::default()).unwrap();
        let r = LoadReport::new(
            &s,
            &target,
            "p".into(),
            StopReason::Duration,
            Duration::from_secs(2),
            0,
            &crate::load::conn::Counters {
                opened: 3.into(),
                refusals_retried: 2.into(),
            },
        );
        assert_eq!((r.connections_opened, r.refusals_retried), (3, 2));
        assert!(r.to_text().contains("refused connections tried again: 2"));
        assert_eq!(r.ok, 2);
        assert_eq!(r.errors.total(), 2);
        assert_eq!(r.status_counts.get("503"), Some(&1));
        assert_eq!(r.pods.get("a"), Some(&1));
        assert_eq!(r.latency_seconds.count, 2);
        assert_eq!(
            r.latency_seconds
                .buckets
                .iter()
                .map(|b| b.count)
                .sum::<u64>(),
            2
        );
        assert_eq!(r.mean_server_queue_ms, Some(10.0));
        assert_eq!(r.ttft_seconds, None, "no stream asked for");
        assert_eq!((r.completion_tokens, r.stream_events), (None, None));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["api"], "infer");
        assert!(json["ttft_seconds"].is_null());
        assert_eq!(json["errors"]["503"], 1);
        assert_eq!(json["errors"]["refused"], 1);
        let text = r.to_text();
        assert!(text.contains("refused 1, 503 1"), "{text}");
        assert!(!text.contains("first token"), "{text}");
    }

    #[test]
    fn streams_add_ttft_events_and_tokens() {
        use super::super::api::{Answer, Api, ApiKind};
        let mut s = Stats::default();
        for (ttft_ms, latency_ms) in [(100, 400), (300, 600)] {
            s.started();
            let answer = Answer {
                ttft: Some(Duration::from_millis(ttft_ms)),
                events: Some(4),
                completion_tokens: Some(4),
                ..Answer::default()
            };
            s.finished(
                &Outcome::Ok {
                    status: 200,
                    answer,
                },
                Duration::from_millis(latency_ms),
            );
        }
        assert!(
            s.progress_line(Duration::from_secs(1), 0, "x")
                .contains("ttft p50 0.100s")
        );
        let api = Api::new(ApiKind::Chat, "hi", Some(4), None, true).unwrap();
        let target = Target::from_base_url("http://u", &api).unwrap();
        let r = LoadReport::new(
            &s,
            &target,
            "p".into(),
            StopReason::MaxRequests,
            Duration::from_secs(2),
            0,
            &Default::default(),
        );
        let t = r.ttft_seconds.as_ref().unwrap();
        assert_eq!(t.count, 2);
        assert!((0.099..0.101).contains(&t.min.unwrap()), "{t:?}");
        assert!((0.299..0.301).contains(&t.max.unwrap()), "{t:?}");
        assert_eq!((r.completion_tokens, r.stream_events), (Some(8), Some(8)));
        assert_eq!(r.tokens_per_second, Some(4.0));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (json["api"].as_str(), json["stream"].as_bool()),
            (Some("chat"), Some(true))
        );
        let text = r.to_text();
        assert!(
            text.contains("time to first token (s): min 0.100"),
            "{text}"
        );
        assert!(
            text.contains("completion tokens: 8 (4.0 tokens/s)"),
            "{text}"
        );
    }
}
