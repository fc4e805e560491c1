//! `LoadArgs` and `PlotArgs` fit under kscale's global flags without clashes, and parse the
//! command lines the docs show.

use clap::{CommandFactory as _, Parser, Subcommand};
use kscale::cli::GlobalArgs;
use kscale::cli::{LoadArgs, PlotArgs};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Load(LoadArgs),
    Plot(PlotArgs),
}

#[test]
fn the_subcommands_fit_under_the_global_flags() {
    Cli::command().debug_assert();
}

#[test]
fn documented_command_lines_parse() {
    let cli = Cli::try_parse_from([
        "kscale",
        "load",
        "--url",
        "http://127.0.0.1:3000",
        "--steps",
        "0s:2,60s:8,300s:2",
        "--duration",
        "6m",
        "--reconnect-every",
        "10",
        "--record",
        "load.csv",
        "--output",
        "json",
    ])
    .expect("load parses");
    assert!(matches!(cli.command, Cmd::Load(ref a) if a.reconnect_every == 10));
    assert_eq!(cli.global.output, kscale::cli::OutputFormat::Json);
    let cli = Cli::try_parse_from([
        "kscale",
        "plot",
        "timeline.csv",
        "load.csv",
        "-o",
        "scaling.png",
        "--width",
        "1600",
    ])
    .expect("plot parses");
    let Cmd::Plot(p) = cli.command else {
        panic!("not plot")
    };
    assert_eq!(p.files.len(), 2);
    assert_eq!(p.out.to_str(), Some("scaling.png"));
    assert_eq!((p.width, p.height), (1600, 800));
}
