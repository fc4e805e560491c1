//! The Grafana dashboard kscale ships (`templates/grafana-dashboard.json`), rendered for one app.
//!
//! The template is valid JSON in itself: its tera placeholders (`{{ app.namespace }}`,
//! `{{ app.name }}`, `{{ metric.name }}`, `{{ metric.target }}`) sit inside JSON strings, and
//! Grafana's own `{{pod}}` legends are kept out of tera with `{% raw %}`. It goes into a ConfigMap
//! labelled `grafana_dashboard: "1"`, which the kube-prometheus-stack Grafana sidecar loads.

use anyhow::Context as _;
use serde::Serialize;

use crate::config::Config;

/// The dashboard template, as shipped.
pub const TEMPLATE: &str = include_str!("../templates/grafana-dashboard.json");

/// Renders the dashboard for `config`'s app and metric. The result is the dashboard JSON.
pub fn render(config: &Config) -> anyhow::Result<String> {
    // The same context, templates and checks as every other rendered file.
    let files = crate::render::render_all(
        config,
        &crate::render::Templates::embedded(),
        "kscale-server:dashboard",
    )?;
    files
        .into_iter()
        .find(|f| f.kind == crate::render::FileKind::GrafanaDashboard)
        .map(|f| f.content)
        .context("the Grafana dashboard was not rendered")
}

/// One PromQL query of a panel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PanelQuery {
    /// The panel's title.
    pub panel: String,
    /// The query's legend (`legendFormat`).
    pub legend: String,
    /// The PromQL, with Grafana's variables replaced.
    pub expr: String,
}

/// Every panel's PromQL in a rendered dashboard, with Grafana's built-in interval variables
/// (`$__rate_interval`, `$__interval`, `$__range`) replaced by `interval` (e.g. `1m`) so that
/// Prometheus itself can run them.
pub fn panel_queries(rendered: &str, interval: &str) -> anyhow::Result<Vec<PanelQuery>> {
    let json: serde_json::Value =
        serde_json::from_str(rendered).context("the dashboard is not valid JSON")?;
    let panels = json
        .get("panels")
        .and_then(|p| p.as_array())
        .context("the dashboard has no `panels` list")?;
    let mut out = Vec::new();
    for panel in panels {
        let title = panel
            .get("title")
            .and_then(|t| t.as_str())
            .unwrap_or_default();
        let targets = panel
            .get("targets")
            .and_then(|t| t.as_array())
            .with_context(|| format!("panel `{title}` has no targets"))?;
        for target in targets {
            let expr = target
                .get("expr")
                .and_then(|e| e.as_str())
                .with_context(|| format!("a target of panel `{title}` has no `expr`"))?;
            out.push(PanelQuery {
                panel: title.to_owned(),
                legend: target
                    .get("legendFormat")
                    .and_then(|l| l.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                expr: expr
                    .replace("$__rate_interval", interval)
                    .replace("$__interval", interval)
                    .replace("$__range", interval),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_json_before_rendering() {
        serde_json::from_str::<serde_json::Value>(TEMPLATE).unwrap();
    }

    #[test]
    fn rendering_fills_every_placeholder() {
        let mut config = Config::default();
        config.app.namespace = "ai".into();
        config.app.name = "llm".into();
        config.metric.target = 7.5;
        let text = render(&config).unwrap();
        assert!(!text.contains("{{ "), "a tera placeholder is left: {text}");
        assert!(!text.contains("{%"), "a tera tag is left");
        let queries = panel_queries(&text, "1m").unwrap();
        assert!(
            queries.iter().all(|q| !q.expr.contains('$')),
            "{queries:#?}"
        );
        assert!(queries.iter().any(|q| q.expr == "vector(7.5)"));
        assert!(
            queries.iter().any(|q| q.legend == "{{pod}}"),
            "Grafana legends survive"
        );
        for q in queries.iter().filter(|q| q.expr.contains("inference_")) {
            assert!(
                q.expr.contains(r#"namespace="ai""#)
                    && q.expr.contains(r#"job="kscale-inference""#),
                "{q:?}"
            );
        }
    }
}
