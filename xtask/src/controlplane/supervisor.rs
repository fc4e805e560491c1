//! The pod supervisor: gives each Running pod of the app (kwok's fake pods) a real server process,
//! and keeps Prometheus' file-based target list in step, labelled `namespace` and `pod` as pod
//! discovery would label them. A pod that goes (scale-down, rollout) gets SIGTERM, like a kubelet.
//!
//! It runs inside the network namespace as a harness component, so its servers listen on the
//! namespace address, Prometheus scrapes them there, and `down` stops them with everything else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::process::{self, Group};

/// What to supervise, from `controlplane supervise` options.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Namespace of the app pods.
    pub namespace: String,
    /// Label selector of the app pods.
    pub selector: String,
    /// The server program each pod gets (`--bind <ns address> --port <port>` are appended).
    pub server: PathBuf,
    /// Its arguments before those (the exposition double's subcommand and server).
    pub server_args: Vec<String>,
    /// First port handed out; each new pod gets the next one.
    pub first_port: u16,
    /// The supervisor exits after this long (every loop here is bounded).
    pub max_runtime: Duration,
}

/// A pod as far as the supervisor cares.
#[derive(Debug, Clone, PartialEq)]
pub struct PodView {
    /// Pod name.
    pub name: String,
    /// Plain `value` env vars of the first container (the server reads its settings from env).
    pub env: Vec<(String, String)>,
    /// The pod IP kwok gave it, if any: the server listens there, as the pod proxy expects.
    pub ip: Option<String>,
    /// The first container's port named `metrics` (Triton's), else its first `containerPort`:
    /// where the process listens on the pod IP and Prometheus scrapes it.
    pub port: Option<u16>,
}

/// The pods that should have a server: phase Running and not being deleted.
pub fn running_pods(list: &serde_json::Value) -> Vec<PodView> {
    let Some(items) = list.get("items").and_then(|i| i.as_array()) else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|pod| pod["status"]["phase"] == "Running")
        .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|pod| {
            let name = pod["metadata"]["name"].as_str()?.to_string();
            let env = pod["spec"]["containers"][0]["env"]
                .as_array()
                .map(|vars| {
                    vars.iter()
                        .filter_map(|var| {
                            Some((
                                var["name"].as_str()?.to_string(),
                                var["value"].as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ip = pod["status"]["podIP"].as_str().map(str::to_string);
            let ports = pod["spec"]["containers"][0]["ports"].as_array();
            let port = ports
                .and_then(|p| p.iter().find(|p| p["name"] == "metrics").or(p.first()))
                .and_then(|p| p["containerPort"].as_u64())
                .and_then(|p| u16::try_from(p).ok());
            Some(PodView {
                name,
                env,
                ip,
                port,
            })
        })
        .collect()
}

/// The file-based target list entry of one pod's server.
pub fn target_json(namespace: &str, pod: &str, address: &str, port: u16) -> String {
    serde_json::json!([{
        "targets": [format!("{address}:{port}")],
        "labels": {"namespace": namespace, "pod": pod},
    }])
    .to_string()
}

struct Server {
    child: Child,
    address: String,
    port: u16,
}

struct Supervisor<'a> {
    spec: &'a Spec,
    kubeconfig: PathBuf,
    targets: PathBuf,
    logs: PathBuf,
    servers: BTreeMap<String, Server>,
    /// Servers sent SIGTERM, with the time they were, reaped (or killed after 30 s) later.
    stopping: Vec<(Child, Instant)>,
    next_port: u16,
    /// Whether pod IPs go on the namespace loopback (off in unit tests, which run outside it).
    pod_ips: bool,
}

impl Supervisor<'_> {
    fn target_file(&self, pod: &str) -> PathBuf {
        self.targets
            .join(format!("{}_{pod}.json", self.spec.namespace))
    }

    fn list(&self) -> anyhow::Result<Vec<PodView>> {
        let out = process::output(
            Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .arg(super::cluster::KUBECTL_REQUEST_TIMEOUT)
                .args(["get", "pods", "-n", &self.spec.namespace, "-l"])
                .arg(&self.spec.selector)
                .args(["-o", "json"]),
        )?;
        let list: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| anyhow::anyhow!("kubectl get pods -o json gave no JSON: {e}"))?;
        Ok(running_pods(&list))
    }

    fn start(&mut self, pod: &PodView) -> anyhow::Result<()> {
        // A pod with an IP gets its server on <pod IP>:<containerPort>, like a real pod; one
        // without (never seen with kwok) falls back to a port of its own on the namespace address.
        let (address, port) = match (&pod.ip, pod.port, self.pod_ips) {
            (Some(ip), Some(port), true) => {
                super::netns::add_pod_ip(ip)?;
                (ip.clone(), port)
            }
            _ => {
                let port = self.next_port;
                self.next_port = self.next_port.checked_add(1).ok_or_else(|| {
                    anyhow::anyhow!("ran out of ports above {}", self.spec.first_port)
                })?;
                (super::netns::net().ns_ip.clone(), port)
            }
        };
        let log = self.logs.join(format!("{}.log", pod.name));
        let child = process::spawn_logged(
            // As in a pod, the server sees its spec's environment and, like a container's
            // image, PATH and HOME; nothing else of the machine's.
            Command::new(&self.spec.server)
                .env_clear()
                .envs(
                    ["PATH", "HOME"]
                        .iter()
                        .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
                )
                .envs(pod.env.iter().map(|(k, v)| (k, v)))
                .args(&self.spec.server_args)
                .args(["--bind", &address, "--port", &port.to_string()]),
            &log,
            Group::Shared,
            None,
        )?;
        let file = self.target_file(&pod.name);
        std::fs::write(
            &file,
            target_json(&self.spec.namespace, &pod.name, &address, port),
        )
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))?;
        eprintln!(
            "supervisor: pod {} -> server pid {} on {address}:{port}",
            pod.name,
            child.id()
        );
        self.servers.insert(
            pod.name.clone(),
            Server {
                child,
                address,
                port,
            },
        );
        Ok(())
    }

    fn stop(&mut self, pod: &str) {
        let _ = std::fs::remove_file(self.target_file(pod));
        if let Some(server) = self.servers.remove(pod) {
            eprintln!(
                "supervisor: pod {pod} gone -> SIGTERM server pid {} ({}:{})",
                server.child.id(),
                server.address,
                server.port
            );
            let _ = process::signal(server.child.id(), "-TERM", false);
            if self.pod_ips && server.address != super::netns::net().ns_ip {
                super::netns::remove_pod_ip(&server.address);
            }
            self.stopping.push((server.child, Instant::now()));
        }
    }

    fn reap(&mut self) {
        self.stopping.retain_mut(|(child, since)| {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return false;
            }
            if since.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            true
        });
        let exited: Vec<String> = self
            .servers
            .iter_mut()
            .filter_map(|(pod, server)| match server.child.try_wait() {
                Ok(Some(status)) => {
                    eprintln!("supervisor: server of pod {pod} exited on its own with {status}");
                    Some(pod.clone())
                }
                _ => None,
            })
            .collect();
        for pod in exited {
            let _ = std::fs::remove_file(self.target_file(&pod));
            self.servers.remove(&pod);
        }
    }

    fn sync(&mut self, pods: &[PodView]) -> anyhow::Result<()> {
        let gone: Vec<String> = self
            .servers
            .keys()
            .filter(|name| !pods.iter().any(|p| &p.name == *name))
            .cloned()
            .collect();
        for pod in gone {
            self.stop(&pod);
        }
        for pod in pods {
            if !self.servers.contains_key(&pod.name) {
                self.start(pod)?;
            }
        }
        Ok(())
    }
}

/// Runs the supervisor loop (inside the namespace) until `max_runtime` passes.
pub fn run(spec: &Spec, kubeconfig: &Path, targets: &Path, logs: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(logs)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", logs.display()))?;
    let mut supervisor = Supervisor {
        spec,
        kubeconfig: kubeconfig.to_path_buf(),
        targets: targets.to_path_buf(),
        logs: logs.to_path_buf(),
        servers: BTreeMap::new(),
        stopping: Vec::new(),
        next_port: spec.first_port,
        pod_ips: true,
    };
    let deadline = Instant::now() + spec.max_runtime;
    while Instant::now() < deadline {
        match supervisor.list() {
            Ok(pods) => supervisor.sync(&pods)?,
            // The API server may be briefly unavailable; the next round retries.
            Err(e) => eprintln!("supervisor: {e:#}"),
        }
        supervisor.reap();
        std::thread::sleep(Duration::from_millis(500));
    }
    let names: Vec<String> = supervisor.servers.keys().cloned().collect();
    for pod in names {
        supervisor.stop(&pod);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_running_pods_not_being_deleted_get_a_server_with_their_env() {
        let list = serde_json::json!({"items": [
            {"metadata": {"name": "a"}, "status": {"phase": "Running", "podIP": "10.203.64.7"},
             "spec": {"containers": [{"ports": [{"containerPort": 3000}], "env": [
                 {"name": "WORKERS", "value": "2"},
                 {"name": "FROM_REF", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
             ]}]}},
            {"metadata": {"name": "t"}, "status": {"phase": "Running", "podIP": "10.203.64.8"},
             "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8000},
                                                {"name": "metrics", "containerPort": 8002}]}]}},
            {"metadata": {"name": "b"}, "status": {"phase": "Pending"},
             "spec": {"containers": [{}]}},
            {"metadata": {"name": "c", "deletionTimestamp": "2026-01-01T00:00:00Z"},
             "status": {"phase": "Running"}, "spec": {"containers": [{}]}},
        ]});
        let pods = running_pods(&list);
        assert_eq!(pods.len(), 2, "{pods:?}");
        assert_eq!(
            pods[..1],
            [PodView {
                name: "a".into(),
                env: vec![("WORKERS".into(), "2".into())],
                ip: Some("10.203.64.7".into()),
                port: Some(3000),
            }]
        );
        assert_eq!(
            pods[1].port,
            Some(8002),
            "a metrics port is where it is scraped"
        );
    }

    #[test]
    fn a_target_carries_the_pod_discovery_labels() {
        let v: serde_json::Value =
            serde_json::from_str(&target_json("ai", "web-1", "10.203.64.7", 3000)).unwrap();
        assert_eq!(v[0]["targets"][0], "10.203.64.7:3000");
        assert_eq!(v[0]["labels"]["namespace"], "ai");
        assert_eq!(v[0]["labels"]["pod"], "web-1");
    }

    #[test]
    fn sync_starts_a_server_per_pod_and_sigterms_it_when_the_pod_goes() {
        let dir = tempfile::tempdir().unwrap();
        // A stand-in server that runs until signalled: the lifecycle is what is under test.
        let script = dir.path().join("server.sh");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 60\n").unwrap();
        crate::files::chmod_x(&script).unwrap();
        let spec = Spec {
            namespace: "ai".into(),
            selector: "app=x".into(),
            server: script,
            server_args: Vec::new(),
            first_port: 21000,
            max_runtime: Duration::from_secs(1),
        };
        let mut s = Supervisor {
            spec: &spec,
            kubeconfig: dir.path().join("kubeconfig"),
            targets: dir.path().to_path_buf(),
            logs: dir.path().to_path_buf(),
            servers: BTreeMap::new(),
            stopping: Vec::new(),
            next_port: spec.first_port,
            pod_ips: false,
        };
        let pod = |name: &str| PodView {
            name: name.into(),
            env: vec![],
            ip: Some("10.203.64.9".into()),
            port: Some(3000),
        };
        s.sync(&[pod("a"), pod("b")]).unwrap();
        assert_eq!(s.servers.len(), 2);
        assert!(dir.path().join("ai_a.json").is_file());
        let pid_a = s.servers["a"].child.id();
        s.sync(&[pod("b")]).unwrap();
        assert!(!dir.path().join("ai_a.json").exists());
        assert_eq!(s.stopping.len(), 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.stopping.is_empty() && Instant::now() < deadline {
            s.reap();
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(s.stopping.is_empty(), "server of pod a ignored SIGTERM");
        assert!(!crate::process::alive(pid_a));
        s.sync(&[]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !s.stopping.is_empty() && Instant::now() < deadline {
            s.reap();
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(s.stopping.is_empty() && s.servers.is_empty());
    }
}
