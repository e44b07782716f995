//! One HTTP request through the Heapster port's router, in-process (`oneshot`, no socket).
//! Input: the first line is the request target (`/path?query`), each further line a
//! `name: value` header. Never panics, never answers 500, and an answer stays small.
#![no_main]

use std::sync::{Arc, OnceLock, RwLock};

use axum::Router;
use axum::body::Body;
use heapster_rs::api::health::Health;
use heapster_rs::api::{ApiState, router};
use heapster_rs::model::cluster::{ClusterState, NodeInfo, PodInfo};
use heapster_rs::model::{Batch, Metric, MetricSet, SetKey, Value};
use heapster_rs::store::{Store, StoreOptions};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_767_225_600 * SEC;

fn s(x: &str) -> Arc<str> {
    Arc::from(x)
}

fn batch(t: i64) -> Batch {
    let keys = [
        SetKey::Cluster,
        SetKey::Node { node: s("n1") },
        SetKey::Namespace { namespace: s("default") },
        SetKey::Pod { namespace: s("default"), pod: s("p1") },
        SetKey::PodContainer { namespace: s("default"), pod: s("p1"), container: s("app") },
        SetKey::SysContainer { node: s("n1"), container: s("kubelet") },
    ];
    let sets = keys
        .into_iter()
        .map(|key| {
            let mut m = MetricSet::new(key, t);
            m.node = Some(s("n1"));
            m.create_time = Some(T0 - 100 * SEC);
            m.set(Metric::CpuUsage, Value::Int((t - T0) / 10 + 1_000));
            m.set(Metric::CpuUsageRate, Value::Int(100));
            m.set(Metric::MemoryUsage, Value::Int(1 << 20));
            m.set(Metric::MemoryWorkingSet, Value::Int(1 << 19));
            m
        })
        .collect();
    Batch { timestamp: t, sets }
}

fn app() -> &'static Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| {
        let mut registry = prometheus_client::registry::Registry::default();
        let opts = StoreOptions { history: 900 * SEC, resolution: 10 * SEC, max_series: 1_000 };
        let store = Store::new(opts, &mut registry);
        store.push(&batch(T0));
        store.push(&batch(T0 + 10 * SEC));
        let mut cluster = ClusterState::default();
        let labels = vec![("app".to_string(), "web".to_string())];
        cluster.nodes.insert(
            s("n1"),
            Arc::new(NodeInfo { name: s("n1"), label_map: labels.clone(), ready: true, ..Default::default() }),
        );
        cluster.insert_pod(Arc::new(PodInfo {
            namespace: s("default"),
            name: s("p1"),
            label_map: labels,
            ..Default::default()
        }));
        router(ApiState {
            health: Arc::new(Health::new(10 * SEC)),
            registry: Arc::new(registry),
            store: Some(Arc::new(store)),
            cluster: Some(Arc::new(RwLock::new(cluster))),
        })
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("");
    let mut req = http::Request::builder().uri(target);
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            req = req.header(k.trim(), v.trim());
        }
    }
    let Ok(req) = req.body(Body::empty()) else {
        return; // not a valid request line or header: hyper would have refused it
    };
    let res = runtime().block_on(app().clone().oneshot(req)).expect("infallible");
    let status = res.status();
    assert!(status != http::StatusCode::INTERNAL_SERVER_ERROR, "{target:?}");
    let body = runtime()
        .block_on(axum::body::to_bytes(res.into_body(), 1 << 20))
        .expect("answers stay under 1 MiB");
    std::hint::black_box(body);
});
