//! Kubernetes resource quantities (`3900m`, `16Gi`, `1.5`, `100M`, `1e3`) to numbers.

/// Parses a quantity to its value in base units (cores, bytes).
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    // `1e3` has an exponent; `1E` alone (exa) is a suffix.
    let (num, suffix) = if suffix.is_empty()
        && (num.ends_with('E') || num.ends_with('e'))
        && !num.contains('.')
        && num.len() > 1
    {
        let (n, s) = num.split_at(num.len() - 1);
        (n, s)
    } else {
        (num, suffix)
    };
    let value: f64 = num.parse().ok()?;
    let mult = match suffix {
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
        _ => return None,
    };
    let v = value * mult;
    v.is_finite().then_some(v)
}

/// CPU quantity → millicores (rounded up, as Kubernetes does).
pub fn millicores(q: &str) -> Option<i64> {
    parse(q).map(|v| (v * 1000.0).ceil() as i64)
}

/// Memory or storage quantity → bytes.
pub fn bytes(q: &str) -> Option<i64> {
    parse(q).map(|v| v.ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(millicores("3900m"), Some(3900));
        assert_eq!(millicores("4"), Some(4000));
        assert_eq!(millicores("0.5"), Some(500));
        assert_eq!(millicores("100n"), Some(1));
        assert_eq!(bytes("16Gi"), Some(17_179_869_184));
        assert_eq!(bytes("16393796Ki"), Some(16_787_247_104));
        assert_eq!(bytes("100M"), Some(100_000_000));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("2E"), Some(2_000_000_000_000_000_000));
        assert_eq!(bytes("12Qi"), None);
        assert_eq!(bytes(""), None);
    }
}
