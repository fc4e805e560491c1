//! Orchestration tests: the real `kscale` binary as a child process, with fake `minikube`, `helm`,
//! `kubectl` and `docker` first on PATH (tests/it/fakes, recording argv and answering like the
//! real tools) and a stub Kubernetes API server for its `kube` calls.
//!
//! Each test gets its own [`Env`]: a temporary directory with the fakes, the fake tools' state,
//! their call log, a kubeconfig, a working directory and a source tree with `server/Dockerfile`.

mod config_errors;
mod deploy;
mod failures;
pub mod metric_chain;
mod metric_check;
mod teardown;
mod up;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::kube_stub::StubApi;
use serde_json::json;

/// The fake tools.
pub const TOOLS: [&str; 4] = ["minikube", "helm", "kubectl", "docker"];

/// System programs the fakes use; the test PATH holds symlinks to these and nothing else, so a
/// real minikube, helm, kubectl or docker on the machine cannot leak in.
const SYSTEM_PROGRAMS: &[&str] = &[
    "bash",
    "cat",
    "cp",
    "cut",
    "grep",
    "mkdir",
    "rm",
    "sed",
    "sha256sum",
    "sleep",
    "touch",
];

/// How long one kscale run may take before the test fails (generous: the machine is shared).
const RUN_DEADLINE: Duration = Duration::from_secs(120);

fn fakes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fakes")
}

/// One test's world.
pub struct Env {
    root: tempfile::TempDir,
    /// The stub API server the kubeconfig points at.
    pub api: StubApi,
    env: Vec<(String, String)>,
    fake_env: Vec<(String, String)>,
}

/// A finished kscale run.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// Panics with the output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless stderr contains every one of `parts`.
    #[track_caller]
    pub fn stderr_has(&self, parts: &[&str]) -> &Self {
        for p in parts {
            assert!(
                self.stderr.contains(p),
                "stderr lacks {p:?}\n--- stderr\n{}",
                self.stderr
            );
        }
        self
    }

    /// Panics unless stdout contains every one of `parts`.
    #[track_caller]
    pub fn stdout_has(&self, parts: &[&str]) -> &Self {
        for p in parts {
            assert!(
                self.stdout.contains(p),
                "stdout lacks {p:?}\n--- stdout\n{}",
                self.stdout
            );
        }
        self
    }
}

/// Kills the child and its process group (the fakes it started) if the test panics while it
/// runs.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            signal_group(self.0.id(), "KILL");
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `signal` to the process group `pgid` (what a terminal does on Ctrl-C).
pub fn signal_group(pgid: u32, signal: &str) {
    // bash's builtin kill: bash is needed by the fakes anyway, procps' kill may be absent.
    let _ = Command::new("bash")
        .args(["-c", &format!("kill -{signal} -- -{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A kscale run in progress.
pub struct Running {
    guard: ChildGuard,
    start: Instant,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
    what: String,
}

impl Running {
    /// Its process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.guard.0.id()
    }

    /// Waits for it to exit (at most [`RUN_DEADLINE`]).
    pub fn wait(mut self) -> Run {
        let status = loop {
            if let Some(st) = self.guard.0.try_wait().expect("wait") {
                break st;
            }
            assert!(
                self.start.elapsed() < RUN_DEADLINE,
                "{} ran past {RUN_DEADLINE:?}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = self.start.elapsed();
        // The fakes it started may still hold the pipes open; they are part of its group.
        signal_group(self.pid(), "KILL");
        Run {
            code: status.code(),
            stdout: self.stdout.join().expect("stdout reader"),
            stderr: self.stderr.join().expect("stderr reader"),
            elapsed,
        }
    }
}

impl Env {
    /// Every fake tool on PATH, a fresh machine (no cluster, no repos, no images).
    pub fn new() -> Self {
        Self::with_tools(&TOOLS)
    }

    /// Only `tools` on PATH.
    pub fn with_tools(tools: &[&str]) -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        for d in ["bin", "sys", "state", "work", "home", "source/server/src"] {
            std::fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        let mut names: Vec<&str> = tools.to_vec();
        names.push("lib.sh");
        for name in names {
            let to = r.join("bin").join(name);
            std::fs::copy(fakes_dir().join(name), &to).expect("copy fake");
            set_mode(&to, 0o755);
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        for prog in SYSTEM_PROGRAMS {
            let found = std::env::split_paths(&path)
                .map(|d| d.join(prog))
                .find(|p| p.is_file())
                .unwrap_or_else(|| panic!("the fakes need `{prog}` on PATH"));
            std::os::unix::fs::symlink(&found, r.join("sys").join(prog)).expect("symlink");
        }
        std::fs::write(r.join("log"), "").expect("log");
        write_source(&r.join("source"));
        let api = StubApi::start();
        // metrics-server serves one entry per node once the addon is enabled.
        let state = r.join("state");
        let st = state.clone();
        api.route(move |req, _| {
            if req.method != "GET" || req.path != "/apis/metrics.k8s.io/v1beta1/nodes" {
                return None;
            }
            let enabled = std::fs::read_dir(st.join("minikube/profiles"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|p| p.path().join("addons/metrics-server").exists());
            if !enabled {
                return Some((
                    503,
                    crate::support::kube_stub::status(503, "ServiceUnavailable", "the server is currently unable to handle the request"),
                ));
            }
            Some((
                200,
                json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
                       "items": [{"metadata": {"name": "kscale"}, "timestamp": "2026-11-27T20:00:00Z", "window": "15s",
                                  "usage": {"cpu": "250m", "memory": "1200Mi"}}]}),
            ))
        });
        // prometheus-adapter's chart registers the external metrics APIService; Available once
        // the release is deployed.
        let st = state.clone();
        api.route(move |req, _| {
            let name = "v1beta1.external.metrics.k8s.io";
            if req.method != "GET"
                || req.path != format!("/apis/apiregistration.k8s.io/v1/apiservices/{name}")
            {
                return None;
            }
            let status_file = st.join("helm/releases/monitoring/prometheus-adapter/status");
            match std::fs::read_to_string(status_file) {
                Ok(s) if s.trim() == "deployed" => Some((
                    200,
                    json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                           "metadata": {"name": name, "resourceVersion": "1"},
                           "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                                    "groupPriorityMinimum": 100, "versionPriority": 100,
                                    "service": {"name": "prometheus-adapter", "namespace": "monitoring", "port": 443}},
                           "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Passed",
                                                      "message": "all checks passed",
                                                      "lastTransitionTime": "2026-11-27T20:00:00Z"}]}}),
                )),
                _ => Some((
                    404,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": format!("apiservices.apiregistration.k8s.io \"{name}\" not found"),
                           "reason": "NotFound", "details": {"name": name, "group": "apiregistration.k8s.io", "kind": "apiservices"},
                           "code": 404}),
                )),
            }
        });
        metric_chain::install(&api, state.clone());
        let env = vec![
            (
                "PATH".into(),
                format!("{}:{}", r.join("bin").display(), r.join("sys").display()),
            ),
            ("HOME".into(), r.join("home").display().to_string()),
            (
                "KUBECONFIG".into(),
                r.join("kubeconfig").display().to_string(),
            ),
        ];
        let fake_env = vec![
            ("KSCALE_FAKE_STATE".into(), state.display().to_string()),
            (
                "KSCALE_FAKE_LOG".into(),
                r.join("log").display().to_string(),
            ),
            ("KSCALE_FAKE_API_URL".into(), api.url()),
        ];
        let env = Self {
            root,
            api,
            env,
            fake_env,
        };
        env.write_fake_env();
        env
    }

    /// Sets a variable for every later run: `KSCALE_FAKE_*` ones for the fakes (through
    /// bin/fakes.env, since kscale refuses unknown `KSCALE_*` variables), others for kscale and
    /// the fakes alike.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let list = if key.starts_with("KSCALE_FAKE_") {
            &mut self.fake_env
        } else {
            &mut self.env
        };
        list.retain(|(k, _)| k != key);
        list.push((key.into(), value.into()));
        self.write_fake_env();
    }

    fn write_fake_env(&self) {
        let text: String = self
            .fake_env
            .iter()
            .map(|(k, v)| format!("export {k}='{}'\n", v.replace('\'', "'\\''")))
            .collect();
        std::fs::write(self.root().join("bin/fakes.env"), text).expect("write fakes.env");
    }

    /// The root of this test's directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The source tree holding server/Dockerfile.
    pub fn source(&self) -> PathBuf {
        self.root().join("source")
    }

    /// The fake tools' state directory.
    pub fn state(&self) -> PathBuf {
        self.root().join("state")
    }

    /// The working directory of kscale.
    pub fn work(&self) -> PathBuf {
        self.root().join("work")
    }

    /// `kscale up --source <the source tree>`.
    pub fn up(&self) -> Run {
        self.up_with(&[])
    }

    /// [`Env::up`] with more arguments (`--set`s).
    pub fn up_with(&self, extra: &[&str]) -> Run {
        let src = self.source().display().to_string();
        let mut args = vec!["up", "--source", &src];
        args.extend_from_slice(extra);
        self.kscale(&args)
    }

    /// Runs kscale with `args`, stdin closed (no TTY), and waits for it.
    pub fn kscale(&self, args: &[&str]) -> Run {
        self.kscale_with(args, &[])
    }

    /// Runs kscale with extra environment variables.
    pub fn kscale_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        self.spawn(args, extra).wait()
    }

    /// Starts kscale in its own process group (as a shell job would be) without waiting.
    pub fn spawn(&self, args: &[&str], extra: &[(&str, &str)]) -> Running {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = crate::support::kscale(&self.work());
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let start = Instant::now();
        let mut guard = ChildGuard(cmd.spawn().expect("spawn kscale"));
        let mut out = guard.0.stdout.take().expect("stdout");
        let mut err = guard.0.stderr.take().expect("stderr");
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Running {
            guard,
            start,
            stdout,
            stderr,
            what: format!("kscale {args:?}"),
        }
    }

    /// The fake tools' calls so far, one line each, with temporary paths and content tags
    /// replaced by stable placeholders.
    pub fn log(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.root().join("log")).expect("log");
        text.lines().map(|l| self.normalize(l)).collect()
    }

    /// Forgets the calls so far (fake log and API requests).
    pub fn clear_log(&self) {
        std::fs::write(self.root().join("log"), "").expect("log");
        self.api.clear_seen();
    }

    /// The calls that could change something (everything but version and read-only probes).
    pub fn mutating_calls(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| !is_read_only(l))
            .collect()
    }

    fn normalize(&self, line: &str) -> String {
        let source = self.source().display().to_string();
        line.split(' ')
            .map(|tok| {
                if let Some(rest) = tok.strip_prefix(&source) {
                    format!("<source>{rest}")
                } else if tok.starts_with('/') {
                    // kscale's own temporary files (helm values).
                    format!("<tmp>/{}", tok.rsplit('/').next().unwrap_or_default())
                } else {
                    redact_tag(tok)
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A minikube profile as if created earlier: `status` (Running, Stopped…) with `nodes` nodes,
    /// and the kubeconfig minikube would have written.
    pub fn seed_profile(&self, name: &str, status: &str, nodes: u32) {
        let p = self.state().join("minikube/profiles").join(name);
        std::fs::create_dir_all(p.join("addons")).expect("mkdir");
        std::fs::write(p.join("status"), format!("{status}\n")).expect("write");
        std::fs::write(p.join("nodes"), format!("{nodes}\n")).expect("write");
        std::fs::write(p.join("images"), "").expect("write");
        self.write_kubeconfig(name);
    }

    /// A kubeconfig whose only context, `context`, points at the stub API (any cluster, not a
    /// minikube profile).
    pub fn write_kubeconfig(&self, context: &str) {
        let kubeconfig = crate::support::fixtures::kubeconfig(context, &self.api.url(), None);
        std::fs::write(self.root().join("kubeconfig"), kubeconfig).expect("write");
    }

    /// Sets the status of an existing minikube profile (as `minikube stop` would).
    pub fn set_profile_status(&self, name: &str, status: &str) {
        let p = self
            .state()
            .join("minikube/profiles")
            .join(name)
            .join("status");
        assert!(p.exists(), "profile {name} does not exist");
        std::fs::write(p, format!("{status}\n")).expect("write");
    }

    /// Whether the fake minikube has the profile.
    pub fn profile_exists(&self, name: &str) -> bool {
        self.state().join("minikube/profiles").join(name).is_dir()
    }

    /// Names of the installed helm releases in `namespace`, sorted.
    pub fn releases(&self, namespace: &str) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(self.state().join("helm/releases").join(namespace))
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
        names.sort();
        names
    }

    /// Brings the whole stack up with a fresh `kscale up` and forgets its calls.
    pub fn up_fresh(&self) -> Run {
        let run = self.up();
        run.expect_code(0);
        self.clear_log();
        run
    }

    /// `resourceVersion` of every object in the stub API.
    pub fn versions(&self) -> BTreeMap<String, String> {
        self.api.versions()
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A minimal server source tree: what kscale hashes into the image tag and builds.
fn write_source(dir: &Path) {
    std::fs::write(
        dir.join("Cargo.lock"),
        "# lock file of the test tree\nversion = 4\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("server/Dockerfile"),
        "FROM scratch\nCOPY server/src /src\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("server/src/main.rs"),
        "fn main() { println!(\"inference\"); }\n",
    )
    .expect("write");
}

/// Replaces the 12 hex digits of a `kscale-server:` content tag with `<tag>`.
pub fn redact_tag(s: &str) -> String {
    let marker = "kscale-server:";
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(marker) {
        let after = &rest[i + marker.len()..];
        let hex = after.chars().take_while(|c| c.is_ascii_hexdigit()).count();
        out.push_str(&rest[..i + marker.len()]);
        if hex == 12 {
            out.push_str("<tag>");
            rest = &after[12..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Whether a logged call only reads: versions and the probes kscale makes before deciding.
pub fn is_read_only(line: &str) -> bool {
    const READ_ONLY: &[&str] = &[
        "minikube version",
        "minikube profile list",
        "minikube addons list",
        "minikube image ls",
        "helm version",
        "helm repo list",
        "kubectl version",
        "docker --version",
        "docker version",
        "docker image inspect",
        "docker network ls",
    ];
    let helm_read = line.starts_with("helm --kube-context")
        && (line.contains(" list ") || line.contains(" get values "));
    helm_read || READ_ONLY.iter().any(|p| line.starts_with(p))
}

/// The API requests that could change something, as "METHOD path".
pub fn mutating_requests(env: &Env) -> Vec<String> {
    env.api
        .seen()
        .into_iter()
        .filter(|s| s.mutating())
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}
