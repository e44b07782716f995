//! Adds what the apiserver knows to the kubelet's sets: labels, images, requests and limits,
//! restart counts, node capacity and allocatable.

use std::sync::Arc;

use super::decode::RawSet;
use crate::model::cluster::{ClusterState, NodeInfo, PodInfo};
use crate::model::{Metric, MetricSet, SetKey, Value};

/// Enriches a node's sets in place. A pod's containers follow it, sharing its namespace and
/// name `Arc`s (see `decode_summary`), so the pod's lookup serves them too.
pub fn enrich_all(sets: &mut [RawSet], cluster: &ClusterState) {
    let mut last: Option<(*const str, *const str, Option<&Arc<PodInfo>>)> = None;
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
        let info = match last {
            Some((n, p, info)) if std::ptr::addr_eq(n, ptrs.0) && std::ptr::addr_eq(p, ptrs.1) => {
                info
            }
            _ => {
                let info = cluster.pod(namespace, pod);
                last = Some((ptrs.0, ptrs.1, info));
                info
            }
        };
        if let Some(info) = info {
            enrich_pod_set(set, info);
        }
    }
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
