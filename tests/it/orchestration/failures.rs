//! What `kscale up` says when something it needs is missing or fails, and that it stops there.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Env, mutating_requests};
use crate::support::kube_stub::Rollout;

#[test]
fn a_missing_tool_is_named_with_how_to_install_it() {
    for missing in super::TOOLS {
        let tools: Vec<&str> = super::TOOLS
            .iter()
            .copied()
            .filter(|t| *t != missing)
            .collect();
        let env = Env::with_tools(&tools);
        let run = env.up();
        let hint = match missing {
            "minikube" => "https://minikube.sigs.k8s.io/docs/start/",
            "helm" => "https://helm.sh/docs/intro/install/",
            "kubectl" => "https://kubernetes.io/docs/tasks/tools/",
            _ => "https://docs.docker.com/get-docker/",
        };
        run.expect_code(1).stderr_has(&[
            "preflight failed, nothing was changed",
            &format!("{missing} is not installed"),
            hint,
        ]);
        assert_eq!(
            env.mutating_calls(),
            Vec::<String>::new(),
            "{missing}: {}",
            env.log().join("\n")
        );
        assert!(env.api.seen().is_empty());
        // The other tools were still checked, so one run reports every problem.
        let probed = env.log();
        for t in &tools {
            assert!(
                probed.iter().any(|l| l.starts_with(&format!("{t} "))),
                "{missing}: {t} not checked: {probed:?}"
            );
        }
    }
}

#[test]
fn a_docker_daemon_that_does_not_answer_stops_up_before_any_change() {
    let mut env = Env::new();
    env.set_env("KSCALE_FAKE_FAIL", "docker-daemon");
    env.up()
        .expect_code(1)
        .stderr_has(&[
            "preflight failed, nothing was changed",
            "the Docker daemon does not answer",
            "`docker version --format {{.Server.Version}}` failed with exit code 1",
            "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
            "hint: start the Docker daemon",
        ]);
    assert_eq!(env.mutating_calls(), Vec::<String>::new());
    assert!(!env.profile_exists("kscale"));
}

#[test]
fn tool_output_in_another_format_fails_with_the_command_and_what_it_printed() {
    // Read as "no such repository" or "addon disabled", a format change would make kscale act
    // on a wrong belief (add the repository again, re-enable the addon): it must stop instead.
    for (fail, command, printed, action) in [
        (
            "minikube-addons-format",
            "`minikube addons list -p kscale -o json` failed",
            "[{\"Name\":\"metrics-server\"",
            "minikube addons enable",
        ),
        (
            "helm-repo-format",
            "`helm repo list -o json` failed",
            "{\"repositories\":[]}",
            "helm repo add",
        ),
    ] {
        let mut env = Env::new();
        env.set_env("KSCALE_FAKE_FAIL", fail);
        let run = env.up();
        run.expect_code(1)
            .stderr_has(&[command, "unreadable JSON output", printed]);
        assert!(
            !env.log().iter().any(|l| l.starts_with(action)),
            "{fail}: nothing acted on the unread output: {:?}",
            env.log()
        );
    }
}

#[test]
fn a_failing_helm_install_reports_command_exit_code_stderr_and_hint() {
    let mut env = Env::new();
    env.set_env("KSCALE_FAKE_FAIL", "helm-install:prometheus");
    let run = env.up();
    run.expect_code(1).stderr_has(&[
        "`helm --kube-context kscale upgrade --install prometheus prometheus-community/kube-prometheus-stack --version 88.5.3 -n monitoring --create-namespace -f ",
        "failed with exit code 1",
        "stderr (last lines):",
        "Error: INSTALLATION FAILED: context deadline exceeded",
        "hint: inspect with `helm status prometheus -n monitoring` and `kubectl get pods -n monitoring`",
    ]);
    let log = env.log();
    let last = log.last().expect("calls");
    assert!(
        last.starts_with("helm --kube-context kscale upgrade --install prometheus "),
        "kscale stops at the failure: {log:?}"
    );
    assert!(
        !log.iter().any(|l| l.contains("prometheus-adapter")),
        "the adapter is not attempted after the stack failed: {log:?}"
    );

    // The failed release is retried (not mistaken for an installed one) on the next run.
    env.set_env("KSCALE_FAKE_FAIL", "");
    env.clear_log();
    env.up().expect_code(0).stderr_has(&["upgraded"]);
    assert!(
        env.log()
            .iter()
            .any(|l| l.starts_with("helm --kube-context kscale upgrade --install prometheus ")),
        "{:?}",
        env.log()
    );
}

#[test]
fn a_rollout_past_its_deadline_says_which_pod_is_not_ready_and_why() {
    let env = Env::new();
    env.api.set_rollout(Rollout::Stuck);
    let pod = "inference-5c9f7d8b6d-x2x7q";
    env.api.put(
        &format!("/api/v1/namespaces/default/pods/{pod}"),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": "default", "labels": {"app": "inference"}},
            "spec": {"containers": [{"name": "server", "image": "kscale-server:000000000000"}]},
            "status": {"phase": "Pending", "containerStatuses": [{
                "name": "server", "ready": false, "restartCount": 0, "image": "kscale-server:000000000000", "imageID": "",
                "state": {"waiting": {"reason": "ErrImageNeverPull",
                    "message": "Container image \"kscale-server:000000000000\" is not present with pull policy of Never"}}}]}
        }),
    );
    env.api.put(
        &format!("/api/v1/namespaces/default/events/{pod}.187b6f0c2d1e5a4f"),
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{pod}.187b6f0c2d1e5a4f"), "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": "default"},
            "type": "Warning", "reason": "ErrImageNeverPull",
            "message": "Container image \"kscale-server:000000000000\" is not present with pull policy of Never"
        }),
    );
    env.api.put(
        "/api/v1/namespaces/default/events/other.1",
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "other.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "other", "namespace": "default"},
            "type": "Warning", "reason": "Unrelated", "message": "an event of another pod"
        }),
    );
    let src = env.source().display().to_string();
    let run = env.kscale(&[
        "up",
        "--source",
        &src,
        "--set",
        "timeouts.rollout_seconds=3",
    ]);
    run.expect_code(1).stderr_has(&[
        "the rollout was not ready after 3s: 0 of 1 updated replicas available",
        "what is not ready:",
        &format!("pod {pod}: phase Pending, container server waiting: ErrImageNeverPull"),
        "it loads the image into every node with `minikube image load`",
        "event ErrImageNeverPull: Container image",
    ]);
    assert!(
        !run.stderr.contains("another pod"),
        "events are those of the app's pods: {}",
        run.stderr
    );
    assert!(
        mutating_requests(&env)
            .iter()
            .any(|r| r.ends_with("/deployments/inference")),
        "the Deployment was applied before the wait"
    );
}

#[test]
fn an_external_metrics_api_that_never_turns_available_stops_before_the_hpa() {
    let env = Env::new();
    env.api.route(|req, _| {
        (req.path == "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.external.metrics.k8s.io")
            .then(|| {
                (
                    200,
                    json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                       "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
                       "spec": {"groupPriorityMinimum": 100, "versionPriority": 100},
                       "status": {"conditions": [{"type": "Available", "status": "False",
                           "reason": "FailedDiscoveryCheck",
                           "message": "failing or missing response from https://10.96.0.12:443/apis/external.metrics.k8s.io/v1beta1: context deadline exceeded",
                           "lastTransitionTime": "2026-11-27T20:00:00Z"}]}}),
                )
            })
    });
    env.up_with(&["--set", "timeouts.apiservice_seconds=1"])
        .expect_code(1)
        .stderr_has(&[
            "v1beta1.external.metrics.k8s.io was not ready after 1s",
            "is not Available: FailedDiscoveryCheck failing or missing response",
            "check `kubectl -n monitoring logs deploy/prometheus-adapter`",
        ]);
    let writes = mutating_requests(&env);
    assert!(
        !writes
            .iter()
            .any(|w| w.contains("horizontalpodautoscalers")),
        "no HPA before its metric API is Available: {writes:?}"
    );
}

#[test]
fn ctrl_c_during_a_helm_wait_stops_cleanly() {
    let mut env = Env::new();
    env.set_env("KSCALE_FAKE_FAIL", "helm-hang:prometheus");
    let src = env.source().display().to_string();
    let running = env.spawn(&["--output", "json", "up", "--source", &src], &[]);
    let status = env
        .state()
        .join("helm/releases/monitoring/prometheus/status");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&status).is_ok_and(|s| s.trim() == "hanging") {
        assert!(Instant::now() < deadline, "helm never started its wait");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A terminal's Ctrl-C goes to the whole foreground process group: kscale; helm runs in a
    // group of its own (so that a deadline ends all it started), and kscale passes it on.
    super::signal_group(running.pid(), "INT");
    let run = running.wait();
    let helm_pid = std::fs::read_to_string(status.with_file_name("pid")).expect("helm's pid");
    let stat = format!("/proc/{}/stat", helm_pid.trim());
    let deadline = Instant::now() + Duration::from_secs(10);
    // Gone, or a zombie once its parent (kscale) has exited.
    while std::fs::read_to_string(&stat).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    }) {
        assert!(
            Instant::now() < deadline,
            "helm outlived the interrupted kscale: {stat}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run.expect_code(130).stderr_has(&[
        "interrupted: kscale stopped",
        "re-running the command continues from here",
    ]);
    assert!(
        !run.stderr.contains("failed with"),
        "the interrupted command is not reported as a failure: {}",
        run.stderr
    );
    // `--output json`: stdout is still one document, saying what happened.
    let document: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", run.stdout));
    assert_eq!(document["error"]["exit_code"], 130, "{document}");
    assert!(
        document["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("interrupted")),
        "{document}"
    );
}
