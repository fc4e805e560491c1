//! The metric as Prometheus and prometheus-adapter compute it, as pure functions of what the servers
//! observed. The simulator uses exactly these functions, so a real pipeline's trace can be compared
//! with them: record the requests each pod served and the scrape times, call [`scrape`], then
//! [`mean_duration_query`] or [`concurrency_query`] at the HPA's query times.
//!
//! Assumptions (the rendered queries of kscale):
//! - `mean-duration`: `sum(rate(duration_sum[w])) / sum(rate(duration_count[w]))`, NaN-guarded so that
//!   no completions (or no series) read as 0; `rate()` is Prometheus' extrapolated rate over the
//!   left-open window `(t-w, t]`, needing two samples per series.
//! - `concurrency`: `sum(in_flight + queue_depth)` over the pods' last scraped gauges (5 min lookback,
//!   series of deleted pods are stale at once), 0 when there is no series.
//! - Only answered requests (200) are observed in the duration histogram; shed requests (503) are not.

use serde::{Deserialize, Serialize};

/// Prometheus' default lookback for instant vectors, in seconds.
pub const LOOKBACK_SECONDS: f64 = 300.0;

/// A request as one pod's server saw it (shed requests never enter the queue and are not listed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ObservedRequest {
    /// Pod that served it.
    pub pod: u32,
    /// Arrival at the pod (the duration histogram measures from here).
    pub arrived_at: f64,
    /// When a worker took it; `None` while queued.
    pub started_at: Option<f64>,
    /// When it was answered; `None` while in progress.
    pub finished_at: Option<f64>,
}

/// One scrape of one pod: the histogram's `_sum`/`_count` and the two gauges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Scrape time, seconds.
    pub at: f64,
    /// `inference_request_duration_seconds_sum`.
    pub duration_sum: f64,
    /// `inference_request_duration_seconds_count`.
    pub duration_count: f64,
    /// `inference_requests_in_flight`.
    pub in_flight: f64,
    /// `inference_queue_depth`.
    pub queued: f64,
}

/// The series of one pod target in Prometheus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodSeries {
    /// Pod id.
    pub pod: u32,
    /// Scrapes in time order.
    pub samples: Vec<Sample>,
    /// When the pod (and so its target) disappeared; its gauges are stale from then on.
    pub gone_at: Option<f64>,
}

/// A borrowed view of one series, so callers that keep series elsewhere need not copy them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesRef<'a> {
    /// Scrapes in time order.
    pub samples: &'a [Sample],
    /// When the target disappeared.
    pub gone_at: Option<f64>,
}

impl PodSeries {
    /// This series as a view.
    pub fn view(&self) -> SeriesRef<'_> {
        SeriesRef {
            samples: &self.samples,
            gone_at: self.gone_at,
        }
    }
}

/// A pod's scrape target lifetime: scraped at scrape times in `[from, until]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PodLifetime {
    /// Pod id.
    pub pod: u32,
    /// First time it can be scraped (ready).
    pub from: f64,
    /// When it disappeared, if it did.
    pub until: Option<f64>,
}

/// The series Prometheus holds after scraping each pod at `scrape_times` during its lifetime.
pub fn scrape(
    requests: &[ObservedRequest],
    pods: &[PodLifetime],
    scrape_times: &[f64],
) -> Vec<PodSeries> {
    pods.iter()
        .map(|life| {
            let mine: Vec<&ObservedRequest> =
                requests.iter().filter(|r| r.pod == life.pod).collect();
            let samples = scrape_times
                .iter()
                .filter(|&&t| t >= life.from && life.until.is_none_or(|u| t < u))
                .map(|&t| sample_at(&mine, t))
                .collect();
            PodSeries {
                pod: life.pod,
                samples,
                gone_at: life.until,
            }
        })
        .collect()
}

fn sample_at(requests: &[&ObservedRequest], t: f64) -> Sample {
    let mut s = Sample {
        at: t,
        duration_sum: 0.0,
        duration_count: 0.0,
        in_flight: 0.0,
        queued: 0.0,
    };
    for r in requests {
        if r.arrived_at > t {
            continue;
        }
        match (r.started_at, r.finished_at) {
            (_, Some(f)) if f <= t => {
                s.duration_sum += f - r.arrived_at;
                s.duration_count += 1.0;
            }
            (Some(st), _) if st <= t => s.in_flight += 1.0,
            _ => s.queued += 1.0,
        }
    }
    s
}

/// Prometheus' `rate()` of one counter series over `(end - range, end]` (`extrapolatedRate`);
/// `None` with fewer than two samples.
pub fn prometheus_rate(points: &[(f64, f64)], end: f64, range: f64) -> Option<f64> {
    let start = end - range;
    let inside: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|&(t, _)| t > start && t <= end)
        .collect();
    if inside.len() < 2 {
        return None;
    }
    let (first_t, first_v) = inside[0];
    let (last_t, _) = inside[inside.len() - 1];
    // Counter resets: add back the value before each drop.
    let mut increase = 0.0;
    let mut prev = first_v;
    for &(_, v) in &inside[1..] {
        increase += if v < prev { v } else { v - prev };
        prev = v;
    }
    let sampled = last_t - first_t;
    if sampled <= 0.0 {
        return None;
    }
    let average_gap = sampled / (inside.len() - 1) as f64;
    let threshold = average_gap * 1.1;
    let mut to_start = first_t - start;
    let mut to_end = end - last_t;
    if to_start >= threshold {
        to_start = average_gap / 2.0;
    }
    if increase > 0.0 && first_v >= 0.0 {
        // A counter does not extrapolate below zero.
        let to_zero = sampled * (first_v / increase);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average_gap / 2.0;
    }
    let factor = (sampled + to_start + to_end) / sampled / range;
    Some(increase * factor)
}

/// The samples of one series within `(end - range, end]`, as a slice (samples are in time order).
fn window(samples: &[Sample], end: f64, range: f64) -> &[Sample] {
    let lo = samples.partition_point(|s| s.at <= end - range);
    let hi = samples.partition_point(|s| s.at <= end);
    &samples[lo..hi.max(lo)]
}

/// `mean-duration` at time `at` over a `rate_window` of seconds: `sum(rate(_sum)) / sum(rate(_count))`,
/// 0 when there is no data or no completion (the NaN guard of the rendered query).
pub fn mean_duration_query(series: &[PodSeries], at: f64, rate_window: f64) -> f64 {
    mean_duration_of(series.iter().map(PodSeries::view), at, rate_window)
}

/// [`mean_duration_query`] over series views.
pub fn mean_duration_of<'a>(
    series: impl IntoIterator<Item = SeriesRef<'a>>,
    at: f64,
    rate_window: f64,
) -> f64 {
    let mut sum_rate = 0.0;
    let mut count_rate = 0.0;
    let mut points_sum = Vec::new();
    let mut points_count = Vec::new();
    for s in series {
        let w = window(s.samples, at, rate_window);
        if w.len() < 2 {
            continue;
        }
        points_sum.clear();
        points_count.clear();
        points_sum.extend(w.iter().map(|x| (x.at, x.duration_sum)));
        points_count.extend(w.iter().map(|x| (x.at, x.duration_count)));
        if let (Some(a), Some(b)) = (
            prometheus_rate(&points_sum, at, rate_window),
            prometheus_rate(&points_count, at, rate_window),
        ) {
            sum_rate += a;
            count_rate += b;
        }
    }
    let v = sum_rate / count_rate;
    if v.is_finite() && v > 0.0 { v } else { 0.0 }
}

/// `concurrency` at time `at`: the sum over live pods of in-flight plus queued requests at their last
/// scrape (within the lookback), 0 when there is no series.
pub fn concurrency_query(series: &[PodSeries], at: f64) -> f64 {
    concurrency_of(series.iter().map(PodSeries::view), at)
}

/// [`concurrency_query`] over series views.
pub fn concurrency_of<'a>(series: impl IntoIterator<Item = SeriesRef<'a>>, at: f64) -> f64 {
    sum_of_last(series, at, |x| x.in_flight + x.queued)
}

/// Sums one gauge reading over the pods' last samples within the lookback, as an instant
/// query of gauges does (a pod gone or silent for longer counts as absent).
fn sum_of_last<'a>(
    series: impl IntoIterator<Item = SeriesRef<'a>>,
    at: f64,
    reading: impl Fn(&Sample) -> f64,
) -> f64 {
    series
        .into_iter()
        .filter(|s| s.gone_at.is_none_or(|g| g > at))
        .filter_map(|s| {
            let i = s.samples.partition_point(|x| x.at <= at);
            let last = s.samples[..i].last()?;
            (at - last.at <= LOOKBACK_SECONDS).then(|| reading(last))
        })
        .sum()
}

/// The queue profile's query: `sum(queue_depth)` over the pods' last samples, the waiting
/// gauge alone (in-flight requests do not count).
pub fn queue_query(series: &[PodSeries], at: f64) -> f64 {
    queue_of(series.iter().map(PodSeries::view), at)
}

/// [`queue_query`] over series views.
pub fn queue_of<'a>(series: impl IntoIterator<Item = SeriesRef<'a>>, at: f64) -> f64 {
    sum_of_last(series, at, |x| x.queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_of_a_steady_counter_is_its_slope() {
        // 1 per second, scraped every 5 s, window 60 s aligned on a scrape.
        let pts: Vec<(f64, f64)> = (0..=40)
            .map(|i| (f64::from(i) * 5.0, f64::from(i) * 5.0))
            .collect();
        let r = prometheus_rate(&pts, 200.0, 60.0).unwrap();
        assert!((r - 1.0).abs() < 1e-9, "{r}");
        // Window start between scrapes: extrapolation keeps the slope.
        let r = prometheus_rate(&pts, 197.0, 60.0).unwrap();
        assert!((r - 1.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn rate_needs_two_samples_and_does_not_extrapolate_below_zero() {
        assert_eq!(prometheus_rate(&[(10.0, 3.0)], 10.0, 60.0), None);
        // A counter born at 0 inside the window: no extrapolation before its first sample.
        let pts = [(50.0, 0.0), (55.0, 5.0), (60.0, 10.0)];
        let r = prometheus_rate(&pts, 60.0, 60.0).unwrap();
        assert!((r - 10.0 / 60.0).abs() < 1e-9, "{r}");
        // Resets add the post-reset value.
        let pts = [(0.0, 8.0), (5.0, 10.0), (10.0, 2.0)];
        let r = prometheus_rate(&pts, 10.0, 10.0).unwrap();
        assert!(r > 0.0, "{r}");
    }

    #[test]
    fn queries_from_observed_requests() {
        let req = |pod, a: f64, s: Option<f64>, f: Option<f64>| ObservedRequest {
            pod,
            arrived_at: a,
            started_at: s,
            finished_at: f,
        };
        // Pod 0: two 10 s requests back to back (the second waits 10 s), pod 1: one in progress.
        let requests = [
            req(0, 1.0, Some(1.0), Some(11.0)),
            req(0, 2.0, Some(11.0), Some(21.0)),
            req(1, 3.0, Some(3.0), None),
            req(1, 4.0, None, None),
        ];
        let pods = [
            PodLifetime {
                pod: 0,
                from: 0.0,
                until: None,
            },
            PodLifetime {
                pod: 1,
                from: 0.0,
                until: None,
            },
        ];
        let times: Vec<f64> = (0..=6).map(|i| f64::from(i) * 5.0).collect();
        let series = scrape(&requests, &pods, &times);
        assert_eq!(series[0].samples.len(), 7);
        assert_eq!(series[0].samples[3].duration_count, 1.0); // at 15 s
        assert_eq!(series[0].samples[3].in_flight, 1.0);
        assert_eq!(series[1].samples[1].in_flight, 1.0); // at 5 s
        assert_eq!(series[1].samples[1].queued, 1.0);
        // Durations 10 and 19: mean 14.5 (both pods' rates summed, pod 1 contributes 0).
        let m = mean_duration_query(&series, 30.0, 30.0);
        assert!((m - 14.5).abs() < 1e-9, "{m}");
        assert_eq!(concurrency_query(&series, 7.0), 4.0); // scrape at 5: pod0 1+1, pod1 1+1
        assert_eq!(concurrency_query(&series, 30.0), 2.0);
        // No completions in the window: the guard gives 0, never NaN.
        assert_eq!(mean_duration_query(&series, 5.0, 5.0), 0.0);
        assert_eq!(mean_duration_query(&[], 5.0, 60.0), 0.0);
        assert_eq!(concurrency_query(&[], 5.0), 0.0);
        // A deleted pod's gauges are stale at once.
        let gone = scrape(
            &requests,
            &[PodLifetime {
                pod: 1,
                from: 0.0,
                until: Some(12.0),
            }],
            &times,
        );
        assert_eq!(gone[0].samples.len(), 3);
        assert_eq!(concurrency_query(&gone, 11.0), 2.0);
        assert_eq!(concurrency_query(&gone, 12.0), 0.0);
    }
}
