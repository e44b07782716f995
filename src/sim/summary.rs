//! Builds one node's `/stats/summary` body from the formulas in [`super::formulas`] and the
//! node's start and restart times.

use super::formulas as f;
use super::payload::*;
use super::state::{Config, NodeState};
use crate::model::Nanos;
use crate::model::time::{NANOS_PER_SEC, align_down, format_rfc3339};

/// Sums of the counters of a group of containers.
#[derive(Default, Clone, Copy)]
struct Totals {
    nano_cores: u64,
    core_nanos: u64,
    usage: u64,
    working_set: u64,
    rss: u64,
    faults: u64,
    major_faults: u64,
    swap: u64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.nano_cores += o.nano_cores;
        self.core_nanos += o.core_nanos;
        self.usage += o.usage;
        self.working_set += o.working_set;
        self.rss += o.rss;
        self.faults += o.faults;
        self.major_faults += o.major_faults;
        self.swap += o.swap;
    }

    /// `stall`: the cpu stall rate (µs/s, [`f::pod_cpu_stall_us_per_sec`] and the like).
    fn cpu<'a>(&self, time: &'a str, stall: u64, elapsed: u64) -> Cpu<'a> {
        Cpu {
            time,
            usage_nano_cores: self.nano_cores,
            usage_core_nano_seconds: self.core_nanos,
            psi: Psi::growing(stall, elapsed),
        }
    }

    fn memory<'a>(
        &self,
        time: &'a str,
        available: Option<u64>,
        stall: u64,
        elapsed: u64,
    ) -> Memory<'a> {
        Memory {
            time,
            available_bytes: available,
            usage_bytes: self.usage,
            working_set_bytes: self.working_set,
            rss_bytes: self.rss,
            page_faults: self.faults,
            major_page_faults: self.major_faults,
            psi: Psi::growing(stall, elapsed),
        }
    }
}

fn io(time: &str, stall: u64, elapsed: u64) -> Io<'_> {
    Io {
        time,
        psi: Psi::growing(stall, elapsed),
    }
}

fn elapsed_secs(sample: Nanos, start: Nanos) -> u64 {
    u64::try_from((sample - start) / NANOS_PER_SEC).unwrap_or(0)
}

/// Renders the summary of `node` as sampled at `now` (truncated to whole seconds).
pub(crate) fn render(cfg: &Config, node: &NodeState, now: Nanos) -> Vec<u8> {
    let sample = align_down(now, NANOS_PER_SEC);
    let time = format_rfc3339(sample);
    let node_start = format_rfc3339(node.start);
    let node_elapsed = elapsed_secs(sample, node.start);
    let n = node.index;
    let fs_cap = f::NODE_FS_CAPACITY_BYTES;

    let mut pods = Vec::with_capacity(cfg.pods_per_node);
    let mut all_pods = Totals::default();
    let (mut rx_total, mut tx_total) = (0, 0);
    for p in 0..cfg.pods_per_node {
        let mut pod_totals = Totals::default();
        let mut containers = Vec::with_capacity(cfg.containers_per_pod);
        let mut ephemeral = 0;
        for c in 0..cfg.containers_per_pod {
            let start = node.container_start(p, c);
            let elapsed = elapsed_secs(sample, start);
            let t = Totals {
                nano_cores: f::container_cpu_nanocores(n, p, c),
                core_nanos: f::container_cpu_nanocores(n, p, c) * elapsed,
                usage: f::container_memory_usage_bytes(n, p, c),
                working_set: f::container_working_set_bytes(n, p, c),
                rss: f::container_rss_bytes(n, p, c),
                faults: f::container_page_faults_per_sec(n, p, c) * elapsed,
                major_faults: f::container_major_page_faults_per_sec(n, p, c) * elapsed,
                swap: f::container_swap_usage_bytes(n, p, c),
            };
            pod_totals.add(&t);
            let (rootfs, logs) = (
                f::container_rootfs_used_bytes(n, p, c),
                f::container_logs_used_bytes(n, p, c),
            );
            ephemeral += rootfs + logs;
            containers.push(ContainerStats {
                name: f::container_name(c),
                start_time: format_rfc3339(start),
                cpu: t.cpu(&time, f::container_cpu_stall_us_per_sec(n, p, c), elapsed),
                memory: t.memory(&time, None, f::memory_stall_us_per_sec(n, p, c), elapsed),
                io: io(&time, f::io_stall_us_per_sec(n, p, c), elapsed),
                rootfs: Some(Fs::new(&time, fs_cap, rootfs)),
                logs: Some(Fs::new(&time, fs_cap, logs)),
                swap: Swap {
                    time: &time,
                    swap_available_bytes: Some(f::CONTAINER_SWAP_LIMIT_BYTES - t.swap),
                    swap_usage_bytes: t.swap,
                },
            });
        }
        all_pods.add(&pod_totals);
        let rx = f::pod_network_rx_bytes_per_sec(n, p) * node_elapsed;
        let tx = f::pod_network_tx_bytes_per_sec(n, p) * node_elapsed;
        rx_total += rx;
        tx_total += tx;
        let namespace = f::pod_namespace(p);
        let mut volume = vec![Volume::new(
            Fs::new(&time, 64 << 20, 12_288),
            format!("kube-api-access-{:05x}", (n * 1000 + p) % 0xf_ffff),
            None,
        )];
        if f::pod_has_data_volume(p) {
            let claim = format!("data-{}", f::pod_name(n, p));
            let fs = Fs::new(&time, 1 << 30, f::pod_data_volume_used_bytes(p));
            volume.push(Volume::new(
                fs,
                "data".to_owned(),
                Some(PvcRef {
                    name: claim,
                    namespace,
                }),
            ));
        }
        pods.push(PodStats {
            pod_ref: PodRef {
                name: f::pod_name(n, p),
                namespace,
                uid: f::pod_uid(n, p),
            },
            start_time: &node_start,
            containers,
            cpu: pod_totals.cpu(&time, f::pod_cpu_stall_us_per_sec(n, p), node_elapsed),
            memory: pod_totals.memory(
                &time,
                None,
                f::memory_stall_us_per_sec(n, p, 0),
                node_elapsed,
            ),
            io: io(&time, f::io_stall_us_per_sec(n, p, 0), node_elapsed),
            network: Network::eth0(&time, rx, tx),
            volume,
            ephemeral_storage: Fs::new(&time, fs_cap, ephemeral),
            process_stats: ProcessStats {
                process_count: f::pod_process_count(p, cfg.containers_per_pod),
            },
            // As 1.35 kubelets: a pod's swap has its usage only.
            swap: Swap {
                time: &time,
                swap_available_bytes: None,
                swap_usage_bytes: pod_totals.swap,
            },
        });
    }

    let mut node_totals = all_pods;
    let mut system_containers = Vec::with_capacity(4);
    for name in f::SYSTEM_CONTAINERS {
        let rate = f::system_container_cpu_nanocores(n, name);
        let ws = f::system_container_working_set_bytes(n, name);
        let t = Totals {
            nano_cores: rate,
            core_nanos: rate * node_elapsed,
            usage: f::system_container_memory_usage_bytes(n, name),
            working_set: ws,
            rss: ws / 2,
            faults: 0,
            major_faults: 0,
            swap: 0,
        };
        node_totals.add(&t);
        system_containers.push(sys_container(name, &t, &node_start, &time, node_elapsed));
    }
    system_containers.push(sys_container(
        "pods",
        &all_pods,
        &node_start,
        &time,
        node_elapsed,
    ));

    let capacity = f::NODE_MEMORY_CAPACITY_BYTES;
    let [cpu_stall, memory_stall, io_stall] = f::NODE_STALL_US_PER_SEC;
    let swap_used = f::node_swap_usage_bytes(n, cfg.pods_per_node, cfg.containers_per_pod);
    let summary = Summary {
        node: NodeStats {
            node_name: &node.name,
            system_containers,
            start_time: &node_start,
            cpu: node_totals.cpu(&time, cpu_stall, node_elapsed),
            memory: node_totals.memory(
                &time,
                Some(capacity.saturating_sub(node_totals.working_set)),
                memory_stall,
                node_elapsed,
            ),
            io: io(&time, io_stall, node_elapsed),
            network: Network::eth0(&time, rx_total, tx_total),
            fs: Fs::new(&time, fs_cap, f::node_fs_used_bytes(n)),
            runtime: Runtime {
                image_fs: Fs::new(&time, fs_cap, 5 << 30),
                container_fs: Fs::new(&time, fs_cap, 5 << 30),
            },
            rlimit: Rlimit {
                time: &time,
                maxpid: f::NODE_MAX_PIDS,
                curproc: f::node_process_count(cfg.pods_per_node, cfg.containers_per_pod),
            },
            swap: Swap {
                time: &time,
                swap_available_bytes: Some(f::NODE_SWAP_BYTES - swap_used),
                swap_usage_bytes: swap_used,
            },
        },
        pods,
    };
    serde_json::to_vec(&summary).unwrap_or_default()
}

fn sys_container<'a>(
    name: &str,
    t: &Totals,
    start: &str,
    time: &'a str,
    elapsed: u64,
) -> ContainerStats<'a> {
    // System containers stall as their node does.
    let [cpu_stall, memory_stall, io_stall] = f::NODE_STALL_US_PER_SEC;
    ContainerStats {
        name: name.to_owned(),
        start_time: start.to_owned(),
        cpu: t.cpu(time, cpu_stall, elapsed),
        memory: t.memory(time, None, memory_stall, elapsed),
        io: io(time, io_stall, elapsed),
        rootfs: None,
        logs: None,
        swap: Swap {
            time,
            swap_available_bytes: None,
            swap_usage_bytes: 0,
        },
    }
}
