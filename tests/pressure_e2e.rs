//! Pressure stall information, swap, process counts and volumes of a claim, end to end: the
//! simulator → the collector → a real InfluxDB 1.6 (both schemas) and the model API, checked
//! against the simulator's formulas. Also: payloads without PSI write no pressure point at all.

mod common;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use heapster_rs::model::cluster::ClusterState;
use heapster_rs::model::{Batch, time};
use heapster_rs::process::Processor;
use heapster_rs::sim;
use heapster_rs::sink::Sink;
use heapster_rs::source::decode::{ResourceIds, decode_summary};
use heapster_rs::source::summary;
use heapster_rs::testing::{each_summary_entity, fixture, without_psi};
use serde_json::{Value as Json, json};
use support::influx_data::{self, config, sink};
use support::influxd::Influxd;

const NODES: usize = 2;
const PODS: usize = 4;
const CONTAINERS: usize = 2;

/// The last value of `field` in `measurement` where `filter` holds, or `None`.
async fn last(
    influx: &Influxd,
    db: &str,
    measurement: &str,
    field: &str,
    filter: &str,
) -> Option<f64> {
    let q = format!(r#"SELECT last("{field}") FROM "{measurement}" WHERE {filter}"#);
    let answer = influx.query(db, &q).await;
    answer["results"][0]["series"][0]["values"][0][1].as_f64()
}

/// Waits until `last` has a value.
async fn wait_last(
    influx: &Influxd,
    db: &str,
    measurement: &str,
    field: &str,
    filter: &str,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = last(influx, db, measurement, field, filter).await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no {measurement}.{field} where {filter} in {db}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `(measurement, field)` of a metric in the default schema and in `withfields`.
fn names(metric: &str, with_fields: bool) -> (String, String) {
    if with_fields {
        let (m, f) = metric.split_once('/').expect("a slash");
        (m.to_owned(), f.to_owned())
    } else {
        (metric.to_owned(), "value".to_owned())
    }
}

async fn get_json(url: &str) -> Json {
    let text = reqwest::get(url)
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= want.abs() * 0.01,
        "{what}: {got}, expected {want} (within 1 %)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pressure_swap_processes_and_claims_reach_influxdb_as_the_simulator_serves_them() {
    let Some(influx) = Influxd::start() else {
        return;
    };
    let base = influx.url();
    let sinks = [
        format!("--sink=influxdb:{base}?db=k8s"),
        format!("--sink=influxdb:{base}?db=k8s_wf&withfields=true"),
    ];
    let extra: Vec<&str> = sinks.iter().map(String::as_str).collect();
    let app = common::start(
        &format!("simulated:?nodes={NODES}&podsPerNode={PODS}&containersPerPod={CONTAINERS}"),
        &extra,
    )
    .await;
    common::batches(&app, 2, |_| true).await;

    let (n, p) = (1, 0);
    let pod = sim::pod_name(n, p);
    let ns = sim::pod_namespace(p);
    let node = sim::node_name(n);
    let pod_filter = format!(r#""type" = 'pod' AND "pod_name" = '{pod}'"#);
    let container_filter = format!(
        r#""type" = 'pod_container' AND "pod_name" = '{pod}' AND "container_name" = 'app'"#
    );
    let node_filter = format!(r#""type" = 'node' AND "nodename" = '{node}'"#);
    let ns_filter = format!(r#""type" = 'ns' AND "namespace_name" = '{ns}'"#);
    let percent = |us_per_sec: u64| us_per_sec as f64 / 10_000.0;
    for (db, with_fields) in [("k8s", false), ("k8s_wf", true)] {
        let at = |metric: &str| names(metric, with_fields);
        // Pressure: the simulator's stall rates, `full` half of `some`.
        let (m, f) = at("cpu/pressure_some");
        let got = wait_last(&influx, db, &m, &f, &pod_filter).await;
        close(
            got,
            percent(sim::pod_cpu_stall_us_per_sec(n, p)),
            "pod cpu/pressure_some",
        );
        let (m, f) = at("cpu/pressure_full");
        let got = wait_last(&influx, db, &m, &f, &pod_filter).await;
        close(
            got,
            percent(sim::pod_cpu_stall_us_per_sec(n, p) / 2),
            "pod cpu/pressure_full",
        );
        let (m, f) = at("cpu/pressure_some");
        let got = wait_last(&influx, db, &m, &f, &container_filter).await;
        close(
            got,
            percent(sim::container_cpu_stall_us_per_sec(n, p, 0)),
            "container cpu/pressure_some",
        );
        let (m, f) = at("io/pressure_some");
        let got = wait_last(&influx, db, &m, &f, &node_filter).await;
        close(
            got,
            percent(sim::NODE_STALL_US_PER_SEC[2]),
            "node io/pressure_some",
        );
        let (m, f) = at("memory/pressure_some");
        let got = wait_last(&influx, db, &m, &f, &node_filter).await;
        close(
            got,
            percent(sim::NODE_STALL_US_PER_SEC[1]),
            "node memory/pressure_some",
        );
        // Namespaces and the cluster get none.
        for t in ["ns", "cluster"] {
            let (m, f) = at("cpu/pressure_some");
            let filter = format!(r#""type" = '{t}'"#);
            assert_eq!(last(&influx, db, &m, &f, &filter).await, None, "{db}: {t}");
        }
        // Swap and processes: the payload's values.
        let swap: u64 = (0..CONTAINERS)
            .map(|c| sim::container_swap_usage_bytes(n, p, c))
            .sum();
        let (m, f) = at("memory/swap_usage");
        assert_eq!(
            wait_last(&influx, db, &m, &f, &pod_filter).await,
            swap as f64
        );
        let (m, f) = at("memory/swap_available");
        assert_eq!(
            wait_last(&influx, db, &m, &f, &container_filter).await,
            (sim::CONTAINER_SWAP_LIMIT_BYTES - sim::container_swap_usage_bytes(n, p, 0)) as f64
        );
        let node_swap = sim::node_swap_usage_bytes(n, PODS, CONTAINERS);
        let (m, f) = at("memory/swap_usage");
        assert_eq!(
            wait_last(&influx, db, &m, &f, &node_filter).await,
            node_swap as f64
        );
        let (m, f) = at("memory/swap_available");
        assert_eq!(
            wait_last(&influx, db, &m, &f, &node_filter).await,
            (sim::NODE_SWAP_BYTES - node_swap) as f64
        );
        let (m, f) = at("process/count");
        assert_eq!(
            wait_last(&influx, db, &m, &f, &pod_filter).await,
            sim::pod_process_count(p, CONTAINERS) as f64
        );
        assert_eq!(
            wait_last(&influx, db, &m, &f, &node_filter).await,
            sim::node_process_count(PODS, CONTAINERS) as f64
        );
        let in_ns: u64 = (0..NODES)
            .flat_map(|n| (0..PODS).map(move |p| (n, p)))
            .filter(|&(_, q)| sim::pod_namespace(q) == ns)
            .map(|(_, q)| sim::pod_process_count(q, CONTAINERS))
            .sum();
        assert_eq!(
            wait_last(&influx, db, &m, &f, &ns_filter).await,
            in_ns as f64
        );
        let (m, f) = at("process/limit");
        assert_eq!(
            wait_last(&influx, db, &m, &f, &node_filter).await,
            sim::NODE_MAX_PIDS as f64
        );
        // A volume of a claim carries the claim's name, and the pod's namespace.
        assert!(sim::pod_has_data_volume(p));
        let (m, f) = at("filesystem/usage");
        let claim = format!("data-{pod}");
        let filter = format!(
            r#""resource_id" = 'Volume:data' AND "pvc_name" = '{claim}' AND "namespace_name" = '{ns}'"#
        );
        assert_eq!(
            wait_last(&influx, db, &m, &f, &filter).await,
            sim::pod_data_volume_used_bytes(p) as f64
        );
        // Other volumes carry no claim.
        let q = format!(r#"SHOW TAG VALUES FROM "{m}" WITH KEY = "pvc_name""#);
        let answer = influx.query(db, &q).await;
        let claims = answer["results"][0]["series"][0]["values"]
            .as_array()
            .map_or(0, Vec::len);
        let with_claims = NODES * (0..PODS).filter(|&p| sim::pod_has_data_volume(p)).count();
        assert_eq!(claims, with_claims, "{db}: {answer}");
    }

    // The model API serves the new metrics by their names (values as Heapster's: integers).
    let url = format!(
        "http://{}/api/v1/model/namespaces/{ns}/pods/{pod}/metrics/process/count",
        app.addr
    );
    let body: Json = get_json(&url).await;
    assert_eq!(
        body["metrics"]
            .as_array()
            .and_then(|m| m.last())
            .map(|p| &p["value"]),
        Some(&json!(sim::pod_process_count(p, CONTAINERS))),
        "{body}"
    );
    let url = format!("http://{}/api/v1/model/nodes/{node}/metrics", app.addr);
    let list: Json = get_json(&url).await;
    for m in [
        "cpu/pressure_some",
        "io/pressure_full",
        "memory/swap_usage",
        "process/limit",
    ] {
        assert!(
            list.as_array().is_some_and(|l| l.contains(&json!(m))),
            "{m}: {list}"
        );
    }
    app.stop().await;
}

/// Two ticks 10 s apart from one payload (its cpu and memory sample times moved on).
fn two_ticks(doc: &Json) -> Batch {
    let mut later = doc.clone();
    each_summary_entity(&mut later, &mut |e| {
        for r in ["cpu", "memory", "io"] {
            if let Some(t) = e[r]["time"].as_str().and_then(time::parse_rfc3339) {
                e[r]["time"] = json!(time::format_rfc3339(t + 10 * time::NANOS_PER_SEC));
            }
        }
    });
    let state = ClusterState::default();
    let mut p = Processor::new();
    let mut batch = Batch::default();
    for (i, d) in [doc, &later].into_iter().enumerate() {
        let body = serde_json::to_vec(d).expect("json");
        let s = summary::decode(&body).expect("decodes");
        let node: Arc<str> = Arc::from(&*s.node.node_name);
        let sample = decode_summary(&s, &node, 0, &ResourceIds::default());
        let ts = influx_data::recent(2 - i as i64);
        batch = p.process(vec![sample], &state, ts, 600 * time::NANOS_PER_SEC);
    }
    batch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_without_psi_write_no_pressure_point() {
    influx_data::init();
    let Some(influx) = Influxd::start() else {
        return;
    };
    let mut docs = Vec::new();
    if let Some(body) = fixture("kubelet/nri-kubernetes-1_27-kubelet-stats-summary.json") {
        docs.push(serde_json::from_slice::<Json>(&body).expect("json"));
    }
    // A Windows node: the 1.35 capture without `psi` and `io`.
    if let Some(body) = fixture("kubelet/nri-kubernetes-1_35-kubelet-stats-summary.json") {
        let mut doc: Json = serde_json::from_slice(&body).expect("json");
        without_psi(&mut doc);
        docs.push(doc);
    }
    if docs.is_empty() {
        return;
    }
    for (i, doc) in docs.iter().enumerate() {
        for with_fields in [false, true] {
            let db = format!("nopsi_{i}_{with_fields}");
            let mut cfg = config(influx.url(), &db);
            cfg.with_fields = with_fields;
            let mut sink = sink(&cfg);
            sink.export(Arc::new(two_ticks(doc))).await;
            sink.flush(Duration::from_secs(20)).await;
            let answer = influx.query(&db, "SHOW MEASUREMENTS").await;
            let measurements: Vec<&str> = answer["results"][0]["series"][0]["values"]
                .as_array()
                .expect("measurements")
                .iter()
                .filter_map(|r| r[0].as_str())
                .collect();
            assert!(!measurements.is_empty(), "{db}: nothing written");
            if with_fields {
                assert!(measurements.contains(&"cpu"), "{db}: {measurements:?}");
                for (m, f) in [
                    ("cpu", "pressure_some"),
                    ("memory", "pressure_full"),
                    ("io", "pressure_some"),
                ] {
                    let q = format!(r#"SELECT count("{f}") FROM "{m}""#);
                    let a = influx.query(&db, &q).await;
                    assert!(a["results"][0]["series"].is_null(), "{db}: {m}.{f}: {a}");
                }
                assert!(!measurements.contains(&"io"), "{db}: {measurements:?}");
            } else {
                assert!(
                    measurements.contains(&"cpu/usage_rate"),
                    "{db}: {measurements:?}"
                );
                for m in &measurements {
                    assert!(!m.contains("pressure"), "{db}: {m}");
                }
            }
        }
    }
}
