//! Simulator → collector → remote write into a real Prometheus and a real VictoriaMetrics,
//! read back through PromQL (`/api/v1/query`): the simulator's known rates and sizes come back
//! exact, in base units, with the labels PromQL users expect (a claim's volume its
//! `persistentvolumeclaim`, pressure stall as a ratio).

mod common;
mod support;

use std::time::{Duration, Instant};

use heapster_rs::model::Metric;
use heapster_rs::sim;
use support::influxd::{Prometheus, VictoriaMetrics, promql};

/// Waits (up to a minute) until `q` returns a series.
async fn wait_for(base: &url::Url, q: &str) -> Vec<(serde_json::Value, f64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = promql(base, q).await;
        if !got.is_empty() {
            return got;
        }
        assert!(Instant::now() < deadline, "no data for {q}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The one value of `q`.
async fn value(base: &url::Url, q: &str) -> f64 {
    let got = wait_for(base, q).await;
    assert_eq!(got.len(), 1, "{q}: {got:?}");
    got[0].1
}

async fn known_values_come_back_exact(base: url::Url, write: url::Url) {
    let sink = format!("--sink=remotewrite:{write}?cluster_name=e2e&labels=region:test");
    let app = common::start(
        "simulated:?nodes=3&podsPerNode=6&containersPerPod=2",
        &[sink.as_str()],
    )
    .await;
    // Two ticks give rates.
    let batches = common::batches(&app, 2, |_| true).await;

    // A node's CPU in cores: the simulator's rate, as Heapster's millicores.
    let millicores = sim::node_cpu_nanocores(1, 6, 2) / 1_000_000;
    let q =
        r#"heapster_cpu_usage_cores{type="node",node="sim-node-0001",cluster="e2e",region="test"}"#;
    let got = wait_for(&base, q).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, millicores as f64 * 1e-3, "{got:?}");

    // A container's working set in bytes, with the labels cAdvisor users expect.
    let (ns, pod, container) = (
        sim::pod_namespace(2),
        sim::pod_name(0, 2),
        sim::container_name(1),
    );
    let q = format!(
        r#"heapster_memory_working_set_bytes{{type="pod_container",namespace="{ns}",pod="{pod}",container="{container}",node="sim-node-0000"}}"#
    );
    let want = sim::container_working_set_bytes(0, 2, 1);
    assert_eq!(value(&base, &q).await, want as f64, "{q}");

    // A pod's network receive rate (a float Heapster computes): exactly what it computed.
    let last = batches.last().expect("a batch");
    let rate = common::pod_float(last, &pod, Metric::NetworkRxRate);
    let q = format!(
        r#"heapster_network_rx_bytes_per_second{{type="pod",namespace="{ns}",pod="{pod}"}}"#
    );
    assert_eq!(value(&base, &q).await, rate, "{q}");

    // A pod's cpu pressure as a ratio: the simulator's stall rate (µs of stall per second).
    let stall = sim::pod_cpu_stall_us_per_sec(0, 2) as f64 / 1e6;
    let q = format!(
        r#"heapster_cpu_pressure_some_ratio{{type="pod",namespace="{ns}",pod="{pod}",node="sim-node-0000"}}"#
    );
    let got = value(&base, &q).await;
    assert!(
        (got - stall).abs() <= stall * 0.01,
        "{q}: {got}, expected {stall}"
    );

    // A claim's volume carries the claim; other volumes carry none.
    let (claim_ns, claim_pod) = (sim::pod_namespace(3), sim::pod_name(0, 3));
    assert!(sim::pod_has_data_volume(3));
    let q = format!(
        r#"heapster_filesystem_usage_bytes{{type="pod",namespace="{claim_ns}",pod="{claim_pod}",device="Volume:data",persistentvolumeclaim="data-{claim_pod}"}}"#
    );
    let want = sim::pod_data_volume_used_bytes(3);
    assert_eq!(value(&base, &q).await, want as f64, "{q}");
    let q = r#"count(heapster_filesystem_usage_bytes{type="pod",persistentvolumeclaim!=""})"#;
    let with_claims = 3 * (0..6).filter(|&p| sim::pod_has_data_volume(p)).count();
    assert_eq!(value(&base, q).await, with_claims as f64, "{q}");

    // Counters are counters: a rate over them works.
    let q = r#"rate(heapster_cpu_usage_seconds_total{type="node",node="sim-node-0001"}[1m])"#;
    wait_for(&base, q).await;
    // The cluster's sum, as the dashboards ask for it.
    let q = r#"sum(heapster_cpu_usage_cores{type="node"})"#;
    let nodes: u64 = (0..3)
        .map(|n| sim::node_cpu_nanocores(n, 6, 2) / 1_000_000)
        .sum();
    let got = value(&base, q).await;
    assert!(
        (got - nodes as f64 * 1e-3).abs() < 1e-9,
        "{got} vs {nodes} millicores"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_reads_back_the_known_values() {
    let Some(prom) = Prometheus::start() else {
        return;
    };
    let base = prom.url();
    let write = base.join("api/v1/write").expect("url");
    known_values_come_back_exact(base, write).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn victoria_metrics_reads_back_the_known_values() {
    let Some(vm) = VictoriaMetrics::start() else {
        return;
    };
    let base = vm.url();
    let write = base.join("api/v1/write").expect("url");
    known_values_come_back_exact(base, write).await;
}

#[tokio::test]
async fn an_outage_is_spooled_and_every_sample_arrives_once() {
    use std::sync::Arc;

    use heapster_rs::config::RemoteWriteConfig;
    use heapster_rs::sink::Sink;
    use heapster_rs::sink::delivery::SpoolConfig;
    use heapster_rs::sink::remotewrite::RemoteWriteSink;
    use prometheus_client::registry::Registry;
    use support::influx_data::{eventually, fast, init, recent, sample_batch};
    use support::proxy::{Fault, FaultProxy};

    init();
    let Some(vm) = VictoriaMetrics::start() else {
        return;
    };
    let proxy = FaultProxy::start(vm.url()).await;
    proxy.set(Fault::Status(503));
    let spool = tempfile::tempdir().expect("dir");
    let batches: Vec<_> = (0..4).map(|i| sample_batch(recent(10 - i))).collect();
    let per_batch = batches[0].point_count();
    let cfg = RemoteWriteConfig {
        url: proxy.url().join("api/v1/write").expect("url"),
        user: None,
        password: None,
        token: None,
        token_file: None,
        insecure_ssl: false,
        cluster_name: "spooled".into(),
        labels: Vec::new(),
        samples_per_request: 10,
        concurrency: 2,
        buffer_points: per_batch / 3,
        spool: SpoolConfig {
            dir: Some(spool.path().to_owned()),
            bytes: 1 << 30,
        },
    };
    let mut sink = RemoteWriteSink::new(&cfg, &mut Registry::default(), fast()).expect("sink");
    for b in &batches {
        sink.export(Arc::new(b.clone())).await;
    }
    eventually(30, "the outage spooled", async || {
        let s = sink.stats();
        s.retries > 0 && s.spooled_bytes > 0 && s.buffered_points == 0
    })
    .await;
    proxy.set(Fault::Pass);
    eventually(60, "the spool drained", async || {
        let s = sink.stats();
        s.spooled_bytes == 0 && s.buffered_points == 0 && s.points_written > 0
    })
    .await;
    let stats = sink.stats();
    let total = (4 * per_batch) as u64 - stats.dropped_non_finite;
    assert_eq!(stats.points_written, total, "{stats:?}");
    let samples: usize = vm
        .export()
        .await
        .iter()
        .map(|s| s["values"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(samples as u64, total);
}
