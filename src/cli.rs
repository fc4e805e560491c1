//! Command-line interface: every subcommand, its flags and the global flags, and the value
//! parsers they share. Only clap definitions live here: the modules that do the work take these
//! structs, so a flag is defined once and completions and the man page see every one.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

pub use crate::ui::OutputFormat;

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
    /// Inference server to deploy and scale: kscale (the simulated model), vllm, tgi, triton or
    /// llamacpp (the same as --set app.server=...).
    #[arg(long, global = true, value_name = "SERVER", value_parser = parse_server)]
    pub server: Option<crate::config::servers::ServerKind>,
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

fn parse_server(text: &str) -> Result<crate::config::servers::ServerKind, String> {
    crate::config::servers::ServerKind::parse(text)
        .map_err(|e| e.to_string().trim_start_matches("app.server: ").to_string())
}

/// Whether a command line asks for `--output json`, read without clap: for reporting a command
/// line clap refused in the format the user asked for. The last `--output` wins, as in clap.
pub fn asks_for_json(args: impl IntoIterator<Item = std::ffi::OsString>) -> bool {
    let mut json = false;
    let mut previous_was_output = false;
    for arg in args {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            break;
        }
        if let Some(value) = arg.strip_prefix("--output=") {
            json = value == "json";
        } else if previous_was_output {
            json = arg == "json";
        }
        previous_was_output = arg == "--output";
    }
    json
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE (e.g. --set app.workers=2)"))
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
    #[arg(long, value_name = "DURATION", value_parser = parse_bounded_duration)]
    pub wait: Option<Duration>,
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
    Load(LoadArgs),
    /// Draw an autoscaling timeline (`metrics --record`, `load --record`) as PNG or SVG.
    Plot(PlotArgs),
    /// Simulate the autoscaler on a load profile before deploying: reaction time, latency, shedding.
    Simulate(SimulateArgs),
    /// Print the effective configuration (defaults, kscale.toml, environment, flags) as TOML.
    Config,
    /// Prove every link of the metric chain (pods, Prometheus, adapter, external metrics API, HPA).
    Metrics(MetricsArgs),
    /// Print a shell completion script generated from these definitions.
    Completions(CompletionsArgs),
    /// Print the man page (roff) generated from these definitions.
    Man,
}

/// `kscale completions`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `kscale load`: send inference requests with a load profile.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("load_profile").required(true).args(["concurrency", "rate", "steps", "rate_steps"])))]
pub struct LoadArgs {
    /// Base URL of the service (e.g. http://127.0.0.1:3000); requests go to `POST <URL>/infer`
    /// (or the path of --api). Without it, kscale opens a port-forward to the deployed service.
    #[arg(long, env = "KSCALE_LOAD_URL")]
    pub url: Option<String>,
    /// Keep N requests in flight (closed loop: each client sends its next request when the
    /// previous one is answered, or 250 ms after a 503 or a refused connection).
    #[arg(long, short = 'c', value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::loadprofile::MAX_CLIENTS)))]
    pub concurrency: Option<u32>,
    /// Start R requests per second, whatever the answers take (open loop).
    #[arg(long, value_name = "R", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Change the number of clients over time: TIME:CLIENTS pairs, e.g. `0s:2,60s:8,300s:2`.
    #[arg(long, value_name = "SPEC")]
    pub steps: Option<String>,
    /// Change the arrival rate over time: TIME:REQUESTS_PER_SECOND pairs, e.g. `0s:0.2,60s:1`.
    #[arg(long, value_name = "SPEC")]
    pub rate_steps: Option<String>,
    /// Stop sending after this long (e.g. 90s, 10m).
    #[arg(long, short = 'd', default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop sending after this many requests.
    #[arg(long, short = 'n', value_name = "N")]
    pub max_requests: Option<u64>,
    /// Open a new connection every N requests (0: keep each connection as long as the server
    /// allows). kube-proxy balances connections, not requests: new connections reach new pods.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub reconnect_every: u64,
    /// Try a refused connection again up to N times, 100 ms apart, within --timeout: the
    /// request never reached a server, so a retry is safe (HTTP clients such as OpenAI's SDK
    /// retry connection errors twice by default). 0 counts every refusal as a failure. Retries
    /// are counted in the report.
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retry_refused: u32,
    /// Give up on a request (connection included) after this long; it counts as a timeout.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// With --rate or --rate-steps: at most this many requests in flight; arrivals beyond are counted, not sent.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_in_flight: u64,
    /// The API to speak: kscale-server's `POST /infer`, or the OpenAI-style `POST
    /// /v1/completions` or `POST /v1/chat/completions` of vLLM, TGI, llama.cpp's llama-server (and
    /// kscale-server) [default: the configured server's own: infer for kscale, completions for
    /// vllm, tgi and llamacpp].
    #[arg(long, value_enum)]
    pub api: Option<crate::config::servers::ApiKind>,
    /// The text of every request: `input` of /infer, `prompt` of completions, the user message of
    /// chat.
    #[arg(
        long,
        visible_alias = "input",
        value_name = "TEXT",
        default_value = "hello"
    )]
    pub prompt: String,
    /// `max_tokens` of every request, 1-131072 (--api completions or chat; default 16).
    #[arg(long, value_name = "N")]
    pub max_tokens: Option<u32>,
    /// `model` of every request (--api completions or chat; default: not sent, the server's own).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
    /// Ask for a streamed answer (`"stream": true`, server-sent events) and measure the time to
    /// first token (--api completions or chat).
    #[arg(long)]
    pub stream: bool,
    /// Write the load side's timeline (send rate, latencies, errors per interval) to this CSV.
    #[arg(long, value_name = "FILE.csv")]
    pub record: Option<PathBuf>,
    /// Interval of the progress line and of the recorded rows.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,
    /// No progress on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Options of `kscale metrics`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Retry until every stage passes or this deadline (e.g. `3m`), for use right after a deploy.
    #[arg(long, value_name = "DURATION", value_parser = parse_bounded_duration)]
    pub wait: Option<Duration>,
    /// After the checks, show replicas, metric against target, and queue depth and in-flight
    /// requests per pod, refreshed every --interval, until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Stop watching after this long (default: until Ctrl-C).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "watch")]
    pub watch_for: Option<Duration>,
    /// Append each watched observation to this CSV file (timeline rows, as `kscale plot` reads).
    #[arg(long, value_name = "FILE.csv", requires = "watch")]
    pub record: Option<PathBuf>,
    /// Time between retries (--wait) and refreshes (--watch).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,
}

impl Default for MetricsArgs {
    fn default() -> Self {
        Self {
            wait: None,
            watch: false,
            watch_for: None,
            record: None,
            interval: Duration::from_secs(5),
        }
    }
}

/// Flags of `kscale simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Concurrency steps TIME:CLIENTS,... (closed loop); default 0s:2,120s:8,720s:2.
    #[arg(long, value_name = "STEPS", value_parser = crate::loadprofile::LoadProfile::parse_concurrency, conflicts_with = "rate_steps")]
    pub steps: Option<crate::loadprofile::LoadProfile>,
    /// Arrival-rate steps TIME:REQ_PER_S,... (open loop, Poisson arrivals), e.g. 0s:0.1,60s:0.4.
    #[arg(long, value_name = "STEPS", value_parser = crate::loadprofile::LoadProfile::parse_rate)]
    pub rate_steps: Option<crate::loadprofile::LoadProfile>,
    /// Simulated time, e.g. 20m or 1h.
    #[arg(long, default_value = "20m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Random seed (same seed, same result).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A second configuration (a kscale.toml, over its profile's defaults) to run on the same load and
    /// seed.
    #[arg(long, value_name = "OTHER.toml")]
    pub compare: Option<PathBuf>,
    /// Draw the timelines into a PNG or SVG file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write the timelines as CSV to FILE (`-` for stdout: the CSV is then the result, the summary goes to stderr, and `--output json` is refused).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// How requests are spread over ready pods.
    #[arg(long, value_enum, default_value_t = crate::loadprofile::Balance::RoundRobin)]
    pub balance: crate::loadprofile::Balance,
}

/// `kscale plot`: draw a recorded timeline.
#[derive(Debug, Clone, clap::Args)]
pub struct PlotArgs {
    /// Timeline CSV files (`kscale metrics --watch --record`, `kscale load --record`). Files
    /// recorded at the same time are aligned on their wall-clock column.
    #[arg(required = true, value_name = "FILE.csv")]
    pub files: Vec<PathBuf>,
    /// Picture to write; the extension chooses the format (`.png` or `.svg`). (Not `--output`,
    /// which is the global result format.)
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
    /// Width in pixels.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u32).range(200..=10000))]
    pub width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 800, value_parser = clap::value_parser!(u32).range(200..=10000))]
    pub height: u32,
    /// Axis label of the HPA metric, with its unit [default: the configured metric profile's,
    /// e.g. "mean request duration (s)" or "requests per pod"].
    #[arg(long)]
    pub metric_label: Option<String>,
    /// Axis label of the offered load, with its unit.
    #[arg(long, default_value = "load (concurrent clients or req/s)")]
    pub load_label: String,
    /// Title above the picture.
    #[arg(long)]
    pub title: Option<String>,
}

/// A length of time ([`crate::duration::parse`]: seconds or humantime text, at most 366 days);
/// the value parser of every duration flag.
pub fn parse_bounded_duration(s: &str) -> Result<Duration, String> {
    use crate::duration::{MAX_DAYS, Problem};
    crate::duration::parse(s).map_err(|problem| match problem {
        Problem::TooLong => {
            format!("`{s}` is too long: at most {MAX_DAYS} days (e.g. 90s, 10m, 8h)")
        }
        Problem::Negative => format!("`{s}` is not a length of time (e.g. 500ms, 90s, 10m)"),
        Problem::Unreadable(e) => format!("{e} (use e.g. 500ms, 90s, 10m)"),
    })
}

/// Like [`parse_bounded_duration`], longer than 0.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_bounded_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than 0".into());
    }
    Ok(d)
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let r: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of requests per second"))?;
    if !(r.is_finite() && r > 0.0 && r <= crate::loadprofile::MAX_RATE) {
        return Err(format!(
            "must be more than 0 and at most {} requests/s",
            crate::loadprofile::MAX_RATE
        ));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::asks_for_json;

    fn asks(line: &str) -> bool {
        asks_for_json(line.split_whitespace().map(Into::into))
    }

    #[test]
    fn json_is_recognised_in_both_spellings_and_only_as_the_output_flags_value() {
        assert!(asks("kscale --output json up --nosuch"));
        assert!(asks("kscale up --output=json --nosuch"));
        assert!(!asks("kscale up --output text"));
        assert!(!asks("kscale load json"));
        assert!(!asks("kscale load -- --output json"));
        assert!(!asks("kscale --output json up --output text"));
        assert!(asks("kscale --output=text up --output=json"));
    }
}
