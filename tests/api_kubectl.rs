//! End to end on a simulated cluster: the collector in-process, the model API as Dashboard v1
//! calls it, and real `kubectl top` through a small proxy on 127.0.0.1 that sends
//! `/apis/metrics.k8s.io/*` to heapster-rs, merges `/apis`, and sends the rest to the
//! simulator's apiserver. Expected values come from the simulator's formulas.

mod support;

use std::time::{Duration, Instant};

use heapster_rs::app::App;
use heapster_rs::config::{Parsed, parse};
use heapster_rs::sim::{self, SimCluster, SimOptions};
use support::kubectl::{self, Kubectl, get_json, table};

const NODES: usize = 2;
const PODS: usize = 5;
const CONTAINERS: usize = 2;
const MIB: u64 = 1 << 20;

struct Running {
    sim: SimCluster,
    app: App,
}

async fn start() -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = SimCluster::start(SimOptions {
        nodes: NODES,
        pods_per_node: PODS,
        containers_per_pod: CONTAINERS,
        ..Default::default()
    })
    .await
    .expect("simulator");
    let source = format!(
        "--source=kubernetes:{}?inClusterConfig=false&kubeletPort={}&kubeletHttps=false",
        sim.api_url().as_str().trim_end_matches('/'),
        sim.kubelet_port()
    );
    let args = [
        "heapster",
        &source,
        "--metric_resolution=5s",
        "--heapster_port=0",
        "--listen_ip=127.0.0.1",
    ];
    let Parsed::Run(cfg) = parse(args, &|_| None) else {
        panic!("config")
    };
    let app = App::start(cfg, std::sync::Arc::new(|_: &str| None))
        .await
        .expect("app");
    // Two batches give rates; poll with a deadline (no timed assertions).
    let store = app.store.clone().expect("metric sink");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.node_usage(None).len() < NODES || store.pod_usage(None, None).len() < NODES * PODS {
        assert!(Instant::now() < deadline, "no rates after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Running { sim, app }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_model_api_on_a_simulated_cluster() {
    let r = start().await;
    let base = format!("http://{}/api/v1/model", r.app.addr);
    for node in 0..NODES {
        let name = sim::node_name(node);
        let body = get_json(&format!("{base}/nodes/{name}/metrics/memory/usage")).await;
        let last = body["metrics"]
            .as_array()
            .and_then(|m| m.last())
            .expect("points");
        let want = sim::node_memory_usage_bytes(node, PODS, CONTAINERS);
        assert_eq!(last["value"].as_u64(), Some(want), "{name}: {body}");
        assert!(
            body["latestTimestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
    // Pods 0 and 5 of each node are in `default` (namespaces cycle through five).
    let pods: Vec<String> = (0..NODES).rev().map(|n| sim::pod_name(n, 0)).collect();
    let url = format!(
        "{base}/namespaces/default/pod-list/{},no-such-pod/metrics/cpu/usage_rate",
        pods.join(",")
    );
    let body = get_json(&url).await;
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), NODES + 1);
    for (i, node) in (0..NODES).rev().enumerate() {
        let last = items[i]["metrics"]
            .as_array()
            .and_then(|m| m.last())
            .expect("points");
        let want = sim::pod_cpu_nanocores(node, 0, CONTAINERS) / 1_000_000;
        assert_eq!(last["value"].as_u64(), Some(want), "{}", pods[i]);
    }
    assert_eq!(items[NODES]["metrics"], serde_json::json!([]));
    r.app.stop().await;
    r.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_matches_the_simulator() {
    if !kubectl::available() {
        return;
    }
    let r = start().await;
    let cli = Kubectl::start(
        r.sim.api_url().as_str().trim_end_matches('/'),
        &format!("http://{}", r.app.addr),
    )
    .await;

    let nodes = table(&cli.run(&["top", "node"]).await, 1);
    assert_eq!(nodes.len(), NODES, "{nodes:?}");
    for node in 0..NODES {
        let row = &nodes[&sim::node_name(node)];
        let cpu = sim::node_cpu_nanocores(node, PODS, CONTAINERS) / 1_000_000;
        let mem = sim::node_working_set_bytes(node, PODS, CONTAINERS) / MIB;
        assert_eq!(row[0], format!("{cpu}m"), "{node}: {row:?}");
        assert!(row.contains(&format!("{mem}Mi")), "{node}: {row:?}");
    }

    let pods = table(&cli.run(&["top", "pod", "-A"]).await, 2);
    assert_eq!(pods.len(), NODES * PODS, "{pods:?}");
    for node in 0..NODES {
        for pod in 0..PODS {
            let key = format!("{}/{}", sim::pod_namespace(pod), sim::pod_name(node, pod));
            let row = &pods[&key];
            let cpu = sim::pod_cpu_nanocores(node, pod, CONTAINERS) / 1_000_000;
            let mem = sim::pod_working_set_bytes(node, pod, CONTAINERS) / MIB;
            assert_eq!(row, &[format!("{cpu}m"), format!("{mem}Mi")], "{key}");
        }
    }

    let ns = sim::pod_namespace(1);
    let out = cli.run(&["top", "pod", "-n", ns, "--containers"]).await;
    let rows = table(&out, 2);
    let mut seen = 0;
    for node in 0..NODES {
        for pod in (0..PODS).filter(|p| sim::pod_namespace(*p) == ns) {
            for c in 0..CONTAINERS {
                let key = format!("{}/{}", sim::pod_name(node, pod), sim::container_name(c));
                let cpu = sim::container_cpu_nanocores(node, pod, c) / 1_000_000;
                let mem = sim::container_working_set_bytes(node, pod, c) / MIB;
                assert_eq!(rows[&key], [format!("{cpu}m"), format!("{mem}Mi")], "{key}");
                seen += 1;
            }
        }
    }
    assert_eq!(rows.len(), seen, "{out}");
    drop(cli);
    r.app.stop().await;
    r.sim.shutdown().await;
}
