//! Stage 6's second opinion: the HPA's replica calculation (`crate::hpa`) run on the metric value
//! kscale itself read.

use crate::config::Config;
use crate::hpa::{self, HpaSettings};

use super::HpaView;

/// What the metric alone proposes, clamped to min/max: the HPA's calculation on the value kscale
/// read. The HPA's own `desiredReplicas` can lag it on purpose (stabilization windows, rate
/// policies), so a difference is reported as information, not as a failure.
pub fn metric_proposal(
    view: &HpaView,
    values: Option<&[f64]>,
    ready_pods: u32,
    cfg: &Config,
) -> Option<u32> {
    let values = values?;
    let target = view.target?;
    let tol = HpaSettings::from(&cfg.hpa).tolerances();
    let proposal = match view.target_type.as_str() {
        "Value" => {
            hpa::external_value_replicas(view.current_replicas, ready_pods, values, target, tol)
        }
        "AverageValue" => {
            hpa::external_average_value_replicas(view.current_replicas, values, target, tol)
        }
        _ => return None,
    }
    .ok()?;
    let replicas = u32::try_from(proposal.replicas.max(0)).unwrap_or(0);
    Some(replicas.clamp(view.min_replicas, view.max_replicas.max(view.min_replicas)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(target_type: &str, current: u32, target: f64) -> HpaView {
        HpaView {
            current_replicas: current,
            desired_replicas: current,
            metric_value: None,
            target: Some(target),
            target_type: target_type.into(),
            min_replicas: 1,
            max_replicas: 10,
            scaling_active: None,
            expected_desired_replicas: None,
        }
    }

    #[test]
    fn value_target_scales_ready_pods_by_the_ratio() {
        // 15 s against a 12 s target on 2 ready pods: ceil(2 * 1.25) = 3.
        let cfg = Config::default();
        assert_eq!(
            metric_proposal(&view("Value", 2, 12.0), Some(&[15.0]), 2, &cfg),
            Some(3)
        );
        // Inside the 10 % tolerance nothing changes.
        assert_eq!(
            metric_proposal(&view("Value", 2, 12.0), Some(&[12.5]), 2, &cfg),
            Some(2)
        );
        // Idle: clamped to minReplicas.
        assert_eq!(
            metric_proposal(&view("Value", 4, 12.0), Some(&[0.0]), 4, &cfg),
            Some(1)
        );
        assert_eq!(
            metric_proposal(&view("Value", 4, 12.0), None, 4, &cfg),
            None
        );
    }

    #[test]
    fn average_value_target_divides_the_total_by_the_per_pod_target() {
        let cfg = Config::defaults_for(crate::config::MetricProfile::Concurrency);
        assert_eq!(
            metric_proposal(&view("AverageValue", 2, 1.0), Some(&[7.0]), 2, &cfg),
            Some(7)
        );
        assert_eq!(
            metric_proposal(&view("AverageValue", 2, 1.0), Some(&[40.0]), 2, &cfg),
            Some(10)
        );
    }
}
