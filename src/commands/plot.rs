//! `kscale plot`: a picture of recorded timelines.

use crate::cli::PlotArgs;
use crate::session::Session;

/// Draws the files and reports the picture's path.
pub fn exec(s: &Session, args: &PlotArgs) -> anyhow::Result<u8> {
    let path = crate::plot::run(args, s.cfg.metric.profile)?;
    s.ui.result(&format!("wrote {}", path.display()));
    s.ui.result_json(&serde_json::json!({ "file": path }));
    Ok(super::SUCCESS)
}
