//! Installs the real programs the tests run (Prometheus and promtool from Debian, wrk for
//! benchmarks, iproute2/openssl/curl for the control-plane harness) when they are missing. A machine without them fails loudly here, not in a test.

use std::process::Command;

/// Debian packages the tests need, each with the program that proves it is installed.
const PACKAGES: &[(&str, &str)] = &[
    ("prometheus", "prometheus"),
    ("promtool", "prometheus"),
    ("wrk", "wrk"),
    // The control-plane harness: network namespaces, certificates, health probes.
    ("ip", "iproute2"),
    ("openssl", "openssl"),
    ("curl", "curl"),
];

/// True when `program` is on PATH.
pub fn have(program: &str) -> bool {
    crate::process::succeeds(Command::new("sh").args(["-c", &format!("command -v {program}")]))
}

/// Installs every missing package the tests need.
pub fn ensure_test_deps() -> anyhow::Result<()> {
    ensure_packages(PACKAGES)
}

/// Installs the Debian package of each missing program with apt-get; errors name the package and
/// the command.
pub fn ensure_packages(packages: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut missing: Vec<&str> = packages
        .iter()
        .filter(|(program, _)| !have(program))
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !have("apt-get") {
        anyhow::bail!(
            "the tests need {} and apt-get is not available: install them with your package manager",
            missing.join(", ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(", "));
    crate::run("apt-get", &["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    crate::process::run(
        Command::new("apt-get")
            .args(&args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    for (program, package) in packages {
        if !have(program) {
            anyhow::bail!("`{program}` is still missing after installing `{package}`");
        }
    }
    Ok(())
}
