//! `kscale teardown`: everything removed in order, the confirmation rule, `--keep-cluster`, and
//! nothing left to remove.

use super::{Env, mutating_requests};

#[test]
fn teardown_yes_removes_everything_in_order() {
    let env = Env::new();
    env.up_fresh();
    let run = env.kscale(&["teardown", "--yes"]);
    run.expect_code(0).stdout_has(&[
        "removed HorizontalPodAutoscaler default/inference",
        "removed helm release monitoring/prometheus-adapter",
        "removed helm release monitoring/prometheus",
        "removed minikube profile kscale",
    ]);
    insta::assert_snapshot!("teardown_commands", env.log().join("\n"));
    assert_eq!(
        mutating_requests(&env),
        [
            "DELETE /apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/inference",
            "DELETE /apis/policy/v1/namespaces/default/poddisruptionbudgets/inference",
            "DELETE /api/v1/namespaces/default/services/inference",
            "DELETE /apis/apps/v1/namespaces/default/deployments/inference",
            "DELETE /api/v1/namespaces/monitoring/configmaps/kscale-inference-dashboard",
            "DELETE /api/v1/namespaces/monitoring/secrets/kscale-scrape-config",
            "DELETE /api/v1/namespaces/monitoring",
        ],
        "the HPA first, so it does not scale what is being removed"
    );
    assert!(!env.profile_exists("kscale"));
    assert_eq!(env.releases("monitoring"), Vec::<String>::new());
    assert!(
        env.api.store().paths().is_empty(),
        "{:?}",
        env.api.store().paths()
    );
}

#[test]
fn teardown_without_a_terminal_refuses_without_yes_before_any_command() {
    let env = Env::new();
    env.up_fresh();
    let before = env.versions();
    // A missing --yes is bad input, like any other: exit 2.
    env.kscale(&["teardown"]).expect_code(2).stderr_has(&[
        "refusing to delete minikube profile kscale without --yes",
        "nothing was changed",
        "--keep-cluster",
    ]);
    assert_eq!(env.log(), Vec::<String>::new(), "no command ran");
    assert!(env.api.seen().is_empty());
    assert_eq!(env.versions(), before);
    assert!(env.profile_exists("kscale"));
}

#[test]
fn teardown_keep_cluster_removes_only_what_kscale_installed() {
    let env = Env::new();
    env.up_fresh();
    env.kscale(&["teardown", "--keep-cluster"])
        .expect_code(0)
        .stdout_has(&["removed helm release monitoring/prometheus"]);
    assert!(env.profile_exists("kscale"), "the cluster stays");
    assert!(
        !env.log().iter().any(|l| l.starts_with("minikube delete")),
        "{:?}",
        env.log()
    );
    assert_eq!(env.releases("monitoring"), Vec::<String>::new());
    assert!(env.api.store().paths().is_empty());

    // Again: nothing left is success, and each part is reported as already gone.
    env.clear_log();
    env.kscale(&["teardown", "--keep-cluster"])
        .expect_code(0)
        .stdout_has(&[
            "already gone: HorizontalPodAutoscaler default/inference",
            "already gone: helm release monitoring/prometheus-adapter",
            "already gone: Namespace monitoring",
        ]);
}

#[test]
fn teardown_when_nothing_exists_succeeds() {
    let env = Env::new();
    env.kscale(&["teardown", "--yes"])
        .expect_code(0)
        .stdout_has(&["nothing to remove: minikube profile kscale does not exist"]);
    assert_eq!(
        env.mutating_calls(),
        Vec::<String>::new(),
        "{:?}",
        env.log()
    );
    assert!(env.api.seen().is_empty());
}

#[test]
fn teardown_of_a_stopped_cluster_deletes_the_profile() {
    let env = Env::new();
    env.up_fresh();
    env.set_profile_status("kscale", "Stopped");
    env.kscale(&["teardown", "--yes"])
        .expect_code(0)
        .stdout_has(&["removed minikube profile kscale"]);
    assert_eq!(env.mutating_calls(), ["minikube delete -p kscale"]);
    assert!(
        env.api.seen().is_empty(),
        "a stopped cluster's API is not called"
    );
}

#[test]
fn teardown_keep_cluster_of_a_stopped_cluster_says_to_start_it() {
    let env = Env::new();
    env.up_fresh();
    env.set_profile_status("kscale", "Stopped");
    env.kscale(&["teardown", "--keep-cluster"])
        .expect_code(1)
        .stderr_has(&[
            "minikube profile kscale is Stopped",
            "nothing was changed",
            "minikube start -p kscale",
        ]);
    assert_eq!(env.mutating_calls(), Vec::<String>::new());
    assert!(env.api.seen().is_empty());
}

#[test]
fn teardown_of_a_profile_reported_ok_removes_objects_first() {
    let env = Env::new();
    env.up_fresh();
    env.set_profile_status("kscale", "OK");
    env.kscale(&["teardown", "--yes"]).expect_code(0);
    let writes = env.mutating_calls();
    assert_eq!(
        writes.last().map(String::as_str),
        Some("minikube delete -p kscale"),
        "{writes:?}"
    );
    assert!(
        writes
            .iter()
            .any(|w| w.contains(" uninstall prometheus-adapter ")),
        "a running cluster is emptied before it is deleted: {writes:?}"
    );
}

/// minikube v1.37 can leave the profile's Docker network behind while reporting success:
/// teardown notices it, deletes once more, and nothing is left.
#[test]
fn teardown_deletes_again_when_minikube_leaves_the_network() {
    let mut env = Env::new();
    env.up_fresh();
    let network = env.state().join("docker/networks/kscale");
    assert!(network.exists(), "the fake start made no network");
    env.set_env("KSCALE_FAKE_FAIL", "minikube-delete-leaves-network");
    env.clear_log();
    env.kscale(&["teardown", "--yes"])
        .expect_code(0)
        .stdout_has(&["removed minikube profile kscale"]);
    let deletes = env
        .log()
        .iter()
        .filter(|l| l.starts_with("minikube delete"))
        .count();
    assert_eq!(deletes, 2, "{:?}", env.log());
    assert!(!network.exists(), "the network is left");
}
