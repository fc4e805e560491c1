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

    /// The faults this run makes, from `KSCALE_E2E_FAULTS`: `all`, `ci` (the default: CI's
    /// two) or keys separated by commas (`node_restart,drain`), run in the order of `ALL`.
    fn planned() -> Vec<Kind> {
        let value = std::env::var("KSCALE_E2E_FAULTS").unwrap_or_default();
        Self::parse(&value).unwrap_or_else(|e| panic!("KSCALE_E2E_FAULTS={value}: {e}"))
    }

    fn parse(value: &str) -> Result<Vec<Kind>, String> {
        match value.trim() {
            "all" => return Ok(Self::ALL.to_vec()),
            "ci" | "" => return Ok(Self::CI.to_vec()),
            _ => {}
        }
        let keys: Vec<&str> = Self::ALL.iter().map(|k| k.key()).collect();
        let mut chosen = Vec::new();
        for key in value.split(',').map(str::trim) {
            let kind = Self::ALL.iter().find(|k| k.key() == key).ok_or_else(|| {
                format!(
                    "unknown fault `{key}`; expected `all`, `ci` or some of {} separated by commas",
                    keys.join(", ")
                )
            })?;
            chosen.push(*kind);
        }
        Ok(Self::ALL
            .into_iter()
            .filter(|k| chosen.contains(k))
            .collect())
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
    /// Every HPA sample while the fault lasted, about one a second.
    hpa_samples: Vec<HpaSample>,
    /// The scale-downs seen while it lasted, each with the reason its sample showed.
    scale_downs: Vec<ScaleDown>,
    /// What `kscale metrics` said while it lasted: the first failing stage seen, else "6/6".
    metrics_said: String,
    /// What `kscale metrics` said from the fault's start until all six stages passed: (seconds
    /// since the start, the first failing stage or "6/6"), one entry per change.
    metrics_timeline: Vec<(f64, String)>,
    /// Seconds from the end of the fault until `kscale metrics` passed all six stages.
    recovery_seconds: f64,
    /// The goals it missed (`cargo xtask bench-faults` prints them).
    missed: Vec<String>,
}

/// One reading of the HPA's status.
#[derive(Debug, Clone, serde::Serialize)]
struct HpaSample {
    /// Unix seconds.
    at: f64,
    desired: i64,
    /// The reason of the `ScalingActive` condition ("none" without one).
    reason: String,
    /// The metric's value as the HPA last read it (`status.currentMetrics`), if any.
    metric: Option<String>,
}

/// The HPA's desired replicas went down between two samples.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct ScaleDown {
    at: f64,
    from: i64,
    to: i64,
    /// The `ScalingActive` reason of the sample that first showed the lower count.
    reason: String,
}

impl ScaleDown {
    /// Whether the HPA had its metric when it decided. The controller writes the desired count
    /// and its conditions in one status update, and a sync that cannot read the metric keeps the
    /// count, so the sample that first shows a lower count carries the reason of the sync that
    /// lowered it (or of a later one, when two syncs fall between samples a second apart).
    fn on_a_valid_metric(&self) -> bool {
        self.reason == "ValidMetricFound"
    }
}

/// Every drop of the desired count across `samples`, starting from `at_start`.
fn scale_downs(at_start: i64, samples: &[HpaSample]) -> Vec<ScaleDown> {
    let mut previous = at_start;
    let mut downs = Vec::new();
    for s in samples {
        if s.desired < previous {
            downs.push(ScaleDown {
                at: s.at,
                from: previous,
                to: s.desired,
                reason: s.reason.clone(),
            });
        }
        previous = s.desired;
    }
    downs
}

impl Fault {
    /// The goals this fault missed: failures over the allowance, a scale-down while the metric
    /// was missing, more than 60 s back to 6/6. (A scale-down decided on a valid metric is the
    /// HPA doing its job, e.g. undoing a fourth pod once its window has passed: reported only.)
    fn missed_goals(&self) -> Vec<String> {
        let mut missed = Vec::new();
        if let Some(allowed) = self.allowed_failures
            && self.failed > allowed
        {
            missed.push(format!("{} failed, at most {allowed}", self.failed));
        }
        for down in self.scale_downs.iter().filter(|d| !d.on_a_valid_metric()) {
            missed.push(format!(
                "the HPA scaled down ({} -> {}) while its metric was missing ({})",
                down.from, down.to, down.reason
            ));
        }
        if self.recovery_seconds > 60.0 {
            missed.push(format!("back to 6/6 in {:.0} s", self.recovery_seconds));
        }
        missed
    }
}

/// The HPA's status now.
fn hpa_state(e2e: &E2e) -> Option<HpaSample> {
    let hpa = e2e.try_get("hpa/inference")?;
    let status = &hpa["status"];
    let reason = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "ScalingActive"))
        .and_then(|c| c["reason"].as_str())
        .unwrap_or("none")
        .to_string();
    let current = &status["currentMetrics"][0]["external"]["current"];
    let metric = current["averageValue"]
        .as_str()
        .or_else(|| current["value"].as_str())
        .map(str::to_string);
    Some(HpaSample {
        at: unix_now(),
        desired: status["desiredReplicas"].as_i64()?,
        reason,
        metric,
    })
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
/// back to 6/6 with `kscale metrics` once a second (what `kscale metrics --wait` does, with each
/// change of the failing stage kept).
fn observe(e2e: &E2e, kind: Kind) -> Fault {
    let desired_at_start = hpa_state(e2e).expect("the HPA before the fault").desired;
    let started = unix_now();
    let done = std::sync::atomic::AtomicBool::new(false);
    let stop = || done.load(std::sync::atomic::Ordering::SeqCst);
    let (held, samples, mut timeline) = std::thread::scope(|scope| {
        // The HPA every second, on its own thread: a `kscale metrics` run takes seconds when a
        // stage times out.
        let hpa = scope.spawn(|| {
            let mut samples: Vec<HpaSample> = Vec::new();
            loop {
                let last = stop();
                samples.extend(hpa_state(e2e));
                if last {
                    break samples;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let metrics = scope.spawn(|| {
            let mut timeline = Timeline::default();
            loop {
                let last = stop();
                timeline.saw(started, metrics_failure(e2e));
                if last {
                    break timeline;
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
        (
            held,
            hpa.join().expect("HPA watcher"),
            metrics.join().expect("metrics watcher"),
        )
    });
    let said = timeline.first_failure();
    let ended = unix_now();
    let back = Instant::now();
    let deadline = back + Duration::from_secs(180);
    loop {
        let failure = metrics_failure(e2e);
        let passed = failure.is_none();
        timeline.saw(started, failure);
        if passed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {} the chain did not come back within 3 minutes: {:?}",
            kind.title(),
            timeline.0
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let recovery_seconds = back.elapsed().as_secs_f64();
    let mut reasons: Vec<String> = Vec::new();
    for s in &samples {
        if !reasons.contains(&s.reason) {
            reasons.push(s.reason.clone());
        }
    }
    let desired = samples.iter().map(|s| s.desired).chain([desired_at_start]);
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
        desired_low: desired.clone().min().unwrap_or(desired_at_start),
        desired_high: desired.max().unwrap_or(desired_at_start),
        hpa_reasons: reasons,
        scale_downs: scale_downs(desired_at_start, &samples),
        hpa_samples: samples,
        metrics_said: said.unwrap_or_else(|| "6/6".into()),
        metrics_timeline: timeline.0,
        recovered: unix_now(),
        recovery_seconds,
        missed: Vec::new(),
    }
}

/// What `kscale metrics` said over a fault, one entry per change: (seconds since the fault's
/// start, the first failing stage or "6/6").
#[derive(Debug, Default)]
struct Timeline(Vec<(f64, String)>);

impl Timeline {
    fn saw(&mut self, started: f64, failure: Option<String>) {
        let said = failure.unwrap_or_else(|| "6/6".into());
        if self.0.last().is_none_or(|(_, last)| *last != said) {
            self.0.push((unix_now() - started, said));
        }
    }

    fn first_failure(&self) -> Option<String> {
        self.0
            .iter()
            .map(|(_, said)| said)
            .find(|said| *said != "6/6")
            .cloned()
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
        let fault = observe(e2e, kind);
        eprintln!(
            "faults: {} over, back to 6/6 in {:.1} s; kscale metrics said {:?}",
            fault.title, fault.recovery_seconds, fault.metrics_timeline
        );
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

    // `cargo xtask bench-faults` prints them as a table from faults.json; here, a line each.
    for f in &faults {
        eprintln!(
            "faults: {}",
            serde_json::to_string(f).expect("a fault as JSON")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: f64, desired: i64, reason: &str) -> HpaSample {
        HpaSample {
            at,
            desired,
            reason: reason.into(),
            metric: None,
        }
    }

    #[test]
    fn a_scale_down_is_told_apart_by_the_reason_of_the_sample_that_shows_it() {
        let samples = [
            sample(1.0, 4, "ValidMetricFound"),
            sample(2.0, 4, "FailedGetExternalMetric"),
            sample(3.0, 3, "ValidMetricFound"),
            sample(4.0, 4, "ValidMetricFound"),
            sample(5.0, 2, "FailedGetExternalMetric"),
        ];
        let downs = scale_downs(4, &samples);
        assert_eq!(
            downs.iter().map(|d| (d.from, d.to)).collect::<Vec<_>>(),
            [(4, 3), (4, 2)]
        );
        assert!(downs[0].on_a_valid_metric());
        assert!(!downs[1].on_a_valid_metric());
        assert!(scale_downs(3, &[sample(1.0, 3, "none"), sample(2.0, 4, "none")]).is_empty());
    }

    #[test]
    fn faults_are_chosen_by_key_in_the_run_order_and_a_typo_is_named() {
        assert_eq!(Kind::parse("").expect("default"), Kind::CI);
        assert_eq!(Kind::parse("all").expect("all"), Kind::ALL);
        assert_eq!(
            Kind::parse("node_restart, pod_kill").expect("two"),
            [Kind::PodKill, Kind::NodeRestart]
        );
        let err = Kind::parse("node_kill").expect_err("a typo");
        assert!(
            err.contains("`node_kill`") && err.contains("node_restart"),
            "{err}"
        );
    }
}
