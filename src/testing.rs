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

/// Calls `f` on every entity of a Summary API payload as JSON: the node, its system
/// containers, the pods and their containers.
pub fn each_summary_entity(doc: &mut serde_json::Value, f: &mut dyn FnMut(&mut serde_json::Value)) {
    f(&mut doc["node"]);
    for c in doc["node"]["systemContainers"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        f(c);
    }
    for pod in doc["pods"].as_array_mut().into_iter().flatten() {
        f(pod);
        for c in pod["containers"].as_array_mut().into_iter().flatten() {
            f(c);
        }
    }
}

/// A payload as a Windows node (or a cgroup v1 one) answers: no `psi` and no `io` anywhere.
pub fn without_psi(doc: &mut serde_json::Value) {
    each_summary_entity(doc, &mut |e| {
        if let Some(o) = e.as_object_mut() {
            o.remove("io");
        }
        for r in ["cpu", "memory"] {
            if let Some(o) = e[r].as_object_mut() {
                o.remove("psi");
            }
        }
    });
}

/// The properties the fuzz targets in `fuzz/` check, shared with `tests/fuzz_regressions.rs`
/// (proptest and regression inputs); each panics when its property fails.
pub mod fuzz {
    use std::sync::Arc;

    use crate::config::{Parsed, SinkConfig, parse};
    use crate::model::cluster::ClusterState;
    use crate::process::Processor;
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
            let now = 1_750_000_000_000_000_000;
            let sample = decode_summary(&s, &node, now, &ResourceIds::default());
            // The same answer again with its sample times 10 s later: rates, pressure and
            // aggregation on whatever the body holds. Pressure is never outside 0..=100.
            let mut later = sample.clone();
            for raw in &mut later.sets {
                let t = &mut raw.times;
                for time in [&mut t.cpu, &mut t.memory, &mut t.network, &mut t.io] {
                    *time = time.and_then(|t| t.checked_add(10_000_000_000));
                }
            }
            let mut p = Processor::new();
            let cluster = ClusterState::default();
            for (i, sample) in [sample, later].into_iter().enumerate() {
                let at = now + i as i64 * 10_000_000_000;
                let batch = p.process(vec![sample], &cluster, at, 60_000_000_000);
                for set in &batch.sets {
                    for (m, v) in set.values.iter() {
                        if m.units() == "percent" {
                            let v = v.as_f64();
                            assert!((0.0..=100.0).contains(&v), "{m} = {v}");
                        }
                    }
                }
            }
        }
    }

    /// One HTTP request through the Heapster port's router, in-process (`oneshot`, no socket),
    /// against a store and cluster state of one node and one pod. `input`'s first line is the
    /// request target (`/path?query`), each further line a `name: value` header. Never
    /// panics, never answers 500, and an answer stays under 1 MiB.
    pub fn api_request(input: &[u8]) {
        use tower::ServiceExt;

        let Ok(text) = std::str::from_utf8(input) else {
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
        let Ok(req) = req.body(axum::body::Body::empty()) else {
            return; // not a valid request line or header: hyper would have refused it
        };
        let (app, rt) = api::app();
        let res = rt
            .block_on(app.clone().oneshot(req))
            .expect("the router is infallible");
        let status = res.status();
        assert!(
            status != http::StatusCode::INTERNAL_SERVER_ERROR,
            "{target:?}"
        );
        let body = rt
            .block_on(axum::body::to_bytes(res.into_body(), 1 << 20))
            .expect("answers stay under 1 MiB");
        std::hint::black_box(body);
    }

    mod api {
        use std::sync::{Arc, OnceLock};

        use axum::Router;
        use prometheus_client::registry::Registry;

        use crate::api::health::Health;
        use crate::api::{ApiState, router};
        use crate::model::cluster::{ClusterState, NodeInfo, PodInfo};
        use crate::model::{Batch, Metric, MetricSet, SetKey, Value};
        use crate::store::{HistoryMetrics, SeriesLimit, Store, StoreOptions};

        const SEC: i64 = 1_000_000_000;
        const T0: i64 = 1_767_225_600 * SEC;

        fn s(x: &str) -> Arc<str> {
            Arc::from(x)
        }

        fn batch(t: i64) -> Batch {
            let keys = [
                SetKey::Cluster,
                SetKey::Node { node: s("n1") },
                SetKey::Namespace {
                    namespace: s("default"),
                },
                SetKey::Pod {
                    namespace: s("default"),
                    pod: s("p1"),
                },
                SetKey::PodContainer {
                    namespace: s("default"),
                    pod: s("p1"),
                    container: s("app"),
                },
                SetKey::SysContainer {
                    node: s("n1"),
                    container: s("kubelet"),
                },
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
            Batch::new(t, sets)
        }

        /// The router over two batches, and the runtime requests run on (built once).
        pub(super) fn app() -> (&'static Router, &'static tokio::runtime::Runtime) {
            static APP: OnceLock<Router> = OnceLock::new();
            static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
            let app = APP.get_or_init(|| {
                let mut registry = Registry::default();
                let opts = StoreOptions {
                    history: 900 * SEC,
                    resolution: 10 * SEC,
                    limit: SeriesLimit::Series(1_000),
                    history_metrics: HistoryMetrics::ALL,
                };
                let store = Store::new(opts, &mut registry);
                store.push(&batch(T0));
                store.push(&batch(T0 + 10 * SEC));
                let mut cluster = ClusterState::default();
                let labels: Box<[(Arc<str>, Arc<str>)]> = Box::new([(s("app"), s("web"))]);
                cluster.nodes.insert(
                    s("n1"),
                    Arc::new(NodeInfo {
                        name: s("n1"),
                        label_map: labels.clone(),
                        ready: true,
                        ..Default::default()
                    }),
                );
                cluster.insert_pod(Arc::new(PodInfo {
                    namespace: s("default"),
                    name: s("p1"),
                    label_map: labels,
                    ..Default::default()
                }));
                router(ApiState::new(
                    Arc::new(Health::new(10 * SEC)),
                    Arc::new(registry),
                    Some(Arc::new(store)),
                    Some(crate::model::cluster::ClusterReader::fixed(cluster)),
                ))
            });
            let rt = RT.get_or_init(|| {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("runtime")
            });
            (app, rt)
        }
    }

    /// A `/metrics/resource` body (Prometheus text): decoding it never panics.
    pub fn resource(body: &[u8]) {
        let node: Arc<str> = Arc::from("n1");
        let _ = std::hint::black_box(resource::decode(body, &node, 1_750_000_000_000_000_000));
    }
}
