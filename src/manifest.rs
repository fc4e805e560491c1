//! Kubernetes manifests as data: YAML into JSON values, the kinds of object kscale renders and
//! applies (from k8s-openapi's `Resource` constants), and their typed round trip. `render` checks
//! its output with these; `kubeapi` applies and deletes with them.

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::DynamicObject;
use serde_json::Value;

/// Parses one YAML document into JSON values (the form the kube crate and k8s-openapi use).
pub fn parse_yaml(text: &str) -> anyhow::Result<Value> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// One kind of object kscale renders and applies.
#[derive(Clone, Copy)]
pub struct ObjectKind {
    /// `apiVersion` as written in a manifest (`apps/v1`).
    pub api_version: &'static str,
    /// `kind` (`Deployment`).
    pub kind: &'static str,
    /// The resource's plural in the URL (`deployments`).
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Deserializes into the k8s-openapi type and serializes back (what `render::check_object`
    /// compares with the input to find fields the type does not know).
    pub round_trip: fn(&Value) -> anyhow::Result<Value>,
}

impl ObjectKind {
    fn of<K>() -> Self
    where
        K: k8s_openapi::Resource + serde::de::DeserializeOwned + serde::Serialize + 'static,
    {
        Self {
            api_version: K::API_VERSION,
            kind: K::KIND,
            plural: K::URL_PATH_SEGMENT,
            namespaced: std::any::TypeId::of::<K::Scope>()
                == std::any::TypeId::of::<k8s_openapi::NamespaceResourceScope>(),
            round_trip: round_trip::<K>,
        }
    }
}

/// Every kind kscale renders and applies.
pub(crate) fn object_kinds() -> [ObjectKind; 7] {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    [
        ObjectKind::of::<Deployment>(),
        ObjectKind::of::<Service>(),
        ObjectKind::of::<Secret>(),
        ObjectKind::of::<ConfigMap>(),
        ObjectKind::of::<Namespace>(),
        ObjectKind::of::<HorizontalPodAutoscaler>(),
        ObjectKind::of::<PodDisruptionBudget>(),
    ]
}

/// The kind kscale knows for `apiVersion` and `kind`, if any.
pub fn object_kind(api_version: &str, kind: &str) -> Option<ObjectKind> {
    object_kinds()
        .into_iter()
        .find(|k| k.api_version == api_version && k.kind == kind)
}

fn round_trip<T>(value: &Value) -> anyhow::Result<Value>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T =
        serde_path_to_error::deserialize(value.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(serde_json::to_value(&typed)?)
}

/// A description like `Deployment default/inference`.
pub fn describe(obj: &DynamicObject) -> String {
    let kind = obj
        .types
        .as_ref()
        .map(|t| t.kind.as_str())
        .unwrap_or("object");
    match (&obj.metadata.namespace, &obj.metadata.name) {
        (Some(ns), Some(n)) => format!("{kind} {ns}/{n}"),
        (None, Some(n)) => format!("{kind} {n}"),
        _ => kind.to_string(),
    }
}

/// Parses a rendered manifest into an object ready for apply.
pub fn object_from_yaml(text: &str) -> anyhow::Result<DynamicObject> {
    let value: Value = parse_yaml(text)?;
    serde_json::from_value(value).context("not a Kubernetes object")
}
