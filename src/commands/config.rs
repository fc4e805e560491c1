//! `kscale config`: the effective configuration after every layer.

use crate::session::Session;

/// Prints the configuration as TOML, or as one JSON document.
pub fn exec(s: &Session) -> anyhow::Result<u8> {
    s.ui.result_json(&s.cfg.to_display_json()?);
    s.ui.result(&s.cfg.to_display_toml()?);
    Ok(super::SUCCESS)
}
