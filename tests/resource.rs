//! `/metrics/resource`: the real EKS capture decodes to its literal values; the simulator serves
//! it consistently with `/stats/summary` (same auth); the collector gives the same cpu and memory
//! from either endpoint; `kubeletEndpoint=auto` falls back per node.

mod common;

use std::sync::Arc;

use common::{batches, metrics, sample, start};
use heapster_rs::model::sample::{NodeSample, RawSet};
use heapster_rs::model::{Batch, Metric, SetKey, Value};
use heapster_rs::sim::{self, KubeletFault, SimAuth, SimCluster, SimOptions};
use heapster_rs::source::decode::{ResourceIds, decode_summary};
use heapster_rs::source::{resource_metrics, summary};
use heapster_rs::testing::fixture;

const S: i64 = 1_000_000_000;

fn find<'a>(s: &'a NodeSample, key: &SetKey) -> &'a RawSet {
    s.sets
        .iter()
        .find(|r| &r.set.key == key)
        .unwrap_or_else(|| panic!("no set {key:?}"))
}

fn pod(ns: &str, pod: &str) -> SetKey {
    SetKey::Pod {
        namespace: Arc::from(ns),
        pod: Arc::from(pod),
    }
}

fn container(ns: &str, pod: &str, c: &str) -> SetKey {
    SetKey::PodContainer {
        namespace: Arc::from(ns),
        pod: Arc::from(pod),
        container: Arc::from(c),
    }
}

fn int(raw: &RawSet, m: Metric) -> Option<i64> {
    raw.set.get(m).map(Value::as_i64)
}

#[test]
fn the_eks_capture_decodes_to_its_literal_values() {
    let Some(body) = fixture("kubelet/ersilia-hub-eks-kubelet-metrics-resource.txt") else {
        return;
    };
    let node: Arc<str> = Arc::from("ip-10-0-1-23");
    let got = resource_metrics::decode(&body, &node, 0).expect("decodes");
    assert!(!got.scrape_error);
    let s = &got.sample;
    // 1 node, 9 pods, 12 containers; no system containers at this endpoint.
    assert_eq!(s.sets.len(), 1 + 9 + 12);

    // node_cpu_usage_seconds_total 6197.005020909 1750705774670
    let n = find(s, &SetKey::Node { node });
    assert_eq!(int(n, Metric::CpuUsage), Some(6_197_005_020_909));
    // node_memory_working_set_bytes 1.137475584e+09 1750705774670
    assert_eq!(int(n, Metric::MemoryWorkingSet), Some(1_137_475_584));
    assert_eq!(n.times.cpu, Some(1_750_705_774_670 * 1_000_000));
    assert_eq!(n.times.memory, n.times.cpu);
    assert_eq!(n.set.scrape_time, 1_750_705_774_670 * 1_000_000);
    for absent in [Metric::MemoryUsage, Metric::NetworkRx, Metric::Uptime] {
        assert_eq!(n.set.get(absent), None, "{absent:?} is absent, never 0");
    }

    // pod_cpu_usage_seconds_total{namespace="ersilia-core",pod="ersilia-hub-server-78554c56f7-klmrl"} 429.028704332 1750705771400
    let p = find(
        s,
        &pod("ersilia-core", "ersilia-hub-server-78554c56f7-klmrl"),
    );
    assert_eq!(int(p, Metric::CpuUsage), Some(429_028_704_332));
    assert_eq!(int(p, Metric::MemoryWorkingSet), Some(197_947_392));
    assert_eq!(p.times.cpu, Some(1_750_705_771_400 * 1_000_000));
    assert_eq!(
        p.set.create_time, None,
        "no pod start time at this endpoint"
    );

    // container_*{container="aws-node",namespace="kube-system",pod="aws-node-7k649"}
    let c = find(s, &container("kube-system", "aws-node-7k649", "aws-node"));
    assert_eq!(int(c, Metric::CpuUsage), Some(293_769_327_238));
    assert_eq!(int(c, Metric::MemoryWorkingSet), Some(50_237_440));
    assert_eq!(c.times.cpu, Some(1_750_705_767_923 * 1_000_000));
    // container_start_time_seconds 1.7506078401348257e+09, to whole seconds like the Summary API
    assert_eq!(c.set.create_time, Some(1_750_607_840 * S));
    assert_eq!(
        int(c, Metric::Uptime),
        Some(1_750_705_767_923 - 1_750_607_840_000)
    );
    let pg = find(
        s,
        &container("ersilia-core", "ersilia-hub-postgresql-0", "postgresql"),
    );
    assert_eq!(int(pg, Metric::CpuUsage), Some(753_998_393_487));
    assert_eq!(int(pg, Metric::MemoryWorkingSet), Some(47_992_832));
}

fn sim_options() -> SimOptions {
    SimOptions {
        nodes: 3,
        pods_per_node: 4,
        containers_per_pod: 2,
        ..SimOptions::default()
    }
}

async fn sim(opts: SimOptions) -> SimCluster {
    common::init();
    SimCluster::start(opts).await.expect("simulator starts")
}

/// Both bodies of node `i`, fetched within one second (so at the same simulated instant).
async fn both_bodies(http: &reqwest::Client, cluster: &SimCluster, i: usize) -> (Vec<u8>, Vec<u8>) {
    let scheme = cluster.api_url().scheme().to_owned();
    let base = format!(
        "{scheme}://{}:{}",
        cluster.nodes()[i].ip,
        cluster.kubelet_port()
    );
    loop {
        let before = heapster_rs::model::time::now() / S;
        let get = |path: &str| {
            let req = http.get(format!("{base}{path}"));
            async move {
                let resp = req.send().await.expect("request");
                assert_eq!(resp.status(), 200);
                resp.bytes().await.expect("body").to_vec()
            }
        };
        let summary = get("/stats/summary").await;
        let resource = get("/metrics/resource").await;
        if heapster_rs::model::time::now() / S == before {
            return (summary, resource);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_serves_resource_consistent_with_summary_with_the_same_auth() {
    let cluster = sim(SimOptions {
        https: true,
        auth: SimAuth::Token("resource-token".into()),
        ..sim_options()
    })
    .await;
    let ca = reqwest::Certificate::from_pem(cluster.ca_pem().expect("ca").as_bytes()).expect("ca");
    let anonymous = reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .build()
        .expect("client");
    let url = format!(
        "https://{}:{}/metrics/resource",
        cluster.nodes()[0].ip,
        cluster.kubelet_port()
    );
    let resp = anonymous.get(&url).send().await.expect("request");
    assert_eq!(resp.status(), 401, "same auth as /stats/summary");

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        "Bearer resource-token".parse().expect("header"),
    );
    let http = reqwest::Client::builder()
        .tls_certs_only([ca])
        .default_headers(headers)
        .build()
        .expect("client");
    let (summary_body, resource_body) = both_bodies(&http, &cluster, 1).await;
    let node: Arc<str> = Arc::from("sim-node-0001");
    let s = summary::decode(&summary_body).expect("summary");
    let from_summary = decode_summary(&s, &node, 0, &ResourceIds::default());
    let from_resource = resource_metrics::decode(&resource_body, &node, 0).expect("resource");
    assert!(!from_resource.scrape_error);
    let mut compared = 0;
    for r in &from_resource.sample.sets {
        let sum = find(&from_summary, &r.set.key);
        for m in [Metric::CpuUsage, Metric::MemoryWorkingSet] {
            assert!(r.set.get(m).is_some(), "{:?} {m:?}", r.set.key);
            assert_eq!(r.set.get(m), sum.set.get(m), "{:?} {m:?}", r.set.key);
        }
        assert_eq!(r.times.cpu, sum.times.cpu, "same sample time, in ms");
        assert_eq!(r.times.memory, sum.times.memory);
        if matches!(r.set.key, SetKey::PodContainer { .. }) {
            assert_eq!(r.set.create_time, sum.set.create_time);
        }
        compared += 1;
    }
    assert_eq!(compared, 1 + 4 + 4 * 2);
    cluster.shutdown().await;
}

fn source_for(cluster: &SimCluster, endpoint: &str) -> String {
    format!(
        "kubernetes:{}?inClusterConfig=false&kubeletPort={}&kubeletHttps=false&kubeletEndpoint={endpoint}",
        cluster.api_url(),
        cluster.kubelet_port()
    )
}

/// Waits for a batch in which every node of `nodes` has a cpu rate.
async fn rated_batch(app: &heapster_rs::app::App, nodes: usize) -> Arc<Batch> {
    let got = batches(app, 2, |b| {
        (0..nodes).all(|i| {
            b.find(&SetKey::Node {
                node: Arc::from(sim::node_name(i).as_str()),
            })
            .is_some_and(|s| s.get(Metric::CpuUsageRate).is_some())
        })
    })
    .await;
    Arc::clone(got.last().expect("batch"))
}

fn get(batch: &Batch, key: &SetKey, m: Metric) -> Option<i64> {
    batch.find(key).and_then(|s| s.get(m)).map(Value::as_i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_endpoints_give_the_same_cpu_and_memory() {
    let cluster = sim(sim_options()).await;
    let (summary_source, resource_source) = (
        source_for(&cluster, "summary"),
        source_for(&cluster, "resource"),
    );
    let (by_summary, by_resource) =
        tokio::join!(start(&summary_source, &[]), start(&resource_source, &[]));
    let (a, b) = tokio::join!(rated_batch(&by_summary, 3), rated_batch(&by_resource, 3));

    // The simulator's formulas: millicores = nanocores / 1e6; working sets constant.
    for n in 0..3 {
        let node = SetKey::Node {
            node: Arc::from(sim::node_name(n).as_str()),
        };
        let cpu = (sim::node_cpu_nanocores(n, 4, 2) / 1_000_000) as i64;
        let ws = sim::node_working_set_bytes(n, 4, 2) as i64;
        for batch in [&a, &b] {
            assert_eq!(
                get(batch, &node, Metric::CpuUsageRate),
                Some(cpu),
                "{node:?}"
            );
            assert_eq!(
                get(batch, &node, Metric::MemoryWorkingSet),
                Some(ws),
                "{node:?}"
            );
        }
        for p in 0..4 {
            let (ns, name) = (sim::pod_namespace(p), sim::pod_name(n, p));
            let cpu = (sim::pod_cpu_nanocores(n, p, 2) / 1_000_000) as i64;
            let ws = sim::pod_working_set_bytes(n, p, 2) as i64;
            for batch in [&a, &b] {
                assert_eq!(get(batch, &pod(ns, &name), Metric::CpuUsageRate), Some(cpu));
                assert_eq!(
                    get(batch, &pod(ns, &name), Metric::MemoryWorkingSet),
                    Some(ws)
                );
            }
            for c in 0..2 {
                let key = container(ns, &name, &sim::container_name(c));
                let cpu = (sim::container_cpu_nanocores(n, p, c) / 1_000_000) as i64;
                let ws = sim::container_working_set_bytes(n, p, c) as i64;
                for batch in [&a, &b] {
                    assert_eq!(get(batch, &key, Metric::CpuUsageRate), Some(cpu), "{key:?}");
                    assert_eq!(
                        get(batch, &key, Metric::MemoryWorkingSet),
                        Some(ws),
                        "{key:?}"
                    );
                }
            }
        }
    }
    // Every node, pod, container, namespace and cluster value of the summary run matches.
    let mut compared = 0;
    for set in &a.sets {
        if matches!(set.key, SetKey::SysContainer { .. }) {
            continue;
        }
        for m in [Metric::CpuUsageRate, Metric::MemoryWorkingSet] {
            assert_eq!(
                get(&b, &set.key, m),
                set.get(m).map(Value::as_i64),
                "{:?} {m:?}",
                set.key
            );
        }
        compared += 1;
    }
    // 3 nodes, 12 pods, 24 containers, 4 namespaces, the cluster.
    assert_eq!(compared, 3 + 12 + 24 + 4 + 1);
    // What only the Summary API has stays absent, never 0.
    let node0 = SetKey::Node {
        node: Arc::from("sim-node-0000"),
    };
    assert!(get(&a, &node0, Metric::NetworkRx).is_some());
    assert_eq!(get(&b, &node0, Metric::NetworkRx), None);
    assert_eq!(get(&b, &node0, Metric::MemoryUsage), None);
    by_summary.stop().await;
    by_resource.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_falls_back_per_node_and_remembers() {
    let cluster = sim(SimOptions {
        faults: vec![(1, KubeletFault::SummaryForbidden)],
        ..sim_options()
    })
    .await;
    let app = start(&source_for(&cluster, "auto"), &[]).await;
    let first = rated_batch(&app, 3).await;
    // Wait for one more tick, so the remembered choice is exercised.
    let n = app.store.as_ref().expect("store").snapshot().len();
    let got = batches(&app, n + 1, |_| true).await;
    let batch = got.last().expect("batch");
    let node = |i: usize| SetKey::Node {
        node: Arc::from(sim::node_name(i).as_str()),
    };
    // Node 1 came through /metrics/resource: cpu and memory, nothing else from the kubelet.
    let cpu1 = (sim::node_cpu_nanocores(1, 4, 2) / 1_000_000) as i64;
    assert_eq!(get(&first, &node(1), Metric::CpuUsageRate), Some(cpu1));
    assert_eq!(get(batch, &node(1), Metric::CpuUsageRate), Some(cpu1));
    assert_eq!(get(batch, &node(1), Metric::NetworkRx), None);
    // The others through /stats/summary.
    for i in [0, 2] {
        assert!(
            get(batch, &node(i), Metric::NetworkRx).is_some(),
            "node {i}"
        );
    }
    let page = metrics(&app).await;
    assert_eq!(
        sample(&page, "heapster_kubelet_endpoint_fallbacks_total"),
        Some(1.0),
        "{page}"
    );
    // After the first tick node 1 is asked once per tick, not twice.
    let (r0, r1) = (
        cluster.kubelet_stats(0).requests,
        cluster.kubelet_stats(1).requests,
    );
    assert!(r1 <= r0 + 2, "node 1: {r1} requests, node 0: {r0}");
    app.stop().await;
    cluster.shutdown().await;
}
