//! The real `kscale up` on real minikube, as a user of an offline machine runs it (what `cargo
//! xtask up` runs there): the kit's settings from `cargo xtask kit env` (its tools first on PATH,
//! and the `KSCALE_*` settings for the kit: its base image, its chart values, a host-built server
//! image, Grafana off) and the pinned charts from `../shared/charts`. Every step goes
//! through the `kscale` binary; `kubectl`, `helm` and `docker` only look, except in the fault
//! run (`up/faults.rs`), which makes its faults with them.
//!
//! The metric is the fast profile (`concurrency`, 2 s scrapes) with a 30 s scale-down window, so
//! a load step shows a scale-up and a scale-down within minutes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::kit::{Kit, poll};

mod faults;

/// The minikube profile of this test.
const PROFILE: &str = "kscale-e2e";

/// The packaged charts (read-only test inputs beside the repository), or `None` when absent.
fn shared_charts() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/charts");
    dir.join("kube-prometheus-stack-88.5.3.tgz")
        .is_file()
        .then(|| dir.canonicalize().unwrap_or(dir))
}

/// Where the run keeps what it records (timelines, the picture), for a person to look at.
fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/minikube-e2e");
    std::fs::create_dir_all(&dir).expect("create target/minikube-e2e");
    dir
}

fn unix_now() -> f64 {
    kscale::timeline::unix_now().unwrap_or_default()
}

/// One `kscale` run: its outcome, stdout, stderr and duration.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn text(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.text()))
    }
}

struct E2e {
    kit: Kit,
    charts: PathBuf,
    /// `--set` values of the server under test (empty: kscale-server).
    server: std::sync::Mutex<Vec<String>>,
}

impl E2e {
    /// `--set` arguments of every kscale run here.
    fn sets(&self) -> Vec<String> {
        [
            format!("cluster.profile={PROFILE}"),
            format!("monitoring.chart_source={}", self.charts.display()),
            "metric.profile=concurrency".into(),
            "hpa.max_replicas=4".into(),
            "hpa.scale_down.stabilization_window_seconds=30".into(),
        ]
        .iter()
        .chain(&self.server.lock().expect("server args").clone())
        .flat_map(|s| ["--set".to_string(), s.clone()])
        .collect()
    }

    /// `args` with the run's `--set`s after the subcommand (they are accepted everywhere).
    fn with_sets(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let at = all.len().min(1);
        for (i, s) in self.sets().into_iter().enumerate() {
            all.insert(at + i, s);
        }
        all
    }

    fn kscale(&self, args: &[&str], deadline: Duration) -> Run {
        let all = self.with_sets(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let started = Instant::now();
        let (ok, stdout, stderr) =
            self.kit
                .bounded(crate::support::process::KSCALE, &refs, deadline);
        Run {
            ok,
            stdout,
            stderr,
            took: started.elapsed(),
        }
    }

    fn kubectl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--context", PROFILE];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        self.kit.json("kubectl", &all)
    }

    /// (release, revision) of every helm release kscale installed.
    fn helm_revisions(&self) -> Vec<(String, String)> {
        let out = self.kit.ok(
            "helm",
            &[
                "--kube-context",
                PROFILE,
                "list",
                "-n",
                "monitoring",
                "-o",
                "json",
            ],
            Duration::from_secs(60),
        );
        let list: serde_json::Value = serde_json::from_str(&out).expect("helm list JSON");
        let mut releases: Vec<(String, String)> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| (r["name"].to_string(), r["revision"].to_string()))
            .collect();
        releases.sort();
        releases
    }

    /// The Deployment's generation and image.
    fn deployment(&self) -> (i64, String) {
        let d = self.kubectl_json(&["-n", "default", "get", "deployment", "inference"]);
        (
            d["metadata"]["generation"].as_i64().unwrap_or(-1),
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
        )
    }

    /// `kubectl --context PROFILE ARGS` (60 s at most); its stdout, or a panic naming it.
    fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["--context", PROFILE];
        all.extend_from_slice(args);
        self.kit.ok("kubectl", &all, Duration::from_secs(60))
    }

    /// `kubectl scale` of prometheus-adapter's Deployment to `replicas`.
    fn scale_adapter(&self, replicas: &str) {
        self.kubectl(&[
            "-n",
            "monitoring",
            "scale",
            "deployment",
            "prometheus-adapter",
            "--replicas",
            replicas,
        ]);
    }

    /// `kubectl get -o json` in the default namespace, once; `None` when it fails (the API
    /// server may be busy or restarting).
    fn try_get(&self, what: &str) -> Option<serde_json::Value> {
        let out = self.kit.try_ok(
            "kubectl",
            &[
                "--context",
                PROFILE,
                "-n",
                "default",
                "get",
                what,
                "-o",
                "json",
            ],
        )?;
        serde_json::from_str(&out).ok()
    }

    /// (the HPA's desired replicas, ready pods of the app, their nodes, the
    /// PodDisruptionBudget's `disruptionsAllowed`), in one `kubectl` call so the samples stay
    /// close together on a busy machine.
    fn scale_state(&self) -> Option<(i64, i64, Vec<String>, Option<i64>)> {
        let list = self.try_get("hpa,pods,pdb")?;
        let items = list["items"].as_array()?;
        let desired = items
            .iter()
            .find(|i| i["kind"] == "HorizontalPodAutoscaler")?["status"]["desiredReplicas"]
            .as_i64()
            .unwrap_or(0);
        let ready: Vec<&serde_json::Value> = items
            .iter()
            .filter(|i| i["kind"] == "Pod" && i["metadata"]["labels"]["app"] == "inference")
            .filter(|p| ready(p))
            .collect();
        let mut nodes: Vec<String> = ready
            .iter()
            .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
            .collect();
        nodes.sort();
        nodes.dedup();
        let allowed = items
            .iter()
            .find(|i| i["kind"] == "PodDisruptionBudget")
            .and_then(|b| b["status"]["disruptionsAllowed"].as_i64());
        Some((desired, ready.len() as i64, nodes, allowed))
    }

    /// Nothing of the profile is left: not in `minikube profile list`, and no container,
    /// volume, network, process or profile folder.
    fn assert_nothing_left(&self) {
        let profiles = self.kit.run("minikube", &["profile", "list", "-o", "json"]);
        assert!(
            !profiles.contains(&format!("\"Name\":\"{PROFILE}\"")),
            "the profile is left: {profiles}"
        );
        let left = self.kit.leftovers(PROFILE);
        assert!(left.is_empty(), "kscale teardown left: {left:?}");
    }
}

/// Whether a pod is Ready and not being deleted.
fn ready(pod: &serde_json::Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// A copy of the repository's tracked files with the build cache of the host-built image, so a
/// code change can be made without touching the checkout.
fn copy_of_the_sources(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z"])
        .output()
        .expect("git ls-files");
    assert!(files.status.success(), "git ls-files failed");
    for rel in files.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let rel = String::from_utf8_lossy(rel).into_owned();
        let (from, dest) = (root.join(&rel), to.join(&rel));
        if !from.is_file() {
            continue;
        }
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&from, &dest).expect("copy a source file");
    }
    let cache = root.join("target/kscale-server-image");
    if cache.is_dir() {
        // Into `target/`, so the copy is `target/kscale-server-image` as the build expects
        // (copied onto a missing `target`, cp would make the cache `target` itself).
        std::fs::create_dir_all(to.join("target")).expect("mkdir target");
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&cache)
            .arg(to.join("target"))
            .status()
            .expect("cp");
        assert!(status.success(), "copying the build cache failed");
    }
}

/// Fresh `kscale up` to 6/6; a re-run that changes nothing; `kscale deploy` after a code change;
/// a load step that scales real pods onto both nodes and back with no failed request, watched and
/// recorded by `kscale metrics` and drawn by `kscale plot`; the failure paths (adapter gone, an
/// image that cannot start); `kscale teardown --yes` leaving nothing behind.
#[test]
fn kscale_up_on_real_minikube() {
    let Some(kit) = Kit::load() else {
        return;
    };
    let Some(charts) = shared_charts() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and ../shared/charts (the pinned packaged charts) is missing"
        );
        eprintln!("skipped: ../shared/charts is not here");
        return;
    };
    let e2e = E2e {
        kit,
        charts,
        server: Default::default(),
    };
    // A previous run that was killed may have left its profile.
    e2e.kit.run("minikube", &["delete", "--profile", PROFILE]);
    let _cleanup = e2e.kit.delete_on_drop(PROFILE);

    // 1. Fresh `kscale up`, all the way to the six stages.
    let up = e2e.kscale(&["up", "--output", "json"], Duration::from_secs(30 * 60));
    assert!(up.ok, "kscale up failed:\n{}", up.text());
    let mut figures = Figures::default();
    figures.set("up_fresh_seconds", up.took.as_secs_f64());
    eprintln!(
        "kscale up (fresh, to 6/6): {:.0} s; its progress:\n{}",
        up.took.as_secs_f64(),
        up.stderr
    );
    let report = up.json();
    assert_eq!(report["metrics"]["passed"], true, "{}", up.text());
    assert_eq!(
        report["metrics"]["stages"].as_array().map(Vec::len),
        Some(6),
        "{}",
        up.text()
    );
    let nodes = e2e.kubectl_json(&["get", "nodes"]);
    assert_eq!(nodes["items"].as_array().map(Vec::len), Some(2));

    // 2. A second `up` changes nothing: no helm upgrade, no rollout.
    let revisions = e2e.helm_revisions();
    assert_eq!(revisions.len(), 2, "{revisions:?}");
    let before = e2e.deployment();
    let again = e2e.kscale(&["up", "--output", "json"], Duration::from_secs(15 * 60));
    assert!(again.ok, "second kscale up failed:\n{}", again.text());
    eprintln!("kscale up (re-run): {:.1} s", again.took.as_secs_f64());
    figures.set("up_rerun_seconds", again.took.as_secs_f64());
    assert_eq!(
        e2e.helm_revisions(),
        revisions,
        "a re-run upgraded a release"
    );
    assert_eq!(e2e.deployment(), before, "a re-run rolled out");

    // 3. A change to the server's code: `deploy` rebuilds, loads and rolls out.
    let sources = tempfile::tempdir().expect("temp dir");
    copy_of_the_sources(sources.path());
    let main_rs = sources.path().join("server/src/main.rs");
    let mut code = std::fs::read_to_string(&main_rs).expect("server/src/main.rs");
    // A change no earlier run made, so the image is built now rather than found in Docker.
    code.push_str(&format!(
        "\n// A change made by the real-minikube test at {}.\n",
        unix_now()
    ));
    std::fs::write(&main_rs, code).expect("write server/src/main.rs");
    let source = sources.path().to_string_lossy().into_owned();
    let deploy = e2e.kscale(
        &["deploy", "--source", &source, "--output", "json"],
        Duration::from_secs(20 * 60),
    );
    assert!(deploy.ok, "kscale deploy failed:\n{}", deploy.text());
    eprintln!(
        "kscale deploy after a code change: {:.0} s; its progress:\n{}",
        deploy.took.as_secs_f64(),
        deploy.stderr
    );
    figures.set("deploy_after_change_seconds", deploy.took.as_secs_f64());
    let after = e2e.deployment();
    assert_ne!(after.1, before.1, "the image did not change");
    assert!(after.0 > before.0, "no rollout: {before:?} -> {after:?}");

    // 4 and 5. A load step through the NodePort, watched and recorded.
    load_step(&e2e, &mut figures, &KSCALE_LOAD);

    // 5b. Faults during a steady load: a pod killed, the second node drained.
    let fault_goals_missed = faults::fault_run(&e2e, &mut figures);

    // 7. Failure paths on the real cluster.
    adapter_gone(&e2e);
    image_cannot_start(&e2e);

    // 8. The same stack switched to a real inference server: llama.cpp's llama-server.
    llamacpp(&e2e, &mut figures);

    // 6. Teardown leaves nothing.
    let down = e2e.kscale(&["teardown", "--yes"], Duration::from_secs(15 * 60));
    assert!(down.ok, "kscale teardown failed:\n{}", down.text());
    eprintln!("kscale teardown: {:.0} s", down.took.as_secs_f64());
    figures.set("teardown_seconds", down.took.as_secs_f64());
    e2e.assert_nothing_left();
    assert!(
        fault_goals_missed.is_empty(),
        "fault goals missed (target/minikube-e2e/faults.json):\n{}",
        fault_goals_missed.join("\n")
    );
    figures.write(&out_dir().join(FIGURES));
}

/// The run's figures, for `cargo xtask bench-minikube`, which reads them from this file in
/// [`out_dir`] (its `FIGURES` spells the same path) and removes it before each run.
const FIGURES: &str = "figures.json";

/// Named measurements of one run, written as one JSON object once every step has passed.
#[derive(Default)]
struct Figures(serde_json::Map<String, serde_json::Value>);

impl Figures {
    fn set(&mut self, name: &str, value: f64) {
        self.0.insert(name.to_owned(), serde_json::json!(value));
    }

    fn write(self, path: &Path) {
        let text = serde_json::to_string_pretty(&self.0).expect("figures as JSON");
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// The load step of one server.
struct LoadPlan {
    /// Prefix of the figures' names and of the recorded files (empty for kscale-server).
    label: &'static str,
    /// `kscale load` arguments: the protocol and the profile.
    args: &'static [&'static str],
    /// Seconds the load runs (the client count drops at the profile's second step).
    seconds: u64,
    /// Whether answers name the pod that served them (kscale-server's do).
    pods_in_answers: bool,
}

const KSCALE_LOAD: LoadPlan = LoadPlan {
    label: "",
    args: &["--steps", "0s:4,150s:1"],
    seconds: 330,
    pods_in_answers: true,
};

/// Completions of 256 tokens (about a second each on one slot of the tiny model): four clients
/// keep three waiting on one pod; then the load goes off. Not down to one client as for
/// kscale-server: one client is exactly the target of one pod, and requests shorter than the 2 s
/// scrape are now and then counted on two pods at once (each pod's gauge is read at another
/// instant), so the HPA rightly wavers between one pod and two (a CI run held two for 150 s).
const LLAMACPP_LOAD: LoadPlan = LoadPlan {
    label: "llamacpp_",
    args: &[
        "--api",
        "completions",
        "--prompt",
        "Once upon a time",
        "--max-tokens",
        "256",
        "--steps",
        "0s:4,120s:0",
    ],
    seconds: 240,
    pods_in_answers: false,
};

/// `kscale up --server llamacpp` on the running stack (the kit's llama-server image and its
/// tiny random-weight model): the same 6/6 chain on llama.cpp's own metrics, then the same load
/// step with OpenAI-style completions.
fn llamacpp(e2e: &E2e, figures: &mut Figures) {
    *e2e.server.lock().expect("server args") = vec![
        "app.server=llamacpp".into(),
        format!("app.image={}", e2e.kit.llama_image()),
        format!("app.model={}", e2e.kit.llama_model()),
        // One thread per pod (its CPU limit is one core); random weights would sample the end
        // of text early now and then, so every request generates its max_tokens.
        r#"app.args=["--threads", "1", "--ignore-eos"]"#.into(),
    ];
    let up = e2e.kscale(&["up", "--output", "json"], Duration::from_secs(15 * 60));
    assert!(up.ok, "kscale up --server llamacpp failed:\n{}", up.text());
    eprintln!(
        "kscale up --server llamacpp (switch, to 6/6): {:.0} s; its progress:\n{}",
        up.took.as_secs_f64(),
        up.stderr
    );
    figures.set("llamacpp_up_seconds", up.took.as_secs_f64());
    let report = up.json();
    assert_eq!(report["metrics"]["passed"], true, "{}", up.text());
    let hpa = e2e.kubectl_json(&["-n", "default", "get", "hpa", "inference"]);
    assert_eq!(
        hpa["spec"]["metrics"][0]["external"]["metric"]["name"], "llamacpp_requests_per_pod",
        "{hpa}"
    );
    let (_, image) = e2e.deployment();
    assert_eq!(image, e2e.kit.llama_image());
    // The image came from the local engine: kscale loaded it on both nodes.
    for node in [PROFILE.to_string(), format!("{PROFILE}-m02")] {
        let images = e2e.kit.run(
            "minikube",
            &[
                "-p", PROFILE, "ssh", "-n", &node, "--", "sudo", "crictl", "images", "-o", "json",
            ],
        );
        let repo = e2e.kit.llama_image();
        let name = repo.rsplit_once(':').map_or(repo.as_str(), |(n, _)| n);
        assert!(images.contains(name), "{node} lacks {repo}: {images}");
    }
    load_step(e2e, figures, &LLAMACPP_LOAD);
    e2e.server.lock().expect("server args").clear();
}

/// A load step through the NodePort, watched by `kscale metrics --watch` and recorded: the HPA
/// scales the Deployment up onto both nodes and, the load off, back down, while every request
/// succeeds (the server's drain and the pod's preStop/grace at work on the pods removed).
fn load_step(e2e: &E2e, figures: &mut Figures, plan: &LoadPlan) {
    let dir = out_dir();
    let label = plan.label;
    let load_csv = dir.join(format!("{label}load.csv"));
    let metrics_csv = dir.join(format!("{label}metrics.csv"));
    let _ = std::fs::remove_file(&load_csv);
    let _ = std::fs::remove_file(&metrics_csv);
    let (load_csv_s, metrics_csv_s) = (
        load_csv.to_string_lossy().into_owned(),
        metrics_csv.to_string_lossy().into_owned(),
    );
    let duration = format!("{}s", plan.seconds);
    let started = unix_now();
    let (load, watch, (states, budget)) = std::thread::scope(|scope| {
        let watch = scope.spawn(|| {
            e2e.kscale(
                &[
                    "metrics",
                    // Right after the deploy's rollout a new pod may not be scraped yet.
                    "--wait",
                    "2m",
                    "--watch",
                    "--watch-for",
                    &format!("{}s", plan.seconds + 30),
                    "--interval",
                    "3s",
                    "--record",
                    &metrics_csv_s,
                    "--output",
                    "json",
                ],
                Duration::from_secs(600),
            )
        });
        let load = scope.spawn(|| {
            let mut args = vec!["load"];
            args.extend_from_slice(plan.args);
            args.extend_from_slice(&[
                "--duration",
                &duration,
                // A new connection per request, so kube-proxy spreads them over the pods
                // (a kept-alive connection stays on the pod it was opened to).
                "--reconnect-every",
                "1",
                "--record",
                &load_csv_s,
                "--output",
                "json",
            ]);
            e2e.kscale(&args, Duration::from_secs(600))
        });
        // The test's own view: (seconds since the step, desired, ready, nodes), every 2 s; and
        // what the PodDisruptionBudget allowed at each moment with several ready pods.
        let mut states = Vec::new();
        let mut budget = Vec::new();
        while !load.is_finished() {
            let at = unix_now() - started;
            if let Some((desired, ready, nodes, allowed)) = e2e.scale_state() {
                if ready >= 2 {
                    budget.push((ready, allowed));
                }
                states.push((at, desired, ready, nodes));
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        (
            load.join().expect("load thread"),
            watch.join().expect("watch thread"),
            (states, budget),
        )
    });
    assert!(load.ok, "kscale load failed:\n{}", load.text());
    let report = load.json();
    eprintln!("kscale load report: {report}");
    let sent = report["sent"].as_u64().unwrap_or(0);
    let ok = report["ok"].as_u64().unwrap_or(0);
    assert!(sent > 20, "too few requests: {report}");
    assert_eq!(ok, sent, "requests failed during the run: {report}");
    if plan.pods_in_answers {
        let served_by = report["pods"].as_object().map_or(0, |pods| pods.len());
        assert!(
            served_by >= 3,
            "the load did not spread over the pods: {report}"
        );
    }
    figures.set(&format!("{label}requests_sent"), sent as f64);
    figures.set(
        &format!("{label}requests_failed"),
        sent.saturating_sub(ok) as f64,
    );

    let table: String = states
        .iter()
        .map(|(t, desired, ready, nodes)| format!("{t:.1},{desired},{ready},{}\n", nodes.len()))
        .collect();
    std::fs::write(
        dir.join(format!("{label}scale-states.csv")),
        format!("t_seconds,desired,ready,nodes\n{table}"),
    )
    .expect("write scale-states.csv");
    let first_decision = states.iter().find(|s| s.1 > 1).map(|s| s.0);
    let first_new_ready = states.iter().find(|s| s.2 > 1).map(|s| s.0);
    let peak = states.iter().map(|s| s.2).max().unwrap_or(0);
    let spread = states.iter().map(|s| s.3.len()).max().unwrap_or(0);
    eprintln!(
        "load step: first scale-up decision {first_decision:?} s, first new pod ready {first_new_ready:?} s, peak {peak} ready pods on {spread} nodes"
    );
    assert!(
        first_decision.is_some(),
        "the HPA never scaled up: {states:?}"
    );
    figures.set(
        &format!("{label}first_scale_up_decision_seconds"),
        first_decision.unwrap_or(0.0),
    );
    if let Some(ready) = first_new_ready {
        figures.set(&format!("{label}first_new_pod_ready_seconds"), ready);
    }
    // With several pods serving, a drain may take exactly one of them at a time (the budget's
    // controller lags a pod's readiness by a moment, so some sample, not every one, shows it).
    assert!(
        budget.iter().any(|(_, allowed)| *allowed == Some(1)),
        "the PodDisruptionBudget never allowed one disruption with several ready pods: {budget:?}"
    );
    assert!(
        budget
            .iter()
            .all(|(_, allowed)| allowed.is_some_and(|a| a <= 1)),
        "the PodDisruptionBudget allowed more than one disruption at a time: {budget:?}"
    );
    // "3 pods" and "both nodes" from the same sample.
    assert!(
        states.iter().any(|s| s.2 >= 3 && s.3.len() == 2),
        "no moment with 3 ready pods on both nodes: {states:?}"
    );
    let last = states.last().expect("states");
    let scaled_down = states
        .iter()
        .skip_while(|s| s.2 < peak)
        .find(|s| s.1 == 1)
        .map(|s| s.0);
    eprintln!("load step: scale-down decision at {scaled_down:?} s; at the end {last:?}");
    assert!(
        scaled_down.is_some(),
        "the HPA did not scale back: {states:?}"
    );
    // Back to 1 on the pods, not only in the HPA's desired count.
    let one_pod = poll("back to one ready pod", Duration::from_secs(180), || {
        e2e.scale_state()
            .filter(|s| s.0 == 1 && s.1 == 1)
            .map(|s| (s.0, s.1, s.2))
    });
    eprintln!("load step: back to one pod: {one_pod:?}");

    assert!(watch.ok, "kscale metrics --watch failed:\n{}", watch.text());
    let picture = dir.join(format!("{label}real-minikube.svg"));
    let plot = e2e.kscale(
        &[
            "plot",
            &metrics_csv_s,
            &load_csv_s,
            "--out",
            &picture.to_string_lossy(),
        ],
        Duration::from_secs(120),
    );
    assert!(plot.ok, "kscale plot failed:\n{}", plot.text());
    let svg = std::fs::read_to_string(&picture).expect("the picture");
    assert!(svg.contains("<svg"), "not an SVG");
    let rows = std::fs::read_to_string(&metrics_csv).expect("metrics.csv");
    assert!(rows.lines().count() > 20, "few watched rows:\n{rows}");
}

/// prometheus-adapter scaled to 0: `kscale metrics` fails at stage 4 (the APIService) with the
/// adapter's hint; scaled back, it passes again.
fn adapter_gone(e2e: &E2e) {
    let scale = |n: &str| e2e.scale_adapter(n);
    scale("0");
    // Every stage is checked on each run, so stage 4 is read directly: another stage may fail
    // meanwhile for its own reason (the HPA adding a pod after the load, say).
    let stage_4 = |run: &Run| {
        let report: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
        report["stages"]
            .as_array()?
            .iter()
            .find(|s| s["stage"] == 4)
            .cloned()
    };
    let (failed, stage) = poll(
        "kscale metrics fails stage 4 without the adapter",
        Duration::from_secs(180),
        || {
            let run = e2e.kscale(&["metrics", "--output", "json"], Duration::from_secs(120));
            let stage = stage_4(&run).filter(|s| s["passed"] == false)?;
            Some((run, stage))
        },
    );
    assert!(
        !failed.ok,
        "a failed stage must fail the run:\n{}",
        failed.text()
    );
    assert!(
        stage["fix"].as_str().is_some_and(|f| f.contains("adapter")),
        "{}",
        failed.text()
    );
    scale("1");
    let back = e2e.kscale(
        &["metrics", "--wait", "5m", "--output", "json"],
        Duration::from_secs(420),
    );
    assert!(back.ok, "the chain did not come back:\n{}", back.text());
}

/// An image the nodes do not have and cannot pull: `kscale deploy` fails and names the pod's
/// reason.
fn image_cannot_start(e2e: &E2e) {
    let run = e2e.kscale(
        &[
            "deploy",
            "--image",
            "kscale.local/e2e/missing:0",
            "--set",
            "timeouts.rollout_seconds=120",
        ],
        Duration::from_secs(600),
    );
    assert!(
        !run.ok,
        "deploy of a missing image succeeded:\n{}",
        run.text()
    );
    assert!(
        ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"]
            .iter()
            .any(|r| run.stderr.contains(r)),
        "the pod's reason is not named:\n{}",
        run.text()
    );
}
