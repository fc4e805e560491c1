//! One module per subcommand; each is a thin orchestration of the modules that do the work,
//! with an `exec` that runs it and reports its result through the UI. [`run`] dispatches to
//! them and turns the outcome into the exit code, the same for every command: 0 success,
//! 1 failure, 2 bad input (flags, configuration, files the user named), 130 interrupted.

pub mod completions;
pub mod config;
pub mod deploy;
pub mod load;
pub mod man;
pub mod metrics;
pub mod plot;
pub mod render;
pub mod simulate;
pub mod teardown;
pub mod up;

use std::future::Future;
use std::time::Duration;

use crate::cli::{Cli, Command};
use crate::session::Session;
use crate::ui::{self, Ui};

/// Exit code of a command that did its job.
pub const SUCCESS: u8 = 0;
/// Exit code of a command that failed.
pub const FAILURE: u8 = 1;
/// Exit code of bad input: flags, configuration, templates or files the user named (clap's own
/// code for a bad flag, so parse errors and later input errors agree).
pub const BAD_INPUT: u8 = 2;
/// Exit code after Ctrl-C (128 + SIGINT, as a shell reports it).
pub const INTERRUPTED: u8 = 130;

/// Runs the parsed command line and returns the process exit code; every error is reported
/// here, once.
pub async fn run(cli: &Cli) -> u8 {
    let outcome = match &cli.command {
        // Generated from the clap definitions alone: a broken kscale.toml must not stop them.
        Command::Completions(args) => completions::exec(&Ui::detect(cli.global.output), args),
        Command::Man => man::exec(&Ui::detect(cli.global.output)),
        Command::Up(args) => {
            with_session(cli, async |s| interruptible(up::exec(s, args)).await).await
        }
        Command::Deploy(args) => {
            with_session(cli, async |s| interruptible(deploy::exec(s, args)).await).await
        }
        Command::Teardown(args) => {
            with_session(cli, async |s| interruptible(teardown::exec(s, args)).await).await
        }
        Command::Render(args) => with_session(cli, async |s| render::exec(s, args)).await,
        // `load` handles Ctrl-C itself: it stops sending and still reports what it sent.
        Command::Load(args) => with_session(cli, async |s| load::exec(s, args).await).await,
        Command::Metrics(args) => {
            with_session(cli, async |s| interruptible(metrics::exec(s, args)).await).await
        }
        Command::Plot(args) => with_session(cli, async |s| plot::exec(s, args)).await,
        Command::Simulate(args) => with_session(cli, async |s| simulate::exec(s, args)).await,
        Command::Config => with_session(cli, async |s| config::exec(s)).await,
    };
    let json = cli.global.output == ui::OutputFormat::Json;
    match outcome {
        // An interrupted command printed no result: in JSON mode its stdout still gets one
        // document (nothing is added where the command reported before stopping, as `load` does).
        Ok(INTERRUPTED) if json => {
            ui::error_json(&anyhow::anyhow!(INTERRUPTED_MESSAGE), INTERRUPTED);
            INTERRUPTED
        }
        Ok(code) => code,
        Err(e) => {
            ui::error(&e);
            let code = failure_code(&e);
            if json {
                ui::error_json(&e, code);
            }
            code
        }
    }
}

/// Runs `f` with the session of the global flags. Configuration errors are bad input: they are
/// refused before anything touches a cluster.
async fn with_session(
    cli: &Cli,
    f: impl AsyncFnOnce(&Session) -> anyhow::Result<u8>,
) -> anyhow::Result<u8> {
    let s = Session::from_args(&cli.global).map_err(crate::bad_input)?;
    f(&s).await
}

/// [`BAD_INPUT`] for bad input found after parsing, [`FAILURE`] for every other failure.
pub fn failure_code(e: &anyhow::Error) -> u8 {
    if crate::is_bad_input(e) {
        BAD_INPUT
    } else {
        FAILURE
    }
}

/// How long a failure of a child killed by a signal waits for kscale's own Ctrl-C to arrive.
const INTERRUPT_GRACE: Duration = Duration::from_millis(500);

/// Runs a command until it ends or Ctrl-C; an interruption says that re-running is safe.
async fn interruptible(command: impl Future<Output = anyhow::Result<u8>>) -> anyhow::Result<u8> {
    // The listener is a task of its own, so it runs while the command blocks on a child.
    let (interrupted_tx, mut interrupted) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            crate::tools::interrupt_running();
            let _ = interrupted_tx.send(());
        }
    });
    let result = tokio::select! {
        result = command => result,
        _ = &mut interrupted => return Ok(interrupted_exit()),
    };
    let outcome = match result {
        // A terminal's Ctrl-C also reaches the external command kscale waits on, which then
        // dies of it, often before the listener above has run: that failure is the
        // interruption, not an error of its own.
        Err(e)
            if killed_by_signal(&e)
                && tokio::time::timeout(INTERRUPT_GRACE, &mut interrupted)
                    .await
                    .is_ok_and(|r| r.is_ok()) =>
        {
            Ok(interrupted_exit())
        }
        other => other,
    };
    listener.abort();
    outcome
}

/// What an interruption says, on stderr and in the JSON error document.
const INTERRUPTED_MESSAGE: &str = "interrupted: kscale stopped; every step is idempotent, so re-running the command continues from here";

fn interrupted_exit() -> u8 {
    ui::notice(&format!("\n{INTERRUPTED_MESSAGE}"));
    INTERRUPTED
}

/// Whether the error is an external command that died of a signal (or of SIGINT, as a shell
/// reports it: exit 130).
fn killed_by_signal(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<crate::tools::ToolError>(),
            Some(crate::tools::ToolError::Failed {
                code: None | Some(130),
                ..
            })
        )
    })
}

/// How to reach each part of the stack, for the final summary (Grafana only when it was
/// installed).
pub fn access_lines(s: &crate::session::Session) -> Vec<(String, String)> {
    let c = &s.cfg;
    let m = &c.monitoring;
    let ctx = &s.context;
    let service = if s.minikube {
        format!(
            "minikube service {} -n {} -p {} --url",
            c.app.name, c.app.namespace, c.cluster.profile
        )
    } else {
        format!(
            "kubectl --context {ctx} -n {} port-forward svc/{} {}:{}",
            c.app.namespace, c.app.name, c.app.port, c.app.port
        )
    };
    vec![
        (
            "service".into(),
            format!("{service}   then: curl -X POST URL/infer"),
        ),
        (
            "prometheus".into(),
            format!(
                "kubectl --context {ctx} -n {} port-forward svc/{} 9090   then open http://localhost:9090",
                m.namespace,
                m.prometheus_service()
            ),
        ),
        (
            "grafana".into(),
            format!(
                "kubectl --context {ctx} -n {} port-forward svc/{}-grafana 3001:80   then open http://localhost:3001 (user admin, password: kubectl -n {} get secret {}-grafana -o jsonpath='{{.data.admin-password}}' | base64 -d)",
                m.namespace, m.prometheus_release, m.namespace, m.prometheus_release
            ),
        ),
        (
            "metric".into(),
            format!(
                "kubectl --context {ctx} get --raw /apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{}",
                c.app.namespace, c.metric.name
            ),
        ),
        (
            "hpa".into(),
            format!(
                "kubectl --context {ctx} -n {} get hpa {} --watch",
                c.app.namespace, c.app.name
            ),
        ),
    ]
    .into_iter()
    .filter(|(part, _)| part != "grafana" || m.grafana)
    .collect()
}
