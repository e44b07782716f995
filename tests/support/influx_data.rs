//! The InfluxDB sink in tests: its configuration with short retry delays, sample batches shaped
//! like a small cluster, and reading points back from a real server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use heapster_rs::config::InfluxConfig;
use heapster_rs::model::time::{NANOS_PER_SEC, align_down, now};
use heapster_rs::model::{Batch, LabeledValue, Metric, MetricSet, SetKey, Value, Values};
use heapster_rs::sink::influxdb::{DeliveryTuning, InfluxSink};
use prometheus_client::registry::Registry;
use serde_json::Value as Json;

use super::influxd::Influxd;

/// One rustls crypto provider for the process.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub const MINUTE: i64 = 60 * NANOS_PER_SEC;

pub fn config(url: url::Url, db: &str) -> InfluxConfig {
    InfluxConfig {
        url,
        user: "root".into(),
        password: "root".into(),
        db: db.into(),
        retention: None,
        retention_policy: "default".into(),
        insecure_ssl: false,
        with_fields: false,
        cluster_name: "test-cluster".into(),
        disable_counter_metrics: false,
        concurrency: 2,
        version: None,
        token: None,
        org: None,
        bucket: None,
        batch_size: 5000,
        buffer_points: 1_000_000,
        gzip: true,
        gzip_level: None,
        spool: Default::default(),
    }
}

pub fn fast() -> DeliveryTuning {
    DeliveryTuning {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        request_timeout: Duration::from_secs(10),
        room_wait: Duration::from_secs(5),
    }
}

pub fn sink(cfg: &InfluxConfig) -> InfluxSink {
    InfluxSink::with_tuning(cfg, &mut Registry::default(), fast()).expect("sink builds")
}

/// A recent window end (inside any retention policy), `back` minutes ago.
pub fn recent(back: i64) -> i64 {
    align_down(now(), MINUTE) - back * MINUTE
}

/// A small but realistic cluster: 2 nodes × 2 system containers × 2 pods × 2 containers.
pub fn sample_batch(ts: i64) -> Batch {
    cluster_batch(ts, 2, 2)
}

/// `nodes` nodes with 2 system containers and `pods` pods of 2 containers each.
pub fn cluster_batch(ts: i64, nodes: usize, pods: usize) -> Batch {
    let mut n = 0i64;
    let mut next = || {
        n += 1;
        n
    };
    let mut sets = Vec::new();
    for node in 0..nodes {
        let name: Arc<str> = format!("node-{node}").into();
        let mut s = MetricSet::new(SetKey::Node { node: name.clone() }, ts);
        s.node = Some(name.clone());
        s.labels =
            Some(format!("kubernetes.io/hostname:node-{node},kubernetes.io/os:linux").into());
        s.schedulable = Some(node == 0);
        for m in [
            Metric::Uptime,
            Metric::CpuUsage,
            Metric::CpuUsageRate,
            Metric::MemoryUsage,
            Metric::NetworkRx,
            Metric::CpuRequest,
        ] {
            s.set(m, Value::Int(next() * 1_000_003));
        }
        for m in [
            Metric::MemoryPageFaultsRate,
            Metric::NetworkRxRate,
            Metric::CpuNodeCapacity,
            Metric::CpuNodeUtilization,
        ] {
            s.set(m, Value::Float(next() as f64 / 7.0));
        }
        for m in [Metric::FilesystemUsage, Metric::FilesystemLimit] {
            s.labeled.push(LabeledValue {
                metric: m,
                pvc: None,
                resource_id: "/".into(),
                value: Value::Int(next()),
            });
        }
        sets.push(s);
        for sys in ["kubelet", "docker-daemon"] {
            let mut s = MetricSet::new(
                SetKey::SysContainer {
                    node: name.clone(),
                    container: sys.into(),
                },
                ts,
            );
            s.node = Some(name.clone());
            for m in [Metric::Uptime, Metric::CpuUsageRate, Metric::MemoryUsage] {
                s.set(m, Value::Int(next()));
            }
            sets.push(s);
        }
        for pod in 0..pods {
            let (ns, pod_name): (Arc<str>, Arc<str>) = (
                ["default", "kube-system"][pod % 2].into(),
                format!("web-{node}-{pod}").into(),
            );
            let mut p = MetricSet::new(
                SetKey::Pod {
                    namespace: ns.clone(),
                    pod: pod_name.clone(),
                },
                ts,
            );
            p.node = Some(name.clone());
            p.labels = Some("app:web,pod-template-hash:5d8f".into());
            p.pod_uid = Some(format!("uid-{node}-{pod}").into());
            for m in [
                Metric::Uptime,
                Metric::CpuUsageRate,
                Metric::MemoryUsage,
                Metric::NetworkTx,
                Metric::RestartCount,
            ] {
                p.set(m, Value::Int(next()));
            }
            p.set(Metric::NetworkRxRate, Value::Float(next() as f64 + 0.25));
            sets.push(p);
            for c in ["app", "sidecar"] {
                let key = SetKey::PodContainer {
                    namespace: ns.clone(),
                    pod: pod_name.clone(),
                    container: c.into(),
                };
                let mut s = MetricSet::new(key, ts);
                s.node = Some(name.clone());
                s.labels = Some("app:web,pod-template-hash:5d8f".into());
                s.image = Some(format!("registry.k8s.io/{c}:v1.2").into());
                for m in [
                    Metric::Uptime,
                    Metric::CpuUsage,
                    Metric::CpuUsageRate,
                    Metric::MemoryWorkingSet,
                    Metric::CpuLimit,
                    Metric::EphemeralStorageUsage,
                ] {
                    s.set(m, Value::Int(next()));
                }
                for rid in ["/", "logs"] {
                    s.labeled.push(LabeledValue {
                        metric: Metric::FilesystemUsage,
                        pvc: None,
                        resource_id: rid.into(),
                        value: Value::Int(next()),
                    });
                }
                sets.push(s);
            }
        }
    }
    for ns in ["default", "kube-system"] {
        let mut s = MetricSet::new(
            SetKey::Namespace {
                namespace: ns.into(),
            },
            ts,
        );
        s.values = Values::from([
            (Metric::CpuUsageRate, Value::Int(next())),
            (Metric::MemoryUsage, Value::Int(next())),
        ]);
        sets.push(s);
    }
    let mut c = MetricSet::new(SetKey::Cluster, ts);
    c.values = Values::from([
        (Metric::CpuUsageRate, Value::Int(next())),
        (Metric::MemoryUsage, Value::Int(next())),
    ]);
    sets.push(c);
    Batch::new(ts, sets)
}

/// Rows of every series of the first result: (series name, column → value) per row.
pub fn rows(json: &Json) -> Vec<(String, BTreeMap<String, Json>)> {
    let mut out = Vec::new();
    for s in json["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let cols: Vec<&str> = s["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c.as_str().expect("name"))
            .collect();
        for row in s["values"].as_array().expect("values") {
            let map = cols
                .iter()
                .zip(row.as_array().expect("row"))
                .filter(|(_, v)| !v.is_null())
                .map(|(c, v)| (c.to_string(), v.clone()))
                .collect();
            out.push((s["name"].as_str().unwrap_or_default().to_owned(), map));
        }
    }
    out
}

/// Polls `check` every 50 ms until it holds or `secs` pass.
pub async fn eventually<F: AsyncFnMut() -> bool>(secs: u64, what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sum of `count(value)` over all measurements at one timestamp.
pub async fn count_at(server: &Influxd, db: &str, ts: i64) -> u64 {
    let json = server
        .query(
            db,
            &format!("SELECT count(\"value\") FROM /.*/ WHERE time = {ts}"),
        )
        .await;
    rows(&json)
        .iter()
        .map(|(_, r)| r["count"].as_u64().unwrap_or(0))
        .sum()
}

/// Exports every batch; each export must return within the wait for room (`fast()`: 5 s)
/// whatever InfluxDB does.
pub async fn export_all(sink: &mut InfluxSink, batches: &[Batch]) {
    use heapster_rs::sink::Sink;
    for b in batches {
        tokio::time::timeout(Duration::from_secs(10), sink.export(Arc::new(b.clone())))
            .await
            .expect("export waits on InfluxDB at most the wait for room");
    }
}

/// Every batch is in InfluxDB, whole (one value per series and timestamp: a point sent twice
/// would not count twice, a point lost would be missing).
pub async fn all_written(server: &Influxd, db: &str, batches: &[Batch]) {
    for b in batches {
        assert_eq!(
            count_at(server, db, b.timestamp).await,
            b.point_count() as u64,
            "batch at {}",
            b.timestamp
        );
    }
}

/// A real server and the fault proxy in front of it; None (test skipped) without `influxd`.
pub async fn proxied() -> Option<(Influxd, super::proxy::FaultProxy)> {
    init();
    let server = Influxd::start()?;
    let proxy = super::proxy::FaultProxy::start(server.url()).await;
    Some((server, proxy))
}

/// `n` sample batches a few minutes old, oldest first.
pub fn batches(n: i64) -> Vec<Batch> {
    (0..n).map(|i| sample_batch(recent(n + 5 - i))).collect()
}
