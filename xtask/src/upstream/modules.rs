//! The pinned Go wrapper modules (`go.mod` + `go.sum` under `xtask/kit/*` and
//! `xtask/controlplane/*`) and the programs each builds: the kit's and the control plane's, in
//! one list, since the control plane runs the kit's Kubernetes, etcd and prometheus-adapter (one
//! build serves both).

use super::gobuild::{self, GoModule};

/// The Kubernetes release the kit's minikube runs: minikube v1.37.0's default, and the newest that
/// still runs on cgroup v1 without extra settings (1.35+ refuse it by default).
pub const KUBERNETES_VERSION: &str = "v1.34.0";
/// The Go release Kubernetes v1.34.0 was built with: kubeadm built with Go 1.26 fails its own
/// preflight (`HTTPProxyCIDR: parse "https://[10.96.0.1]:1234/": invalid IP-literal`).
const KUBERNETES_TOOLCHAIN: &str = "go1.24.6";

/// The Kubernetes libraries metrics-server v0.8.0 is built on (its `k8s.io/component-base`).
const METRICS_SERVER_KUBERNETES: &str = "v1.33.2";

fn prometheus_version_flag(version: &str) -> String {
    format!("-X github.com/prometheus/common/version.Version={version}")
}

/// The kit's pinned modules; versions in link flags are checked against go.mod by a test.
pub fn kit() -> Vec<GoModule> {
    vec![
        GoModule {
            name: "kubernetes",
            dir: "xtask/kit/kubernetes",
            programs: &[
                ("k8s.io/kubernetes/cmd/kubeadm", "kubeadm"),
                ("k8s.io/kubernetes/cmd/kubelet", "kubelet"),
                ("k8s.io/kubernetes/cmd/kubectl", "kubectl"),
                ("k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
                (
                    "k8s.io/kubernetes/cmd/kube-controller-manager",
                    "kube-controller-manager",
                ),
                ("k8s.io/kubernetes/cmd/kube-scheduler", "kube-scheduler"),
                ("k8s.io/kubernetes/cmd/kube-proxy", "kube-proxy"),
            ],
            toolchain: Some(KUBERNETES_TOOLCHAIN),
            ldflags: gobuild::kubernetes_version_ldflags(KUBERNETES_VERSION),
            env: &[],
            tags: &[],
            cgo: false,
        },
        GoModule {
            name: "minikube",
            dir: "xtask/kit/minikube",
            programs: &[("k8s.io/minikube/cmd/minikube", "minikube")],
            toolchain: None,
            ldflags: [
                "-X k8s.io/minikube/pkg/version.version=v1.37.0",
                "-X k8s.io/minikube/pkg/version.isoVersion=v1.37.0",
                "-X k8s.io/minikube/pkg/version.storageProvisionerVersion=v5",
            ]
            .join(" "),
            // The checksum database does not know k8s.io/minikube v1.37.0 (404); go.sum pins it.
            env: &[("GONOSUMDB", "k8s.io/minikube")],
            tags: &[],
            cgo: false,
        },
        GoModule::new(
            "etcd",
            "xtask/kit/etcd",
            &[
                ("go.etcd.io/etcd/server/v3", "etcd"),
                ("go.etcd.io/etcd/etcdctl/v3", "etcdctl"),
            ],
        ),
        GoModule::new(
            "coredns",
            "xtask/kit/coredns",
            &[("github.com/coredns/coredns", "coredns")],
        ),
        GoModule {
            name: "critools",
            dir: "xtask/kit/critools",
            programs: &[("sigs.k8s.io/cri-tools/cmd/crictl", "crictl")],
            toolchain: None,
            ldflags: "-X sigs.k8s.io/cri-tools/pkg/version.Version=v1.34.0".into(),
            env: &[],
            tags: &[],
            cgo: false,
        },
        GoModule {
            name: "flannel",
            dir: "xtask/kit/flannel",
            programs: &[("github.com/flannel-io/flannel", "flanneld")],
            toolchain: None,
            ldflags: "-X github.com/flannel-io/flannel/pkg/version.Version=v0.28.4".into(),
            env: &[],
            tags: &[],
            // The UDP backend's proxy is C, as upstream builds it.
            cgo: true,
        },
        GoModule::new(
            "cniplugins",
            "xtask/kit/cniplugins",
            &[(
                "github.com/containernetworking/plugins/plugins/meta/flannel",
                "flannel",
            )],
        ),
        GoModule {
            name: "metricsserver",
            dir: "xtask/kit/metricsserver",
            programs: &[(
                "sigs.k8s.io/metrics-server/cmd/metrics-server",
                "metrics-server",
            )],
            // Its release's Go (its Dockerfile's golang:1.24.4): built with Go 1.26 it answers
            // the API server's front-proxy requests with 401, so metrics.k8s.io is never served.
            toolchain: Some("go1.24.4"),
            // Its API server derives the API versions it serves from the Kubernetes library
            // version stamped in: unstamped (v0.0), metrics.k8s.io answers 404 although the
            // APIService is Available. v1.33.2 is the k8s.io/component-base it pins.
            ldflags: format!(
                "-X sigs.k8s.io/metrics-server/pkg/version.gitVersion=v0.8.0 {}",
                gobuild::kubernetes_version_ldflags(METRICS_SERVER_KUBERNETES)
            ),
            env: &[],
            tags: &[],
            cgo: false,
        },
        GoModule {
            name: "operator",
            dir: "xtask/kit/operator",
            programs: &[
                (
                    "github.com/prometheus-operator/prometheus-operator/cmd/operator",
                    "operator",
                ),
                (
                    "github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader",
                    "prometheus-config-reloader",
                ),
            ],
            toolchain: None,
            ldflags: prometheus_version_flag("0.93.1"),
            env: &[],
            tags: &[],
            cgo: false,
        },
        GoModule {
            name: "prometheus",
            dir: "xtask/kit/prometheus",
            programs: &[(
                "github.com/prometheus/prometheus/cmd/prometheus",
                "prometheus",
            )],
            toolchain: None,
            ldflags: prometheus_version_flag("3.14.0"),
            env: &[],
            // Upstream's switch for a slim build: only Kubernetes discovery (and the file and
            // static ones, always in), which is all the operator's configuration uses.
            tags: &["remove_all_sd", "enable_kubernetes_sd"],
            cgo: false,
        },
        GoModule {
            name: "kubestatemetrics",
            dir: "xtask/kit/kubestatemetrics",
            programs: &[("k8s.io/kube-state-metrics/v2", "kube-state-metrics")],
            toolchain: None,
            ldflags: prometheus_version_flag("v2.20.0"),
            env: &[],
            tags: &[],
            cgo: false,
        },
        GoModule::new(
            "adapter",
            "xtask/kit/adapter",
            &[("sigs.k8s.io/prometheus-adapter/cmd/adapter", "adapter")],
        ),
    ]
}

/// kwok (fake nodes and pods), which only the control plane runs.
pub fn kwok() -> GoModule {
    GoModule::new(
        "kwok",
        "xtask/controlplane/kwok",
        &[("sigs.k8s.io/kwok/cmd/kwok", "kwok")],
    )
}

/// One of the kit's modules by name.
pub fn kit_module(name: &str) -> anyhow::Result<GoModule> {
    kit()
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| anyhow::anyhow!("internal error: the kit has no module `{name}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_pins_its_programs_and_the_stamped_versions() {
        for module in kit() {
            let go_mod = crate::files::read(&module.root().join("go.mod")).unwrap();
            assert!(
                module.root().join("go.sum").is_file(),
                "{} lacks go.sum",
                module.dir
            );
            for (package, _) in module.programs {
                assert!(
                    go_mod.contains(package),
                    "{}/go.mod does not pin the tool {package}",
                    module.dir
                );
            }
        }
        let find = |name: &str| kit().into_iter().find(|m| m.name == name).unwrap();
        assert_eq!(
            find("kubernetes")
                .pinned_version("k8s.io/kubernetes")
                .unwrap(),
            KUBERNETES_VERSION
        );
        assert!(
            find("kubernetes")
                .ldflags
                .contains(&format!("gitVersion={KUBERNETES_VERSION}"))
        );
        let ms = find("metricsserver");
        let component_base = ms.pinned_version("k8s.io/component-base").unwrap();
        assert_eq!(
            component_base.replacen("v0.", "v1.", 1),
            METRICS_SERVER_KUBERNETES
        );
        let toolchain = crate::files::read(&find("kubernetes").root().join("go.mod")).unwrap();
        assert!(toolchain.contains(&format!("toolchain {KUBERNETES_TOOLCHAIN}")));
        for (name, module_path, stamped) in [
            ("minikube", "k8s.io/minikube", "version.version=v1.37.0"),
            (
                "flannel",
                "github.com/flannel-io/flannel",
                "Version=v0.28.4",
            ),
            ("critools", "sigs.k8s.io/cri-tools", "Version=v1.34.0"),
            (
                "operator",
                "github.com/prometheus-operator/prometheus-operator",
                "Version=0.93.1",
            ),
            (
                "prometheus",
                "github.com/prometheus/prometheus",
                "Version=3.14.0",
            ),
            (
                "kubestatemetrics",
                "k8s.io/kube-state-metrics/v2",
                "Version=v2.20.0",
            ),
        ] {
            let module = find(name);
            let pinned = module.pinned_version(module_path).unwrap();
            let stamped_version = stamped.rsplit('=').next().unwrap();
            assert!(
                module.ldflags.contains(stamped),
                "{name} is not stamped {stamped}"
            );
            let expect = match name {
                // Prometheus' Go module versions are v0.<major*100+minor>.<patch>.
                "prometheus" => "v0.314.0".to_string(),
                _ => format!("v{}", stamped_version.trim_start_matches('v')),
            };
            assert_eq!(pinned, expect, "{name}");
        }
    }
}
