//! Real minikube on the offline kit (`cargo xtask kit`): two docker-driver nodes of 4400 MB,
//! flannel, CoreDNS, kube-proxy, metrics-server, all from images built here. `cargo xtask ci`
//! builds the kit first and runs these tests on their own, one at a time (a cluster takes both
//! cores while it starts).

pub(crate) mod kit;
mod up;

use std::time::{Duration, Instant};

use kit::{Kit, poll};

/// The profile of this test (never the user's `minikube`).
const PROFILE: &str = "kscale-kit-test";

fn start(kit: &Kit) -> Duration {
    let started = Instant::now();
    let mut args = vec![
        "start",
        "--profile",
        PROFILE,
        "--nodes",
        "2",
        "--memory",
        "4400",
    ];
    let flags = kit.start_flags();
    args.extend(flags.iter().map(String::as_str));
    kit.ok("minikube", &args, Duration::from_secs(20 * 60));
    started.elapsed()
}

fn nodes_ready(kit: &Kit) -> Vec<String> {
    let nodes = kit.json(
        "kubectl",
        &["--context", PROFILE, "get", "nodes", "-o", "json"],
    );
    nodes["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|node| {
            node["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .filter_map(|node| node["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// Pods of `namespace` that are not Running with every container ready, as `name (phase)`.
fn pods_not_running(kit: &Kit, namespace: &str) -> Vec<String> {
    let pods = kit.json(
        "kubectl",
        &[
            "--context",
            PROFILE,
            "-n",
            namespace,
            "get",
            "pods",
            "-o",
            "json",
        ],
    );
    let items = pods["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        return vec![format!("no pods in {namespace} yet")];
    }
    items
        .iter()
        .filter(|pod| {
            let ready = pod["status"]["containerStatuses"]
                .as_array()
                .is_some_and(|s| s.iter().all(|c| c["ready"] == true));
            pod["status"]["phase"] != "Running" || !ready
        })
        .map(|pod| {
            format!(
                "{} ({}; {})",
                pod["metadata"]["name"].as_str().unwrap_or("?"),
                pod["status"]["phase"].as_str().unwrap_or("?"),
                pod["status"]["containerStatuses"]
            )
        })
        .collect()
}

fn wait_for_cluster(kit: &Kit) {
    let names = poll("both nodes Ready", Duration::from_secs(300), || {
        let ready = nodes_ready(kit);
        (ready.len() == 2).then_some(ready)
    });
    assert!(names.contains(&PROFILE.to_string()), "{names:?}");
    assert!(names.contains(&format!("{PROFILE}-m02")), "{names:?}");
    for namespace in ["kube-system", "kube-flannel"] {
        poll(
            &format!("every pod of {namespace} Running and ready"),
            Duration::from_secs(300),
            || {
                let waiting = pods_not_running(kit, namespace);
                waiting.is_empty().then_some(())
            },
        );
    }
    // kube-proxy and flannel run on both nodes.
    let pods = kit.json(
        "kubectl",
        &["--context", PROFILE, "get", "pods", "-A", "-o", "json"],
    );
    for (app, label) in [("kube-proxy", "k8s-app"), ("flannel", "app")] {
        let nodes: std::collections::BTreeSet<&str> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["metadata"]["labels"][label] == app)
            .filter_map(|p| p["spec"]["nodeName"].as_str())
            .collect();
        assert_eq!(nodes.len(), 2, "{app} runs on {nodes:?}");
    }
}

/// `crictl images` on one node, through `minikube ssh` (minikube's exit code alone is not
/// trusted: it returned 0 while failing when crictl was missing).
fn node_images(kit: &Kit, node: &str) -> String {
    kit.ok(
        "minikube",
        &[
            "ssh",
            "--profile",
            PROFILE,
            "--node",
            node,
            "--",
            "sudo",
            "crictl",
            "images",
        ],
        Duration::from_secs(60),
    )
}

/// Runs a busybox pod on `node` to completion and returns its log.
fn run_pod(kit: &Kit, name: &str, node: &str, command: &str) -> String {
    let overrides = serde_json::json!({
        "spec": {"nodeName": node, "containers": [{
            "name": name,
            "image": kit.busybox(),
            "imagePullPolicy": "Never",
            "command": ["/bin/sh", "-c", command],
        }]}
    });
    kit.ok(
        "kubectl",
        &[
            "--context",
            PROFILE,
            "run",
            name,
            "--restart=Never",
            "--image",
            &kit.busybox(),
            "--overrides",
            &overrides.to_string(),
        ],
        Duration::from_secs(60),
    );
    poll(
        &format!("pod {name} completes"),
        Duration::from_secs(120),
        || {
            let pod = kit.json(
                "kubectl",
                &["--context", PROFILE, "get", "pod", name, "-o", "json"],
            );
            match pod["status"]["phase"].as_str() {
                Some("Succeeded") => Some(()),
                Some("Failed") => panic!(
                    "pod {name} failed: {}",
                    kit.run("kubectl", &["--context", PROFILE, "logs", name])
                ),
                _ => None,
            }
        },
    );
    let log = kit.ok(
        "kubectl",
        &["--context", PROFILE, "logs", name],
        Duration::from_secs(30),
    );
    kit.ok(
        "kubectl",
        &["--context", PROFILE, "delete", "pod", name, "--wait=false"],
        Duration::from_secs(30),
    );
    log
}

fn check_networking(kit: &Kit) {
    let second = format!("{PROFILE}-m02");
    // DNS: CoreDNS (first node) answers a pod on the second node.
    let dns = run_pod(
        kit,
        "dns-probe",
        &second,
        "nslookup kubernetes.default.svc.cluster.local",
    );
    assert!(dns.contains("10.96.0.1"), "nslookup answered:\n{dns}");
    // A Service on the first node, reached by name from a pod on the second node.
    let server = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "kit-web"}},
        "spec": {"nodeName": PROFILE, "containers": [{
            "name": "web", "image": kit.busybox(), "imagePullPolicy": "Never",
            "command": ["/bin/sh", "-c",
                "mkdir -p /www && echo served-by-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"],
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
        }]}
    });
    let service = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kit-web"},
        "spec": {"selector": {"app": "kit-web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    });
    for object in [server, service] {
        kit.apply(PROFILE, &object.to_string());
    }
    poll("the web pod is ready", Duration::from_secs(120), || {
        let pod = kit.json(
            "kubectl",
            &["--context", PROFILE, "get", "pod", "web", "-o", "json"],
        );
        (pod["status"]["containerStatuses"][0]["ready"] == true).then_some(())
    });
    // Retried: kube-proxy on the second node programs the new endpoint a moment after the pod
    // is ready. busybox's nc, not its wget, whose `-T` crashes in bookworm's build (see the kit's
    // `images::BUSYBOX_APPLETS`).
    let answer = run_pod(
        kit,
        "web-probe",
        &second,
        "for i in $(seq 1 30); do \
           printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 kit-web.default.svc.cluster.local 80 > /tmp/answer \
             && grep -q served-by /tmp/answer && tail -n 1 /tmp/answer && exit 0; \
           sleep 1; \
         done; cat /tmp/answer; exit 1",
    );
    assert_eq!(
        answer.trim(),
        "served-by-web",
        "the Service answered {answer:?}"
    );
}

fn check_image_load(kit: &Kit) {
    let image = kit.busybox();
    kit.ok(
        "minikube",
        &["image", "load", "--profile", PROFILE, &image],
        Duration::from_secs(300),
    );
    let (repository, tag) = image.rsplit_once(':').unwrap_or((&image, "latest"));
    for node in [PROFILE.to_string(), format!("{PROFILE}-m02")] {
        let images = node_images(kit, &node);
        assert!(
            images
                .lines()
                .any(|l| l.contains(repository) && l.contains(tag)),
            "{image} is not on node {node}:\n{images}"
        );
    }
}

/// The metrics-server addon with the kit's image: its pod Ready, its APIService Available, and
/// `metrics.k8s.io` serving usage of both nodes through the API server (the aggregation path:
/// front-proxy certificate, request headers, the Service's cluster IP from the control-plane
/// node).
fn check_metrics_server(kit: &Kit) {
    let mut args = vec!["addons", "enable", "metrics-server", "--profile", PROFILE];
    let flags = kit.metrics_server_flags();
    args.extend(flags.iter().map(String::as_str));
    kit.ok("minikube", &args, Duration::from_secs(300));
    poll("metrics-server is Ready", Duration::from_secs(300), || {
        let pods = kit.json(
            "kubectl",
            &[
                "--context",
                PROFILE,
                "-n",
                "kube-system",
                "get",
                "pods",
                "-l",
                "k8s-app=metrics-server",
                "-o",
                "json",
            ],
        );
        let ready = pods["items"].as_array().is_some_and(|items| {
            items.len() == 1 && items[0]["status"]["containerStatuses"][0]["ready"] == true
        });
        let image = &pods["items"][0]["spec"]["containers"][0]["image"];
        if !image.is_null() {
            assert_eq!(
                image, "registry.k8s.io/metrics-server/metrics-server:v0.8.0",
                "the addon did not take the kit's image"
            );
        }
        ready.then_some(())
    });
    let served = poll(
        "metrics.k8s.io serves usage of both nodes",
        Duration::from_secs(240),
        || {
            let out = kit.try_ok(
                "kubectl",
                &[
                    "--context",
                    PROFILE,
                    "get",
                    "--raw",
                    "/apis/metrics.k8s.io/v1beta1/nodes",
                ],
            )?;
            let list: serde_json::Value = serde_json::from_str(&out).ok()?;
            let mut nodes: Vec<String> = list["items"]
                .as_array()?
                .iter()
                .filter(|item| item["usage"]["memory"].is_string())
                .filter_map(|item| item["metadata"]["name"].as_str().map(str::to_string))
                .collect();
            nodes.sort();
            (nodes.len() == 2).then_some(nodes)
        },
    );
    assert_eq!(served, vec![PROFILE.to_string(), format!("{PROFILE}-m02")]);
}

/// `minikube delete`, then nothing of the profile may be left. minikube v1.37.0 sometimes
/// leaves the profile's Docker network behind (its removal races the containers' removal and is
/// not retried); a second `minikube delete` removes it. That is reported, and anything that
/// survives the second delete fails the test.
fn delete(kit: &Kit) {
    kit.ok(
        "minikube",
        &["delete", "--profile", PROFILE],
        Duration::from_secs(300),
    );
    let left = kit.leftovers(PROFILE);
    if left.is_empty() {
        return;
    }
    eprintln!("minikube delete left {left:?}; deleting again");
    assert!(
        left.iter().all(|l| l.starts_with("network ")),
        "minikube delete left more than its network: {left:?}"
    );
    kit.ok(
        "minikube",
        &["delete", "--profile", PROFILE],
        Duration::from_secs(300),
    );
    let left = kit.leftovers(PROFILE);
    assert!(left.is_empty(), "two minikube deletes left: {left:?}");
}

/// Start, prove the cluster, start again while it runs (idempotent), delete (nothing left),
/// start once more after the delete, and delete again.
#[test]
fn minikube_two_nodes_on_the_offline_kit() {
    let Some(kit) = Kit::load() else {
        return;
    };
    // A previous run that was killed may have left its profile.
    kit.run("minikube", &["delete", "--profile", PROFILE]);
    let _cleanup = kit.delete_on_drop(PROFILE);

    let first = start(&kit);
    eprintln!(
        "minikube start (2 nodes, cold): {:.0} s",
        first.as_secs_f64()
    );
    wait_for_cluster(&kit);
    eprintln!(
        "memory of the running cluster: {}",
        kit.cluster_memory(PROFILE)
    );
    check_image_load(&kit);
    check_networking(&kit);
    check_metrics_server(&kit);

    let again = start(&kit);
    eprintln!("minikube start while running: {:.0} s", again.as_secs_f64());
    let ready = nodes_ready(&kit);
    assert_eq!(ready.len(), 2, "after a second start: {ready:?}");

    delete(&kit);
    let restart = start(&kit);
    eprintln!(
        "minikube start after delete: {:.0} s",
        restart.as_secs_f64()
    );
    wait_for_cluster(&kit);
    delete(&kit);
}
