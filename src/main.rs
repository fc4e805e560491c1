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
    if let Command::Load(args) = &cli.command {
        // `load` handles Ctrl-C itself: it stops sending and still reports what it sent.
        return runtime.block_on(async {
            let s = match Session::from_args(&cli.global) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            match commands::load::run(&s, args, cli.global.output).await {
                Ok(report) => ExitCode::from(commands::load::exit_code(&report)),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    failure_code(&e)
                }
            }
        });
    }
    runtime.block_on(async {
        // The listener is a task of its own, so it runs while the command blocks on a child.
        let (interrupted_tx, mut interrupted) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = interrupted_tx.send(());
            }
        });
        let result = tokio::select! {
            result = run(cli) => result,
            _ = &mut interrupted => return interrupted_exit(),
        };
        match result {
            Ok(code) => code,
            Err(e) => {
                // A terminal's Ctrl-C also reaches the external command kscale waits on, which
                // then dies of it, often before the listener above has run: that failure is the
                // interruption, not an error of its own.
                if killed_by_signal(&e)
                    && tokio::time::timeout(INTERRUPT_GRACE, &mut interrupted)
                        .await
                        .is_ok_and(|r| r.is_ok())
                {
                    return interrupted_exit();
                }
                eprintln!("error: {e:#}");
                failure_code(&e)
            }
        }
    })
}

/// 2 for bad input found after parsing, 1 for every other failure.
fn failure_code(e: &anyhow::Error) -> ExitCode {
    if kscale::is_bad_input(e) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// How long a failure of a child killed by a signal waits for kscale's own Ctrl-C to arrive.
const INTERRUPT_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

fn interrupted_exit() -> ExitCode {
    eprintln!(
        "\ninterrupted: kscale stopped; every step is idempotent, so re-running the command continues from here"
    );
    ExitCode::from(130)
}

/// Whether the error is an external command that died of a signal (or of SIGINT, as a shell
/// reports it: exit 130).
fn killed_by_signal(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<kscale::tools::ToolError>(),
            Some(kscale::tools::ToolError::Failed {
                code: None | Some(130),
                ..
            })
        )
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
            let client = kscale::kubeapi::client_for(&s.context).await?;
            let report = kscale::metrics::run_with(
                client,
                &s.cfg,
                args,
                s.ui.json(),
                kscale::metrics::predict::metric_proposal,
            )
            .await?;
            return Ok(ExitCode::from(report.exit_code()));
        }
        Command::Load(_) => unreachable!("load runs outside the interrupt select"),
        Command::Plot(args) => {
            let path = kscale::plot::run(args)?;
            s.ui.result(&format!("wrote {}", path.display()));
            s.ui.result_json(&serde_json::json!({ "file": path }));
        }
        Command::Simulate(args) => {
            kscale::simulate::run(&s.cfg, args, s.ui.json())?;
        }
        Command::Config => {
            s.ui.result_json(&s.cfg.to_display_json()?);
            s.ui.result(&s.cfg.to_display_toml()?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
