//! Per-node decode cost of the two kubelet endpoints: `/metrics/resource` (prometheus-parse +
//! mapping) next to `/stats/summary` (serde + mapping) of the same simulated node, sized like
//! real nodes (10, 30 and 110 pods of 2 containers), plus the real EKS resource capture.
//! Throughput is in bytes of the body.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use heapster_rs::sim::{SimCluster, SimOptions};
use heapster_rs::source::decode::{ResourceIds, decode_summary};
use heapster_rs::source::{resource_metrics, summary};
use heapster_rs::testing::fixture;

const PODS: [usize; 3] = [10, 30, 110];

/// Both bodies of node 0 of a simulated cluster with `pods` pods of 2 containers.
fn bodies(rt: &tokio::runtime::Runtime, pods: usize) -> (Vec<u8>, Vec<u8>) {
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cluster = SimCluster::start(SimOptions {
            nodes: 1,
            pods_per_node: pods,
            containers_per_pod: 2,
            ..SimOptions::default()
        })
        .await
        .expect("simulator starts");
        let base = format!(
            "http://{}:{}",
            cluster.nodes()[0].ip,
            cluster.kubelet_port()
        );
        let get = |path: &'static str| {
            let url = format!("{base}{path}");
            async move {
                let resp = reqwest::get(url).await.expect("request");
                resp.bytes().await.expect("body").to_vec()
            }
        };
        let out = (get("/stats/summary").await, get("/metrics/resource").await);
        cluster.shutdown().await;
        out
    })
}

fn decode_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let node: Arc<str> = Arc::from("n");
    let ids = ResourceIds::default();
    let mut g = c.benchmark_group("kubelet_decode");
    for pods in PODS {
        let (summary_body, resource_body) = bodies(&rt, pods);
        eprintln!(
            "{pods} pods: summary {} bytes, resource {} bytes",
            summary_body.len(),
            resource_body.len()
        );
        g.throughput(Throughput::Bytes(summary_body.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("summary", pods),
            &summary_body,
            |b, body| {
                b.iter(|| {
                    let s = summary::decode(black_box(body)).expect("decodes");
                    black_box(decode_summary(&s, &node, 0, &ids))
                })
            },
        );
        g.throughput(Throughput::Bytes(resource_body.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("resource", pods),
            &resource_body,
            |b, body| b.iter(|| black_box(resource_metrics::decode(black_box(body), &node, 0))),
        );
    }
    if let Some(body) = fixture("kubelet/ersilia-hub-eks-kubelet-metrics-resource.txt") {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("resource", "eks-capture"),
            &body,
            |b, body| b.iter(|| black_box(resource_metrics::decode(black_box(body), &node, 0))),
        );
    }
    g.finish();
}

criterion_group!(benches, decode_bench);
criterion_main!(benches);
