//! Test support shared by unit tests, integration tests and benches (not part of the API).

use std::path::PathBuf;

/// `../shared/fixtures` (or `$HEAPSTER_FIXTURES`). When missing, says so and returns `None`
/// so the caller skips; with `HEAPSTER_REQUIRE_FIXTURES=1` (set by `.ci/run`) it panics.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("HEAPSTER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("HEAPSTER_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
        panic!(
            "fixtures not found at {} and HEAPSTER_REQUIRE_FIXTURES=1",
            dir.display()
        );
    }
    eprintln!(
        "skipped: fixtures not found at {} (set HEAPSTER_FIXTURES)",
        dir.display()
    );
    None
}

/// Reads one fixture file (`kubelet/...`), or `None` to skip.
pub fn fixture(rel: &str) -> Option<Vec<u8>> {
    let path = fixtures_dir()?.join(rel);
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

/// The properties the fuzz targets in `fuzz/` check, shared with `tests/fuzz_regressions.rs`
/// (proptest and regression inputs); each panics when its property fails.
pub mod fuzz {
    use std::sync::Arc;

    use crate::config::{Parsed, SinkConfig, parse};
    use crate::process::decode::{ResourceIds, decode_summary};
    use crate::source::{resource, summary};

    /// The value of `$S`, which no message may ever show.
    pub const SECRET: &str = "fuzz-secret-from-env";

    /// The environment the flag targets expand `$VAR` from.
    pub fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.1:8086".into()),
            "S" => Some(SECRET.into()),
            "Q" => Some("a=1&insecure=true&pw=x&y".into()),
            _ => None,
        }
    }

    /// `--{flag}={value}` through the whole flag parser: no panic; no message shows a value
    /// that came from the environment (`$S`); the `Debug` of a parsed InfluxDB sink does not depend
    /// on its password or token.
    pub fn flag(flag: &str, value: &str) {
        let arg = format!("--{flag}={value}");
        match parse(["heapster", arg.as_str()], &env) {
            // Unless the value itself holds the secret's text (the fuzzer finds it).
            Parsed::Exit { message, .. } if !value.contains(SECRET) => {
                assert!(!message.contains(SECRET), "{value:?}: {message}");
            }
            Parsed::Exit { .. } => {}
            Parsed::Run(config) => {
                for sink in config.sinks.iter().chain(&config.event_sinks) {
                    if let SinkConfig::InfluxDb(c) = sink {
                        let mut other = c.clone();
                        other.password = "other".into();
                        other.token = other.token.map(|_| "other".into());
                        assert_eq!(format!("{c:?}"), format!("{other:?}"), "{value:?}");
                    }
                    if let SinkConfig::RemoteWrite(c) = sink {
                        let mut other = c.clone();
                        other.password = other.password.map(|_| "other".into());
                        other.token = other.token.map(|_| "other".into());
                        assert_eq!(format!("{c:?}"), format!("{other:?}"), "{value:?}");
                    }
                    if let SinkConfig::Kafka(c) = sink {
                        let mut other = c.clone();
                        other.password = other.password.map(|_| "other".into());
                        assert_eq!(format!("{c:?}"), format!("{other:?}"), "{value:?}");
                    }
                }
            }
        }
    }

    /// A `/stats/summary` body: whenever the fast parser decodes it, serde does too and to an
    /// equal value (see `source::summary::fast`); `decode` gives exactly serde's value or error;
    /// decoding and making metric sets of it never panic.
    pub fn summary(body: &[u8]) {
        let serde = summary::decode_serde(body);
        if let Some(fast) = summary::fast::decode(body) {
            match &serde {
                Ok(spec) => assert_eq!(&fast, spec, "the fast parser and serde differ"),
                Err(e) => panic!("the fast parser accepted a body serde refuses ({e})"),
            }
        }
        let decoded = summary::decode(body);
        match (&decoded, &serde) {
            (Ok(ours), Ok(spec)) => assert_eq!(ours, spec, "decode and serde differ"),
            (Err(ours), Err(spec)) => assert_eq!(ours.to_string(), spec.to_string()),
            (ours, spec) => panic!(
                "decode and serde disagree: {:?} vs {:?}",
                ours.as_ref().err(),
                spec.as_ref().err()
            ),
        }
        if let Ok(s) = decoded {
            let node: Arc<str> = Arc::from("n1");
            let sample = decode_summary(
                &s,
                &node,
                1_750_000_000_000_000_000,
                &ResourceIds::default(),
            );
            std::hint::black_box(sample);
        }
    }

    /// A `/metrics/resource` body (Prometheus text): decoding it never panics.
    pub fn resource(body: &[u8]) {
        let node: Arc<str> = Arc::from("n1");
        let _ = std::hint::black_box(resource::decode(body, &node, 1_750_000_000_000_000_000));
    }
}
