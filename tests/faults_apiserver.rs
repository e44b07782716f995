//! Fault injection on the apiserver side, with the collector in-process against the simulator:
//! down at start, restarted mid-run, 410 Gone on the watches, and node churn.

mod common;

use std::time::{Duration, Instant};

use common::{batches, later_batch, metrics, node_names, sample, start};
use heapster_rs::app::App;
use heapster_rs::sim::{SimCluster, SimOptions};

async fn sim(nodes: usize, pods_per_node: usize) -> SimCluster {
    common::init();
    SimCluster::start(SimOptions {
        nodes,
        pods_per_node,
        containers_per_pod: 1,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

/// The insecure-port source for the simulator (kubelets on plain http).
fn source(cluster: &SimCluster) -> String {
    format!(
        "kubernetes:{}?inClusterConfig=false&kubeletPort={}&kubeletHttps=false",
        cluster.api_url(),
        cluster.kubelet_port()
    )
}

/// A simulator and the collector on it, once a batch has every node.
async fn running(nodes: usize, pods_per_node: usize) -> (SimCluster, App) {
    let cluster = sim(nodes, pods_per_node).await;
    let app = start(&source(&cluster), &[]).await;
    batches(&app, 1, |b| node_names(b).len() == nodes).await;
    (cluster, app)
}

async fn healthz(app: &App) -> (u16, String) {
    let resp = reqwest::get(format!("http://{}/healthz", app.addr))
        .await
        .expect("GET /healthz");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

/// Waits (up to 60 s) until `/metrics` passes `ok`.
async fn metrics_until(app: &App, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = metrics(app).await;
        if ok(&page) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (up to 60 s) until the collector knows exactly `nodes` nodes and `pods` pods.
async fn known(app: &App, nodes: usize, pods: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (n, p) = {
            let state = app.cluster.read();
            (state.nodes.len(), state.pod_count())
        };
        if (n, p) == (nodes, pods) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "knows {n} nodes and {p} pods, not {nodes} and {pods}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn gauge(page: &str, name: &str) -> f64 {
    sample(page, name).unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_down_at_start_is_waited_for_and_healthz_says_why() {
    let cluster = sim(2, 2).await;
    cluster.stop_apiserver().await;
    let app = start(&source(&cluster), &[]).await;
    // Not ready, and saying why, for as long as the apiserver is away.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = healthz(&app).await;
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("apiserver"), "{body}");
        let why = "cannot list nodes from the apiserver";
        if body.contains(why) || Instant::now() > deadline {
            assert!(body.contains(why), "healthz does not say why: {body}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.start_apiserver().expect("apiserver starts again");
    batches(&app, 1, |b| node_names(b).len() == 2).await;
    let (status, body) = healthz(&app).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_restart_keeps_known_nodes_scraped_and_watches_resume() {
    let (cluster, app) = running(3, 2).await;

    cluster.stop_apiserver().await;
    // The known nodes keep being scraped while the apiserver is away.
    for _ in 0..2 {
        let b = later_batch(&app, |_| true).await;
        assert_eq!(node_names(&b).len(), 3);
    }
    assert_eq!(healthz(&app).await.0, 200);

    // Back on the same address: the watches resume and see what changed meanwhile and after.
    cluster.remove_node(2);
    cluster.start_apiserver().expect("apiserver starts again");
    let added = cluster.add_node();
    let got = batches(&app, 1, |b| {
        node_names(b) == ["sim-node-0000", "sim-node-0001", "sim-node-0003"]
    })
    .await;
    assert_eq!(added, 3);
    assert_eq!(node_names(got.last().expect("batch")).len(), 3);
    // Pods of the removed node went, pods of the new one came.
    known(&app, 3, 3 * 2).await;
    app.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_410_gone_relists_without_losing_or_duplicating() {
    let (cluster, app) = running(3, 2).await;
    for round in 0..2 {
        cluster.expire_watches();
        cluster.add_node();
        cluster.remove_node(round);
        let want: Vec<String> = cluster.nodes().into_iter().map(|n| n.name).collect();
        batches(&app, 1, |b| node_names(b) == want).await;
        known(&app, 3, 3 * 2).await;
    }
    app.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_churn_expires_the_series_of_removed_nodes() {
    const CHURN: usize = 200;
    let cluster = sim(2, 1).await;
    // History at its minimum (one resolution), so removed series expire quickly.
    let app = start(&source(&cluster), &["--metric_history=5s"]).await;
    batches(&app, 2, |b| node_names(b).len() == 2).await;
    let page = metrics(&app).await;
    let baseline = gauge(&page, "heapster_store_series");
    assert!(baseline > 0.0);

    let added: Vec<usize> = (0..CHURN).map(|_| cluster.add_node()).collect();
    batches(&app, 1, |b| node_names(b).len() == 2 + CHURN).await;
    let page = metrics(&app).await;
    assert!(gauge(&page, "heapster_store_series") > baseline + CHURN as f64);
    assert_eq!(gauge(&page, "heapster_cluster_nodes"), (2 + CHURN) as f64);

    for i in added {
        cluster.remove_node(i);
    }
    batches(&app, 1, |b| node_names(b).len() == 2).await;
    // The removed nodes' series expire; the store and cluster state return to their baseline.
    let page = metrics_until(&app, "series back to baseline", |p| {
        gauge(p, "heapster_store_series") == baseline
    })
    .await;
    assert_eq!(gauge(&page, "heapster_cluster_nodes"), 2.0);
    assert_eq!(gauge(&page, "heapster_cluster_pods"), 2.0);
    let expired = sample(
        &page,
        r#"heapster_store_series_evicted_total{reason="expired"}"#,
    );
    assert!(expired.unwrap_or(0.0) >= 3.0 * CHURN as f64, "{page}");
    app.stop().await;
    cluster.shutdown().await;
}
