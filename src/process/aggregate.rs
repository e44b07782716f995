//! Aggregation: containers → pod (what the pod lacks), pods → node (requests and limits),
//! pods → namespace → cluster (usage, requests, limits).

use std::sync::Arc;

use super::decode::RawSet;
use super::enrich::NODE_FROM_PODS;
use super::rates::{PRESSURE_MASK, rates_of};
use crate::model::{FastMap, Metric, MetricSet, Nanos, SetKey};

/// Summed into namespaces and the cluster (Heapster's list, plus the working set, swap usage
/// and process counts). Pressure is not: an average of percentages across pods means nothing.
pub const NS_METRICS: [Metric; 9] = [
    Metric::CpuUsageRate,
    Metric::MemoryUsage,
    Metric::MemoryWorkingSet,
    Metric::CpuRequest,
    Metric::CpuLimit,
    Metric::MemoryRequest,
    Metric::MemoryLimit,
    Metric::MemorySwapUsage,
    Metric::ProcessCount,
];

/// [`NS_METRICS`] and [`NODE_FROM_PODS`] as masks.
const NS_MASK: u64 = Metric::mask(&NS_METRICS);
const NODE_MASK: u64 = Metric::mask(&NODE_FROM_PODS);

/// Container values a pod never takes from its containers: its uptime, pressure (percentages
/// do not add up) and available swap (containers that report none would make the sum short).
const POD_SKIPS: u64 = Metric::mask(&[Metric::Uptime, Metric::MemorySwapAvailable]) | PRESSURE_MASK;

/// Fills pods from their containers. Pods that only exist through containers are created.
///
/// A kubelet lists each pod's containers right after the pod (`decode_summary` keeps that
/// order), so a container's pod is first looked for as the last pod seen; a map of all pods is
/// built only when that misses.
pub fn containers_to_pods(sets: &mut Vec<RawSet>) {
    let mut pods: Option<PodIndex> = None;
    let mut last_pod: Option<usize> = None;
    for i in 0..sets.len() {
        let (namespace, pod) = match &sets[i].set.key {
            SetKey::PodContainer { namespace, pod, .. } => (namespace, pod),
            SetKey::Pod { .. } => {
                last_pod = Some(i);
                continue;
            }
            _ => continue,
        };
        let same = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b) || a == b;
        let follows = last_pod.filter(|&pi| {
            matches!(&sets[pi].set.key, SetKey::Pod { namespace: n, pod: p }
                if same(n, namespace) && same(p, pod))
        });
        let pi = match follows {
            Some(pi) => pi,
            None => {
                let pk = (Arc::clone(namespace), Arc::clone(pod));
                let pods = pods.get_or_insert_with(|| pod_index(sets));
                match pods.get(&pk) {
                    Some(&pi) => pi,
                    None => {
                        let pi = sets.len();
                        sets.push(pod_from_container(&sets[i].set, &pk));
                        pods.insert(pk, pi);
                        pi
                    }
                }
            }
        };
        let (container, pod_set) = pair(sets, i, pi);
        // What the pod lacks: not its own values, nor the rates of its own counters.
        let takes = !(POD_SKIPS | pod_set.own | rates_of(pod_set.own));
        pod_set.set.values.add_from(&container.set.values, takes);
    }
}

/// Sets `from` and `to` (different) of `sets`, borrowed together.
fn pair(sets: &mut [RawSet], from: usize, to: usize) -> (&RawSet, &mut RawSet) {
    if from < to {
        let (a, b) = sets.split_at_mut(to);
        (&a[from], &mut b[0])
    } else {
        let (a, b) = sets.split_at_mut(from);
        (&b[0], &mut a[to])
    }
}

/// Where each pod's set is, by namespace and name.
type PodIndex = FastMap<(Arc<str>, Arc<str>), usize>;

/// Builds the [`PodIndex`] of `sets`.
fn pod_index(sets: &[RawSet]) -> PodIndex {
    let mut pods = FastMap::default();
    for (i, raw) in sets.iter().enumerate() {
        if let SetKey::Pod { namespace, pod } = &raw.set.key {
            pods.insert((Arc::clone(namespace), Arc::clone(pod)), i);
        }
    }
    pods
}

/// A pod set for a container whose pod the kubelet did not list.
fn pod_from_container(c: &MetricSet, pk: &(Arc<str>, Arc<str>)) -> RawSet {
    let mut set = MetricSet::new(
        SetKey::Pod {
            namespace: Arc::clone(&pk.0),
            pod: Arc::clone(&pk.1),
        },
        c.scrape_time,
    );
    set.node.clone_from(&c.node);
    set.labels.clone_from(&c.labels);
    set.extra_tags.clone_from(&c.extra_tags);
    set.pod_uid.clone_from(&c.pod_uid);
    RawSet {
        set,
        times: Default::default(),
        own: 0,
        pressure: Default::default(),
    }
}

/// Sums pods into their nodes (requests and limits) and adds the node ratios. The sets are
/// one kubelet's: one node (a short list, not a map), its system containers and pods.
pub fn pods_to_nodes(sets: &mut [RawSet]) {
    let nodes: Vec<(Arc<str>, usize)> = sets
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| match &raw.set.key {
            SetKey::Node { node } => Some((Arc::clone(node), i)),
            _ => None,
        })
        .collect();
    if nodes.is_empty() {
        return;
    }
    for i in 0..sets.len() {
        let pod = &sets[i].set;
        if !matches!(pod.key, SetKey::Pod { .. }) {
            continue;
        }
        let Some(&(_, node_idx)) = pod.node.as_ref().and_then(|n| {
            nodes
                .iter()
                .find(|(name, _)| Arc::ptr_eq(name, n) || name == n)
        }) else {
            continue;
        };
        let (pod, node) = pair(sets, i, node_idx);
        node.set.values.add_from(&pod.set.values, NODE_MASK);
    }
    for &(_, i) in &nodes {
        super::enrich::node_ratios(&mut sets[i].set);
    }
}

/// Pods summed into their namespaces as the tick's nodes come in; the cluster at the end.
#[derive(Default)]
pub struct Namespaces {
    sets: Vec<MetricSet>,
    index: FastMap<Arc<str>, usize>,
}

impl Namespaces {
    /// Adds the pods among `sets`.
    pub fn add(&mut self, sets: &[RawSet], timestamp: Nanos) {
        self.add_pods(sets.iter().map(|r| &r.set), timestamp);
    }

    /// Adds the pods among finished sets (a node's, as handed to the sinks).
    pub fn add_pods<'a>(
        &mut self,
        sets: impl IntoIterator<Item = &'a MetricSet>,
        timestamp: Nanos,
    ) {
        for set in sets {
            let SetKey::Pod { namespace, .. } = &set.key else {
                continue;
            };
            let ni = self.slot(namespace, timestamp);
            self.sets[ni].values.add_from(&set.values, NS_MASK);
        }
    }

    /// Adds namespace sets summed elsewhere (another node's or replica's contribution).
    pub fn add_namespaces(&mut self, sets: &[MetricSet], timestamp: Nanos) {
        for set in sets {
            let SetKey::Namespace { namespace } = &set.key else {
                continue;
            };
            let ni = self.slot(namespace, timestamp);
            self.sets[ni].values.add_from(&set.values, NS_MASK);
        }
    }

    /// The namespaces' sets alone (a replica's contribution), without the cluster.
    pub fn into_namespaces(self) -> Vec<MetricSet> {
        self.sets
    }

    /// The index of a namespace's set, created empty when new.
    fn slot(&mut self, namespace: &Arc<str>, timestamp: Nanos) -> usize {
        match self.index.get(namespace) {
            Some(&ni) => ni,
            None => {
                self.sets.push(MetricSet::new(
                    SetKey::Namespace {
                        namespace: Arc::clone(namespace),
                    },
                    timestamp,
                ));
                self.index
                    .insert(Arc::clone(namespace), self.sets.len() - 1);
                self.sets.len() - 1
            }
        }
    }

    /// The namespaces' sets, then the cluster's.
    pub fn finish(self, timestamp: Nanos) -> Vec<MetricSet> {
        let mut cluster = MetricSet::new(SetKey::Cluster, timestamp);
        for ns in &self.sets {
            cluster.values.add_from(&ns.values, NS_MASK);
        }
        let mut out = self.sets;
        out.push(cluster);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;
    use crate::model::test_keys::{container, pod};

    fn raw(key: SetKey, memory: Option<i64>) -> RawSet {
        let mut set = MetricSet::new(key, 0);
        if let Some(m) = memory {
            set.set(Metric::MemoryUsage, Value::Int(m));
        }
        RawSet {
            set,
            times: Default::default(),
            own: 0,
            pressure: Default::default(),
        }
    }

    fn memory_of(sets: &[RawSet], key: &SetKey) -> Vec<Option<Value>> {
        sets.iter()
            .filter(|r| r.set.key == *key)
            .map(|r| r.set.get(Metric::MemoryUsage))
            .collect()
    }

    #[test]
    fn containers_reach_their_pod_in_any_order() {
        // Names are separate allocations (no shared `Arc`s): equal strings must still match.
        let mut sets = vec![
            raw(pod("ns", "a"), None),
            raw(container("ns", "a", "x"), Some(1)),
            raw(container("ns", "b", "x"), Some(10)),
            raw(container("ns", "a", "y"), Some(2)),
            raw(container("ns", "c", "x"), Some(100)),
            raw(pod("ns", "b"), None),
            raw(container("ns", "b", "y"), Some(20)),
            raw(container("ns", "c", "y"), Some(200)),
        ];
        containers_to_pods(&mut sets);
        assert_eq!(memory_of(&sets, &pod("ns", "a")), [Some(Value::Int(3))]);
        assert_eq!(memory_of(&sets, &pod("ns", "b")), [Some(Value::Int(30))]);
        // A pod the kubelet did not list is created once, from both of its containers.
        assert_eq!(memory_of(&sets, &pod("ns", "c")), [Some(Value::Int(300))]);
        assert_eq!(sets.len(), 9);
    }
}
