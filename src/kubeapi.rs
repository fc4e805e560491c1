//! Talking to the Kubernetes API through the `kube` crate: the client for a context,
//! server-side apply with the `kscale` field manager, deletes, and waits with deadlines that
//! explain what is not ready.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::{Api, Client};
use serde_json::Value;

use crate::manifest;

/// Field manager of every object kscale applies.
pub const FIELD_MANAGER: &str = "kscale";

/// The APIService prometheus-adapter serves external metrics through.
pub const EXTERNAL_METRICS_APISERVICE: &str = "v1beta1.external.metrics.k8s.io";

/// A client for `context` of the user's kubeconfig (`KUBECONFIG` or `~/.kube/config`).
pub async fn client_for(context: &str) -> anyhow::Result<Client> {
    let options = kube::config::KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let mut config = kube::Config::from_kubeconfig(&options).await.with_context(|| {
        format!("cannot load kube context {context:?} from your kubeconfig (check `kubectl config get-contexts`)")
    })?;
    // kube's default retry policy retries 429/503/504 up to 15 times with backoff growing to
    // minutes: one poll of an aggregated API that is not up yet (metrics.k8s.io answers 503 for
    // minutes after the addon is enabled) would stall far past its wait's deadline. kscale's
    // waits poll on their own, and every step is idempotent, so a transient error is reported.
    config.default_retry = false;
    Client::try_from(config)
        .with_context(|| format!("cannot build a Kubernetes client for context {context:?}"))
}

/// What a server-side apply did to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Applied {
    /// It did not exist.
    Created,
    /// It changed.
    Configured,
    /// It was already as rendered (same resourceVersion).
    Unchanged,
}

/// One kind of object kscale renders and applies, described by k8s-openapi's own constants so
/// that the API path, the scope and the typed check cannot drift apart.
/// The API resource (plural, scope) of the kinds kscale applies; no discovery round trip needed.
fn resource_of(gvk: &GroupVersionKind) -> anyhow::Result<(ApiResource, bool)> {
    let Some(known) = manifest::object_kind(&gvk.api_version(), &gvk.kind) else {
        anyhow::bail!(
            "kscale does not apply {}/{} objects",
            gvk.api_version(),
            gvk.kind
        );
    };
    Ok((
        ApiResource::from_gvk_with_plural(gvk, known.plural),
        known.namespaced,
    ))
}

fn api_for(client: &Client, obj: &DynamicObject) -> anyhow::Result<(Api<DynamicObject>, String)> {
    let types = obj
        .types
        .as_ref()
        .context("object without apiVersion/kind")?;
    let gvk = GroupVersionKind::try_from(types).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (ar, namespaced) = resource_of(&gvk)?;
    let name = obj
        .metadata
        .name
        .clone()
        .context("object without metadata.name")?;
    let api = if namespaced {
        let ns = obj
            .metadata
            .namespace
            .as_deref()
            .context("namespaced object without metadata.namespace")?;
        Api::namespaced_with(client.clone(), ns, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    Ok((api, name))
}

/// Applies and deletes objects through the API, each call within kscale's own deadline
/// (`timeouts.api_seconds`): kube's client has no overall deadline of its own, and its retries
/// are off (see [`client_for`]).
pub struct Applier<'c> {
    client: &'c Client,
    deadline: Duration,
}

impl<'c> Applier<'c> {
    /// An applier on `client` whose every call ends within `deadline`.
    pub fn new(client: &'c Client, deadline: Duration) -> Self {
        Self { client, deadline }
    }

    /// Server-side applies `obj` (field manager `kscale`, taking over fields others changed by
    /// hand, strict field validation).
    pub async fn apply(&self, obj: &DynamicObject) -> anyhow::Result<Applied> {
        let what = manifest::describe(obj);
        within(self.deadline, &format!("apply {what}"), async {
            let (api, name) = api_for(self.client, obj)?;
            let before = api
                .get_opt(&name)
                .await
                .with_context(|| format!("cannot read {what}"))?;
            // Strict: the API server refuses an unknown or duplicate field instead of dropping it.
            let params = PatchParams::apply(FIELD_MANAGER)
                .force()
                .validation_strict();
            let after = api
                .patch(&name, &params, &Patch::Apply(obj))
                .await
                .with_context(|| format!("the API server refused {what}"))?;
            Ok(match before {
                None => Applied::Created,
                Some(b) if b.metadata.resource_version == after.metadata.resource_version => {
                    Applied::Unchanged
                }
                Some(_) => Applied::Configured,
            })
        })
        .await
    }

    /// Deletes `obj`; `Ok(false)` when it was already gone.
    pub async fn delete(&self, obj: &DynamicObject) -> anyhow::Result<bool> {
        let what = manifest::describe(obj);
        within(self.deadline, &format!("delete {what}"), async {
            let (api, name) = api_for(self.client, obj)?;
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
                Err(e) => Err(e).with_context(|| format!("cannot delete {what}")),
            }
        })
        .await
    }
}

/// Runs one API call, or fails naming it and the key that sets its deadline.
async fn within<T>(
    deadline: Duration,
    what: &str,
    call: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(deadline, call).await {
        Ok(result) => result,
        Err(_) => anyhow::bail!(
            "{what}: the Kubernetes API did not answer within {} (timeouts.api_seconds; check \
             that the cluster is up: kubectl get --raw /readyz)",
            humantime::format_duration(deadline)
        ),
    }
}

/// One status condition of an object, whatever its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The machine-readable reason (empty when none).
    pub reason: String,
    /// The human-readable message (empty when none).
    pub message: String,
}

impl Condition {
    /// Whether the condition holds.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Objects whose status carries conditions (each kind has its own condition type).
pub trait HasConditions {
    /// The condition of type `type_`, if the status has it.
    fn condition(&self, type_: &str) -> Option<Condition>;
}

macro_rules! has_conditions {
    ($($kind:ty),*) => {$(
        impl HasConditions for $kind {
            fn condition(&self, type_: &str) -> Option<Condition> {
                let c = self
                    .status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .find(|c| c.type_ == type_)?;
                Some(Condition {
                    status: c.status.clone(),
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                })
            }
        }
    )*};
}

has_conditions!(
    APIService,
    Pod,
    Deployment,
    k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler
);

/// The one reading of an APIService's `Available` condition: `Ok` with the condition when it
/// holds, else why not (missing object aside, which callers word for their context).
pub fn apiservice_available(svc: &APIService) -> Result<Condition, Option<Condition>> {
    match svc.condition("Available") {
        Some(c) if c.is_true() => Ok(c),
        other => Err(other),
    }
}

/// Polls `check` every `every` until it returns `Ok(None)` (done) or the deadline passes; then
/// fails with the last reason it gave. Errors from `check` count as reasons, not as failures,
/// because components come up in any order.
pub async fn wait_until<F, Fut>(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<String>>>,
{
    let start = Instant::now();
    let mut last;
    loop {
        // A check that hangs (a server that accepts but never answers) must not outlive the wait.
        let left = deadline
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(100));
        match tokio::time::timeout(left, check()).await {
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(reason))) => last = reason,
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => last = format!("no answer within {}s", left.as_secs_f64().ceil()),
        }
        if start.elapsed() >= deadline {
            anyhow::bail!("{what} was not ready after {}s: {last}", deadline.as_secs());
        }
        tokio::time::sleep(
            every
                .min(deadline.saturating_sub(start.elapsed()))
                .max(Duration::from_millis(50)),
        )
        .await;
    }
}

/// Why the APIService is not Available, or `None` when it is.
pub async fn apiservice_unavailable(client: &Client, name: &str) -> anyhow::Result<Option<String>> {
    let api: Api<APIService> = Api::all(client.clone());
    let Some(svc) = api.get_opt(name).await? else {
        return Ok(Some(format!(
            "APIService {name} does not exist (prometheus-adapter creates it when rules.external is set)"
        )));
    };
    Ok(match apiservice_available(&svc) {
        Ok(_) => None,
        Err(Some(c)) => Some(format!(
            "APIService {name} is not Available: {} {}",
            c.reason, c.message
        )),
        Err(None) => Some(format!("APIService {name} has no Available condition yet")),
    })
}

/// The HPA controller's sync period as the cluster runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPeriod {
    /// kube-controller-manager's `--horizontal-pod-autoscaler-sync-period`.
    Set(Duration),
    /// The flag is not given: Kubernetes' default (15 s).
    Default,
    /// The controller manager is not a pod kscale can read (a managed control plane).
    Unknown,
}

impl std::fmt::Display for SyncPeriod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncPeriod::Set(d) => write!(
                f,
                "every {} (kube-controller-manager)",
                humantime::format_duration(*d)
            ),
            SyncPeriod::Default => write!(
                f,
                "every {} s (Kubernetes' default)",
                crate::hpa::SYNC_PERIOD_SECONDS
            ),
            SyncPeriod::Unknown => write!(
                f,
                "at the cluster's own period (15 s by default; its controller manager is not visible)"
            ),
        }
    }
}

/// Reads the HPA sync period from the kube-controller-manager pod of a kubeadm-style control
/// plane (minikube's, kind's), instead of assuming Kubernetes' default.
pub async fn hpa_sync_period(client: &Client) -> SyncPeriod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let params = ListParams::default().labels("component=kube-controller-manager");
    let listed = tokio::time::timeout(Duration::from_secs(5), pods.list(&params)).await;
    match listed {
        Ok(Ok(list)) => list
            .items
            .first()
            .map_or(SyncPeriod::Unknown, sync_period_of),
        _ => SyncPeriod::Unknown,
    }
}

/// The sync period a kube-controller-manager pod runs with.
fn sync_period_of(pod: &Pod) -> SyncPeriod {
    const FLAG: &str = "--horizontal-pod-autoscaler-sync-period=";
    let words = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.command.iter().flatten().chain(c.args.iter().flatten()));
    for word in words {
        if let Some(value) = word.strip_prefix(FLAG) {
            return humantime::parse_duration(value).map_or(SyncPeriod::Unknown, SyncPeriod::Set);
        }
    }
    SyncPeriod::Default
}

/// Why the resource metrics API (metrics-server) does not serve node metrics yet, or `None`.
pub async fn resource_metrics_missing(client: &Client) -> anyhow::Result<Option<String>> {
    let req = http::Request::get("/apis/metrics.k8s.io/v1beta1/nodes").body(Vec::new())?;
    match client.request::<Value>(req).await {
        Ok(v) => {
            let n = v["items"].as_array().map_or(0, Vec::len);
            Ok(if n > 0 {
                None
            } else {
                Some("metrics.k8s.io answers but has no node metrics yet".into())
            })
        }
        Err(e) => Ok(Some(format!("metrics.k8s.io does not answer yet: {e}"))),
    }
}

/// Why a Deployment's rollout is not complete, or `None` when it is (the `kubectl rollout
/// status` rule: the controller has seen the current generation, and every replica is updated
/// and available).
pub async fn rollout_incomplete(
    client: &Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let Some(d) = api.get_opt(name).await? else {
        return Ok(Some(format!(
            "Deployment {namespace}/{name} does not exist"
        )));
    };
    Ok(rollout_state(&d))
}

/// The rollout rule on one Deployment object.
pub fn rollout_state(d: &Deployment) -> Option<String> {
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0);
    if observed < generation {
        return Some(format!(
            "the controller has not seen generation {generation} yet (observed {observed})"
        ));
    }
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if updated < want {
        return Some(format!("{updated} of {want} replicas updated"));
    }
    if total > updated {
        return Some(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < updated {
        return Some(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    None
}

/// How long one read of the API may take where kscale diagnoses or checks (kube's own read
/// timeout is minutes): a diagnosis after a deadline must not wait that long again.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// What is wrong with the app's pods: phase, container states and recent warning events.
pub async fn diagnose_pods(client: &Client, namespace: &str, selector: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let listed = tokio::time::timeout(
        REQUEST_TIMEOUT,
        pods.list(&ListParams::default().labels(selector)),
    )
    .await;
    let list = match listed {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => return format!("(cannot list pods: {e})"),
        Err(_) => {
            return format!(
                "(cannot list pods: no answer within {} s)",
                REQUEST_TIMEOUT.as_secs()
            );
        }
    };
    if list.items.is_empty() {
        return format!(
            "no pod matches {selector} in {namespace}: check the ReplicaSet's events (`kubectl describe rs -n {namespace}`)"
        );
    }
    let mut lines = Vec::new();
    for pod in list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let problem = pod_problem(&pod);
        lines.push(format!("pod {name}: {}; fix: {}", problem.why, problem.fix));
        let fields = format!("involvedObject.name={name}");
        let recent = tokio::time::timeout(
            REQUEST_TIMEOUT,
            events.list(&ListParams::default().fields(&fields)),
        )
        .await;
        if let Ok(Ok(evs)) = recent {
            for ev in evs
                .items
                .iter()
                .rev()
                .filter(|e| e.type_.as_deref() == Some("Warning"))
                .take(3)
            {
                lines.push(format!(
                    "  event {}: {}",
                    ev.reason.clone().unwrap_or_default(),
                    ev.message.clone().unwrap_or_default().trim()
                ));
            }
        }
    }
    lines.join("\n")
}

/// Why a pod is not ready and what to do about it: the one diagnosis `up`/`deploy` waits and
/// `kscale metrics` stage 1 both print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodProblem {
    /// Phase, then each container's waiting/terminated/unready state (or the failing conditions).
    pub why: String,
    /// The next step, with the pod's namespace and name filled in.
    pub fix: String,
}

/// Diagnoses a pod from its phase, container states and conditions.
pub fn pod_problem(pod: &Pod) -> PodProblem {
    let status = pod.status.as_ref();
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".into());
    let mut reasons = Vec::new();
    for cs in status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            reasons.push(format!(
                "container {} waiting: {}{}",
                cs.name,
                w.reason.clone().unwrap_or_default(),
                w.message
                    .as_ref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ));
        } else if let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) {
            reasons.push(format!(
                "container {} terminated: {} (exit {})",
                cs.name,
                t.reason.clone().unwrap_or_default(),
                t.exit_code
            ));
        } else if !cs.ready {
            reasons.push(format!(
                "container {} running but not ready (readiness probe /readyz, restarts {})",
                cs.name, cs.restart_count
            ));
        }
    }
    if reasons.is_empty() {
        for c in status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.status != "True")
        {
            reasons.push(format!(
                "{} {}{}",
                c.type_,
                c.reason.clone().unwrap_or_default(),
                c.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    let why = if reasons.is_empty() {
        format!("phase {phase}")
    } else {
        format!("phase {phase}, {}", reasons.join("; "))
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let fix = if why.contains("ImagePull") || why.contains("ErrImageNeverPull") {
        "the image is missing on the pod's node: re-run `kscale deploy` (on minikube it loads the \
         image into every node with `minikube image load`), or on other clusters pass --registry, \
         or --image with a pullable reference"
            .to_owned()
    } else if why.contains("CrashLoopBackOff") || why.contains("terminated") {
        format!("read the server's log: kubectl -n {ns} logs {name} --previous")
    } else if why.contains("Unschedulable") || phase == "Pending" {
        format!(
            "kubectl -n {ns} describe pod {name} (look at Events: not enough CPU/memory on the nodes?)"
        )
    } else {
        format!("wait for the readiness probe, or kubectl -n {ns} describe pod {name}")
    };
    PodProblem { why, fix }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "inference-1", "namespace": "kscale"},
            "status": status,
        }))
        .expect("pod")
    }

    #[test]
    fn object_kinds_come_from_k8s_openapi() {
        let table: Vec<_> = manifest::object_kinds()
            .iter()
            .map(|k| (k.api_version, k.kind, k.plural, k.namespaced))
            .collect();
        assert_eq!(
            table,
            [
                ("apps/v1", "Deployment", "deployments", true),
                ("v1", "Service", "services", true),
                ("v1", "Secret", "secrets", true),
                ("v1", "ConfigMap", "configmaps", true),
                ("v1", "Namespace", "namespaces", false),
                (
                    "autoscaling/v2",
                    "HorizontalPodAutoscaler",
                    "horizontalpodautoscalers",
                    true
                ),
                (
                    "policy/v1",
                    "PodDisruptionBudget",
                    "poddisruptionbudgets",
                    true
                ),
            ]
        );
        let gvk = GroupVersionKind::gvk("batch", "v1", "Job");
        assert!(resource_of(&gvk).is_err());
        let gvk = GroupVersionKind::gvk("", "v1", "Namespace");
        let (ar, namespaced) = resource_of(&gvk).expect("known");
        assert_eq!((ar.plural.as_str(), namespaced), ("namespaces", false));
    }

    #[test]
    fn pod_problem_names_the_state_and_a_fix_for_this_pod() {
        let waiting = pod(
            serde_json::json!({"phase": "Pending", "containerStatuses": [{
            "name": "server", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
            "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "not present"}}}]}),
        );
        let p = pod_problem(&waiting);
        assert_eq!(
            p.why,
            "phase Pending, container server waiting: ErrImageNeverPull (not present)"
        );
        assert!(p.fix.contains("minikube image load"), "{}", p.fix);
        let crashed = pod(
            serde_json::json!({"phase": "Running", "containerStatuses": [{
            "name": "server", "ready": false, "restartCount": 3, "image": "i", "imageID": "",
            "state": {"terminated": {"reason": "Error", "exitCode": 2}}}]}),
        );
        let p = pod_problem(&crashed);
        assert_eq!(
            p.why,
            "phase Running, container server terminated: Error (exit 2)"
        );
        assert_eq!(
            p.fix,
            "read the server's log: kubectl -n kscale logs inference-1 --previous"
        );
        let unscheduled = pod(serde_json::json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/2 nodes are available"}]}));
        let p = pod_problem(&unscheduled);
        assert_eq!(
            p.why,
            "phase Pending, PodScheduled Unschedulable: 0/2 nodes are available"
        );
        assert!(
            p.fix
                .starts_with("kubectl -n kscale describe pod inference-1"),
            "{}",
            p.fix
        );
    }

    fn deployment(generation: i64, status: Value) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "inference", "generation": generation},
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": status,
        }))
        .expect("deployment")
    }

    #[tokio::test]
    async fn a_hanging_check_does_not_outlive_its_wait() {
        let start = Instant::now();
        let err = wait_until(
            "a hanging thing",
            Duration::from_millis(200),
            Duration::from_millis(50),
            std::future::pending::<anyhow::Result<Option<String>>>,
        )
        .await
        .expect_err("never ready");
        assert!(err.to_string().contains("no answer within"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn the_sync_period_is_read_from_the_controller_manager_pod() {
        let manager = |command: Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "kube-controller-manager-kscale", "namespace": "kube-system"},
                "spec": {"containers": [{"name": "kube-controller-manager", "command": command}]},
            }))
            .expect("pod")
        };
        let set = manager(serde_json::json!([
            "kube-controller-manager",
            "--leader-elect=false",
            "--horizontal-pod-autoscaler-sync-period=2s"
        ]));
        assert_eq!(
            sync_period_of(&set),
            SyncPeriod::Set(Duration::from_secs(2))
        );
        assert_eq!(
            SyncPeriod::Set(Duration::from_secs(2)).to_string(),
            "every 2s (kube-controller-manager)"
        );
        let default = manager(serde_json::json!([
            "kube-controller-manager",
            "--leader-elect=true"
        ]));
        assert_eq!(sync_period_of(&default), SyncPeriod::Default);
        assert!(SyncPeriod::Default.to_string().contains("15 s"));
        let garbled = manager(serde_json::json!([
            "--horizontal-pod-autoscaler-sync-period=soon"
        ]));
        assert_eq!(sync_period_of(&garbled), SyncPeriod::Unknown);
    }

    #[tokio::test]
    async fn an_api_server_that_never_answers_does_not_hold_an_apply_or_delete() {
        // Accepts connections and reads, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let config = kube::Config::new(url.parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let obj = manifest::object_from_yaml(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: kscale\n",
        )
        .expect("object");
        let applier = Applier::new(&client, Duration::from_millis(300));
        let err = applier.apply(&obj).await.expect_err("no answer");
        assert!(
            err.to_string().contains("apply ConfigMap kscale/c")
                && err
                    .to_string()
                    .contains("within 300ms (timeouts.api_seconds"),
            "{err}"
        );
        let err = applier.delete(&obj).await.expect_err("no answer");
        assert!(
            err.to_string().contains("delete ConfigMap kscale/c"),
            "{err}"
        );
        silent.abort();
    }

    #[test]
    fn rollout_waits_for_the_observed_generation() {
        let stale = deployment(
            3,
            serde_json::json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert!(rollout_state(&stale).is_some_and(|r| r.contains("generation 3")));
        let rolling = deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert!(rollout_state(&rolling).is_some_and(|r| r.contains("old replicas")));
        let unavailable = deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}),
        );
        assert!(rollout_state(&unavailable).is_some_and(|r| r.contains("1 of 2")));
        let done = deployment(
            3,
            serde_json::json!({"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(rollout_state(&done), None);
    }
}
