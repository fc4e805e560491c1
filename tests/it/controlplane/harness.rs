//! The real control plane for one test run: started through `cargo xtask controlplane` with
//! kscale's own rendered adapter rule, always torn down by [`Harness`]'s `Drop`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::server_binary;
use crate::support::settings::ControlPlaneSettings;

/// The image every deploy of these tests names (kwok runs no container; the supervisor does).
pub const IMAGE: &str = "kscale-server:harness";

/// Settings of every kscale run here, so one scale cycle takes about a minute: 1 s inferences,
/// a 10 s rate window (the adapter rule is rendered from the same settings), a 2 s mean-duration
/// target, no scale-up and 15 s scale-down stabilization, at most 4 pods.
pub const SETS: &[&str] = &[
    "app.inference_seconds=1",
    "metric.scrape_interval_seconds=1",
    "metric.rate_window_seconds=10",
    "metric.target=2",
    "hpa.max_replicas=4",
    "hpa.scale_up.stabilization_window_seconds=0",
    "hpa.scale_down.stabilization_window_seconds=15",
];

/// `--set KEY=VALUE` for each of `sets`.
pub fn set_args(sets: &[&str]) -> Vec<String> {
    sets.iter()
        .flat_map(|set| ["--set".to_string(), set.to_string()])
        .collect()
}

pub use crate::support::xtask;

/// Bounds each kubectl request of these tests, so a hung API server fails a step instead of
/// stalling the test.
pub const KUBECTL_TIMEOUT: &str = "--request-timeout=20s";

/// The running control plane; `down` on drop, pass or fail.
pub struct Harness {
    /// `KUBECONFIG` with the `kscale-harness` context.
    pub kubeconfig: PathBuf,
    /// Harness state folder (pid files, logs).
    pub state: PathBuf,
    /// `PATH` with the pinned helm first.
    pub path: String,
    /// Working folder of the kscale runs (no kscale.toml there, so only `--set` counts).
    pub work: tempfile::TempDir,
    /// Arguments of every kscale run here (`--set`s, `--server`).
    settings: Vec<String>,
}

impl Harness {
    /// Renders kscale's adapter config, starts the control plane with it and short HPA windows,
    /// and supervises the app's pods. Panics (the test fails, never skips) when anything fails.
    pub fn start(hpa_downscale_stabilization: &str) -> Self {
        let server = server_binary().expect("kscale-server binary");
        let server = server.to_string_lossy().into_owned();
        Self::start_with(
            set_args(SETS),
            None,
            &["--server", &server],
            hpa_downscale_stabilization,
        )
    }

    /// [`Harness::start`] with other kscale arguments (`settings`, e.g. `--server vllm` and its
    /// `--set`s), another adapter config (`None`: the one `settings` render) and another program
    /// per pod (`pod_program`: the supervisor's `--server PATH` or `--exposition-double SERVER`).
    pub fn start_with(
        settings: Vec<String>,
        adapter_config: Option<PathBuf>,
        pod_program: &[&str],
        hpa_downscale_stabilization: &str,
    ) -> Self {
        let work = tempfile::tempdir().expect("temp dir");
        let rendered = work.path().join("rendered");
        let out = crate::support::kscale(work.path())
            .args(&settings)
            .args(["render", "--image", IMAGE, "--output-dir"])
            .arg(&rendered)
            .output()
            .expect("run kscale render");
        assert!(
            out.status.success(),
            "kscale render failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let adapter_config = adapter_config
            .unwrap_or_else(|| rendered.join(kscale::render::file::PROMETHEUS_ADAPTER_CONFIG));
        assert!(
            adapter_config.is_file(),
            "kscale render wrote no adapter config"
        );
        // A clean start: a harness left over from an aborted run would carry old objects.
        if let Err(e) = xtask(&["controlplane", "down"]) {
            panic!("the control plane harness cannot be cleaned up:\n{e}");
        }
        let harness = Self::attach(work, settings);
        let adapter_config = adapter_config.to_string_lossy().into_owned();
        if let Err(e) = xtask(&[
            "controlplane",
            "up",
            "--adapter-config",
            &adapter_config,
            "--hpa-sync-period",
            "5s",
            "--hpa-downscale-stabilization",
            hpa_downscale_stabilization,
        ]) {
            panic!(
                "the control plane harness did not start (these tests need it: root for `ip netns`, Go for the first build):\n{e}"
            );
        }
        harness.supervise(pod_program);
        harness
    }

    /// (Re)starts the pod supervisor with `pod_program` (`--server PATH` or
    /// `--exposition-double SERVER`): the pods' old processes stop, each Running pod gets a new one.
    pub fn supervise(&self, pod_program: &[&str]) {
        let mut supervise = vec![
            "controlplane",
            "supervise",
            "--namespace",
            "default",
            "--selector",
            "app=inference",
            "--max-seconds",
            "1800",
        ];
        supervise.extend_from_slice(pod_program);
        if let Err(e) = xtask(&supervise) {
            panic!("the pod supervisor did not start:\n{e}");
        }
    }

    /// The guard for the harness whose `env` xtask prints (it is torn down on drop).
    fn attach(work: tempfile::TempDir, settings: Vec<String>) -> Self {
        let (env, _) = crate::support::settings::xtask_env::<ControlPlaneSettings>("controlplane")
            .unwrap_or_else(|e| panic!("{e}"));
        let kubeconfig = env.kubeconfig;
        let state = kubeconfig
            .parent()
            .map(Path::to_path_buf)
            .expect("kubeconfig in a folder");
        let path = format!(
            "{}:{}",
            env.kscale_harness_helm_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Self {
            kubeconfig,
            state,
            path,
            work,
            settings,
        }
    }

    /// `kscale <args>` against the harness context with the harness' settings, not started yet.
    pub fn kscale_cmd(&self, args: &[&str]) -> Command {
        self.kscale_cmd_with(&self.settings, args)
    }

    /// [`Harness::kscale_cmd`] with other settings (another `--server` and its `--set`s).
    pub fn kscale_cmd_with(&self, settings: &[String], args: &[&str]) -> Command {
        let mut cmd = crate::support::kscale(self.work.path());
        cmd.args(args)
            .args(["--context", "kscale-harness"])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", &self.path)
            .args(settings);
        cmd
    }

    /// Runs kscale against the harness context; the output with both streams.
    pub fn kscale(&self, args: &[&str]) -> Output {
        self.kscale_cmd(args).output().expect("run kscale")
    }

    /// `kubectl <args> -o json` against the harness, parsed.
    pub fn get(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--context", "kscale-harness", KUBECTL_TIMEOUT, "get"])
            .args(args)
            .args(["-o", "json", "--show-managed-fields"])
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl get {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("kubectl printed JSON")
    }

    /// Polls `probe` every 500 ms until it returns `Some`, or panics with `what` and the last
    /// state after `limit`.
    pub fn until<T>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            match probe() {
                Ok(v) => return v,
                Err(last) if Instant::now() >= deadline => {
                    panic!("{what}: not reached within {limit:?}; last: {last}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// SIGTERM to a harness component by its pid file (e.g. `prometheus-adapter`).
    pub fn stop_component(&self, name: &str) {
        let pid_file = self.state.join("pids").join(format!("{name}.pid"));
        let text = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", pid_file.display()));
        let pid = text.lines().next().unwrap_or_default().trim().to_string();
        assert!(!pid.is_empty(), "{} names no pid", pid_file.display());
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} ({name}) failed");
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        self.until(&format!("{name} exits"), Duration::from_secs(20), || {
            if proc_dir.exists() {
                Err(format!("pid {pid} still running"))
            } else {
                Ok(())
            }
        });
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Err(e) = xtask(&["controlplane", "down"]) {
            eprintln!("control plane teardown failed (run `cargo xtask controlplane down`):\n{e}");
        }
    }
}
