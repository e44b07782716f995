//! Answers for the whole cluster from any replica: two collectors, each scraping half of a
//! simulated cluster's nodes (the other half's kubelets refuse it), each given the other as a
//! static peer. `kubectl top` and the model API against either list every node and pod; a peer
//! that hangs or is gone leaves its nodes out within `--peer_timeout`, counted; the internal
//! routes never ask further. Then three sharded replicas (Leases in the simulator) on one
//! cluster: `kubectl top nodes` against each lists every node.

mod support;

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use heapster_rs::app::App;
use heapster_rs::config::{Parsed, parse};
use heapster_rs::model::replica::{Peer, Peers};
use heapster_rs::sim::{self, KubeletFault, SimCluster, SimOptions};
use serde_json::Value;
use support::influxd::free_port;
use support::kubectl::{self, Kubectl, get_json, table};

const NODES: usize = 4;
const PODS: usize = 3;
const CONTAINERS: usize = 1;
const MIB: u64 = 1 << 20;
const PEER_TIMEOUT: Duration = Duration::from_secs(1);

/// Peers set by the test after both replicas are up.
#[derive(Default)]
struct StaticPeers(Mutex<Vec<Peer>>);

impl StaticPeers {
    fn set(&self, peers: Vec<Peer>) {
        *self.0.lock().expect("lock") = peers;
    }
}

impl Peers for StaticPeers {
    fn peers(&self) -> Vec<Peer> {
        self.0.lock().expect("lock").clone()
    }
}

struct Replica {
    sim: SimCluster,
    app: App,
    peers: Arc<StaticPeers>,
}

impl Replica {
    fn base(&self) -> String {
        format!("http://{}", self.app.addr)
    }

    fn as_peer(&self, identity: &str) -> Peer {
        Peer {
            identity: identity.into(),
            url: self.base().into(),
        }
    }

    async fn stop(self) {
        self.app.stop().await;
        self.sim.shutdown().await;
    }
}

/// A collector on a simulated cluster of [`NODES`] nodes whose kubelets answer only for the
/// nodes in `own` (the others refuse connections, as if another replica scraped them).
async fn replica(own: Range<usize>) -> Replica {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let faults = (0..NODES)
        .filter(|n| !own.contains(n))
        .map(|n| (n, KubeletFault::RefuseConnections))
        .collect();
    let sim = SimCluster::start(SimOptions {
        nodes: NODES,
        pods_per_node: PODS,
        containers_per_pod: CONTAINERS,
        faults,
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
        "--peer_timeout=1s",
        "--heapster_port=0",
        "--listen_ip=127.0.0.1",
    ];
    let Parsed::Run(cfg) = parse(args, &|_| None) else {
        panic!("config")
    };
    let peers = Arc::new(StaticPeers::default());
    let app = App::start_with_peers(
        cfg,
        Arc::new(|_: &str| None),
        Some(Arc::clone(&peers) as Arc<dyn Peers>),
    )
    .await
    .expect("app");
    // Two batches give rates; poll with a deadline (no timed assertions).
    let store = app.store.clone().expect("metric sink");
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.node_usage(None).len() < own.len()
        || store.pod_usage(None, None).len() < own.len() * PODS
    {
        assert!(Instant::now() < deadline, "no rates after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Replica { sim, app, peers }
}

/// Two replicas, each the other's peer: `a` scrapes nodes 0 and 1, `b` nodes 2 and 3.
async fn pair() -> (Replica, Replica) {
    let (a, b) = tokio::join!(replica(0..2), replica(2..NODES));
    a.peers.set(vec![b.as_peer("b")]);
    b.peers.set(vec![a.as_peer("a")]);
    (a, b)
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            let m = &i["metadata"];
            match m["namespace"].as_str() {
                Some(ns) => format!("{ns}/{}", m["name"].as_str().unwrap_or_default()),
                None => m["name"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect();
    names.sort();
    names
}

fn all_nodes() -> Vec<String> {
    (0..NODES).map(sim::node_name).collect()
}

fn all_pods() -> Vec<String> {
    let mut pods: Vec<String> = (0..NODES)
        .flat_map(|n| (0..PODS).map(move |p| (n, p)))
        .map(|(n, p)| format!("{}/{}", sim::pod_namespace(p), sim::pod_name(n, p)))
        .collect();
    pods.sort();
    pods
}

/// `heapster_peer_requests_total{outcome=...}` from the replica's `/metrics`.
async fn peer_requests(r: &Replica, outcome: &str) -> u64 {
    let text = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("{}/metrics", r.base()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let prefix = format!("heapster_peer_requests_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().expect("count"))
}

const METRICS: &str = "/apis/metrics.k8s.io/v1beta1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_against_either_replica_lists_both() {
    if !kubectl::available() {
        return;
    }
    let (a, b) = pair().await;
    for r in [&a, &b] {
        let cli = Kubectl::start(r.sim.api_url().as_str().trim_end_matches('/'), &r.base()).await;
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
        let mut keys: Vec<String> = pods.keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, all_pods());
        for node in 0..NODES {
            for pod in 0..PODS {
                let key = format!("{}/{}", sim::pod_namespace(pod), sim::pod_name(node, pod));
                let cpu = sim::pod_cpu_nanocores(node, pod, CONTAINERS) / 1_000_000;
                let mem = sim::pod_working_set_bytes(node, pod, CONTAINERS) / MIB;
                assert_eq!(pods[&key], [format!("{cpu}m"), format!("{mem}Mi")], "{key}");
            }
        }
    }
    assert!(peer_requests(&a, "ok").await > 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_answers_merge_peers_and_survive_bad_ones() {
    let (a, b) = pair().await;
    let base = a.base();

    // metrics.k8s.io: lists, a selector, a get of a node and a pod held by the peer.
    let nodes = get_json(&format!("{base}{METRICS}/nodes")).await;
    assert_eq!(names(&nodes), all_nodes());
    let pods = get_json(&format!("{base}{METRICS}/pods")).await;
    assert_eq!(names(&pods), all_pods());
    let ns = sim::pod_namespace(0);
    let in_ns = get_json(&format!("{base}{METRICS}/namespaces/{ns}/pods")).await;
    let want: Vec<String> = all_pods()
        .into_iter()
        .filter(|p| p.starts_with(&format!("{ns}/")))
        .collect();
    assert_eq!(names(&in_ns), want);
    let far = sim::node_name(3);
    let one = format!("fieldSelector=metadata.name%3D{far}");
    let selected = get_json(&format!("{base}{METRICS}/nodes?{one}")).await;
    assert_eq!(names(&selected), std::slice::from_ref(&far));
    let node = get_json(&format!("{base}{METRICS}/nodes/{far}")).await;
    assert_eq!(node["metadata"]["name"], far.as_str());
    let far_pod = sim::pod_name(3, 0);
    let pod = get_json(&format!("{base}{METRICS}/namespaces/{ns}/pods/{far_pod}")).await;
    assert_eq!(pod["metadata"]["name"], far_pod.as_str());
    let missing = reqwest::get(format!("{base}{METRICS}/nodes/no-such-node"))
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);

    // The model API: the union of node lists, a node's points and a pod-list from the peer.
    let model = format!("{base}/api/v1/model");
    let listed = get_json(&format!("{model}/nodes")).await;
    assert_eq!(listed, serde_json::json!(all_nodes()));
    let mem = get_json(&format!("{model}/nodes/{far}/metrics/memory/usage")).await;
    let last = mem["metrics"]
        .as_array()
        .and_then(|m| m.last())
        .expect("points");
    let want = sim::node_memory_usage_bytes(3, PODS, CONTAINERS);
    assert_eq!(last["value"].as_u64(), Some(want), "{mem}");
    let list = [sim::pod_name(3, 0), sim::pod_name(0, 0)].join(",");
    let items = get_json(&format!(
        "{model}/namespaces/{ns}/pod-list/{list}/metrics/cpu/usage_rate"
    ))
    .await;
    for (i, node) in [3, 0].into_iter().enumerate() {
        let last = items["items"][i]["metrics"]
            .as_array()
            .and_then(|m| m.last())
            .expect("points");
        let want = sim::pod_cpu_nanocores(node, 0, CONTAINERS) / 1_000_000;
        assert_eq!(last["value"].as_u64(), Some(want), "{items}");
    }

    // The internal route answers from this replica alone and asks nobody.
    let ok_before = peer_requests(&a, "ok").await;
    let local = get_json(&format!("{base}/internal/shard/local{METRICS}/nodes")).await;
    assert_eq!(names(&local), [sim::node_name(0), sim::node_name(1)]);
    let local = get_json(&format!("{base}/internal/shard/local/api/v1/model/nodes")).await;
    assert_eq!(
        local,
        serde_json::json!([sim::node_name(0), sim::node_name(1)])
    );
    assert_eq!(peer_requests(&a, "ok").await, ok_before);

    // The same nodes from two peers: one entry each.
    a.peers.set(vec![b.as_peer("b"), b.as_peer("b-again")]);
    let nodes = get_json(&format!("{base}{METRICS}/nodes")).await;
    assert_eq!(names(&nodes), all_nodes());
    let pods = get_json(&format!("{base}{METRICS}/pods")).await;
    assert_eq!(names(&pods), all_pods());

    // A peer that never answers and one that is gone: the answer comes within the timeout,
    // with the nodes of those that answered, and both are counted.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let bad = |identity: &str, addr: std::net::SocketAddr| Peer {
        identity: identity.into(),
        url: format!("http://{addr}").into(),
    };
    a.peers.set(vec![
        b.as_peer("b"),
        bad("hang", hang.local_addr().expect("addr")),
        bad("dead", dead),
    ]);
    let started = Instant::now();
    let nodes = get_json(&format!("{base}{METRICS}/nodes")).await;
    let took = started.elapsed();
    assert_eq!(names(&nodes), all_nodes());
    assert!(took < PEER_TIMEOUT + Duration::from_secs(2), "{took:?}");
    assert!(peer_requests(&a, "timeout").await >= 1);
    assert!(peer_requests(&a, "unreachable").await >= 1);

    a.peers
        .set(vec![bad("hang", hang.local_addr().expect("addr"))]);
    let started = Instant::now();
    let nodes = get_json(&format!("{base}{METRICS}/nodes")).await;
    assert!(started.elapsed() < PEER_TIMEOUT + Duration::from_secs(2));
    assert_eq!(names(&nodes), [sim::node_name(0), sim::node_name(1)]);
    drop(hang);
    a.stop().await;
    b.stop().await;
}

/// A sharded replica on `sim`: its Lease names where it answers.
async fn sharded(sim: &SimCluster, identity: &str) -> App {
    let port = free_port();
    let args = [
        "heapster".to_string(),
        format!(
            "--source=kubernetes:{}?inClusterConfig=false&kubeletPort={}&kubeletHttps=false",
            sim.api_url().as_str().trim_end_matches('/'),
            sim.kubelet_port()
        ),
        "--metric_resolution=5s".into(),
        "--peer_timeout=2s".into(),
        format!("--heapster_port={port}"),
        "--listen_ip=127.0.0.1".into(),
        "--sharding=true".into(),
        "--sharding_namespace=monitoring".into(),
        format!("--sharding_identity={identity}"),
        format!("--sharding_address=http://127.0.0.1:{port}"),
    ];
    let Parsed::Run(cfg) = parse(args, &|_| None) else {
        panic!("config")
    };
    App::start(cfg, Arc::new(|_: &str| None))
        .await
        .expect("app")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_against_each_of_three_sharded_replicas_lists_every_node() {
    const SHARDED_NODES: usize = 6;
    if !kubectl::available() {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = SimCluster::start(SimOptions {
        nodes: SHARDED_NODES,
        pods_per_node: PODS,
        containers_per_pod: CONTAINERS,
        ..Default::default()
    })
    .await
    .expect("simulator");
    let (a, b, c) = tokio::join!(
        sharded(&sim, "replica-a"),
        sharded(&sim, "replica-b"),
        sharded(&sim, "replica-c")
    );
    let apps = [a, b, c];
    // Sharded (each node in exactly one replica's newest batch) and whole from each.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let held: usize = apps
            .iter()
            .map(|app| app.store.as_ref().map_or(0, |s| s.node_usage(None).len()))
            .sum();
        let mut whole = true;
        for app in &apps {
            let nodes = get_json(&format!("http://{}{METRICS}/nodes", app.addr)).await;
            whole &= nodes["items"].as_array().map(Vec::len) == Some(SHARDED_NODES);
        }
        if held == SHARDED_NODES && whole {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not sharded after 90 s: {held} held"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for app in &apps {
        let cli = Kubectl::start(
            sim.api_url().as_str().trim_end_matches('/'),
            &format!("http://{}", app.addr),
        )
        .await;
        let nodes = table(&cli.run(&["top", "node"]).await, 1);
        assert_eq!(nodes.len(), SHARDED_NODES, "{nodes:?}");
        for node in 0..SHARDED_NODES {
            let row = &nodes[&sim::node_name(node)];
            let cpu = sim::node_cpu_nanocores(node, PODS, CONTAINERS) / 1_000_000;
            assert_eq!(row[0], format!("{cpu}m"), "{node}: {row:?}");
        }
    }
    for app in apps {
        app.stop().await;
    }
    sim.shutdown().await;
}
