//! `cargo xtask ci`: the whole test gate, the same on a laptop and in CI.

use std::process::Command;

use crate::{deps, process, project_root, run};

/// The name filter of the tests that start real clusters (the `tests/it/real_minikube` module):
/// skipped by the workspace run, run alone after it. A substring, as libtest filters are, so it
/// must match no other test: [`ci`] checks that the two runs account for the same tests.
pub const CLUSTER_TESTS: &str = "real_minikube::";

/// fmt check, clippy with `-D warnings` over every target, then every test of the workspace,
/// closing with one `N passed, N failed` line over all test binaries.
pub fn ci(_args: &[String]) -> anyhow::Result<()> {
    deps::ensure_test_deps()?;
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // Tests of the CLI drive the real server binary; build every binary first.
    run("cargo", &["build", "--workspace", "--locked"])?;
    // The control-plane tests start and stop the harness themselves; a cold Go build (~10 min)
    // happens here rather than inside a test, and `down` runs even when the tests fail.
    crate::controlplane::build_for_tests()?;
    // The minikube kit (a cold build takes about 40 minutes, a warm one seconds) and its engine.
    crate::kit::build_for_tests()?;
    let tests = test_and_tally(&[
        "test",
        "--workspace",
        "--locked",
        "--no-fail-fast",
        "--",
        "--skip",
        CLUSTER_TESTS,
    ]);
    let down = crate::controlplane::down();
    let cluster_tests = run_cluster_tests(CLUSTER_TESTS);
    let kit_down = crate::kit::down_after_tests();
    let (tests, cluster_tests) = (tests?, cluster_tests?);
    down?;
    kit_down?;
    let (passed, failed) = (
        tests.passed + cluster_tests.passed,
        tests.failed + cluster_tests.failed,
    );
    println!("cargo xtask ci: {passed} passed, {failed} failed");
    if !tests.ok || !cluster_tests.ok || failed > 0 {
        anyhow::bail!("{failed} test(s) failed");
    }
    let cluster_ran = cluster_tests.passed + cluster_tests.failed;
    if tests.filtered != cluster_ran {
        anyhow::bail!(
            "the workspace run skipped {} test(s) matching `{CLUSTER_TESTS}` but the cluster run \
             ran {cluster_ran}: the filter also matches tests outside tests/it/real_minikube, which \
             therefore never run; rename them",
            tests.filtered
        );
    }
    if passed == 0 {
        anyhow::bail!("no test ran");
    }
    Ok(())
}

/// Runs the cluster tests whose names contain `filter` (within [`CLUSTER_TESTS`]). Real clusters
/// take both cores while they start: these tests run alone, one at a time.
pub fn run_cluster_tests(filter: &str) -> anyhow::Result<Tally> {
    run_cluster_tests_with(filter, &[])
}

/// [`run_cluster_tests`] with extra environment variables for the tests (the benchmarks' knobs).
pub fn run_cluster_tests_with(filter: &str, envs: &[(&str, &str)]) -> anyhow::Result<Tally> {
    test_and_tally_with(
        &[
            "test",
            "--locked",
            "--package",
            "kscale",
            "--test",
            "it",
            "--no-fail-fast",
            "--",
            filter,
            "--test-threads=1",
        ],
        envs,
    )
}

/// Runs `cargo <args>`, echoing its output, and adds up every `test result:` line. `CI` is set,
/// so a test whose tools are missing fails here instead of skipping (tests/it/support/needs.rs).
fn test_and_tally(args: &[&str]) -> anyhow::Result<Tally> {
    test_and_tally_with(args, &[])
}

/// [`test_and_tally`] with extra environment variables.
fn test_and_tally_with(args: &[&str], envs: &[(&str, &str)]) -> anyhow::Result<Tally> {
    let shown: String = envs.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    eprintln!("$ CI=1 {shown}cargo {}", args.join(" "));
    let mut tally = Tally::default();
    let status = process::lines(
        Command::new("cargo")
            .args(args)
            .env("CI", std::env::var_os("CI").unwrap_or_else(|| "1".into()))
            .envs(envs.iter().copied())
            .current_dir(project_root()),
        |line| {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                tally.passed += count(rest, " passed");
                tally.failed += count(rest, " failed");
                tally.filtered += count(rest, " filtered out");
            }
        },
    )?;
    tally.ok = status.success();
    Ok(tally)
}

/// The `test result:` lines of one `cargo test`, added up.
#[derive(Debug, Default)]
pub struct Tally {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Left out by the name filter.
    pub filtered: u64,
    /// cargo exited 0.
    pub ok: bool,
}

/// The number before `label` in `ok. 12 passed; 0 failed; ...`.
fn count(summary: &str, label: &str) -> u64 {
    summary
        .split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(label.trim_start())
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_cargo_test_summaries() {
        let s = "ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.52s";
        assert_eq!((count(s, " passed"), count(s, " failed")), (12, 0));
        let f = "FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!((count(f, " passed"), count(f, " failed")), (3, 2));
        let filtered = "ok. 111 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out; finished";
        assert_eq!(count(filtered, " filtered out"), 3);
    }
}
