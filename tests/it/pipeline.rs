//! The metric pipeline proven with real components: real `kscale-server` processes, a real
//! Prometheus running the scrape job kscale renders, and the exact adapter query kscale renders,
//! substituted as prometheus-adapter substitutes it for a namespaced external metric.

use std::time::Duration;

use anyhow::{Context as _, bail};
use kscale::config::{Config, MetricProfile};

use crate::support::{Load, Pipeline, PodSpec, adapter_query_for, poll};

/// Inference time of every server, in seconds.
const T: f64 = 1.0;
const POLL: Duration = Duration::from_millis(250);
const LOAD_MAX: Duration = Duration::from_secs(240);

fn test_config(profile: MetricProfile) -> Config {
    let mut cfg = Config::default();
    cfg.metric.profile = profile;
    cfg.metric.scrape_interval_seconds = 1;
    cfg.metric.rate_window_seconds = 8;
    cfg
}

/// Three pods of the app in `default`, one in `other` (it must not leak into `default`'s value),
/// and two pods the job's relabelling must drop (another app; a port not named `http`).
fn pods() -> Vec<PodSpec> {
    let mut batch = PodSpec::new("default", "batch-0", T);
    batch.app = "batch".into();
    let mut wrong_port = PodSpec::new("default", "inference-sidecar", T);
    wrong_port.port_name = "metrics".into();
    vec![
        PodSpec::new("default", "inference-0", T),
        PodSpec::new("default", "inference-1", T),
        PodSpec::new("default", "inference-2", T),
        PodSpec::new("other", "inference-x", T),
        batch,
        wrong_port,
    ]
}

/// Evaluates `promql` and insists on exactly one finite number, as the HPA needs.
async fn one_value(p: &Pipeline, promql: &str) -> anyhow::Result<f64> {
    let r = p.prometheus.query(promql).await?;
    r.single_finite()
        .with_context(|| format!("{promql} gave {:?}", r.samples))
}

/// Polls until `accept(value)`; every observation on the way must already be one finite number
/// no larger than `ceiling` (a leak from another namespace or a second series would exceed it).
async fn settle(
    p: &Pipeline,
    promql: &str,
    within: Duration,
    ceiling: f64,
    accept: impl Fn(f64) -> bool,
) -> f64 {
    let seen = std::cell::RefCell::new(Vec::new());
    let r = poll(within, POLL, || {
        let seen = &seen;
        let accept = &accept;
        async move {
            let v = one_value(p, promql).await?;
            seen.borrow_mut().push(v);
            if v > ceiling {
                // Not retryable: report at once.
                return Ok(Err(v));
            }
            if accept(v) {
                Ok(Ok(v))
            } else {
                bail!("value {v} not there yet")
            }
        }
    })
    .await;
    let seen = seen.into_inner();
    match r {
        Ok(Ok(v)) => v,
        Ok(Err(v)) => panic!("{promql} = {v}, above the ceiling {ceiling}; values seen: {seen:?}"),
        Err(e) => panic!(
            "{e:#}; values seen: {seen:?}\nPrometheus log:\n{}",
            p.prometheus.log()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mean_duration_query_is_one_finite_series_that_grows_with_queue_wait() {
    let cfg = test_config(MetricProfile::MeanDuration);
    let scrape = kscale::metrics::rendered_scrape_job(&cfg).expect("scrape job renders");
    let Some(p) = Pipeline::start_if_available(&scrape, pods()).await else {
        return;
    };
    let q = adapter_query_for(&cfg, "default");
    let q_other = adapter_query_for(&cfg, "other");

    let pods_up = p
        .prometheus
        .query("count(up{job=\"kscale-inference\",namespace=\"default\"} == 1)")
        .await
        .unwrap();
    assert_eq!(
        pods_up.single_finite(),
        Ok(3.0),
        "three pods scraped in default"
    );

    // Another namespace, overloaded throughout: 4 clients on one worker wait about 4 T.
    let _other = Load::start(&p.addrs_in("other"), 4, LOAD_MAX);
    let other = settle(&p, &q_other, Duration::from_secs(40), 4.5 * T, |v| {
        v >= 3.5 * T
    })
    .await;
    eprintln!("other namespace, 4 clients on 1 worker: {other:.3} s");

    // No traffic in default: a finite 0 thanks to the guard, where the bare ratio is NaN (0/0).
    let idle = settle(&p, &q, Duration::from_secs(10), 0.0, |_| true).await;
    assert_eq!(idle, 0.0, "idle value in default");
    let bare = q
        .strip_suffix(" > 0 or vector(0)")
        .expect("the rendered mean-duration query ends with the NaN guard");
    let bare = p.prometheus.query(bare).await.unwrap();
    assert!(
        bare.samples.len() == 1 && bare.samples[0].value.is_nan(),
        "without the guard the idle ratio is NaN (the pitfall the guard exists for): {:?}",
        bare.samples
    );

    // Within capacity: one client per pod, one worker each: about T, no queue wait.
    let default_pods = p.addrs_in("default");
    let one_each = Load::start(&default_pods[..3], 1, LOAD_MAX);
    let within = settle(&p, &q, Duration::from_secs(40), 1.5 * T, |v| {
        (0.9 * T..=1.2 * T).contains(&v)
    })
    .await;
    eprintln!("within capacity (1 client per pod): {within:.3} s for T = {T} s");

    // Overload: three clients per pod: each request waits for the two ahead of it, about 3 T.
    let two_more = Load::start(&default_pods[..3], 2, LOAD_MAX);
    let over = settle(&p, &q, Duration::from_secs(45), 3.5 * T, |v| v >= 2.8 * T).await;
    eprintln!("overload (3 clients per pod): {over:.3} s for T = {T} s");
    assert!(
        over > 2.0 * within,
        "the value grows with queue wait: {within} -> {over}"
    );
    assert!(one_each.ok.load(std::sync::atomic::Ordering::Relaxed) > 0);
    drop(two_more);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_query_counts_in_flight_plus_queued_in_one_series() {
    let cfg = test_config(MetricProfile::Concurrency);
    let scrape = kscale::metrics::rendered_scrape_job(&cfg).expect("scrape job renders");
    let Some(p) = Pipeline::start_if_available(&scrape, pods()).await else {
        return;
    };
    let q = adapter_query_for(&cfg, "default");
    let q_other = adapter_query_for(&cfg, "other");

    // Another namespace with 4 requests in the system (1 in inference, 3 queued).
    let _other = Load::start(&p.addrs_in("other"), 4, LOAD_MAX);
    let other = settle(&p, &q_other, Duration::from_secs(30), 4.0, |v| v == 4.0).await;
    eprintln!("other namespace: {other} requests in flight + queued");

    // Idle default: a finite 0, one series.
    let idle = settle(&p, &q, Duration::from_secs(10), 0.0, |_| true).await;
    assert_eq!(idle, 0.0);

    // Two clients per pod on three pods: 3 in inference + 3 queued = 6, never more.
    let default_pods = p.addrs_in("default");
    let _load = Load::start(&default_pods[..3], 2, LOAD_MAX);
    let busy = settle(&p, &q, Duration::from_secs(30), 6.0, |v| v == 6.0).await;
    assert_eq!(busy, 6.0);
    // And per pod, as an AverageValue target divides it: 2.
    let per_pod = p
        .prometheus
        .query("inference_requests_in_flight{job=\"kscale-inference\",namespace=\"default\"} + inference_queue_depth{job=\"kscale-inference\",namespace=\"default\"}")
        .await
        .unwrap();
    assert_eq!(per_pod.samples.len(), 3, "{:?}", per_pod.samples);
}
