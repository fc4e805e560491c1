//! Prometheus HTTP API answers (`/api/v1/query`), parsed the way prometheus-adapter reads them:
//! a vector of samples or a scalar, with `NaN` and `±Inf` kept as values (the adapter does not
//! filter them on the external path, which is the pitfall kscale guards against).

use std::collections::BTreeMap;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// One sample of an instant query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// The series labels.
    pub labels: BTreeMap<String, String>,
    /// The value (may be NaN or infinite).
    pub value: f64,
}

/// The result of an instant query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryResult {
    /// Samples; a scalar result is one sample without labels.
    pub samples: Vec<Sample>,
}

impl QueryResult {
    /// The single finite value, or why the adapter's HPA would not get one.
    pub fn single_finite(&self) -> Result<f64, SingleValueError> {
        match self.samples.as_slice() {
            [] => Err(SingleValueError::Empty),
            [s] if s.value.is_nan() => Err(SingleValueError::NaN),
            [s] if s.value.is_infinite() => Err(SingleValueError::Infinite(s.value)),
            [s] => Ok(s.value),
            many => Err(SingleValueError::Several(many.len())),
        }
    }
}

/// Why a query result is not exactly one finite number.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum SingleValueError {
    /// No series: the adapter answers `items: []`, the HPA reports FailedGetExternalMetric.
    #[error("the query returned no series (empty result)")]
    Empty,
    /// NaN (0/0 with no traffic): the adapter converts it to a garbage quantity.
    #[error("the query returned NaN")]
    NaN,
    /// ±Inf (division by zero).
    #[error("the query returned {0}")]
    Infinite(f64),
    /// Several series: the HPA sums them.
    #[error("the query returned {0} series instead of one")]
    Several(usize),
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Parses a Prometheus sample value: a decimal, `NaN`, `+Inf` or `-Inf`.
pub fn parse_value(s: &str) -> anyhow::Result<f64> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .with_context(|| format!("invalid sample value {s:?}")),
    }
}

/// Parses the body of `/api/v1/query`.
pub fn parse_query_response(body: &[u8]) -> anyhow::Result<QueryResult> {
    let env: Envelope = serde_json::from_slice(body).with_context(|| {
        format!(
            "Prometheus answered something that is not a query response: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
    })?;
    if env.status != "success" {
        anyhow::bail!(
            "Prometheus refused the query ({}): {}",
            env.error_type.unwrap_or_default(),
            env.error.unwrap_or_default()
        );
    }
    let data = env
        .data
        .context("Prometheus answered success without data")?;
    let samples = match data.result_type.as_str() {
        "vector" => {
            let v: Vec<VectorSample> =
                serde_json::from_value(data.result).context("malformed vector result")?;
            v.into_iter()
                .map(|s| {
                    Ok(Sample {
                        labels: s.metric,
                        value: parse_value(&s.value.1)?,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        }
        "scalar" => {
            let (_, v): (f64, String) =
                serde_json::from_value(data.result).context("malformed scalar result")?;
            vec![Sample {
                labels: BTreeMap::new(),
                value: parse_value(&v)?,
            }]
        }
        other => anyhow::bail!(
            "the query returned a {other} result; an adapter query must return a vector or a scalar"
        ),
    };
    Ok(QueryResult { samples })
}

/// Percent-encodes a query-string component (RFC 3986 unreserved characters stay).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The path and query of an instant query (relative to Prometheus's root).
pub fn query_path(promql: &str) -> String {
    format!("api/v1/query?query={}", encode_component(promql))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_scalar_nan_and_errors() {
        let r = parse_query_response(br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"namespace":"default"},"value":[1764270000.5,"10.25"]}]}}"#).unwrap();
        assert_eq!(r.single_finite(), Ok(10.25));
        assert_eq!(r.samples[0].labels["namespace"], "default");
        let r = parse_query_response(br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#).unwrap();
        assert_eq!(r.single_finite(), Err(SingleValueError::NaN));
        let r = parse_query_response(
            br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .unwrap();
        assert_eq!(r.single_finite(), Err(SingleValueError::Empty));
        let r = parse_query_response(
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}"#,
        )
        .unwrap();
        assert_eq!(
            r.single_finite(),
            Err(SingleValueError::Infinite(f64::INFINITY))
        );
        let e = parse_query_response(
            br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("parse error at char 3"), "{e}");
        assert!(parse_query_response(b"<html>").is_err());
    }

    #[test]
    fn encodes_promql() {
        assert_eq!(
            encode_component("sum(x{a=\"b\"}) by ()"),
            "sum%28x%7Ba%3D%22b%22%7D%29%20by%20%28%29"
        );
    }
}
