//! The `kscale` binary.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = kscale::cli::Cli::parse();
    eprintln!("kscale: {:?} is not implemented yet", cli.command);
    std::process::ExitCode::from(1)
}
