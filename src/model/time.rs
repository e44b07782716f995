//! Timestamps as nanoseconds since the Unix epoch, and their RFC 3339 forms.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch.
pub type Nanos = i64;

pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// The current wall-clock time.
pub fn now() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Parses an RFC 3339 timestamp (`2026-06-26T10:14:35Z`, fractions and offsets allowed).
pub fn parse_rfc3339(s: &str) -> Option<Nanos> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    i64::try_from(ts.as_nanosecond()).ok()
}

/// Formats as RFC 3339 in UTC with the precision needed (`2017-08-12T17:29:00Z`).
pub fn format_rfc3339(t: Nanos) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(t)) {
        Ok(ts) => ts.to_string(),
        Err(_) => String::from("1970-01-01T00:00:00Z"),
    }
}

/// Rounds down to a multiple of `step` nanoseconds.
pub fn align_down(t: Nanos, step: Nanos) -> Nanos {
    if step <= 0 { t } else { t - t.rem_euclid(step) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = parse_rfc3339("2026-06-26T10:14:35Z").expect("parses");
        assert_eq!(format_rfc3339(t), "2026-06-26T10:14:35Z");
        assert_eq!(t % NANOS_PER_SEC, 0);
        assert!(parse_rfc3339("not a time").is_none());
    }

    #[test]
    fn align() {
        assert_eq!(
            align_down(65 * NANOS_PER_SEC, 60 * NANOS_PER_SEC),
            60 * NANOS_PER_SEC
        );
    }
}
