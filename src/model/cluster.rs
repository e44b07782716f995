//! What the apiserver tells about nodes and pods, stripped to what processing uses.
//!
//! The watchers convert each object into these compact, immutable records as it arrives, so the
//! collector never holds full `Node` or `Pod` objects.

use std::net::IpAddr;
use std::sync::Arc;

use super::FastMap;
use super::labels::StoredLabels;

/// Labels as (key, value) pairs, for label selectors in the APIs.
pub type LabelPairs = Box<[(Arc<str>, Arc<str>)]>;

/// Shares the strings that many pods repeat (namespaces, node names, container names, images,
/// label keys and values): one allocation each instead of one per pod. Strings no record
/// uses any more are forgotten as the table grows, so it stays proportional to what is live.
#[derive(Default)]
pub struct Interner {
    strings: std::collections::HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// Size after the last pruning.
    live: usize,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.strings.get(s) {
            return Arc::clone(a);
        }
        if self.strings.len() >= 2 * self.live.max(1024) {
            self.prune();
        }
        let a: Arc<str> = Arc::from(s);
        self.strings.insert(Arc::clone(&a));
        a
    }

    /// Forgets the strings only the table holds.
    pub fn prune(&mut self) {
        self.strings.retain(|a| Arc::strong_count(a) > 1);
        self.live = self.strings.len();
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

/// A node as the collector needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeInfo {
    pub name: Arc<str>,
    /// Joined labels (`labels` tag).
    pub labels: Option<Arc<str>>,
    pub extra_tags: Option<StoredLabels>,
    /// The raw labels, for label selectors in the APIs.
    pub label_map: LabelPairs,
    pub schedulable: bool,
    pub ready: bool,
    /// Addresses by type (`InternalIP`, ...), in the order the node lists them.
    pub addresses: Vec<(String, String)>,
    /// `status.daemonEndpoints.kubeletEndpoint.port` (0 when unknown).
    pub kubelet_port: u16,
    pub cpu_capacity_millis: Option<i64>,
    pub memory_capacity_bytes: Option<i64>,
    pub cpu_allocatable_millis: Option<i64>,
    pub memory_allocatable_bytes: Option<i64>,
}

impl NodeInfo {
    /// The first address of the preferred types, as an IP or host name.
    pub fn address(&self, preference: &[&str]) -> Option<&str> {
        preference.iter().find_map(|t| {
            self.addresses
                .iter()
                .find(|(ty, _)| ty == t)
                .map(|(_, a)| a.as_str())
        })
    }

    /// The address formatted for a URL host (IPv6 in brackets).
    pub fn url_host(addr: &str) -> String {
        match addr.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => addr.to_string(),
        }
    }
}

/// A container of a pod's spec, with its status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerInfo {
    pub name: Arc<str>,
    pub image: Option<Arc<str>>,
    pub cpu_request_millis: i64,
    pub cpu_limit_millis: i64,
    pub memory_request_bytes: i64,
    pub memory_limit_bytes: i64,
    pub ephemeral_request_bytes: i64,
    pub ephemeral_limit_bytes: i64,
    pub restart_count: i64,
}

/// A pod as the collector needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodInfo {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    pub uid: Arc<str>,
    pub node: Option<Arc<str>>,
    pub labels: Option<Arc<str>>,
    pub extra_tags: Option<StoredLabels>,
    pub label_map: LabelPairs,
    pub containers: Vec<ContainerInfo>,
}

impl PodInfo {
    pub fn container(&self, name: &str) -> Option<&ContainerInfo> {
        self.containers.iter().find(|c| &*c.name == name)
    }
}

/// The cluster as the watchers last saw it.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub nodes: FastMap<Arc<str>, Arc<NodeInfo>>,
    /// Namespace → pod name → pod.
    pub pods: FastMap<Arc<str>, FastMap<Arc<str>, Arc<PodInfo>>>,
}

impl ClusterState {
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(namespace)?.get(name)
    }

    pub fn insert_pod(&mut self, pod: Arc<PodInfo>) {
        self.pods
            .entry(Arc::clone(&pod.namespace))
            .or_default()
            .insert(Arc::clone(&pod.name), pod);
    }

    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        if let Some(ns) = self.pods.get_mut(namespace) {
            ns.remove(name);
            if ns.is_empty() {
                self.pods.remove(namespace);
            }
        }
    }

    pub fn pod_count(&self) -> usize {
        self.pods.values().map(|ns| ns.len()).sum()
    }
}
