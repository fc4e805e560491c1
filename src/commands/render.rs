//! `kscale render`: every manifest and values file, to stdout or one file each.

use anyhow::Context as _;

use crate::cli::RenderArgs;
use crate::render;
use crate::session::Session;

/// `kscale render`: renders without touching a cluster.
pub fn exec(s: &Session, args: &RenderArgs) -> anyhow::Result<u8> {
    let image = match crate::app::chosen_image(&s.cfg, args.image.as_deref()) {
        Some(i) => i,
        None => crate::app::content_tag(&crate::app::default_source_dir(), s.cfg.app.image_build)?,
    };
    let preset = s.cfg.app.server.preset();
    if preset.needs_model() && s.cfg.app.model.trim().is_empty() {
        s.ui.warn(&format!(
            "app.model is not set: rendered {} with the placeholder model {} (up and deploy refuse it)",
            preset.title,
            crate::config::servers::PLACEHOLDER_MODEL
        ));
    }
    let files = s.render(&image)?;
    match &args.output_dir {
        None if s.ui.json() => s.ui.result_json(&serde_json::to_value(&files)?),
        None => s.ui.result_raw(&render::to_stream(&files))?,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for f in &files {
                let path = dir.join(&f.name);
                std::fs::write(&path, &f.content)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                s.ui.result(&path.display().to_string());
            }
            s.ui.result_json(&serde_json::json!({
                "files": files.iter().map(|f| dir.join(&f.name).display().to_string()).collect::<Vec<_>>()
            }));
        }
    }
    Ok(super::SUCCESS)
}
