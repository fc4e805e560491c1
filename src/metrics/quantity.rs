//! Kubernetes quantities as the external metrics API and HPA status print them (`10050m`, `12`,
//! `1500k`, `1.5Gi`, `1e3`).

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
    let factor = match suffix {
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
    };
    Ok(num * factor)
}

/// prometheus-adapter converts NaN with `int64(NaN*1000)`: on amd64 that is the smallest int64,
/// printed as `-9223372036854775808m`. Any value this negative is that conversion.
pub fn is_converted_nan(v: f64) -> bool {
    v <= -9.0e15
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
}
