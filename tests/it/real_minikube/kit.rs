//! The kit's environment for a test (`cargo xtask kit env`) and bounded commands in it.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::settings::KitSettings;

/// The kit's settings, read from `cargo xtask kit env --format json`.
pub struct Kit {
    settings: KitSettings,
    env: BTreeMap<String, String>,
}

/// Polls `check` every 2 s until it returns `Some`, panicking with `what` after `deadline`.
pub fn poll<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {:.0} s waiting until {what}",
            deadline.as_secs_f64()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

impl Kit {
    /// The built kit, or `None` (test skipped with a message) when it is not built and `CI` is
    /// unset; with `CI` set a missing kit fails the test.
    pub fn load() -> Option<Self> {
        let (settings, env) = crate::support::needs::available(
            "the minikube kit is not usable here (`cargo xtask kit build`; needs root, Go and Debian's docker.io)",
            crate::support::settings::xtask_env::<KitSettings>("kit"),
        )?;
        Some(Self { settings, env })
    }

    /// `MINIKUBE_HOME`.
    pub fn minikube_home(&self) -> PathBuf {
        self.settings.minikube_home.clone()
    }

    /// `minikube start` flags the kit needs.
    pub fn start_flags(&self) -> Vec<String> {
        words(&self.settings.kscale_kit_start_flags)
    }

    /// `minikube addons enable metrics-server` flags for the kit's image.
    pub fn metrics_server_flags(&self) -> Vec<String> {
        words(&self.settings.kscale_kit_metrics_server_flags)
    }

    /// The busybox image built by the kit.
    pub fn busybox(&self) -> String {
        self.settings.kscale_kit_busybox_image.clone()
    }

    /// The kit's llama.cpp `llama-server` image (not in the nodes: `kscale up` loads it).
    pub fn llama_image(&self) -> String {
        self.settings.kscale_kit_llama_image.clone()
    }

    /// The path of the tiny model inside [`Kit::llama_image`].
    pub fn llama_model(&self) -> String {
        self.settings.kscale_kit_llama_model.clone()
    }

    /// `program` with the machine's environment (minikube and docker need its home, user and
    /// kubeconfig) but none of kscale's settings but the kit's own.
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KSCALE_") {
                cmd.env_remove(name);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs with a deadline; (success, stdout, stderr). A command past its deadline is killed.
    pub fn bounded(
        &self,
        program: &str,
        args: &[&str],
        deadline: Duration,
    ) -> (bool, String, String) {
        let (status, out, err) = self.spawn(program, args).wait(deadline);
        (status == Some(0), out, err)
    }

    /// Starts `program` with its output collected, to be waited for later.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Background {
        let mut child = self
            .command(program, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Background {
            child,
            out: Some(out),
            err: Some(err),
        }
    }

    /// Runs and returns stdout; panics with the command, stdout and stderr when it fails.
    pub fn ok(&self, program: &str, args: &[&str], deadline: Duration) -> String {
        let (ok, out, err) = self.bounded(program, args, deadline);
        assert!(ok, "`{program} {}` failed:\n{out}\n{err}", args.join(" "));
        out
    }

    /// Runs (60 s at most) and returns stdout when it succeeds.
    pub fn try_ok(&self, program: &str, args: &[&str]) -> Option<String> {
        let (ok, out, _) = self.bounded(program, args, Duration::from_secs(60));
        ok.then_some(out)
    }

    /// Runs (5 min at most) whatever the outcome; stdout and stderr together.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let (_, out, err) = self.bounded(program, args, Duration::from_secs(300));
        format!("{out}{err}")
    }

    /// Parses the JSON a command prints (retrying for 60 s: the API server may be restarting).
    pub fn json(&self, program: &str, args: &[&str]) -> serde_json::Value {
        poll(
            &format!("`{program} {}` answers", args.join(" ")),
            Duration::from_secs(60),
            || {
                let out = self.try_ok(program, args)?;
                serde_json::from_str(&out).ok()
            },
        )
    }

    /// `kubectl apply` of one JSON object.
    pub fn apply(&self, context: &str, object: &str) {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), object).expect("write manifest");
        let path = file.path().to_string_lossy().into_owned();
        self.ok(
            "kubectl",
            &["--context", context, "apply", "-f", &path],
            Duration::from_secs(60),
        );
    }

    /// Resident memory of each node container, from its memory cgroup (`docker stats` reads 0
    /// under cgroup v1 with Debian's engine).
    pub fn cluster_memory(&self, profile: &str) -> String {
        [profile.to_string(), format!("{profile}-m02")]
            .iter()
            .map(|node| {
                let id = self.run("docker", &["inspect", "--format", "{{.Id}}", node]);
                let id = id.trim();
                let v1 = format!("/sys/fs/cgroup/memory/docker/{id}/memory.stat");
                let rss = std::fs::read_to_string(&v1).ok().and_then(|stat| {
                    stat.lines()
                        .find_map(|l| l.strip_prefix("total_rss "))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                });
                match rss {
                    Some(bytes) => format!("{node} {} MiB resident", bytes >> 20),
                    None => format!("{node} (no memory cgroup v1 at {v1})"),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Everything `profile` owns, as `docker` sees it and as processes, and its profile folder.
    pub fn leftovers(&self, profile: &str) -> Vec<String> {
        let mut left = Vec::new();
        let label = format!("label=name.minikube.sigs.k8s.io={profile}");
        for (what, args) in [
            (
                "container",
                vec!["ps", "-a", "-q", "--filter", label.as_str()],
            ),
            (
                "volume",
                vec!["volume", "ls", "-q", "--filter", label.as_str()],
            ),
            (
                "network",
                vec!["network", "ls", "-q", "--filter", label.as_str()],
            ),
        ] {
            let out = self.ok("docker", &args, Duration::from_secs(30));
            left.extend(out.lines().map(|id| format!("{what} {id}")));
        }
        let names = self.ok(
            "docker",
            &["ps", "-a", "--format", "{{.Names}}"],
            Duration::from_secs(30),
        );
        left.extend(
            names
                .lines()
                .filter(|n| n.starts_with(profile))
                .map(|n| format!("container {n}")),
        );
        let processes = self.run("pgrep", &["-a", "-f", profile]);
        left.extend(
            processes
                .lines()
                .filter(|l| !l.contains("pgrep") && !l.trim().is_empty())
                .map(|l| format!("process {l}")),
        );
        if self.minikube_home().join("profiles").join(profile).exists() {
            left.push(format!("profile folder {profile}"));
        }
        left
    }

    /// Deletes the profile when dropped, so a failing test leaves no cluster behind.
    pub fn delete_on_drop<'a>(&'a self, profile: &'a str) -> DeleteOnDrop<'a> {
        DeleteOnDrop { kit: self, profile }
    }
}

/// See [`Kit::delete_on_drop`].
pub struct DeleteOnDrop<'a> {
    kit: &'a Kit,
    profile: &'a str,
}

impl Drop for DeleteOnDrop<'_> {
    /// A second delete when minikube left the profile's network behind (a race of its own), so
    /// the next run starts clean.
    fn drop(&mut self) {
        let label = format!("label=name.minikube.sigs.k8s.io={}", self.profile);
        for _ in 0..2 {
            self.kit
                .run("minikube", &["delete", "--profile", self.profile]);
            let left = self
                .kit
                .run("docker", &["network", "ls", "-q", "--filter", &label]);
            if left.trim().is_empty() {
                break;
            }
        }
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// A command started by [`Kit::spawn`]; killed when dropped unwaited (a test that panics does
/// not leave it running).
pub struct Background {
    child: std::process::Child,
    out: Option<std::thread::JoinHandle<String>>,
    err: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        if !self.is_finished() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Background {
    /// Whether it has exited.
    pub fn is_finished(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits until it exits, killing it past `deadline`; (exit code, stdout, stderr), the code
    /// `None` when it was killed or ended by a signal.
    pub fn wait(mut self, deadline: Duration) -> (Option<i32>, String, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break Some(status);
            }
            if started.elapsed() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let collected = |h: Option<std::thread::JoinHandle<String>>| {
            h.and_then(|h| h.join().ok()).unwrap_or_default()
        };
        let (out, err) = (collected(self.out.take()), collected(self.err.take()));
        match status {
            Some(status) => (status.code(), out, err),
            None => (
                None,
                out,
                format!("{err}\n(killed after {:.0} s)", deadline.as_secs_f64()),
            ),
        }
    }
}
