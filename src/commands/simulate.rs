//! `kscale simulate`: the autoscaler on a load profile, before deploying.

use crate::cli::SimulateArgs;
use crate::session::Session;

/// Simulates and reports (see [`crate::simulate::run`] for where each output goes).
pub fn exec(s: &Session, args: &SimulateArgs) -> anyhow::Result<u8> {
    crate::simulate::run(&s.cfg, args, &s.ui)?;
    Ok(super::SUCCESS)
}
