//! `kscale load`: drive the deployed service (or any `--url`) with a load profile.

use std::time::Duration;

use crate::cli::LoadArgs;
use crate::load::{self, LoadReport, StopReason};
use crate::session::{Session, blocking};
use crate::tools::Cmd;
use crate::tools::port_forward::PortForwardSpec;

/// `kscale load`: runs the load (or, with `--dry-run`, only says what it would send where)
/// and reports it; see [`exit_code`].
pub async fn exec(s: &Session, args: &LoadArgs) -> anyhow::Result<u8> {
    let args = &with_server_api(s, args)?;
    // A bad profile is bad input (exit 2), found before any port-forward opens.
    let profile = args
        .profile()
        .map_err(|e| crate::BadInput(format!("{e:#}")))?;
    let api = args.request()?;
    if s.runner.dry_run() {
        let plan = plan(s, args, &profile.describe());
        for line in &plan {
            s.ui.plan(line);
        }
        let body: serde_json::Value = api.body().map_or(serde_json::Value::Null, |b| {
            serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null)
        });
        let request = serde_json::json!({
            "method": "POST",
            "path": api.path(),
            "api": api.kind,
            "stream": api.streams(),
            "body": body,
        });
        s.ui.result_json(
            &serde_json::json!({ "dry_run": true, "sent": 0, "plan": plan, "request": request }),
        );
        s.ui.result("dry-run: no request sent");
        return Ok(super::SUCCESS);
    }
    let report = run(s, args).await?;
    Ok(exit_code(&report))
}

/// `args` with `--api` defaulted to the configured server's protocol.
fn with_server_api(s: &Session, args: &LoadArgs) -> Result<LoadArgs, crate::BadInput> {
    let mut args = args.clone();
    if args.api.is_none() {
        let preset = s.cfg.app.server.preset();
        args.api = Some(preset.load_api.ok_or_else(|| {
            crate::BadInput(format!(
                "{} speaks the KServe v2 protocol, which kscale load does not: pass --api completions with --url of an OpenAI-compatible frontend",
                preset.title
            ))
        })?);
    }
    Ok(args)
}

/// What `load` would do, for `--dry-run`: nothing is sent and no port-forward is opened.
pub fn plan(s: &Session, args: &LoadArgs, profile: &str) -> Vec<String> {
    let (path, body) = match args.request() {
        Ok(api) => (api.path(), api.describe()),
        Err(e) => ("/infer", format!("(invalid request flags: {e})")),
    };
    let target = match &args.url {
        Some(url) => format!("POST {}{path}", url.trim_end_matches('/')),
        None if s.minikube => format!("POST URL{path}, URL from `{}`", service_url_cmd(s)),
        None => format!(
            "POST URL{path} through `kubectl --context {} --namespace {} port-forward service/{} :{}`",
            s.context, s.cfg.app.namespace, s.cfg.app.name, s.cfg.app.port
        ),
    };
    vec![format!(
        "load: would send {profile} for {} to {target}, {body} (dry-run: nothing sent)",
        humantime::format_duration(args.duration)
    )]
}

fn service_url_cmd(s: &Session) -> Cmd {
    let app = &s.cfg.app;
    Cmd::new("minikube").args(["service", &app.name, "-n", &app.namespace, "-p", &s.cfg.cluster.profile, "--url"]).hint(
        "is the stack up (`kscale up`)? With the docker driver on macOS or Windows, `minikube service --url` needs a tunnel: pass --url from `kubectl port-forward` instead",
    )
}

/// Runs the load: against `--url`, the minikube NodePort URL (which spreads connections over
/// every pod), or a port-forward it opens and closes itself (which reaches a single pod).
pub async fn run(s: &Session, args: &LoadArgs) -> anyhow::Result<LoadReport> {
    if let Some(url) = &args.url {
        return load::run_against(args, url, &s.ui).await;
    }
    let app = &s.cfg.app;
    if s.minikube {
        let cmd = service_url_cmd(s);
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
        return load::run_against(args, url, &s.ui).await;
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
    let timeout = Duration::from_secs(s.cfg.timeouts.port_forward_seconds);
    load::run_via_port_forward(args, &s.runner, &spec, timeout).await
}

/// 130 when interrupted, 1 when nothing succeeded, else 0.
pub fn exit_code(r: &LoadReport) -> u8 {
    if r.stopped_by == StopReason::Interrupted {
        super::INTERRUPTED
    } else if r.sent > 0 && r.ok == 0 {
        super::FAILURE
    } else {
        super::SUCCESS
    }
}
