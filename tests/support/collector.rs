//! The collector in-process on a simulated cluster, scraping its kubelets over plain http.

use std::sync::Arc;
use std::time::{Duration, Instant};

use heapster_rs::app::App;
use heapster_rs::config::{Parsed, parse};
use heapster_rs::model::replica::Peers;
use heapster_rs::sim::SimCluster;

/// `--source` for `sim`: its apiserver without credentials, its kubelets over http.
pub fn source(sim: &SimCluster) -> String {
    format!(
        "--source=kubernetes:{}?inClusterConfig=false&kubeletPort={}&kubeletHttps=false",
        sim.api_url().as_str().trim_end_matches('/'),
        sim.kubelet_port()
    )
}

/// The flags [`start`] gives unless told otherwise: a 5 s resolution, any loopback port.
pub const DEFAULTS: [&str; 3] = [
    "--metric_resolution=5s",
    "--heapster_port=0",
    "--listen_ip=127.0.0.1",
];

/// Starts the collector on `sim` with `args` after `--source` (e.g. [`DEFAULTS`]), its APIs
/// asking `peers` when given.
pub async fn start(sim: &SimCluster, args: &[&str], peers: Option<Arc<dyn Peers>>) -> App {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let source = source(sim);
    let argv = std::iter::once("heapster")
        .chain([source.as_str()])
        .chain(args.iter().copied());
    let Parsed::Run(cfg) = parse(argv, &|_| None) else {
        panic!("config")
    };
    App::start_with_peers(cfg, Arc::new(|_: &str| None), peers)
        .await
        .expect("app")
}

/// Waits (60 s at most) until the store has the usage of `nodes` nodes and `pods` pods: two
/// batches give rates. Polls with a deadline, no timed assertions.
pub async fn wait_for_rates(app: &App, nodes: usize, pods: usize) {
    let store = app.store.clone().expect("metric sink");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.node_usage(None).len() < nodes || store.pod_usage(None, None).len() < pods {
        assert!(Instant::now() < deadline, "no rates after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
