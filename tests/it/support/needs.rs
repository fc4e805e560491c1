//! What a test needs from the machine that `cargo test` cannot provide itself (root, Go,
//! Docker, Prometheus), and cargo's own rule for it: when something is missing, a test on a
//! developer's machine skips with a message saying what to install, and with `CI` set it fails,
//! so that CI (and `cargo xtask ci`, which sets `CI`) never passes a test that did not run.

use std::path::PathBuf;

/// One thing a test needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `prometheus` and `promtool` (Debian's package `prometheus`).
    Prometheus,
    /// Root, for network namespaces (`ip netns`) and the kit's rootfs.
    Root,
    /// A Go toolchain, to build the pinned upstream programs.
    Go,
}

impl Need {
    fn check(self) -> Result<(), String> {
        match self {
            Need::Prometheus => ["prometheus", "promtool"].into_iter().try_for_each(|tool| {
                on_path(tool).map(drop).ok_or_else(|| {
                    format!(
                        "`{tool}` is not installed: `sudo apt-get install -y prometheus` \
                         (or `cargo xtask deps`)"
                    )
                })
            }),
            Need::Root => {
                if effective_uid() == Some(0) {
                    Ok(())
                } else {
                    Err("not running as root (needed for `ip netns`)".into())
                }
            }
            Need::Go => on_path("go").map(drop).ok_or_else(|| {
                "`go` is not on PATH: install Go (`cargo xtask deps` installs Debian's golang-go)"
                    .to_owned()
            }),
        }
    }
}

/// `found`, or — when the test cannot run here — `None` after printing `skipped: <what>: <why>`
/// (`CI` unset), or a panic (`CI` set). The general form, for needs probed by running something
/// (the minikube kit answers `cargo xtask kit env`).
pub fn available<T>(what: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(v) => Some(v),
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {what}: {why}\n(with CI set this fails instead)");
            None
        }
        Err(why) => panic!("CI is set and {what}: {why}"),
    }
}

/// Whether every need is met; see [`available`] for what happens when one is not. Use as
/// `if !needs("this test", &[Need::Prometheus]) { return; }`.
pub fn needs(what: &str, needs: &[Need]) -> bool {
    let missing: Vec<String> = needs.iter().filter_map(|n| n.check().err()).collect();
    let found = if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("; "))
    };
    available(&format!("{what} cannot run here"), found).is_some()
}

/// `tool` in a PATH directory (or /usr/bin, where Debian's packages put it).
pub fn on_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// The effective user id, from /proc (no libc call in the tests).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn a_missing_need_skips_without_ci_and_fails_with_it() {
    // The two branches of `available`, with CI as this process has it.
    let missing: Result<(), String> = Err("nothing here".into());
    if std::env::var_os("CI").is_none() {
        assert_eq!(available("probe", missing), None);
    } else {
        let caught = std::panic::catch_unwind(|| available("probe", missing));
        assert!(caught.is_err(), "with CI set a missing need must fail");
    }
    assert_eq!(available("probe", Ok::<_, String>(7)), Some(7));
    assert!(
        effective_uid().is_some(),
        "/proc/self/status has a Uid line"
    );
    assert!(on_path("sh").is_some(), "sh is on PATH");
}
