//! Hot paths of a tick: Summary decoding (bytes/s) and one processing cycle (rates, enrichment,
//! aggregation) for clusters of 100 and 1,000 nodes built from a real 1.35 payload.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use heapster_rs::model::cluster::ClusterState;
use heapster_rs::model::sample::NodeSample;
use heapster_rs::process::Processor;
use heapster_rs::source::decode::{ResourceIds, decode_summary};
use heapster_rs::source::summary;
use heapster_rs::testing::fixture;

const FIXTURES: [&str; 3] = [
    "kubelet/nri-kubernetes-1_19-kubelet-stats-summary.json",
    "kubelet/nri-kubernetes-1_31-kubelet-stats-summary.json",
    "kubelet/nri-kubernetes-1_35-kubelet-stats-summary.json",
];

fn decode_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("summary_decode");
    for name in FIXTURES {
        let Some(body) = fixture(name) else { return };
        let ids = ResourceIds::default();
        let node: Arc<str> = Arc::from("n");
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("decode", short(name)), &body, |b, body| {
            b.iter(|| {
                let s = summary::decode(black_box(body)).expect("decodes");
                black_box(decode_summary(&s, &node, 0, &ids))
            })
        });
    }
    g.finish();
}

fn short(name: &str) -> &str {
    name.trim_start_matches("kubelet/nri-kubernetes-")
        .trim_end_matches("-kubelet-stats-summary.json")
}

/// `nodes` samples of the 1.35 payload, each under its own node name, its counters advanced by
/// `step` seconds of time.
fn samples(body: &[u8], nodes: usize, step: i64) -> Vec<NodeSample> {
    let ids = ResourceIds::default();
    let s = summary::decode(body).expect("decodes");
    (0..nodes)
        .map(|i| {
            let node: Arc<str> = Arc::from(format!("node-{i:05}"));
            let mut sample = decode_summary(&s, &node, 0, &ids);
            for raw in &mut sample.sets {
                for t in [
                    &mut raw.times.cpu,
                    &mut raw.times.memory,
                    &mut raw.times.network,
                ]
                .into_iter()
                .flatten()
                {
                    *t += step * 1_000_000_000;
                }
            }
            sample
        })
        .collect()
}

fn process_bench(c: &mut Criterion) {
    let Some(body) = fixture("kubelet/nri-kubernetes-1_35-kubelet-stats-summary.json") else {
        return;
    };
    let mut g = c.benchmark_group("process_cycle");
    g.sample_size(10);
    let state = ClusterState::default();
    for nodes in [100usize, 1000] {
        let first = samples(&body, nodes, 0);
        let second = samples(&body, nodes, 15);
        let pods = first.iter().map(|s| s.sets.len()).sum::<usize>();
        g.throughput(Throughput::Elements(nodes as u64));
        g.bench_function(BenchmarkId::new("nodes", nodes), |b| {
            b.iter_batched(
                || {
                    let mut p = Processor::new();
                    p.process(first.clone(), &state, 0, i64::MAX);
                    (p, second.clone())
                },
                |(mut p, second)| black_box(p.process(second, &state, 15_000_000_000, i64::MAX)),
                criterion::BatchSize::LargeInput,
            )
        });
        eprintln!("{nodes} nodes: {pods} metric sets per cycle");
    }
    g.finish();
}

criterion_group!(benches, decode_bench, process_bench);
criterion_main!(benches);
