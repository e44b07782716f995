//! End to end on a simulated cluster: the collector in-process, the model API as Dashboard v1
//! calls it, and real `kubectl top` through a small proxy on 127.0.0.1 that sends
//! `/apis/metrics.k8s.io/*` to heapster-rs, merges `/apis`, and sends the rest to the
//! simulator's apiserver. Expected values come from the simulator's formulas.

mod support;

use heapster_rs::app::App;
use heapster_rs::sim::{self, SimCluster, SimOptions};
use support::collector;
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
    let app = collector::start(&sim, &collector::DEFAULTS, None).await;
    collector::wait_for_rates(&app, NODES, NODES * PODS).await;
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

    kubectl::assert_top_nodes(&cli, NODES, PODS, CONTAINERS).await;
    kubectl::assert_top_pods(&cli, NODES, PODS, CONTAINERS).await;

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
