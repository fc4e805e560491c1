//! Typed settings of the environments xtask prepares, read from `cargo xtask <area> env
//! --format json` (one JSON object on stdout) instead of scraping `export` lines: the minikube
//! kit's ([`KitSettings`]) and the control-plane harness's ([`ControlPlaneSettings`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::xtask_output;

/// What `cargo xtask kit env` sets; a missing variable fails the read with its name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct KitSettings {
    /// `MINIKUBE_HOME`.
    pub minikube_home: PathBuf,
    /// `minikube start` flags the kit needs, space-separated.
    pub kscale_kit_start_flags: String,
    /// `minikube addons enable metrics-server` flags for the kit's image, space-separated.
    pub kscale_kit_metrics_server_flags: String,
    /// The busybox image built by the kit.
    pub kscale_kit_busybox_image: String,
    /// The kit's llama.cpp `llama-server` image.
    pub kscale_kit_llama_image: String,
    /// The path of the tiny model inside the llama.cpp image.
    pub kscale_kit_llama_model: String,
}

/// What `cargo xtask controlplane env` sets.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub struct ControlPlaneSettings {
    /// The kubeconfig with the `kscale-harness` context.
    pub kubeconfig: PathBuf,
    /// The folder of the pinned helm.
    pub kscale_harness_helm_dir: PathBuf,
}

/// The settings `cargo xtask <area> env --format json` prints (`kit` or `controlplane`): the
/// typed `T` and every variable by name. `Err` when the command fails (the environment is not
/// there); a panic when it succeeds but prints no such object (a bug, never a skip).
pub fn xtask_env<T: DeserializeOwned>(area: &str) -> Result<(T, BTreeMap<String, String>), String> {
    let args = [area, "env", "--format", "json"];
    let (stdout, _) = xtask_output(&args)?;
    let unreadable = |what: &str, e: serde_json::Error| -> String {
        format!(
            "`cargo xtask {}` printed no {what}: {e}:\n{stdout}",
            args.join(" ")
        )
    };
    let all = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{}", unreadable("JSON object of strings", e)));
    let typed = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{}", unreadable("expected settings", e)));
    Ok((typed, all))
}
