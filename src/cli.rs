//! Command-line interface: every subcommand and global flag.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Bring up an inference service that autoscales on a real inference metric.
///
/// `kscale up` takes a machine with Docker, minikube, helm and kubectl to a 2-node cluster whose
/// HPA scales the inference server on its mean request duration, read from Prometheus through
/// prometheus-adapter. `kscale teardown` takes it back.
#[derive(Debug, Parser)]
#[command(name = "kscale", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML). Default: ./kscale.toml when it exists.
    #[arg(long, global = true, env = "KSCALE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Set one configuration key, over the file and the environment (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub sets: Vec<(String, String)>,
    /// Use this kube context (any cluster) instead of the minikube profile's.
    #[arg(long, global = true, env = "KSCALE_CONTEXT")]
    pub context: Option<String>,
    /// minikube profile (cluster name) [default: kscale].
    #[arg(long, global = true, env = "KSCALE_PROFILE")]
    pub profile: Option<String>,
    /// Directory of templates that replace the built-in ones by file name.
    #[arg(long, global = true, env = "KSCALE_TEMPLATES", value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Print the plan (every external command and every object) and execute nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Echo each external command as it runs.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Format of the results on stdout (progress always goes to stderr).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE (e.g. --set app.workers=2)"))
}

/// Format of results on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// One JSON document.
    Json,
}

/// Where the server image comes from.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ImageArgs {
    /// Deploy this prebuilt image instead of building one (no build).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Registry to push the built image to (needed for clusters other than minikube).
    #[arg(long, value_name = "HOST[/PATH]")]
    pub registry: Option<String>,
    /// Source tree holding server/Dockerfile [default: the kscale repository].
    #[arg(long, value_name = "DIR")]
    pub source: Option<PathBuf>,
}

/// `kscale up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// The image to deploy.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Deadline of the final end-to-end metric check (e.g. 5m).
    #[arg(long, value_name = "DURATION", value_parser = crate::load::parse_bounded_duration)]
    pub wait: Option<std::time::Duration>,
}

/// `kscale deploy`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// The image to deploy.
    #[command(flatten)]
    pub image: ImageArgs,
}

/// `kscale teardown`.
#[derive(Debug, Clone, clap::Args)]
pub struct TeardownArgs {
    /// Remove only what kscale installed; keep the cluster.
    #[arg(long)]
    pub keep_cluster: bool,
    /// Delete the cluster without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `kscale render`.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// Write one file per manifest here instead of printing a multi-document stream.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Image reference to render [default: the content tag of the server sources].
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring up the whole stack: cluster, metrics-server, Prometheus, adapter, app, HPA (idempotent).
    Up(UpArgs),
    /// Build (or take) the server image and apply the app, its scrape job and its HPA.
    Deploy(DeployArgs),
    /// Remove the HPA, the app, the adapter, the monitoring stack, then the cluster.
    Teardown(TeardownArgs),
    /// Write every manifest and helm values file kscale would apply; no cluster needed.
    Render(RenderArgs),
    /// Send inference requests with a load profile (constant, rate, or steps) and report latencies.
    Load(crate::load::LoadArgs),
    /// Draw an autoscaling timeline (`metrics --record`, `load --record`) as PNG or SVG.
    Plot(crate::plot::PlotArgs),
    /// Simulate the autoscaler on a load profile before deploying: reaction time, latency, shedding.
    Simulate(crate::simulate::SimulateArgs),
    /// Print the effective configuration (defaults, kscale.toml, environment, flags) as TOML.
    Config,
    /// Prove every link of the metric chain (pods, Prometheus, adapter, external metrics API, HPA).
    Metrics(crate::metrics::MetricsArgs),
}
