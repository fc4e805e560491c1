//! Hostile input to the real `kscale` binary: every case is refused with a named error and exit
//! code 2, never a panic (101) or an abort (134); and settings kscale accepts are settings the
//! real `kscale-server` accepts.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::process::Output;
use std::time::{Duration, Instant};

use kscale::config::Config;
use kscale::manifest::parse_yaml;
use kscale::render::{Templates, file, render_all};

/// Runs kscale in an empty directory (no kscale.toml) with the clean environment and `env`.
fn kscale(args: &[&str], env: &[(&OsStr, &OsStr)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = crate::support::kscale(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run kscale");
    drop(dir);
    output
}

/// Asserts exit code 2 and that stderr contains every one of `words`.
fn assert_refused(output: &Output, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "expected exit 2; stderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for word in words {
        assert!(stderr.contains(word), "{word:?} missing from:\n{stderr}");
    }
}

#[test]
fn non_utf8_environment_variables_do_not_panic() {
    let junk = OsStr::from_bytes(b"\xff\xfe");
    let out = kscale(&["config"], &[(OsStr::new("SOME_TOOL_SETTING"), junk)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kscale(&["config"], &[(OsStr::new("KSCALE_APP_WORKERS"), junk)]);
    assert_refused(&out, &["KSCALE_APP_WORKERS", "UTF-8"]);
    let out = kscale(
        &["config"],
        &[(OsStr::from_bytes(b"KSCALE_\xff"), OsStr::new("1"))],
    );
    assert_refused(&out, &["UTF-8"]);
}

#[test]
fn huge_load_durations_are_refused_by_name() {
    let base = [
        "load",
        "--url",
        "http://127.0.0.1:9",
        "-c",
        "1",
        "--max-requests",
        "1",
    ];
    for (flag, value) in [
        ("--duration", "1e20"),
        ("--duration", "1.8e19"),
        ("--duration", "100000000000years"),
        ("--timeout", "1e20"),
        ("--interval", "1e20"),
        ("--duration", "-5"),
        ("--duration", "NaN"),
        ("--steps", "0s:1,1e20:2"),
        ("--rate-steps", "0s:1,1e20:2"),
    ] {
        let arg = format!("{flag}={value}");
        let mut args = base.to_vec();
        if flag.contains("steps") {
            // A profile flag replaces -c.
            args.truncate(3);
            args.extend(["--max-requests", "1"]);
        }
        args.push(&arg);
        let out = kscale(&args, &[]);
        assert_refused(&out, &[flag]);
    }
    for args in [
        ["metrics", "--wait=100000000000years"],
        ["up", "--wait=100000000000years"],
    ] {
        assert_refused(&kscale(&args, &[]), &["--wait"]);
    }
}

#[test]
fn settings_the_server_would_refuse_are_refused_before_anything_runs() {
    for (set, key) in [
        ("app.max_queue=100000", "app.max_queue"),
        ("app.keep_alive_seconds=2000000", "app.keep_alive_seconds"),
        (
            "app.max_connection_age_seconds=2000000",
            "app.max_connection_age_seconds",
        ),
        (
            "app.pre_stop_seconds=9223372036854775800",
            "app.pre_stop_seconds",
        ),
        (
            "app.drain_margin_seconds=18446744073709551615",
            "app.drain_margin_seconds",
        ),
    ] {
        let out = kscale(&["render", "--set", set], &[]);
        assert_refused(&out, &[key]);
    }
}

/// The Deployment's server environment as `(name, value)` pairs.
fn server_env(cfg: &Config) -> Vec<(String, String)> {
    let files = render_all(cfg, &Templates::embedded(), "kscale-server:test").expect("renders");
    let deployment = files
        .iter()
        .find(|f| f.name == file::DEPLOYMENT)
        .expect("a deployment");
    let value = parse_yaml(&deployment.content).expect("yaml");
    let env = value
        .pointer("/spec/template/spec/containers/0/env")
        .and_then(|e| e.as_array())
        .expect("env list");
    env.iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn the_largest_settings_kscale_accepts_start_the_real_server() {
    let mut widest = Config::default();
    // Every rendered server setting at the top of kscale's ranges that fit together.
    widest.app.workers = 1024;
    widest.app.max_queue = 100_000;
    widest.app.inference_seconds = 10.0;
    widest.app.drain_margin_seconds = 1_000;
    widest.app.keep_alive_seconds = 1_000_000;
    widest.app.max_connection_age_seconds = 1_000_000;
    widest.app.pre_stop_seconds = 1_000_000;
    // The longest drain kscale accepts: DRAIN_SECONDS exactly at the server's limit.
    let mut longest_drain = Config::default();
    longest_drain.app.max_queue = 99_999;
    longest_drain.app.drain_margin_seconds = 0;
    for cfg in [widest, longest_drain] {
        cfg.validate().expect("valid");
        let env = server_env(&cfg);
        assert!(env.iter().any(|(n, _)| n == "DRAIN_SECONDS"), "{env:?}");
        let spec = crate::support::PodSpec::new("default", "widest", cfg.app.inference_seconds);
        let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        if let Err(e) = crate::support::ServerProc::start(spec, &env) {
            panic!("the server refused kscale's settings {env:?}: {e:#}");
        }
    }
}

#[test]
fn a_template_that_includes_itself_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).expect("mkdir");
    std::fs::write(
        templates.join(file::DEPLOYMENT),
        "kind: Deployment\n{% include \"deployment.yaml\" %}\n",
    )
    .expect("write");
    std::fs::write(
        templates.join(file::SERVICE),
        "{%- include   'hpa.yaml' -%}\n",
    )
    .expect("write");
    std::fs::write(
        templates.join(file::HPA),
        "{% include [\"x.yaml\", \"service.yaml\"] ignore missing %}\n",
    )
    .expect("write");
    let started = Instant::now();
    let dir_arg = templates.to_string_lossy().into_owned();
    let out = kscale(&["render", "--templates", &dir_arg], &[]);
    assert_refused(&out, &[file::DEPLOYMENT, "includes itself"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(file::SERVICE) && stderr.contains(file::HPA),
        "the two-file cycle is not named:\n{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_simulation_beyond_the_event_limit_is_refused_up_front() {
    let started = Instant::now();
    let out = kscale(
        &["simulate", "--steps", "0s:10000", "--duration", "7d"],
        &[],
    );
    assert_refused(&out, &["events", "--duration"]);
    // Refused before simulating: it used to run 200 million events and report 7 days.
    assert!(started.elapsed() < Duration::from_secs(30));
}
