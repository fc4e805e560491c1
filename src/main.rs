//! The `kscale` binary: parses the command line and runs it; [`kscale::commands::run`] does
//! the rest, exit code included.

use std::process::ExitCode;

use clap::Parser as _;
use kscale::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A usage error is reported as JSON too when JSON was asked for (help is not an error).
            if e.use_stderr() && kscale::cli::asks_for_json(std::env::args_os()) {
                let message = e.render().to_string();
                let first = message.lines().next().unwrap_or_default();
                let message = first.strip_prefix("error: ").unwrap_or(first);
                let code = u8::try_from(e.exit_code()).unwrap_or(kscale::commands::BAD_INPUT);
                kscale::ui::error_json(&anyhow::anyhow!("{message}"), code);
            }
            e.exit()
        }
    };
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
