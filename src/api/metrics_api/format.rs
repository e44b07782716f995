//! Kubernetes value formats: canonical quantities (`487558164n`, `732212Ki`) and Go durations
//! (`20.064s`, `1m0s`) as `metav1.Duration` prints them.

use crate::model::{Nanos, time};

/// CPU in nanocores as a canonical decimal quantity (`500m`, `2`, `123n`).
pub fn cpu(nanocores: i64) -> String {
    let n = nanocores.max(0);
    match n {
        0 => "0".into(),
        n if n % 1_000_000_000 == 0 => (n / 1_000_000_000).to_string(),
        n if n % 1_000_000 == 0 => format!("{}m", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}u", n / 1_000),
        n => format!("{n}n"),
    }
}

/// Bytes as a canonical binary quantity (`732212Ki`, `1Gi`, `1000`).
pub fn memory(bytes: i64) -> String {
    let b = bytes.max(0);
    if b == 0 {
        return "0".into();
    }
    for (shift, unit) in [
        (60, "Ei"),
        (50, "Pi"),
        (40, "Ti"),
        (30, "Gi"),
        (20, "Mi"),
        (10, "Ki"),
    ] {
        if b % (1i64 << shift) == 0 {
            return format!("{}{unit}", b >> shift);
        }
    }
    b.to_string()
}

/// Go's `time.Duration.String()`.
pub fn go_duration(d: Nanos) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    let frac = |v: u64, scale: u64| {
        let (w, f) = (v / scale, v % scale);
        if f == 0 {
            w.to_string()
        } else {
            let width = scale.ilog10() as usize;
            format!("{w}.{}", format!("{f:0width$}").trim_end_matches('0'))
        }
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", frac(u, 1_000));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", frac(u, 1_000_000));
    }
    let (h, m) = (u / 3_600_000_000_000, u / 60_000_000_000 % 60);
    let s = frac(u % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}

/// `metav1.Time`: RFC 3339 in UTC, whole seconds.
pub fn k8s_time(t: Nanos) -> String {
    time::format_rfc3339(time::align_down(t, time::NANOS_PER_SEC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cpu(487_558_164), "487558164n");
        assert_eq!(cpu(500_000_000), "500m");
        assert_eq!(cpu(2_000_000_000), "2");
        assert_eq!(cpu(1_000), "1u");
        assert_eq!(cpu(0), "0");
        assert_eq!(memory(732_212 * 1024), "732212Ki");
        assert_eq!(memory(1 << 30), "1Gi");
        assert_eq!(memory(1000), "1000");
    }

    #[test]
    fn durations() {
        assert_eq!(go_duration(20_064_000_000), "20.064s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(go_duration(90_500_000_000), "1m30.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(k8s_time(1_500_000_000), "1970-01-01T00:00:01Z");
    }
}
