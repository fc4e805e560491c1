//! Invalid options are refused before binding, naming the option, with exit code 2.

use crate::support::run_to_exit;

fn assert_refused(args: &[&str], env: &[(&str, &str)], option: &str) {
    let (status, stdout, stderr) = run_to_exit(args, env);
    assert_eq!(
        status.code(),
        Some(2),
        "{args:?} {env:?}: {status}; stderr: {stderr}"
    );
    assert!(
        stderr.contains(option),
        "{args:?} {env:?}: the message does not name {option}: {stderr}"
    );
    assert!(
        !stdout.contains("listening"),
        "{args:?} {env:?}: bound before refusing: {stdout}"
    );
}

#[test]
fn invalid_environment_variables_exit_2_naming_the_option_before_binding() {
    let cases: &[(&str, &str)] = &[
        ("INFERENCE_SECONDS", "abc"),
        ("INFERENCE_SECONDS", "-1"),
        ("INFERENCE_SECONDS", "NaN"),
        ("WORKERS", "0"),
        ("MAX_QUEUE", "-1"),
        ("PORT", "70000"),
        ("KEEP_ALIVE_SECONDS", "soon"),
        ("MAX_CONNECTION_AGE_SECONDS", "-5"),
        ("DRAIN_SECONDS", "x"),
        ("READ_TIMEOUT_SECONDS", "0"),
        ("LOG_FORMAT", "xml"),
        ("BIND", "not-an-address"),
    ];
    for (var, bad) in cases {
        assert_refused(&[], &[(var, bad)], var);
    }
}

#[test]
fn invalid_flags_exit_2_naming_the_flag() {
    assert_refused(&["--workers", "none"], &[], "--workers");
    assert_refused(&["--inference-seconds", "1e9"], &[], "--inference-seconds");
    assert_refused(&["--no-such-option"], &[], "--no-such-option");
}

#[test]
fn help_lists_every_option_with_its_environment_variable() {
    let (status, stdout, _) = run_to_exit(&["--help"], &[]);
    assert!(status.success(), "--help: {status}");
    for var in [
        "PORT",
        "INFERENCE_SECONDS",
        "WORKERS",
        "MAX_QUEUE",
        "KEEP_ALIVE_SECONDS",
        "MAX_CONNECTION_AGE_SECONDS",
        "DRAIN_SECONDS",
        "LOG_FORMAT",
    ] {
        assert!(
            stdout.contains(&format!("[env: {var}")),
            "--help does not show {var}: {stdout}"
        );
    }
}

/// A server setting set on the machine (here MAX_BODY_BYTES=1, which refuses every body) does
/// not reach the server the tests start: this test binary runs
/// [`the_server_ignores_the_callers_environment`] again as a child with the setting in its
/// environment (the test process's own environment is shared by every test thread, so it is
/// not changed).
#[test]
fn a_stray_setting_on_the_machine_does_not_reach_the_server() {
    let exe = std::env::current_exe().expect("the test executable");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "config::the_server_ignores_the_callers_environment",
        ])
        .env("MAX_BODY_BYTES", "1")
        .output()
        .expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 passed"),
        "the inner test did not run:\n{text}"
    );
}

/// A body is accepted whatever this process's environment holds; the outer test above runs it
/// with MAX_BODY_BYTES=1 set, on its own it checks the default.
#[test]
fn the_server_ignores_the_callers_environment() {
    let server = crate::support::Server::start(&[("INFERENCE_SECONDS", "0.01")]);
    let response = crate::support::request(
        server.addr,
        "POST",
        "/infer",
        Some(r#"{"input":"more than one byte"}"#),
    );
    assert_eq!(
        response.status, 200,
        "the server saw MAX_BODY_BYTES=1: {}",
        response.body
    );
}
