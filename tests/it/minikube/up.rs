//! The real `kscale up` on real minikube, as a user of an offline machine runs it: the kit's
//! settings from `cargo xtask kit env`, the pinned charts from `../shared/charts`, a host-built
//! server image, Grafana off.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::kit::{Kit, poll};

/// The minikube profile of this test.
const PROFILE: &str = "kscale-e2e";

/// The packaged charts (read-only test inputs beside the repository), or `None` when absent.
fn shared_charts() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/charts");
    dir.join("kube-prometheus-stack-88.5.3.tgz")
        .is_file()
        .then(|| dir.canonicalize().unwrap_or(dir))
}

/// `--set` arguments of every kscale run here.
fn sets(charts: &Path) -> Vec<String> {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kit/prometheus-values.yaml");
    [
        format!("cluster.profile={PROFILE}"),
        format!("monitoring.chart_source={}", charts.display()),
        format!("monitoring.prometheus_values={}", fixture.display()),
        "monitoring.grafana=false".into(),
        "app.image_build=host".into(),
    ]
    .iter()
    .flat_map(|s| ["--set".to_string(), s.clone()])
    .collect()
}

fn kscale(kit: &Kit, charts: &Path, args: &[&str], deadline: Duration) -> (bool, String, Duration) {
    let mut all: Vec<String> = sets(charts);
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let started = Instant::now();
    let (ok, out, err) = kit.bounded(env!("CARGO_BIN_EXE_kscale"), &refs, deadline);
    (ok, format!("{out}\n{err}"), started.elapsed())
}

fn helm_revisions(kit: &Kit) -> Vec<(String, String)> {
    let out = kit.ok(
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
    list.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("?").to_string(),
                r["revision"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn deployment_generation(kit: &Kit) -> (String, String) {
    let d = kit.json(
        "kubectl",
        &[
            "--context",
            PROFILE,
            "-n",
            "default",
            "get",
            "deployment",
            "inference",
            "-o",
            "json",
        ],
    );
    (
        d["metadata"]["generation"].to_string(),
        d["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
    )
}

/// Fresh `kscale up` to 6/6, a re-run that changes nothing, then `kscale teardown --yes`
/// leaving nothing behind.
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
    kit.run("minikube", &["delete", "--profile", PROFILE]);
    let _cleanup = kit.delete_on_drop(PROFILE);

    let (ok, out, fresh) = kscale(&kit, &charts, &["up"], Duration::from_secs(30 * 60));
    assert!(ok, "kscale up failed:\n{out}");
    eprintln!("kscale up (fresh, to 6/6): {:.0} s", fresh.as_secs_f64());
    assert!(out.contains("every stage passes"), "{out}");
    let nodes = kit.json(
        "kubectl",
        &["--context", PROFILE, "get", "nodes", "-o", "json"],
    );
    assert_eq!(nodes["items"].as_array().map(Vec::len), Some(2));

    let revisions = helm_revisions(&kit);
    let generation = deployment_generation(&kit);
    let (ok, out, rerun) = kscale(&kit, &charts, &["up"], Duration::from_secs(15 * 60));
    assert!(ok, "second kscale up failed:\n{out}");
    eprintln!("kscale up (re-run): {:.1} s", rerun.as_secs_f64());
    assert_eq!(
        helm_revisions(&kit),
        revisions,
        "a re-run upgraded a release:\n{out}"
    );
    assert_eq!(
        deployment_generation(&kit),
        generation,
        "a re-run rolled out:\n{out}"
    );

    let (ok, out, _) = kscale(
        &kit,
        &charts,
        &["teardown", "--yes"],
        Duration::from_secs(15 * 60),
    );
    assert!(ok, "kscale teardown failed:\n{out}");
    let profiles = kit.run("minikube", &["profile", "list", "-o", "json"]);
    assert!(
        !profiles.contains(&format!("\"Name\":\"{PROFILE}\"")),
        "{profiles}"
    );
    let containers = kit.ok(
        "docker",
        &["ps", "-a", "--format", "{{.Names}}"],
        Duration::from_secs(30),
    );
    assert!(
        !containers.lines().any(|n| n.starts_with(PROFILE)),
        "containers left: {containers}"
    );
    poll(
        "the profile's network is gone",
        Duration::from_secs(60),
        || {
            let networks = kit.ok(
                "docker",
                &["network", "ls", "--format", "{{.Name}}"],
                Duration::from_secs(30),
            );
            (!networks.lines().any(|n| n == PROFILE)).then_some(())
        },
    );
}
