//! `kscale up`: fresh, again on the running stack, on a stopped cluster, on a cluster of another
//! size, with helm 4, `--dry-run` and `--output json`.

use super::{Env, mutating_requests};

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/default/deployments/inference";
const HPA: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/inference";

#[test]
fn fresh_up_runs_every_step_in_order() {
    let env = Env::new();
    let run = env.up();
    run.expect_code(0)
        .stdout_has(&[
            "kscale: the stack is up on context kscale",
            "image: kscale-server:",
            "kubectl --context kscale -n monitoring port-forward svc/prometheus-kube-prometheus-prometheus 9090",
            "svc/prometheus-grafana",
            "minikube service inference -n default -p kscale --url",
        ])
        .stderr_has(&[
            "preflight",
            "created",
            "installed",
            "rollout",
            "end-to-end metric check (pods → Prometheus → adapter → external metrics API → HPA): every stage passes",
        ]);
    insta::assert_snapshot!("fresh_up_commands", env.log().join("\n"));
    insta::assert_snapshot!("fresh_up_api_writes", mutating_requests(&env).join("\n"));

    // The stack the fakes and the stub hold afterwards.
    assert!(env.profile_exists("kscale"));
    assert_eq!(
        env.releases("monitoring"),
        ["prometheus", "prometheus-adapter"]
    );
    let deployment = env.api.object(DEPLOYMENT).expect("Deployment applied");
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image")
        .to_string();
    assert!(image.starts_with("kscale-server:"), "{image}");
    let loaded = std::fs::read_to_string(env.state().join("minikube/profiles/kscale/images"))
        .expect("images");
    assert_eq!(
        loaded.trim(),
        image,
        "the deployed image is loaded into minikube"
    );
    assert!(env.api.object(HPA).is_some(), "HPA applied");
    let stored_values = std::fs::read_to_string(
        env.state()
            .join("helm/releases/monitoring/prometheus-adapter/values.yaml"),
    )
    .expect("values stored by helm");
    assert!(stored_values.contains("default: false"), "{stored_values}");
}

#[test]
fn up_without_grafana_shows_no_way_to_it() {
    let env = Env::new();
    let run = env.up_with(&["--set", "monitoring.grafana=false"]);
    run.expect_code(0).stdout_has(&[
        "kscale: the stack is up on context kscale",
        "port-forward svc/prometheus-kube-prometheus-prometheus 9090",
    ]);
    assert!(!run.stdout.contains("grafana"), "{}", run.stdout);
}

#[test]
fn up_again_on_the_running_stack_changes_nothing() {
    let env = Env::new();
    let first = env.up_fresh();
    let before = env.versions();
    let again = env.up();
    again
        .expect_code(0)
        .stderr_has(&["running, reused", "unchanged"]);
    assert_eq!(
        env.mutating_calls(),
        Vec::<String>::new(),
        "a re-run must only read:\n{}",
        env.log().join("\n")
    );
    // Server-side apply is a PATCH even when nothing changes; what must not move is any
    // resourceVersion, and nothing may be created or deleted.
    let writes = mutating_requests(&env);
    assert!(writes.iter().all(|w| w.starts_with("PATCH ")), "{writes:?}");
    assert_eq!(env.versions(), before, "no object changed");
    insta::assert_snapshot!("up_again_commands", env.log().join("\n"));
    // Generous bound: the re-run waits on nothing (everything is ready at the first check).
    assert!(
        again.elapsed.as_secs() < 30,
        "re-run took {:?} (first run {:?})",
        again.elapsed,
        first.elapsed
    );
    eprintln!(
        "timing: fresh up {:?}, re-run {:?}",
        first.elapsed, again.elapsed
    );
}

#[test]
fn up_on_a_stopped_cluster_starts_it_without_recreating() {
    let env = Env::new();
    env.up_fresh();
    env.set_profile_status("kscale", "Stopped");
    env.up().expect_code(0).stderr_has(&["started"]);
    let writes = env.mutating_calls();
    assert_eq!(
        writes,
        ["minikube start -p kscale --wait all --wait-timeout 600s"],
        "only the start, with the profile's own settings:\n{}",
        env.log().join("\n")
    );
}

#[test]
fn a_running_profile_reported_ok_is_reused() {
    // minikube 1.34+ reports a healthy profile as "OK" in `profile list`.
    let env = Env::new();
    env.up_fresh();
    env.set_profile_status("kscale", "OK");
    env.up().expect_code(0).stderr_has(&["running, reused"]);
    assert_eq!(env.mutating_calls(), Vec::<String>::new());
}

#[test]
fn up_on_a_profile_with_another_node_count_changes_nothing() {
    let env = Env::new();
    env.seed_profile("kscale", "Running", 3);
    env.up().expect_code(1).stderr_has(&[
        "minikube profile kscale exists with 3 node(s) but the configuration asks for 2",
        "nothing was changed",
        "cluster.nodes = 3",
    ]);
    assert_eq!(
        env.mutating_calls(),
        Vec::<String>::new(),
        "{}",
        env.log().join("\n")
    );
    assert!(env.api.seen().is_empty(), "no API call before the error");
    let nodes =
        std::fs::read_to_string(env.state().join("minikube/profiles/kscale/nodes")).expect("nodes");
    assert_eq!(nodes.trim(), "3");
}

/// The two `helm upgrade --install` calls of a successful `kscale up`.
fn helm_installs_of_an_up(env: &Env) -> Vec<String> {
    env.up().expect_code(0);
    let installs: Vec<String> = env
        .log()
        .into_iter()
        .filter(|l| l.contains(" upgrade --install "))
        .collect();
    assert_eq!(installs.len(), 2, "{installs:?}");
    installs
}

#[test]
fn helm_4_gets_its_wait_dialect() {
    let mut env = Env::new();
    env.set_env("KSCALE_FAKE_HELM", "4");
    for l in &helm_installs_of_an_up(&env) {
        assert!(l.contains(" --wait=watcher "), "{l}");
    }
}

#[test]
fn helm_3_refuses_the_helm_4_dialect() {
    // The fake's helm 3 rejects `--wait=watcher` the way pflag does; kscale never sends it.
    let env = Env::new();
    for l in &helm_installs_of_an_up(&env) {
        assert!(l.contains(" --wait ") && !l.contains("--wait="), "{l}");
    }
}

#[test]
fn dry_run_executes_nothing_and_prints_the_plan() {
    let env = Env::new();
    let src = env.source().display().to_string();
    let run = env.kscale(&["--dry-run", "up", "--source", &src]);
    // The plan is progress (stderr); stdout keeps only the result.
    run.expect_code(0).stderr_has(&[
        "$ minikube start -p kscale --nodes 2 --memory 4400 --cpus 2 --driver docker",
        "$ minikube addons enable metrics-server -p kscale",
        "$ helm repo add prometheus-community https://prometheus-community.github.io/helm-charts",
        "$ helm --kube-context kscale upgrade --install prometheus prometheus-community/kube-prometheus-stack --version 88.5.3",
        "$ helm --kube-context kscale upgrade --install prometheus-adapter prometheus-community/prometheus-adapter --version 5.3.0",
        "$ docker build -f ",
        "$ minikube image load kscale-server:",
        "apply Namespace monitoring",
        "apply Secret monitoring/kscale-scrape-config",
        "apply Deployment default/inference",
        "apply Service default/inference",
        "apply HorizontalPodAutoscaler default/inference",
        "kind: HorizontalPodAutoscaler",
        "values for release prometheus-adapter (prometheus-adapter.yaml):",
    ]);
    assert_eq!(
        env.log(),
        Vec::<String>::new(),
        "the fakes were never called"
    );
    assert!(env.api.seen().is_empty(), "no API call");
    assert!(!env.profile_exists("kscale"));
}

#[test]
fn dry_run_with_output_json_keeps_the_plan_off_stdout() {
    let env = Env::new();
    let src = env.source().display().to_string();
    for args in [
        vec!["--dry-run", "--output", "json", "up", "--source", &src],
        vec!["--dry-run", "--output", "json", "deploy", "--source", &src],
        vec!["--dry-run", "--output", "json", "teardown"],
    ] {
        let run = env.kscale(&args);
        run.expect_code(0);
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one JSON document: {e}\n{}",
                run.stdout
            )
        });
        assert!(
            run.stderr.contains("$ "),
            "{args:?}: the plan is on stderr: {}",
            run.stderr
        );
    }
    assert_eq!(
        env.log(),
        Vec::<String>::new(),
        "the fakes were never called"
    );
}

#[test]
fn output_json_is_one_document_on_stdout() {
    let env = Env::new();
    let src = env.source().display().to_string();
    let run = env.kscale(&["--output", "json", "up", "--source", &src]);
    run.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", run.stdout));
    assert_eq!(doc["cluster"], "created");
    assert_eq!(doc["versions"]["minikube"], "1.37.0");
    assert_eq!(doc["versions"]["helm"], "3.17.3");
    assert_eq!(doc["versions"]["kubectl"], "1.33.1");
    assert_eq!(doc["versions"]["docker"], "28.2.2");
    assert_eq!(
        doc["releases"],
        serde_json::json!([
            ["prometheus", "installed"],
            ["prometheus-adapter", "installed"]
        ])
    );
    assert_eq!(doc["deploy"]["built"], true);
    assert!(
        doc["deploy"]["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("kscale-server:")),
        "{doc}"
    );
    // Progress stays on stderr.
    assert!(run.stderr.contains("preflight"), "{}", run.stderr);
}

#[test]
fn verbose_echoes_each_external_command() {
    let env = Env::new();
    let src = env.source().display().to_string();
    env.kscale(&["-v", "up", "--source", &src])
        .expect_code(0)
        .stderr_has(&[
            "  $ minikube version --short",
            "  $ minikube start -p kscale --nodes 2",
            "  $ helm --kube-context kscale upgrade --install prometheus-adapter",
            "  $ docker build -f ",
        ]);
}

#[test]
fn a_resource_metrics_api_that_never_serves_fails_with_a_hint() {
    let env = Env::new();
    env.api.route(|req, _| {
        (req.path == "/apis/metrics.k8s.io/v1beta1/nodes").then(|| {
            (
                503,
                crate::support::kube_stub::status(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                ),
            )
        })
    });
    env.up_with(&["--set", "timeouts.metrics_server_seconds=1"])
        .expect_code(1)
        .stderr_has(&[
            "the resource metrics API (metrics.k8s.io) was not ready after 1s",
            "metrics-server often needs 1-3 minutes",
        ]);
    // The wait no longer holds the charts and the deploy back (metrics-server starts meanwhile),
    // and the end-to-end check does not run without it.
    let log = env.log();
    let at = |prefix: &str| log.iter().position(|l| l.starts_with(prefix));
    assert!(
        at("minikube addons enable metrics-server") < at("helm repo add")
            && at("helm repo add").is_some()
            && at("minikube image load").is_some(),
        "the addon first, then the charts and the image: {log:?}"
    );
}

#[test]
fn up_on_another_context_leaves_the_cluster_alone() {
    let env = Env::new();
    env.write_kubeconfig("staging");
    let image = "registry.example.com/kscale-server:v1";
    env.kscale(&["--context", "staging", "up", "--image", image])
        .expect_code(0)
        .stdout_has(&[
            "the stack is up on context staging",
            "kubectl --context staging -n default port-forward svc/inference 3000:3000",
        ]);
    let log = env.log();
    assert!(
        !log.iter()
            .any(|l| l.starts_with("minikube") || l.starts_with("docker")),
        "no cluster management and no build on a given context: {log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("helm --kube-context staging upgrade --install prometheus ")),
        "{log:?}"
    );
    let deployment = env.api.object(DEPLOYMENT).expect("Deployment");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        image
    );
}
