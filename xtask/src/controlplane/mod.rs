//! `cargo xtask controlplane up|down|status|build|supervise`: a real Kubernetes control plane for
//! tests.
//!
//! etcd, kube-apiserver (with the aggregation layer), kube-controller-manager (HPA with short
//! windows), kube-scheduler, kwok (fake nodes and pods), Prometheus (file-based targets) and
//! prometheus-adapter (behind `v1beta1.external.metrics.k8s.io`) run as plain processes inside a
//! network namespace of their own, reachable from the host at `<net>.0.2` (`10.203.0.2` unless
//! `KSCALE_HARNESS_NET` says otherwise; see `netns`). The upstream programs
//! are built from the pinned Go modules in `xtask/controlplane/` into a cache folder that survives
//! between runs. Everything the harness starts is recorded in pid files, so `down` can remove it
//! all even after a failed `up`. `supervise` adds the pod supervisor: a real server process per
//! Running pod of the app.

mod build;
mod certs;
mod cluster;
mod exposition_double;
mod metrics;
mod netns;
mod process;
mod supervisor;

use std::path::PathBuf;
use std::time::Instant;

use crate::upstream::helm;

/// Name of the kube context (and cluster) written to the harness kubeconfig.
pub const CONTEXT: &str = "kscale-harness";

const USAGE: &str = "\
usage: cargo xtask controlplane <command> [options]

commands:
  up       build what is missing, then start the control plane (no-op when it is already up)
  down     stop every process the harness started and remove the network namespace and state
  status   show each component; exits non-zero unless everything is up
  build    only build the Go programs into the cache folder
  supervise --namespace <NS> --selector <LABELS> (--server <PATH> | --exposition-double <SERVER>)
            [--first-port <PORT>] [--max-seconds <S>]
           (re)start the pod supervisor: each Running pod matching gets `<PATH> --bind <pod IP>
           --port <PORT>` with the pod's env, and a Prometheus target labelled namespace/pod;
           with --exposition-double (vllm, tgi, triton, llamacpp) each pod gets that server's
           exposition double instead (`exposition-double`)
  exposition-double <SERVER> --bind <ADDRESS> --port <PORT>
           serve only SERVER's /metrics exposition, values from the environment
           (EXPOSITION_DOUBLE_WAITING, _RUNNING, _FINISHED, _SECONDS)
  env      print `export` lines: KUBECONFIG, the Prometheus URL, the scrape target folder, the
           folder of the pinned helm (`up` and `build` install it); `env --format json` prints
           the same settings as one JSON object

options of `up`:
  --hpa-sync-period <DURATION>              HPA controller sync period [default: 5s]
  --hpa-downscale-stabilization <DURATION>  HPA downscale stabilization window [default: 30s]
  --hpa-tolerance <FLOAT>                   HPA tolerance [default: 0.1]
  --adapter-config <FILE>                   prometheus-adapter rules (its own config format, e.g.
                                            `externalRules:` from kscale's rendered values)
                                            [default: one rule over the harness targets' `up`]

environment (set the first three to other values to run a second harness on the same machine;
`cargo test` passes them on, so a checkout's control-plane tests use its own harness):
  KSCALE_HARNESS_NETNS       network namespace name; the veth names derive from it [default: kscale-harness]
  KSCALE_HARNESS_NET         first two octets of the /16 of every harness address (host .0.1, namespace
                             .0.2, pods .64.0/20, services .128.0/20) [default: 10.203]
  KSCALE_HARNESS_DIR         state folder (certificates, logs, pid files, kubeconfig) [default: /tmp/<netns name>]
  KSCALE_CONTROLPLANE_CACHE  tools folder (the pinned helm) [default: $XDG_CACHE_HOME/kscale/controlplane]
  KSCALE_GO_CACHE            Go caches and programs, shared with the kit [default: $XDG_CACHE_HOME/kscale/go]
";

/// Where the harness keeps its state and its build cache.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Per-run state: certificates, logs, pid files, etcd data, kubeconfig. Removed by `down`.
    pub state: PathBuf,
    /// The pinned helm. Survives between runs (the Go programs live in the shared Go cache).
    pub cache: PathBuf,
}

impl Layout {
    /// The layout from the environment, with the documented defaults; also reads and checks
    /// the network settings ([`netns::init`]), since every command starts here.
    pub fn from_env() -> anyhow::Result<Self> {
        let net = netns::init()?;
        let state = match std::env::var_os("KSCALE_HARNESS_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => std::env::temp_dir().join(&net.netns),
        };
        let cache = crate::cache_dir("KSCALE_CONTROLPLANE_CACHE", "controlplane")?;
        Ok(Self { state, cache })
    }

    /// The kubeconfig with the [`CONTEXT`] context.
    pub fn kubeconfig(&self) -> PathBuf {
        self.state.join("kubeconfig")
    }
    fn pki(&self) -> PathBuf {
        self.state.join("pki")
    }
    fn logs(&self) -> PathBuf {
        self.state.join("logs")
    }
    fn pids(&self) -> PathBuf {
        self.state.join("pids")
    }
}

/// Settings of the HPA controller that tests shorten so a scale cycle takes minutes.
#[derive(Debug, Clone)]
pub struct HpaSettings {
    /// `--horizontal-pod-autoscaler-sync-period`.
    pub sync_period: String,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`.
    pub downscale_stabilization: String,
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub tolerance: String,
}

impl Default for HpaSettings {
    fn default() -> Self {
        Self {
            sync_period: "5s".into(),
            downscale_stabilization: "30s".into(),
            tolerance: "0.1".into(),
        }
    }
}

/// Options of `controlplane up`.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// HPA controller settings.
    pub hpa: HpaSettings,
    /// prometheus-adapter configuration file; the harness default when `None`.
    pub adapter_config: Option<PathBuf>,
}

fn parse_up_args(args: &[String]) -> anyhow::Result<UpOptions> {
    let mut hpa = HpaSettings::default();
    let mut adapter_config = String::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--hpa-sync-period" => &mut hpa.sync_period,
            "--hpa-downscale-stabilization" => &mut hpa.downscale_stabilization,
            "--hpa-tolerance" => &mut hpa.tolerance,
            "--adapter-config" => &mut adapter_config,
            other => anyhow::bail!("unknown option `{other}` for `controlplane up`\n\n{USAGE}"),
        };
        match it.next() {
            Some(value) => *slot = value.clone(),
            None => anyhow::bail!("option `{flag}` needs a value"),
        }
    }
    Ok(UpOptions {
        hpa,
        adapter_config: (!adapter_config.is_empty()).then(|| PathBuf::from(adapter_config)),
    })
}

/// `--flag value` pairs, in order; a flag without its value is an error naming it.
fn flag_values(args: &[String]) -> impl Iterator<Item = anyhow::Result<(&str, &String)>> {
    args.chunks(2).map(|pair| match pair {
        [flag, value] => Ok((flag.as_str(), value)),
        _ => Err(anyhow::anyhow!("option `{}` needs a value", pair[0])),
    })
}

fn parse_supervise_args(args: &[String]) -> anyhow::Result<supervisor::Spec> {
    let (mut namespace, mut selector, mut server) = (None, None, None);
    let mut server_args = Vec::new();
    let (mut first_port, mut max_seconds) = (20000u16, 4 * 3600u64);
    for pair in flag_values(args) {
        let (flag, value) = pair?;
        match flag {
            "--namespace" => namespace = Some(value.clone()),
            "--selector" => selector = Some(value.clone()),
            "--server" => server = Some(PathBuf::from(value)),
            "--exposition-double" => {
                // This very program, even if cargo has rebuilt the file since it started.
                server = Some(PathBuf::from("/proc/self/exe"));
                server_args = vec![
                    "controlplane".to_string(),
                    "exposition-double".to_string(),
                    value.clone(),
                ];
            }
            "--first-port" => {
                first_port = value
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--first-port {value}: {e}"))?
            }
            "--max-seconds" => {
                max_seconds = value
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--max-seconds {value}: {e}"))?
            }
            other => anyhow::bail!("unknown option `{other}` for `controlplane supervise`"),
        }
    }
    let missing = |what: &str| anyhow::anyhow!("`controlplane supervise` needs --{what}");
    let server = server.ok_or_else(|| missing("server or --exposition-double"))?;
    let server = if server_args.is_empty() {
        std::fs::canonicalize(&server)
            .map_err(|e| anyhow::anyhow!("server program {}: {e}", server.display()))?
    } else {
        server
    };
    Ok(supervisor::Spec {
        namespace: namespace.ok_or_else(|| missing("namespace"))?,
        selector: selector.ok_or_else(|| missing("selector"))?,
        server,
        server_args,
        first_port,
        max_runtime: std::time::Duration::from_secs(max_seconds),
    })
}

/// Builds (or finds cached) every program the control-plane tests start, helm included, so
/// `cargo xtask ci` fails before the tests when one cannot be built.
pub fn build_for_tests() -> anyhow::Result<()> {
    let layout = Layout::from_env()?;
    build::ensure_programs()?;
    helm::ensure(&layout.cache)?;
    Ok(())
}

/// Stops the harness whatever state a test run left it in.
pub fn down() -> anyhow::Result<()> {
    cluster::down(&Layout::from_env()?)
}

/// Entry point of `cargo xtask controlplane ...`.
pub fn controlplane(args: &[String]) -> anyhow::Result<()> {
    // A pod's process: it sees only its pod's environment, so it needs no layout.
    if args.first().map(String::as_str) == Some("exposition-double") {
        return exposition_double::run(&args[1..]);
    }
    let layout = Layout::from_env()?;
    match args.first().map(String::as_str) {
        Some("up") => {
            let options = parse_up_args(&args[1..])?;
            let started = Instant::now();
            helm::ensure(&layout.cache)?;
            cluster::up(&layout, &options)?;
            eprintln!(
                "controlplane: up in {:.1}s; use it with:\n  export KUBECONFIG={}\n  kubectl --context {CONTEXT} get nodes",
                started.elapsed().as_secs_f64(),
                layout.kubeconfig().display()
            );
            Ok(())
        }
        Some("down") => cluster::down(&layout),
        Some("status") => cluster::status(&layout),
        Some("build") => {
            let programs = build::ensure_programs()?;
            for path in programs.all() {
                println!("{}", path.display());
            }
            println!("{}", helm::ensure(&layout.cache)?.display());
            Ok(())
        }
        Some("supervise") => {
            let spec = parse_supervise_args(&args[1..])?;
            cluster::supervise(&layout, &args[1..], &spec)
        }
        // Internal: the supervisor process itself, started inside the namespace by `supervise`.
        Some("supervise-run") => {
            let spec = parse_supervise_args(&args[1..])?;
            supervisor::run(
                &spec,
                &layout.kubeconfig(),
                &metrics::targets_dir(&layout),
                &layout.logs().join("pods"),
            )
        }
        Some("env") => {
            let json = crate::kit::env_format_is_json(&args[1..])?;
            let vars = [
                ("KUBECONFIG", layout.kubeconfig().display().to_string()),
                ("KSCALE_HARNESS_PROMETHEUS", metrics::prometheus_url()),
                (
                    "KSCALE_HARNESS_TARGETS",
                    metrics::targets_dir(&layout).display().to_string(),
                ),
                (
                    "KSCALE_HARNESS_HELM_DIR",
                    helm::dir(&layout.cache).display().to_string(),
                ),
            ];
            let vars = vars.map(|(name, value)| (name.to_string(), value, false));
            crate::kit::print_env_vars(vars.into(), json);
            Ok(())
        }
        Some("help") | Some("--help") | Some("-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown controlplane command `{other}`\n\n{USAGE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_options_override_the_short_hpa_defaults() {
        let args: Vec<String> = ["--hpa-sync-period", "2s", "--hpa-tolerance", "0.05"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let options = parse_up_args(&args).unwrap();
        assert_eq!(options.hpa.sync_period, "2s");
        assert_eq!(options.hpa.tolerance, "0.05");
        assert_eq!(options.hpa.downscale_stabilization, "30s");
        assert!(options.adapter_config.is_none());
        let options =
            parse_up_args(&["--adapter-config".to_string(), "rules.yaml".to_string()]).unwrap();
        assert_eq!(options.adapter_config, Some(PathBuf::from("rules.yaml")));
    }

    #[test]
    fn supervise_runs_this_program_as_the_exposition_double() {
        let args: Vec<String> = [
            "--namespace",
            "default",
            "--selector",
            "app=inference",
            "--exposition-double",
            "vllm",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let spec = parse_supervise_args(&args).unwrap();
        assert_eq!(spec.server, PathBuf::from("/proc/self/exe"));
        assert_eq!(
            spec.server_args,
            ["controlplane", "exposition-double", "vllm"]
        );
        assert!(parse_supervise_args(&args[..4]).is_err(), "no program");
        assert!(exposition_double::run(&["ollama".to_string()]).is_err());
    }

    #[test]
    fn up_rejects_unknown_options_and_missing_values() {
        assert!(parse_up_args(&["--nope".to_string()]).is_err());
        assert!(parse_up_args(&["--hpa-sync-period".to_string()]).is_err());
    }
}
