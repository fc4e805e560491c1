//! kscale's HPA library against the real controller on the same metric trace. The HPA's status is
//! sampled while the loop runs; each change of (metric value, current replicas, desired replicas)
//! is one observed controller sync. Replaying those syncs, with the value and replica counts the
//! controller saw, through [`kscale::hpa::Autoscaler`] gives kscale's decision for each.

use kscale::config::{Config, Layers};
use kscale::hpa::{Autoscaler, HpaSettings, MetricInput, MetricReading, MetricTarget, SyncInputs};

use super::harness::{Harness, SETS};

/// One sample of the HPA's status and the Deployment's ready pods.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the trace started.
    pub t: f64,
    /// `status.currentMetrics[0].external.current.value` (the value the controller read).
    pub value: Option<f64>,
    /// `status.currentReplicas`.
    pub current: i64,
    /// `status.desiredReplicas` (the controller's decision).
    pub desired: i64,
    /// The Deployment's `status.readyReplicas` when sampled.
    pub ready: i64,
}

/// The samples taken so far.
pub struct Trace {
    started: std::time::Instant,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Trace {
    /// An empty trace starting now.
    pub fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
            samples: Vec::new(),
        }
    }

    /// Samples the HPA and the Deployment once.
    pub fn observe(&mut self, h: &Harness) {
        let hpa = h.get(&["hpa", "inference", "-n", "default"]);
        let ready = h.get(&["deployment", "inference", "-n", "default"])["status"]["readyReplicas"]
            .as_i64()
            .unwrap_or(0);
        let s = &hpa["status"];
        self.samples.push(Sample {
            t: self.started.elapsed().as_secs_f64(),
            value: s["currentMetrics"][0]["external"]["current"]["value"]
                .as_str()
                // A Kubernetes quantity as the HPA status writes it (`2`, `1500m`, ...).
                .and_then(|q| kscale::quantity::parse(q).ok()),
            current: s["currentReplicas"].as_i64().unwrap_or(-1),
            desired: s["desiredReplicas"].as_i64().unwrap_or(-1),
            ready,
        });
    }

    /// The observed controller syncs: samples whose status differs from the one before.
    pub fn syncs(&self) -> Vec<Sample> {
        let mut out: Vec<Sample> = Vec::new();
        for s in &self.samples {
            let same = out.last().is_some_and(|p| {
                p.value == s.value && p.current == s.current && p.desired == s.desired
            });
            if !same && s.value.is_some() && s.current > 0 {
                out.push(s.clone());
            }
        }
        out
    }
}

/// Moves each observed sync back onto the controller's sync grid (`period` apart): a sample sees
/// a sync up to one poll (plus a kubectl call) late, and that lateness is enough to move a
/// recommendation in or out of a stabilization window. The grid's phase is the offset with the
/// least total lateness (a sum, so the first sample, which shows a status older than the trace,
/// does not drag it).
pub fn snap(syncs: &[Sample], period: f64) -> Vec<Sample> {
    let offsets: Vec<f64> = syncs.iter().map(|s| s.t.rem_euclid(period)).collect();
    let lateness = |phase: f64| {
        offsets
            .iter()
            .map(|o| (o - phase).rem_euclid(period))
            .sum::<f64>()
    };
    let Some(phase) = offsets
        .iter()
        .copied()
        .min_by(|a, b| lateness(*a).total_cmp(&lateness(*b)))
    else {
        return Vec::new();
    };
    syncs
        .iter()
        .map(|s| Sample {
            t: s.t - (s.t - phase).rem_euclid(period),
            ..s.clone()
        })
        .collect()
}

/// One observed sync with kscale's decision next to the controller's.
#[derive(Debug, Clone)]
pub struct Compared {
    /// The sync.
    pub sync: Sample,
    /// What [`Autoscaler::decide`] proposes for it.
    pub kscale: i64,
}

/// Replays the observed syncs through kscale's HPA with the settings of these tests.
pub fn replay(syncs: &[Sample], hpa_downscale_stabilization_seconds: u32) -> Vec<Compared> {
    let cfg = Config::load(&Layers {
        sets: SETS
            .iter()
            .filter_map(|s| s.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    })
    .expect("the test settings load");
    let mut settings = HpaSettings::from(&cfg.hpa);
    settings.downscale_stabilization_seconds = hpa_downscale_stabilization_seconds;
    let mut hpa = Autoscaler::new(settings);
    syncs
        .iter()
        .map(|s| {
            let n = u32::try_from(s.current).unwrap_or(0);
            let decision = hpa.decide(
                s.t,
                &SyncInputs {
                    spec_replicas: n,
                    status_replicas: n,
                    ready_replicas: u32::try_from(s.ready.min(s.current)).unwrap_or(0),
                    metrics: vec![MetricInput {
                        target: MetricTarget::ExternalValue(cfg.metric.target),
                        reading: MetricReading::External(vec![s.value.unwrap_or(0.0)]),
                    }],
                },
            );
            Compared {
                sync: s.clone(),
                kscale: i64::from(decision.desired_replicas),
            }
        })
        .collect()
}

/// The comparison as CSV (one row per observed sync).
pub fn to_csv(rows: &[Compared]) -> String {
    let mut out = String::from(
        "t_seconds,metric_value,current_replicas,ready_replicas,controller_desired,kscale_desired\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{:.1},{},{},{},{},{}\n",
            r.sync.t,
            r.sync.value.unwrap_or(f64::NAN),
            r.sync.current,
            r.sync.ready,
            r.sync.desired,
            r.kscale
        ));
    }
    out
}

#[test]
fn late_observations_snap_back_onto_the_sync_grid() {
    let at = |t: f64| Sample {
        t,
        value: Some(1.0),
        current: 1,
        desired: 1,
        ready: 1,
    };
    // The first sample shows a status from before the trace: it must not move the grid.
    let snapped: Vec<f64> = snap(&[at(0.3), at(2.3), at(7.9), at(12.2), at(17.6)], 5.0)
        .iter()
        .map(|s| s.t)
        .collect();
    let want = [-2.8, 2.2, 7.2, 12.2, 17.2];
    for (got, want) in snapped.iter().zip(want) {
        assert!((got - want).abs() < 1e-9, "{snapped:?}");
    }
}
