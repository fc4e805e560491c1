//! The one place kscale runs external programs (minikube, helm, kubectl, docker): [`Runner`],
//! through `duct` for commands that finish and through [`Runner::spawn`] for long-lived ones
//! (`kubectl port-forward`, in `port_forward`).
//!
//! Invariants: every external process starts in this file (the tidy test enforces it); every
//! command has a deadline (its own, or the configured `timeouts.command_seconds`), and runs in a
//! process group of its own so that the deadline ends everything it started (Ctrl-C is passed on
//! to those groups by [`interrupt_running`], as a terminal would have sent it); a failure
//! carries the command line, the exit status and the tail of stderr, plus a hint; in `--dry-run`
//! nothing is executed (actions are printed, probes answer "unknown" and callers plan for a
//! fresh machine; a long-lived process is refused).

pub mod cargo;
pub mod docker;
pub mod helm;
pub mod minikube;
pub mod port_forward;
pub mod version;

use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group};

use crate::config::TimeoutConfig;
use crate::ui::Ui;

/// How many lines of stderr an error keeps.
const STDERR_TAIL_LINES: usize = 12;

/// A command line to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    hint: Option<String>,
}

impl Cmd {
    /// A command running `program` (looked up on PATH).
    pub fn new(program: &str) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: None,
            hint: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for this command only.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Feeds `data` to the command's stdin.
    pub fn stdin(mut self, data: Vec<u8>) -> Self {
        self.stdin = Some(data);
        self
    }

    /// Kills the command after `d` (instead of the runner's default deadline).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// What to tell the user when this command fails.
    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }

    /// The program name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments.
    pub fn arguments(&self) -> &[String] {
        &self.args
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                write!(f, " '{}'", a.replace('\'', "'\\''"))?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}

/// What a finished command printed.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Whether the command exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why an external command did not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program is not on PATH.
    #[error("`{program}` was not found on PATH\n  hint: {hint}")]
    NotFound {
        /// Program name.
        program: String,
        /// How to install it.
        hint: String,
    },
    /// The program ran and failed.
    #[error("`{command}` failed with {}{}{}", status_text(*.code), stderr_block(.stderr_tail), hint_line(.hint))]
    Failed {
        /// The command line.
        command: String,
        /// Exit code, `None` when killed by a signal.
        code: Option<i32>,
        /// The last lines of stderr (or stdout when stderr was empty).
        stderr_tail: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The program ran past its deadline and was killed.
    #[error("`{command}` did not finish within {}s and was stopped{}", .after.as_secs(), hint_line(.hint))]
    TimedOut {
        /// The command line.
        command: String,
        /// The deadline.
        after: Duration,
        /// What to do about it.
        hint: Option<String>,
    },
    /// A long-lived process was asked for in `--dry-run`, which starts none.
    #[error("`{command}` was not started: --dry-run executes nothing")]
    DryRun {
        /// The command line.
        command: String,
    },
    /// Starting or waiting for the process failed.
    #[error("cannot run `{command}`: {source}")]
    Io {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn status_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "a signal".into(),
    }
}

fn stderr_block(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(
            "\n  stderr (last lines):\n{}",
            tail.lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    }
}

fn hint_line(hint: &Option<String>) -> String {
    hint.as_ref()
        .map(|h| format!("\n  hint: {h}"))
        .unwrap_or_default()
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How to install each tool kscale drives.
pub fn install_hint(program: &str) -> String {
    match program {
        "minikube" => "install minikube: https://minikube.sigs.k8s.io/docs/start/".into(),
        "helm" => "install helm 3 or 4: https://helm.sh/docs/intro/install/".into(),
        "kubectl" => "install kubectl: https://kubernetes.io/docs/tasks/tools/".into(),
        "docker" => {
            "install Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/".into()
        }
        other => format!("install `{other}` and make sure it is on PATH"),
    }
}

/// Whether a [`Runner`] executes commands or only prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Run every command.
    Real,
    /// `--dry-run`: print actions, skip probes, start nothing.
    DryRun,
}

/// Runs external commands; the only place that does.
#[derive(Clone)]
pub struct Runner {
    ui: Ui,
    dry_run: bool,
    timeouts: TimeoutConfig,
}

impl Runner {
    /// A runner reporting through `ui`, with the default deadlines.
    pub fn new(ui: Ui, execution: Execution) -> Self {
        Self {
            ui,
            dry_run: execution == Execution::DryRun,
            timeouts: TimeoutConfig::default(),
        }
    }

    /// The same runner with the configured deadlines (`timeouts.*`).
    pub fn with_timeouts(mut self, timeouts: TimeoutConfig) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The deadlines the typed wrappers give their commands.
    pub fn timeouts(&self) -> &TimeoutConfig {
        &self.timeouts
    }

    /// Whether this runner executes nothing.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The UI this runner reports through.
    pub fn ui(&self) -> &Ui {
        &self.ui
    }

    /// Where `program` is on PATH, if anywhere.
    pub fn which(&self, program: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(program))
            .find(|p| is_executable(p))
    }

    /// Runs an action: in dry-run it is printed and reported as done. Fails on a non-zero exit.
    pub fn run(&self, cmd: &Cmd) -> Result<Output, ToolError> {
        if self.dry_run {
            self.ui.plan(&format!("$ {cmd}"));
            return Ok(Output {
                code: Some(0),
                ..Output::default()
            });
        }
        let out = self.exec(cmd)?;
        if out.success() {
            Ok(out)
        } else {
            Err(failed(cmd, &out))
        }
    }

    /// Runs a read-only probe; `None` in dry-run (the caller plans for a fresh machine).
    /// The output is returned whatever the exit code: probes interpret it themselves.
    pub fn probe(&self, cmd: &Cmd) -> Result<Option<Output>, ToolError> {
        if self.dry_run {
            self.ui
                .plan(&format!("$ {cmd}    (probe, skipped in dry-run)"));
            return Ok(None);
        }
        self.exec(cmd).map(Some)
    }

    fn exec(&self, cmd: &Cmd) -> Result<Output, ToolError> {
        let command = cmd.to_string();
        if self.which(&cmd.program).is_none() {
            return Err(ToolError::NotFound {
                program: cmd.program.clone(),
                hint: install_hint(&cmd.program),
            });
        }
        self.ui.verbose(&format!("$ {command}"));
        let mut expr = duct::cmd(&cmd.program, &cmd.args)
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        for (k, v) in &cmd.env {
            expr = expr.env(k, v);
        }
        expr = match &cmd.stdin {
            Some(data) => expr.stdin_bytes(data.clone()),
            // A process group in the background that reads the terminal would be stopped.
            None => expr.stdin_null(),
        };
        // A group of its own: a deadline must end the tool's children too (helm's plugins,
        // minikube's ssh and docker), not only the tool.
        expr = expr.before_spawn(|command| {
            std::os::unix::process::CommandExt::process_group(command, 0);
            Ok(())
        });
        let io = |source| ToolError::Io {
            command: command.clone(),
            source,
        };
        // No command runs without a deadline: a hung tool must not hang kscale.
        let limit = cmd
            .timeout
            .unwrap_or(Duration::from_secs(self.timeouts.command_seconds));
        let handle = expr.start().map_err(io)?;
        let group = RunningGroup::register(&handle);
        let output = match handle.wait_timeout(limit).map_err(io)? {
            Some(o) => o.clone(),
            None => {
                group.signal(Signal::KILL);
                let _ = handle.kill();
                return Err(ToolError::TimedOut {
                    command,
                    after: limit,
                    hint: cmd.hint.clone(),
                });
            }
        };
        Ok(Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// The process groups of the commands running now (each command's pid is its group's id).
static RUNNING: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

/// One running command's process group, listed in [`RUNNING`] while the handle lives.
struct RunningGroup(Option<Pid>);

impl RunningGroup {
    fn register(handle: &duct::Handle) -> Self {
        let pid = handle
            .pids()
            .first()
            .and_then(|p| Pid::from_raw(i32::try_from(*p).ok()?));
        if let (Some(pid), Ok(mut running)) = (pid, RUNNING.lock()) {
            running.push(pid);
        }
        Self(pid)
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.0 {
            // Already gone is fine: the group ended on its own.
            let _ = kill_process_group(pid, signal);
        }
    }
}

impl Drop for RunningGroup {
    fn drop(&mut self) {
        if let (Some(pid), Ok(mut running)) = (self.0, RUNNING.lock()) {
            running.retain(|p| *p != pid);
        }
    }
}

/// Passes a Ctrl-C on to every command running now. Each runs in a process group of its own,
/// which the terminal's Ctrl-C does not reach; without this, an interrupted kscale would leave
/// them running.
pub fn interrupt_running() {
    let groups = RUNNING.lock().map(|r| r.clone()).unwrap_or_default();
    for pid in groups {
        let _ = kill_process_group(pid, Signal::INT);
    }
}

impl Runner {
    /// Starts a long-lived command (stdin closed, stdout and stderr piped, killed when the
    /// handle is dropped); its owner bounds how long it waits on it. Refused in dry-run.
    pub fn spawn(&self, cmd: &Cmd) -> Result<tokio::process::Child, ToolError> {
        let command = cmd.to_string();
        if self.dry_run {
            self.ui.plan(&format!(
                "$ {command}    (long-lived, not started in dry-run)"
            ));
            return Err(ToolError::DryRun { command });
        }
        if self.which(&cmd.program).is_none() {
            return Err(ToolError::NotFound {
                program: cmd.program.clone(),
                hint: install_hint(&cmd.program),
            });
        }
        self.ui.verbose(&format!("$ {command}"));
        let mut child = tokio::process::Command::new(&cmd.program);
        child
            .args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        child
            .spawn()
            .map_err(|source| ToolError::Io { command, source })
    }
}

/// The error for a command whose output kscale cannot read (`what`: JSON, YAML): it names the
/// command and shows the start of what it printed, since a format change of a tool must fail
/// loudly rather than read as "nothing there".
pub fn unreadable(cmd: &Cmd, out: &Output, what: &str, error: &dyn std::error::Error) -> ToolError {
    let shown: String = out.stdout.chars().take(400).collect();
    ToolError::Failed {
        command: cmd.to_string(),
        code: out.code,
        stderr_tail: format!("unreadable {what} output ({error}):\n{}", shown.trim_end()),
        hint: Some(format!(
            "run `{cmd}` yourself; a newer {} may print another format",
            cmd.program
        )),
    }
}

/// The error for a command that exited non-zero.
pub fn failed(cmd: &Cmd, out: &Output) -> ToolError {
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    ToolError::Failed {
        command: cmd.to_string(),
        code: out.code,
        stderr_tail: tail(text.trim_end(), STDERR_TAIL_LINES),
        hint: cmd.hint.clone(),
    }
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        let c = Cmd::new("helm").args(["upgrade", "--set", "a=b c", "it's"]);
        assert_eq!(c.to_string(), "helm upgrade --set 'a=b c' 'it'\\''s'");
    }

    #[test]
    fn a_failure_carries_command_status_and_stderr_tail() {
        let ui = Ui::new(crate::ui::Mode::Quiet);
        let r = Runner::new(ui, Execution::Real);
        let cmd = Cmd::new("sh")
            .args([
                "-c",
                "for i in $(seq 1 20); do echo line$i >&2; done; exit 3",
            ])
            .hint("try again");
        let err = r.run(&cmd).expect_err("exit 3 is a failure");
        let text = err.to_string();
        assert!(text.contains("`sh -c"), "{text}");
        assert!(text.contains("exit code 3"), "{text}");
        assert!(
            text.contains("line20") && !text.contains("line8\n"),
            "{text}"
        );
        assert!(text.contains("hint: try again"), "{text}");
    }

    #[test]
    fn a_missing_program_says_how_to_install_it() {
        let r = Runner::new(Ui::new(crate::ui::Mode::Quiet), Execution::Real);
        let err = r
            .run(&Cmd::new("kscale-no-such-tool"))
            .expect_err("missing");
        assert!(matches!(err, ToolError::NotFound { .. }), "{err}");
    }

    #[test]
    fn a_command_past_its_deadline_is_stopped() {
        let r = Runner::new(Ui::new(crate::ui::Mode::Quiet), Execution::Real);
        let err = r
            .run(
                &Cmd::new("sleep")
                    .arg("5")
                    .timeout(Duration::from_millis(100)),
            )
            .expect_err("timeout");
        assert!(matches!(err, ToolError::TimedOut { .. }), "{err}");
    }

    #[test]
    fn a_deadline_ends_what_the_command_started_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let r = Runner::new(Ui::new(crate::ui::Mode::Quiet), Execution::Real);
        let err = r
            .run(
                &Cmd::new("sh")
                    .args(["-c", &script])
                    .timeout(Duration::from_millis(500)),
            )
            .expect_err("timeout");
        assert!(matches!(err, ToolError::TimedOut { .. }), "{err}");
        let pid = std::fs::read_to_string(&pidfile).expect("the shell started its child");
        let stat = format!("/proc/{}/stat", pid.trim());
        // The grandchild is killed with its group; once reparented it is reaped, or a zombie.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&stat).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        }) {
            assert!(
                std::time::Instant::now() < deadline,
                "the command's child outlived its deadline: {stat}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn dry_run_executes_nothing() {
        let r = Runner::new(Ui::new(crate::ui::Mode::Quiet), Execution::DryRun);
        let out = r
            .run(&Cmd::new("sh").args(["-c", "exit 1"]))
            .expect("dry-run reports success");
        assert!(out.success());
        assert!(r.probe(&Cmd::new("true")).expect("probe").is_none());
        assert!(matches!(
            r.spawn(&Cmd::new("sleep").arg("5")),
            Err(ToolError::DryRun { .. })
        ));
    }

    #[test]
    fn a_command_without_its_own_deadline_gets_the_configured_one() {
        let timeouts = TimeoutConfig {
            command_seconds: 1,
            ..TimeoutConfig::default()
        };
        let r =
            Runner::new(Ui::new(crate::ui::Mode::Quiet), Execution::Real).with_timeouts(timeouts);
        let err = r
            .run(&Cmd::new("sleep").arg("30"))
            .expect_err("stopped at the default deadline");
        assert!(
            matches!(err, ToolError::TimedOut { after, .. } if after == Duration::from_secs(1)),
            "{err}"
        );
    }
}
