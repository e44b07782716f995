//! `summary::decode` alone (no metric sets): the hand-written fast parser next to serde_json
//! (`summary::decode_serde`, the fallback and the specification) on simulated nodes of 10, 30 and
//! 110 pods of 2 containers (compact, as the simulator serves them, and indented) and on every
//! real capture in `../shared/fixtures/kubelet` (indented; skipped when the fixtures are not
//! there). Throughput is in bytes of the body.
//!
//! Instruction counts, repeatable on a busy machine: `SUMMARY_DECODE_ONCE=1` decodes each body
//! once with each parser outside criterion, in `stage_fast` and `stage_serde`, so
//! `SUMMARY_DECODE_ONCE=1 valgrind --tool=callgrind --collect-atstart=no
//! --toggle-collect='*stage_*' target/release/deps/summary_decode-HASH` counts exactly those
//! (`callgrind_annotate --inclusive=yes` splits them).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use heapster_rs::model::time::NANOS_PER_SEC;
use heapster_rs::source::summary;
use heapster_rs::testing::fixtures_dir;

/// The bodies: (name, bytes).
fn bodies() -> Vec<(String, Vec<u8>)> {
    let start = 1_750_000_000 * NANOS_PER_SEC;
    let now = start + 3_600 * NANOS_PER_SEC;
    let mut out = Vec::new();
    for pods in [10, 30, 110] {
        let body = heapster_rs::sim::summary_body(7, pods, 2, start, now);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("sim json");
        let pretty = serde_json::to_vec_pretty(&value).expect("pretty");
        out.push((format!("sim-{pods}-pods"), body));
        out.push((format!("sim-{pods}-pods-indented"), pretty));
    }
    if let Some(dir) = fixtures_dir() {
        let mut paths: Vec<_> = std::fs::read_dir(dir.join("kubelet"))
            .expect("fixtures/kubelet")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.contains("summary") && name.ends_with(".json")
            })
            .collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_stem()
                .and_then(|n| n.to_str())
                .unwrap_or("fixture")
                .to_owned();
            out.push((name, std::fs::read(&path).expect("fixture")));
        }
    }
    for (name, body) in &out {
        assert!(
            summary::fast::decode(body).is_some(),
            "{name}: the fast parser leaves it to serde"
        );
    }
    out
}

type Decode = for<'a> fn(&'a [u8]) -> Result<summary::Summary<'a>, serde_json::Error>;

/// How many pods `decode` finds in all of `bodies`.
fn pods(bodies: &[(String, Vec<u8>)], decode: Decode) -> usize {
    bodies
        .iter()
        .map(|(_, b)| decode(black_box(b)).map_or(0, |s| s.pods.len()))
        .sum()
}

#[inline(never)]
fn stage_fast(bodies: &[(String, Vec<u8>)]) -> usize {
    pods(bodies, summary::decode)
}

#[inline(never)]
fn stage_serde(bodies: &[(String, Vec<u8>)]) -> usize {
    pods(bodies, summary::decode_serde)
}

fn decode_bench(c: &mut Criterion) {
    let bodies = bodies();
    if std::env::var_os("SUMMARY_DECODE_ONCE").is_some() {
        eprintln!(
            "{} pods fast, {} serde",
            stage_fast(&bodies),
            stage_serde(&bodies)
        );
        std::process::exit(0);
    }
    let mut g = c.benchmark_group("summary_decode");
    for (name, body) in &bodies {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("fast", name), body, |b, body| {
            b.iter(|| summary::decode(black_box(body)).map(|s| s.pods.len()))
        });
        g.bench_with_input(BenchmarkId::new("serde", name), body, |b, body| {
            b.iter(|| summary::decode_serde(black_box(body)).map(|s| s.pods.len()))
        });
    }
    g.finish();
}

criterion_group!(benches, decode_bench);
criterion_main!(benches);
