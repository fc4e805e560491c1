//! kscale against a real Kubernetes control plane (`cargo xtask controlplane`): real
//! kube-apiserver with server-side apply, kube-controller-manager (Deployment and HPA
//! controllers), kwok's fake nodes and pods, a real Prometheus and prometheus-adapter running
//! kscale's own rule, and a real `kscale-server` per pod. One test walks the steps in order, since
//! they share one cluster and the last one breaks it on purpose.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::{Harness, IMAGE};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `(kind, namespace/name or name)` of each object kscale's deploy summary lists.
fn applied_objects(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|line| {
            let (head, status) = line.rsplit_once(": ")?;
            if !matches!(status, "created" | "unchanged" | "configured") {
                return None;
            }
            let (kind, name) = head.split_once(' ')?;
            Some((kind.to_string(), name.to_string()))
        })
        .collect()
}

fn resource_versions(h: &Harness, objects: &[(String, String)]) -> BTreeMap<String, String> {
    objects
        .iter()
        .map(|(kind, id)| {
            let args: Vec<&str> = match id.split_once('/') {
                Some((ns, name)) => vec![kind.as_str(), name, "-n", ns],
                None => vec![kind.as_str(), id.as_str()],
            };
            let obj = h.get(&args);
            let managers: Vec<&str> = obj["metadata"]["managedFields"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter(|f| f["operation"] == "Apply")
                        .filter_map(|f| f["manager"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                managers.contains(&"kscale"),
                "{kind} {id} was not server-side applied by kscale (Apply managers: {managers:?})"
            );
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_else(|| panic!("{kind} {id} has no resourceVersion"))
                .to_string();
            (format!("{kind} {id}"), rv)
        })
        .collect()
}

/// The Deployment's generation once its rollout is complete (every replica updated and
/// available, the controller caught up).
fn rolled_out(h: &Harness) -> i64 {
    h.until(
        "rollout of default/inference",
        Duration::from_secs(120),
        || {
            let d = h.get(&["deployment", "inference", "-n", "default"]);
            let generation = d["metadata"]["generation"].as_i64().unwrap_or(-1);
            let s = &d["status"];
            let want = d["spec"]["replicas"].as_i64().unwrap_or(-1);
            let done = s["observedGeneration"].as_i64() == Some(generation)
                && s["updatedReplicas"].as_i64() == Some(want)
                && s["availableReplicas"].as_i64() == Some(want)
                && s["replicas"].as_i64() == Some(want);
            if done {
                Ok(generation)
            } else {
                Err(format!("generation {generation}, status {s}"))
            }
        },
    )
}

fn pod_env(h: &Harness, name: &str) -> Option<String> {
    let d = h.get(&["deployment", "inference", "-n", "default"]);
    d["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
        .and_then(|v| v["value"].as_str().map(str::to_string))
}

fn step_deploy(h: &Harness) {
    let out = h.kscale(&["deploy", "--image", IMAGE]);
    let first = text(&out);
    assert!(out.status.success(), "kscale deploy failed:\n{first}");
    let objects = applied_objects(&first);
    for kind in [
        "Namespace",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    ] {
        assert!(
            objects.iter().any(|(k, _)| k == kind),
            "deploy summary lists no {kind}:\n{first}"
        );
    }
    let generation = rolled_out(h);
    let before = resource_versions(h, &objects);

    let out = h.kscale(&["deploy", "--image", IMAGE]);
    let again = text(&out);
    assert!(
        out.status.success(),
        "second kscale deploy failed:\n{again}"
    );
    let after = resource_versions(h, &objects);
    assert_eq!(
        before, after,
        "a re-run changed objects (resourceVersions differ):\n{again}"
    );
    assert_eq!(
        applied_objects(&again)
            .iter()
            .filter(|(k, _)| k != "Namespace")
            .count(),
        objects.len() - 1
    );
    assert_eq!(rolled_out(h), generation, "a re-run started a rollout");

    let out = h.kscale(&["deploy", "--image", IMAGE, "--set", "app.workers=2"]);
    let changed = text(&out);
    assert!(
        out.status.success(),
        "kscale deploy --set app.workers=2 failed:\n{changed}"
    );
    assert!(
        changed.contains("Deployment default/inference: configured"),
        "the changed setting did not reach the Deployment:\n{changed}"
    );
    let new_generation = rolled_out(h);
    assert_eq!(
        new_generation,
        generation + 1,
        "one new generation rolls out"
    );
    assert_eq!(pod_env(h, "WORKERS").as_deref(), Some("2"));
    // Every pod of the new generation runs with the new setting (the old ReplicaSet is gone).
    h.until("old pods gone", Duration::from_secs(60), || {
        let pods = h.get(&["pods", "-n", "default", "-l", "app=inference"]);
        let items = pods["items"].as_array().cloned().unwrap_or_default();
        let stale = items
            .iter()
            .filter(|p| {
                p["spec"]["containers"][0]["env"]
                    .as_array()
                    .is_some_and(|e| {
                        e.iter()
                            .any(|v| v["name"] == "WORKERS" && v["value"] != "2")
                    })
            })
            .count();
        if stale == 0 && !items.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{stale} of {} pods still on the old template",
                items.len()
            ))
        }
    });
}

fn step_metrics_pass(h: &Harness) {
    let out = h.kscale(&["metrics", "--wait", "3m"]);
    let report = text(&out);
    assert!(out.status.success(), "kscale metrics failed:\n{report}");
    for stage in 1..=6 {
        assert!(
            report.contains(&format!("✓ {stage}. ")),
            "stage {stage} did not pass:\n{report}"
        );
    }
    assert!(report.contains("6 of 6 stages passed"), "{report}");
}

fn step_metrics_fail_without_adapter(h: &Harness) {
    h.stop_component("prometheus-adapter");
    let out = h.kscale(&["metrics", "--wait", "20s"]);
    let report = text(&out);
    assert!(
        !out.status.success(),
        "kscale metrics passed with the adapter stopped:\n{report}"
    );
    for stage in 1..=3 {
        assert!(
            report.contains(&format!("✓ {stage}. ")),
            "stage {stage} should still pass:\n{report}"
        );
    }
    assert!(
        report.contains("✗ 4. APIService v1beta1.external.metrics.k8s.io Available"),
        "stage 4 did not name the APIService:\n{report}"
    );
    assert!(report.contains("✗ 5. "), "{report}");
    assert!(
        report.contains("see stage 4"),
        "stage 5 does not point at stage 4:\n{report}"
    );
    assert!(report.contains("3 of 6 stages passed"), "{report}");
}

#[test]
fn kscale_against_a_real_control_plane() {
    let h = Harness::start("20s");
    step_deploy(&h);
    step_metrics_pass(&h);
    step_metrics_fail_without_adapter(&h);
}
