use super::metric::{self, PodLifetime};
use super::*;
use crate::config::{Config, MetricProfile};
use crate::loadprofile::{Balance, LoadProfile};

fn fixed(pods: u32, workers: u32) -> SimParams {
    let mut c = Config::default();
    c.app.workers = workers;
    c.hpa.min_replicas = pods;
    c.hpa.max_replicas = pods;
    SimParams::from_config(&c)
}

/// The recommended defaults of the concurrency profile.
fn fast_profile() -> Config {
    Config::from_toml_str(include_str!("../../examples/fast-profile.toml")).unwrap()
}

fn steps(s: &str) -> LoadProfile {
    LoadProfile::parse_concurrency(s).unwrap()
}

#[test]
fn same_seed_same_output_and_different_seed_differs() {
    let p = SimParams::from_config(&Config::default());
    let load = steps("0s:2,60s:8,400s:2");
    let a = simulate(&p, &load, 900.0, 7);
    let b = simulate(&p, &load, 900.0, 7);
    assert_eq!(a, b);
    let c = simulate(&p, &load, 900.0, 8);
    assert_ne!(a.timeline, c.timeline);
    let rate = LoadProfile::parse_rate("0s:0.3,100s:0.9").unwrap();
    assert_eq!(simulate(&p, &rate, 600.0, 3), simulate(&p, &rate, 600.0, 3));
    assert_ne!(
        simulate(&p, &rate, 600.0, 3).summary.sent,
        simulate(&p, &rate, 600.0, 4).summary.sent
    );
}

#[test]
fn every_request_is_accounted_for() {
    let mut c = Config::default();
    c.app.max_queue = 3;
    let p = SimParams::from_config(&c);
    for (load, seed) in [
        (steps("0s:2,60s:30,500s:1"), 1),
        (
            LoadProfile::parse_rate("0s:0.5,200s:3,600s:0.1").unwrap(),
            2,
        ),
    ] {
        let s = simulate(&p, &load, 1000.0, seed).summary;
        assert!(s.shed > 0, "the small queue must shed: {s:?}");
        assert!(s.sent > 100, "{s:?}");
        assert_eq!(
            s.sent,
            s.ok + s.shed + s.refused + s.in_progress_at_end,
            "{s:?}"
        );
    }
}

#[test]
fn capacity_bound_load_keeps_latency_at_inference_time() {
    // 4 clients, 1 pod with 4 workers: nobody ever waits.
    let s = simulate(&fixed(1, 4), &steps("0s:4"), 600.0, 1).summary;
    assert!(s.ok > 200, "{s:?}");
    let (mean, max) = (s.mean_seconds.unwrap(), s.max_seconds.unwrap());
    assert!(
        (mean - 10.0).abs() < 1e-6 && (max - 10.0).abs() < 1e-6,
        "{s:?}"
    );
    assert_eq!(s.shed, 0);
    // Poisson at 0.2 req/s on 8 workers: about 2 in flight, queueing is rare.
    let rate = LoadProfile::parse_rate("0s:0.2").unwrap();
    let s = simulate(&fixed(1, 8), &rate, 3600.0, 1).summary;
    let mean = s.mean_seconds.unwrap();
    assert!((10.0..10.5).contains(&mean), "mean {mean}: {s:?}");
}

#[test]
fn overload_grows_latency() {
    // 3 closed-loop clients on one single-worker pod: each waits for the other two (about 30 s).
    let s = simulate(&fixed(1, 1), &steps("0s:3"), 1200.0, 1).summary;
    let mean = s.mean_seconds.unwrap();
    assert!((25.0..=31.0).contains(&mean), "mean {mean}");
    // Open loop above capacity: the queue fills, latency climbs towards max_queue rounds, and sheds.
    let rate = LoadProfile::parse_rate("0s:0.2").unwrap();
    let s = simulate(&fixed(1, 1), &rate, 3600.0, 1).summary;
    assert!(s.shed > 0, "{s:?}");
    assert!(s.max_seconds.unwrap() > 300.0, "{s:?}");
}

#[test]
fn metric_is_a_pure_function_of_observed_requests() {
    let p = SimParams::from_config(&Config::default());
    let out = simulate_recorded(&p, &steps("0s:2,60s:8,500s:1"), 900.0, 5);
    assert!(out.requests.len() > 100);
    let lifetimes: Vec<PodLifetime> = out
        .series
        .iter()
        .map(|s| PodLifetime {
            pod: s.pod,
            from: s.samples[0].at,
            until: s.gone_at,
        })
        .collect();
    let mut times: Vec<f64> = out
        .series
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| x.at))
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let rebuilt = metric::scrape(&out.requests, &lifetimes, &times);
    assert_eq!(rebuilt, out.series);
    // And the values the HPA saw are the query over those series.
    for s in &out.syncs {
        let v = metric::mean_duration_query(&rebuilt, s.t_seconds, p.rate_window_seconds);
        assert_eq!(v, s.query_value, "at {}", s.t_seconds);
    }
    assert!(out.syncs.iter().any(|s| s.query_value > 12.0));
}

#[test]
fn fast_profile_reacts_within_30_seconds_of_a_4x_step() {
    let p = SimParams::from_config(&fast_profile());
    for seed in 1..=5 {
        let s = simulate(&p, &steps("0s:2,120s:8"), 600.0, seed).summary;
        let up = s.first_scale_up_decision_seconds.expect("scales up");
        assert!(up <= 30.0, "seed {seed}: {up} s");
        assert!(s.replicas_peak >= 8, "seed {seed}: {s:?}");
    }
}

#[test]
fn original_profile_waits_for_its_stabilization_window() {
    let p = SimParams::from_config(&Config::default());
    // One client on one pod is a settled start (mean 10 s < 12 s): the history holds only 1s.
    for seed in 1..=3 {
        let s = simulate(&p, &steps("0s:1,300s:4"), 1200.0, seed).summary;
        let up = s.first_scale_up_decision_seconds.expect("scales up");
        assert!(
            (240.0..300.0).contains(&up),
            "seed {seed}: 240 s up-window, got {up} s"
        );
    }
}

#[test]
fn scale_down_drains_without_loss() {
    let p = SimParams::from_config(&fast_profile());
    let out = simulate(&p, &steps("0s:10,120s:0"), 1200.0, 2);
    let s = &out.summary;
    assert_eq!(s.shed + s.refused, 0, "{s:?}");
    assert_eq!(s.in_progress_at_end, 0);
    assert_eq!(s.ok, s.sent);
    assert_eq!(s.replicas_final, 1, "{s:?}");
    assert!(s.direction_changes >= 1);
}

#[test]
fn report_text_csv_and_json() {
    let c = Config::default();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("fast.toml");
    std::fs::write(
        &other,
        "[metric]\nprofile = \"concurrency\"\ntarget = 1.0\nscrape_interval_seconds = 5\n",
    )
    .unwrap();
    let args = SimulateArgs {
        steps: None,
        rate_steps: None,
        duration: std::time::Duration::from_secs(300),
        seed: 1,
        compare: Some(other),
        plot: None,
        csv: None,
        balance: Balance::RoundRobin,
    };
    let r = build_report(&c, &args).unwrap();
    assert_eq!(r.runs.len(), 2);
    assert_eq!(r.runs[1].label, "fast (concurrency)");
    assert_eq!(r.runs[1].params.profile, MetricProfile::Concurrency);
    let text = summary_text(&r);
    assert!(text.contains("first scale-up decision"), "{text}");
    assert!(
        text.contains("mean-duration") && text.contains("concurrency"),
        "{text}"
    );
    let csv = timeline_csv(&r.runs).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines.len(),
        1 + r.runs[0].timeline.len() + r.runs[1].timeline.len()
    );
    assert!(
        lines[1].starts_with("config (mean-duration),5,"),
        "{}",
        lines[1]
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["runs"][1]["label"], "fast (concurrency)");
    assert!(json["runs"][0]["timeline"].as_array().unwrap().len() > 10);

    let bad = SimulateArgs {
        duration: std::time::Duration::ZERO,
        ..args
    };
    let err = build_report(&c, &bad).unwrap_err().to_string();
    assert!(err.contains("--duration"), "{err}");
    let mut broken = Config::default();
    broken.app.workers = 0;
    let ok_duration = SimulateArgs {
        compare: None,
        duration: std::time::Duration::from_secs(60),
        ..bad
    };
    let err = format!("{:#}", build_report(&broken, &ok_duration).unwrap_err());
    assert!(err.contains("app.workers"), "{err}");
}

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: SimulateArgs,
}

#[test]
fn flags_parse_and_bad_steps_name_the_item() {
    use clap::Parser as _;
    let cli = Cli::try_parse_from([
        "kscale",
        "--steps",
        "0s:2,60s:8",
        "--duration",
        "1h",
        "--seed",
        "9",
    ])
    .unwrap();
    assert_eq!(cli.args.steps.unwrap().steps.len(), 2);
    assert_eq!(cli.args.duration, std::time::Duration::from_secs(3600));
    assert_eq!(cli.args.seed, 9);
    let cli = Cli::try_parse_from([
        "kscale",
        "--rate-steps",
        "0s:0.1,60s:0.4",
        "--balance",
        "random",
    ])
    .unwrap();
    assert_eq!(
        cli.args.rate_steps.unwrap().kind,
        crate::loadprofile::LoadKind::Rate
    );
    assert_eq!(cli.args.balance, Balance::Random);
    let err = Cli::try_parse_from(["kscale", "--steps", "0s:2,60q:8"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("step 2 `60q:8`: bad time `60q`"), "{err}");
    let err = Cli::try_parse_from(["kscale", "--steps", "0s:2", "--rate-steps", "0s:1"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn the_fast_profile_example_is_a_valid_kscale_toml() {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/fast-profile.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = Config::load(&crate::config::Layers {
        file: Some((path, text)),
        ..Default::default()
    })
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.metric.profile, MetricProfile::Concurrency);
    assert_eq!(c.hpa.scale_down.stabilization_window_seconds, 600);
    assert_eq!(c.hpa.scale_down.tolerance, Some(0.3));
    // Same model as the plain parse the other tests use.
    assert_eq!(
        SimParams::from_config(&c).hpa,
        SimParams::from_config(&fast_profile()).hpa
    );
}

#[test]
fn a_run_beyond_the_event_limit_is_refused_up_front() {
    let c = Config::default();
    let args = |steps: &str, duration: u64| SimulateArgs {
        steps: Some(LoadProfile::parse_concurrency(steps).expect("steps")),
        rate_steps: None,
        duration: std::time::Duration::from_secs(duration),
        seed: 1,
        compare: None,
        plot: None,
        csv: None,
        balance: Balance::RoundRobin,
    };
    let started = std::time::Instant::now();
    let err = build_report(&c, &args("0s:10000", 7 * 24 * 3600)).expect_err("too many events");
    assert!(crate::is_bad_input(&err), "{err:#}");
    let text = format!("{err:#}");
    assert!(
        text.contains("events") && text.contains("--duration"),
        "{text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The runs the README shows stay well within the limit.
    let p = SimParams::from_config(&c);
    for (steps, duration) in [
        ("0s:2,300s:8,1200s:2", 2400.0),
        ("0s:2,120s:8,720s:2", 1200.0),
    ] {
        let load = LoadProfile::parse_concurrency(steps).expect("steps");
        let events = super::params::estimated_events(&p, &load, duration);
        assert!(events < 1e6, "{steps}: {events}");
    }
    // A week of a few hundred clients fits: they are within the pods' capacity.
    assert!(build_report(&c, &args("0s:200", 7 * 24 * 3600)).is_ok());
}

#[test]
fn queue_profile_scales_on_waiting_requests_only() {
    // A llama.cpp-like pod: one slot, 1 s per request, an unbounded wait.
    let mut c = Config::defaults(
        crate::config::servers::ServerKind::Llamacpp,
        MetricProfile::Queue,
    );
    c.app.inference_seconds = 1.0;
    c.app.max_queue = 10_000;
    c.hpa.max_replicas = 8;
    let p = SimParams::from_config(&c);
    assert_eq!(p.profile, MetricProfile::Queue);
    let out = simulate(&p, &steps("0s:1,60s:6"), 300.0, 1);
    // One client never waits: the metric stays 0 until the step.
    assert!(
        out.syncs
            .iter()
            .filter(|s| s.t_seconds < 60.0)
            .all(|s| s.query_value == 0.0),
        "{:?}",
        out.syncs
    );
    let up = out
        .summary
        .first_scale_up_decision_seconds
        .expect("the deferred queue scales it up");
    assert!(up < 60.0, "{up} s after the step");
    // The query is the waiting gauge alone: never above the clients that can wait.
    assert!(
        out.syncs.iter().all(|s| s.query_value <= 5.0),
        "{:?}",
        out.syncs
    );
}
