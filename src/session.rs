//! One invocation of kscale: its validated configuration, output layer, process runner, templates
//! and the cluster it targets.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::cli::GlobalArgs;
use crate::config::{Config, Layers};
use crate::render::Templates;
use crate::tools::{Execution, Runner};
use crate::ui::Ui;

/// Everything a command needs.
pub struct Session {
    /// The validated configuration.
    pub cfg: Config,
    /// Output layer.
    pub ui: Ui,
    /// External processes.
    pub runner: Runner,
    /// Manifest templates.
    pub templates: Templates,
    /// The kube context every call targets.
    pub context: String,
    /// Whether kscale manages the cluster (a minikube profile) rather than a given `--context`.
    pub minikube: bool,
    /// Whether `--templates` replaced built-in templates.
    templates_overridden: bool,
}

impl Session {
    /// Loads and validates the configuration from its layers. Nothing touches a cluster here, so
    /// bad configuration is refused before anything changes.
    pub fn from_args(global: &GlobalArgs) -> anyhow::Result<Self> {
        let ui = Ui::detect(global.output);
        ui.set_verbose(global.verbose > 0);
        ui.set_dry_run(global.dry_run);
        let cfg = load_config(global)?;
        let templates = match &global.templates {
            Some(dir) => Templates::with_overrides(dir)?,
            None => Templates::embedded(),
        };
        let (context, minikube) = match &global.context {
            Some(c) if !c.is_empty() => (c.clone(), false),
            // minikube names the kube context after the profile.
            _ => (cfg.cluster.profile.clone(), true),
        };
        let execution = if global.dry_run {
            Execution::DryRun
        } else {
            Execution::Real
        };
        let runner = Runner::new(ui.clone(), execution).with_timeouts(cfg.timeouts.clone());
        Ok(Self {
            cfg,
            ui,
            runner,
            templates,
            context,
            minikube,
            templates_overridden: global.templates.is_some(),
        })
    }

    /// Every manifest and values file for `image`. With `--templates` a failure is the user's
    /// templates' (bad input, exit 2); with the built-in ones it is kscale's own.
    pub fn render(&self, image: &str) -> anyhow::Result<Vec<crate::render::RenderedFile>> {
        let files = crate::render::render_all(&self.cfg, &self.templates, image);
        if self.templates_overridden {
            files.map_err(crate::bad_input)
        } else {
            files
        }
    }

    /// Applies and deletes through `client`, each call within `timeouts.api_seconds`.
    pub fn applier<'c>(&self, client: &'c kube::Client) -> crate::kubeapi::Applier<'c> {
        crate::kubeapi::Applier::new(
            client,
            std::time::Duration::from_secs(self.cfg.timeouts.api_seconds),
        )
    }

    /// A Kubernetes client for the session's context.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        crate::kubeapi::client_for(&self.context).await
    }
}

/// The configuration from defaults, the config file, `KSCALE_*` variables and flags, validated.
pub fn load_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let path: Option<PathBuf> = match &global.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from("kscale.toml")).filter(|p| p.is_file()),
    };
    let file = match path {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read config file {}", p.display()))?;
            Some((p, text))
        }
        None => None,
    };
    let mut sets = global.sets.clone();
    if let Some(server) = global.server {
        sets.push(("app.server".into(), server.as_str().into()));
    }
    if let Some(profile) = &global.profile {
        sets.push(("cluster.profile".into(), profile.clone()));
    }
    let cfg = Config::load(&Layers {
        file,
        env: config_env(std::env::vars_os())?,
        sets,
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// The environment as text for [`Layers::env`]. A variable that is not UTF-8 is skipped unless
/// it is one of kscale's (`KSCALE_*`), which is refused by name: `std::env::vars` would panic.
pub fn config_env<I>(vars: I) -> anyhow::Result<Vec<(String, String)>>
where
    I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
{
    let mut out = Vec::new();
    for (name, value) in vars {
        match (name.into_string(), value.into_string()) {
            (Ok(name), Ok(value)) => out.push((name, value)),
            (Ok(name), Err(_)) if name.starts_with("KSCALE_") => anyhow::bail!(
                "environment variable {name} is not valid UTF-8: set it to text (e.g. KSCALE_APP_WORKERS=2) or unset it"
            ),
            (Err(name), _) if name.as_encoded_bytes().starts_with(b"KSCALE_") => anyhow::bail!(
                "an environment variable named {} is not valid UTF-8: unset it",
                name.to_string_lossy()
            ),
            // Other programs' variables are none of kscale's business.
            _ => {}
        }
    }
    Ok(out)
}

/// Runs blocking work (external processes) without stalling the async runtime.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}
