//! Fault injection on the kubelet side: every way a kubelet misbehaves at once, against the real
//! `heapster` binary (its memory is measured); and credentials rotated under a running
//! collector.

mod common;
mod support;

use common::{batches, later_batch, metrics, node_names, sample, start};
use heapster_rs::sim::{KubeletFault, SimAuth, SimCluster, SimOptions};
use support::heapster::Heapster;

const MIB: u64 = 1 << 20;

/// An https simulator (2 pods of 1 container per node) checking `token`, its service-account
/// directory, and the in-cluster `--source` value for it.
async fn in_cluster(
    token: &str,
    nodes: usize,
    faults: Vec<(usize, KubeletFault)>,
) -> (SimCluster, tempfile::TempDir, String) {
    common::init();
    let cluster = SimCluster::start(SimOptions {
        nodes,
        pods_per_node: 2,
        containers_per_pod: 1,
        https: true,
        auth: SimAuth::Token(token.into()),
        faults,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts");
    let (sa, source) = common::in_cluster_source(&cluster);
    (cluster, sa, source)
}

fn requests(page: &str, outcome: &str) -> f64 {
    let series = format!(r#"heapster_kubelet_requests_total{{outcome="{outcome}"}}"#);
    sample(page, &series).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kubelet_fault_is_counted_by_reason_in_time_with_bounded_memory() {
    common::init();
    let faults = [
        KubeletFault::Hang,
        KubeletFault::SlowTrickle,
        KubeletFault::Status500,
        KubeletFault::Garbage,
        KubeletFault::TruncatedJson,
        KubeletFault::HugeBody(1 << 30),
        KubeletFault::HugeChunkedBody(1 << 30),
        KubeletFault::GzipBomb(4 << 30),
        KubeletFault::RefuseConnections,
        KubeletFault::WrongHostCert,
    ];
    let healthy = 2;
    let nodes = faults.len() + healthy;
    let (cluster, _sa, source) = in_cluster(
        "fault-token",
        nodes,
        faults.into_iter().enumerate().collect(),
    )
    .await;
    // 6 s resolution: the 5.12 s histogram bucket is below it.
    let mut heapster = Heapster::start(&[
        format!("--source={source}"),
        "--metric_resolution=6s".into(),
        "--scrape_timeout=2s".into(),
        format!("--max_response_bytes={}", 8 * MIB),
    ]);
    let page = heapster
        .metrics_until(90, "two ticks", |p| {
            sample(p, "heapster_ticks_total").unwrap_or(0.0) >= 2.0
        })
        .await;
    let ticks = sample(&page, "heapster_ticks_total").unwrap_or(0.0);

    // Each failure by its reason, in every tick.
    for (outcome, per_tick) in [
        ("timeout", 2.0),          // hang, slow trickle
        ("http_status", 1.0),      // 500
        ("decode", 3.0),           // garbage, truncated, gzip bomb (not inflated)
        ("too_large", 2.0),        // 1 GiB, declared or chunked
        ("connect", 1.0),          // refused
        ("certificate_name", 1.0), // certificate for another host
        ("success", 2.0),
    ] {
        let got = requests(&page, outcome);
        assert!(
            got >= per_tick * ticks,
            "{outcome}: {got} < {per_tick} × {ticks} ticks\n{page}"
        );
    }
    assert_eq!(
        sample(&page, "heapster_tick_nodes_failed"),
        Some(faults.len() as f64)
    );
    assert_eq!(
        sample(&page, "heapster_tick_nodes_scraped"),
        Some(healthy as f64)
    );
    // Every tick ended below the resolution (the hanging and trickling kubelets cost at most
    // the scrape timeout).
    assert_eq!(
        sample(&page, r#"heapster_tick_duration_seconds_bucket{le="5.12"}"#),
        sample(&page, "heapster_tick_duration_seconds_count"),
        "{page}"
    );
    // The others were scraped.
    let (status, body) = heapster
        .get("/api/v1/model/nodes/")
        .await
        .expect("model API");
    assert_eq!(status, 200);
    let nodes: Vec<String> = serde_json::from_str(&body).expect("node list");
    assert_eq!(nodes, ["sim-node-0010", "sim-node-0011"]);
    // Neither the 1 GiB body nor the 4 GiB bomb was held in memory.
    let peak = heapster.peak_rss();
    assert!(peak < 160 * MIB, "peak RSS {} MiB", peak / MIB);
    eprintln!("heapster peak RSS: {} MiB", peak / MIB);
    assert!(
        !heapster.log().contains("fault-token"),
        "the token was logged"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_hanging_scrape_exits_within_the_flush_deadline() {
    common::init();
    let cluster = SimCluster::start(SimOptions {
        nodes: 2,
        faults: vec![(0, KubeletFault::Hang)],
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts");
    // The first tick waits up to 30 s for the hanging kubelet.
    let mut heapster = Heapster::start(&[
        format!(
            "--source=kubernetes:{}?inClusterConfig=false&kubeletPort={}&kubeletHttps=false",
            cluster.api_url(),
            cluster.kubelet_port()
        ),
        "--metric_resolution=60s".into(),
        "--scrape_timeout=30s".into(),
        "--shutdown_timeout=2s".into(),
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while cluster.kubelet_stats(0).requests == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no scrape:\n{}",
            heapster.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    heapster.terminate();
    let status = heapster.wait_exit(std::time::Duration::from_secs(12));
    assert!(
        status.is_some_and(|s| s.success()),
        "not stopped within 12 s of SIGTERM ({status:?}):\n{}",
        heapster.log()
    );
    cluster.shutdown().await;
}

/// Replaces the token file the way the kubelet does (a new file renamed over the old one).
fn rotate_file(dir: &std::path::Path, token: &str) {
    let tmp = dir.join("..token.new");
    std::fs::write(&tmp, token).expect("write token");
    std::fs::rename(&tmp, dir.join("token")).expect("rename token");
}

async fn token_cluster(token: &str) -> (SimCluster, tempfile::TempDir, heapster_rs::app::App) {
    let (cluster, sa, source) = in_cluster(token, 2, Vec::new()).await;
    let app = start(&source, &[]).await;
    batches(&app, 1, |b| node_names(b).len() == 2).await;
    (cluster, sa, app)
}

/// Waits until both kubelets saw `token` and a later batch has both nodes.
async fn kubelets_use(cluster: &SimCluster, app: &heapster_rs::app::App, token: &str) {
    let want = format!("Bearer {token}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while (0..2).any(|i| cluster.kubelet_stats(i).last_authorization.as_deref() != Some(&want)) {
        assert!(
            std::time::Instant::now() < deadline,
            "kubelets never got the new token"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    later_batch(app, |b| node_names(b).len() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_token_file_is_used_without_a_restart_and_a_401_recovers() {
    let (cluster, sa, app) = token_cluster("rotate-1").await;
    // The token file is replaced as the servers switch: the new token is used.
    cluster.set_token("rotate-2");
    rotate_file(sa.path(), "rotate-2");
    kubelets_use(&cluster, &app, "rotate-2").await;

    // The servers switch first: the kubelets answer 401 to the old token, counted...
    let before = requests(&metrics(&app).await, "unauthorized");
    cluster.set_token("rotate-3");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while requests(&metrics(&app).await, "unauthorized") < before + 2.0 {
        assert!(std::time::Instant::now() < deadline, "no 401 counted");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // ...and once the file has the new token, scraping recovers without a restart.
    rotate_file(sa.path(), "rotate-3");
    kubelets_use(&cluster, &app, "rotate-3").await;
    assert!(app.health.check(heapster_rs::model::time::now()).is_ok());
    app.stop().await;
    cluster.shutdown().await;
}
