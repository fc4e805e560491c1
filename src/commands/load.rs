//! `kscale load`: drive the deployed service (or any `--url`) with a load profile.

use crate::cli::OutputFormat;
use crate::load::{self, LoadArgs, LoadReport, StopReason};
use crate::session::{Session, blocking};
use crate::tools::Cmd;
use crate::tools::port_forward::PortForwardSpec;

/// Runs the load: against `--url`, the minikube NodePort URL (which spreads connections over
/// every pod), or a port-forward it opens and closes itself (which reaches a single pod).
pub async fn run(s: &Session, args: &LoadArgs, output: OutputFormat) -> anyhow::Result<LoadReport> {
    // A bad profile is bad input (exit 2), found before any port-forward opens.
    args.profile()
        .map_err(|e| crate::BadInput(format!("{e:#}")))?;
    if let Some(url) = &args.url {
        return load::run_against(args, url, output).await;
    }
    let app = &s.cfg.app;
    if s.minikube {
        let cmd = Cmd::new("minikube").args(["service", &app.name, "-n", &app.namespace, "-p", &s.cfg.cluster.profile, "--url"]).hint(
            "is the stack up (`kscale up`)? With the docker driver on macOS or Windows, `minikube service --url` needs a tunnel: pass --url from `kubectl port-forward` instead",
        );
        let out = blocking(|| s.runner.run(&cmd))?;
        let url = out
            .stdout
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("http"))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "`{cmd}` printed no URL; pass --url http://HOST:PORT of the service"
                )
            })?;
        return load::run_against(args, url, output).await;
    }
    let kubectl = s.runner.which("kubectl").ok_or_else(|| {
        anyhow::anyhow!(
            "kubectl is not installed: {}",
            crate::tools::install_hint("kubectl")
        )
    })?;
    let spec = PortForwardSpec {
        kubectl,
        context: Some(s.context.clone()),
        namespace: app.namespace.clone(),
        service: app.name.clone(),
        remote_port: app.port,
    };
    load::run_via_port_forward(args, &spec, output).await
}

/// 130 when interrupted, 1 when nothing succeeded, else 0.
pub fn exit_code(r: &LoadReport) -> u8 {
    if r.stopped_by == StopReason::Interrupted {
        130
    } else if r.sent > 0 && r.ok == 0 {
        1
    } else {
        0
    }
}
