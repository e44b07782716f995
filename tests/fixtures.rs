//! Real kubelet payloads (`../shared/fixtures/kubelet`) through decoding and processing.

use std::collections::HashSet;
use std::sync::Arc;

use heapster_rs::model::cluster::{ClusterState, ContainerInfo, NodeInfo, PodInfo};
use heapster_rs::model::sample::NodeSample;
use heapster_rs::model::{Batch, Metric, MetricSet, SetKey, Value, time};
use heapster_rs::process::Processor;
use heapster_rs::source::decode::{ResourceIds, decode_summary};
use heapster_rs::source::summary;
use heapster_rs::testing::{each_summary_entity, fixture, fixtures_dir, without_psi};
use serde_json::{Value as Json, json};

const S: i64 = 1_000_000_000;

fn decode(body: &[u8]) -> NodeSample {
    let s = summary::decode(body).expect("decodes");
    let node: Arc<str> = Arc::from(&*s.node.node_name);
    decode_summary(&s, &node, 0, &ResourceIds::default())
}

fn find<'a>(sets: &'a [MetricSet], key: &SetKey) -> &'a MetricSet {
    sets.iter()
        .find(|s| &s.key == key)
        .unwrap_or_else(|| panic!("no set {key}"))
}

fn node_key(n: &str) -> SetKey {
    SetKey::Node { node: Arc::from(n) }
}

fn pod_key(ns: &str, p: &str) -> SetKey {
    SetKey::Pod {
        namespace: Arc::from(ns),
        pod: Arc::from(p),
    }
}

fn container_key(ns: &str, p: &str, c: &str) -> SetKey {
    SetKey::PodContainer {
        namespace: Arc::from(ns),
        pod: Arc::from(p),
        container: Arc::from(c),
    }
}

fn labeled(set: &MetricSet, m: Metric, id: &str) -> Option<Value> {
    set.labeled
        .iter()
        .find(|l| l.metric == m && &*l.resource_id == id)
        .map(|l| l.value)
}

#[test]
fn every_summary_fixture_decodes() {
    let Some(dir) = fixtures_dir() else { return };
    let mut count = 0;
    for entry in std::fs::read_dir(dir.join("kubelet")).expect("kubelet fixtures") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.ends_with(".json") {
            continue;
        }
        let body = std::fs::read(&path).expect("read");
        let parsed = summary::decode(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        let raw: Json = serde_json::from_slice(&body).expect("json");
        let sample = decode(&body);
        let sets: Vec<_> = sample.sets.iter().map(|r| r.set.clone()).collect();
        let keys: HashSet<_> = sets.iter().map(|s| s.key.clone()).collect();
        assert_eq!(keys.len(), sets.len(), "{name}: duplicate metric sets");
        assert_eq!(
            parsed.pods.len(),
            raw["pods"].as_array().map_or(0, Vec::len),
            "{name}"
        );
        for pod in raw["pods"].as_array().into_iter().flatten() {
            let key = pod_key(
                pod["podRef"]["namespace"].as_str().expect("ns"),
                pod["podRef"]["name"].as_str().expect("name"),
            );
            assert!(keys.contains(&key), "{name}: {key} missing");
        }
        // A missing value is absent, never 0: every integer value comes from the payload.
        for set in &sets {
            for (m, v) in &set.values {
                if m != Metric::Uptime && m != Metric::EphemeralStorageUsage {
                    assert!(matches!(v, Value::Int(_)), "{name}: {} {m}", set.key);
                }
            }
        }
        count += 1;
    }
    assert!(count >= 10, "expected the summary fixtures, found {count}");
}

#[test]
fn known_values_kubernetes_1_35() {
    let Some(body) = fixture("kubelet/nri-kubernetes-1_35-kubelet-stats-summary.json") else {
        return;
    };
    let sample = decode(&body);
    let sets: Vec<_> = sample.sets.into_iter().map(|r| r.set).collect();
    let node = find(&sets, &node_key("datagen-1-35"));
    assert_eq!(node.get(Metric::CpuUsage), Some(Value::Int(62_148_052_000)));
    assert_eq!(
        node.get(Metric::MemoryWorkingSet),
        Some(Value::Int(917_110_784))
    );
    assert_eq!(
        node.get(Metric::MemoryUsage),
        Some(Value::Int(3_080_323_072))
    );
    assert_eq!(node.get(Metric::NetworkRx), Some(Value::Int(772_921_510)));
    assert_eq!(
        labeled(node, Metric::FilesystemUsage, "/"),
        Some(Value::Int(106_943_070_208))
    );
    // startTime 09:18:15, sample 10:14:35 → 56 min 20 s
    assert_eq!(node.get(Metric::Uptime), Some(Value::Int(3_380_000)));
    assert_eq!(
        node.scrape_time,
        time::parse_rfc3339("2026-06-26T10:14:35Z").expect("time")
    );
    let c = find(
        &sets,
        &container_key("kube-system", "coredns-7d764666f9-qdcxt", "coredns"),
    );
    assert_eq!(c.get(Metric::CpuUsage), Some(Value::Int(165_531_000)));
    assert_eq!(
        c.get(Metric::MemoryWorkingSet),
        Some(Value::Int(16_232_448))
    );
    assert_eq!(
        c.get(Metric::EphemeralStorageUsage),
        Some(Value::Int(36_864 + 4_096))
    );
    assert_eq!(
        labeled(c, Metric::FilesystemUsage, "logs"),
        Some(Value::Int(4_096))
    );
    let p = find(&sets, &pod_key("kube-system", "coredns-7d764666f9-qdcxt"));
    assert_eq!(p.get(Metric::CpuUsage), Some(Value::Int(179_435_000)));
    assert_eq!(p.get(Metric::NetworkRx), Some(Value::Int(49_637)));
    assert!(labeled(p, Metric::FilesystemUsage, "Volume:config-volume").is_some());
    assert!(sets.iter().any(
        |s| matches!(&s.key, SetKey::SysContainer { container, .. } if &**container == "kubelet")
    ));
}

#[test]
fn known_values_kubernetes_1_15() {
    let Some(body) = fixture("kubelet/nri-kubernetes-1_15-static-kubelet-stats-summary.json")
    else {
        return;
    };
    let sets: Vec<_> = decode(&body).sets.into_iter().map(|r| r.set).collect();
    let node = find(&sets, &node_key("minikube"));
    assert_eq!(
        node.get(Metric::CpuUsage),
        Some(Value::Int(424_427_914_128))
    );
    assert_eq!(
        node.get(Metric::MemoryWorkingSet),
        Some(Value::Int(1_265_197_056))
    );
    // The 1.15 kubelet lists coredns twice in this pod; the newer sample (08:54:32) wins.
    let c = find(
        &sets,
        &container_key("kube-system", "coredns-5c98db65d4-m76hk", "coredns"),
    );
    assert_eq!(c.get(Metric::CpuUsage), Some(Value::Int(6_880_736_181)));
    // Heapster's names for system containers: runtime → docker-daemon.
    let sys: HashSet<String> = sets
        .iter()
        .filter_map(|s| match &s.key {
            SetKey::SysContainer { container, .. } => Some(container.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(
        sys,
        HashSet::from(["pods".into(), "kubelet".into(), "docker-daemon".into()])
    );
}

/// Advances a payload: every cpu sample by 10 s and `cpu_delta` ns, the node's network by
/// 10 s and 10,000 bytes received.
fn advance(mut doc: Json, node_cpu_delta: u64, cpu_delta: u64) -> Json {
    fn bump(stat: &mut Json, field: &str, delta: u64) {
        let t = time::parse_rfc3339(stat["time"].as_str().expect("time")).expect("rfc3339");
        stat["time"] = json!(time::format_rfc3339(t + 10 * S));
        if let Some(v) = stat[field].as_u64() {
            stat[field] = json!(v + delta);
        }
    }
    bump(
        &mut doc["node"]["cpu"],
        "usageCoreNanoSeconds",
        node_cpu_delta,
    );
    bump(&mut doc["node"]["network"], "rxBytes", 10_000);
    for pod in doc["pods"].as_array_mut().expect("pods") {
        if pod["cpu"].is_object() {
            bump(&mut pod["cpu"], "usageCoreNanoSeconds", cpu_delta);
        }
        for c in pod["containers"].as_array_mut().expect("containers") {
            if c["cpu"].is_object() {
                bump(&mut c["cpu"], "usageCoreNanoSeconds", cpu_delta);
            }
        }
    }
    doc
}

fn cluster_state() -> ClusterState {
    let mut state = ClusterState::default();
    state.nodes.insert(
        Arc::from("datagen-1-35"),
        Arc::new(NodeInfo {
            name: Arc::from("datagen-1-35"),
            schedulable: true,
            ready: true,
            cpu_capacity_millis: Some(4000),
            cpu_allocatable_millis: Some(4000),
            memory_capacity_bytes: Some(8 << 30),
            memory_allocatable_bytes: Some(8 << 30),
            ..Default::default()
        }),
    );
    state.insert_pod(Arc::new(PodInfo {
        namespace: Arc::from("kube-system"),
        name: Arc::from("coredns-7d764666f9-qdcxt"),
        uid: Arc::from("36447428-81f8-45eb-b825-414de2e8012b"),
        node: Some(Arc::from("datagen-1-35")),
        labels: Some(Arc::from("k8s-app:kube-dns")),
        containers: vec![ContainerInfo {
            name: Arc::from("coredns"),
            image: Some(Arc::from("registry.k8s.io/coredns/coredns:v1.13.1")),
            cpu_request_millis: 100,
            memory_request_bytes: 70 << 20,
            memory_limit_bytes: 170 << 20,
            restart_count: 2,
            ..Default::default()
        }],
        ..Default::default()
    }));
    state
}

fn process_two(first: &Json, second: &Json) -> Batch {
    let state = cluster_state();
    let mut p = Processor::new();
    let a = serde_json::to_vec(first).expect("json");
    let b = serde_json::to_vec(second).expect("json");
    p.process(vec![decode(&a)], &state, 100 * S, 180 * S);
    p.process(vec![decode(&b)], &state, 160 * S, 180 * S)
}

#[test]
fn rates_and_aggregates_from_two_payloads() {
    let Some(body) = fixture("kubelet/nri-kubernetes-1_35-kubelet-stats-summary.json") else {
        return;
    };
    let first: Json = serde_json::from_slice(&body).expect("json");
    // Node: +2.5 s of CPU in 10 s = 250 millicores; each pod and container: +0.1 s = 10 m.
    let second = advance(first.clone(), 2_500_000_000, 100_000_000);
    let batch = process_two(&first, &second);
    let get = |k: &SetKey, m: Metric| batch.find(k).and_then(|s| s.get(m));

    let node = node_key("datagen-1-35");
    assert_eq!(get(&node, Metric::CpuUsageRate), Some(Value::Int(250)));
    assert_eq!(
        get(&node, Metric::NetworkRxRate),
        Some(Value::Float(1000.0))
    );
    assert_eq!(
        get(&node, Metric::CpuNodeUtilization),
        Some(Value::Float(250.0 / 4000.0))
    );
    // Requests come from the one pod spec known: 100 m of 4000 m allocatable.
    assert_eq!(get(&node, Metric::CpuRequest), Some(Value::Int(100)));
    assert_eq!(
        get(&node, Metric::CpuNodeReservation),
        Some(Value::Float(0.025))
    );
    assert_eq!(
        get(&node, Metric::MemoryRequest),
        Some(Value::Int(70 << 20))
    );

    let coredns = pod_key("kube-system", "coredns-7d764666f9-qdcxt");
    let c = container_key("kube-system", "coredns-7d764666f9-qdcxt", "coredns");
    assert_eq!(get(&c, Metric::CpuUsageRate), Some(Value::Int(10)));
    assert_eq!(get(&coredns, Metric::CpuUsageRate), Some(Value::Int(10)));
    assert_eq!(get(&c, Metric::RestartCount), Some(Value::Int(2)));
    assert_eq!(
        get(&coredns, Metric::RestartCount),
        Some(Value::Int(2)),
        "summed to the pod"
    );
    assert_eq!(
        get(&coredns, Metric::MemoryLimit),
        Some(Value::Int(170 << 20))
    );
    let cset = batch.find(&c).expect("container");
    assert_eq!(
        cset.image.as_deref(),
        Some("registry.k8s.io/coredns/coredns:v1.13.1")
    );
    assert_eq!(cset.labels.as_deref(), Some("k8s-app:kube-dns"));

    // Every pod advanced 10 m: a namespace's rate is 10 m per pod in it, the cluster's 10 m × pods.
    let pods = first["pods"].as_array().expect("pods");
    let in_ns = |ns: &str| {
        pods.iter()
            .filter(|p| p["podRef"]["namespace"] == ns && p["cpu"].is_object())
            .count() as i64
    };
    let ks = SetKey::Namespace {
        namespace: Arc::from("kube-system"),
    };
    assert_eq!(
        get(&ks, Metric::CpuUsageRate),
        Some(Value::Int(10 * in_ns("kube-system")))
    );
    let with_cpu = pods.iter().filter(|p| p["cpu"].is_object()).count() as i64;
    assert_eq!(
        get(&SetKey::Cluster, Metric::CpuUsageRate),
        Some(Value::Int(10 * with_cpu))
    );
    // Memory is summed as reported: the namespace's usage is the sum of its pods'.
    let mem: i64 = pods
        .iter()
        .filter(|p| p["podRef"]["namespace"] == "kube-system")
        .filter_map(|p| p["memory"]["usageBytes"].as_i64())
        .sum();
    assert_eq!(get(&ks, Metric::MemoryUsage), Some(Value::Int(mem)));
    assert_eq!(batch.timestamp, 160 * S);
}

#[test]
fn restarts_and_decreasing_counters_give_no_rate() {
    let Some(body) = fixture("kubelet/nri-kubernetes-1_35-kubelet-stats-summary.json") else {
        return;
    };
    let first: Json = serde_json::from_slice(&body).expect("json");
    let mut second = advance(first.clone(), 2_500_000_000, 100_000_000);
    // The coredns container restarted: a new start time and a counter from zero.
    for pod in second["pods"].as_array_mut().expect("pods") {
        if pod["podRef"]["name"] == "coredns-7d764666f9-qdcxt" {
            let c = &mut pod["containers"][0];
            c["startTime"] = json!("2026-06-26T10:14:40Z");
            c["cpu"]["usageCoreNanoSeconds"] = json!(1_000_000);
        }
    }
    // The node's counter went backwards.
    second["node"]["cpu"]["usageCoreNanoSeconds"] = json!(1);
    let batch = process_two(&first, &second);
    let c = container_key("kube-system", "coredns-7d764666f9-qdcxt", "coredns");
    assert_eq!(
        batch.find(&c).and_then(|s| s.get(Metric::CpuUsageRate)),
        None
    );
    assert_eq!(
        batch
            .find(&node_key("datagen-1-35"))
            .and_then(|s| s.get(Metric::CpuUsageRate)),
        None
    );
    for set in &batch.sets {
        for (m, v) in &set.values {
            assert!(v.as_f64() >= 0.0, "{} {m} = {v:?}", set.key);
        }
    }
}

/// Advances every entity's `cpu`, `memory` and `io` by 10 s, their PSI `some` totals by
/// `some` µs and `full` totals by `full` µs (cpu, memory, io).
fn advance_psi(mut doc: Json, some: [u64; 3], full: [u64; 3]) -> Json {
    each_summary_entity(&mut doc, &mut |e| {
        for (i, r) in ["cpu", "memory", "io"].into_iter().enumerate() {
            let stat = &mut e[r];
            let Some(t) = stat["time"].as_str().and_then(time::parse_rfc3339) else {
                continue;
            };
            stat["time"] = json!(time::format_rfc3339(t + 10 * S));
            for (k, d) in [("some", some[i]), ("full", full[i])] {
                if let Some(v) = stat["psi"][k]["total"].as_u64() {
                    stat["psi"][k]["total"] = json!(v + d);
                }
            }
        }
    });
    doc
}

const PRESSURE: [Metric; 6] = [
    Metric::CpuPressureSome,
    Metric::CpuPressureFull,
    Metric::MemoryPressureSome,
    Metric::MemoryPressureFull,
    Metric::IoPressureSome,
    Metric::IoPressureFull,
];

#[test]
fn pressure_is_the_rate_of_the_stall_totals_of_1_34_and_1_35() {
    for version in ["1_34", "1_35"] {
        let Some(body) = fixture(&format!(
            "kubelet/nri-kubernetes-{version}-kubelet-stats-summary.json"
        )) else {
            return;
        };
        let first: Json = serde_json::from_slice(&body).expect("json");
        // 10 s apart: 2.5 s of cpu stall is 25 %, 0.1 s of memory stall 1 %, ...
        let second = advance_psi(
            first.clone(),
            [2_500_000, 100_000, 500_000],
            [1_000_000, 0, 250_000],
        );
        let batch = process_two(&first, &second);
        let want = [25.0, 10.0, 1.0, 0.0, 5.0, 2.5];
        let mut seen = 0;
        for set in &batch.sets {
            let has_psi = !matches!(set.key, SetKey::Namespace { .. } | SetKey::Cluster);
            for (m, w) in PRESSURE.iter().zip(want) {
                match set.get(*m) {
                    Some(Value::Float(v)) => {
                        assert!(has_psi, "{version} {}: {m}", set.key);
                        assert!(
                            (v - w).abs() < 1e-9,
                            "{version} {}: {m} = {v}, not {w}",
                            set.key
                        );
                        seen += 1;
                    }
                    None => assert!(!has_psi, "{version} {}: no {m}", set.key),
                    other => panic!("{m}: {other:?}"),
                }
            }
        }
        assert!(seen > 100, "{version}: {seen} pressure values");
        // Swap and processes are the payload's; namespaces and the cluster sum them.
        let node = batch
            .sets
            .iter()
            .find(|s| matches!(s.key, SetKey::Node { .. }))
            .expect("node");
        let n = &second["node"];
        let int = |v: &Json| v.as_u64().map(|v| Value::Int(v as i64));
        assert_eq!(node.get(Metric::ProcessCount), int(&n["rlimit"]["curproc"]));
        assert_eq!(node.get(Metric::ProcessLimit), int(&n["rlimit"]["maxpid"]));
        assert_eq!(
            node.get(Metric::MemorySwapUsage),
            int(&n["swap"]["swapUsageBytes"])
        );
        assert_eq!(
            node.get(Metric::MemorySwapAvailable),
            int(&n["swap"]["swapAvailableBytes"])
        );
        let mut processes = 0;
        for p in second["pods"].as_array().expect("pods") {
            let key = SetKey::Pod {
                namespace: Arc::from(p["podRef"]["namespace"].as_str().expect("ns")),
                pod: Arc::from(p["podRef"]["name"].as_str().expect("name")),
            };
            let set = batch.find(&key).expect("pod");
            let count = p["process_stats"]["process_count"].as_u64().expect("count");
            processes += count as i64;
            assert_eq!(
                set.get(Metric::ProcessCount),
                Some(Value::Int(count as i64))
            );
            assert_eq!(
                set.get(Metric::MemorySwapUsage),
                int(&p["swap"]["swapUsageBytes"])
            );
            for c in p["containers"].as_array().expect("containers") {
                let key = SetKey::PodContainer {
                    namespace: Arc::clone(key.namespace().expect("ns")),
                    pod: Arc::clone(key.pod().expect("pod")),
                    container: Arc::from(c["name"].as_str().expect("name")),
                };
                let set = batch.find(&key).expect("container");
                assert_eq!(
                    set.get(Metric::MemorySwapUsage),
                    int(&c["swap"]["swapUsageBytes"])
                );
                assert_eq!(
                    set.get(Metric::MemorySwapAvailable),
                    int(&c["swap"]["swapAvailableBytes"])
                );
                assert_eq!(
                    set.get(Metric::ProcessCount),
                    None,
                    "containers report none"
                );
            }
        }
        let cluster = batch.find(&SetKey::Cluster).expect("cluster");
        assert_eq!(
            cluster.get(Metric::ProcessCount),
            Some(Value::Int(processes))
        );
    }
}

#[test]
fn pressure_is_a_gap_after_a_reset_and_at_most_100() {
    let Some(body) = fixture("kubelet/nri-kubernetes-1_35-kubelet-stats-summary.json") else {
        return;
    };
    let first: Json = serde_json::from_slice(&body).expect("json");
    // More stall than time (whole-second timestamps): 100 at most.
    let over = advance_psi(first.clone(), [10_500_000; 3], [0; 3]);
    let batch = process_two(&first, &over);
    let node = batch
        .find(&SetKey::Node {
            node: Arc::from("datagen-1-35"),
        })
        .expect("node");
    assert_eq!(node.get(Metric::CpuPressureSome), Some(Value::Float(100.0)));
    assert_eq!(node.get(Metric::CpuPressureFull), Some(Value::Float(0.0)));
    // A total that went back (a cgroup recreated): no value, never a negative one.
    let mut reset = advance_psi(first.clone(), [0; 3], [0; 3]);
    reset["node"]["cpu"]["psi"]["some"]["total"] = json!(5);
    let batch = process_two(&first, &reset);
    let node = batch
        .find(&SetKey::Node {
            node: Arc::from("datagen-1-35"),
        })
        .expect("node");
    assert_eq!(node.get(Metric::CpuPressureSome), None);
    assert_eq!(node.get(Metric::CpuPressureFull), Some(Value::Float(0.0)));
}

/// Kubelets without PSI (before 1.33, cgroup v1, Windows nodes): no pressure value at all,
/// never a 0, while the other rates are there.
#[test]
fn payloads_without_psi_give_no_pressure() {
    let mut payloads = Vec::new();
    if let Some(body) = fixture("kubelet/nri-kubernetes-1_27-kubelet-stats-summary.json") {
        payloads.push(serde_json::from_slice::<Json>(&body).expect("json"));
    }
    if let Some(body) = fixture("kubelet/nri-kubernetes-1_35-kubelet-stats-summary.json") {
        // As a Windows node answers: no `psi` and no `io` anywhere.
        let mut doc: Json = serde_json::from_slice(&body).expect("json");
        without_psi(&mut doc);
        assert!(!serde_json::to_string(&doc).expect("json").contains("psi"));
        payloads.push(doc);
    }
    for first in payloads {
        let second = advance(advance_psi(first.clone(), [0; 3], [0; 3]), 0, 1_000_000_000);
        let batch = process_two(&first, &second);
        let mut rates = 0;
        for set in &batch.sets {
            for m in PRESSURE {
                assert_eq!(set.get(m), None, "{}: {m}", set.key);
            }
            rates += usize::from(set.get(Metric::CpuUsageRate).is_some());
        }
        assert!(rates > 5, "{rates} cpu rates");
    }
}
