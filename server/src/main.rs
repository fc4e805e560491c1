//! `kscale-server`: the inference server kscale deploys. It simulates a fixed-time model (one
//! inference takes INFERENCE_SECONDS, WORKERS at once, at most MAX_QUEUE waiting) and exposes the
//! queueing it causes as Prometheus metrics, which the HPA scales on.

mod admission;
mod config;
mod connection;
mod limits;
mod logging;
mod metrics;
mod openai;
mod routes;
mod serve;
mod stream;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

fn main() -> ExitCode {
    // clap prints the problem, naming the flag and its environment variable, and exits with 2
    // before anything binds.
    let config = config::Config::parse();
    logging::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kscale-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve::run(config));
    // Work cut at the drain deadline must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(serve::Ending::Drained) => ExitCode::SUCCESS,
        // 128 + the signal's number: how a shell reports a process ended by that signal.
        Ok(serve::Ending::Forced("SIGINT")) => ExitCode::from(130),
        Ok(serve::Ending::Forced(_)) => ExitCode::from(143),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
