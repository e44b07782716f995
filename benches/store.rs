//! The in-memory store: ingest time per batch and memory per node for clusters of 1,000 and
//! 5,000 nodes × 30 pods × 2 containers (95 series per node), synthetic batches shaped like
//! the pipeline's (about as many values per set as a 1.35 kubelet gives).
//!
//! Memory is reported twice, before the timing runs: the store's own estimate from structure
//! sizes (`Store::approx_bytes`) and the growth of the process's resident set while the store
//! fills (`/proc/self/statm`; no counting allocator, the crate forbids `unsafe`). Both at the
//! default 60 s resolution and at 15 s (four times the history points), 15 minutes of history.
//! Run: `cargo bench --bench store` (several minutes; the memory lines print first).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use heapster_rs::model::time::NANOS_PER_SEC as SEC;
use heapster_rs::model::{Batch, LabeledValue, Metric, MetricSet, Nanos, SetKey, Value};
use heapster_rs::store::{Store, StoreOptions};
use prometheus_client::registry::Registry;

const PODS: usize = 30;
const CONTAINERS: usize = 2;
const SYS: [&str; 4] = ["kubelet", "docker-daemon", "system", "pods"];
const NAMESPACES: [&str; 5] = ["default", "kube-system", "monitoring", "team-a", "team-b"];

fn values(set: &mut MetricSet, metrics: &[Metric], seed: i64) {
    for (i, m) in metrics.iter().enumerate() {
        let v = seed * 1_000 + i as i64;
        set.set(
            *m,
            match m.value_type() {
                heapster_rs::model::ValueType::Int => Value::Int(v),
                heapster_rs::model::ValueType::Float => Value::Float(v as f64 / 7.0),
            },
        );
    }
}

fn labeled(set: &mut MetricSet, ids: &[Arc<str>]) {
    for id in ids {
        for m in [
            Metric::FilesystemUsage,
            Metric::FilesystemLimit,
            Metric::FilesystemAvailable,
            Metric::FilesystemInodes,
            Metric::FilesystemInodesFree,
        ] {
            set.labeled.push(LabeledValue {
                metric: m,
                pvc: None,
                resource_id: Arc::clone(id),
                value: Value::Int(42),
            });
        }
    }
}

/// One batch of `nodes` nodes at time `t`.
fn batch(nodes: usize, t: Nanos) -> Batch {
    let all = Metric::ALL;
    let (root, logs): (Arc<str>, Arc<str>) = (Arc::from("/"), Arc::from("logs"));
    let mut sets = Vec::with_capacity(nodes * (1 + SYS.len() + PODS * (1 + CONTAINERS)) + 6);
    let container_names: Vec<Arc<str>> = (0..CONTAINERS)
        .map(|c| Arc::from(format!("c{c}")))
        .collect();
    for n in 0..nodes {
        let node: Arc<str> = Arc::from(format!("node-{n:05}"));
        let mut s = MetricSet::new(
            SetKey::Node {
                node: Arc::clone(&node),
            },
            t,
        );
        s.node = Some(Arc::clone(&node));
        values(&mut s, &all[..all.len() - 5], n as i64);
        labeled(&mut s, std::slice::from_ref(&root));
        sets.push(s);
        for sys in SYS {
            let key = SetKey::SysContainer {
                node: Arc::clone(&node),
                container: Arc::from(sys),
            };
            let mut s = MetricSet::new(key, t);
            s.node = Some(Arc::clone(&node));
            values(&mut s, &all[..12], n as i64);
            sets.push(s);
        }
        for p in 0..PODS {
            let ns: Arc<str> = Arc::from(NAMESPACES[p % NAMESPACES.len()]);
            let pod: Arc<str> = Arc::from(format!("app-{n:05}-{p:02}"));
            let mut s = MetricSet::new(
                SetKey::Pod {
                    namespace: Arc::clone(&ns),
                    pod: Arc::clone(&pod),
                },
                t,
            );
            s.node = Some(Arc::clone(&node));
            values(&mut s, &all[..28], p as i64);
            labeled(&mut s, &[Arc::from("Volume:data")]);
            sets.push(s);
            for c in &container_names {
                let key = SetKey::PodContainer {
                    namespace: Arc::clone(&ns),
                    pod: Arc::clone(&pod),
                    container: Arc::clone(c),
                };
                let mut s = MetricSet::new(key, t);
                s.node = Some(Arc::clone(&node));
                values(&mut s, &all[..20], p as i64);
                labeled(&mut s, &[Arc::clone(&root), Arc::clone(&logs)]);
                sets.push(s);
            }
        }
    }
    for ns in NAMESPACES {
        let mut s = MetricSet::new(
            SetKey::Namespace {
                namespace: Arc::from(ns),
            },
            t,
        );
        values(&mut s, &all[..7], 1);
        sets.push(s);
    }
    let mut s = MetricSet::new(SetKey::Cluster, t);
    values(&mut s, &all[..7], 1);
    sets.push(s);
    Batch::new(t, sets)
}

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn new_store(resolution_s: i64) -> Store {
    Store::new(
        StoreOptions {
            history: 900 * SEC,
            resolution: resolution_s * SEC,
            limit: heapster_rs::store::SeriesLimit::Bytes(
                heapster_rs::store::DEFAULT_STORE_MEMORY_BYTES,
            ),
            history_metrics: heapster_rs::store::HistoryMetrics::default(),
        },
        &mut Registry::default(),
    )
}

/// Fills a store with a full history and prints its size per node.
fn report_memory(nodes: usize, resolution_s: i64) {
    let mut b = batch(nodes, 0);
    let before = rss_bytes();
    let store = new_store(resolution_s);
    let points = 900 / resolution_s + 2;
    let started = std::time::Instant::now();
    for i in 0..points {
        b.timestamp = i * resolution_s * SEC;
        store.push(&b);
    }
    let per_batch = started.elapsed() / points as u32;
    let after = rss_bytes();
    let est = store.approx_bytes();
    let rss = match (before, after) {
        (Some(a), Some(b)) => format!(
            "{:.1} KiB",
            b.saturating_sub(a) as f64 / nodes as f64 / 1024.0
        ),
        _ => "n/a".into(),
    };
    println!(
        "store memory: {nodes} nodes, {resolution_s}s resolution, 15m history: {} series, \
         estimate {:.1} KiB/node ({} B/series), resident growth {rss}/node, {per_batch:?} per \
         batch",
        store.series_count(),
        est as f64 / nodes as f64 / 1024.0,
        est / store.series_count().max(1),
    );
    black_box(store);
}

fn ingest(c: &mut Criterion) {
    // 5,000 nodes at 15 s takes minutes to fill; per node it matches 1,000 nodes.
    for (nodes, resolution_s) in [(1_000, 60), (1_000, 15), (5_000, 60)] {
        report_memory(nodes, resolution_s);
    }
    let mut g = c.benchmark_group("store_ingest");
    g.sample_size(10);
    for nodes in [1_000, 5_000] {
        let mut b = batch(nodes, 0);
        let store = new_store(60);
        // Warm: a full history, so each timed push also drops the oldest point.
        for i in 0..16 {
            b.timestamp = i * 60 * SEC;
            store.push(&b);
        }
        g.throughput(Throughput::Elements(b.sets.len() as u64));
        g.bench_function(BenchmarkId::new("batch", nodes), |bench| {
            bench.iter(|| {
                b.timestamp += 60 * SEC;
                store.push(black_box(&b));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
