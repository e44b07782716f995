//! Helpers for tests that run the collector in-process against the simulator.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use heapster_rs::app::App;
use heapster_rs::config::{self, Parsed};
use heapster_rs::model::Batch;

pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Parses `args` (program name first) with an empty environment.
pub fn config(args: &[String]) -> heapster_rs::config::Config {
    match config::parse(args.iter().cloned(), &|_| None) {
        Parsed::Run(cfg) => cfg,
        Parsed::Exit { code, message } => panic!("config rejected ({code}): {message}"),
    }
}

/// `--source` of the in-cluster mode against `cluster`: its token and CA written into a
/// service-account directory, which lives as long as the returned guard.
pub fn in_cluster_source(cluster: &heapster_rs::sim::SimCluster) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    cluster
        .write_service_account_dir(dir.path())
        .expect("sa dir");
    let source = format!(
        "kubernetes:{}?serviceAccountDir={}",
        cluster.api_url(),
        dir.path().display()
    );
    (dir, source)
}

/// Starts the collector with `--source=SOURCE` and the test defaults (5 s resolution, 2 s
/// timeout, an ephemeral port on 127.0.0.1) plus `extra` flags.
pub async fn start(source: &str, extra: &[&str]) -> App {
    init();
    let mut args: Vec<String> = [
        "heapster",
        "--metric_resolution=5s",
        "--scrape_timeout=2s",
        "--heapster-port=0",
        "--listen_ip=127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--source={source}"));
    args.extend(extra.iter().map(|s| s.to_string()));
    App::start(config(&args), Arc::new(|_: &str| None))
        .await
        .expect("app starts")
}

/// Waits (up to 60 s) until the store holds `n` batches whose newest passes `ok`.
pub async fn batches(app: &App, n: usize, ok: impl Fn(&Batch) -> bool) -> Vec<Arc<Batch>> {
    let store = app.store.as_ref().expect("metric sink on");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let snap = store.snapshot();
        if snap.len() >= n && snap.last().is_some_and(|b| ok(b)) {
            return snap;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} batches (have {})",
            snap.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (up to 60 s) for a batch newer than the newest one now, whose newest passes `ok`.
pub async fn later_batch(app: &App, ok: impl Fn(&Batch) -> bool) -> Arc<Batch> {
    let store = app.store.as_ref().expect("metric sink on");
    let now = store.snapshot().last().map_or(i64::MIN, |b| b.timestamp);
    let got = batches(app, 1, |b| b.timestamp > now && ok(b)).await;
    Arc::clone(got.last().expect("a batch"))
}

/// The `/metrics` page of the app.
pub async fn metrics(app: &App) -> String {
    reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body")
}

/// The value of one sample line of `/metrics` (`name{labels}`), if present.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub fn node_names(batch: &Batch) -> Vec<String> {
    let mut v: Vec<String> = batch
        .sets
        .iter()
        .filter_map(|s| match &s.key {
            heapster_rs::model::SetKey::Node { node } => Some(node.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// The simulator's kubeconfig without its CA, written to `dir/without-ca`.
pub fn kubeconfig_without_ca(
    cluster: &heapster_rs::sim::SimCluster,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let path = dir.join("without-ca");
    let yaml: String = cluster
        .kubeconfig_yaml()
        .lines()
        .filter(|l| !l.contains("certificate-authority-data"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, yaml).expect("kubeconfig");
    path
}

/// A pod's float value of `metric` in `batch` (a rate Heapster computes).
pub fn pod_float(batch: &Batch, pod: &str, metric: heapster_rs::model::Metric) -> f64 {
    let value = batch
        .sets
        .iter()
        .find(|s| matches!(&s.key, heapster_rs::model::SetKey::Pod { pod: p, .. } if **p == *pod))
        .and_then(|s| s.values.get(metric))
        .expect("the pod's value");
    let heapster_rs::model::Value::Float(v) = value else {
        panic!("{metric:?} of {pod}: {value:?}")
    };
    v
}
