//! The local cluster: the minikube profile (created, reused or started, never silently changed)
//! and metrics-server, enabled early and waited for (until the resource metrics API really
//! serves) late.

use std::time::Duration;

use crate::kubeapi;
use crate::session::{Session, blocking};
use crate::tools::minikube::{Minikube, ProfileState};

/// What `ensure` did to the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterAction {
    /// Created a new profile.
    Created,
    /// Started a stopped profile.
    Started,
    /// Reused a running profile.
    Reused,
}

/// Makes sure the minikube profile runs with the configured node count.
pub fn ensure(s: &Session) -> anyhow::Result<ClusterAction> {
    let c = &s.cfg.cluster;
    let mk = Minikube::new(&s.runner, &c.profile);
    let step = s.ui.step(&format!(
        "cluster: minikube profile {} ({} nodes, {} MB each)",
        c.profile, c.nodes, c.memory_mb
    ));
    let timeout = Duration::from_secs(s.cfg.timeouts.cluster_seconds);
    let state = match blocking(|| mk.profile_state()) {
        Ok(state) => state.unwrap_or(ProfileState::Absent),
        Err(e) => {
            step.fail("cannot read minikube's profiles");
            return Err(e.into());
        }
    };
    let result = match state {
        ProfileState::Absent => {
            let extra = crate::config::sources::minikube_start_flags(&s.cfg);
            blocking(|| mk.create(c, &extra, timeout)).map(|()| ClusterAction::Created)
        }
        ProfileState::Present { nodes, .. } if nodes != c.nodes as usize => {
            step.fail("node count differs");
            anyhow::bail!(
                "minikube profile {} exists with {nodes} node(s) but the configuration asks for {}; nothing was changed.\n  \
                 hint: delete it with `kscale teardown` (or `minikube delete -p {}`), or set cluster.nodes = {nodes}",
                c.profile,
                c.nodes,
                c.profile
            );
        }
        ProfileState::Present { status, .. } if status == "Running" || status == "OK" => {
            Ok(ClusterAction::Reused)
        }
        ProfileState::Present { .. } => {
            blocking(|| mk.start(timeout)).map(|()| ClusterAction::Started)
        }
    };
    match result {
        Ok(action) => {
            step.done(match action {
                ClusterAction::Created => "created",
                ClusterAction::Started => "started",
                ClusterAction::Reused => "running, reused",
            });
            Ok(action)
        }
        Err(e) => {
            step.fail("minikube failed");
            Err(e.into())
        }
    }
}

/// Enables the metrics-server addon. The addon command returns long before the resource
/// metrics API answers (about a minute on a fresh cluster), so `up` goes on with the rest and
/// waits for it later with [`wait_metrics_server`].
pub fn enable_metrics_server(s: &Session) -> anyhow::Result<()> {
    let mk = Minikube::new(&s.runner, &s.cfg.cluster.profile);
    let step = s.ui.step("metrics-server addon");
    if blocking(|| mk.addon_enabled("metrics-server"))? == Some(true) {
        step.done("already enabled");
        return Ok(());
    }
    let flags = crate::config::sources::metrics_server_addon_flags(&s.cfg);
    blocking(|| mk.enable_addon("metrics-server", &flags))?;
    step.done("enabled");
    Ok(())
}

/// Waits until `metrics.k8s.io` serves node metrics, within `timeouts.metrics_server_seconds`.
pub async fn wait_metrics_server(s: &Session, client: &kube::Client) -> anyhow::Result<()> {
    let step = s.ui.step("resource metrics API (metrics.k8s.io)");
    let deadline = Duration::from_secs(s.cfg.timeouts.metrics_server_seconds);
    if let Err(e) = kubeapi::wait_until(
        "the resource metrics API (metrics.k8s.io)",
        deadline,
        Duration::from_secs(5),
        || kubeapi::resource_metrics_missing(client),
    )
    .await
    {
        step.fail("not serving");
        return Err(e.context("hint: metrics-server often needs 1-3 minutes after the addon is enabled; check `kubectl -n kube-system logs deploy/metrics-server`"));
    }
    step.done("serving");
    Ok(())
}
