//! `kscale metrics`: every link of the metric chain, checked (and watched).

use crate::cli::MetricsArgs;
use crate::session::Session;

/// Checks the chain; exit code 1 when a stage fails. With `--dry-run` it only says what it
/// would check: like every probe, the queries are skipped.
pub async fn exec(s: &Session, args: &MetricsArgs) -> anyhow::Result<u8> {
    if s.runner.dry_run() {
        let plan = format!(
            "metrics: would check the six links of the metric chain on context {} (dry-run: nothing queried)",
            s.context
        );
        s.ui.plan(&plan);
        s.ui.result_json(&serde_json::json!({ "dry_run": true, "plan": [plan] }));
        s.ui.result("dry-run: nothing checked");
        return Ok(super::SUCCESS);
    }
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
