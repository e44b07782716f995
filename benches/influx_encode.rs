//! Line-protocol encoding throughput for a cluster of 100 nodes × 30 pods (≈ 3,000 pods,
//! 3,000 containers): points per second, and uncompressed bytes per second.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use heapster_rs::model::{Batch, LabeledValue, Metric, MetricSet, SetKey, Value};
use heapster_rs::sink::influxdb::schema::{BatchEncoder, SchemaOptions};

const TS: i64 = 1_782_000_000_000_000_000;

fn set(key: SetKey, node: &Arc<str>, ints: &[Metric], floats: &[Metric], fs: &[&str]) -> MetricSet {
    let mut s = MetricSet::new(key, TS);
    s.node = Some(Arc::clone(node));
    s.values.extend(
        ints.iter()
            .enumerate()
            .map(|(i, m)| (*m, Value::Int(123_456_789 * (i as i64 + 1)))),
    );
    s.values.extend(
        floats
            .iter()
            .enumerate()
            .map(|(i, m)| (*m, Value::Float(0.1234567 * (i as f64 + 1.0)))),
    );
    for rid in fs {
        for m in [
            Metric::FilesystemUsage,
            Metric::FilesystemLimit,
            Metric::FilesystemAvailable,
        ] {
            s.labeled.push(LabeledValue {
                metric: m,
                pvc: None,
                resource_id: (*rid).into(),
                value: Value::Int(987_654_321),
            });
        }
    }
    s
}

fn cluster(nodes: usize, pods_per_node: usize) -> Batch {
    use Metric::*;
    let mut sets = Vec::new();
    for n in 0..nodes {
        let node: Arc<str> = format!("ip-10-0-{}-{}.ec2.internal", n / 250, n % 250).into();
        let mut s = set(
            SetKey::Node {
                node: Arc::clone(&node),
            },
            &node,
            &[
                Uptime,
                CpuUsage,
                CpuUsageRate,
                MemoryUsage,
                MemoryWorkingSet,
                MemoryRss,
                NetworkRx,
                NetworkTx,
                CpuRequest,
                MemoryRequest,
            ],
            &[
                NetworkRxRate,
                NetworkTxRate,
                CpuNodeCapacity,
                CpuNodeAllocatable,
                CpuNodeUtilization,
                MemoryNodeUtilization,
            ],
            &["/"],
        );
        s.labels = Some("beta.kubernetes.io/arch:amd64,kubernetes.io/os:linux,node.kubernetes.io/instance-type:m5.xlarge,topology.kubernetes.io/zone:eu-west-1a".into());
        s.schedulable = Some(true);
        sets.push(s);
        for sys in ["kubelet", "docker-daemon", "system", "pods"] {
            sets.push(set(
                SetKey::SysContainer {
                    node: Arc::clone(&node),
                    container: sys.into(),
                },
                &node,
                &[Uptime, CpuUsage, CpuUsageRate, MemoryUsage],
                &[],
                &[],
            ));
        }
        for p in 0..pods_per_node {
            let (ns, pod): (Arc<str>, Arc<str>) = (
                format!("team-{}", p % 10).into(),
                format!("api-server-7f9c8d6b5-{n}x{p}").into(),
            );
            let mut ps = set(
                SetKey::Pod {
                    namespace: Arc::clone(&ns),
                    pod: Arc::clone(&pod),
                },
                &node,
                &[
                    Uptime,
                    CpuUsageRate,
                    MemoryUsage,
                    MemoryWorkingSet,
                    NetworkRx,
                    NetworkTx,
                    CpuRequest,
                    MemoryLimit,
                    RestartCount,
                ],
                &[NetworkRxRate, NetworkTxRate],
                &[],
            );
            ps.labels =
                Some("app.kubernetes.io/name:api-server,pod-template-hash:7f9c8d6b5".into());
            sets.push(ps);
            let mut c = set(
                SetKey::PodContainer {
                    namespace: ns,
                    pod,
                    container: "api".into(),
                },
                &node,
                &[
                    Uptime,
                    CpuUsage,
                    CpuUsageRate,
                    MemoryUsage,
                    MemoryWorkingSet,
                    MemoryRss,
                    CpuRequest,
                    CpuLimit,
                    MemoryRequest,
                    MemoryLimit,
                    RestartCount,
                ],
                &[MemoryPageFaultsRate],
                &["/", "logs"],
            );
            c.image = Some("registry.example.com/team/api-server:v1.42.0".into());
            c.labels = Some("app.kubernetes.io/name:api-server,pod-template-hash:7f9c8d6b5".into());
            sets.push(c);
        }
    }
    Batch::new(TS, sets)
}

fn bench(c: &mut Criterion) {
    let batch = cluster(100, 30);
    let points = batch.point_count() as u64;
    let mut group = c.benchmark_group("influx_encode_100x30");
    group.throughput(Throughput::Elements(points));
    group.sample_size(20);
    for (name, with_fields, gzip) in [
        ("default", false, false),
        ("default_gzip", false, true),
        ("withfields", true, false),
    ] {
        let mut enc = BatchEncoder::new(SchemaOptions {
            cluster_name: "prod-eu".into(),
            with_fields,
            disable_counter_metrics: false,
            batch_size: 5000,
            gzip,
            gzip_level: None,
        });
        let mut out = Vec::new();
        let stats = enc.encode(&batch, &mut out);
        let sent: usize = out.iter().map(|c| c.body.len()).sum();
        eprintln!(
            "{name}: {points} points, {} lines, {:.1} bytes/point, {:.1} sent bytes/point",
            stats.lines,
            stats.bytes as f64 / points as f64,
            sent as f64 / points as f64
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(enc.encode(black_box(&batch), &mut out))
            })
        });
    }
    group.finish();

    let mut enc = BatchEncoder::new(SchemaOptions {
        cluster_name: "prod-eu".into(),
        with_fields: false,
        disable_counter_metrics: false,
        batch_size: 5000,
        gzip: false,
        gzip_level: None,
    });
    let mut out = Vec::new();
    let bytes = enc.encode(&batch, &mut out).bytes as u64;
    let mut group = c.benchmark_group("influx_encode_100x30_bytes");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(20);
    group.bench_function("default", |b| {
        b.iter(|| {
            out.clear();
            black_box(enc.encode(black_box(&batch), &mut out))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
