//! The conventions every command keeps, checked through the real binary: `--dry-run` executes
//! nothing, `--output json` prints exactly one JSON document on stdout, exit codes are 0 / 1 / 2
//! for success / failure / bad input, and the completions and man page come from the clap
//! definitions.

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use kscale::cli::Cli;

/// Runs kscale in `dir` (no kscale.toml there) with the clean environment.
fn kscale_in(dir: &Path, args: &[&str], path: Option<&Path>) -> Output {
    let mut cmd = crate::support::kscale(dir);
    cmd.args(args);
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    cmd.output().expect("kscale runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that stdout is exactly one JSON document and returns it.
fn one_document(args: &[&str], out: &Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not exactly one JSON document: {e}\n{}",
            text(&out.stdout)
        )
    })
}

#[test]
fn dry_run_load_sends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let service = crate::support::fixtures::Untouched::new();
    let url = service.url.as_str();
    let out = kscale_in(
        dir.path(),
        &["--dry-run", "load", "--url", url, "-c", "4", "-d", "2s"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("would send 4 concurrent clients"),
        "{}",
        text(&out.stderr)
    );
    let args = [
        "--dry-run",
        "--output",
        "json",
        "load",
        "--url",
        url,
        "--rate",
        "50",
    ];
    let doc = one_document(&args, &kscale_in(dir.path(), &args, None));
    assert_eq!(doc["sent"], 0, "{doc}");
    // kscale has exited: a connection it made would be waiting in the backlog.
    service.assert_untouched("kscale --dry-run load");
}

#[test]
fn dry_run_load_opens_no_port_forward() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let marker = dir.path().join("kubectl-ran");
    let kubectl = bin.join("kubectl");
    std::fs::write(
        &kubectl,
        format!("#!/bin/sh\ntouch '{}'\nsleep 5\n", marker.display()),
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let out = kscale_in(
        dir.path(),
        &["--dry-run", "--context", "elsewhere", "load", "-c", "1"],
        Some(Path::new(&path)),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("port-forward"),
        "{}",
        text(&out.stderr)
    );
    assert!(!marker.exists(), "kubectl was started in dry-run");
}

#[test]
fn output_json_is_one_document_for_every_command_that_runs_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("sim.csv");
    let csv = csv.to_str().expect("utf-8 path");
    let png = dir.path().join("sim.png");
    let png = png.to_str().expect("utf-8 path");
    let rendered = dir.path().join("rendered");
    let rendered = rendered.to_str().expect("utf-8 path");
    let commands: Vec<Vec<&str>> = vec![
        vec!["config"],
        vec!["render", "--image", "kscale-server:test"],
        vec![
            "render",
            "--image",
            "kscale-server:test",
            "--output-dir",
            rendered,
        ],
        vec!["simulate", "--duration", "2m", "--csv", csv],
        vec!["plot", csv, "-o", png],
        vec!["completions", "bash"],
        vec!["man"],
        vec![
            "--dry-run",
            "load",
            "--url",
            "http://127.0.0.1:9",
            "-c",
            "1",
        ],
        // Probes are skipped in dry-run: no cluster (nor kubeconfig) is needed.
        vec!["--dry-run", "--context", "nowhere", "metrics"],
    ];
    for command in commands {
        let mut args = vec!["--output", "json"];
        args.extend(&command);
        one_document(&args, &kscale_in(dir.path(), &args, None));
    }
}

#[test]
fn simulate_csv_to_stdout_keeps_stdout_for_the_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kscale_in(
        dir.path(),
        &["simulate", "--duration", "2m", "--csv", "-"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("run,t_seconds,"), "{stdout}");
    assert!(!text(&out.stderr).is_empty(), "the summary goes to stderr");
    // Two results for one stdout: refused as bad input, before anything is simulated.
    let out = kscale_in(
        dir.path(),
        &["--output", "json", "simulate", "--csv", "-"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let refusal = error_document(&out);
    assert!(refusal.contains("--csv -"), "{refusal}");
}

/// Asserts that stdout is one JSON error document carrying the process's exit code; returns its
/// message.
fn error_document(out: &Output) -> String {
    let document: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document: {e}\n{}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        )
    });
    let error = &document["error"];
    assert_eq!(
        error["exit_code"].as_i64(),
        out.status.code().map(i64::from),
        "{document}"
    );
    assert!(error["causes"].is_array(), "{document}");
    let message = error["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "{document}");
    // The same failure is on stderr for a human.
    assert!(
        text(&out.stderr).contains(&message),
        "{}",
        text(&out.stderr)
    );
    message
}

#[test]
fn exit_codes_are_0_success_1_failure_2_bad_input_for_every_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).expect("mkdir");
    std::fs::write(templates.join("hpa.yaml"), "{{ nope(\n").expect("write");
    let templates = templates.to_str().expect("utf-8 path");
    let bad_csv = dir.path().join("bad.csv");
    std::fs::write(&bad_csv, "garbage\n1,2\n").expect("write");
    let bad_csv = bad_csv.to_str().expect("utf-8 path");
    // A port nothing listens on: every request of `load` is refused.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["config"], 0),
        (
            vec!["load", "--url", "http://127.0.0.1:9", "--rate", "abc"],
            2,
        ),
        (
            vec!["load", "--url", "http://127.0.0.1:9", "--steps", "0s:2,5s"],
            2,
        ),
        (
            vec![
                "load",
                "--url",
                "http://127.0.0.1:9",
                "--rate-steps",
                "0s:x",
            ],
            2,
        ),
        (vec!["load", "--url", "not-a-url", "-c", "1"], 2),
        (
            vec![
                "load",
                "--url",
                "http://127.0.0.1:9",
                "-c",
                "1",
                "--interval",
                "50ms",
            ],
            2,
        ),
        (vec!["load", "--url", &closed_url, "-c", "1", "-n", "2"], 1),
        (vec!["simulate", "--duration", "0s"], 2),
        (vec!["simulate", "--duration", "soon"], 2),
        (vec!["simulate", "--rate-steps", "0s:-1"], 2),
        (vec!["--templates", templates, "render"], 2),
        (vec!["--templates", "/nonexistent/templates", "render"], 2),
        (vec!["plot", bad_csv, "-o", "x.png"], 2),
        (vec!["plot", "/nonexistent/timeline.csv", "-o", "x.png"], 2),
        (vec!["--set", "app.workers=0", "config"], 2),
        (vec!["completions", "no-such-shell"], 2),
    ];
    for (args, code) in cases {
        let out = kscale_in(dir.path(), &args, None);
        assert_eq!(
            out.status.code(),
            Some(code),
            "kscale {args:?}: {}",
            text(&out.stderr)
        );
        // With `--output json` a failure is a document too: the error, or the command's report
        // (a load whose every request failed still reports what it sent).
        let mut json = vec!["--output", "json"];
        json.extend(&args);
        let out = kscale_in(dir.path(), &json, None);
        assert_eq!(out.status.code(), Some(code), "kscale {json:?}");
        let document: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("kscale {json:?}: not one JSON document: {e}"));
        if code == 2 {
            error_document(&out);
        } else if code == 1 {
            assert!(
                document.get("error").is_none(),
                "kscale {json:?}: {document}"
            );
        }
    }
}

const SUBCOMMANDS: &[&str] = &[
    "up",
    "deploy",
    "teardown",
    "render",
    "load",
    "plot",
    "simulate",
    "config",
    "metrics",
    "completions",
    "man",
];

#[test]
fn completions_name_every_subcommand() {
    use clap::CommandFactory as _;
    // The list above is the clap definition's: a new subcommand must be added there.
    let defined: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert_eq!(defined, SUBCOMMANDS, "update SUBCOMMANDS");
    let dir = tempfile::tempdir().expect("tempdir");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = kscale_in(dir.path(), &["completions", shell], None);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
        assert!(
            script.contains("dry-run"),
            "{shell} completions lack the global flags"
        );
    }
}

#[test]
fn the_man_page_documents_every_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = kscale_in(dir.path(), &["man"], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH kscale 1"),
        "{page}"
    );
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!(".TH kscale\\-{sub} 1"))
                || page.contains(&format!(".TH kscale-{sub} 1")),
            "no section for {sub}"
        );
    }
    // Flags of subcommands are there, not just their names.
    assert!(
        page.contains("keep\\-cluster"),
        "teardown's flags are documented"
    );
}

/// The metric axis names what the configured profile's metric measures, unless
/// `--metric-label` says otherwise (a concurrency run drawn as "mean request duration" misleads).
#[test]
fn plot_names_the_metric_of_the_configured_profile() {
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("t.csv");
    std::fs::write(
        &csv,
        format!(
            "{}\n0,,1,1,2,1,,,,,,,,,,\n5,,2,2,1,1,,,,,,,,,,\n",
            kscale::timeline::csv_header()
        ),
    )
    .expect("csv");
    let csv = csv.to_str().expect("utf-8 path");
    for (sets, label) in [
        (vec![], "mean request duration (s)"),
        (
            vec!["--set", "metric.profile=concurrency"],
            "requests per pod",
        ),
        (
            vec![
                "--set",
                "metric.profile=concurrency",
                "--metric-label",
                "my metric",
            ],
            "my metric",
        ),
    ] {
        let svg = dir.path().join("p.svg");
        let mut args = vec!["plot", csv, "-o", svg.to_str().expect("utf-8 path")];
        args.extend(sets.iter().copied());
        let out = kscale_in(dir.path(), &args, None);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let drawn = std::fs::read_to_string(&svg).expect("svg");
        assert!(
            drawn.contains(label),
            "{args:?}: no {label:?} in the picture"
        );
    }
}
