//! Summary → raw metric sets (cumulative counters and gauges; no rates yet).
//!
//! Follows Heapster's summary source: a node set, its system containers (renamed as Heapster
//! did), a set per pod and per container. Filesystems become values labeled by `resource_id`.

use std::sync::Arc;

use crate::model::{LabeledValue, Metric, MetricSet, Nanos, SetKey, Value};
use crate::source::summary::{
    ContainerStats, CpuStats, FsStats, MemoryStats, NetworkStats, Summary,
};

/// When each group of cumulative counters was sampled (they differ within one response).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleTimes {
    pub cpu: Option<Nanos>,
    pub memory: Option<Nanos>,
    pub network: Option<Nanos>,
}

/// A metric set straight from the kubelet, with its sample times.
#[derive(Clone, Debug)]
pub struct RawSet {
    pub set: MetricSet,
    pub times: SampleTimes,
    /// Bit `m` set when the kubelet reported metric `m` for this set itself (pods: so container
    /// sums fill only what the pod lacks).
    pub own: u64,
}

/// Everything one kubelet answered, decoded.
#[derive(Clone, Debug)]
pub struct NodeSample {
    pub node: Arc<str>,
    pub sets: Vec<RawSet>,
}

/// Heapster's names for the kubelet's system containers.
pub fn sys_container_name(name: &str) -> &str {
    match name {
        "runtime" => "docker-daemon",
        "misc" => "system",
        other => other,
    }
}

pub(crate) fn bit(m: Metric) -> u64 {
    1u64 << (m as u8)
}

struct Builder {
    set: MetricSet,
    times: SampleTimes,
}

impl Builder {
    fn new(key: SetKey, node: &Arc<str>, fallback_time: Nanos) -> Builder {
        // Values a set ends up with after rates, enrichment and aggregation (the simulator's
        // 1.34-shaped payloads): allocated once instead of growing 4 → 8 → 16 → 32.
        let room = match key {
            SetKey::Node { .. } => 24,
            SetKey::Pod { .. } => 26,
            SetKey::PodContainer { .. } => 18,
            _ => 10,
        };
        let mut set = MetricSet::new(key, fallback_time);
        set.values.reserve_exact(room);
        set.node = Some(Arc::clone(node));
        Builder {
            set,
            times: SampleTimes::default(),
        }
    }

    fn cpu(&mut self, cpu: Option<CpuStats>) {
        let Some(cpu) = cpu else { return };
        self.set
            .set_int(Metric::CpuUsage, cpu.usage_core_nano_seconds);
        if cpu.usage_core_nano_seconds.is_some() {
            self.times.cpu = cpu.time.map(|t| t.0);
        }
    }

    fn memory(&mut self, mem: Option<MemoryStats>) {
        let Some(mem) = mem else { return };
        self.set.set_int(Metric::MemoryUsage, mem.usage_bytes);
        self.set
            .set_int(Metric::MemoryWorkingSet, mem.working_set_bytes);
        self.set.set_int(Metric::MemoryRss, mem.rss_bytes);
        self.set.set_int(Metric::MemoryPageFaults, mem.page_faults);
        self.set
            .set_int(Metric::MemoryMajorPageFaults, mem.major_page_faults);
        self.times.memory = mem.time.map(|t| t.0);
    }

    fn network(&mut self, net: Option<NetworkStats>) {
        let Some(net) = net else { return };
        self.set.set_int(Metric::NetworkRx, net.rx_bytes);
        self.set.set_int(Metric::NetworkRxErrors, net.rx_errors);
        self.set.set_int(Metric::NetworkTx, net.tx_bytes);
        self.set.set_int(Metric::NetworkTxErrors, net.tx_errors);
        self.times.network = net.time.map(|t| t.0);
    }

    fn fs(&mut self, resource_id: &Arc<str>, fs: Option<FsStats>) {
        let Some(fs) = fs else { return };
        let pairs = [
            (Metric::FilesystemUsage, fs.used_bytes),
            (Metric::FilesystemLimit, fs.capacity_bytes),
            (Metric::FilesystemAvailable, fs.available_bytes),
            (Metric::FilesystemInodes, fs.inodes),
            (Metric::FilesystemInodesFree, fs.inodes_free),
        ];
        for (metric, v) in pairs {
            if let Some(v) = v {
                self.set.labeled.push(LabeledValue {
                    metric,
                    resource_id: Arc::clone(resource_id),
                    value: Value::Int(i64::try_from(v).unwrap_or(i64::MAX)),
                });
            }
        }
    }

    /// Room for `filesystems` filesystems' labeled values (five each), allocated once.
    fn filesystems(mut self, filesystems: usize) -> Builder {
        self.set.labeled.reserve_exact(5 * filesystems);
        self
    }

    fn start(&mut self, start: Option<Nanos>) {
        self.set.create_time = start;
    }

    fn finish(mut self) -> RawSet {
        let t = self.times;
        if let Some(sample) = t.cpu.or(t.memory).or(t.network) {
            self.set.scrape_time = sample;
        }
        if let Some(start) = self.set.create_time
            && self.set.scrape_time >= start
        {
            let ms = (self.set.scrape_time - start) / 1_000_000;
            self.set.set(Metric::Uptime, Value::Int(ms));
        }
        let own = self.set.values.mask();
        RawSet {
            set: self.set,
            times: self.times,
            own,
        }
    }

    fn container(mut self, c: &ContainerStats<'_>) -> RawSet {
        self.start(c.start_time.map(|t| t.0));
        self.cpu(c.cpu);
        self.memory(c.memory);
        self.finish()
    }
}

/// Some kubelets (seen in 1.15) list a container twice in one pod; the entry with the newest
/// CPU sample wins (ties: the later entry), so each container gives one set.
fn is_superseded(containers: &[ContainerStats<'_>], i: usize) -> bool {
    let c = &containers[i];
    let t = |c: &ContainerStats<'_>| c.cpu.and_then(|x| x.time).map(|t| t.0);
    containers
        .iter()
        .enumerate()
        .any(|(j, o)| j != i && o.name == c.name && (t(o) > t(c) || (t(o) == t(c) && j > i)))
}

/// Resource ids shared by every set (interned once per process).
pub struct ResourceIds {
    pub root: Arc<str>,
    pub logs: Arc<str>,
}

impl Default for ResourceIds {
    fn default() -> ResourceIds {
        ResourceIds {
            root: Arc::from("/"),
            logs: Arc::from("logs"),
        }
    }
}

/// Names repeated within one kubelet's answer (namespaces, container names), shared rather
/// than allocated for each pod: 30 pods in 5 namespaces with the same 2 container names take 7
/// names, not 90. Their keys live on in the store and the rate state.
#[derive(Default)]
struct Names(Vec<Arc<str>>);

impl Names {
    /// At most this many names are remembered (a linear search).
    const MAX: usize = 16;

    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.iter().find(|n| ***n == *name) {
            return Arc::clone(known);
        }
        let new: Arc<str> = Arc::from(name);
        if self.0.len() < Names::MAX {
            self.0.push(Arc::clone(&new));
        }
        new
    }
}

/// Decodes one kubelet's answer. `node` is the name the apiserver knows the node by;
/// `fallback_time` is used for sets without any sample time (the scrape time).
pub fn decode_summary(
    summary: &Summary<'_>,
    node: &Arc<str>,
    fallback_time: Nanos,
    ids: &ResourceIds,
) -> NodeSample {
    let mut sets =
        Vec::with_capacity(2 + summary.node.system_containers.len() + summary.pods.len() * 3);
    let n = &summary.node;
    let mut names = Names::default();
    // A volume's resource id, `Volume:` and its name, built here without a format per volume.
    let mut volume_id = String::from("Volume:");

    let mut b = Builder::new(
        SetKey::Node {
            node: Arc::clone(node),
        },
        node,
        fallback_time,
    )
    .filesystems(usize::from(n.fs.is_some()));
    b.start(n.start_time.map(|t| t.0));
    b.cpu(n.cpu);
    b.memory(n.memory);
    b.network(n.network);
    b.fs(&ids.root, n.fs);
    sets.push(b.finish());

    for c in &n.system_containers {
        let key = SetKey::SysContainer {
            node: Arc::clone(node),
            container: names.get(sys_container_name(&c.name)),
        };
        sets.push(Builder::new(key, node, fallback_time).container(c));
    }

    for pod in &summary.pods {
        let namespace = names.get(&pod.pod_ref.namespace);
        let name: Arc<str> = Arc::from(&*pod.pod_ref.name);
        let key = SetKey::Pod {
            namespace: Arc::clone(&namespace),
            pod: Arc::clone(&name),
        };
        let mut b = Builder::new(key, node, fallback_time).filesystems(pod.volume.len());
        b.set.pod_uid = (!pod.pod_ref.uid.is_empty()).then(|| Arc::from(&*pod.pod_ref.uid));
        b.start(pod.start_time.map(|t| t.0));
        b.cpu(pod.cpu);
        b.memory(pod.memory);
        b.network(pod.network);
        for v in &pod.volume {
            volume_id.truncate("Volume:".len());
            volume_id.push_str(&v.name);
            b.fs(&Arc::from(volume_id.as_str()), Some(v.fs()));
        }
        if let Some(eph) = pod.ephemeral_storage {
            b.set.set_int(Metric::EphemeralStorageUsage, eph.used_bytes);
        }
        let pod_uid = b.set.pod_uid.clone();
        sets.push(b.finish());

        for (ci, c) in pod.containers.iter().enumerate() {
            if is_superseded(&pod.containers, ci) {
                continue;
            }
            let key = SetKey::PodContainer {
                namespace: Arc::clone(&namespace),
                pod: Arc::clone(&name),
                container: names.get(&c.name),
            };
            let fs = usize::from(c.rootfs.is_some()) + usize::from(c.logs.is_some());
            let mut b = Builder::new(key, node, fallback_time).filesystems(fs);
            b.set.pod_uid = pod_uid.clone();
            b.fs(&ids.root, c.rootfs);
            b.fs(&ids.logs, c.logs);
            let eph = match (
                c.rootfs.and_then(|f| f.used_bytes),
                c.logs.and_then(|f| f.used_bytes),
            ) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
            };
            b.set.set_int(Metric::EphemeralStorageUsage, eph);
            sets.push(b.container(c));
        }
    }
    NodeSample {
        node: Arc::clone(node),
        sets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_share_their_namespace_and_container_names() {
        let body = crate::sim::summary_body(7, 12, 2, 1_000_000_000, 61_000_000_000);
        let summary = crate::source::summary::decode(&body).expect("simulator payload");
        let node: Arc<str> = Arc::from("sim-node-0007");
        let sample = decode_summary(&summary, &node, 61_000_000_000, &ResourceIds::default());
        let mut namespaces: Vec<&Arc<str>> = Vec::new();
        let mut containers: Vec<&Arc<str>> = Vec::new();
        for set in &sample.sets {
            if let Some(ns) = set.set.key.namespace() {
                namespaces.push(ns);
            }
            if let SetKey::PodContainer { container, .. } = &set.set.key {
                containers.push(container);
            }
        }
        assert_eq!(containers.len(), 24);
        // One allocation per distinct name: equal names are the same `Arc`.
        for names in [namespaces, containers] {
            for a in &names {
                for b in &names {
                    assert_eq!(***a == ***b, Arc::ptr_eq(a, b), "{a} {b}");
                }
            }
        }
    }

    #[test]
    fn names_beyond_the_cache_are_still_right() {
        let mut names = Names::default();
        let many: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
        for _ in 0..2 {
            for n in &many {
                assert_eq!(&*names.get(n), n.as_str());
            }
        }
        assert_eq!(names.0.len(), Names::MAX);
    }
}
