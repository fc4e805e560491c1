//! `kscale metrics`: every link of the metric chain, checked (and watched).

use crate::cli::MetricsArgs;
use crate::session::Session;

/// Checks the chain; exit code 1 when a stage fails.
pub async fn exec(s: &Session, args: &MetricsArgs) -> anyhow::Result<u8> {
    // kube's default retry would retry 503s for minutes; the check has its own --wait.
    let client = s.client().await?;
    let report = crate::metrics::run_with(
        client,
        &s.cfg,
        args,
        &s.ui,
        crate::metrics::predict::metric_proposal,
    )
    .await?;
    Ok(report.exit_code())
}
