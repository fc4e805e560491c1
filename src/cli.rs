//! Command-line interface: every subcommand and global flag.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Bring up an inference service that autoscales on a real inference metric.
#[derive(Debug, Parser)]
#[command(name = "kscale", version, about, long_about = None)]
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
    /// Configuration file (TOML); missing is fine unless given explicitly.
    #[arg(long, global = true, env = "KSCALE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kube context to use instead of the minikube profile's.
    #[arg(long, global = true, env = "KSCALE_CONTEXT")]
    pub context: Option<String>,
    /// minikube profile (cluster name).
    #[arg(long, global = true, env = "KSCALE_PROFILE")]
    pub profile: Option<String>,
    /// Print the plan (every external command and object) and execute nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Echo each external command as it runs.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Format of the results on stdout (progress always goes to stderr).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Format of results on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// One JSON document.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring up the whole stack (idempotent).
    Up,
    /// Prove every link of the metric chain (pods, Prometheus, adapter, external metrics API, HPA).
    Metrics(crate::metrics::MetricsArgs),
}
