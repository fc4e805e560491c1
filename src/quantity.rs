//! Kubernetes quantities (`10050m`, `12`, `1500k`, `1.5Gi`, `1e3`): the one place kscale parses,
//! formats and converts them, for the external metrics API, the HPA, rendering and config checks.

/// Parses a Kubernetes quantity into a float.
pub fn parse(q: &str) -> anyhow::Result<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid quantity {q:?}"))?;
    let factor = factor(suffix, q)?;
    Ok(num * factor)
}

/// The multiplier of a suffix (`m`, `Ki`, `e3`, ...).
fn factor(suffix: &str, q: &str) -> anyhow::Result<f64> {
    Ok(match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..]
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid quantity exponent in {q:?}"))?;
            10f64.powi(exp)
        }
        _ => anyhow::bail!("invalid quantity suffix in {q:?}"),
    })
}

/// prometheus-adapter converts NaN with `int64(NaN*1000)`: on amd64 that is the smallest int64,
/// printed as `-9223372036854775808m`. Any value this negative is that conversion.
pub fn is_converted_nan(v: f64) -> bool {
    v <= -9.0e15
}

/// A metric value as a quantity the way the adapter and kscale's manifests write it: whole numbers
/// as is, fractions in milli-units.
pub fn format(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{}m", (v * 1000.0).round() as i64)
    }
}

/// Whether `s` is a positive resource amount kscale passes on to a Pod spec (`500m`, `128Mi`, `1`,
/// `0.5`): decimal or binary suffixes up to tera, written without spaces.
pub fn is_resource_amount(s: &str) -> bool {
    const SUFFIXES: &[&str] = &["Ki", "Mi", "Gi", "Ti", "m", "k", "M", "G", "T", ""];
    SUFFIXES.iter().any(|suffix| {
        s.strip_suffix(suffix).is_some_and(|num| {
            !num.is_empty() && num.parse::<f64>().is_ok_and(|v| v.is_finite() && v > 0.0)
        })
    })
}

/// prometheus-adapter's conversion of a sample to a quantity: `int64(v*1000)`, truncating.
///
/// Go's conversion of NaN is platform-dependent (`i64::MIN` on amd64); Rust saturates NaN to 0, which is
/// the arm64 behaviour. kscale's queries never return NaN.
pub fn quantity_milli(v: f64) -> i64 {
    (v * 1000.0) as i64
}

/// `Quantity.MilliValue()` of a target: rounded up to whole milli-units.
pub fn target_milli(v: f64) -> i64 {
    let x = v * 1000.0;
    // 0.1 * 1000 is 100.00000000000001 in binary floating point; the decimal quantity is exactly 100m.
    if (x - x.round()).abs() < 1e-6 {
        x.round() as i64
    } else {
        x.ceil() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse("10050m").unwrap(), 10.05);
        assert_eq!(parse("12").unwrap(), 12.0);
        assert_eq!(parse("2k").unwrap(), 2000.0);
        assert_eq!(parse("1Ki").unwrap(), 1024.0);
        assert_eq!(parse("1e3").unwrap(), 1000.0);
        assert!(is_converted_nan(parse("-9223372036854775808m").unwrap()));
        assert!(parse("12x").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn formats_whole_numbers_and_milli_units() {
        assert_eq!(format(12.0), "12");
        assert_eq!(format(1.5), "1500m");
        assert_eq!(format(0.25), "250m");
        for v in [12.0, 1.5, 0.25, 10.05] {
            assert_eq!(parse(&format(v)).unwrap(), v);
        }
    }

    #[test]
    fn resource_amounts_are_positive_and_unspaced() {
        for ok in ["500m", "128Mi", "1", "0.5", "2G"] {
            assert!(is_resource_amount(ok), "{ok}");
        }
        for bad in ["", "0", "-1", "1x", " 1", "Mi", "NaN", "inf"] {
            assert!(!is_resource_amount(bad), "{bad}");
        }
    }
}
