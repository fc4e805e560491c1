//! The metric chain of each real inference server kscale has a preset for (vLLM, TGI, Triton,
//! llama.cpp), with real components where this machine can run them: a real Prometheus runs the
//! scrape job kscale renders for the server (unchanged but for discovery, as in `pipeline`), and
//! the adapter's exact rendered query, substituted by `kscale::metrics::adapter_query` as the
//! adapter substitutes it, must return exactly the sum the exposition doubles imply. The servers
//! themselves need GPUs or gigabytes, so each "pod" is an exposition double
//! (`support::exposition_double`): the server's real metric names, types and labels, written
//! from its source and not from kscale's presets.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use kscale::config::servers::ServerKind;
use kscale::config::{Config, MetricProfile};

use crate::support::exposition_double::{DoubleOf, ExpositionDouble, Values};
use crate::support::{
    PodSpec, PrometheusProc, adapter_query_for, needs, poll, prometheus_config_for,
};

const POLL: Duration = Duration::from_millis(250);

/// What the real server does, stated here independently of its preset.
struct Facts {
    server: ServerKind,
    double: DoubleOf,
    /// Name of the container port that serves `/metrics` (Triton: its metrics port 8002).
    metrics_port_name: &'static str,
    /// Every profile the server can feed, and the value each must read from the pods below.
    profiles: &'static [MetricProfile],
}

/// Pod A and B of the app in `default`: waiting 3 + 1 = 4, running 2 + 1 = 3.
const A: Values = Values {
    waiting: 3.0,
    running: 2.0,
    finished: 1000.0,
    seconds: 2000.0,
};
const B: Values = Values {
    waiting: 1.0,
    running: 1.0,
    finished: 500.0,
    seconds: 4000.0,
};
/// The same app in another namespace: must never leak into `default`'s value.
const OTHER_NS: Values = Values {
    waiting: 100.0,
    running: 100.0,
    finished: 1000.0,
    seconds: 1000.0,
};
/// Another app's pod, and the app pod's other port: the job's relabelling drops both.
const DROPPED: Values = Values {
    waiting: 1000.0,
    running: 1000.0,
    finished: 1000.0,
    seconds: 1000.0,
};

const QUEUE: f64 = 4.0;
const CONCURRENCY: f64 = 7.0;
/// Between two scrapes pod A finishes 10 requests in 25 s and pod B 4 in 10 s: 2.5 s each, so
/// the pods' different scrape phases cannot bend the ratio. The other namespace finishes one in
/// 50 s.
const MEAN_SECONDS: f64 = 2.5;

fn config(server: ServerKind, profile: MetricProfile) -> Config {
    let mut cfg = Config::defaults(server, profile);
    cfg.app.model = "test-double".into();
    cfg.metric.scrape_interval_seconds = 1;
    cfg.metric.rate_window_seconds = 8;
    cfg.metric.relist_interval_seconds = 1;
    cfg
}

/// The pods: the app's two in `default`, one in `other`, another app's pod and the app pod's
/// other port (named `metrics` where the server serves metrics on `http`, and the reverse).
fn pods(f: &Facts) -> Vec<(PodSpec, Values)> {
    let pod = |ns: &str, name: &str| {
        let mut p = PodSpec::new(ns, name, 1.0);
        p.port_name = f.metrics_port_name.into();
        p
    };
    let mut batch = pod("default", "batch-0");
    batch.app = "batch".into();
    let mut other_port = pod("default", "inference-a");
    other_port.port_name = if f.metrics_port_name == "http" {
        "metrics".into()
    } else {
        "http".into()
    };
    vec![
        (pod("default", "inference-a"), A),
        (pod("default", "inference-b"), B),
        (pod("other", "inference-x"), OTHER_NS),
        (batch, DROPPED),
        (other_port, DROPPED),
    ]
}

/// The doubles and the real Prometheus scraping them, torn down together.
struct Chain {
    doubles: Vec<(PodSpec, ExpositionDouble)>,
    prometheus: PrometheusProc,
}

impl Chain {
    async fn start(f: &Facts, scrape_job: &str) -> anyhow::Result<Self> {
        let path = f.server.preset().metrics_path;
        let mut doubles = Vec::new();
        for (spec, values) in pods(f) {
            doubles.push((spec, ExpositionDouble::start(f.double, path, values).await?));
        }
        let targets: Vec<(&PodSpec, SocketAddr)> =
            doubles.iter().map(|(s, d)| (s, d.addr)).collect();
        let config = prometheus_config_for(scrape_job, &targets)?;
        let prometheus = PrometheusProc::start(&config).await?;
        let chain = Self {
            doubles,
            prometheus,
        };
        // The three app pods, and no more: the relabelling dropped the other two targets.
        poll(Duration::from_secs(30), POLL, || async {
            let all = chain.prometheus.query("up").await?;
            let up = all.samples.iter().filter(|s| s.value == 1.0).count();
            if up == 3 && all.samples.len() == 3 {
                Ok(())
            } else {
                bail!("targets: {:?}", all.samples)
            }
        })
        .await
        .with_context(|| format!("Prometheus log:\n{}", chain.prometheus.log()))?;
        Ok(chain)
    }

    fn double(&self, pod: &str, port_name: &str) -> &ExpositionDouble {
        self.doubles
            .iter()
            .find(|(s, _)| s.pod == pod && s.port_name == port_name)
            .map(|(_, d)| d)
            .unwrap_or_else(|| panic!("no double for pod {pod}"))
    }

    /// Polls `promql` until it is exactly `want`; every answer on the way must be one finite
    /// number in `allowed` (a leak, a second series or a wrong gauge fails at once).
    async fn settle(&self, promql: &str, want: f64, allowed: &[f64], within: Duration) {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        let seen = std::cell::RefCell::new(Vec::new());
        let r = poll(within, POLL, || async {
            let r = self.prometheus.query(promql).await?;
            let v = r
                .single_finite()
                .map_err(|e| anyhow::anyhow!("{e}: {:?}", r.samples));
            seen.borrow_mut().push(format!("{v:?}"));
            match v {
                Ok(v) if close(v, want) => Ok(Ok(v)),
                Ok(v) if allowed.iter().any(|a| close(v, *a)) => bail!("{v}, not {want} yet"),
                other => Ok(Err(format!("{other:?}"))),
            }
        })
        .await;
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(v)) => panic!(
                "{promql} gave {v}, never allowed (want {want}, allowed on the way {allowed:?}); seen: {:?}",
                seen.into_inner()
            ),
            Err(e) => panic!(
                "{promql}: {e:#}; seen: {:?}\nPrometheus log:\n{}",
                seen.into_inner(),
                self.prometheus.log()
            ),
        }
    }
}

async fn chain(f: Facts) {
    if !needs::needs(
        "the servers' metric chain (a real Prometheus)",
        &[needs::Need::Prometheus],
    ) {
        return;
    }
    let preset = f.server.preset();
    assert_eq!(
        preset.profiles(),
        f.profiles,
        "{}: the preset's profiles differ from what the server exposes",
        f.server
    );
    let started = std::time::Instant::now();
    let scrape = kscale::metrics::rendered_scrape_job(&config(f.server, preset.default_profile))
        .expect("scrape job renders");
    let c = Chain::start(&f, &scrape).await.expect("chain starts");
    for &profile in f.profiles {
        let cfg = config(f.server, profile);
        let rule = kscale::render::adapter_rule(&cfg);
        let q = adapter_query_for(&cfg, "default");
        let q_other = adapter_query_for(&cfg, "other");
        // What the adapter lists: the rule's series, labelled with a namespace for the HPA's.
        let listed = c
            .prometheus
            .query(&rule.series_query)
            .await
            .expect("series query");
        let in_default = listed
            .samples
            .iter()
            .filter(|s| s.labels.get("namespace").map(String::as_str) == Some("default"))
            .count();
        assert_eq!(
            (in_default, listed.samples.len()),
            (2, 3),
            "{} {profile}: the adapter's seriesQuery {} lists {:?}",
            f.server,
            rule.series_query,
            listed.samples
        );
        match profile {
            MetricProfile::Queue | MetricProfile::Concurrency => {
                let (want, other) = if profile == MetricProfile::Queue {
                    (QUEUE, OTHER_NS.waiting)
                } else {
                    (CONCURRENCY, OTHER_NS.waiting + OTHER_NS.running)
                };
                c.settle(&q, want, &[], Duration::from_secs(10)).await;
                c.settle(&q_other, other, &[], Duration::from_secs(10))
                    .await;
                // The control: the same rule with the colons mangled finds nothing and falls
                // back to 0, so the value above came from the server's own names.
                let kscale::render::Signal::Gauges(gauges) = kscale::render::signal(&cfg) else {
                    panic!("{profile} is a sum of gauges");
                };
                if gauges.iter().any(|g| g.contains(':')) {
                    let mut mangled = cfg.clone();
                    mangled.metric.gauges = gauges.iter().map(|g| g.replace(':', "_")).collect();
                    let v = c
                        .prometheus
                        .query(&adapter_query_for(&mangled, "default"))
                        .await
                        .expect("mangled query")
                        .single_finite()
                        .expect("one value");
                    assert_eq!(
                        v, 0.0,
                        "{} with mangled names {:?}",
                        f.server, mangled.metric.gauges
                    );
                }
                if profile == MetricProfile::Queue {
                    assert_eq!(
                        rule.name, gauges[0],
                        "{}: the queue profile's external metric is the gauge's own name",
                        f.server
                    );
                }
            }
            MetricProfile::MeanDuration => {
                // Idle: no counter moved, so the guarded ratio is 0, not NaN.
                c.settle(&q, 0.0, &[], Duration::from_secs(10)).await;
                let port = f.metrics_port_name;
                c.double("inference-a", port).set(|v| {
                    v.finished += 10.0;
                    v.seconds += 25.0;
                });
                c.double("inference-b", port).set(|v| {
                    v.finished += 4.0;
                    v.seconds += 10.0;
                });
                c.double("inference-x", port).set(|v| {
                    v.finished += 1.0;
                    v.seconds += 50.0;
                });
                c.settle(&q, MEAN_SECONDS, &[0.0], Duration::from_secs(20))
                    .await;
                c.settle(&q_other, 50.0, &[0.0], Duration::from_secs(20))
                    .await;
            }
        }
    }
    eprintln!(
        "{} chain: {} profiles in {:.1} s",
        f.server,
        f.profiles.len(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_metric_chain_reads_its_colon_named_gauges_and_latency_histogram() {
    chain(Facts {
        server: ServerKind::Vllm,
        double: DoubleOf::Vllm,
        metrics_port_name: "http",
        profiles: &MetricProfile::ALL,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tgi_metric_chain_reads_its_label_free_gauges_and_duration_histogram() {
    chain(Facts {
        server: ServerKind::Tgi,
        double: DoubleOf::Tgi,
        metrics_port_name: "http",
        profiles: &MetricProfile::ALL,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triton_metric_chain_reads_its_metrics_port_and_microsecond_counters() {
    chain(Facts {
        server: ServerKind::Triton,
        double: DoubleOf::Triton,
        metrics_port_name: "metrics",
        profiles: &[MetricProfile::MeanDuration, MetricProfile::Queue],
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llamacpp_metric_chain_reads_its_colon_named_slot_gauges() {
    chain(Facts {
        server: ServerKind::Llamacpp,
        double: DoubleOf::Llamacpp,
        metrics_port_name: "http",
        profiles: &[MetricProfile::Concurrency, MetricProfile::Queue],
    })
    .await;
}
