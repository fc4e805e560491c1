//! Components as detached processes inside the network namespace, each recorded in a pid file
//! (`<state>/pids/<name>.pid`) so that a later `down`, in another process, can stop it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{self, Group};

/// A running component.
#[derive(Debug, Clone)]
pub struct Started {
    /// Component name (pid and log file name).
    pub name: String,
    /// Its process id (also its process group id).
    pub pid: u32,
    /// Its log file.
    pub log: PathBuf,
    /// The command line, for error messages.
    pub command: String,
}

/// Starts `program args...` inside the namespace, detached in its own process group, with output
/// to `<logs>/<name>.log`, and records it in `<pids>/<name>.pid`.
pub fn start(
    logs: &Path,
    pids: &Path,
    name: &str,
    program: &Path,
    args: &[String],
) -> anyhow::Result<Started> {
    crate::files::mkdir(pids)?;
    let log = logs.join(format!("{name}.log"));
    let command = format!("{} {}", program.display(), args.join(" "));
    // `ip netns exec` execs the program after entering the namespace, so the pid is the program's.
    let child = process::spawn_logged(
        Command::new("ip")
            .args(["netns", "exec", &super::netns::net().netns])
            .arg(program)
            .args(args),
        &log,
        Group::Own,
        None,
    )?;
    let pid = child.id();
    let pid_file = pids.join(format!("{name}.pid"));
    std::fs::write(&pid_file, format!("{pid}\n{}\n", program.display()))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", pid_file.display()))?;
    eprintln!(
        "controlplane: started {name} (pid {pid}, log {})",
        log.display()
    );
    Ok(Started {
        name: name.to_string(),
        pid,
        log,
        command,
    })
}

/// Polls `ready` every 250 ms until it holds, the component dies, or `timeout` passes.
pub fn wait_ready(
    started: &Started,
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if !process::alive(started.pid) {
            anyhow::bail!(
                "{} exited before {what}\ncommand: {}\nlast lines of {}:\n{}",
                started.name,
                started.command,
                started.log.display(),
                process::tail_of_file(&started.log, 30)
            );
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "{} did not reach {what} within {}s\ncommand: {}\nlast lines of {}:\n{}",
                started.name,
                timeout.as_secs(),
                started.command,
                started.log.display(),
                process::tail_of_file(&started.log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A component recorded in a pid file.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Component name.
    pub name: String,
    /// Recorded pid.
    pub pid: u32,
    /// Program the pid file names.
    pub program: String,
}

impl Recorded {
    /// Alive and still the recorded program (a recycled pid is not ours).
    pub fn running(&self) -> bool {
        process::alive(self.pid)
            && std::fs::read(format!("/proc/{}/cmdline", self.pid))
                .map(|cmdline| {
                    let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
                    String::from_utf8_lossy(first) == self.program
                })
                .unwrap_or(false)
    }
}

/// Every pid file under `pids`, sorted by name.
pub fn recorded(pids: &Path) -> Vec<Recorded> {
    let Ok(entries) = std::fs::read_dir(pids) else {
        return Vec::new();
    };
    let mut found: Vec<Recorded> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let path = entry.path();
            let name = path.file_stem()?.to_string_lossy().into_owned();
            if path.extension()? != "pid" {
                return None;
            }
            let text = std::fs::read_to_string(&path).ok()?;
            let mut lines = text.lines();
            let pid = lines.next()?.trim().parse().ok()?;
            let program = lines.next()?.to_string();
            Some(Recorded { name, pid, program })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// SIGTERM to each process (group), then SIGKILL to whatever is left after `grace`.
pub fn stop_all(pids: &[(u32, bool)], grace: Duration) {
    for (pid, group) in pids {
        let _ = process::signal(*pid, "-TERM", *group);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && pids.iter().any(|(pid, _)| process::alive(*pid)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for (pid, group) in pids {
        if process::alive(*pid) {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            eprintln!(
                "controlplane: pid {pid} ({}) outlived SIGTERM by {}s; sending SIGKILL",
                name.trim(),
                grace.as_secs()
            );
            let _ = process::signal(*pid, "-KILL", *group);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && pids.iter().any(|(pid, _)| process::alive(*pid)) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_all_ends_a_process_group_and_alive_sees_it_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = process::spawn_logged(
            Command::new("sleep").arg("30"),
            &dir.path().join("sleep.log"),
            Group::Own,
            None,
        )
        .unwrap();
        let pid = child.id();
        assert!(process::alive(pid));
        stop_all(&[(pid, true)], Duration::from_secs(5));
        // Reap it: until then a dead child is a zombie, which `alive` already reports as gone.
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(!process::alive(pid));
    }

    #[test]
    fn recorded_reads_pid_files_and_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd.pid"), "4242\n/usr/bin/etcd\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let found = recorded(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "etcd");
        assert_eq!(found[0].pid, 4242);
        assert_eq!(found[0].program, "/usr/bin/etcd");
    }
}
