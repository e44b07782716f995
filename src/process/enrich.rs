//! Adds what the apiserver knows to the kubelet's sets: labels, images, requests and limits,
//! restart counts, node capacity and allocatable.

use std::sync::Arc;

use super::decode::RawSet;
use crate::model::cluster::{ClusterState, NodeInfo};
use crate::model::{Metric, MetricSet, SetKey, Value};

/// Enriches one set in place.
pub fn enrich(raw: &mut RawSet, cluster: &ClusterState) {
    let set = &mut raw.set;
    match &set.key {
        SetKey::Node { node } => {
            if let Some(info) = cluster.nodes.get(&**node) {
                enrich_node(set, &Arc::clone(info));
            }
        }
        SetKey::Pod { namespace, pod } => {
            if let Some(info) = cluster.pod(namespace, pod) {
                set.labels.clone_from(&info.labels);
                set.extra_tags.clone_from(&info.extra_tags);
                if set.pod_uid.is_none() {
                    set.pod_uid = Some(Arc::clone(&info.uid));
                }
            }
        }
        SetKey::PodContainer {
            namespace,
            pod,
            container,
        } => {
            let Some(info) = cluster.pod(namespace, pod) else {
                return;
            };
            set.labels.clone_from(&info.labels);
            set.extra_tags.clone_from(&info.extra_tags);
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
        SetKey::SysContainer { .. } | SetKey::Namespace { .. } | SetKey::Cluster => {}
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
