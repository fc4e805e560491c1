//! The kit's Docker engine: Debian's `dockerd` as a plain process (these machines have no init
//! system), with its data root in the kit's cache (the images survive) and its socket, pid file
//! and exec root in the state folder. Where the machine lacks CAP_SYS_RESOURCE, runc is replaced
//! by the kit's wrapper, which drops that capability from privileged containers (minikube's
//! nodes) instead of failing with `unable to apply caps: operation not permitted`.

use crate::{files, process};
use std::process::Command;
use std::time::{Duration, Instant};

use super::Layout;

/// True when this process' capability bounding set lacks CAP_SYS_RESOURCE (bit 24).
pub fn lacks_sys_resource() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) == 0)
}

/// The runc wrapper script with the real runc's path filled in.
pub fn runc_wrapper(real: &str) -> String {
    include_str!("../../kit/runc-wrapper.sh").replace("@REAL@", real)
}

/// A `docker` command against the kit's engine.
pub fn docker_cmd(layout: &Layout) -> Command {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", layout.docker_host());
    cmd
}

/// True when the engine answers on its socket.
pub fn running(layout: &Layout) -> bool {
    process::succeeds(docker_cmd(layout).args(["version", "--format", "{{.Server.Version}}"]))
}

fn pid_file(layout: &Layout) -> std::path::PathBuf {
    layout.state.join("dockerd.pid")
}

/// Starts the engine unless it already answers; waits until it does (60 s).
pub fn up(layout: &Layout) -> anyhow::Result<()> {
    if running(layout) {
        return Ok(());
    }
    files::mkdir(&layout.state)?;
    let data_root = layout.cache.join("docker");
    files::mkdir(&data_root)?;
    let log_path = layout.state.join("dockerd.log");
    let _ = std::fs::remove_file(layout.docker_socket());
    let mut cmd = Command::new("dockerd");
    cmd.arg(format!("--data-root={}", data_root.display()))
        .arg(format!(
            "--exec-root={}",
            layout.state.join("exec").display()
        ))
        .arg(format!("--pidfile={}", pid_file(layout).display()))
        .arg(format!("--host={}", layout.docker_host()))
        .arg("--storage-driver=overlay2");
    if lacks_sys_resource() {
        let wrapper = layout.state.join("kit-runc");
        files::write(&wrapper, runc_wrapper("/usr/sbin/runc"))?;
        files::chmod_x(&wrapper)?;
        cmd.arg(format!("--add-runtime=kit-runc={}", wrapper.display()))
            .arg("--default-runtime=kit-runc");
    }
    eprintln!("kit: starting dockerd (log {})", log_path.display());
    // A process group of its own: the engine outlives this command, as a system service would.
    process::spawn_logged(
        &mut cmd,
        &log_path,
        process::Group::Own,
        Some("install Debian's docker.io"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if running(layout) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!(
        "dockerd did not answer on {} within 60 s; its log ends with:\n{}",
        layout.docker_host(),
        process::tail_of_file(&log_path, 20)
    )
}

/// Whether `cmdline` (a `/proc/PID/cmdline`: arguments separated by NUL) is a `dockerd`
/// serving `host`.
fn is_engine_on(cmdline: &[u8], host: &str) -> bool {
    let mut args = cmdline
        .split(|b| *b == 0)
        .map(String::from_utf8_lossy)
        .filter(|a| !a.is_empty());
    let is_dockerd = args
        .next()
        .is_some_and(|program| program.rsplit('/').next() == Some("dockerd"));
    let wanted = format!("--host={host}");
    is_dockerd && args.any(|a| a == wanted)
}

/// The engine's pid: its pid file's, else that of the `dockerd` whose command line names the
/// kit's socket (the pid file is gone when the engine was stopped by hand, or the state folder
/// cleaned, while a dockerd still serves the socket).
fn engine_pid(layout: &Layout) -> Option<u32> {
    if let Ok(text) = std::fs::read_to_string(pid_file(layout))
        && let Ok(pid) = text.trim().parse::<u32>()
        && process::alive(pid)
    {
        return Some(pid);
    }
    let host = layout.docker_host();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmdline| is_engine_on(&cmdline, &host))
        })
}

/// Stops the engine (SIGTERM, then SIGKILL after 30 s); a no-op when it does not run.
pub fn down(layout: &Layout) -> anyhow::Result<()> {
    if let Some(pid) = engine_pid(layout) {
        let _ = process::signal(pid, "-TERM", false);
        let deadline = Instant::now() + Duration::from_secs(30);
        while process::alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        if process::alive(pid) {
            let _ = process::signal(pid, "-KILL", false);
        }
    }
    let _ = std::fs::remove_file(pid_file(layout));
    if running(layout) {
        anyhow::bail!(
            "an engine still answers on {} and no dockerd with that socket was found: stop it \
             by hand (`DOCKER_HOST={} docker info` shows it)",
            layout.docker_host(),
            layout.docker_host()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the wrapper for real (sh and jq) in front of a stand-in runc that records the spec
    /// it was given: where this machine lacks the capability the spec is adjusted, elsewhere it
    /// passes through unchanged.
    #[test]
    fn the_wrapper_adjusts_the_spec_only_where_the_capability_is_missing() {
        if !crate::deps::have("jq") {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set and jq is missing (cargo xtask kit build installs it)"
            );
            eprintln!("skipped: jq is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        std::fs::create_dir(&bundle).unwrap();
        let spec = serde_json::json!({
            "process": {
                "oomScoreAdj": -998,
                "capabilities": {
                    "bounding": ["CAP_CHOWN", "CAP_SYS_RESOURCE"],
                    "effective": ["CAP_SYS_RESOURCE"]
                }
            }
        });
        std::fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
        let real = dir.path().join("runc-real");
        let seen = dir.path().join("seen.json");
        std::fs::write(
            &real,
            format!(
                "#!/bin/sh\ncp \"$3\"/config.json {}\necho \"$@\"\n",
                seen.display()
            ),
        )
        .unwrap();
        crate::files::chmod_x(&real).unwrap();
        let wrapper = dir.path().join("runc");
        std::fs::write(&wrapper, runc_wrapper(&real.to_string_lossy())).unwrap();
        crate::files::chmod_x(&wrapper).unwrap();
        let out = process::output(
            Command::new(&wrapper)
                .args(["create", "--bundle"])
                .arg(&bundle)
                .arg("ctr-1"),
        )
        .unwrap();
        assert!(out.contains("ctr-1"), "{out}");
        let seen: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&seen).unwrap()).unwrap();
        if lacks_sys_resource() {
            assert!(seen["process"].get("oomScoreAdj").is_none(), "{seen}");
            assert_eq!(
                seen["process"]["capabilities"]["bounding"],
                serde_json::json!(["CAP_CHOWN"])
            );
            assert_eq!(
                seen["process"]["capabilities"]["effective"],
                serde_json::json!([])
            );
        } else {
            assert_eq!(seen, spec);
        }
    }

    #[test]
    fn the_engine_is_found_by_its_socket() {
        let host = "unix:///tmp/kscale-kit/docker.sock";
        let ours =
            b"/usr/sbin/dockerd\0--data-root=/d\0--host=unix:///tmp/kscale-kit/docker.sock\0";
        assert!(is_engine_on(ours, host));
        let other = b"dockerd\0--host=unix:///var/run/docker.sock\0";
        assert!(!is_engine_on(other, host));
        let not_dockerd = b"/bin/sh\0-c\0dockerd --host=unix:///tmp/kscale-kit/docker.sock\0";
        assert!(!is_engine_on(not_dockerd, host));
        assert!(!is_engine_on(b"", host));
    }

    #[test]
    fn the_wrapper_names_the_real_runc() {
        let script = runc_wrapper("/usr/sbin/runc.real");
        assert!(script.contains("REAL=/usr/sbin/runc.real"));
        assert!(!script.contains("@REAL@"));
    }
}
