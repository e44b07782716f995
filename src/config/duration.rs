//! Go-style durations (`300ms`, `1.5s`, `1m30s`, `2h`), as Heapster's flags took them.
//!
//! [`parse`] follows Go's `time.ParseDuration` except that negative values are refused (no flag
//! here means anything by a negative duration). [`format`] prints the shortest form that
//! [`parse`] reads back (`15m`, `1m30s`, `300ms`; Go would print `15m0s`).

use std::time::Duration;

/// Go's `time.Duration` is an `int64` of nanoseconds; stay within it.
const MAX_NANOS: u128 = i64::MAX as u128;

const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a Go duration. A bare `0` is allowed; every other number needs a unit.
pub fn parse(input: &str) -> Result<Duration, String> {
    let s = input.strip_prefix('+').unwrap_or(input);
    if input.is_empty() {
        return Err("empty duration".into());
    }
    if s.starts_with('-') {
        return Err(format!("{input:?} is negative"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(format!(
            "{input:?} is not a duration (e.g. 30s, 1m30s, 300ms)"
        ));
    }
    let invalid = || format!("{input:?} is not a duration (e.g. 30s, 1m30s, 300ms)");
    let mut rest = s;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(f) => f.split_at(f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len())),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("{input:?} is missing a unit (ns, us, ms, s, m, h)")
            } else {
                format!("{input:?} has an unknown unit {unit:?} (known: ns, us, ms, s, m, h)")
            });
        };
        let too_big = || format!("{input:?} is too large");
        let mut whole: u128 = 0;
        for d in int_part.bytes() {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(u128::from(d - b'0')))
                .filter(|w| *w <= MAX_NANOS)
                .ok_or_else(too_big)?;
        }
        // Digits past nanosecond precision cannot change the result; Go drops them too.
        let mut frac_nanos: u128 = 0;
        let mut denom: u128 = 1;
        for d in frac_part.bytes().take(20) {
            frac_nanos = frac_nanos * 10 + u128::from(d - b'0');
            denom *= 10;
        }
        let part = whole
            .checked_mul(scale)
            .and_then(|v| v.checked_add(frac_nanos * scale / denom))
            .ok_or_else(too_big)?;
        total = total
            .checked_add(part)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(too_big)?;
        rest = after;
    }
    // MAX_NANOS fits in a u64, so this conversion cannot fail.
    u64::try_from(total)
        .map(Duration::from_nanos)
        .map_err(|_| invalid())
}

/// Formats a duration in the shortest Go syntax that [`parse`] reads back: `15m`, `1m30s`,
/// `1.5s`, `300ms`, `0s`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (scale, unit) = match nanos {
            n if n < 1_000 => (1, "ns"),
            n if n < 1_000_000 => (1_000, "us"),
            _ => (1_000_000, "ms"),
        };
        return format!("{}{unit}", decimal(nanos, scale));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let sec_nanos = nanos % 60_000_000_000;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    if sec_nanos > 0 {
        out.push_str(&format!("{}s", decimal(sec_nanos, 1_000_000_000)));
    }
    out
}

/// `value / scale` as a decimal without trailing zeros.
fn decimal(value: u128, scale: u128) -> String {
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_go_durations() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("+5s", ms(5_000)),
            ("300ms", ms(300)),
            ("1.5s", ms(1_500)),
            (".5s", ms(500)),
            ("5.s", ms(5_000)),
            ("60s", ms(60_000)),
            ("1m30s", ms(90_000)),
            ("2h", ms(7_200_000)),
            ("1h15m30.5s", ms(4_530_500)),
            ("1.5h", ms(5_400_000)),
            ("10ns", Duration::from_nanos(10)),
            ("10us", Duration::from_micros(10)),
            ("10µs", Duration::from_micros(10)),
            ("10μs", Duration::from_micros(10)),
            ("1.0000000009s", Duration::from_nanos(1_000_000_000)),
            ("2562047h", Duration::from_secs(2_562_047 * 3600)),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("-5s", "negative"),
            ("-0", "negative"),
            ("5", "missing a unit"),
            ("1m30", "missing a unit"),
            ("5x", "unknown unit \"x\""),
            ("5 s", "unknown unit \" s\""),
            ("s", "not a duration"),
            (".s", "not a duration"),
            ("+", "not a duration"),
            ("abc", "not a duration"),
            ("99999999999999999999h", "too large"),
            ("2562048h", "too large"),
        ];
        for (input, want) in cases {
            let err = parse(input).expect_err(input);
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn formats_shortest_form() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_millis(300), "300ms"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(54), "54s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(900), "15m"),
            (Duration::from_secs(3_600), "1h"),
            (Duration::from_secs(3_605), "1h5s"),
        ];
        for (d, want) in cases {
            assert_eq!(format(*d), *want, "{d:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse(&s);
        }

        #[test]
        fn seconds_round_trip(n in 0u64..=9_223_372_036u64) {
            prop_assert_eq!(parse(&format!("{n}s")), Ok(Duration::from_secs(n)));
        }

        #[test]
        fn format_round_trips(nanos in 0u64..=i64::MAX as u64) {
            let d = Duration::from_nanos(nanos);
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
