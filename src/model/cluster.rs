//! What the apiserver tells about nodes and pods, stripped to what processing uses.
//!
//! The watchers convert each object into these compact, immutable records as it arrives, so the
//! collector never holds full `Node` or `Pod` objects.

use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

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
    /// Namespace → pod name → pod. Changed only through the methods below, which keep
    /// [`ClusterState::pod_stamp`] right.
    pods: FastMap<Arc<str>, FastMap<Arc<str>, Arc<PodInfo>>>,
    /// Changes counted; each node's pods, and the whole pod list, stamped with the count at
    /// their last change.
    changes: u64,
    node_changed: FastMap<Arc<str>, u64>,
    all_changed: u64,
}

/// The writing end of the cluster state: owned by the watchers, the only ones that change it.
/// Built with [`cluster_state`].
pub struct ClusterWriter(Arc<RwLock<ClusterState>>);

/// A cheap, cloneable, read-only handle on the cluster state for everyone else (the tick, the
/// APIs). Reads are short and never held across `.await`.
#[derive(Clone)]
pub struct ClusterReader(Arc<RwLock<ClusterState>>);

/// A fresh, empty cluster state: the writer for the watchers and a reader for the rest.
pub fn cluster_state() -> (ClusterWriter, ClusterReader) {
    let shared = Arc::new(RwLock::new(ClusterState::default()));
    (ClusterWriter(Arc::clone(&shared)), ClusterReader(shared))
}

impl ClusterWriter {
    /// Exclusive access. A watcher that panicked while writing leaves a state that is still
    /// whole (every change is a single insert or swap), so poisoning is ignored.
    pub fn write(&self) -> RwLockWriteGuard<'_, ClusterState> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A second writer (the node and pod watchers each hold one).
    pub fn share(&self) -> ClusterWriter {
        ClusterWriter(Arc::clone(&self.0))
    }

    /// A read-only handle on the same state.
    pub fn reader(&self) -> ClusterReader {
        ClusterReader(Arc::clone(&self.0))
    }
}

impl ClusterReader {
    /// A handle on a state that no watcher changes (tests, benches).
    pub fn fixed(state: ClusterState) -> ClusterReader {
        ClusterReader(Arc::new(RwLock::new(state)))
    }

    /// Shared access (see [`ClusterWriter::write`] on poisoning).
    pub fn read(&self) -> RwLockReadGuard<'_, ClusterState> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a node's pods were when [`ClusterState::pod_stamp`] was taken: equal stamps, same pods
/// (the same records, none added or removed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodStamp {
    all: u64,
    node: u64,
}

impl ClusterState {
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Arc<PodInfo>> {
        self.pods.get(namespace)?.get(name)
    }

    /// The stamp of the pods bound to `node`: it changes whenever one of them is added,
    /// replaced or removed. Processing keeps each node's pod records from one tick to the next
    /// while it holds.
    pub fn pod_stamp(&self, node: &str) -> PodStamp {
        PodStamp {
            all: self.all_changed,
            node: self.node_changed.get(node).copied().unwrap_or(0),
        }
    }

    fn changed(&mut self, pod: &PodInfo) {
        self.changes += 1;
        let Some(node) = &pod.node else { return };
        // Bounded by the nodes ever seen since the last reset: a cluster that replaces its
        // nodes resets every stamp once in a while instead of growing.
        if self.node_changed.len() >= 2 * self.nodes.len() + 1024
            && !self.node_changed.contains_key(&**node)
        {
            self.node_changed.clear();
            self.all_changed = self.changes;
        }
        self.node_changed.insert(Arc::clone(node), self.changes);
    }

    pub fn insert_pod(&mut self, pod: Arc<PodInfo>) {
        self.changed(&pod);
        let old = self
            .pods
            .entry(Arc::clone(&pod.namespace))
            .or_default()
            .insert(Arc::clone(&pod.name), pod);
        if let Some(old) = old {
            self.changed(&old);
        }
    }

    pub fn remove_pod(&mut self, namespace: &str, name: &str) {
        let Some(ns) = self.pods.get_mut(namespace) else {
            return;
        };
        let old = ns.remove(name);
        if ns.is_empty() {
            self.pods.remove(namespace);
        }
        if let Some(old) = old {
            self.changed(&old);
        }
    }

    /// Takes the pods of `fresh` (a relist) in place of all of these.
    pub fn replace_pods(&mut self, fresh: &mut ClusterState) {
        self.pods = std::mem::take(&mut fresh.pods);
        self.changes += 1;
        self.all_changed = self.changes;
        self.node_changed.clear();
    }

    pub fn pod_count(&self) -> usize {
        self.pods.values().map(|ns| ns.len()).sum()
    }
}

#[cfg(test)]
mod stamp_tests {
    use super::*;

    fn pod(name: &str, node: Option<&str>) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            namespace: Arc::from("default"),
            name: Arc::from(name),
            node: node.map(Arc::from),
            ..PodInfo::default()
        })
    }

    #[test]
    fn a_node_stamp_changes_with_its_pods_only() {
        let mut c = ClusterState::default();
        let (a0, b0) = (c.pod_stamp("a"), c.pod_stamp("b"));
        c.insert_pod(pod("p", Some("a")));
        let a1 = c.pod_stamp("a");
        assert_ne!(a1, a0);
        assert_eq!(c.pod_stamp("b"), b0);
        // Replaced by a record on another node: both change.
        c.insert_pod(pod("p", Some("b")));
        let (a2, b2) = (c.pod_stamp("a"), c.pod_stamp("b"));
        assert!(a2 != a1 && b2 != b0);
        // Unscheduled pods and unknown names change nothing.
        c.insert_pod(pod("q", None));
        c.remove_pod("default", "nothing");
        c.remove_pod("elsewhere", "p");
        assert_eq!((c.pod_stamp("a"), c.pod_stamp("b")), (a2, b2));
        c.remove_pod("default", "p");
        assert_ne!(c.pod_stamp("b"), b2);
        assert_eq!(c.pod_stamp("a"), a2);
        // A relist changes every stamp.
        let b3 = c.pod_stamp("b");
        c.replace_pods(&mut ClusterState::default());
        assert!(c.pod_stamp("a") != a2 && c.pod_stamp("b") != b3);
        assert_eq!(c.pod_count(), 0);
    }

    #[test]
    fn stamps_of_nodes_come_and_gone_are_bounded() {
        let mut c = ClusterState::default();
        for i in 0..3000 {
            c.insert_pod(pod(&format!("p{i}"), Some(&format!("n{i}"))));
            let stamp = c.pod_stamp(&format!("n{i}"));
            assert_ne!(stamp, PodStamp::default());
            assert!(c.node_changed.len() <= 1024, "{}", c.node_changed.len());
        }
    }
}
