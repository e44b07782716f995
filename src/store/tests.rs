//! Store unit tests: bounds, expiry, eviction, listings, points, resource usage.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use super::*;
use crate::model::test_keys::{container, node, pod};
use crate::model::{LabeledValue, Metric, MetricSet, Value, time::NANOS_PER_SEC as SEC};

fn set(key: SetKey, t: Nanos, cpu: i64, ws: i64) -> MetricSet {
    let mut s = MetricSet::new(key, t);
    s.node = Some(Arc::from("n1"));
    s.create_time = Some(1);
    s.set(Metric::CpuUsage, Value::Int(cpu));
    s.set(Metric::CpuUsageRate, Value::Int(cpu / 1_000_000));
    s.set(Metric::MemoryWorkingSet, Value::Int(ws));
    s.set(Metric::MemoryNodeUtilization, Value::Float(0.25));
    s
}

fn store(history_s: i64, max_series: usize) -> Store {
    Store::new(
        StoreOptions {
            history: history_s * SEC,
            resolution: 10 * SEC,
            limit: SeriesLimit::Series(max_series),
            history_metrics: crate::store::HistoryMetrics::ALL,
        },
        &mut Registry::default(),
    )
}

fn batch(t: Nanos, sets: Vec<MetricSet>) -> Batch {
    Batch::new(t, sets)
}

#[test]
fn history_is_bounded_by_age() {
    let s = store(60, 100);
    for i in 0..20 {
        let t = i * 10 * SEC;
        s.push(&batch(t, vec![set(node("n1"), t, i * 1_000_000_000, 100)]));
    }
    let pts = s
        .points(&node("n1"), Metric::CpuUsageRate, None, 0, i64::MAX)
        .expect("known");
    assert_eq!(pts.len(), 7, "60 s of 10 s points, both ends included");
    assert_eq!(pts.last().map(|p| p.value), Some(Value::Int(19_000)));
    // Non-history metrics: only the latest point.
    let pts = s
        .points(
            &node("n1"),
            Metric::MemoryNodeUtilization,
            None,
            0,
            i64::MAX,
        )
        .expect("known");
    assert_eq!(
        pts,
        vec![Point {
            timestamp: 190 * SEC,
            value: Value::Float(0.25)
        }]
    );
    // Time range filters.
    let pts = s
        .points(
            &node("n1"),
            Metric::CpuUsageRate,
            None,
            150 * SEC,
            170 * SEC,
        )
        .expect("known");
    assert_eq!(pts.len(), 3);
}

#[test]
fn vanished_series_expire() {
    let s = store(60, 100);
    s.push(&batch(
        0,
        vec![set(node("a"), 0, 1, 1), set(node("b"), 0, 1, 1)],
    ));
    s.push(&batch(60 * SEC, vec![set(node("a"), 60 * SEC, 2, 1)]));
    assert_eq!(s.nodes().len(), 2, "b is kept for the history");
    s.push(&batch(61 * SEC, vec![set(node("a"), 61 * SEC, 3, 1)]));
    assert_eq!(s.nodes(), vec![Arc::<str>::from("a")]);
}

#[test]
fn cap_evicts_only_series_that_missed_a_whole_tick() {
    let s = store(600, 2);
    s.push(&batch(
        0,
        vec![set(node("a"), 0, 1, 1), set(node("b"), 0, 1, 1)],
    ));
    let tick = |t: Nanos, names: &[&str]| {
        let sets = names.iter().map(|n| set(node(n), t, 1, 1)).collect();
        s.push(&batch(t, sets));
    };
    tick(10 * SEC, &["b", "c"]);
    assert!(s.contains(&node("a")), "a was in the last tick: it stays");
    assert!(!s.contains(&node("c")), "refused");
    tick(20 * SEC, &["b", "c"]);
    assert!(
        !s.contains(&node("a")),
        "a missed a whole tick: it made room"
    );
    assert!(s.contains(&node("c")));
    tick(30 * SEC, &["d", "b", "c"]);
    assert!(!s.contains(&node("d")), "refused: every series is current");
    assert_eq!(s.series_count(), 2);
}

/// Counters of the store's metrics, by their text exposition line.
fn counter(registry: &Registry, line: &str) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
        .unwrap_or(0)
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("logs")).into_owned()
    }
}

/// A steady cluster larger than the cap, a piece per node, the nodes in a different order every
/// tick: the series taken in the first tick are kept, the others refused, none evicted.
#[test]
fn a_steady_cluster_above_the_cap_keeps_the_same_series_without_churn() {
    let mut registry = Registry::default();
    let s = Store::new(
        StoreOptions {
            history: 600 * SEC,
            resolution: 10 * SEC,
            limit: SeriesLimit::Series(10),
            history_metrics: crate::store::HistoryMetrics::default(),
        },
        &mut registry,
    );
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // 4 nodes with 3 pods each (16 series), then the namespace and the cluster: 18 series.
    let node_sets = |n: usize, t: Nanos| {
        let name = format!("n{n}");
        let mut sets = vec![set(node(&name), t, 1, 1)];
        for p in 0..3 {
            sets.push(set(pod("ns", &format!("{name}-p{p}")), t, 1, 1));
        }
        sets
    };
    let tick = |i: i64, order: &[usize]| {
        let t = i * 10 * SEC;
        for n in order {
            s.push(&Batch::piece(t, node_sets(*n, t)));
        }
        s.push(&batch(
            t,
            vec![
                set(
                    SetKey::Namespace {
                        namespace: "ns".into(),
                    },
                    t,
                    1,
                    1,
                ),
                set(SetKey::Cluster, t, 1, 1),
            ],
        ));
    };
    let held = || {
        let mut keys: Vec<String> = s.read().series.keys().map(|k| k.to_string()).collect();
        keys.sort();
        keys
    };
    tracing::subscriber::with_default(subscriber, || {
        tick(0, &[0, 1, 2, 3]);
        let first = held();
        assert_eq!(first.len(), 10);
        assert_eq!(
            counter(&registry, "store_series_evicted_total{reason=\"refused\"}"),
            8
        );
        let orders: [&[usize]; 3] = [&[3, 2, 1, 0], &[2, 3, 0, 1], &[0, 1, 2, 3]];
        for i in 1..=6 {
            tick(i, orders[i as usize % 3]);
            assert_eq!(held(), first, "tick {i}: the same series");
            assert_eq!(s.latest_timestamp(), Some(i * 10 * SEC));
        }
        // Every held series was updated every tick.
        let last = 60 * SEC;
        assert!(s.read().series.values().all(|x| x.last_seen == last));
    });
    let capacity = "store_series_evicted_total{reason=\"capacity\"}";
    assert_eq!(counter(&registry, capacity), 0, "no eviction for capacity");
    assert_eq!(
        counter(&registry, "store_series_evicted_total{reason=\"refused\"}"),
        7 * 8
    );
    let text = logs.text();
    assert_eq!(
        text.matches("store full").count(),
        1,
        "one warning:\n{text}"
    );
    assert!(
        text.contains("8 new series refused this tick")
            && text.contains("to hold all 18 series, raise --max_series=18"),
        "{text}"
    );
}

#[test]
fn the_full_warning_repeats_every_five_minutes_and_names_the_memory_flag() {
    let s = Store::new(
        StoreOptions {
            history: 900 * SEC,
            resolution: 15 * SEC,
            limit: SeriesLimit::Bytes(1 << 20),
            history_metrics: crate::store::HistoryMetrics::default(),
        },
        &mut Registry::default(),
    );
    let per = s.series_bytes();
    assert_eq!(s.max_series(), (1 << 20) / per);
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .finish();
    let wanted = s.max_series() + 5;
    let sets = |t: Nanos| {
        (0..wanted)
            .map(|i| set(pod("ns", &format!("p{i}")), t, 1, 1))
            .collect::<Vec<_>>()
    };
    tracing::subscriber::with_default(subscriber, || {
        // 15 s ticks for 10 minutes: warnings at 0, 5 and 10 minutes.
        for i in 0..=40 {
            let t = i * 15 * SEC;
            s.push(&batch(t, sets(t)));
        }
    });
    let text = logs.text();
    assert_eq!(text.matches("store full").count(), 3, "{text}");
    let mib = (wanted * per).div_ceil(1 << 20);
    assert!(
        text.contains(&format!("raise --store_memory_bytes={mib}Mi")),
        "{text}"
    );
}

#[test]
fn the_default_memory_holds_a_10000_node_cluster_at_15_s() {
    // 95 series a node with 30 pods of two containers, 15 minutes of two metrics every 15 s.
    let per = series_bytes(HistoryMetrics::default(), max_points(900 * SEC, 15 * SEC));
    let held = DEFAULT_STORE_MEMORY_BYTES as usize / per;
    assert!(held >= 10_000 * 95 + 1_000, "{held} series of {per} bytes");
}

#[test]
fn listings_and_metric_names() {
    let s = store(600, 100);
    let mut ns = MetricSet::new(
        SetKey::Namespace {
            namespace: Arc::from("default"),
        },
        0,
    );
    ns.set(Metric::CpuUsageRate, Value::Int(5));
    let mut n = set(node("n1"), 0, 1, 1);
    n.labeled.push(LabeledValue {
        metric: Metric::FilesystemUsage,
        pvc: None,
        resource_id: Arc::from("/"),
        value: Value::Int(42),
    });
    s.push(&batch(
        0,
        vec![
            n,
            ns,
            set(pod("default", "p1"), 0, 1, 1),
            set(pod("default", "p0"), 0, 1, 1),
            set(container("default", "p1", "c"), 0, 1, 1),
            set(
                SetKey::SysContainer {
                    node: Arc::from("n1"),
                    container: Arc::from("kubelet"),
                },
                0,
                1,
                1,
            ),
        ],
    ));
    let names =
        |v: Option<Vec<Arc<str>>>| v.map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        names(s.pods("default")),
        Some(vec!["p0".into(), "p1".into()])
    );
    assert_eq!(names(s.pods("nope")), None);
    assert_eq!(names(s.containers("default", "p1")), Some(vec!["c".into()]));
    assert_eq!(names(s.containers("default", "p0")), Some(vec![]));
    assert_eq!(names(s.sys_containers("n1")), Some(vec!["kubelet".into()]));
    assert_eq!(s.pods_on_node("n1").map(|v| v.len()), Some(2));
    let m = s.metric_names(&node("n1")).expect("known");
    assert!(m.contains(&"cpu/usage_rate") && m.contains(&"filesystem/usage"));
    let fs = s.points(&node("n1"), Metric::FilesystemUsage, Some("/"), 0, 10);
    assert_eq!(fs.map(|v| v.len()), Some(1));
    let fs = s.points(&node("n1"), Metric::FilesystemUsage, None, 0, 10);
    assert_eq!(fs.map(|v| v.len()), Some(0));
}

#[test]
fn pod_usage_drops_pods_with_an_incomplete_container() {
    let s = store(600, 100);
    let sets = |t: Nanos, n: i64| {
        let mut broken = MetricSet::new(container("ns", "b", "c2"), t);
        broken.set(Metric::CpuUsage, Value::Int(n * SEC));
        vec![
            set(node("n1"), t, n * SEC, 1024),
            set(container("ns", "a", "c1"), t, n * SEC / 2, 2048),
            set(container("ns", "a", "c2"), t, n * SEC / 4, 4096),
            set(container("ns", "b", "c1"), t, n * SEC, 4096),
            broken,
        ]
    };
    s.push(&batch(10 * SEC, sets(10 * SEC, 1)));
    assert!(
        s.pod_usage(None, None).is_empty(),
        "one sample: no rate yet"
    );
    s.push(&batch(20 * SEC, sets(20 * SEC, 2)));
    let pods = s.pod_usage(None, None);
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(&*pods[0].name, "a");
    assert_eq!(pods[0].containers[0].usage.cpu_nanocores, SEC / 20);
    assert_eq!(pods[0].containers[1].usage.memory_bytes, 4096);
    assert_eq!(s.pod_usage(Some("ns"), Some("a")).len(), 1);
    assert_eq!(s.pod_usage(Some("other"), None).len(), 0);
    let nodes = s.node_usage(None);
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].1.cpu_nanocores, SEC / 10);
    assert_eq!(nodes[0].1.window, 10 * SEC);
    assert_eq!(s.node_usage(Some("n2")).len(), 0);
}

#[test]
fn history_keeps_gaps_and_values_beyond_32_bits() {
    let s = store(600, 100);
    let big = 5i64 << 32; // 20 GiB: the first point sets the base
    for i in 0..6i64 {
        let t = i * 10 * SEC;
        // The node misses the batches at 20 s and 30 s; at 50 s memory jumps by 8 GiB, which
        // no longer fits 32 bits relative to the base.
        let mut sets = vec![set(node("other"), t, 0, 1)];
        if i != 2 && i != 3 {
            let ws = if i == 5 { big + (8 << 30) } else { big + i };
            sets.push(set(node("n1"), t, i * 1_000_000_000, ws));
        }
        s.push(&batch(t, sets));
    }
    let pts = s
        .points(&node("n1"), Metric::MemoryWorkingSet, None, 0, i64::MAX)
        .expect("known");
    let got: Vec<(Nanos, i64)> = pts
        .iter()
        .map(|p| (p.timestamp, p.value.as_i64()))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, big),
            (10 * SEC, big + 1),
            (40 * SEC, big + 4),
            (50 * SEC, big + (8 << 30))
        ]
    );
    let from_30s = s
        .points(&node("n1"), Metric::CpuUsageRate, None, 30 * SEC, 45 * SEC)
        .expect("known");
    assert_eq!(
        from_30s,
        vec![Point {
            timestamp: 40 * SEC,
            value: Value::Int(4_000)
        }]
    );
}

#[test]
fn a_batch_at_the_same_timestamp_replaces_the_newest_point() {
    let s = store(600, 100);
    s.push(&batch(0, vec![set(node("n1"), 0, 0, 1)]));
    s.push(&batch(10 * SEC, vec![set(node("n1"), 10 * SEC, 0, 2)]));
    s.push(&batch(10 * SEC, vec![set(node("n1"), 10 * SEC, 0, 3)]));
    let pts = s
        .points(&node("n1"), Metric::MemoryWorkingSet, None, 0, i64::MAX)
        .expect("known");
    let got: Vec<i64> = pts.iter().map(|p| p.value.as_i64()).collect();
    assert_eq!(got, vec![1, 3]);
}

/// Containers with the same filesystems share one label shape; a shape nobody uses is forgotten.
#[test]
fn label_shapes_are_shared_and_pruned() {
    let s = store(30, 100);
    let fs = |mut set: MetricSet, ids: &[&str]| {
        for (i, id) in ids.iter().enumerate() {
            set.labeled.push(LabeledValue {
                metric: Metric::FilesystemUsage,
                pvc: None,
                resource_id: Arc::from(*id),
                value: Value::Int(i as i64 + 7),
            });
        }
        set
    };
    let sets = |t: Nanos, third: &[&str]| {
        vec![
            fs(set(container("ns", "p", "a"), t, 1, 1), &["/", "logs"]),
            fs(set(container("ns", "p", "b"), t, 1, 1), &["/", "logs"]),
            fs(set(container("ns", "q", "c"), t, 1, 1), third),
        ]
    };
    s.push(&batch(0, sets(0, &["/", "logs", "Volume:x"])));
    assert_eq!(s.read().shapes.len(), 2);
    // The third container changes shape: its old one goes.
    s.push(&batch(10 * SEC, sets(10 * SEC, &["/"])));
    assert_eq!(s.read().shapes.len(), 2);
    let b = container("ns", "p", "b");
    assert_eq!(
        s.read().series[&b].latest_labeled(Metric::FilesystemUsage, "logs"),
        Some(Value::Int(8))
    );
    assert_eq!(
        s.read().series[&container("ns", "q", "c")].latest_labeled(Metric::FilesystemUsage, "logs"),
        None
    );
    // Everything expires: no shape is left.
    s.push(&batch(100 * SEC, vec![set(node("n1"), 100 * SEC, 1, 1)]));
    assert_eq!(s.read().shapes.len(), 0);
}

#[test]
fn a_tick_in_pieces_is_stored_like_a_whole_tick() {
    let (whole, pieces) = (store(60, 100), store(60, 100));
    let _ = (whole.snapshot(), pieces.snapshot());
    for i in 0..8 {
        let t = i * 10 * SEC;
        let sets = vec![
            set(node("a"), t, i * 1_000_000_000, 100 + i),
            set(node("b"), t, i * 2_000_000_000, 200),
            set(pod("ns", "p"), t, i * 3_000_000_000, 300),
        ];
        whole.push(&batch(t, sets.clone()));
        pieces.push(&Batch::piece(t, sets[..1].to_vec()));
        pieces.push(&Batch::piece(t, sets[1..2].to_vec()));
        if i > 0 {
            // Until the last piece, the newest complete tick is the previous one.
            assert_eq!(pieces.latest_timestamp(), Some(t - 10 * SEC));
        }
        pieces.push(&Batch::new(t, sets[2..].to_vec()));
        assert_eq!(pieces.latest_timestamp(), Some(t));
    }
    assert_eq!(pieces.batches(), whole.batches());
    assert_eq!(pieces.series_count(), whole.series_count());
    for key in [node("a"), node("b"), pod("ns", "p")] {
        for m in [Metric::CpuUsageRate, Metric::MemoryWorkingSet] {
            assert_eq!(
                pieces.points(&key, m, None, 0, i64::MAX),
                whole.points(&key, m, None, 0, i64::MAX),
                "{key} {m:?}"
            );
        }
    }
    assert_eq!(pieces.node_usage(None), whole.node_usage(None));
    // The test tap puts the pieces back together.
    let (a, b) = (whole.snapshot(), pieces.snapshot());
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(
            (a.timestamp, &a.sets, a.more),
            (b.timestamp, &b.sets, b.more)
        );
    }
}

#[test]
fn an_abandoned_tick_does_not_block_the_next() {
    let s = store(60, 100);
    s.push(&batch(0, vec![set(node("a"), 0, 1, 1)]));
    // Tick 10 s: a piece, never ended. Tick 20 s comes whole.
    s.push(&Batch::piece(
        10 * SEC,
        vec![set(node("a"), 10 * SEC, 2, 1)],
    ));
    s.push(&batch(20 * SEC, vec![set(node("a"), 20 * SEC, 3, 1)]));
    assert_eq!(s.latest_timestamp(), Some(20 * SEC));
    let pts = s
        .points(&node("a"), Metric::MemoryWorkingSet, None, 0, i64::MAX)
        .expect("known");
    assert_eq!(
        pts.iter().map(|p| p.timestamp).collect::<Vec<_>>(),
        [0, 10 * SEC, 20 * SEC]
    );
    // A late piece of the abandoned tick is refused.
    s.push(&Batch::piece(
        10 * SEC,
        vec![set(node("b"), 10 * SEC, 2, 1)],
    ));
    assert!(!s.contains(&node("b")));
}

#[test]
fn an_entity_is_current_only_in_the_newest_batch() {
    let s = store(600, 100);
    assert!(!s.is_current(&node("n1")), "empty store");
    s.push(&batch(
        0,
        vec![set(node("n1"), 0, 0, 1), set(node("n2"), 0, 0, 1)],
    ));
    s.push(&batch(10 * SEC, vec![set(node("n2"), 10 * SEC, 0, 1)]));
    // n1 left this replica's batches: its history stays, it is no longer held.
    assert!(s.contains(&node("n1")) && !s.is_current(&node("n1")));
    assert!(s.is_current(&node("n2")));
    assert!(!s.is_current(&node("n3")));
}
