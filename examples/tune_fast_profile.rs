//! The sweep behind the defaults of the `concurrency` metric profile: runs candidate settings and the
//! original's on the same 4x load step and seeds, and prints the figures.
//!
//! `cargo run --release --example tune_fast_profile`

use kscale::cli::SimulateArgs;
use kscale::config::{Config, MetricProfile, PolicyKind, ScalingPolicy, SelectPolicy};
use kscale::loadprofile::Balance;
use kscale::loadprofile::LoadProfile;
use kscale::simulate::{SimParams, Summary, build_report, simulate, summary_text};

struct Candidate {
    name: String,
    config: Config,
}

fn policy(kind: PolicyKind, value: u32, period_seconds: u32) -> ScalingPolicy {
    ScalingPolicy {
        kind,
        value,
        period_seconds,
    }
}

fn fast(
    target: f64,
    scrape: u64,
    up_window: u32,
    up: Vec<ScalingPolicy>,
    down_window: u32,
    down: Vec<ScalingPolicy>,
) -> Config {
    let mut c = Config::default();
    c.metric.profile = MetricProfile::Concurrency;
    c.metric.target = target;
    c.metric.scrape_interval_seconds = scrape;
    c.hpa.scale_up.stabilization_window_seconds = up_window;
    c.hpa.scale_up.select_policy = SelectPolicy::Max;
    c.hpa.scale_up.policies = up;
    c.hpa.scale_down.stabilization_window_seconds = down_window;
    c.hpa.scale_down.policies = down;
    c
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn row(name: &str, runs: &[Summary]) {
    let f = |g: &dyn Fn(&Summary) -> Option<f64>| {
        let v: Vec<f64> = runs.iter().filter_map(g).collect();
        if v.is_empty() { f64::NAN } else { mean(&v) }
    };
    let worst = runs
        .iter()
        .filter_map(|s| s.first_scale_up_decision_seconds)
        .fold(0.0, f64::max);
    println!(
        "{name:<50} {:>6.1} {:>6.1} {:>6.1} {:>7.1} {:>7.1} {:>6.0} {:>5.1} {:>5.1} {:>5.1} {:>7.0}",
        f(&|s| s.first_scale_up_decision_seconds),
        worst,
        f(&|s| s.first_new_pod_ready_seconds),
        f(&|s| s.p99_seconds),
        f(&|s| s.peak_row_p99_seconds),
        f(&|s| Some(s.shed as f64)),
        f(&|s| Some(f64::from(s.replicas_peak))),
        f(&|s| Some(f64::from(s.direction_changes))),
        f(&|s| Some(f64::from(s.quick_reversals))),
        f(&|s| Some(s.pod_seconds / 60.0)),
    );
}

fn main() -> anyhow::Result<()> {
    let k8s_up = || {
        vec![
            policy(PolicyKind::Pods, 4, 15),
            policy(PolicyKind::Percent, 100, 15),
        ]
    };
    let k8s_down = || vec![policy(PolicyKind::Percent, 100, 15)];
    let orig_up = || vec![policy(PolicyKind::Pods, 10, 60)];
    let orig_down = || vec![policy(PolicyKind::Pods, 10, 120)];
    let mut candidates = vec![
        Candidate {
            name: "original (mean-duration 12 s, 240/300 s)".into(),
            config: Config::default(),
        },
        Candidate {
            name: "main's Config::defaults_for(Concurrency)".into(),
            config: Config::defaults_for(MetricProfile::Concurrency),
        },
        Candidate {
            name: "CHOSEN: examples/fast-profile.toml".into(),
            config: Config::from_toml_str(include_str!("fast-profile.toml"))?,
        },
    ];
    for target in [0.8, 1.0, 1.5, 2.0] {
        candidates.push(Candidate {
            name: format!("conc target {target}, scrape 5, k8s up, 300 s down"),
            config: fast(target, 5, 0, k8s_up(), 300, k8s_down()),
        });
    }
    for scrape in [2, 10, 15] {
        candidates.push(Candidate {
            name: format!("conc target 1, scrape {scrape}, k8s up, 300 s down"),
            config: fast(1.0, scrape, 0, k8s_up(), 300, k8s_down()),
        });
    }
    candidates.push(Candidate {
        name: "conc target 1, scrape 5, orig policies 0/300".into(),
        config: fast(1.0, 5, 0, orig_up(), 300, orig_down()),
    });
    candidates.push(Candidate {
        name: "conc target 1, scrape 5, up window 15 s".into(),
        config: fast(1.0, 5, 15, k8s_up(), 300, k8s_down()),
    });
    candidates.push(Candidate {
        name: "conc target 1, scrape 5, down window 120 s".into(),
        config: fast(1.0, 5, 0, k8s_up(), 120, k8s_down()),
    });
    candidates.push(Candidate {
        name: "conc target 1, scrape 5, down 300 s, Pods 1/60s".into(),
        config: fast(
            1.0,
            5,
            0,
            k8s_up(),
            300,
            vec![policy(PolicyKind::Pods, 1, 60)],
        ),
    });
    for tol in [0.2, 0.3] {
        let mut c = fast(1.0, 5, 0, k8s_up(), 300, k8s_down());
        c.hpa.scale_down.tolerance = Some(tol);
        candidates.push(Candidate {
            name: format!("conc target 1, scrape 5, 300 s down, down tol {tol}"),
            config: c,
        });
    }
    for (name, down_window, down) in [
        (
            "down 300 s, Pods 2/60s",
            300,
            vec![policy(PolicyKind::Pods, 2, 60)],
        ),
        ("down 600 s, Percent 100/15s", 600, k8s_down()),
    ] {
        candidates.push(Candidate {
            name: format!("conc target 1, scrape 5, {name}"),
            config: fast(1.0, 5, 0, k8s_up(), down_window, down),
        });
    }
    for (window, tol) in [(450, None), (600, Some(0.3))] {
        let mut c = fast(1.0, 5, 0, k8s_up(), window, k8s_down());
        c.hpa.scale_down.tolerance = tol;
        candidates.push(Candidate {
            name: format!("conc target 1, scrape 5, down {window} s, down tol {tol:?}"),
            config: c,
        });
    }
    let seeds = 1..=10u64;
    for (title, load, duration) in [
        (
            "closed loop 2 -> 8 clients at 300 s, back to 2 at 1200 s",
            LoadProfile::parse_concurrency("0s:2,300s:8,1200s:2")?,
            2400.0,
        ),
        (
            "open loop 0.2 -> 0.8 req/s at 300 s, back at 1200 s",
            LoadProfile::parse_rate("0s:0.2,300s:0.8,1200s:0.2")?,
            2400.0,
        ),
        (
            "open loop steady 0.5 req/s for 1 h (reversals = flapping)",
            LoadProfile::parse_rate("0s:0.5")?,
            3600.0,
        ),
        (
            "open loop steady 0.3 req/s for 1 h",
            LoadProfile::parse_rate("0s:0.3")?,
            3600.0,
        ),
        (
            "closed loop steady 5 clients for 1 h",
            LoadProfile::parse_concurrency("0s:5")?,
            3600.0,
        ),
    ] {
        println!("\n{title}; mean of seeds 1-10");
        println!(
            "{:<50} {:>6} {:>6} {:>6} {:>7} {:>7} {:>6} {:>5} {:>5} {:>5} {:>7}",
            "candidate",
            "up s",
            "worst",
            "ready",
            "p99 s",
            "pk p99",
            "shed",
            "peak",
            "rev",
            "<5m",
            "pod-min"
        );
        for c in &candidates {
            let p = SimParams::from_config(&c.config);
            p.validate()?;
            let runs: Vec<Summary> = seeds
                .clone()
                .map(|s| simulate(&p, &load, duration, s).summary)
                .collect();
            row(&c.name, &runs);
        }
    }
    // What `kscale simulate --compare examples/fast-profile.toml --steps 0s:2,300s:8,1200s:2
    // --duration 40m --seed 1` prints.
    let args = SimulateArgs {
        steps: Some(LoadProfile::parse_concurrency("0s:2,300s:8,1200s:2")?),
        rate_steps: None,
        duration: std::time::Duration::from_secs(2400),
        seed: 1,
        compare: Some("examples/fast-profile.toml".into()),
        plot: None,
        csv: None,
        balance: Balance::RoundRobin,
    };
    println!();
    print!(
        "{}",
        summary_text(&build_report(&Config::default(), &args)?)
    );
    Ok(())
}
