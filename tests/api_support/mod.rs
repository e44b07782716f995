//! Shared by the API tests: a store filled with two hand-built batches, the cluster state
//! with labels, and a one-shot request helper (no sockets).
#![allow(dead_code)]

use std::io::Read;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use prometheus_client::registry::Registry;
use tower::ServiceExt;

use heapster_rs::api::health::Health;
use heapster_rs::api::{ApiState, router};
use heapster_rs::model::cluster::{ClusterState, LabelPairs, NodeInfo, PodInfo};
use heapster_rs::model::time::NANOS_PER_SEC as SEC;
use heapster_rs::model::{Batch, LabeledValue, Metric, MetricSet, Nanos, SetKey, Value};
use heapster_rs::store::{Store, StoreOptions};

/// Batch timestamps: 2026-01-01T00:00:00Z and 10 s later.
pub const T0: Nanos = 1_767_225_600 * SEC;
pub const T1: Nanos = T0 + 10 * SEC;

pub fn s(x: &str) -> Arc<str> {
    Arc::from(x)
}

/// Node `n1`/`n2`; pods `default/p1` (containers `app`, `side`) and `default/p2` (`app`) on
/// n1, `kube-system/dns` on n2. Cpu of container `c` in pod p at time t: `rate * (t - T0 + 100 s)`.
pub fn set(key: SetKey, node: &str, t: Nanos, cpu_nanocores: i64, ws: i64) -> MetricSet {
    let mut m = MetricSet::new(key, t);
    m.node = Some(s(node));
    m.create_time = Some(T0 - 100 * SEC);
    let secs = (t - T0) / SEC + 100;
    m.set(Metric::CpuUsage, Value::Int(cpu_nanocores * secs));
    m.set(Metric::CpuUsageRate, Value::Int(cpu_nanocores / 1_000_000));
    m.set(Metric::MemoryUsage, Value::Int(ws + 1024));
    m.set(Metric::MemoryWorkingSet, Value::Int(ws));
    m
}

pub fn batch(t: Nanos) -> Batch {
    let c = |ns: &str, p: &str, c: &str| SetKey::PodContainer {
        namespace: s(ns),
        pod: s(p),
        container: s(c),
    };
    let p = |ns: &str, p: &str| SetKey::Pod {
        namespace: s(ns),
        pod: s(p),
    };
    let mut n1 = set(
        SetKey::Node { node: s("n1") },
        "n1",
        t,
        800_000_000,
        4 << 30,
    );
    n1.set(Metric::CpuNodeUtilization, Value::Float(0.2));
    n1.labeled.push(LabeledValue {
        metric: Metric::FilesystemUsage,
        pvc: None,
        resource_id: s("/"),
        value: Value::Int(123_456),
    });
    let mut ns = MetricSet::new(
        SetKey::Namespace {
            namespace: s("default"),
        },
        t,
    );
    ns.set(Metric::CpuUsageRate, Value::Int(350));
    let mut ks = MetricSet::new(
        SetKey::Namespace {
            namespace: s("kube-system"),
        },
        t,
    );
    ks.set(Metric::CpuUsageRate, Value::Int(5));
    let mut cluster = MetricSet::new(SetKey::Cluster, t);
    cluster.set(Metric::CpuUsageRate, Value::Int(355));
    let mut sets = vec![
        n1,
        set(
            SetKey::Node { node: s("n2") },
            "n2",
            t,
            100_000_000,
            1 << 30,
        ),
        set(
            SetKey::SysContainer {
                node: s("n1"),
                container: s("kubelet"),
            },
            "n1",
            t,
            20_000_000,
            64 << 20,
        ),
        set(p("default", "p1"), "n1", t, 300_000_000, 192 << 20),
        set(c("default", "p1", "app"), "n1", t, 250_000_000, 128 << 20),
        set(c("default", "p1", "side"), "n1", t, 50_000_000, 64 << 20),
        set(p("default", "p2"), "n1", t, 50_000_000, 32 << 20),
        set(c("default", "p2", "app"), "n1", t, 50_000_000, 32 << 20),
        set(p("kube-system", "dns"), "n2", t, 5_000_000, 20 << 20),
        set(
            c("kube-system", "dns", "coredns"),
            "n2",
            t,
            5_000_000,
            20 << 20,
        ),
        ns,
        ks,
        cluster,
    ];
    // Many sys containers on n2 so that some listings are big enough to gzip.
    for i in 0..60 {
        sets.push(set(
            SetKey::SysContainer {
                node: s("n2"),
                container: s(&format!("extra-system-container-{i:03}")),
            },
            "n2",
            t,
            1_000_000,
            1 << 20,
        ));
    }
    Batch::new(t, sets)
}

pub fn labels(pairs: &[(&str, &str)]) -> LabelPairs {
    pairs.iter().map(|(k, v)| (s(k), s(v))).collect()
}

pub fn cluster_state() -> ClusterState {
    let mut st = ClusterState::default();
    for (name, zone) in [("n1", "a"), ("n2", "b")] {
        st.nodes.insert(
            s(name),
            Arc::new(NodeInfo {
                name: s(name),
                label_map: labels(&[("zone", zone), ("kubernetes.io/os", "linux")]),
                ready: true,
                ..Default::default()
            }),
        );
    }
    for (ns, name, app) in [
        ("default", "p1", "web"),
        ("default", "p2", "db"),
        ("kube-system", "dns", "dns"),
    ] {
        st.insert_pod(Arc::new(PodInfo {
            namespace: s(ns),
            name: s(name),
            label_map: labels(&[("app", app)]),
            ..Default::default()
        }));
    }
    st
}

pub fn state(batches: &[Nanos]) -> ApiState {
    let mut registry = Registry::default();
    let store = Store::new(
        StoreOptions {
            history: 900 * SEC,
            resolution: 10 * SEC,
            limit: heapster_rs::store::SeriesLimit::Series(10_000),
            history_metrics: heapster_rs::store::HistoryMetrics::default(),
        },
        &mut registry,
    );
    for t in batches {
        store.push(&batch(*t));
    }
    let health = Arc::new(Health::new(10 * SEC));
    ApiState::new(
        health,
        Arc::new(registry),
        Some(Arc::new(store)),
        Some(heapster_rs::model::cluster::ClusterReader::fixed(
            cluster_state(),
        )),
    )
}

pub fn app() -> Router {
    router(state(&[T0, T1]))
}

/// One request through the router: status, content-encoding, body as JSON (or a string).
pub async fn get_with(
    app: &Router,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, serde_json::Value) {
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = res.status();
    let encoding = res
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    let bytes = if encoding.as_deref() == Some("gzip") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    } else {
        bytes.to_vec()
    };
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, encoding, json)
}

pub async fn get(app: &Router, uri: &str) -> (StatusCode, serde_json::Value) {
    let (status, _, body) = get_with(app, uri, &[]).await;
    (status, body)
}
