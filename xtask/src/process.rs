//! The one way xtask runs a program. Every failure names the command line, the exit status (or
//! the signal), the tail of stderr and, where the caller gave one, a hint; a command with a
//! deadline runs in a process group of its own, which is ended whole when the deadline passes.
//! Long-lived processes (engines, control-plane components, supervised servers) start here too
//! ([`spawn_logged`]); their callers keep them running and stop them with [`signal`].

use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Lines of stderr an error shows.
const TAIL_LINES: usize = 20;

/// How [`exec`] runs a command beyond the defaults (no input, no deadline, no hint).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// Written to the command's stdin (otherwise stdin is `/dev/null`).
    pub input: Option<&'a str>,
    /// The command, and everything it started in its process group, is ended after this long.
    pub deadline: Option<Duration>,
    /// Added to the error when the program cannot be started (e.g. the package to install).
    pub missing: Option<&'a str>,
    /// Added to the error when the command fails (what is likely wrong).
    pub hint: Option<&'a str>,
}

/// The command line as a shell would show it.
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.contains(' ') {
            text.push_str(&format!(" '{arg}'"));
        } else {
            text.push(' ');
            text.push_str(&arg);
        }
    }
    text
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The last `lines` lines of a file (a log), empty when it cannot be read.
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    tail(&std::fs::read_to_string(path).unwrap_or_default(), lines)
}

fn cannot_start(shown: &str, e: std::io::Error, missing: Option<&str>) -> anyhow::Error {
    match missing {
        Some(missing) => anyhow::anyhow!("cannot start `{shown}` ({e}): {missing}"),
        None => anyhow::anyhow!("cannot start `{shown}`: {e}"),
    }
}

fn with_hint(hint: Option<&str>) -> String {
    hint.map(|h| format!(" ({h})")).unwrap_or_default()
}

fn read_all(mut from: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        bytes
    })
}

/// Runs `cmd` to completion and returns its stdout; fails with the command, status and stderr.
pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    exec(cmd, Options::default())
}

/// Runs `cmd` to completion as `options` say and returns its stdout; fails with the command,
/// its status, the tail of its stderr and the hint, or, past the deadline, with the deadline
/// after ending the command's process group.
pub fn exec(cmd: &mut Command, options: Options) -> anyhow::Result<String> {
    let shown = describe(cmd);
    cmd.stdin(if options.input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if options.deadline.is_some() {
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| cannot_start(&shown, e, options.missing))?;
    // Input, stdout and stderr each on a thread: a full pipe must never block the command.
    let writer = match (options.input, child.stdin.take()) {
        (Some(text), Some(mut stdin)) => {
            let text = text.to_string();
            Some(std::thread::spawn(move || stdin.write_all(text.as_bytes())))
        }
        _ => None,
    };
    let stdout = child.stdout.take().map(read_all);
    let stderr = child.stderr.take().map(read_all);
    let status = match options.deadline {
        None => child.wait(),
        Some(limit) => {
            let end = Instant::now() + limit;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(status),
                    Ok(None) if Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Ok(None) => {
                        let _ = signal(child.id(), "-KILL", true);
                        let _ = child.wait();
                        let stderr = stderr
                            .and_then(|t| t.join().ok())
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .unwrap_or_default();
                        anyhow::bail!(
                            "`{shown}` did not finish within {}s; its process group was ended{}:\n{}",
                            limit.as_secs_f64(),
                            with_hint(options.hint),
                            tail(&stderr, TAIL_LINES)
                        );
                    }
                    Err(e) => break Err(e),
                }
            }
        }
    }
    .map_err(|e| anyhow::anyhow!("cannot wait for `{shown}`: {e}"))?;
    let written = writer.map(|w| w.join());
    let stdout = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        anyhow::bail!(
            "`{shown}` failed with {status}{}:\n{}",
            with_hint(options.hint),
            tail(&String::from_utf8_lossy(&stderr), TAIL_LINES)
        );
    }
    if let Some(Ok(Err(e))) = written {
        anyhow::bail!("cannot write to `{shown}`: {e}");
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// Whether `cmd` runs and exits with success; its output is discarded (a probe).
pub fn succeeds(cmd: &mut Command) -> bool {
    output(cmd).is_ok()
}

/// Runs `cmd` with its output shown on stderr (long steps: their output is progress, and stdout
/// stays for results), echoing it first; fails with the command, status and hint.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    run_with(cmd, Options::default())
}

/// [`run`] with the `missing` and `hint` texts of `options` (its input and deadline are not
/// used: the command's output goes to the terminal).
pub fn run_with(cmd: &mut Command, options: Options) -> anyhow::Result<()> {
    let shown = describe(cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| cannot_start(&shown, e, options.missing))?;
    if !status.success() {
        anyhow::bail!("`{shown}` failed with {status}{}", with_hint(options.hint));
    }
    Ok(())
}

/// Runs `cmd` attached to this terminal (stdin too: it may ask a question), echoing it first;
/// fails with the command and its status (its stderr went to the terminal).
pub fn run_attached(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = describe(cmd);
    eprintln!("$ {shown}");
    let status = cmd.status().map_err(|e| cannot_start(&shown, e, None))?;
    if !status.success() {
        anyhow::bail!("`{shown}` failed with {status}");
    }
    Ok(())
}

/// Runs `producer | consumer`, failing with whichever side failed. Both are taken by value:
/// a command keeps its stdin handle until dropped, and a pipe end left open in this process
/// would keep the producer blocked forever if the consumer stopped early.
pub fn pipe(mut producer: Command, mut consumer: Command) -> anyhow::Result<String> {
    let (p, c) = (describe(&producer), describe(&consumer));
    eprintln!("$ {p} | {c}");
    let mut first = producer
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start `{p}`: {e}"))?;
    drop(producer);
    let stdout = first
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("`{p}` has no stdout"))?;
    // Read the producer's stderr meanwhile: a full stderr pipe would block it.
    let first_err = first.stderr.take().map(read_all);
    consumer
        .stdin(Stdio::from(stdout))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let second = consumer
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start `{c}`: {e}"));
    drop(consumer);
    let second = match second {
        Ok(child) => child.wait_with_output(),
        Err(e) => {
            let _ = first.kill();
            let _ = first.wait();
            return Err(e);
        }
    }
    .map_err(|e| anyhow::anyhow!("cannot wait for `{c}`: {e}"))?;
    if !second.status.success() {
        let _ = first.kill();
    }
    let status = first
        .wait()
        .map_err(|e| anyhow::anyhow!("cannot wait for `{p}`: {e}"))?;
    let first_err = first_err.and_then(|t| t.join().ok()).unwrap_or_default();
    if !second.status.success() {
        anyhow::bail!(
            "`{c}` failed with {}:\n{}",
            second.status,
            tail(&String::from_utf8_lossy(&second.stderr), TAIL_LINES)
        );
    }
    if !status.success() {
        anyhow::bail!(
            "`{p}` failed with {status}:\n{}",
            tail(&String::from_utf8_lossy(&first_err), TAIL_LINES)
        );
    }
    Ok(String::from_utf8_lossy(&second.stdout).into_owned())
}

/// Runs `cmd` with its stdout read line by line as it comes (stderr goes to the terminal);
/// `each` sees every line. Returns the exit status: the caller decides what a failure means.
pub fn lines(
    cmd: &mut Command,
    mut each: impl FnMut(&str),
) -> anyhow::Result<std::process::ExitStatus> {
    use std::io::BufRead as _;
    let shown = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| cannot_start(&shown, e, None))?;
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            match line {
                Ok(line) => each(&line),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    anyhow::bail!("cannot read the output of `{shown}`: {e}");
                }
            }
        }
    }
    child
        .wait()
        .map_err(|e| anyhow::anyhow!("cannot wait for `{shown}`: {e}"))
}

/// Whether a long-lived process shares this process' group or leads one of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Ends with this process' group (Ctrl-C reaches it).
    Shared,
    /// A group of its own: it outlives this command, and [`signal`] can end it whole.
    Own,
}

/// Starts a long-lived `cmd` with stdin from `/dev/null` and stdout and stderr appended to a new
/// file `log` (created with its folder); `missing` is added when the program cannot start.
pub fn spawn_logged(
    cmd: &mut Command,
    log: &Path,
    group: Group,
    missing: Option<&str>,
) -> anyhow::Result<Child> {
    if let Some(parent) = log.parent() {
        crate::files::mkdir(parent)?;
    }
    let out = std::fs::File::create(log)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| anyhow::anyhow!("cannot reopen {}: {e}", log.display()))?;
    if group == Group::Own {
        cmd.process_group(0);
    }
    let shown = describe(cmd);
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| cannot_start(&shown, e, missing))
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Sends `signal` (`-TERM`, `-KILL`) to `pid`, or with `group` to its whole process group;
/// true when it was delivered. Callers that stop a process usually ignore the answer: it may be
/// gone already, which is the goal, not an error.
pub fn signal(pid: u32, signal: &str, group: bool) -> bool {
    let target = if group {
        format!("-{pid}")
    } else {
        pid.to_string()
    };
    Command::new("kill")
        .args([signal, "--", &target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_command_reports_command_status_stderr_and_hint() {
        let err = output(Command::new("sh").args(["-c", "echo boom >&2; exit 3"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sh -c 'echo boom >&2; exit 3'"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        assert!(err.contains("boom"), "{err}");
        let hint = Options {
            hint: Some("is it installed?"),
            ..Options::default()
        };
        let missing = Options {
            missing: Some("install nothing-such"),
            ..Options::default()
        };
        for (program, options, expected) in [
            (
                "false",
                hint,
                "`false` failed with exit status: 1 (is it installed?)",
            ),
            (
                "/nonexistent/program",
                missing,
                "cannot start `/nonexistent/program` (",
            ),
            ("/nonexistent/program", missing, "): install nothing-such"),
        ] {
            let err = exec(&mut Command::new(program), options)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn input_reaches_the_command_and_stdout_comes_back() {
        let options = Options {
            input: Some("one\ntwo\n"),
            ..Options::default()
        };
        assert_eq!(
            exec(Command::new("wc").arg("-l"), options).unwrap().trim(),
            "2"
        );
        assert!(succeeds(&mut Command::new("true")));
        assert!(!succeeds(&mut Command::new("false")));
    }

    #[test]
    fn a_deadline_ends_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild");
        // The shell starts a grandchild that would outlive a kill of the shell alone.
        let script = format!("sleep 30 & echo $! > {}; wait", pid_file.display());
        let options = Options {
            deadline: Some(Duration::from_millis(500)),
            ..Options::default()
        };
        let started = Instant::now();
        let err = exec(Command::new("sh").args(["-c", &script]), options)
            .unwrap_err()
            .to_string();
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
        assert!(err.contains("did not finish within 0.5s"), "{err}");
        let grandchild: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) && Instant::now() < gone {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(grandchild), "the grandchild {grandchild} survived");
    }

    #[test]
    fn lines_come_one_by_one_with_the_status() {
        let mut seen = Vec::new();
        let status = lines(
            Command::new("sh").args(["-c", "echo a; echo b; exit 2"]),
            |l| seen.push(l.to_string()),
        )
        .unwrap();
        assert_eq!(seen, ["a", "b"]);
        assert_eq!(status.code(), Some(2));
    }

    #[test]
    fn pipes_report_the_failing_side() {
        let mut printf = Command::new("printf");
        printf.arg("a\\nb\\n");
        let mut wc = Command::new("wc");
        wc.arg("-l");
        let out = pipe(printf, wc).unwrap();
        assert_eq!(out.trim(), "2");
        let err = pipe(Command::new("false"), Command::new("cat"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("`false` failed"), "{err}");
        // A consumer that stops early does not leave the producer blocked.
        let mut yes = Command::new("yes");
        yes.arg("y");
        let mut head = Command::new("sh");
        head.args(["-c", "head -c 10 >/dev/null; exit 4"]);
        let err = pipe(yes, head).unwrap_err().to_string();
        assert!(err.contains("exit status: 4"), "{err}");
    }

    #[test]
    fn a_logged_process_writes_its_log_and_signal_ends_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs").join("x.log");
        let mut child = spawn_logged(
            Command::new("sh").args(["-c", "echo started; exec sleep 30"]),
            &log,
            Group::Own,
            None,
        )
        .unwrap();
        let pid = child.id();
        let seen = Instant::now() + Duration::from_secs(5);
        while tail_of_file(&log, 1) != "started" && Instant::now() < seen {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(tail_of_file(&log, 1), "started");
        assert!(alive(pid));
        assert!(signal(pid, "-TERM", true));
        assert!(!child.wait().unwrap().success());
        assert!(!alive(pid));
    }
}
