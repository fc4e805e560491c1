//! prometheus-adapter's placeholder substitution for an external metric, so that kscale can run
//! the exact query the adapter will run, in Prometheus, before (and without) the adapter.
//!
//! Mirrors `BuildExternal` in kubernetes-sigs/prometheus-adapter `pkg/naming/metrics_query.go`
//! (with `QueryForExternalSeries` in `pkg/naming/metric_namer.go` and the matcher helpers in
//! `pkg/client/helpers.go`):
//! - `<<.Series>>` is the Prometheus series name the rule's `seriesQuery` listed (not the
//!   renamed API metric name: `externalSeriesRegistry.QueryForMetric` passes `seriesName`);
//! - `<<.LabelMatchers>>` is the HPA's `metric.selector` requirements (sorted by key, as a parsed
//!   Kubernetes label selector is), then `<namespace label>="<HPA namespace>"` when the rule is
//!   namespaced, joined by `,` with no spaces;
//! - `<<.GroupBy>>` is always empty for external metrics and `<<.GroupBySlice>>` an empty slice
//!   (`BuildExternal(series, namespace, "", []string{}, selector)`), so `by (<<.GroupBy>>)`
//!   renders as `by ()`: one series per query, which is what the HPA needs;
//! - `<<.LabelValuesByName>>` maps each matched label to its value(s) joined by `|`.
//!
//! Values are quoted like Go's `%q`, which is what PromQL string literals accept.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// A label selector operator, as the Kubernetes label selector parser produces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOp {
    /// `key=value` (from `matchLabels`).
    Equals,
    /// `key!=value`.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
}

/// One requirement of an HPA's `metric.selector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label name.
    pub key: String,
    /// Operator.
    pub op: SelectorOp,
    /// Values (sorted and deduplicated on construction, as `Requirement.Values().List()` is).
    pub values: Vec<String>,
}

impl Requirement {
    /// A requirement with its values sorted and deduplicated.
    pub fn new(key: impl Into<String>, op: SelectorOp, values: &[&str]) -> Self {
        let mut values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        values.sort();
        values.dedup();
        Self {
            key: key.into(),
            op,
            values,
        }
    }
}

/// Converts an HPA `metric.selector` into requirements sorted by key, as
/// `metav1.LabelSelectorAsSelector` does before the HPA controller sends it.
pub fn requirements_from_selector(selector: &LabelSelector) -> anyhow::Result<Vec<Requirement>> {
    let mut reqs = Vec::new();
    for (k, v) in selector.match_labels.iter().flatten() {
        reqs.push(Requirement::new(
            k.as_str(),
            SelectorOp::Equals,
            &[v.as_str()],
        ));
    }
    for e in selector.match_expressions.iter().flatten() {
        let values: Vec<&str> = e.values.iter().flatten().map(String::as_str).collect();
        let op = match e.operator.as_str() {
            "In" => SelectorOp::In,
            "NotIn" => SelectorOp::NotIn,
            "Exists" => SelectorOp::Exists,
            "DoesNotExist" => SelectorOp::DoesNotExist,
            other => anyhow::bail!(
                "metric selector on {:?} uses operator {other:?}; Kubernetes allows In, NotIn, Exists, DoesNotExist",
                e.key
            ),
        };
        reqs.push(Requirement::new(e.key.as_str(), op, &values));
    }
    reqs.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(reqs)
}

/// What the adapter knows when it builds the query for one external-metrics request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRequest<'a> {
    /// The Prometheus series name the rule listed (`<<.Series>>`).
    pub series: &'a str,
    /// The HPA's namespace, and the Prometheus label the rule maps the `namespaces` resource to
    /// (`overrides: {namespace: {resource: namespace}}` gives `namespace`); `None` for a rule with
    /// `namespaced: false`.
    pub namespace: Option<(&'a str, &'a str)>,
    /// The HPA's `metric.selector`, sorted by key.
    pub selector: &'a [Requirement],
}

/// The template arguments of `BuildExternal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateArgs {
    /// `<<.Series>>`.
    pub series: String,
    /// `<<.LabelMatchers>>`.
    pub label_matchers: String,
    /// `<<.LabelValuesByName>>`.
    pub label_values_by_name: BTreeMap<String, String>,
    /// `<<.GroupBy>>` (always empty for external metrics).
    pub group_by: String,
    /// `<<.GroupBySlice>>` (always empty for external metrics).
    pub group_by_slice: Vec<String>,
}

impl TemplateArgs {
    /// The arguments prometheus-adapter computes for an external metric request.
    pub fn external(req: &ExternalRequest<'_>) -> anyhow::Result<Self> {
        let mut parts: Vec<Requirement> = req.selector.to_vec();
        if let Some((label, ns)) = req.namespace {
            parts.push(Requirement::new(label, SelectorOp::Equals, &[ns]));
        }
        let mut exprs = Vec::with_capacity(parts.len());
        let mut by_name = BTreeMap::new();
        for p in &parts {
            exprs.push(matcher(p)?);
            by_name.insert(p.key.clone(), p.values.join("|"));
        }
        Ok(Self {
            series: req.series.to_owned(),
            label_matchers: exprs.join(","),
            label_values_by_name: by_name,
            group_by: String::new(),
            group_by_slice: Vec::new(),
        })
    }
}

/// `processQueryParts`: the PromQL matcher for one requirement, or the adapter's refusal.
fn matcher(p: &Requirement) -> anyhow::Result<String> {
    use SelectorOp::*;
    anyhow::ensure!(
        !p.key.is_empty(),
        "a metric selector requirement has no label name"
    );
    let (op, value) = match (p.values.len(), p.op) {
        (0, Exists) => ("!=", String::new()),
        (0, DoesNotExist) => ("=", String::new()),
        (0, _) => anyhow::bail!("selector on {:?} has no values (malformed query)", p.key),
        (_, Exists | DoesNotExist) => {
            anyhow::bail!(
                "selector on {:?}: Exists/DoesNotExist take no values",
                p.key
            )
        }
        (1, Equals) => ("=", p.values[0].clone()),
        (1, NotEquals) => ("!=", p.values[0].clone()),
        (1, In) => ("=~", p.values[0].clone()),
        (1, NotIn) => ("!~", p.values[0].clone()),
        // A label has one value, so several values become a regex alternation.
        (_, Equals | In) => ("=~", p.values.join("|")),
        (_, NotEquals | NotIn) => ("!~", p.values.join("|")),
    };
    Ok(format!("{}{}{}", p.key, op, go_quote(&value)))
}

/// Go's `%q` for a string: PromQL accepts the same escapes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders a `metricsQuery` template (Go `text/template` with `<<`/`>>` delimiters).
///
/// Supported actions are the ones adapter rules use: `<<.Series>>`, `<<.LabelMatchers>>`,
/// `<<.GroupBy>>`, `<<.GroupBySlice>>`, `<<.LabelValuesByName>>` and
/// `<<index .LabelValuesByName "label">>`, with optional spaces inside the delimiters. Anything
/// else is refused rather than rendered differently from the adapter.
pub fn render(template: &str, args: &TemplateArgs) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("<<") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find(">>").ok_or_else(|| {
            anyhow::anyhow!("unclosed `<<` in metrics query template {template:?}")
        })?;
        out.push_str(&action(after[..end].trim(), args, template)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    anyhow::ensure!(
        !out.is_empty(),
        "empty query produced by metrics query template"
    );
    Ok(out)
}

fn action(body: &str, args: &TemplateArgs, template: &str) -> anyhow::Result<String> {
    Ok(match body {
        ".Series" => args.series.clone(),
        ".LabelMatchers" => args.label_matchers.clone(),
        ".GroupBy" => args.group_by.clone(),
        // Go prints a []string as `[a b]` and a map as `map[k:v k2:v2]`.
        ".GroupBySlice" => format!("[{}]", args.group_by_slice.join(" ")),
        ".LabelValuesByName" => {
            let kv: Vec<String> = args
                .label_values_by_name
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            format!("map[{}]", kv.join(" "))
        }
        other => {
            let key = other
                .strip_prefix("index .LabelValuesByName ")
                .map(str::trim)
                .and_then(|k| k.strip_prefix('"')?.strip_suffix('"'));
            match key {
                // A missing map key renders as the zero value, as in Go.
                Some(k) => args
                    .label_values_by_name
                    .get(k)
                    .cloned()
                    .unwrap_or_default(),
                None => anyhow::bail!(
                    "unsupported action `<<{other}>>` in metrics query template {template:?}; \
                     kscale substitutes .Series, .LabelMatchers, .GroupBy, .GroupBySlice, \
                     .LabelValuesByName and `index .LabelValuesByName \"label\"`"
                ),
            }
        }
    })
}

/// The query prometheus-adapter runs for a namespaced external metric requested from `namespace`
/// with no metric selector, the namespace label being `namespace` (kscale's rule).
pub fn namespaced_external_query(
    metrics_query: &str,
    series: &str,
    namespace: &str,
) -> anyhow::Result<String> {
    let args = TemplateArgs::external(&ExternalRequest {
        series,
        namespace: Some(("namespace", namespace)),
        selector: &[],
    })?;
    render(metrics_query, &args)
}

/// The Prometheus series name a `seriesQuery` such as `foo_count{job="x"}` lists; `None` when the
/// query selects by labels only (`{job="x"}`), where every listed series could be `<<.Series>>`.
pub fn series_name(series_query: &str) -> Option<&str> {
    let name = series_query
        .split(['{', ' '])
        .next()
        .map(str::trim)
        .unwrap_or("");
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    const MEAN: &str = "(sum(rate(inference_request_duration_seconds_sum{job=\"kscale-inference\",<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>) / sum(rate(inference_request_duration_seconds_count{job=\"kscale-inference\",<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)) > 0 or vector(0)";

    #[test]
    fn namespaced_rule_adds_the_namespace_matcher_and_groups_by_nothing() {
        let q =
            namespaced_external_query(MEAN, "inference_request_duration_seconds_count", "default")
                .unwrap();
        assert_eq!(
            q,
            "(sum(rate(inference_request_duration_seconds_sum{job=\"kscale-inference\",namespace=\"default\"}[2m])) by () / sum(rate(inference_request_duration_seconds_count{job=\"kscale-inference\",namespace=\"default\"}[2m])) by ()) > 0 or vector(0)"
        );
    }

    #[test]
    fn non_namespaced_rule_has_empty_matchers() {
        // The seed's rule (`namespaced: false`): `{job="python-app", }` is what the adapter sends.
        let args = TemplateArgs::external(&ExternalRequest {
            series: "s",
            namespace: None,
            selector: &[],
        })
        .unwrap();
        assert_eq!(
            render(
                "sum(x{job=\"a\", <<.LabelMatchers>>}) by (<<.GroupBy>>)",
                &args
            )
            .unwrap(),
            "sum(x{job=\"a\", }) by ()"
        );
    }

    #[test]
    fn series_is_the_listed_series_name() {
        let q =
            namespaced_external_query("rate(<<.Series>>{<<.LabelMatchers>>}[1m])", "a_total", "ns")
                .unwrap();
        assert_eq!(q, "rate(a_total{namespace=\"ns\"}[1m])");
    }

    #[test]
    fn selector_requirements_come_first_sorted_by_key_then_namespace() {
        let sel = LabelSelector {
            match_labels: Some([("zone".to_owned(), "a".to_owned())].into()),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "pod".into(),
                    operator: "In".into(),
                    values: Some(vec!["p2".into(), "p1".into()]),
                },
                LabelSelectorRequirement {
                    key: "code".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["503".into()]),
                },
                LabelSelectorRequirement {
                    key: "gpu".into(),
                    operator: "Exists".into(),
                    values: None,
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let reqs = requirements_from_selector(&sel).unwrap();
        let args = TemplateArgs::external(&ExternalRequest {
            series: "s",
            namespace: Some(("namespace", "prod")),
            selector: &reqs,
        })
        .unwrap();
        assert_eq!(
            args.label_matchers,
            "canary=\"\",code!~\"503\",gpu!=\"\",pod=~\"p1|p2\",zone=\"a\",namespace=\"prod\""
        );
        assert_eq!(args.label_values_by_name["pod"], "p1|p2");
        assert_eq!(args.label_values_by_name["namespace"], "prod");
        assert_eq!(
            render(
                "<<index .LabelValuesByName \"namespace\">>|<< .GroupBySlice >>",
                &args
            )
            .unwrap(),
            "prod|[]"
        );
        assert_eq!(
            render("<<index .LabelValuesByName \"absent\">>x", &args).unwrap(),
            "x"
        );
    }

    #[test]
    fn values_are_quoted_like_go() {
        assert_eq!(go_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(go_quote("é\u{1}"), "\"é\\x01\"");
    }

    #[test]
    fn unknown_actions_and_unclosed_delimiters_are_refused() {
        let args = TemplateArgs::external(&ExternalRequest {
            series: "s",
            namespace: None,
            selector: &[],
        })
        .unwrap();
        let e = render("x<<.Resource>>", &args).unwrap_err().to_string();
        assert!(e.contains("unsupported action `<<.Resource>>`"), "{e}");
        assert!(render("x<<.Series", &args).is_err());
        assert!(
            render("<<.GroupBy>>", &args).is_err(),
            "empty query is an error"
        );
    }

    #[test]
    fn malformed_selectors_are_refused() {
        let bad = Requirement::new("a", SelectorOp::In, &[]);
        assert!(matcher(&bad).is_err());
        let bad = Requirement::new("a", SelectorOp::Exists, &["x"]);
        assert!(matcher(&bad).is_err());
        let sel = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "a".into(),
                operator: "Gt".into(),
                values: Some(vec!["1".into()]),
            }]),
            ..Default::default()
        };
        assert!(requirements_from_selector(&sel).is_err());
    }

    #[test]
    fn series_name_of_a_series_query() {
        assert_eq!(
            series_name("inference_request_duration_seconds_count{job=\"kscale-inference\"}"),
            Some("inference_request_duration_seconds_count")
        );
        assert_eq!(series_name("{job=\"x\"}"), None);
    }
}
