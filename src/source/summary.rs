//! Typed, borrowing decoding of the kubelet Summary API (`/stats/summary`).
//!
//! Tolerates every payload from Kubernetes 1.15 to 1.35: every field is optional, `null` is
//! absent, unknown sections (`psi`, `io`, `swap`, `rlimit`, `interfaces`, ...) are ignored.
//! A missing value stays absent; it never becomes 0. Names borrow from the input when they hold
//! no escapes, so decoding allocates little beyond the vectors.
//!
//! Two parsers give the same [`Summary`]. [`decode`] tries [`fast::decode`], a hand-written
//! single-pass parser (a fraction of serde's instructions: see BENCHMARKS.md), and falls back to
//! serde_json on anything unusual: escapes, duplicate fields, wrong types, invalid JSON,
//! truncation. The serde structs below are that fallback, which also words every error, and the
//! specification: whenever the fast parser returns `Some(s)`, serde returns `Ok(t)` with
//! `s == t` (checked by `testing::fuzz::summary`, the `summary_decode` fuzz target and the
//! proptests in `tests/fuzz_regressions.rs`). [`decode_serde`] is the serde path alone.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};

use crate::model::{Nanos, time};

pub mod fast;

/// A sample timestamp, decoded straight to nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Time(pub Nanos);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let s: Cow<'de, str> = Deserialize::deserialize(d)?;
        parse_time(&s)
            .map(Time)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {s:?}")))
    }
}

/// Parses the kubelet's timestamps: a fast path for `YYYY-MM-DDTHH:MM:SSZ`, jiff otherwise.
fn parse_time(s: &str) -> Option<Nanos> {
    let b = s.as_bytes();
    if b.len() == 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[19] == b'Z' {
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let mut v = 0i64;
            for &c in &b[r] {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + i64::from(c - b'0');
            }
            Some(v)
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && se < 61 {
            let days = days_from_civil(y, mo, d);
            // Nanoseconds overflow i64 after 2262: `None` then, as from jiff below.
            return (((days * 24 + h) * 60 + mi) * 60 + se).checked_mul(time::NANOS_PER_SEC);
        }
    }
    time::parse_rfc3339(s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary<'a> {
    #[serde(borrow)]
    pub node: NodeStats<'a>,
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub pods: Vec<PodStats<'a>>,
}

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeStats<'a> {
    #[serde(borrow)]
    pub node_name: Cow<'a, str>,
    #[serde(borrow, deserialize_with = "null_as_default")]
    pub system_containers: Vec<ContainerStats<'a>>,
    pub start_time: Option<Time>,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub network: Option<NetworkStats>,
    pub fs: Option<FsStats>,
    pub runtime: Option<RuntimeStats>,
}

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuntimeStats {
    pub image_fs: Option<FsStats>,
    pub container_fs: Option<FsStats>,
}

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStats<'a> {
    #[serde(borrow)]
    pub pod_ref: PodReference<'a>,
    pub start_time: Option<Time>,
    #[serde(borrow, deserialize_with = "null_as_default")]
    pub containers: Vec<ContainerStats<'a>>,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub network: Option<NetworkStats>,
    #[serde(borrow, deserialize_with = "null_as_default")]
    pub volume: Vec<VolumeStats<'a>>,
    #[serde(rename = "ephemeral-storage")]
    pub ephemeral_storage: Option<FsStats>,
}

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct PodReference<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow)]
    pub namespace: Cow<'a, str>,
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
}

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStats<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    pub start_time: Option<Time>,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    pub rootfs: Option<FsStats>,
    pub logs: Option<FsStats>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CpuStats {
    pub time: Option<Time>,
    pub usage_nano_cores: Option<u64>,
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MemoryStats {
    pub time: Option<Time>,
    pub available_bytes: Option<u64>,
    pub usage_bytes: Option<u64>,
    pub working_set_bytes: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub page_faults: Option<u64>,
    pub major_page_faults: Option<u64>,
}

/// The default interface's counters (the top-level fields; `interfaces[]` is ignored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkStats {
    pub time: Option<Time>,
    pub rx_bytes: Option<u64>,
    pub rx_errors: Option<u64>,
    pub tx_bytes: Option<u64>,
    pub tx_errors: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FsStats {
    pub time: Option<Time>,
    pub available_bytes: Option<u64>,
    pub capacity_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub inodes_free: Option<u64>,
    pub inodes: Option<u64>,
    pub inodes_used: Option<u64>,
}

#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VolumeStats<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    pub time: Option<Time>,
    pub available_bytes: Option<u64>,
    pub capacity_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub inodes_free: Option<u64>,
    pub inodes: Option<u64>,
    pub inodes_used: Option<u64>,
}

impl VolumeStats<'_> {
    pub fn fs(&self) -> FsStats {
        FsStats {
            time: self.time,
            available_bytes: self.available_bytes,
            capacity_bytes: self.capacity_bytes,
            used_bytes: self.used_bytes,
            inodes_free: self.inodes_free,
            inodes: self.inodes,
            inodes_used: self.inodes_used,
        }
    }
}

/// `null` decodes like an absent field.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Decodes a Summary API response body: [`fast::decode`] when it can, serde otherwise (which
/// then also words the error).
pub fn decode(body: &[u8]) -> Result<Summary<'_>, serde_json::Error> {
    match fast::decode(body) {
        Some(summary) => Ok(summary),
        None => decode_serde(body),
    }
}

/// [`decode`] through serde alone: the specification the fast path is checked against. Bytes,
/// not a `str`: serde checks UTF-8 in the strings it keeps and in keys, not in ignored values.
pub fn decode_serde(body: &[u8]) -> Result<Summary<'_>, serde_json::Error> {
    serde_json::from_slice(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_time_path_matches_jiff() {
        for s in [
            "2026-06-26T10:14:35Z",
            "1999-12-31T23:59:59Z",
            "2024-02-29T00:00:00Z",
        ] {
            assert_eq!(parse_time(s), time::parse_rfc3339(s), "{s}");
        }
        assert_eq!(
            parse_time("2026-06-26T10:14:35.123456789Z"),
            time::parse_rfc3339("2026-06-26T10:14:35.123456789Z")
        );
        assert_eq!(parse_time("2026-13-26T10:14:35Z"), None);
        // Found by fuzzing (summary_decode): this overflowed instead of being refused.
        assert_eq!(parse_time("4046-05-31T02:20:29Z"), None);
        assert_eq!(time::parse_rfc3339("4046-05-31T02:20:29Z"), None);
        assert_eq!(
            parse_time("2262-04-11T23:47:16Z"),
            Some(9_223_372_036_000_000_000)
        );
    }

    #[test]
    fn nulls_and_missing_fields_are_absent() {
        let body = br#"{"node":{"nodeName":"n1","systemContainers":null,"cpu":{"time":"2026-01-01T00:00:00Z"},"newSection":{"x":1}},
            "pods":[{"podRef":{"name":"p","namespace":"ns","uid":"u"},"startTime":null,"containers":null,
                     "memory":{"workingSetBytes":5}}]}"#;
        let s = decode(body).expect("decodes");
        assert_eq!(s.node.node_name, "n1");
        assert!(s.node.system_containers.is_empty());
        let cpu = s.node.cpu.expect("cpu");
        assert_eq!(cpu.usage_core_nano_seconds, None);
        let pod = &s.pods[0];
        assert!(pod.start_time.is_none());
        assert_eq!(pod.memory.and_then(|m| m.working_set_bytes), Some(5));
        assert_eq!(pod.memory.and_then(|m| m.usage_bytes), None);
    }
}
