//! Faults during a steady load on the real minikube, one at a time, each bounded in time and
//! undone by the run itself. CI runs the pod kill and the drain; `cargo xtask bench-faults` sets
//! `KSCALE_E2E_FAULTS=all` for the six. For each fault: requests answered and failed while it
//! lasted, what the HPA did meanwhile (desired replicas, the reason of its `ScalingActive`
//! condition), what `kscale metrics` named, and the seconds back to 6/6 once it ended.

use std::time::{Duration, Instant};

use super::{E2e, Figures, PROFILE, out_dir, poll, ready, unix_now};

/// Clients of the steady load: with 10 s requests and one request per pod as the target, the
/// HPA holds three pods (four now and then), which the spread puts on both nodes.
const CLIENTS: u64 = 3;

/// Seconds a fault's window runs past its recovery: a request in flight then completes within
/// one 10 s inference.
const WINDOW_AFTER_RECOVERY: f64 = 12.0;

/// Where the run writes its faults, one JSON object each, for `cargo xtask bench-faults`.
const FAULTS: &str = "faults.json";

/// The faults, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    PodKill,
    Drain,
    Rollout,
    PrometheusDeleted,
    AdapterDown,
    NodeRestart,
}

impl Kind {
    const CI: [Kind; 2] = [Kind::PodKill, Kind::Drain];
    const ALL: [Kind; 6] = [
        Kind::PodKill,
        Kind::Drain,
        Kind::Rollout,
        Kind::PrometheusDeleted,
        Kind::AdapterDown,
        Kind::NodeRestart,
    ];

    /// The faults this run makes: `KSCALE_E2E_FAULTS=all` for every one, else CI's two.
    fn planned() -> &'static [Kind] {
        match std::env::var("KSCALE_E2E_FAULTS").as_deref() {
            Ok("all") => &Self::ALL,
            Ok("ci") | Err(_) => &Self::CI,
            Ok(other) => panic!("KSCALE_E2E_FAULTS={other}: expected `all` or `ci`"),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::PodKill => "pod_kill",
            Kind::Drain => "drain",
            Kind::Rollout => "rollout",
            Kind::PrometheusDeleted => "prometheus_deleted",
            Kind::AdapterDown => "adapter_down",
            Kind::NodeRestart => "node_restart",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::PodKill => "SIGKILL of a serving pod",
            Kind::Drain => "kubectl drain of the second node, then uncordon",
            Kind::Rollout => "rollout of a new image (kscale deploy)",
            Kind::PrometheusDeleted => "Prometheus pod deleted",
            Kind::AdapterDown => "prometheus-adapter at 0 replicas for 60 s",
            Kind::NodeRestart => "second node killed, then minikube node start",
        }
    }

    /// The most requests the fault may fail: none for a voluntary disruption or a fault of the
    /// monitoring side, what the pods held for a kill; `None` (reported, no goal) for a node
    /// that goes away without warning.
    fn allowed_failures(self, held: u64) -> Option<u64> {
        match self {
            Kind::PodKill => Some(held),
            Kind::NodeRestart => None,
            _ => Some(0),
        }
    }

    /// Whether the fault needs app pods on the second node, the one it hits. (After a drain
    /// they all run on the first until something makes new ones, such as the rollout.)
    fn hits_the_second_node(self) -> bool {
        matches!(self, Kind::PodKill | Kind::Drain | Kind::NodeRestart)
    }

    /// Runs the fault and returns when it has ended: what the killed pods held, if any.
    fn inject(self, e2e: &E2e) -> u64 {
        match self {
            Kind::PodKill => kill_pod(e2e),
            Kind::Drain => drain_node(e2e),
            Kind::Rollout => rollout(e2e),
            Kind::PrometheusDeleted => delete_prometheus(e2e),
            Kind::AdapterDown => adapter_down(e2e),
            Kind::NodeRestart => restart_node(e2e),
        }
    }
}

/// The second node: the one the faults hit (the load runs in the first).
fn second_node() -> String {
    format!("{PROFILE}-m02")
}

/// What one fault did.
#[derive(Debug, serde::Serialize)]
struct Fault {
    key: &'static str,
    title: &'static str,
    /// Unix seconds: the fault's start, its end (for a kill, once the pod is ready again), and
    /// the moment `kscale metrics` passed all six stages again.
    started: f64,
    ended: f64,
    recovered: f64,
    /// Requests completed (answered or failed) from the start until 12 s after the recovery
    /// (a request in flight then completes within one 10 s inference), and those failed.
    requests: u64,
    failed: u64,
    /// Requests the killed pods held (in flight and queued) just before the kill.
    held: u64,
    /// The most failures the goal allows (`None`: reported only).
    allowed_failures: Option<u64>,
    /// The HPA's desired replicas at the start, and the lowest and highest while it lasted.
    desired_at_start: i64,
    desired_low: i64,
    desired_high: i64,
    /// Reasons of the HPA's `ScalingActive` condition seen while it lasted.
    hpa_reasons: Vec<String>,
    /// Every HPA sample while the fault lasted: (Unix seconds, desired replicas, the reason of
    /// `ScalingActive`), to tell a scale-down on a valid metric from one while it was missing.
    hpa_samples: Vec<(f64, i64, String)>,
    /// What `kscale metrics` said while it lasted: the first failing stage seen, else "6/6".
    metrics_said: String,
    /// Seconds from the end of the fault until `kscale metrics` passed all six stages.
    recovery_seconds: f64,
    /// The goals it missed (`cargo xtask bench-faults` prints them).
    missed: Vec<String>,
}

impl Fault {
    /// The goals this fault missed: failures over the allowance, a scale-down while it lasted,
    /// more than 60 s back to 6/6.
    fn missed_goals(&self) -> Vec<String> {
        let mut missed = Vec::new();
        if let Some(allowed) = self.allowed_failures
            && self.failed > allowed
        {
            missed.push(format!("{} failed, at most {allowed}", self.failed));
        }
        if self.desired_low < self.desired_at_start {
            missed.push(format!(
                "the HPA scaled down ({} -> {})",
                self.desired_at_start, self.desired_low
            ));
        }
        if self.recovery_seconds > 60.0 {
            missed.push(format!("back to 6/6 in {:.0} s", self.recovery_seconds));
        }
        missed
    }
}

/// The HPA's (desired replicas, `ScalingActive` reason).
fn hpa_state(e2e: &E2e) -> Option<(i64, String)> {
    let hpa = e2e.try_get("hpa/inference")?;
    let desired = hpa["status"]["desiredReplicas"].as_i64()?;
    let reason = hpa["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "ScalingActive"))
        .and_then(|c| c["reason"].as_str())
        .unwrap_or("none")
        .to_string();
    Some((desired, reason))
}

/// `kscale metrics` once: `None` when all six stages pass, else "stage N: <what it saw>".
fn metrics_failure(e2e: &E2e) -> Option<String> {
    let run = e2e.kscale(&["metrics", "--output", "json"], Duration::from_secs(120));
    let Ok(report) = serde_json::from_str::<serde_json::Value>(&run.stdout) else {
        return Some(format!(
            "no report: {}",
            run.stderr.lines().last().unwrap_or("")
        ));
    };
    let failed = report["stages"]
        .as_array()
        .and_then(|stages| stages.iter().find(|s| s["passed"] == false));
    match (failed, run.ok) {
        (None, true) => None,
        (None, false) => Some("failed without a failing stage".into()),
        (Some(stage), _) => Some(format!(
            "stage {}: {}",
            stage["stage"],
            stage["seen"].as_str().unwrap_or("")
        )),
    }
}

/// Waits until the load holds `CLIENTS` ready pods, on both nodes when `spread`.
fn steady(e2e: &E2e, spread: bool) {
    poll(
        "the steady load holds its ready pods (on both nodes when the fault needs it)",
        Duration::from_secs(180),
        || {
            e2e.scale_state().filter(|(_, ready, nodes, _)| {
                *ready >= CLIENTS as i64 && (!spread || nodes.len() == 2)
            })
        },
    );
}

/// Runs one fault, watching the HPA and `kscale metrics` while it lasts, then times the way
/// back to 6/6.
fn observe(e2e: &E2e, kind: Kind) -> Fault {
    let (desired_at_start, _) = hpa_state(e2e).expect("the HPA before the fault");
    let started = unix_now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let stop = || done.load(std::sync::atomic::Ordering::SeqCst);
    let (held, (low, high), (reasons, samples), said) = std::thread::scope(|scope| {
        // The HPA every second, on its own thread: a `kscale metrics` run takes seconds when a
        // stage times out.
        let hpa = scope.spawn(|| {
            let (mut low, mut high) = (desired_at_start, desired_at_start);
            let mut reasons: Vec<String> = Vec::new();
            let mut samples: Vec<(f64, i64, String)> = Vec::new();
            loop {
                let last = stop();
                if let Some((desired, reason)) = hpa_state(e2e) {
                    low = low.min(desired);
                    high = high.max(desired);
                    samples.push((unix_now(), desired, reason.clone()));
                    if !reasons.contains(&reason) {
                        reasons.push(reason);
                    }
                }
                if last {
                    break ((low, high), (reasons, samples));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let metrics = scope.spawn(|| {
            loop {
                let last = stop();
                if let Some(failure) = metrics_failure(e2e) {
                    break Some(failure);
                }
                if last {
                    break None;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        // Set on a panic too: the scope waits for the watchers before the panic goes on.
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let held = {
            let _done = Done(&done);
            kind.inject(e2e)
        };
        let (range, reasons) = hpa.join().expect("HPA watcher");
        (
            held,
            range,
            reasons,
            metrics.join().expect("metrics watcher"),
        )
    });
    let ended = unix_now();
    let back = Instant::now();
    let run = e2e.kscale(
        &["metrics", "--wait", "3m", "--output", "json"],
        Duration::from_secs(240),
    );
    assert!(
        run.ok,
        "after {} the chain did not come back:\n{}",
        kind.title(),
        run.text()
    );
    Fault {
        key: kind.key(),
        title: kind.title(),
        started,
        ended,
        requests: 0,
        failed: 0,
        held,
        allowed_failures: kind.allowed_failures(held),
        desired_at_start,
        desired_low: low,
        desired_high: high,
        hpa_reasons: reasons,
        hpa_samples: samples,
        metrics_said: said.unwrap_or_else(|| "6/6".into()),
        recovered: unix_now(),
        recovery_seconds: back.elapsed().as_secs_f64(),
        missed: Vec::new(),
    }
}

/// The requests a pod holds now (in flight plus queued), read from its own `/metrics` on
/// `port` through the API server's pod proxy (which takes a port number: a port's name is not
/// resolved).
fn held_by(e2e: &E2e, (pod, port): &(String, i64)) -> u64 {
    let text = e2e.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{pod}:{port}/proxy/metrics"),
    ]);
    text.lines()
        .filter(|l| {
            l.starts_with("inference_requests_in_flight ")
                || l.starts_with("inference_queue_depth ")
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The ready app pods on `node`: (name, the server's container port).
fn serving_pods_on(e2e: &E2e, node: &str) -> Vec<(String, i64)> {
    let pods = e2e.kubectl_json(&[
        "-n",
        "default",
        "get",
        "pods",
        "-l",
        "app=inference",
        "--field-selector",
        &format!("spec.nodeName={node},status.phase=Running"),
    ]);
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| ready(p))
        .filter_map(|p| {
            Some((
                p["metadata"]["name"].as_str()?.to_string(),
                p["spec"]["containers"][0]["ports"][0]["containerPort"].as_i64()?,
            ))
        })
        .collect()
}

/// SIGKILL of the server process of one pod on the second node, from inside the node (as the
/// kernel's OOM killer or a crash would end it); the fault lasts until the kubelet has
/// restarted the container and it is ready again.
fn kill_pod(e2e: &E2e) -> u64 {
    let node = second_node();
    // A pod that holds work, so the kill can lose some: the goal is that it loses no more.
    let (pod, held) = poll(
        "an app pod on the second node holds a request",
        Duration::from_secs(60),
        || {
            serving_pods_on(e2e, &node)
                .into_iter()
                .map(|pod| {
                    let held = held_by(e2e, &pod);
                    (pod.0, held)
                })
                .find(|(_, held)| *held > 0)
        },
    );
    let script = format!(
        "id=$(crictl ps -q --name '^server$' --label io.kubernetes.pod.name={pod}) && \
         pid=$(crictl inspect --output go-template --template '{{{{.info.pid}}}}' \"$id\") && \
         kill -KILL \"$pid\""
    );
    e2e.kit.ok(
        "docker",
        &["exec", &node, "sh", "-c", &script],
        Duration::from_secs(30),
    );
    eprintln!("faults: killed the server of {pod} on {node}, which held {held} request(s)");
    poll(
        "the killed pod is ready again",
        Duration::from_secs(120),
        || {
            let p = e2e.kubectl_json(&["-n", "default", "get", "pod", &pod]);
            let status = &p["status"]["containerStatuses"][0];
            (status["restartCount"].as_i64() > Some(0) && status["ready"] == true).then_some(())
        },
    );
    held
}

/// `kubectl drain` of the second node (its pods evicted under the PodDisruptionBudget), then
/// uncordon.
fn drain_node(e2e: &E2e) -> u64 {
    let node = second_node();
    let (drained, out, err) = e2e.kit.bounded(
        "kubectl",
        &[
            "--context",
            PROFILE,
            "drain",
            &node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout",
            "180s",
        ],
        Duration::from_secs(200),
    );
    // Uncordoned whatever happened, so the rest of the run has both nodes.
    e2e.kubectl(&["uncordon", &node]);
    assert!(drained, "kubectl drain failed:\n{out}\n{err}");
    0
}

/// A new image reference of the running image (the same content under a new tag, so nothing is
/// built), rolled out by `kscale deploy` while the load runs.
fn rollout(e2e: &E2e) -> u64 {
    let (_, image) = e2e.deployment();
    let new = format!("{image}-rollout{}", unix_now() as u64);
    e2e.kit
        .ok("docker", &["tag", &image, &new], Duration::from_secs(60));
    let deploy = e2e.kscale(
        &["deploy", "--image", &new, "--output", "json"],
        Duration::from_secs(600),
    );
    assert!(deploy.ok, "kscale deploy failed:\n{}", deploy.text());
    assert_eq!(
        e2e.deployment().1,
        new,
        "the rollout did not change the image"
    );
    0
}

/// The Prometheus pod's (name, uid, ready).
fn prometheus_pod(e2e: &E2e) -> Option<(String, String, bool)> {
    let pods = e2e.kubectl_json(&[
        "-n",
        "monitoring",
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=prometheus",
    ]);
    let p = pods["items"].as_array()?.first()?;
    Some((
        p["metadata"]["name"].as_str()?.to_string(),
        p["metadata"]["uid"].as_str()?.to_string(),
        ready(p),
    ))
}

/// The Prometheus pod deleted (its StatefulSet makes a new one, with an empty database); the
/// fault lasts until the new pod is ready.
fn delete_prometheus(e2e: &E2e) -> u64 {
    let (name, uid, _) = prometheus_pod(e2e).expect("a Prometheus pod");
    e2e.kubectl(&["-n", "monitoring", "delete", "pod", &name, "--wait=false"]);
    poll(
        "a new Prometheus pod is ready",
        Duration::from_secs(300),
        || prometheus_pod(e2e).filter(|(_, u, ready)| *u != uid && *ready),
    );
    0
}

/// prometheus-adapter scaled to 0 for 60 s, then back to 1.
fn adapter_down(e2e: &E2e) -> u64 {
    e2e.scale_adapter("0");
    std::thread::sleep(Duration::from_secs(60));
    e2e.scale_adapter("1");
    0
}

/// The second node's container killed (`docker kill`: every process on it ends at once, as on a
/// power cut), then brought back the way a minikube user does, `minikube node start` (a plain
/// `docker start` is not enough: docker rewrites the node's /etc/hosts, which loses the control
/// plane's name that minikube's provisioning writes). The fault lasts until the node's kubelet
/// answers and the app has as many ready pods as before.
fn restart_node(e2e: &E2e) -> u64 {
    let node = second_node();
    let held = serving_pods_on(e2e, &node)
        .iter()
        .map(|pod| held_by(e2e, pod))
        .sum();
    let (_, ready_before, _, _) = e2e.scale_state().expect("the app before the restart");
    e2e.kit
        .ok("docker", &["kill", &node], Duration::from_secs(60));
    e2e.kit.ok(
        "minikube",
        &["-p", PROFILE, "node", "start", "m02"],
        Duration::from_secs(300),
    );
    poll(
        "the restarted node's kubelet answers and the app is ready again",
        Duration::from_secs(300),
        || {
            e2e.kit.try_ok(
                "kubectl",
                &[
                    "--context",
                    PROFILE,
                    "get",
                    "--raw",
                    &format!("/api/v1/nodes/{node}/proxy/healthz"),
                ],
            )?;
            e2e.scale_state()
                .filter(|(_, ready, _, _)| *ready >= ready_before)
        },
    );
    held
}

/// (completed, failed) requests between two Unix times, from the load's per-second record.
fn requests_between(rows: &[kscale::timeline::TimelineRow], from: f64, to: f64) -> (u64, u64) {
    rows.iter()
        .filter(|r| r.unix_seconds.is_some_and(|t| t >= from && t <= to))
        .fold((0, 0), |(completed, failed), r| {
            let bad = r.errors.unwrap_or(0) + r.shed.unwrap_or(0);
            (completed + r.ok.unwrap_or(0) + bad, failed + bad)
        })
}

/// The steady load, sent from inside the cluster: `kscale load` (the binary under test) runs in
/// the first node's container, in its network namespace as a host-network pod would, and
/// reaches the app through its Service's cluster IP, so kube-proxy picks a pod for each new
/// connection as for any client in the cluster. The faults hit the second node.
struct InClusterLoad {
    exec: super::super::kit::Background,
}

impl InClusterLoad {
    /// The binary's path inside the node (its process name is what `stop` signals).
    const BINARY: &'static str = "/usr/local/bin/kscale-load";
    /// Where the load writes its per-second record inside the node.
    const RECORD: &'static str = "/tmp/kscale-faults-load.csv";

    /// Copies the `kscale` binary into the first node and starts `kscale load ARGS` there
    /// against the Service.
    fn start(e2e: &E2e, args: &[&str]) -> Self {
        let minute = Duration::from_secs(60);
        let into_node = format!("{PROFILE}:{}", Self::BINARY);
        let binary = crate::support::process::KSCALE;
        e2e.kit
            .ok("docker", &["cp", binary, &into_node], 2 * minute);
        let (ok, out, err) = e2e.kit.bounded(
            "docker",
            &["exec", PROFILE, Self::BINARY, "--version"],
            minute,
        );
        assert!(
            ok,
            "the kscale binary under test does not run inside the node ({out}{err}): it needs a \
             C library no newer than the node's (Debian bookworm)"
        );
        let service = e2e.kubectl(&[
            "-n",
            "default",
            "get",
            "service",
            "inference",
            "-o",
            "jsonpath={.spec.clusterIP}:{.spec.ports[0].port}",
        ]);
        let url = format!("http://{}", service.trim());
        let mut all = vec!["exec", PROFILE, Self::BINARY, "load", "--url", &url];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--record", Self::RECORD]);
        eprintln!("faults: the load runs in node {PROFILE} against {url}");
        Self {
            exec: e2e.kit.spawn("docker", &all),
        }
    }

    /// Stops the load as Ctrl-C would (`docker exec` forwards no signal: it is sent inside the
    /// node) and writes its record to `record`: (ended before the stop, exit code, stdout,
    /// stderr).
    fn stop(mut self, e2e: &E2e, record: &std::path::Path) -> (bool, Option<i32>, String, String) {
        let ended_early = self.exec.is_finished();
        let name = Self::BINARY.rsplit('/').next().unwrap_or(Self::BINARY);
        e2e.kit
            .run("docker", &["exec", PROFILE, "pkill", "-INT", "-x", name]);
        let (code, stdout, stderr) = self.exec.wait(Duration::from_secs(60));
        // Read through `cat`, not `docker cp`: the node's /tmp is a tmpfs, which `docker cp`
        // does not see.
        let csv = e2e.kit.ok(
            "docker",
            &["exec", PROFILE, "cat", Self::RECORD],
            Duration::from_secs(60),
        );
        std::fs::write(record, csv).expect("write the load's record");
        (ended_early, code, stdout, stderr)
    }
}

/// The fault run: a steady load, the planned faults one after the other; `faults.json` and a
/// table for a person. Returns the goals missed, which the caller asserts once the teardown
/// after the faults has been checked too.
pub(super) fn fault_run(e2e: &E2e, figures: &mut Figures) -> Vec<String> {
    let load_csv = out_dir().join("faults_load.csv");
    let _ = std::fs::remove_file(&load_csv);
    let _ = std::fs::remove_file(out_dir().join(FAULTS));
    let clients = CLIENTS.to_string();
    // Long enough for every fault; stopped (as with Ctrl-C) once they are over.
    let load = InClusterLoad::start(
        e2e,
        &[
            "--concurrency",
            &clients,
            "--duration",
            "40m",
            "--reconnect-every",
            "1",
            // As HTTP clients do (OpenAI's SDK retries connection errors twice): a connection
            // kube-proxy sends to a pod killed a moment ago is refused before any request.
            "--retry-refused",
            "2",
            "--output",
            "json",
        ],
    );
    let mut faults: Vec<Fault> = Vec::new();
    for kind in Kind::planned() {
        // The previous fault's window runs 12 s past its recovery: the next starts after it.
        if let Some(previous) = faults.last() {
            let wait = previous.recovered + WINDOW_AFTER_RECOVERY - unix_now();
            if wait > 0.0 {
                std::thread::sleep(Duration::from_secs_f64(wait));
            }
        }
        steady(e2e, kind.hits_the_second_node());
        let fault = observe(e2e, *kind);
        eprintln!("faults: {fault:?}");
        faults.push(fault);
    }
    let (ended_early, code, stdout, stderr) = load.stop(e2e, &load_csv);
    assert!(
        !ended_early,
        "kscale load ended before the faults did:\n{stdout}\n{stderr}"
    );
    assert!(
        matches!(code, Some(0 | 130)),
        "kscale load ended with {code:?}:\n{stdout}\n{stderr}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the load's report ({e}):\n{stdout}\n{stderr}"));
    eprintln!("faults: the load's report: {report}");
    let rows = kscale::timeline::read_csv(&load_csv).expect("the load's record");
    for f in &mut faults {
        (f.requests, f.failed) =
            requests_between(&rows, f.started, f.recovered + WINDOW_AFTER_RECOVERY);
        f.missed = f.missed_goals();
    }

    eprintln!(
        "fault | requests | failed (held) | HPA desired start; low-high | HPA ScalingActive | kscale metrics during | back to 6/6 s"
    );
    for f in &faults {
        eprintln!(
            "{} | {} | {} ({}) | {}; {}-{} | {} | {} | {:.1}",
            f.title,
            f.requests,
            f.failed,
            f.held,
            f.desired_at_start,
            f.desired_low,
            f.desired_high,
            f.hpa_reasons.join(", "),
            f.metrics_said,
            f.recovery_seconds
        );
        figures.set(&format!("fault_{}_requests", f.key), f.requests as f64);
        figures.set(&format!("fault_{}_failed", f.key), f.failed as f64);
        figures.set(
            &format!("fault_{}_recovery_seconds", f.key),
            f.recovery_seconds,
        );
    }
    std::fs::write(
        out_dir().join(FAULTS),
        serde_json::to_string_pretty(&faults).expect("faults as JSON"),
    )
    .expect("write faults.json");
    for f in &faults {
        assert!(f.requests > 0, "no request completed during {f:?}");
    }
    let mut missed: Vec<String> = faults
        .iter()
        .flat_map(|f| f.missed.iter().map(move |m| format!("{}: {m}", f.title)))
        .collect();
    // Every failure of the run happened during a fault or its recovery.
    let failed_in_all: u64 = report["errors"]
        .as_object()
        .map(|e| e.values().filter_map(serde_json::Value::as_u64).sum())
        .unwrap_or(0);
    let attributed: u64 = faults.iter().map(|f| f.failed).sum();
    if failed_in_all > attributed {
        missed.push(format!(
            "{} request(s) failed outside every fault and its recovery",
            failed_in_all - attributed
        ));
    }
    missed
}
