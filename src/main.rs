//! The `kscale` binary: parses the command line and runs it; [`kscale::commands::run`] does
//! the rest, exit code included.

use std::process::ExitCode;

use clap::Parser as _;
use kscale::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            kscale::ui::error(&anyhow::Error::new(e).context("cannot start the async runtime"));
            return ExitCode::from(kscale::commands::FAILURE);
        }
    };
    ExitCode::from(runtime.block_on(kscale::commands::run(&cli)))
}
