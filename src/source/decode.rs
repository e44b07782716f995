//! Summary → raw metric sets (cumulative counters and gauges; no rates yet): a kubelet's
//! answer becomes a [`NodeSample`] beside the client that fetched it.
//!
//! Follows Heapster's summary source: a node set, its system containers (renamed as Heapster
//! did), a set per pod and per container. Filesystems become values labeled by `resource_id`
//! (and by their claim, for volumes of a PersistentVolumeClaim). Pressure stall totals are kept
//! beside the set for the rates; they are never values of their own.

use std::sync::Arc;

use crate::model::sample::{NodeSample, PressureTotals, RawSet, SampleTimes};
use crate::model::{LabeledValue, Metric, MetricSet, Nanos, SetKey, Value};
use crate::source::summary::{
    ContainerStats, CpuStats, FsStats, IoStats, MemoryStats, NetworkStats, PsiStats, Summary,
    SwapStats,
};

/// Heapster's names for the kubelet's system containers.
pub fn sys_container_name(name: &str) -> &str {
    match name {
        "runtime" => "docker-daemon",
        "misc" => "system",
        other => other,
    }
}

/// Fills a set in place, at the end of the node's list (a set is about 300 bytes: built where
/// it stays instead of moved there through every step).
struct Builder<'s> {
    raw: &'s mut RawSet,
}

impl<'s> Builder<'s> {
    fn new(
        sets: &'s mut Vec<RawSet>,
        key: SetKey,
        node: &Arc<str>,
        fallback_time: Nanos,
        filesystems: usize,
    ) -> Builder<'s> {
        // Values a set ends up with after rates, enrichment and aggregation (the simulator's
        // 1.34-shaped payloads): allocated once instead of growing 4 → 8 → 16 → 32.
        let room = match key {
            SetKey::Node { .. } => 34,
            SetKey::Pod { .. } => 35,
            SetKey::PodContainer { .. } => 26,
            _ => 18,
        };
        let mut set = MetricSet::new(key, fallback_time);
        set.values.reserve_exact(room);
        // Room for the filesystems' labeled values (five each), allocated once.
        set.labeled.reserve_exact(5 * filesystems);
        set.node = Some(Arc::clone(node));
        sets.push(RawSet {
            set,
            times: SampleTimes::default(),
            own: 0,
            pressure: PressureTotals::default(),
        });
        let last = sets.len() - 1;
        Builder {
            raw: &mut sets[last],
        }
    }

    fn set(&mut self) -> &mut MetricSet {
        &mut self.raw.set
    }

    fn cpu(&mut self, cpu: Option<CpuStats>) {
        let Some(cpu) = cpu else { return };
        self.set()
            .set_int(Metric::CpuUsage, cpu.usage_core_nano_seconds);
        if cpu.usage_core_nano_seconds.is_some() || cpu.psi.is_some() {
            self.raw.times.cpu = cpu.time.map(|t| t.0);
        }
        self.pressure(0, cpu.psi);
    }

    /// Keeps the stall totals of one resource (`at`: its place in [`PressureTotals`]).
    fn pressure(&mut self, at: usize, psi: Option<PsiStats>) {
        let Some(psi) = psi else { return };
        self.raw.pressure[at] = psi.some.and_then(|d| d.total);
        self.raw.pressure[at + 1] = psi.full.and_then(|d| d.total);
    }

    fn io(&mut self, io: Option<IoStats>) {
        let Some(io) = io else { return };
        self.raw.times.io = io.time.map(|t| t.0);
        self.pressure(4, io.psi);
    }

    fn swap(&mut self, swap: Option<SwapStats>) {
        let Some(swap) = swap else { return };
        let set = self.set();
        set.set_int(Metric::MemorySwapUsage, swap.swap_usage_bytes);
        set.set_int(Metric::MemorySwapAvailable, swap.swap_available_bytes);
    }

    fn memory(&mut self, mem: Option<MemoryStats>) {
        let Some(mem) = mem else { return };
        let set = self.set();
        set.set_int(Metric::MemoryUsage, mem.usage_bytes);
        set.set_int(Metric::MemoryWorkingSet, mem.working_set_bytes);
        set.set_int(Metric::MemoryRss, mem.rss_bytes);
        set.set_int(Metric::MemoryPageFaults, mem.page_faults);
        set.set_int(Metric::MemoryMajorPageFaults, mem.major_page_faults);
        self.raw.times.memory = mem.time.map(|t| t.0);
        self.pressure(2, mem.psi);
    }

    fn network(&mut self, net: Option<NetworkStats>) {
        let Some(net) = net else { return };
        let set = self.set();
        set.set_int(Metric::NetworkRx, net.rx_bytes);
        set.set_int(Metric::NetworkRxErrors, net.rx_errors);
        set.set_int(Metric::NetworkTx, net.tx_bytes);
        set.set_int(Metric::NetworkTxErrors, net.tx_errors);
        self.raw.times.network = net.time.map(|t| t.0);
    }

    /// A filesystem's values, labeled by `resource_id` and, for a volume of a claim, `pvc`.
    fn fs(&mut self, resource_id: &Arc<str>, pvc: Option<Arc<str>>, fs: Option<&FsStats>) {
        let Some(fs) = fs else { return };
        let pairs = [
            (Metric::FilesystemUsage, fs.used_bytes),
            (Metric::FilesystemLimit, fs.capacity_bytes),
            (Metric::FilesystemAvailable, fs.available_bytes),
            (Metric::FilesystemInodes, fs.inodes),
            (Metric::FilesystemInodesFree, fs.inodes_free),
        ];
        let labeled = &mut self.set().labeled;
        for (metric, v) in pairs {
            if let Some(v) = v {
                labeled.push(LabeledValue {
                    metric,
                    resource_id: Arc::clone(resource_id),
                    pvc: pvc.clone(),
                    value: Value::Int(i64::try_from(v).unwrap_or(i64::MAX)),
                });
            }
        }
    }

    fn start(&mut self, start: Option<Nanos>) {
        self.set().create_time = start;
    }

    fn finish(self) {
        let t = self.raw.times;
        let set = &mut self.raw.set;
        if let Some(sample) = t.cpu.or(t.memory).or(t.network) {
            set.scrape_time = sample;
        }
        if let Some(start) = set.create_time
            && set.scrape_time >= start
        {
            let ms = (set.scrape_time - start) / 1_000_000;
            set.set(Metric::Uptime, Value::Int(ms));
        }
        self.raw.own = set.values.mask();
    }

    fn container(mut self, c: &ContainerStats<'_>) {
        self.start(c.start_time.map(|t| t.0));
        self.cpu(c.cpu);
        self.memory(c.memory);
        self.io(c.io);
        self.swap(c.swap);
        self.finish();
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

/// The names a node's answers repeat, kept from one answer to the next so that decoding shares
/// them instead of allocating them again: namespaces and container names (a few, each used by
/// many pods: 30 pods in 5 namespaces with the same 2 container names take 7 names, not 90),
/// and pod names, pod uids and volume ids (one each, asked for in the same order tick after
/// tick). A name that comes back is the same `Arc` as the last time, so the store and the rate
/// state, which hold the first one in their keys, compare keys by pointer. About 2 KiB per node.
#[derive(Default)]
pub struct NodeNames {
    /// Namespaces and container names, at most [`NodeNames::COMMON`], those unused by an
    /// answer dropped after it.
    common: Vec<Arc<str>>,
    /// Pod names, uids and volume ids in the order the last answer asked for them.
    unique: Vec<Arc<str>>,
}

impl NodeNames {
    /// At most this many common names are remembered (a linear search).
    const COMMON: usize = 16;
}

/// One answer's use of a node's [`NodeNames`].
struct Names<'a> {
    common: &'a mut Vec<Arc<str>>,
    /// Bit `i`: `common[i]` was used by this answer.
    used: u16,
    prev: Vec<Arc<str>>,
    next: &'a mut Vec<Arc<str>>,
}

impl<'a> Names<'a> {
    fn new(kept: &'a mut NodeNames) -> Names<'a> {
        let prev = std::mem::take(&mut kept.unique);
        kept.unique.reserve_exact(prev.len());
        Names {
            common: &mut kept.common,
            used: 0,
            prev,
            next: &mut kept.unique,
        }
    }

    /// A namespace or a container name.
    fn common(&mut self, name: &str) -> Arc<str> {
        if let Some(i) = self.common.iter().position(|n| **n == *name) {
            self.used |= 1 << i;
            return Arc::clone(&self.common[i]);
        }
        let new: Arc<str> = Arc::from(name);
        if self.common.len() < NodeNames::COMMON {
            self.used |= 1 << self.common.len();
            self.common.push(Arc::clone(&new));
        }
        new
    }

    /// A pod name, a uid or a volume id: the one at the same place in the last answer, if equal.
    fn unique(&mut self, name: &str) -> Arc<str> {
        let at = self.next.len();
        let arc = match self.prev.get(at) {
            Some(p) if **p == *name => Arc::clone(p),
            _ => Arc::from(name),
        };
        self.next.push(Arc::clone(&arc));
        arc
    }
}

impl Drop for Names<'_> {
    fn drop(&mut self) {
        let mut i = 0;
        self.common.retain(|_| {
            i += 1;
            self.used & (1 << (i - 1)) != 0
        });
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
    decode_summary_with(summary, node, fallback_time, ids, &mut NodeNames::default())
}

/// [`decode_summary`] sharing the names of the node's previous answer (`names`, updated).
pub fn decode_summary_with(
    summary: &Summary<'_>,
    node: &Arc<str>,
    fallback_time: Nanos,
    ids: &ResourceIds,
    names: &mut NodeNames,
) -> NodeSample {
    let mut sets =
        Vec::with_capacity(2 + summary.node.system_containers.len() + summary.pods.len() * 3);
    let n = &summary.node;
    let mut names = Names::new(names);
    // A volume's resource id, `Volume:` and its name, built here without a format per volume.
    let mut volume_id = String::from("Volume:");

    let mut b = Builder::new(
        &mut sets,
        SetKey::Node {
            node: Arc::clone(node),
        },
        node,
        fallback_time,
        usize::from(n.fs.is_some()),
    );
    b.start(n.start_time.map(|t| t.0));
    b.cpu(n.cpu);
    b.memory(n.memory);
    b.io(n.io);
    b.swap(n.swap);
    b.network(n.network);
    b.fs(&ids.root, None, n.fs.as_ref());
    if let Some(rlimit) = n.rlimit {
        b.set().set_int(Metric::ProcessCount, rlimit.curproc);
        b.set().set_int(Metric::ProcessLimit, rlimit.maxpid);
    }
    b.finish();

    for c in &n.system_containers {
        let key = SetKey::SysContainer {
            node: Arc::clone(node),
            container: names.common(sys_container_name(&c.name)),
        };
        Builder::new(&mut sets, key, node, fallback_time, 0).container(c);
    }

    for pod in &summary.pods {
        let namespace = names.common(&pod.pod_ref.namespace);
        let name = names.unique(&pod.pod_ref.name);
        let key = SetKey::Pod {
            namespace: Arc::clone(&namespace),
            pod: Arc::clone(&name),
        };
        let pod_uid = (!pod.pod_ref.uid.is_empty()).then(|| names.unique(&pod.pod_ref.uid));
        let mut b = Builder::new(&mut sets, key, node, fallback_time, pod.volume.len());
        b.set().pod_uid.clone_from(&pod_uid);
        b.start(pod.start_time.map(|t| t.0));
        b.cpu(pod.cpu);
        b.memory(pod.memory);
        b.io(pod.io);
        b.swap(pod.swap);
        b.network(pod.network);
        for v in &pod.volume {
            volume_id.truncate("Volume:".len());
            volume_id.push_str(&v.name);
            let pvc = v
                .pvc_ref
                .as_ref()
                .filter(|r| !r.name.is_empty())
                .map(|r| names.unique(&r.name));
            b.fs(&names.unique(&volume_id), pvc, Some(&v.fs()));
        }
        if let Some(p) = pod.process_stats {
            b.set().set_int(Metric::ProcessCount, p.process_count);
        }
        if let Some(eph) = &pod.ephemeral_storage {
            b.set()
                .set_int(Metric::EphemeralStorageUsage, eph.used_bytes);
        }
        b.finish();

        for (ci, c) in pod.containers.iter().enumerate() {
            if is_superseded(&pod.containers, ci) {
                continue;
            }
            let key = SetKey::PodContainer {
                namespace: Arc::clone(&namespace),
                pod: Arc::clone(&name),
                container: names.common(&c.name),
            };
            let fs = usize::from(c.rootfs.is_some()) + usize::from(c.logs.is_some());
            let mut b = Builder::new(&mut sets, key, node, fallback_time, fs);
            b.set().pod_uid.clone_from(&pod_uid);
            b.fs(&ids.root, None, c.rootfs.as_ref());
            b.fs(&ids.logs, None, c.logs.as_ref());
            let eph = match (
                c.rootfs.and_then(|f| f.used_bytes),
                c.logs.and_then(|f| f.used_bytes),
            ) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
            };
            b.set().set_int(Metric::EphemeralStorageUsage, eph);
            b.container(c);
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

    /// Every name a sample holds, in order: keys, uids, resource ids.
    fn names_of(sample: &NodeSample) -> Vec<Arc<str>> {
        let mut out = Vec::new();
        for raw in &sample.sets {
            let set = &raw.set;
            out.extend(set.key.namespace().cloned());
            out.extend(set.key.pod().cloned());
            out.extend(set.key.container().cloned());
            out.extend(set.pod_uid.clone());
            out.extend(set.labeled.iter().map(|l| Arc::clone(&l.resource_id)));
        }
        out
    }

    #[test]
    fn the_next_answer_shares_the_names_of_the_last_one() {
        let node: Arc<str> = Arc::from("sim-node-0007");
        let ids = ResourceIds::default();
        let mut kept = NodeNames::default();
        let decode = |pods: usize, now: Nanos, kept: &mut NodeNames| {
            let body = crate::sim::summary_body(7, pods, 2, 1_000_000_000, now);
            let summary = crate::source::summary::decode(&body).expect("simulator payload");
            decode_summary_with(&summary, &node, now, &ids, kept)
        };
        let first = decode(12, 61_000_000_000, &mut kept);
        let second = decode(12, 76_000_000_000, &mut kept);
        let (a, b) = (names_of(&first), names_of(&second));
        assert_eq!(a.len(), b.len());
        assert!(
            a.iter().any(|n| n.starts_with("Volume:")),
            "volume ids are in"
        );
        for (x, y) in a.iter().zip(&b) {
            assert!(Arc::ptr_eq(x, y), "{x} not shared");
        }
        // Fewer pods: the names are still right, and those kept still shared.
        let fewer = decode(5, 91_000_000_000, &mut kept);
        let plain = decode_summary(
            &crate::source::summary::decode(&crate::sim::summary_body(
                7,
                5,
                2,
                1_000_000_000,
                91_000_000_000,
            ))
            .expect("simulator payload"),
            &node,
            91_000_000_000,
            &ids,
        );
        let c = names_of(&fewer);
        assert_eq!(c, names_of(&plain));
        let mut equal = 0;
        for (x, y) in c.iter().zip(&b) {
            if **x == **y {
                equal += 1;
                assert!(Arc::ptr_eq(x, y), "{x} not shared");
            }
        }
        // The five pods left are the first five: all their names are at the same places.
        assert_eq!(equal, c.len());
        // More pods than before: the new ones are allocated, the answer is whole.
        let more = decode(20, 106_000_000_000, &mut kept);
        assert_eq!(more.sets.len(), first.sets.len() + 8 * 3);
    }

    #[test]
    fn common_names_beyond_the_cache_are_still_right_and_unused_ones_go() {
        let mut kept = NodeNames::default();
        let many: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
        for _ in 0..2 {
            let mut names = Names::new(&mut kept);
            for n in &many {
                assert_eq!(&*names.common(n), n.as_str());
            }
        }
        assert_eq!(kept.common.len(), NodeNames::COMMON);
        // The cache is full until this answer ends: "new" is only remembered by the next one.
        for left in [&["c3"][..], &["c3", "new"]] {
            let mut names = Names::new(&mut kept);
            assert_eq!(&*names.common("c3"), "c3");
            assert_eq!(&*names.common("new"), "new");
            drop(names);
            let kept: Vec<&str> = kept.common.iter().map(|n| &**n).collect();
            assert_eq!(kept, left);
        }
    }
}
