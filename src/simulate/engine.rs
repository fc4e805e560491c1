//! The discrete-event model: pods with workers and a bounded queue, clients, Prometheus scrapes and
//! the HPA's sync loop, on one event queue ordered by time (ties by insertion order).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use super::metric::{self, ObservedRequest, PodSeries, Sample, SeriesRef};
use super::output::{SimOutput, Summary, SyncRecord};
use super::params::{MAX_EVENTS, SimParams};
use crate::config::MetricProfile;
use crate::hpa::{Autoscaler, MetricInput, MetricReading, MetricTarget, SyncInputs};
use crate::loadprofile::Balance;
use crate::loadprofile::{LoadKind, LoadProfile};
use crate::timeline::{PodSample, TimelineRow};

/// A scale-up this soon after a scale-down counts as flapping.
const QUICK_REVERSAL_SECONDS: f64 = 300.0;

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A request is sent; `closed` when a closed-loop client sends it.
    Send {
        closed: bool,
    },
    /// Open loop: time to draw the next arrival (`send` false only re-draws at a rate change).
    OpenArrival {
        send: bool,
    },
    Completion {
        pod: usize,
    },
    PodReady {
        pod: usize,
    },
    Scrape,
    Sync,
    Step {
        index: usize,
    },
    Row,
}

#[derive(Debug)]
struct Event {
    at: f64,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed, so the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PodState {
    Starting,
    Ready,
    Terminating,
    Gone,
}

#[derive(Debug, Clone, Copy)]
struct Req {
    arrived: f64,
    started: f64,
    closed: bool,
    log: usize,
}

#[derive(Debug)]
struct Pod {
    state: PodState,
    created_at: f64,
    ready_at: Option<f64>,
    in_flight: VecDeque<Req>,
    queue: VecDeque<Req>,
    duration_sum: f64,
    duration_count: f64,
    series: Vec<Sample>,
    gone_at: Option<f64>,
}

impl Pod {
    fn idle(&self) -> bool {
        self.in_flight.is_empty() && self.queue.is_empty()
    }
}

struct Sim<'a> {
    p: &'a SimParams,
    load: &'a LoadProfile,
    end: f64,
    rng: ChaCha8Rng,
    heap: BinaryHeap<Event>,
    seq: u64,
    pods: Vec<Pod>,
    ready: Vec<usize>,
    rr: usize,
    hpa: Autoscaler,
    desired: u32,
    last_metric: Option<f64>,
    clients_target: u32,
    clients_running: u32,
    record: bool,
    requests: Vec<ObservedRequest>,
    row_latencies: Vec<f64>,
    row_shed: u64,
    latencies: Vec<f64>,
    summary: Summary,
    last_direction: i8,
    last_down_at: Option<f64>,
    timeline: Vec<TimelineRow>,
    syncs: Vec<SyncRecord>,
    last_row_at: f64,
}

/// Runs one simulation of `duration` seconds.
pub fn simulate(p: &SimParams, load: &LoadProfile, duration: f64, seed: u64) -> SimOutput {
    run(p, load, duration, seed, false)
}

/// Like [`simulate`], and also returns every request each pod observed (for comparing the metric
/// functions against a real pipeline).
pub fn simulate_recorded(p: &SimParams, load: &LoadProfile, duration: f64, seed: u64) -> SimOutput {
    run(p, load, duration, seed, true)
}

fn run(p: &SimParams, load: &LoadProfile, duration: f64, seed: u64, record: bool) -> SimOutput {
    let mut sim = Sim {
        p,
        load,
        end: duration.max(0.0),
        rng: ChaCha8Rng::seed_from_u64(seed),
        heap: BinaryHeap::new(),
        seq: 0,
        pods: Vec::new(),
        ready: Vec::new(),
        rr: 0,
        hpa: Autoscaler::new(p.hpa.clone()),
        desired: p.initial_replicas,
        last_metric: None,
        clients_target: 0,
        clients_running: 0,
        record,
        requests: Vec::new(),
        row_latencies: Vec::new(),
        row_shed: 0,
        latencies: Vec::new(),
        summary: Summary::default(),
        last_direction: 0,
        last_down_at: None,
        timeline: Vec::new(),
        syncs: Vec::new(),
        last_row_at: 0.0,
    };
    sim.start();
    sim.run_events();
    sim.finish()
}

impl Sim<'_> {
    fn push(&mut self, at: f64, kind: Kind) {
        if at <= self.end {
            self.seq += 1;
            self.heap.push(Event {
                at,
                seq: self.seq,
                kind,
            });
        }
    }

    fn start(&mut self) {
        if let Some((at, from, to)) = self.load.first_rise() {
            self.summary.step_at_seconds = Some(at.as_secs_f64());
            self.summary.step_from = Some(from);
            self.summary.step_to = Some(to);
        }
        for _ in 0..self.p.initial_replicas {
            let id = self.new_pod(0.0);
            self.pods[id].state = PodState::Ready;
            self.pods[id].ready_at = Some(0.0);
            self.ready.push(id);
        }
        self.summary.replicas_initial = self.p.initial_replicas;
        self.summary.replicas_peak = self.p.initial_replicas;
        // Prometheus and the controller do not start in phase with the load.
        let scrape_phase = self.rng.random::<f64>() * self.p.scrape_interval_seconds;
        let sync_phase = self.rng.random::<f64>() * self.p.sync_period_seconds;
        self.push(scrape_phase, Kind::Scrape);
        self.push(sync_phase, Kind::Sync);
        match self.load.kind {
            LoadKind::Concurrency => {
                for (index, s) in self.load.steps.iter().enumerate() {
                    self.push(s.at.as_secs_f64(), Kind::Step { index });
                }
            }
            LoadKind::Rate => {
                let first = self.load.steps.first().map_or(0.0, |s| s.at.as_secs_f64());
                self.push(first, Kind::OpenArrival { send: false });
            }
        }
        self.push(self.p.row_interval_seconds, Kind::Row);
    }

    fn run_events(&mut self) {
        let mut count: u64 = 0;
        while let Some(ev) = self.heap.pop() {
            count += 1;
            if count > MAX_EVENTS {
                self.summary.truncated_at_seconds = Some(ev.at);
                break;
            }
            let now = ev.at;
            match ev.kind {
                Kind::Send { closed } => self.send(now, closed),
                Kind::OpenArrival { send } => self.open_arrival(now, send),
                Kind::Completion { pod } => self.complete(now, pod),
                Kind::PodReady { pod } => self.pod_ready(now, pod),
                Kind::Scrape => {
                    self.scrape(now);
                    self.push(now + self.p.scrape_interval_seconds, Kind::Scrape);
                }
                Kind::Sync => {
                    self.sync(now);
                    self.push(now + self.p.sync_period_seconds, Kind::Sync);
                }
                Kind::Step { index } => self.step(now, index),
                Kind::Row => {
                    self.row(now);
                    self.push(now + self.p.row_interval_seconds, Kind::Row);
                }
            }
        }
    }

    fn jitter(&mut self) -> f64 {
        self.rng.random::<f64>() * self.p.client_jitter_seconds
    }

    fn step(&mut self, now: f64, index: usize) {
        let target = self.load.steps[index].value as u32;
        self.clients_target = target;
        // New clients start now; surplus ones leave after their current request.
        while self.clients_running < target {
            self.clients_running += 1;
            let at = now + self.jitter();
            self.push(at, Kind::Send { closed: true });
        }
    }

    fn open_arrival(&mut self, now: f64, send: bool) {
        if send {
            self.send(now, false);
        }
        let rate = self.load.value_at_seconds(now);
        let next_step = self
            .load
            .steps
            .iter()
            .map(|s| s.at.as_secs_f64())
            .find(|&t| t > now);
        let gap = if rate > 0.0 {
            // Exponential gaps: a Poisson process. 1 - u is in (0, 1], so the log is finite.
            -(1.0 - self.rng.random::<f64>()).ln() / rate
        } else {
            f64::INFINITY
        };
        match next_step {
            // The rate changes first: re-draw there (memoryless, so this is exact).
            Some(b) if now + gap >= b => self.push(b, Kind::OpenArrival { send: false }),
            _ if gap.is_finite() => self.push(now + gap, Kind::OpenArrival { send: true }),
            _ => {}
        }
    }

    /// A closed-loop client's next move after a response or a refusal.
    fn client_again(&mut self, at: f64) {
        if self.clients_running > self.clients_target {
            self.clients_running -= 1;
        } else {
            self.push(at, Kind::Send { closed: true });
        }
    }

    fn send(&mut self, now: f64, closed: bool) {
        self.summary.sent += 1;
        if self.ready.is_empty() {
            self.summary.refused += 1;
            if closed {
                self.client_again(now + self.p.retry_after_seconds);
            }
            return;
        }
        let pick = match self.p.balance {
            Balance::RoundRobin => {
                self.rr = self.rr.wrapping_add(1);
                self.rr % self.ready.len()
            }
            Balance::Random => self.rng.random_range(0..self.ready.len()),
        };
        let pod = self.ready[pick];
        let log = self.requests.len();
        let mut req = Req {
            arrived: now,
            started: now,
            closed,
            log,
        };
        let busy = self.pods[pod].in_flight.len() as u32;
        if busy < self.p.workers {
            if self.record {
                self.requests.push(ObservedRequest {
                    pod: pod as u32,
                    arrived_at: now,
                    started_at: Some(now),
                    finished_at: None,
                });
            }
            self.pods[pod].in_flight.push_back(req);
            self.push(now + self.p.inference_seconds, Kind::Completion { pod });
        } else if (self.pods[pod].queue.len() as u32) < self.p.max_queue {
            if self.record {
                self.requests.push(ObservedRequest {
                    pod: pod as u32,
                    arrived_at: now,
                    started_at: None,
                    finished_at: None,
                });
            }
            req.started = f64::NAN;
            self.pods[pod].queue.push_back(req);
        } else {
            self.summary.shed += 1;
            self.row_shed += 1;
            if closed {
                self.client_again(now + self.p.retry_after_seconds);
            }
        }
    }

    fn complete(&mut self, now: f64, pod: usize) {
        let Some(done) = self.pods[pod].in_flight.pop_front() else {
            return;
        };
        let latency = now - done.arrived;
        self.summary.ok += 1;
        self.latencies.push(latency);
        self.row_latencies.push(latency);
        if self.record {
            self.requests[done.log].finished_at = Some(now);
        }
        {
            let p = &mut self.pods[pod];
            p.duration_sum += latency;
            p.duration_count += 1.0;
        }
        if let Some(mut next) = self.pods[pod].queue.pop_front() {
            next.started = now;
            if self.record {
                self.requests[next.log].started_at = Some(now);
            }
            self.pods[pod].in_flight.push_back(next);
            self.push(now + self.p.inference_seconds, Kind::Completion { pod });
        }
        if done.closed {
            let at = now + self.jitter();
            self.client_again(at);
        }
        if self.pods[pod].state == PodState::Terminating && self.pods[pod].idle() {
            self.gone(now, pod);
        }
    }

    fn gone(&mut self, now: f64, pod: usize) {
        let p = &mut self.pods[pod];
        p.state = PodState::Gone;
        p.gone_at = Some(now);
    }

    fn new_pod(&mut self, now: f64) -> usize {
        self.pods.push(Pod {
            state: PodState::Starting,
            created_at: now,
            ready_at: None,
            in_flight: VecDeque::new(),
            queue: VecDeque::new(),
            duration_sum: 0.0,
            duration_count: 0.0,
            series: Vec::new(),
            gone_at: None,
        });
        self.pods.len() - 1
    }

    fn pod_ready(&mut self, now: f64, pod: usize) {
        if self.pods[pod].state != PodState::Starting {
            return;
        }
        self.pods[pod].state = PodState::Ready;
        self.pods[pod].ready_at = Some(now);
        let at = self.ready.partition_point(|&x| x < pod);
        self.ready.insert(at, pod);
        if let Some(step) = self.summary.step_at_seconds
            && self.summary.first_new_pod_ready_seconds.is_none()
            && self.pods[pod].created_at >= step
        {
            self.summary.first_new_pod_ready_seconds = Some(now - step);
        }
    }

    fn scrape(&mut self, now: f64) {
        for p in self.pods.iter_mut() {
            if matches!(p.state, PodState::Ready | PodState::Terminating) {
                p.series.push(Sample {
                    at: now,
                    duration_sum: p.duration_sum,
                    duration_count: p.duration_count,
                    in_flight: p.in_flight.len() as f64,
                    queued: p.queue.len() as f64,
                });
            }
        }
    }

    fn live(&self) -> u32 {
        self.pods
            .iter()
            .filter(|p| matches!(p.state, PodState::Starting | PodState::Ready))
            .count() as u32
    }

    fn query(&self, now: f64) -> f64 {
        let views = self
            .pods
            .iter()
            .filter(|p| !p.series.is_empty())
            .map(|p| SeriesRef {
                samples: &p.series,
                gone_at: p.gone_at,
            });
        match self.p.profile {
            MetricProfile::MeanDuration => {
                metric::mean_duration_of(views, now, self.p.rate_window_seconds)
            }
            MetricProfile::Concurrency => metric::concurrency_of(views, now),
            MetricProfile::Queue => metric::queue_of(views, now),
        }
    }

    fn series_view(&self) -> Vec<PodSeries> {
        self.pods
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.series.is_empty())
            .map(|(i, p)| PodSeries {
                pod: i as u32,
                samples: p.series.clone(),
                gone_at: p.gone_at,
            })
            .collect()
    }

    fn sync(&mut self, now: f64) {
        let current = self.live();
        let ready = self.ready.len() as u32;
        let value = self.query(now);
        let target = match self.p.profile {
            MetricProfile::MeanDuration => MetricTarget::ExternalValue(self.p.target),
            MetricProfile::Concurrency | MetricProfile::Queue => {
                MetricTarget::ExternalAverageValue(self.p.target)
            }
        };
        let inputs = SyncInputs {
            spec_replicas: current,
            status_replicas: current,
            ready_replicas: ready,
            metrics: vec![MetricInput {
                target,
                // The rendered queries always return one series (NaN-guarded to 0).
                reading: MetricReading::External(vec![value]),
            }],
        };
        let d = self.hpa.decide(now, &inputs);
        self.last_metric = d.metric_values.first().copied().flatten();
        self.desired = d.desired_replicas;
        self.syncs.push(SyncRecord {
            t_seconds: now,
            query_value: value,
            current,
            desired: d.desired_replicas,
            reason: d.reason.clone(),
        });
        if !d.rescale || d.desired_replicas == current {
            return;
        }
        self.summary.scale_events += 1;
        let direction: i8 = if d.desired_replicas > current { 1 } else { -1 };
        if self.last_direction != 0 && direction != self.last_direction {
            self.summary.direction_changes += 1;
        }
        self.last_direction = direction;
        if direction > 0
            && self
                .last_down_at
                .is_some_and(|d| now - d < QUICK_REVERSAL_SECONDS)
        {
            self.summary.quick_reversals += 1;
        }
        if direction < 0 {
            self.last_down_at = Some(now);
        }
        if direction > 0 {
            if let Some(step) = self.summary.step_at_seconds
                && now >= step
                && self.summary.first_scale_up_decision_seconds.is_none()
            {
                self.summary.first_scale_up_decision_seconds = Some(now - step);
            }
            for _ in current..d.desired_replicas {
                let id = self.new_pod(now);
                let spread = (self.rng.random::<f64>() * 2.0 - 1.0) * self.p.start_delay_jitter;
                let delay = (self.p.start_delay_seconds * (1.0 + spread)).max(0.0);
                self.push(now + delay, Kind::PodReady { pod: id });
            }
            self.summary.replicas_peak = self.summary.replicas_peak.max(d.desired_replicas);
        } else {
            self.scale_down(now, current - d.desired_replicas);
        }
    }

    /// The ReplicaSet's victims: pods not ready yet first, then the most recently ready.
    fn scale_down(&mut self, now: f64, mut n: u32) {
        let mut starting: Vec<usize> = (0..self.pods.len())
            .filter(|&i| self.pods[i].state == PodState::Starting)
            .collect();
        starting.sort_by(|&a, &b| self.pods[b].created_at.total_cmp(&self.pods[a].created_at));
        for i in starting {
            if n == 0 {
                return;
            }
            self.gone(now, i);
            n -= 1;
        }
        let mut ready = self.ready.clone();
        ready.sort_by(|&a, &b| {
            let ra = self.pods[a].ready_at.unwrap_or(0.0);
            let rb = self.pods[b].ready_at.unwrap_or(0.0);
            rb.total_cmp(&ra).then(b.cmp(&a))
        });
        for i in ready {
            if n == 0 {
                return;
            }
            n -= 1;
            self.ready.retain(|&x| x != i);
            self.pods[i].state = PodState::Terminating;
            if self.pods[i].idle() {
                self.gone(now, i);
            }
        }
    }

    fn row(&mut self, now: f64) {
        let mut pods = Vec::new();
        let (mut queued, mut in_flight) = (0.0, 0.0);
        for (i, p) in self.pods.iter().enumerate() {
            if matches!(p.state, PodState::Ready | PodState::Terminating) {
                let q = p.queue.len() as f64;
                let f = p.in_flight.len() as f64;
                queued += q;
                in_flight += f;
                pods.push(PodSample {
                    pod: format!("pod-{i}"),
                    queue_depth: q,
                    in_flight: f,
                });
            }
        }
        self.row_latencies.sort_by(f64::total_cmp);
        let p50 = percentile(&self.row_latencies, 0.5);
        let p99 = percentile(&self.row_latencies, 0.99);
        if let Some(v) = p99 {
            let peak = self.summary.peak_row_p99_seconds.get_or_insert(v);
            *peak = peak.max(v);
        }
        let ready_pods = self.ready.len() as f64;
        self.summary.pod_seconds += ready_pods * (now - self.last_row_at);
        self.last_row_at = now;
        self.timeline.push(TimelineRow {
            t_seconds: now,
            replicas_current: self.live(),
            replicas_desired: self.desired,
            metric_value: self.last_metric,
            target: self.p.target,
            load: Some(self.load.value_at_seconds(now)),
            queue_depth: Some(queued),
            in_flight: Some(in_flight),
            p50_seconds: p50,
            p99_seconds: p99,
            shed: Some(self.row_shed),
            pods,
            ..TimelineRow::default()
        });
        self.row_latencies.clear();
        self.row_shed = 0;
    }

    fn finish(mut self) -> SimOutput {
        if self.timeline.last().is_none_or(|r| r.t_seconds < self.end) {
            self.row(self.end);
        }
        self.summary.in_progress_at_end = self
            .pods
            .iter()
            .filter(|p| p.state != PodState::Gone)
            .map(|p| (p.in_flight.len() + p.queue.len()) as u64)
            .sum();
        self.summary.replicas_final = self.live();
        self.latencies.sort_by(f64::total_cmp);
        self.summary.p50_seconds = percentile(&self.latencies, 0.5);
        self.summary.p99_seconds = percentile(&self.latencies, 0.99);
        self.summary.max_seconds = self.latencies.last().copied();
        self.summary.mean_seconds = (!self.latencies.is_empty())
            .then(|| self.latencies.iter().sum::<f64>() / self.latencies.len() as f64);
        let series = self.series_view();
        SimOutput {
            timeline: self.timeline,
            summary: self.summary,
            syncs: self.syncs,
            requests: self.requests,
            series,
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
