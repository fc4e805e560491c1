//! `kscale teardown`: remove what kscale installed, then the cluster. Nothing left is success.

use std::io::IsTerminal as _;
use std::time::Duration;

use crate::cli::TeardownArgs;
use crate::manifest;
use crate::monitoring;
use crate::preflight::{self, Tool};
use crate::render::file;
use crate::session::{Session, blocking};
use crate::tools::minikube::{Minikube, ProfileState};

/// What teardown removed and what was already gone.
#[derive(Debug, Default, serde::Serialize)]
pub struct TeardownReport {
    /// Removed now.
    pub removed: Vec<String>,
    /// Already gone.
    pub absent: Vec<String>,
}

/// Asks before deleting a cluster; refuses without `--yes` when nobody can answer.
fn confirm(s: &Session, profile: &str, yes: bool) -> anyhow::Result<()> {
    if yes || s.runner.dry_run() {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        // A missing flag, like any other bad input (exit 2).
        return Err(crate::BadInput(format!(
            "refusing to delete minikube profile {profile} without --yes (no terminal to ask); nothing was changed.\n  \
             hint: `kscale teardown --yes`, or `--keep-cluster` to remove only what kscale installed"
        ))
        .into());
    }
    if s.ui.confirm(&format!(
        "Delete minikube profile {profile} and everything in it?"
    ))? {
        Ok(())
    } else {
        anyhow::bail!("teardown cancelled; nothing was changed")
    }
}

/// Whether minikube's status word means the cluster answers (1.34+ says "OK" for a healthy one).
fn running(status: &str) -> bool {
    matches!(status, "Running" | "OK")
}

/// `kscale teardown`: runs it and reports the result.
pub async fn exec(s: &Session, args: &TeardownArgs) -> anyhow::Result<u8> {
    let report = run(s, args).await?;
    s.ui.result_json(&serde_json::to_value(&report)?);
    print(s, &report);
    Ok(super::SUCCESS)
}

/// Tears the stack down.
pub async fn run(s: &Session, args: &TeardownArgs) -> anyhow::Result<TeardownReport> {
    let delete_cluster = s.minikube && !args.keep_cluster;
    let profile = s.cfg.cluster.profile.clone();
    if delete_cluster {
        confirm(s, &profile, args.yes)?;
    }
    let mut tools = vec![Tool::Helm];
    if s.minikube {
        tools.push(Tool::Minikube);
    }
    let versions = preflight::check(&s.runner, &tools)?;
    let mut report = TeardownReport::default();

    if s.minikube {
        let mk = Minikube::new(&s.runner, &profile);
        match blocking(|| mk.profile_state())? {
            Some(ProfileState::Absent) => {
                report.absent.push(format!("minikube profile {profile}"));
                s.ui.result(&format!(
                    "nothing to remove: minikube profile {profile} does not exist"
                ));
                return Ok(report);
            }
            Some(ProfileState::Present { status, .. }) if !running(&status) && !delete_cluster => {
                // Nothing can be removed through the API of a cluster that does not run.
                anyhow::bail!(
                    "minikube profile {profile} is {status}, so kscale cannot remove its objects; nothing was changed.\n  \
                     hint: start it with `minikube start -p {profile}` and run `kscale teardown --keep-cluster` again, \
                     or delete the whole cluster with `kscale teardown --yes`"
                );
            }
            Some(ProfileState::Present { status, .. }) if !running(&status) => {
                // A stopped cluster is deleted whole; its objects go with it.
                let step = s.ui.step(&format!("delete minikube profile {profile}"));
                blocking(|| mk.delete())?;
                step.done("deleted");
                report.removed.push(format!("minikube profile {profile}"));
                return Ok(report);
            }
            _ => {}
        }
    }

    let client = if s.runner.dry_run() {
        None
    } else {
        Some(s.client().await?)
    };
    let applier = client.as_ref().map(|c| s.applier(c));
    let files = s.render("kscale-server:teardown")?;
    let step = s.ui.step("remove the HPA, the app and the scrape job");
    for name in [
        file::HPA,
        file::PDB,
        file::SERVICE,
        file::DEPLOYMENT,
        file::GRAFANA_DASHBOARD,
        file::SCRAPE_CONFIG_SECRET,
    ] {
        let Some(f) = files.iter().find(|f| f.name == name) else {
            continue;
        };
        let obj = manifest::object_from_yaml(&f.content)?;
        let what = manifest::describe(&obj);
        match &applier {
            None => s.ui.plan(&format!("delete {what}")),
            Some(a) => {
                if a.delete(&obj).await? {
                    report.removed.push(what);
                } else {
                    report.absent.push(what);
                }
            }
        }
    }
    step.done("");

    let helm = monitoring::helm(s, versions.helm_version());
    let timeout = Duration::from_secs(s.cfg.timeouts.helm_seconds);
    let ns = s.cfg.monitoring.namespace.clone();
    for spec in monitoring::releases(&s.cfg).iter().rev() {
        let step =
            s.ui.step(&format!("uninstall helm release {}", spec.release));
        let what = format!("helm release {ns}/{}", spec.release);
        if blocking(|| helm.uninstall(&spec.release, &ns, timeout))? {
            step.done("removed");
            report.removed.push(what);
        } else {
            step.done("not installed");
            report.absent.push(what);
        }
    }
    for f in files
        .iter()
        .filter(|f| f.name == file::MONITORING_NAMESPACE || f.name == file::APP_NAMESPACE)
    {
        let obj = manifest::object_from_yaml(&f.content)?;
        match &applier {
            None => s.ui.plan(&format!("delete {}", manifest::describe(&obj))),
            Some(a) => {
                if a.delete(&obj).await? {
                    report.removed.push(manifest::describe(&obj));
                } else {
                    report.absent.push(manifest::describe(&obj));
                }
            }
        }
    }

    if delete_cluster {
        let mk = Minikube::new(&s.runner, &profile);
        let step = s.ui.step(&format!("delete minikube profile {profile}"));
        blocking(|| mk.delete())?;
        step.done("deleted");
        report.removed.push(format!("minikube profile {profile}"));
    }
    Ok(report)
}

/// Prints the teardown report.
pub fn print(s: &Session, r: &TeardownReport) {
    for what in &r.removed {
        s.ui.result(&format!("removed {what}"));
    }
    for what in &r.absent {
        s.ui.result(&format!("already gone: {what}"));
    }
}
