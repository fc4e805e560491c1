//! Bringing the control plane up in order (etcd, API server, controller manager, scheduler,
//! kwok and its fake nodes), taking it down completely, and reporting its status.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::build::{self, Programs};
use super::certs::{self, Pki};
use super::metrics::{self, ADAPTER_PORT};
use super::netns::{self, net};
use super::process::{self, Started};
use super::{CONTEXT, HpaSettings, Layout, UpOptions};

/// The API server's port on the namespace's address.
pub const API_PORT: u16 = 6443;
/// How long one kubectl request may take: every kubectl call of the harness is bounded, so a
/// hung API server fails a wait instead of stalling it.
pub const KUBECTL_REQUEST_TIMEOUT: &str = "--request-timeout=20s";
/// The fake nodes kwok keeps Ready.
pub const NODES: [&str; 2] = ["kwok-node-0", "kwok-node-1"];

/// Components in start order; `down` and `status` use the same names.
const COMPONENTS: [&str; 7] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "prometheus",
    "prometheus-adapter",
];

fn api_url(path: &str) -> String {
    format!("https://{}:{API_PORT}{path}", net().ns_ip)
}

/// Where a health probe runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProbeAt {
    /// Inside the network namespace, for endpoints bound to its loopback.
    Netns,
    /// On the host.
    Host,
}

/// How a health probe treats the server's certificate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tls {
    /// Checked against the harness' CA (the API server's certificate names its address).
    VerifyCa,
    /// Not checked (self-signed serving certificates of the other components, or plain HTTP).
    Insecure,
}

/// `curl` with the admin client certificate; true on a 2xx answer.
fn curl_ok(pki: &Pki, url: &str, at: ProbeAt, tls: Tls) -> bool {
    let mut cmd = if at == ProbeAt::Netns {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &net().netns, "curl"]);
        c
    } else {
        Command::new("curl")
    };
    cmd.args(["-sf", "-o", "/dev/null", "--max-time", "2"]);
    if url.starts_with("https") {
        if tls == Tls::VerifyCa {
            cmd.arg("--cacert").arg(pki.file("ca.crt"));
        } else {
            cmd.arg("-k");
        }
        cmd.arg("--cert")
            .arg(pki.file("admin.crt"))
            .arg("--key")
            .arg(pki.file("admin.key"));
    }
    crate::process::succeeds(cmd.arg(url))
}

fn write_kubeconfig(layout: &Layout, pki: &Pki) -> anyhow::Result<()> {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT}
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {CONTEXT}-admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: {CONTEXT}
  context:
    cluster: {CONTEXT}
    user: {CONTEXT}-admin
current-context: {CONTEXT}
",
        server = api_url(""),
        ca = pki.arg("ca.crt"),
        cert = pki.arg("admin.crt"),
        key = pki.arg("admin.key"),
    );
    let path = layout.kubeconfig();
    std::fs::write(&path, text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

fn kubectl(layout: &Layout, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    crate::process::exec(
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(layout.kubeconfig())
            .args(["--context", CONTEXT, KUBECTL_REQUEST_TIMEOUT])
            .args(args),
        crate::process::Options {
            input: stdin,
            missing: Some("kubectl must be on PATH"),
            ..crate::process::Options::default()
        },
    )
}

fn nodes_manifest() -> String {
    NODES
        .iter()
        .map(|name| {
            format!(
                "apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    node.alpha.kubernetes.io/ttl: \"0\"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: \"\"
    type: kwok
status:
  allocatable: {{cpu: \"32\", memory: 256Gi, pods: \"110\"}}
  capacity: {{cpu: \"32\", memory: 256Gi, pods: \"110\"}}
  nodeInfo: {{architecture: amd64, kubeProxyVersion: fake, kubeletVersion: fake, operatingSystem: linux}}
  phase: Running
"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn etcd_args(layout: &Layout) -> Vec<String> {
    let data = layout.state.join("etcd");
    let mut args = strings(&[
        "--name",
        "harness",
        "--listen-client-urls",
        "http://127.0.0.1:2379",
        "--advertise-client-urls",
        "http://127.0.0.1:2379",
        "--listen-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:2380",
        "--initial-cluster",
        "harness=http://127.0.0.1:2380",
        "--data-dir",
    ]);
    args.push(data.to_string_lossy().into_owned());
    args
}

fn apiserver_args(pki: &Pki) -> Vec<String> {
    let mut args = strings(&[
        "--etcd-servers=http://127.0.0.1:2379",
        "--bind-address=0.0.0.0",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        "--profiling=false",
        // Aggregation layer: the API server proxies to the adapter's Service endpoints (not its
        // cluster IP, which nothing routes here) and presents the front-proxy client certificate.
        "--enable-aggregator-routing=true",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    ]);
    args.extend([
        format!("--advertise-address={}", net().ns_ip),
        format!("--secure-port={API_PORT}"),
        format!("--service-cluster-ip-range={}", net().service_cidr),
        format!("--tls-cert-file={}", pki.arg("apiserver.crt")),
        format!("--tls-private-key-file={}", pki.arg("apiserver.key")),
        format!("--client-ca-file={}", pki.arg("ca.crt")),
        format!(
            "--requestheader-client-ca-file={}",
            pki.arg("front-proxy-ca.crt")
        ),
        format!(
            "--proxy-client-cert-file={}",
            pki.arg("front-proxy-client.crt")
        ),
        format!(
            "--proxy-client-key-file={}",
            pki.arg("front-proxy-client.key")
        ),
        format!("--service-account-key-file={}", pki.arg("sa.pub")),
        format!("--service-account-signing-key-file={}", pki.arg("sa.key")),
    ]);
    args
}

fn kubeconfig_flags(layout: &Layout) -> Vec<String> {
    let kubeconfig = layout.kubeconfig().to_string_lossy().into_owned();
    vec![
        format!("--kubeconfig={kubeconfig}"),
        format!("--authentication-kubeconfig={kubeconfig}"),
        format!("--authorization-kubeconfig={kubeconfig}"),
    ]
}

fn controller_manager_args(layout: &Layout, pki: &Pki, hpa: &HpaSettings) -> Vec<String> {
    let mut args = kubeconfig_flags(layout);
    args.extend(strings(&[
        "--bind-address=127.0.0.1",
        "--secure-port=10257",
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        "--controllers=*",
    ]));
    args.extend([
        format!("--cert-dir={}", layout.state.join("kcm").display()),
        format!("--service-account-private-key-file={}", pki.arg("sa.key")),
        format!("--root-ca-file={}", pki.arg("ca.crt")),
        format!("--cluster-signing-cert-file={}", pki.arg("ca.crt")),
        format!("--cluster-signing-key-file={}", pki.arg("ca.key")),
        format!(
            "--horizontal-pod-autoscaler-sync-period={}",
            hpa.sync_period
        ),
        format!(
            "--horizontal-pod-autoscaler-downscale-stabilization={}",
            hpa.downscale_stabilization
        ),
        format!("--horizontal-pod-autoscaler-tolerance={}", hpa.tolerance),
    ]);
    args
}

fn scheduler_args(layout: &Layout) -> Vec<String> {
    let mut args = kubeconfig_flags(layout);
    args.extend(strings(&[
        "--bind-address=127.0.0.1",
        "--secure-port=10259",
        "--leader-elect=false",
    ]));
    args.push(format!(
        "--cert-dir={}",
        layout.state.join("scheduler").display()
    ));
    args
}

fn kwok_args(layout: &Layout, programs: &Programs) -> Vec<String> {
    let mut args: Vec<String> = programs
        .kwok_stages
        .iter()
        .map(|stage| format!("--config={}", stage.display()))
        .collect();
    args.extend([
        format!("--kubeconfig={}", layout.kubeconfig().display()),
        "--manage-all-nodes=false".into(),
        "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
        "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom".into(),
        format!("--cidr={}", net().kwok_cidr),
        format!("--node-ip={}", net().ns_ip),
        "--server-address=127.0.0.1:10247".into(),
        // Leases are the node heartbeat the node lifecycle controller reads; without them the
        // fake nodes flap NotReady and get tainted.
        "--node-lease-duration-seconds=40".into(),
    ]);
    args
}

/// `controlplane supervise`: (re)starts the pod supervisor as a harness component inside the
/// namespace, so `down` stops it and its servers with everything else.
pub fn supervise(
    layout: &Layout,
    args: &[String],
    spec: &super::supervisor::Spec,
) -> anyhow::Result<()> {
    if !health(layout).1 {
        anyhow::bail!("the control plane is not up: run `cargo xtask controlplane up` first");
    }
    if let Some(old) = recorded(layout, "supervisor").filter(|r| r.running()) {
        process::stop_all(&[(old.pid, true)], Duration::from_secs(35));
    }
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find the xtask program: {e}"))?;
    let mut run_args = vec!["controlplane".to_string(), "supervise-run".to_string()];
    run_args.extend(args.iter().cloned());
    let started = process::start(
        &layout.logs(),
        &layout.pids(),
        "supervisor",
        &exe,
        &run_args,
    )?;
    // It lists pods at once; a crash on bad options shows within a second.
    std::thread::sleep(Duration::from_millis(1000));
    if !crate::process::alive(started.pid) {
        anyhow::bail!(
            "the supervisor exited at once\ncommand: {}\n{}",
            started.command,
            crate::process::tail_of_file(&started.log, 20)
        );
    }
    eprintln!(
        "controlplane: supervising pods `{}` in namespace {} with {}",
        spec.selector,
        spec.namespace,
        spec.server.display()
    );
    Ok(())
}

fn prometheus_ready_url() -> String {
    format!("{}/-/ready", metrics::prometheus_url())
}

fn adapter_health_url() -> String {
    format!("https://127.0.0.1:{ADAPTER_PORT}/healthz")
}

/// The component of `name` from the pid files, if any is recorded.
fn recorded(layout: &Layout, name: &str) -> Option<process::Recorded> {
    process::recorded(&layout.pids())
        .into_iter()
        .find(|r| r.name == name)
}

/// One line per component and whether the whole control plane is up and healthy.
fn health(layout: &Layout) -> (Vec<String>, bool) {
    let pki = Pki::at(&layout.pki());
    let mut lines = Vec::new();
    let mut all = netns::exists();
    lines.push(format!(
        "netns {:<24} {}",
        net().netns,
        if netns::exists() { "present" } else { "absent" }
    ));
    for name in COMPONENTS {
        let (state, ok) = match recorded(layout, name) {
            Some(r) if r.running() => {
                let healthy = match name {
                    "etcd" => curl_ok(
                        &pki,
                        "http://127.0.0.1:2379/health",
                        ProbeAt::Netns,
                        Tls::Insecure,
                    ),
                    "kube-apiserver" => {
                        curl_ok(&pki, &api_url("/readyz"), ProbeAt::Host, Tls::VerifyCa)
                    }
                    "kube-controller-manager" => curl_ok(
                        &pki,
                        "https://127.0.0.1:10257/healthz",
                        ProbeAt::Netns,
                        Tls::Insecure,
                    ),
                    "kube-scheduler" => curl_ok(
                        &pki,
                        "https://127.0.0.1:10259/healthz",
                        ProbeAt::Netns,
                        Tls::Insecure,
                    ),
                    "kwok" => curl_ok(
                        &pki,
                        "http://127.0.0.1:10247/healthz",
                        ProbeAt::Netns,
                        Tls::Insecure,
                    ),
                    "prometheus" => {
                        curl_ok(&pki, &prometheus_ready_url(), ProbeAt::Host, Tls::Insecure)
                    }
                    _ => curl_ok(&pki, &adapter_health_url(), ProbeAt::Netns, Tls::Insecure),
                };
                let word = if healthy { "healthy" } else { "unhealthy" };
                (format!("pid {} {word}", r.pid), healthy)
            }
            Some(r) => (format!("pid {} not running", r.pid), false),
            None => ("not started".to_string(), false),
        };
        all &= ok;
        lines.push(format!("{name:<30} {state}"));
    }
    // Optional components (the pod supervisor) are reported, not required.
    for extra in process::recorded(&layout.pids())
        .into_iter()
        .filter(|r| !COMPONENTS.contains(&r.name.as_str()))
    {
        let state = if extra.running() {
            "running"
        } else {
            "not running"
        };
        lines.push(format!("{:<30} pid {} {state}", extra.name, extra.pid));
    }
    lines.push(format!(
        "kubeconfig {} (context {CONTEXT})",
        layout.kubeconfig().display()
    ));
    (lines, all)
}

/// `controlplane status`: prints each component; an error unless everything is up.
pub fn status(layout: &Layout) -> anyhow::Result<()> {
    let (lines, all) = health(layout);
    for line in lines {
        println!("{line}");
    }
    if all {
        Ok(())
    } else {
        anyhow::bail!("the control plane is not (fully) up: run `cargo xtask controlplane up`")
    }
}

/// `controlplane down`: stops every recorded process and everything else left in the namespace,
/// removes the namespace and the state folder. Safe to run at any time, repeatedly.
pub fn down(layout: &Layout) -> anyhow::Result<()> {
    stop_everything(layout);
    netns::remove()?;
    if layout.state.exists() {
        std::fs::remove_dir_all(&layout.state)
            .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", layout.state.display()))?;
    }
    eprintln!("controlplane: down");
    Ok(())
}

fn stop_everything(layout: &Layout) {
    let mut running: Vec<process::Recorded> = process::recorded(&layout.pids())
        .into_iter()
        .filter(|r| r.running())
        .collect();
    // Reverse start order, one at a time: the API server shuts down in a second while etcd is
    // still there, and hangs until killed when etcd goes first.
    let rank = |name: &str| {
        COMPONENTS
            .iter()
            .position(|c| *c == name)
            .unwrap_or(COMPONENTS.len())
    };
    running.sort_by_key(|r| std::cmp::Reverse(rank(&r.name)));
    for r in &running {
        process::stop_all(&[(r.pid, true)], Duration::from_secs(15));
    }
    // Anything else still in the namespace was started by the harness too (or by a test in it).
    let stray: Vec<(u32, bool)> = netns::pids().into_iter().map(|p| (p, false)).collect();
    if !stray.is_empty() {
        eprintln!(
            "controlplane: stopping {} more process(es) in netns {}",
            stray.len(),
            net().netns
        );
        process::stop_all(&stray, Duration::from_secs(5));
    }
    if let Ok(entries) = std::fs::read_dir(layout.pids()) {
        for entry in entries.filter_map(Result::ok) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `controlplane up`: a no-op when everything is healthy; otherwise removes any partial state and
/// starts from scratch. On failure it stops what it started and keeps the logs.
pub fn up(layout: &Layout, options: &UpOptions) -> anyhow::Result<()> {
    // Other options (HPA windows, adapter rules) need a restart, not a no-op.
    let wanted = format!("{options:?}");
    let options_file = layout.state.join("up-options");
    let same_options = std::fs::read_to_string(&options_file).is_ok_and(|had| had == wanted);
    if same_options && health(layout).1 {
        eprintln!("controlplane: already up");
        return Ok(());
    }
    // Build before touching the system, so a build failure leaves nothing behind.
    let programs = build::ensure_programs()?;
    down(layout)?;
    std::fs::create_dir_all(&layout.state)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", layout.state.display()))?;
    match start(layout, &programs, options) {
        Ok(()) => std::fs::write(&options_file, wanted)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", options_file.display())),
        Err(e) => {
            stop_everything(layout);
            let _ = netns::remove();
            Err(e.context(format!(
                "controlplane up failed; logs are in {}",
                layout.logs().display()
            )))
        }
    }
}

/// The path of a URL (`/healthz`): what a health wait names.
fn path_of(url: &str) -> &str {
    let host = url.find("://").map_or(0, |i| i + 3);
    url[host..].find('/').map_or(url, |i| &url[host + i..])
}

fn start(layout: &Layout, programs: &Programs, options: &UpOptions) -> anyhow::Result<()> {
    let hpa = &options.hpa;
    netns::create()?;
    let pki = certs::generate(&layout.pki())?;
    write_kubeconfig(layout, &pki)?;
    let (logs, pids) = (layout.logs(), layout.pids());
    let launch = |name: &str, program: &Path, args: Vec<String>| -> anyhow::Result<Started> {
        process::start(&logs, &pids, name, program, &args)
    };
    // A component is up when its health endpoint answers 2xx (the wait names the endpoint).
    let healthy = |started: &Started, seconds: u64, url: &str, at: ProbeAt, tls: Tls| {
        process::wait_ready(started, path_of(url), Duration::from_secs(seconds), || {
            curl_ok(&pki, url, at, tls)
        })
    };
    // Or when kubectl's jsonpath answer satisfies `ok`.
    let kubectl_says = |started: &Started, what: &str, args: &[&str], ok: &dyn Fn(&str) -> bool| {
        process::wait_ready(started, what, Duration::from_secs(60), || {
            kubectl(layout, args, None).is_ok_and(|out| ok(out.trim()))
        })
    };

    let etcd = launch("etcd", &programs.etcd, etcd_args(layout))?;
    healthy(
        &etcd,
        30,
        "http://127.0.0.1:2379/health",
        ProbeAt::Netns,
        Tls::Insecure,
    )?;

    let api = launch("kube-apiserver", &programs.apiserver, apiserver_args(&pki))?;
    healthy(&api, 120, &api_url("/readyz"), ProbeAt::Host, Tls::VerifyCa)?;

    let kcm = launch(
        "kube-controller-manager",
        &programs.controller_manager,
        controller_manager_args(layout, &pki, hpa),
    )?;
    let scheduler = launch(
        "kube-scheduler",
        &programs.scheduler,
        scheduler_args(layout),
    )?;
    let kwok = launch("kwok", &programs.kwok, kwok_args(layout, programs))?;

    kubectl(layout, &["apply", "-f", "-"], Some(&nodes_manifest()))?;
    healthy(
        &kcm,
        60,
        "https://127.0.0.1:10257/healthz",
        ProbeAt::Netns,
        Tls::Insecure,
    )?;
    healthy(
        &scheduler,
        60,
        "https://127.0.0.1:10259/healthz",
        ProbeAt::Netns,
        Tls::Insecure,
    )?;
    kubectl_says(
        &kwok,
        "both nodes Ready",
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}",
        ],
        &|out| out.split_whitespace().filter(|s| *s == "True").count() == NODES.len(),
    )?;
    // Pods are refused until the service-account controller has made `default`.
    kubectl_says(
        &kcm,
        "the default ServiceAccount",
        &["get", "serviceaccount", "default", "-n", "default"],
        &|_| true,
    )?;

    let prometheus_config = metrics::write_prometheus_config(layout)?;
    let prometheus = launch(
        "prometheus",
        &programs.prometheus,
        metrics::prometheus_args(layout, &prometheus_config),
    )?;
    healthy(
        &prometheus,
        60,
        &prometheus_ready_url(),
        ProbeAt::Host,
        Tls::Insecure,
    )?;
    let adapter_config = metrics::adapter_config(layout, options.adapter_config.as_deref())?;
    let adapter = launch(
        "prometheus-adapter",
        &programs.adapter,
        metrics::adapter_args(layout, &adapter_config),
    )?;
    healthy(
        &adapter,
        60,
        &adapter_health_url(),
        ProbeAt::Netns,
        Tls::Insecure,
    )?;
    kubectl(
        layout,
        &["apply", "-f", "-"],
        Some(&metrics::adapter_manifest()),
    )?;
    kubectl_says(
        &prometheus,
        "its placeholder pod Running (for the service proxy)",
        &[
            "get",
            "pod",
            metrics::PROMETHEUS_POD,
            "-n",
            metrics::PROMETHEUS_SERVICE.0,
            "-o",
            "jsonpath={.status.podIP}",
        ],
        &|ip| ip == net().ns_ip,
    )?;
    kubectl_says(
        &adapter,
        "APIService v1beta1.external.metrics.k8s.io Available",
        &[
            "get",
            "apiservice",
            "v1beta1.external.metrics.k8s.io",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Available\")].status}",
        ],
        &|out| out == "True",
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_waits_name_the_endpoint() {
        assert_eq!(path_of("https://127.0.0.1:10257/healthz"), "/healthz");
        assert_eq!(path_of("http://10.203.0.2:9090/-/ready"), "/-/ready");
        assert_eq!(path_of("no-path"), "no-path");
    }

    #[test]
    fn the_api_server_is_configured_for_the_aggregation_layer() {
        let args = apiserver_args(&Pki::at(Path::new("/pki")));
        for expected in [
            "--enable-aggregator-routing=true",
            "--requestheader-client-ca-file=/pki/front-proxy-ca.crt",
            "--proxy-client-cert-file=/pki/front-proxy-client.crt",
            "--requestheader-allowed-names=front-proxy-client",
            "--advertise-address=10.203.0.2", // the default KSCALE_HARNESS_NET
        ] {
            assert!(args.iter().any(|a| a == expected), "missing {expected}");
        }
    }

    #[test]
    fn the_controller_manager_gets_the_hpa_settings() {
        let layout = Layout {
            state: "/state".into(),
            cache: "/cache".into(),
        };
        let hpa = HpaSettings {
            sync_period: "2s".into(),
            downscale_stabilization: "45s".into(),
            tolerance: "0.2".into(),
        };
        let args = controller_manager_args(&layout, &Pki::at(Path::new("/pki")), &hpa);
        for expected in [
            "--horizontal-pod-autoscaler-sync-period=2s",
            "--horizontal-pod-autoscaler-downscale-stabilization=45s",
            "--horizontal-pod-autoscaler-tolerance=0.2",
            "--kubeconfig=/state/kubeconfig",
        ] {
            assert!(args.iter().any(|a| a == expected), "missing {expected}");
        }
    }

    #[test]
    fn every_fake_node_carries_the_annotation_kwok_manages() {
        let manifest = nodes_manifest();
        assert_eq!(
            manifest.matches("kwok.x-k8s.io/node: fake").count(),
            NODES.len()
        );
        for node in NODES {
            assert!(manifest.contains(&format!("name: {node}")));
        }
    }
}
