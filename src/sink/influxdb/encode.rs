//! Line-protocol encoding: escaping, one line at a time, into a reused buffer.
//!
//! Escaping follows the InfluxDB line-protocol reference: measurements escape comma and space;
//! tag keys, tag values and field keys escape comma, equals sign and space; string field values
//! escape double quote and backslash. A backslash is written doubled only where it would
//! otherwise read as an escape (before one of those characters, another backslash, or at the
//! end), so ordinary backslashes stay as they are for InfluxDB 1.x, which keeps `\\` literally.
//! Line protocol cannot carry newlines or tabs in names: they are written as spaces; nor a
//! name ending in a backslash (InfluxDB 2.x/3.x refuse it): trailing backslashes are dropped.
//! [`normalized`] says what a name reads as after this.

use crate::model::Nanos;

/// A field value. Integers get the `i` suffix; floats must be finite.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldValue<'a> {
    Int(i64),
    Float(f64),
    Str(&'a str),
}

/// One point with arbitrary names (the general form; the batch encoder uses the same escaping).
#[derive(Clone, Debug)]
pub struct Line<'a> {
    pub measurement: &'a str,
    pub tags: &'a [(&'a str, &'a str)],
    pub fields: &'a [(&'a str, FieldValue<'a>)],
    pub timestamp: Nanos,
}

/// Why a line could not be written; the buffer is left as it was.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    /// Line protocol needs a non-empty measurement.
    #[error("empty measurement")]
    EmptyMeasurement,
    /// A line starting with `#` is a comment, and `#` has no escape.
    #[error("measurement starts with '#'")]
    CommentMeasurement,
    /// Every field was empty-keyed or a NaN/infinite float.
    #[error("no writable field")]
    NoField,
}

/// Which characters a context escapes with a backslash.
#[derive(Clone, Copy)]
enum Ctx {
    Measurement,
    Key,
}

impl Ctx {
    const fn special(self, b: u8) -> bool {
        match self {
            Ctx::Measurement => b == b',' || b == b' ',
            Ctx::Key => b == b',' || b == b'=' || b == b' ',
        }
    }
}

const fn is_control_space(b: u8) -> bool {
    b == b'\n' || b == b'\r' || b == b'\t'
}

/// For each byte, whether a name holding it takes the slow path of [`escape`].
const fn escape_table(ctx: Ctx) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c == b'\\' || ctx.special(c) || is_control_space(c);
        b += 1;
    }
    t
}

static MEASUREMENT_ESCAPES: [bool; 256] = escape_table(Ctx::Measurement);
static KEY_ESCAPES: [bool; 256] = escape_table(Ctx::Key);

#[cfg(test)]
fn needs_escape(s: &[u8], ctx: Ctx) -> bool {
    let table = match ctx {
        Ctx::Measurement => &MEASUREMENT_ESCAPES,
        Ctx::Key => &KEY_ESCAPES,
    };
    s.iter().any(|&b| table[usize::from(b)])
}

fn escape(buf: &mut Vec<u8>, s: &str, ctx: Ctx) {
    if plain(s.as_bytes()) {
        buf.extend_from_slice(s.as_bytes());
        return;
    }
    let bytes = s.trim_end_matches('\\').as_bytes();
    let table = match ctx {
        Ctx::Measurement => &MEASUREMENT_ESCAPES,
        Ctx::Key => &KEY_ESCAPES,
    };
    // Runs of ordinary bytes are copied whole; only the bytes the table marks are looked at.
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !table[usize::from(b)] {
            continue;
        }
        buf.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        if is_control_space(b) {
            // Written as a space, which every context escapes.
            buf.extend_from_slice(b"\\ ");
        } else if b == b'\\' {
            let next = bytes.get(i + 1).copied();
            let ambiguous = match next {
                None => true,
                Some(n) => n == b'\\' || n == b',' || n == b'=' || n == b' ' || is_control_space(n),
            };
            buf.extend_from_slice(if ambiguous { b"\\\\" } else { b"\\" });
        } else {
            buf.push(b'\\');
            buf.push(b);
        }
    }
    buf.extend_from_slice(&bytes[run..]);
}

/// Whether `s` holds none of the bytes any context escapes or trims: no byte below `!` (space
/// and control characters), no `,`, `=` or `\`. Eight bytes at a time; names almost always
/// are plain, and are then copied whole.
fn plain(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Exact for "is any byte of `w` below `n`" (n <= 128), and so for "is any byte zero".
    let below = |w: u64, n: u64| w.wrapping_sub(ONES * n) & !w & HIGH;
    let special = |w: u64| {
        below(w, 0x21)
            | below(w ^ (ONES * 0x2c), 1)
            | below(w ^ (ONES * 0x3d), 1)
            | below(w ^ (ONES * 0x5c), 1)
    };
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        if special(u64::from_le_bytes(w)) != 0 {
            return false;
        }
    }
    // The tail, padded with a plain byte.
    let mut w = [b'a'; 8];
    let rest = chunks.remainder();
    w[..rest.len()].copy_from_slice(rest);
    special(u64::from_le_bytes(w)) == 0
}

/// Appends an escaped measurement name.
pub fn escape_measurement(buf: &mut Vec<u8>, s: &str) {
    escape(buf, s, Ctx::Measurement);
}

/// Appends an escaped tag key, tag value or field key.
pub fn escape_key(buf: &mut Vec<u8>, s: &str) {
    escape(buf, s, Ctx::Key);
}

/// Appends a quoted string field value.
pub fn write_string_value(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' {
            buf.push(b'\\');
        }
        buf.push(b);
    }
    buf.push(b'"');
}

/// Appends `,key=value` (nothing when the value is empty: line protocol forbids empty tags).
pub fn write_tag(buf: &mut Vec<u8>, key: &str, value: &str) {
    if is_blank(key) || is_blank(value) {
        return;
    }
    buf.push(b',');
    escape_key(buf, key);
    buf.push(b'=');
    escape_key(buf, value);
}

/// [`write_tag`] with the key already written out as `,key=` (escaped, not blank).
pub fn write_tag_value(buf: &mut Vec<u8>, comma_key_equals: &str, value: &str) {
    if is_blank(value) {
        return;
    }
    buf.extend_from_slice(comma_key_equals.as_bytes());
    escape_key(buf, value);
}

/// Appends a numeric value: `12i` or a shortest round-trip float. Returns false (writing
/// nothing) for NaN and infinities, which line protocol cannot carry.
pub fn write_number(buf: &mut Vec<u8>, v: FieldValue<'_>) -> bool {
    match v {
        FieldValue::Int(i) => {
            buf.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
            buf.push(b'i');
        }
        FieldValue::Float(f) if !f.is_finite() => return false,
        FieldValue::Float(f) => write_float(buf, f),
        FieldValue::Str(s) => write_string_value(buf, s),
    }
    true
}

/// Appends a finite float as ryu writes it. A whole number below 2^53 (rates of 0 are common:
/// errors, major page faults) is written as ryu would, `12.0`, from its integer: a tenth of
/// the instructions of ryu's general path.
#[inline]
fn write_float(buf: &mut Vec<u8>, f: f64) {
    const EXACT: f64 = (1u64 << 53) as f64;
    if f.fract() == 0.0 && f.abs() < EXACT && !(f == 0.0 && f.is_sign_negative()) {
        buf.extend_from_slice(itoa::Buffer::new().format(f as i64).as_bytes());
        buf.extend_from_slice(b".0");
    } else {
        buf.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes());
    }
}

/// Appends ` <timestamp>\n`.
pub fn write_timestamp(buf: &mut Vec<u8>, ts: Nanos) {
    buf.push(b' ');
    buf.extend_from_slice(itoa::Buffer::new().format(ts).as_bytes());
    buf.push(b'\n');
}

/// Appends one complete line; tags are written sorted by key, empty ones omitted, and
/// non-finite float fields skipped. Returns the number of fields written.
pub fn write_line(buf: &mut Vec<u8>, line: &Line<'_>) -> Result<usize, LineError> {
    if is_blank(line.measurement) {
        return Err(LineError::EmptyMeasurement);
    }
    if line.measurement.starts_with('#') {
        return Err(LineError::CommentMeasurement);
    }
    let start = buf.len();
    escape_measurement(buf, line.measurement);
    let mut tags: Vec<&(&str, &str)> = line.tags.iter().collect();
    tags.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in tags {
        write_tag(buf, k, v);
    }
    let mut written = 0;
    for (k, v) in line.fields {
        if is_blank(k) {
            continue;
        }
        let mark = buf.len();
        buf.push(if written == 0 { b' ' } else { b',' });
        escape_key(buf, k);
        buf.push(b'=');
        if write_number(buf, *v) {
            written += 1;
        } else {
            buf.truncate(mark);
        }
    }
    if written == 0 {
        buf.truncate(start);
        return Err(LineError::NoField);
    }
    write_timestamp(buf, line.timestamp);
    Ok(written)
}

/// Whether a name is empty once trailing backslashes are dropped (so it is not written).
fn is_blank(s: &str) -> bool {
    s.trim_end_matches('\\').is_empty()
}

/// What a name reads as after encoding and parsing: control whitespace becomes a space and
/// trailing backslashes are gone.
pub fn normalized(s: &str) -> String {
    s.trim_end_matches('\\')
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        let mut b = Vec::new();
        escape_key(&mut b, s);
        String::from_utf8(b).expect("utf8")
    }

    fn meas(s: &str) -> String {
        let mut b = Vec::new();
        escape_measurement(&mut b, s);
        String::from_utf8(b).expect("utf8")
    }

    #[test]
    fn escaping_table() {
        let cases = [
            ("plain", "plain", "plain"),
            ("a b", "a\\ b", "a\\ b"),
            ("a,b", "a\\,b", "a\\,b"),
            ("a=b", "a\\=b", "a=b"),
            ("c\\d", "c\\d", "c\\d"),
            ("end\\", "end", "end"),
            ("a\\\\b", "a\\\\\\b", "a\\\\\\b"),
            ("x\\,y", "x\\\\\\,y", "x\\\\\\,y"),
            ("tab\there", "tab\\ here", "tab\\ here"),
            ("cpu/usage_rate", "cpu/usage_rate", "cpu/usage_rate"),
        ];
        for (input, as_key, as_measurement) in cases {
            assert_eq!(key(input), as_key, "key {input:?}");
            assert_eq!(meas(input), as_measurement, "measurement {input:?}");
        }
    }

    #[test]
    fn escape_fast_path_sees_every_special_byte() {
        for b in 0..=255u8 {
            let key = matches!(b, b'\\' | b',' | b'=' | b' ' | b'\n' | b'\r' | b'\t');
            let measurement = key && b != b'=';
            assert_eq!(needs_escape(&[b'a', b, b'z'], Ctx::Key), key, "{b}");
            assert_eq!(needs_escape(&[b], Ctx::Measurement), measurement, "{b}");
        }
    }

    /// The byte-at-a-time escaping the run-copying [`escape`] replaced.
    fn escape_by_byte(s: &str, ctx: Ctx) -> Vec<u8> {
        let mut buf = Vec::new();
        let bytes = s.trim_end_matches('\\').as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let b = if is_control_space(b) { b' ' } else { b };
            if b == b'\\' {
                let next = bytes.get(i + 1).copied();
                let ambiguous = match next {
                    None => true,
                    Some(n) => {
                        n == b'\\' || n == b',' || n == b'=' || n == b' ' || is_control_space(n)
                    }
                };
                buf.extend_from_slice(if ambiguous { b"\\\\" } else { b"\\" });
            } else if ctx.special(b) {
                buf.push(b'\\');
                buf.push(b);
            } else {
                buf.push(b);
            }
        }
        buf
    }

    #[test]
    fn escape_matches_byte_at_a_time_escaping() {
        use rand::{Rng, SeedableRng};
        let alphabet = b"ab=, \\\t\n\r:/.-_";
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.random_range(0..24);
            let s: String = (0..len)
                .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                .collect();
            for ctx in [Ctx::Key, Ctx::Measurement] {
                let mut b = b"prefix".to_vec();
                escape(&mut b, &s, ctx);
                assert_eq!(&b[6..], escape_by_byte(&s, ctx), "{s:?}");
            }
        }
    }

    #[test]
    fn numbers() {
        let mut b = Vec::new();
        assert!(write_number(&mut b, FieldValue::Int(-42)));
        b.push(b' ');
        assert!(write_number(&mut b, FieldValue::Float(0.25)));
        b.push(b' ');
        assert!(write_number(&mut b, FieldValue::Float(3.0)));
        assert!(!write_number(&mut b, FieldValue::Float(f64::NAN)));
        assert!(!write_number(&mut b, FieldValue::Float(f64::INFINITY)));
        assert_eq!(b, b"-42i 0.25 3.0");
    }

    #[test]
    fn line_sorts_tags_and_omits_empty_ones() {
        let mut b = Vec::new();
        let line = Line {
            measurement: "cpu/usage_rate",
            tags: &[("type", "node"), ("labels", ""), ("cluster_name", "c 1")],
            fields: &[
                ("value", FieldValue::Int(5)),
                ("bad", FieldValue::Float(f64::NAN)),
            ],
            timestamp: 1_700_000_000_000_000_000,
        };
        assert_eq!(write_line(&mut b, &line), Ok(1));
        assert_eq!(
            String::from_utf8(b).expect("utf8"),
            "cpu/usage_rate,cluster_name=c\\ 1,type=node value=5i 1700000000000000000\n"
        );
    }

    #[test]
    fn line_without_fields_is_refused_and_leaves_nothing() {
        let mut b = b"keep".to_vec();
        let line = Line {
            measurement: "m",
            tags: &[],
            fields: &[("value", FieldValue::Float(f64::NAN))],
            timestamp: 1,
        };
        assert_eq!(write_line(&mut b, &line), Err(LineError::NoField));
        assert_eq!(b, b"keep");
    }

    fn ryu_of(f: f64) -> Vec<u8> {
        ryu::Buffer::new().format_finite(f).as_bytes().to_vec()
    }

    fn ours(f: f64) -> Vec<u8> {
        let mut b = Vec::new();
        write_float(&mut b, f);
        b
    }

    #[test]
    fn whole_floats_are_written_as_ryu_writes_them() {
        let exact = (1u64 << 53) as f64;
        let mut cases = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            12.0,
            1e15,
            1e16,
            exact,
            exact - 1.0,
            -exact,
        ];
        cases.extend([0.5, -2.25, 1e-7, 123.456, 1e300, f64::MIN_POSITIVE]);
        for k in 0..64 {
            let p = 2f64.powi(k);
            cases.extend([p, p - 1.0, p + 1.0, -p, 10f64.powi(k.min(22))]);
        }
        for f in cases {
            assert_eq!(ours(f), ryu_of(f), "{f:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn floats_are_written_as_ryu_writes_them(bits in proptest::prelude::any::<u64>(), i in -(1i64 << 54)..(1i64 << 54)) {
            let f = f64::from_bits(bits);
            if f.is_finite() {
                proptest::prop_assert_eq!(ours(f), ryu_of(f));
            }
            proptest::prop_assert_eq!(ours(i as f64), ryu_of(i as f64));
        }
    }

    #[test]
    fn plain_names_are_exactly_those_without_special_bytes() {
        for len in 0..20 {
            for special in 0u8..=255 {
                for at in 0..len {
                    let mut name = vec![b'a'; len];
                    name[at] = special;
                    let expect = special >= 0x21 && !matches!(special, b',' | b'=' | b'\\');
                    assert_eq!(plain(&name), expect, "{name:?}");
                }
            }
        }
        assert!(plain("kube-system/pod-ü".as_bytes()));
    }
}
