//! The six staged checks of `kscale metrics`, each proving one link of
//! server → Prometheus → prometheus-adapter → external metrics API → HPA.
//!
//! This module holds the results and the driver; `cluster_side` has stages 1-3 (pods, scrape,
//! the adapter's query in Prometheus), `api_side` stages 4-6 (APIService, external metrics API,
//! HPA), `api` the bounded raw GETs through the API server, `hpa` the reading of an HPA's status.

use serde::Serialize;

use crate::config::Config;
use crate::render::AdapterRule;
use crate::timeline::PodSample;

/// Name of the APIService prometheus-adapter registers for external metrics.
pub use crate::kubeapi::EXTERNAL_METRICS_APISERVICE as EXTERNAL_APISERVICE;

mod api;
mod api_side;
mod cluster_side;
mod hpa;

pub use api::GetError;
pub use hpa::HpaView;

/// Outcome of one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageResult {
    /// 1 to 6.
    pub stage: u8,
    /// What the stage proves.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What it saw.
    pub seen: String,
    /// The number it saw, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// On failure: the likely cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// On failure: how to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl StageResult {
    fn pass(stage: u8, name: &str, seen: String, value: Option<f64>) -> Self {
        Self {
            stage,
            name: name.into(),
            passed: true,
            seen,
            value,
            cause: None,
            fix: None,
        }
    }

    fn fail(stage: u8, name: &str, seen: String, cause: String, fix: impl Into<String>) -> Self {
        Self {
            stage,
            name: name.into(),
            passed: false,
            seen,
            value: None,
            cause: Some(cause),
            fix: Some(fix.into()),
        }
    }
}

/// The hook for "what the HPA should decide next": given what stage 6 saw of the HPA, the items
/// the external metrics API served in stage 5 (the HPA sums them), and the number of ready pods,
/// the replica count kube-controller-manager would propose (`crate::hpa`'s
/// `external_value_replicas` / `external_average_value_replicas`). `None` means no prediction;
/// stage 6 shows a prediction that differs from `status.desiredReplicas`.
pub type DecisionHook = fn(
    view: &HpaView,
    external_values: Option<&[f64]>,
    ready_pods: u32,
    cfg: &Config,
) -> Option<u32>;

/// The default hook: no prediction.
pub fn no_prediction(_: &HpaView, _: Option<&[f64]>, _: u32, _: &Config) -> Option<u32> {
    None
}

/// Everything the checks need.
pub struct Checker<'a> {
    /// Client to the API server.
    pub client: kube::Client,
    /// The configuration that was deployed.
    pub cfg: &'a Config,
    /// The adapter rule that was deployed.
    pub rule: AdapterRule,
    /// The scrape job's name.
    pub job: String,
    /// Predicts the HPA's next decision.
    pub decide: DecisionHook,
}

/// What one full pass of the checks found.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    /// The six results in order.
    pub stages: Vec<StageResult>,
    /// Per-pod gauges read in stage 1.
    pub pods: Vec<PodSample>,
    /// The HPA as stage 6 saw it.
    pub hpa: Option<HpaView>,
}

impl Checker<'_> {
    fn ns(&self) -> &str {
        &self.cfg.app.namespace
    }

    /// Runs the six stages once.
    pub async fn run_once(&self) -> Pass {
        let mut pass = Pass::default();
        let (s1, ready) = self.stage1_pods(&mut pass.pods).await;
        pass.stages.push(s1);
        pass.stages.push(self.stage2_scrape(&ready).await);
        pass.stages.push(self.stage3_query().await);
        pass.stages.push(self.stage4_apiservice().await);
        let (s5, external) = self.stage5_external().await;
        pass.stages.push(s5);
        let (s6, hpa) = self
            .stage6_hpa(ready.len() as u32, external.as_deref())
            .await;
        pass.stages.push(s6);
        pass.hpa = hpa;
        pass
    }
}
