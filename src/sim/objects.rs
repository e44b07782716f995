//! Builds the apiserver's Node, Pod and Namespace objects with `k8s_openapi` types, from the node
//! table and the naming formulas.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::DaemonEndpoint;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStatus, Namespace, NamespaceStatus,
    Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
    Pod, PodCondition, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::formulas as f;
use super::state::{Config, NodeState};
use crate::model::Nanos;

fn time(t: Nanos) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(t)).unwrap_or_default())
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

/// The labels of a node.
pub(crate) fn node_labels(name: &str) -> BTreeMap<String, String> {
    map(&[
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("node.kubernetes.io/instance-type", "sim"),
    ])
}

/// The labels of a pod: `app`, `pod-template-hash`, `tier`.
pub(crate) fn pod_labels(pod: usize) -> BTreeMap<String, String> {
    let app = f::pod_app(pod);
    let hash = format!("{:x}", 0x5d4c_3b00 + pod % 7);
    let tier = if pod.is_multiple_of(2) {
        "frontend"
    } else {
        "backend"
    };
    map(&[("app", app), ("pod-template-hash", &hash), ("tier", tier)])
}

/// The Node object of `n`.
pub(crate) fn node(cfg: &Config, n: &NodeState) -> Node {
    let condition = |type_: &str, status: &str, reason: &str| NodeCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        last_heartbeat_time: Some(time(n.start)),
        last_transition_time: Some(time(n.start)),
        ..Default::default()
    };
    let ready = if n.ready {
        condition("Ready", "True", "KubeletReady")
    } else {
        condition("Ready", "False", "KubeletNotReady")
    };
    let version = format!("v1.{}.0", cfg.minor);
    Node {
        metadata: ObjectMeta {
            name: Some(n.name.clone()),
            uid: Some(format!("5170ad00-0000-4000-9000-{:012x}", n.index)),
            resource_version: Some(n.rv.to_string()),
            creation_timestamp: Some(time(n.start)),
            labels: Some(node_labels(&n.name)),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(format!("10.{}.{}.0/24", n.index / 256 % 256, n.index % 256)),
            provider_id: Some(format!("sim://{}", n.name)),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            capacity: Some(quantities(&[
                ("cpu", "4"),
                ("memory", "16Gi"),
                ("pods", "110"),
                ("ephemeral-storage", "100Gi"),
            ])),
            allocatable: Some(quantities(&[
                ("cpu", "3900m"),
                ("memory", "15Gi"),
                ("pods", "110"),
                ("ephemeral-storage", "95Gi"),
            ])),
            conditions: Some(vec![
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                ready,
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".to_owned(),
                    address: n.ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".to_owned(),
                    address: n.name.clone(),
                },
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: i32::from(cfg.kubelet_port),
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".to_owned(),
                boot_id: format!("b0070000-0000-4000-8000-{:012x}", n.index),
                container_runtime_version: "containerd://1.7.24".to_owned(),
                kernel_version: "6.8.0-sim".to_owned(),
                kube_proxy_version: version.clone(),
                kubelet_version: version,
                machine_id: format!("{:032x}", n.index + 1),
                operating_system: "linux".to_owned(),
                os_image: "Heapster Simulator Linux".to_owned(),
                system_uuid: format!("5170ad00-0000-4000-a000-{:012x}", n.index),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn resources(n: usize, p: usize, c: usize) -> Option<ResourceRequirements> {
    f::container_has_resources(n, p, c).then(|| ResourceRequirements {
        requests: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
        limits: Some(quantities(&[("cpu", "500m"), ("memory", "256Mi")])),
        ..Default::default()
    })
}

fn image(c: usize) -> String {
    format!("registry.k8s.io/{}:1.0", f::container_name(c))
}

/// The Pod object of pod `p` on node `n`.
pub(crate) fn pod(cfg: &Config, n: &NodeState, p: usize) -> Pod {
    let i = n.index;
    let containers = (0..cfg.containers_per_pod)
        .map(|c| Container {
            name: f::container_name(c),
            image: Some(image(c)),
            resources: resources(i, p, c),
            ..Default::default()
        })
        .collect();
    let statuses = (0..cfg.containers_per_pod)
        .map(|c| ContainerStatus {
            name: f::container_name(c),
            image: image(c),
            image_id: format!("{}@sha256:{:064x}", image(c), c + 1),
            container_id: Some(format!("containerd://{:016x}{:048x}", i, p * 64 + c)),
            ready: true,
            started: Some(true),
            restart_count: i32::try_from(n.restart_count(p, c)).unwrap_or(i32::MAX),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(time(n.container_start(p, c))),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let condition = |type_: &str| PodCondition {
        type_: type_.to_owned(),
        status: "True".to_owned(),
        last_transition_time: Some(time(n.start)),
        ..Default::default()
    };
    let qos = if (0..cfg.containers_per_pod).all(|c| !f::container_has_resources(i, p, c)) {
        "BestEffort"
    } else {
        "Burstable"
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(f::pod_name(i, p)),
            namespace: Some(f::pod_namespace(p).to_owned()),
            uid: Some(f::pod_uid(i, p)),
            resource_version: Some(n.pod_rv(p).to_string()),
            creation_timestamp: Some(time(n.start)),
            labels: Some(pod_labels(p)),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(n.name.clone()),
            containers,
            restart_policy: Some("Always".to_owned()),
            service_account_name: Some("default".to_owned()),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            host_ip: Some(n.ip.to_string()),
            pod_ip: Some(format!("10.{}.{}.{}", i / 256 % 256, i % 256, p % 250 + 2)),
            start_time: Some(time(n.start)),
            qos_class: Some(qos.to_owned()),
            conditions: Some(vec![
                condition("PodScheduled"),
                condition("Initialized"),
                condition("ContainersReady"),
                condition("Ready"),
            ]),
            container_statuses: Some(statuses),
            ..Default::default()
        }),
    }
}

/// The Namespace object of `NAMESPACES[index]`.
pub(crate) fn namespace(index: usize, start: Nanos) -> Namespace {
    let name = f::NAMESPACES[index % f::NAMESPACES.len()];
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            uid: Some(format!("5170ad00-0000-4000-b000-{:012x}", index)),
            resource_version: Some("1".to_owned()),
            creation_timestamp: Some(time(start)),
            labels: Some(map(&[("kubernetes.io/metadata.name", name)])),
            ..Default::default()
        },
        status: Some(NamespaceStatus {
            phase: Some("Active".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}
