//! Speed of `kscale simulate`: one simulated hour must take well under a second (release build).
//!
//! `cargo bench --bench simulate` prints the median wall time of several runs per scenario.

use std::time::Instant;

use kscale::config::{Config, MetricProfile};
use kscale::loadprofile::LoadProfile;
use kscale::simulate::{SimParams, simulate};

fn fast() -> Config {
    let mut c = Config::default();
    c.metric.profile = MetricProfile::Concurrency;
    c.metric.target = 1.0;
    c.metric.scrape_interval_seconds = 5;
    c.hpa.scale_up.stabilization_window_seconds = 0;
    c
}

fn median_ms(mut f: impl FnMut() -> u64, runs: usize) -> (f64, u64) {
    let mut times = Vec::with_capacity(runs);
    let mut sent = 0;
    for _ in 0..runs {
        let t = Instant::now();
        sent = f();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[runs / 2], sent)
}

fn main() -> anyhow::Result<()> {
    let scenarios = [
        (
            "original, 4x step, 1 h",
            Config::default(),
            LoadProfile::parse_concurrency("0s:2,600s:8,1800s:2")?,
        ),
        (
            "concurrency, 4x step, 1 h",
            fast(),
            LoadProfile::parse_concurrency("0s:2,600s:8,1800s:2")?,
        ),
        (
            "concurrency, 5 req/s Poisson, 1 h",
            {
                let mut c = fast();
                c.hpa.max_replicas = 100;
                c
            },
            LoadProfile::parse_rate("0s:1,600s:5,1800s:1")?,
        ),
    ];
    println!(
        "{:<36} {:>10} {:>10}",
        "scenario (simulated 3600 s)", "median ms", "requests"
    );
    for (name, config, load) in &scenarios {
        let params = SimParams::from_config(config);
        params.validate()?;
        let (ms, sent) = median_ms(|| simulate(&params, load, 3600.0, 1).summary.sent, 15);
        println!("{name:<36} {ms:>10.2} {sent:>10}");
    }
    Ok(())
}
