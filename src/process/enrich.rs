//! Adds what the apiserver knows to the kubelet's sets: labels, images, requests and limits,
//! restart counts, node capacity and allocatable.

use std::sync::Arc;

use crate::model::cluster::{ClusterState, NodeInfo, PodInfo, PodStamp};
use crate::model::sample::RawSet;
use crate::model::{Metric, MetricSet, SetKey, Value};

/// A node's pod records from its last tick, in the order its kubelet listed the pods, while
/// the node's [`PodStamp`] holds: finding a pod is then one look at the same place (its name,
/// namespace and node compared), not a lookup in the map of all pods (at 150,000 pods, three
/// cache misses: control bytes, bucket, key). About 300 bytes per node.
#[derive(Default)]
pub struct NodePods {
    stamp: PodStamp,
    pods: Vec<Option<Arc<PodInfo>>>,
    /// The processor's tick that last used these (records of nodes not scraped are dropped).
    pub(super) tick: u64,
}

/// Enriches a node's sets in place. A pod's containers follow it, sharing its namespace and
/// name `Arc`s (see `decode_summary`), so the pod's lookup serves them too. `kept` is the
/// node's records from its last tick, updated.
pub fn enrich_all(sets: &mut [RawSet], cluster: &ClusterState, node: &str, kept: &mut NodePods) {
    let stamp = cluster.pod_stamp(node);
    if kept.stamp != stamp {
        kept.pods.clear();
        kept.stamp = stamp;
    }
    // The pod being enriched (its key's pointers) and its place in `kept.pods`.
    let mut last: Option<(*const str, *const str, usize)> = None;
    let mut next = 0;
    for raw in sets {
        let set = &mut raw.set;
        let (namespace, pod) = match &set.key {
            SetKey::Node { node } => {
                if let Some(info) = cluster.nodes.get(&**node) {
                    enrich_node(set, &Arc::clone(info));
                }
                continue;
            }
            SetKey::Pod { namespace, pod } | SetKey::PodContainer { namespace, pod, .. } => {
                (namespace, pod)
            }
            SetKey::SysContainer { .. } | SetKey::Namespace { .. } | SetKey::Cluster => continue,
        };
        let ptrs = (Arc::as_ptr(namespace), Arc::as_ptr(pod));
        let at = match last {
            Some((n, p, at)) if std::ptr::addr_eq(n, ptrs.0) && std::ptr::addr_eq(p, ptrs.1) => at,
            _ => {
                let at = next;
                next += 1;
                // Only a record bound to this node: a change to it changes the node's stamp.
                let same = |i: &Arc<PodInfo>| {
                    *i.name == **pod
                        && *i.namespace == **namespace
                        && i.node.as_deref() == Some(node)
                };
                match kept.pods.get_mut(at) {
                    Some(Some(i)) if same(i) => {}
                    Some(slot) => *slot = cluster.pod(namespace, pod).cloned(),
                    None => kept.pods.push(cluster.pod(namespace, pod).cloned()),
                }
                last = Some((ptrs.0, ptrs.1, at));
                at
            }
        };
        if let Some(Some(info)) = kept.pods.get(at) {
            enrich_pod_set(set, info);
        }
    }
    kept.pods.truncate(next);
}

/// A pod's or a container's set, from its pod's record.
fn enrich_pod_set(set: &mut MetricSet, info: &PodInfo) {
    set.labels.clone_from(&info.labels);
    set.extra_tags.clone_from(&info.extra_tags);
    match &set.key {
        SetKey::Pod { .. } if set.pod_uid.is_none() => {
            set.pod_uid = Some(Arc::clone(&info.uid));
        }
        SetKey::PodContainer { container, .. } => {
            if let Some(c) = info.container(container) {
                set.image.clone_from(&c.image);
                let ints = [
                    (Metric::CpuRequest, c.cpu_request_millis),
                    (Metric::CpuLimit, c.cpu_limit_millis),
                    (Metric::MemoryRequest, c.memory_request_bytes),
                    (Metric::MemoryLimit, c.memory_limit_bytes),
                    (Metric::EphemeralStorageRequest, c.ephemeral_request_bytes),
                    (Metric::EphemeralStorageLimit, c.ephemeral_limit_bytes),
                    (Metric::RestartCount, c.restart_count),
                ];
                for (m, v) in ints {
                    set.set(m, Value::Int(v));
                }
            }
        }
        _ => {}
    }
}

fn enrich_node(set: &mut MetricSet, info: &NodeInfo) {
    set.labels.clone_from(&info.labels);
    set.extra_tags.clone_from(&info.extra_tags);
    set.schedulable = Some(info.schedulable);
    let floats = [
        (Metric::CpuNodeCapacity, info.cpu_capacity_millis),
        (Metric::MemoryNodeCapacity, info.memory_capacity_bytes),
        (Metric::CpuNodeAllocatable, info.cpu_allocatable_millis),
        (Metric::MemoryNodeAllocatable, info.memory_allocatable_bytes),
    ];
    for (m, v) in floats {
        if let Some(v) = v {
            set.set(m, Value::Float(v as f64));
        }
    }
    // Requests and limits are summed from pods later; a node without pods reserves nothing.
    for m in NODE_FROM_PODS {
        set.set(m, Value::Int(0));
    }
}

/// Pod metrics summed into their node.
pub const NODE_FROM_PODS: [Metric; 6] = [
    Metric::CpuRequest,
    Metric::CpuLimit,
    Metric::MemoryRequest,
    Metric::MemoryLimit,
    Metric::EphemeralStorageRequest,
    Metric::EphemeralStorageLimit,
];

/// Utilization and reservation of a node, from its usage, requests and allocatable.
pub fn node_ratios(set: &mut MetricSet) {
    let ratio = |num: Option<Value>, den: Option<Value>| -> Option<Value> {
        let d = den?.as_f64();
        (d > 0.0).then(|| Value::Float(num.map(Value::as_f64).unwrap_or(0.0) / d))
    };
    let cpu_alloc = set.get(Metric::CpuNodeAllocatable);
    let mem_alloc = set.get(Metric::MemoryNodeAllocatable);
    if set.get(Metric::CpuUsageRate).is_some()
        && let Some(v) = ratio(set.get(Metric::CpuUsageRate), cpu_alloc)
    {
        set.set(Metric::CpuNodeUtilization, v);
    }
    if set.get(Metric::MemoryUsage).is_some()
        && let Some(v) = ratio(set.get(Metric::MemoryUsage), mem_alloc)
    {
        set.set(Metric::MemoryNodeUtilization, v);
    }
    if let Some(v) = ratio(set.get(Metric::CpuRequest), cpu_alloc) {
        set.set(Metric::CpuNodeReservation, v);
    }
    if let Some(v) = ratio(set.get(Metric::MemoryRequest), mem_alloc) {
        set.set(Metric::MemoryNodeReservation, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SetKey;
    use crate::process::Processor;
    use crate::testing::sim_sample;

    const NODE: &str = "sim-node-0000";

    fn pod(namespace: &str, name: &str, node: &str, labels: &str) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            namespace: Arc::from(namespace),
            name: Arc::from(name),
            node: Some(Arc::from(node)),
            labels: Some(Arc::from(labels)),
            ..PodInfo::default()
        })
    }

    /// Each pod's labels (pods and containers must agree) after a tick at `now` seconds.
    fn labels_after(p: &mut Processor, cluster: &ClusterState, now: i64) -> Vec<Option<String>> {
        let t = now * 1_000_000_000;
        let sample = sim_sample(NODE, 0, 4, t);
        let batch = p.process(vec![sample], cluster, t, i64::MAX);
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        for set in &batch.sets {
            let (Some(pod), Some(_)) = (set.key.pod(), set.key.namespace()) else {
                continue;
            };
            let labels = set.labels.as_deref().map(str::to_string);
            match out.iter().find(|(p, _)| **p == **pod) {
                Some((_, l)) => assert_eq!(*l, labels, "{pod}: pod and containers differ"),
                None => out.push((pod.to_string(), labels)),
            }
        }
        out.into_iter().map(|(_, l)| l).collect()
    }

    #[test]
    fn pod_records_kept_from_the_last_tick_follow_every_change() {
        let pods: Vec<(String, String)> = sim_sample(NODE, 0, 4, 2_000_000_000)
            .sets
            .iter()
            .filter_map(|raw| match &raw.set.key {
                SetKey::Pod { namespace, pod } => Some((namespace.to_string(), pod.to_string())),
                _ => None,
            })
            .collect();
        assert_eq!(pods.len(), 4);
        let mut cluster = ClusterState::default();
        for (ns, name) in &pods {
            cluster.insert_pod(pod(ns, name, NODE, "v1"));
        }
        let v = |s: &str| Some(s.to_string());
        let mut p = Processor::new();
        assert_eq!(labels_after(&mut p, &cluster, 10), vec![v("v1"); 4]);
        assert_eq!(labels_after(&mut p, &cluster, 25), vec![v("v1"); 4]);
        // Replaced, removed.
        cluster.insert_pod(pod(&pods[1].0, &pods[1].1, NODE, "v2"));
        cluster.remove_pod(&pods[2].0, &pods[2].1);
        let want = vec![v("v1"), v("v2"), None, v("v1")];
        assert_eq!(labels_after(&mut p, &cluster, 40), want);
        assert_eq!(labels_after(&mut p, &cluster, 55), want);
        // Back, and a record that says the pod is on another node: its changes do not change
        // this node's stamp, so it is looked up every tick.
        cluster.insert_pod(pod(&pods[2].0, &pods[2].1, NODE, "v1"));
        cluster.insert_pod(pod(&pods[3].0, &pods[3].1, "elsewhere", "v3"));
        let want = vec![v("v1"), v("v2"), v("v1"), v("v3")];
        assert_eq!(labels_after(&mut p, &cluster, 70), want);
        cluster.insert_pod(pod(&pods[3].0, &pods[3].1, "elsewhere", "v4"));
        let want = vec![v("v1"), v("v2"), v("v1"), v("v4")];
        assert_eq!(labels_after(&mut p, &cluster, 85), want);
        // A relist.
        let mut fresh = ClusterState::default();
        for (ns, name) in &pods {
            fresh.insert_pod(pod(ns, name, NODE, "v5"));
        }
        cluster.replace_pods(&mut fresh);
        assert_eq!(labels_after(&mut p, &cluster, 100), vec![v("v5"); 4]);
    }
}
