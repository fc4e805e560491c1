//! Table tests: every case names the Kubernetes rule it checks (file and function of
//! `pkg/controller/podautoscaler` or `pkg/apis/autoscaling/v2`).

use super::*;
use crate::config::{HpaConfig, PolicyKind, ScalingPolicy, SelectPolicy};
use crate::quantity::{quantity_milli, target_milli};

/// (rule, spec replicas, ready replicas, series values, target, tolerances, want replicas, want value)
type ExternalValueCase = (
    &'static str,
    u32,
    u32,
    &'static [f64],
    f64,
    Tolerances,
    i32,
    f64,
);
/// (rule, status replicas, series values, target per pod, want replicas, want average)
type AverageValueCase = (&'static str, u32, &'static [f64], f64, i32, f64);

const TOL: Tolerances = Tolerances {
    scale_down: 0.1,
    scale_up: 0.1,
};

fn running(v: f64) -> PodMetric {
    PodMetric {
        phase: PodPhase::Running,
        deleting: false,
        value: Some(v),
    }
}

fn pending() -> PodMetric {
    PodMetric {
        phase: PodPhase::Pending,
        deleting: false,
        value: None,
    }
}

fn no_sample() -> PodMetric {
    PodMetric {
        phase: PodPhase::Running,
        deleting: false,
        value: None,
    }
}

#[test]
fn external_value_table() {
    // (rule, spec replicas, ready replicas, series values, target, tolerances, want replicas, want status value)
    let up_half = Tolerances {
        scale_down: 0.05,
        scale_up: 0.5,
    };
    let cases: &[ExternalValueCase] = &[
        (
            "replica_calculator.go getUsageRatioReplicaCount: inside the tolerance keeps spec replicas",
            3,
            3,
            &[13.0],
            12.0,
            TOL,
            3,
            13.0,
        ),
        (
            "replica_calculator.go getUsageRatioReplicaCount: ratio exactly 1+tol is within (<=)",
            3,
            3,
            &[13.2],
            12.0,
            TOL,
            3,
            13.2,
        ),
        (
            "replica_calculator.go getUsageRatioReplicaCount: just above 1+tol scales with ceil(ratio*ready)",
            3,
            3,
            &[13.3],
            12.0,
            TOL,
            4,
            13.3,
        ),
        (
            "replica_calculator.go getUsageRatioReplicaCount: ratio exactly 1-tol is within (>=)",
            5,
            5,
            &[10.8],
            12.0,
            TOL,
            5,
            10.8,
        ),
        (
            "replica_calculator.go GetExternalMetricReplicas: Value target uses ready pods, not spec replicas",
            4,
            2,
            &[24.0],
            12.0,
            TOL,
            4,
            24.0,
        ),
        (
            "replica_calculator.go GetExternalMetricReplicas: Value target with 1 ready of 3 scales down from ready count",
            3,
            1,
            &[6.0],
            12.0,
            TOL,
            1,
            6.0,
        ),
        (
            "replica_calculator.go GetExternalMetricReplicas: all returned series are summed",
            2,
            2,
            &[10.0, 8.0, 6.0],
            12.0,
            TOL,
            4,
            24.0,
        ),
        (
            "replica_calculator.go getUsageRatioReplicaCount: spec replicas 0 gives ceil(ratio) without tolerance",
            0,
            0,
            &[12.5],
            12.0,
            TOL,
            2,
            12.5,
        ),
        (
            "replica_calculator.go Tolerances.isWithin: per-direction tolerance lets +40% pass",
            2,
            2,
            &[16.8],
            12.0,
            up_half,
            2,
            16.8,
        ),
        (
            "replica_calculator.go Tolerances.isWithin: per-direction tolerance, -6% is outside a 5% down band",
            10,
            10,
            &[11.28],
            12.0,
            up_half,
            10,
            11.28,
        ),
        (
            "prometheus-adapter metric_converter.go: int64(v*1000) truncates 13.2009 to 13200m, within tolerance",
            3,
            3,
            &[13.2009],
            12.0,
            TOL,
            3,
            13.2,
        ),
        (
            "horizontal.go: a metric of 0 (the NaN-guarded idle query) proposes 0",
            3,
            3,
            &[0.0],
            12.0,
            TOL,
            0,
            0.0,
        ),
    ];
    for (rule, spec, ready, values, target, tol, want, want_value) in cases {
        let p = external_value_replicas(*spec, *ready, values, *target, *tol)
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(p.replicas, *want, "{rule}: {p:?}");
        assert!((p.usage() - want_value).abs() < 1e-9, "{rule}: {p:?}");
    }
    // ceil(0.94 * 10) = 10: the band edge is not a promise of a scale-down.
    assert_eq!(
        external_value_replicas(10, 10, &[11.28], 12.0, TOL)
            .unwrap()
            .replicas,
        10,
        "replica_calculator.go: 11.28/12 = 0.94 is within 10%"
    );
}

#[test]
fn external_average_value_table() {
    // (rule, status replicas, series values, target per pod, want replicas, want status average)
    let cases: &[AverageValueCase] = &[
        (
            "replica_calculator.go GetExternalPerPodMetricReplicas: desired = ceil(sum/target)",
            1,
            &[20.0],
            4.0,
            5,
            20.0,
        ),
        (
            "replica_calculator.go GetExternalPerPodMetricReplicas: tolerance on sum/(target*statusReplicas), 18..22 over 5 pods holds",
            5,
            &[18.0],
            4.0,
            5,
            3.6,
        ),
        (
            "replica_calculator.go GetExternalPerPodMetricReplicas: tolerance upper edge 22/20 = 1.1 holds",
            5,
            &[22.0],
            4.0,
            5,
            4.4,
        ),
        (
            "replica_calculator.go GetExternalPerPodMetricReplicas: 23/20 leaves the band, ceil(23/4) = 6",
            5,
            &[23.0],
            4.0,
            6,
            4.6,
        ),
        (
            "replica_calculator.go GetExternalPerPodMetricReplicas: scale down to ceil(sum/target)",
            8,
            &[3.0],
            1.0,
            3,
            0.375,
        ),
        (
            "replica_calculator.go GetExternalPerPodMetricReplicas: series are summed",
            2,
            &[3.0, 5.0],
            1.0,
            8,
            4.0,
        ),
        (
            "replica_calculator.go GetExternalPerPodMetricReplicas: status average is ceil(usage/statusReplicas) in milli",
            3,
            &[1.0],
            1.0,
            1,
            0.334,
        ),
        (
            "replica_calculator.go GetExternalPerPodMetricReplicas: idle (0) proposes 0, clamped later by minReplicas",
            4,
            &[0.0],
            1.0,
            0,
            0.0,
        ),
    ];
    for (rule, status, values, target, want, want_avg) in cases {
        let p = external_average_value_replicas(*status, values, *target, TOL)
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(p.replicas, *want, "{rule}: {p:?}");
        assert!((p.usage() - want_avg).abs() < 1e-9, "{rule}: {p:?}");
    }
}

#[test]
fn pods_average_value_table() {
    // (rule, current replicas, pods, target, want replicas)
    let cases: Vec<(&str, u32, Vec<PodMetric>, f64, i32)> = vec![
        (
            "replica_calculator.go calcPlainMetricReplicas: ceil(avg/target * ready)",
            2,
            vec![running(4.0), running(2.0)],
            1.0,
            6,
        ),
        (
            "replica_calculator.go calcPlainMetricReplicas: within tolerance keeps current",
            2,
            vec![running(1.05), running(1.0)],
            1.0,
            2,
        ),
        (
            "replica_calculator.go calcPlainMetricReplicas: missing pods count as the target on a scale-down, damping it to ceil(0.833*3) = 3",
            3,
            vec![running(0.5), no_sample(), no_sample()],
            1.0,
            3,
        ),
        (
            "replica_calculator.go calcPlainMetricReplicas: missing pods count as the target on a scale-down, still down",
            4,
            vec![running(0.0), running(0.0), running(0.0), no_sample()],
            1.0,
            1,
        ),
        (
            "replica_calculator.go calcPlainMetricReplicas: missing pods count as 0 on a scale-up",
            2,
            vec![running(4.0), no_sample()],
            1.0,
            4,
        ),
        (
            "replica_calculator.go groupPods: Pending pods are unready and count as 0 on a scale-up",
            3,
            vec![running(3.0), pending(), pending()],
            1.0,
            3,
        ),
        (
            "replica_calculator.go groupPods: Pending pods do not count on a scale-down",
            3,
            vec![running(0.2), pending(), pending()],
            1.0,
            1,
        ),
        (
            "replica_calculator.go groupPods: deleting and Failed pods are ignored",
            2,
            vec![
                running(2.0),
                PodMetric {
                    phase: PodPhase::Running,
                    deleting: true,
                    value: Some(9.0),
                },
                PodMetric {
                    phase: PodPhase::Failed,
                    deleting: false,
                    value: Some(9.0),
                },
            ],
            1.0,
            2,
        ),
    ];
    for (rule, current, pods, target, want) in &cases {
        let p = pods_average_value_replicas(*current, pods, *target, TOL)
            .unwrap_or_else(|e| panic!("{rule}: {e}"));
        assert_eq!(p.replicas, *want, "{rule}: {p:?}");
    }
    assert_eq!(
        pods_average_value_replicas(2, &[], 1.0, TOL),
        Err(MetricError::NoPods),
        "replica_calculator.go calcPlainMetricReplicas: no pods is an error"
    );
    assert_eq!(
        pods_average_value_replicas(2, &[no_sample(), pending()], 1.0, TOL),
        Err(MetricError::NoPodMetrics),
        "replica_calculator.go calcPlainMetricReplicas: no samples is an error"
    );
}

#[test]
fn metric_errors_and_quantities() {
    assert_eq!(
        external_value_replicas(2, 2, &[], 12.0, TOL),
        Err(MetricError::EmptyExternal),
        "metrics/rest_metrics_client.go GetExternalMetric: items: [] is an error, not 0"
    );
    assert_eq!(
        external_average_value_replicas(2, &[], 1.0, TOL),
        Err(MetricError::EmptyExternal)
    );
    assert!(matches!(
        external_value_replicas(2, 2, &[1.0], 0.0, TOL),
        Err(MetricError::BadTarget(_))
    ));
    // resource.Quantity MilliValue rounds up; decimal 0.1 is exactly 100m.
    assert_eq!(target_milli(0.1), 100);
    assert_eq!(target_milli(12.0), 12000);
    assert_eq!(target_milli(0.0005), 1);
    assert_eq!(quantity_milli(1.9999), 1999);
    assert_eq!(quantity_milli(f64::NAN), 0);
}

fn ext_value(spec: u32, ready: u32, value: f64, target: f64) -> SyncInputs {
    SyncInputs {
        spec_replicas: spec,
        status_replicas: spec,
        ready_replicas: ready,
        metrics: vec![MetricInput {
            target: MetricTarget::ExternalValue(target),
            reading: MetricReading::External(vec![value]),
        }],
    }
}

fn ext_avg(spec: u32, total: f64, target: f64) -> SyncInputs {
    SyncInputs {
        spec_replicas: spec,
        status_replicas: spec,
        ready_replicas: spec,
        metrics: vec![MetricInput {
            target: MetricTarget::ExternalAverageValue(target),
            reading: MetricReading::External(vec![total]),
        }],
    }
}

fn with_behavior(min: u32, max: u32, behavior: Behavior) -> HpaSettings {
    HpaSettings {
        min_replicas: min,
        max_replicas: max,
        behavior: Some(behavior),
        ..HpaSettings::default()
    }
}

fn rules(window: u32, select: SelectPolicy, policies: &[(PolicyKind, u32, u32)]) -> Rules {
    Rules {
        stabilization_window_seconds: Some(window),
        select_policy: select,
        policies: policies
            .iter()
            .map(|&(kind, value, period_seconds)| ScalingPolicy {
                kind,
                value,
                period_seconds,
            })
            .collect(),
        tolerance: None,
    }
}

/// Runs syncs `(t, inputs)` in order, feeding each decision's replicas into the next sync when the
/// caller passes `None` as the spec count, and returns the desired counts.
fn run(a: &mut Autoscaler, steps: &[(f64, f64)], start: u32, target: f64, avg: bool) -> Vec<u32> {
    let mut current = start;
    let mut out = Vec::new();
    for &(t, value) in steps {
        let inputs = if avg {
            ext_avg(current, value, target)
        } else {
            ext_value(current, current, value, target)
        };
        let d = a.decide(t, &inputs);
        current = d.desired_replicas;
        out.push(current);
    }
    out
}

#[test]
fn default_behavior_scale_up_policies() {
    // defaults.go: scaleUp = Max of {Pods 4, Percent 100} per 15 s, no stabilization.
    let mut a = Autoscaler::new(with_behavior(1, 100, Behavior::default()));
    let got = run(
        &mut a,
        &[
            (0.0, 40.0),
            (15.0, 40.0),
            (30.0, 40.0),
            (45.0, 40.0),
            (60.0, 40.0),
        ],
        1,
        1.0,
        true,
    );
    assert_eq!(
        got,
        vec![5, 10, 20, 40, 40],
        "horizontal.go calculateScaleUpLimitWithScalingRules: max(start+4, start*2) per 15 s period"
    );
}

#[test]
fn scale_events_inside_the_period_limit_the_next_step() {
    // horizontal.go getReplicasChangePerPeriod: events strictly after now-period count.
    let mut a = Autoscaler::new(with_behavior(1, 100, Behavior::default()));
    let got = run(
        &mut a,
        &[(0.0, 40.0), (10.0, 40.0), (14.9, 40.0), (15.0, 40.0)],
        1,
        1.0,
        true,
    );
    assert_eq!(got, vec![5, 5, 5, 10]);
    let d = a.decide(16.0, &ext_avg(10, 40.0, 1.0));
    assert_eq!(d.desired_replicas, 10);
    let limited = d.scaling_limited.expect("computed");
    assert!(limited.status);
    assert_eq!(
        limited.reason, "ScaleUpLimit",
        "horizontal.go convertDesiredReplicasWithBehaviorRate"
    );
}

#[test]
fn select_policy_min_and_disabled() {
    let min_policy = Behavior {
        scale_up: rules(
            0,
            SelectPolicy::Min,
            &[(PolicyKind::Pods, 4, 15), (PolicyKind::Percent, 100, 15)],
        ),
        ..Behavior::default()
    };
    let mut a = Autoscaler::new(with_behavior(1, 100, min_policy));
    assert_eq!(
        run(
            &mut a,
            &[(0.0, 40.0), (15.0, 40.0), (30.0, 40.0)],
            1,
            1.0,
            true
        ),
        vec![2, 4, 8],
        "horizontal.go calculateScaleUpLimitWithScalingRules: selectPolicy Min takes the smaller change"
    );
    let disabled = Behavior {
        scale_down: rules(0, SelectPolicy::Disabled, &[(PolicyKind::Percent, 100, 15)]),
        ..Behavior::default()
    };
    let mut a = Autoscaler::new(with_behavior(1, 100, disabled));
    assert_eq!(
        run(
            &mut a,
            &[(0.0, 1.0), (15.0, 1.0), (30.0, 1.0)],
            8,
            1.0,
            true
        ),
        vec![8, 8, 8],
        "horizontal.go calculateScaleDownLimitWithBehaviors: selectPolicy Disabled never scales down"
    );
}

#[test]
fn scale_down_policies() {
    // Percent down truncates: int32(start * (1 - v/100)).
    let half = Behavior {
        scale_down: rules(0, SelectPolicy::Max, &[(PolicyKind::Percent, 50, 15)]),
        ..Behavior::default()
    };
    let mut a = Autoscaler::new(with_behavior(1, 100, half));
    assert_eq!(
        run(
            &mut a,
            &[(0.0, 0.0), (15.0, 0.0), (30.0, 0.0), (45.0, 0.0)],
            10,
            1.0,
            true
        ),
        vec![5, 2, 1, 1],
        "horizontal.go calculateScaleDownLimitWithBehaviors: Percent 50 → 10, 5, int32(2.5) = 2, min 1"
    );
    let one_per_minute = Behavior {
        scale_down: rules(0, SelectPolicy::Max, &[(PolicyKind::Pods, 1, 60)]),
        ..Behavior::default()
    };
    let mut a = Autoscaler::new(with_behavior(1, 100, one_per_minute));
    assert_eq!(
        run(
            &mut a,
            &[(0.0, 0.0), (15.0, 0.0), (59.0, 0.0), (61.0, 0.0)],
            10,
            1.0,
            true
        ),
        vec![9, 9, 9, 8],
        "horizontal.go getReplicasChangePerPeriod: one pod per 60 s period"
    );
}

#[test]
fn stabilization_windows() {
    // The original's HPA: scale-up window 240 s; the lowest recommendation in the window wins.
    let settings = HpaSettings::from(&HpaConfig::default());
    let mut a = Autoscaler::new(settings);
    let mut current = 1;
    let mut first_up = None;
    for k in 0..20 {
        let t = f64::from(k) * 15.0;
        // Mean duration 20 s against target 12 with 1 ready pod: ceil(1.67) = 2.
        let d = a.decide(t, &ext_value(current, current, 20.0, 12.0));
        if d.desired_replicas > current && first_up.is_none() {
            first_up = Some(t);
        }
        if k > 0 && first_up.is_none() {
            assert_eq!(d.able_to_scale.reason, "ScaleUpStabilized", "at {t}");
        }
        current = d.desired_replicas;
    }
    assert_eq!(
        first_up,
        Some(240.0),
        "horizontal.go stabilizeRecommendationWithBehaviors: the recommendations of t=0 (the seed 1) count \
         only while After(now-240), so the first sync that scales up is at 240 s"
    );

    // Scale-down window: the highest recommendation of the last 300 s holds.
    let mut a = Autoscaler::new(with_behavior(1, 100, Behavior::default()));
    let mut current = 8;
    let mut down_at = None;
    for k in 0..30 {
        let t = f64::from(k) * 15.0;
        let d = a.decide(t, &ext_avg(current, 1.0, 1.0));
        if d.desired_replicas < current && down_at.is_none() {
            down_at = Some(t);
        }
        current = d.desired_replicas;
    }
    assert_eq!(
        down_at,
        Some(300.0),
        "horizontal.go stabilizeRecommendationWithBehaviors: the seed (8) leaves the 300 s down window after 300 s"
    );
    assert_eq!(current, 1);
}

#[test]
fn missing_metric_never_scales_down() {
    let mut a = Autoscaler::new(with_behavior(1, 10, Behavior::default()));
    let inputs = SyncInputs {
        spec_replicas: 4,
        status_replicas: 4,
        ready_replicas: 4,
        metrics: vec![MetricInput {
            target: MetricTarget::ExternalValue(12.0),
            reading: MetricReading::Unavailable("the server could not find the metric".into()),
        }],
    };
    let d = a.decide(0.0, &inputs);
    assert!(
        !d.rescale,
        "horizontal.go computeReplicasForMetrics: all metrics invalid → no scaling"
    );
    assert_eq!(d.desired_replicas, 4);
    assert!(!d.scaling_active.status);
    assert_eq!(d.scaling_active.reason, "FailedGetExternalMetric");

    // One valid metric says down, another is invalid: hold.
    let two = |valid: f64| SyncInputs {
        spec_replicas: 4,
        status_replicas: 4,
        ready_replicas: 4,
        metrics: vec![
            MetricInput {
                target: MetricTarget::ExternalAverageValue(1.0),
                reading: MetricReading::External(vec![valid]),
            },
            MetricInput {
                target: MetricTarget::ExternalValue(12.0),
                reading: MetricReading::External(vec![]),
            },
        ],
    };
    let mut a = Autoscaler::new(with_behavior(1, 10, Behavior::default()));
    let d = a.decide(0.0, &two(1.0));
    assert!(
        !d.rescale && d.desired_replicas == 4,
        "horizontal.go computeReplicasForMetrics: some invalid and the rest would scale down → no scaling: {d:?}"
    );
    let d = a.decide(15.0, &two(8.0));
    assert_eq!(
        d.desired_replicas, 8,
        "horizontal.go computeReplicasForMetrics: some invalid, the valid ones scale up → scale up"
    );
    assert_eq!(d.metric_values, vec![Some(2.0), None]);
}

#[test]
fn min_max_clamps() {
    let mut a = Autoscaler::new(with_behavior(2, 6, Behavior::default()));
    let d = a.decide(0.0, &ext_avg(9, 9.0, 1.0));
    assert_eq!(
        (d.desired_replicas, d.reason.as_str()),
        (6, "Current number of replicas above Spec.MaxReplicas"),
        "horizontal.go reconcileAutoscaler: current above max goes to max without metrics"
    );
    let d = a.decide(15.0, &ext_avg(1, 1.0, 1.0));
    assert_eq!(
        (d.desired_replicas, d.reason.as_str()),
        (2, "Current number of replicas below Spec.MinReplicas")
    );
    let mut a = Autoscaler::new(with_behavior(2, 6, Behavior::default()));
    let d = a.decide(0.0, &ext_avg(5, 50.0, 1.0));
    let limited = d.scaling_limited.clone().expect("computed");
    assert_eq!(
        (d.desired_replicas, limited.reason),
        (6, "TooManyReplicas"),
        "horizontal.go convertDesiredReplicasWithBehaviorRate: maxReplicas below the rate limit"
    );
    let mut b = Behavior::default();
    b.scale_down.stabilization_window_seconds = Some(0);
    let mut a = Autoscaler::new(with_behavior(2, 6, b));
    let d = a.decide(0.0, &ext_avg(5, 0.0, 1.0));
    assert_eq!(
        (
            d.desired_replicas,
            d.scaling_limited.expect("computed").reason
        ),
        (2, "TooFewReplicas"),
        "horizontal.go convertDesiredReplicasWithBehaviorRate: minReplicas"
    );
}

#[test]
fn legacy_path_without_behavior() {
    let legacy = HpaSettings {
        min_replicas: 1,
        max_replicas: 50,
        behavior: None,
        ..HpaSettings::default()
    };
    let mut a = Autoscaler::new(legacy.clone());
    assert_eq!(
        run(
            &mut a,
            &[(0.0, 40.0), (15.0, 40.0), (30.0, 40.0)],
            1,
            1.0,
            true
        ),
        vec![4, 8, 16],
        "horizontal.go calculateScaleUpLimit: max(2*current, 4) per sync when behavior is nil"
    );
    let mut a = Autoscaler::new(legacy);
    let got = run(
        &mut a,
        &[(0.0, 1.0), (150.0, 1.0), (300.0, 1.0), (301.0, 1.0)],
        6,
        1.0,
        true,
    );
    assert_eq!(
        got,
        vec![6, 6, 6, 1],
        "horizontal.go stabilizeRecommendation: max over the 5 min window; a sample exactly 300 s old is not \
         Before(cutoff) and still counts"
    );
}

#[test]
fn tolerance_settings() {
    let mut b = Behavior::default();
    b.scale_up.tolerance = Some(0.5);
    let s = with_behavior(1, 10, b);
    assert_eq!(
        s.tolerances(),
        Tolerances {
            scale_down: 0.1,
            scale_up: 0.5
        },
        "horizontal.go tolerancesForHpa: behavior tolerance overrides per direction"
    );
    let gated = HpaSettings {
        configurable_tolerance: false,
        ..s.clone()
    };
    assert_eq!(
        gated.tolerances(),
        Tolerances::uniform(0.1),
        "horizontal.go tolerancesForHpa: feature gate off ignores behavior tolerance"
    );
    let mut a = Autoscaler::new(s);
    let d = a.decide(0.0, &ext_avg(4, 5.6, 1.0));
    assert_eq!(
        d.desired_replicas, 4,
        "5.6/4 = 1.4 is inside a 50% up tolerance"
    );
}

#[test]
fn settings_from_config() {
    let s = HpaSettings::from(&HpaConfig::default());
    let b = s.behavior.as_ref().expect("kscale always renders behavior");
    assert_eq!(b.scale_up.stabilization_window_seconds, Some(240));
    assert_eq!(b.scale_down.stabilization_window_seconds, Some(300));
    assert_eq!(b.scale_up.policies[0].value, 10);
    let mut c = HpaConfig::default();
    c.scale_up.policies.clear();
    let s = HpaSettings::from(&c);
    assert_eq!(
        s.behavior.expect("set").scale_up.policies,
        Rules::default_scale_up().policies,
        "defaults.go copyHPAScalingRules: unset policies take the defaults"
    );
}

#[test]
fn first_sync_seeds_history_with_current_replicas() {
    // horizontal.go recordInitialRecommendation: a fresh HPA with a 300 s down window does not drop
    // replicas on its first sync even when the metric says so.
    let mut a = Autoscaler::new(with_behavior(1, 10, Behavior::default()));
    let d = a.decide(0.0, &ext_avg(6, 0.0, 1.0));
    assert_eq!(d.desired_replicas, 6);
    assert_eq!(d.metric_replicas, Some(0));
    assert_eq!(d.stabilized_replicas, Some(6));
    assert_eq!(d.able_to_scale.reason, "ScaleDownStabilized");
}
