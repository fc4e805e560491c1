//! The `kscale` binary: parses the command line, runs the command, maps errors to exit codes.

use std::process::ExitCode;

use clap::Parser as _;
use kscale::cli::{Cli, Command};
use kscale::commands;
use kscale::session::Session;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        tokio::select! {
            result = run(cli) => match result {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\ninterrupted: kscale stopped; every step is idempotent, so re-running the command continues from here");
                ExitCode::from(130)
            }
        }
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Configuration errors are usage errors: exit 2, before anything touches a cluster.
    let s = match Session::from_args(&cli.global) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    match &cli.command {
        Command::Up(args) => {
            let report = commands::up::run(&s, args).await?;
            s.ui.result_json(&serde_json::to_value(&report)?);
            commands::up::print(&s, &report);
        }
        Command::Deploy(args) => {
            let report = commands::deploy::run(&s, args).await?;
            s.ui.result_json(&serde_json::to_value(&report)?);
            commands::deploy::print(&s, &report);
        }
        Command::Teardown(args) => {
            let report = commands::teardown::run(&s, args).await?;
            s.ui.result_json(&serde_json::to_value(&report)?);
            commands::teardown::print(&s, &report);
        }
        Command::Render(args) => commands::render::run(&s, args)?,
        Command::Metrics(args) => {
            // kube's default retry would retry 503s for minutes; the check has its own --wait.
            let client = kscale::kubeapi::client_for_checks(&s.context).await?;
            let report = kscale::metrics::run(client, &s.cfg, args, s.ui.json()).await?;
            return Ok(ExitCode::from(report.exit_code()));
        }
        Command::Config => {
            s.ui.result_json(&serde_json::to_value(&s.cfg)?);
            s.ui.result(&toml::to_string_pretty(&s.cfg)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
