//! Pure functions that name the simulated objects and give their metric rates, so tests can
//! compute expected values by hand. Every rate is constant; cumulative counters are
//! `rate * elapsed_seconds` since the start time of the object.

use std::net::Ipv4Addr;

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// The namespaces pods cycle through ([`pod_namespace`]).
pub const NAMESPACES: [&str; 5] = ["default", "kube-system", "monitoring", "team-a", "team-b"];

/// The system containers every node reports, besides `pods` (the sum of its pods).
pub const SYSTEM_CONTAINERS: [&str; 3] = ["kubelet", "runtime", "misc"];

/// Node memory capacity (`16Gi`).
pub const NODE_MEMORY_CAPACITY_BYTES: u64 = 16 << 30;

/// Node filesystem capacity (`100Gi`).
pub const NODE_FS_CAPACITY_BYTES: u64 = 100 << 30;

/// How many nodes one `127.B.0.0/16` block holds (`127.B.0.1` to `127.B.255.250`).
pub const NODES_PER_BLOCK: usize = 256 * 250;

/// How many consecutive blocks a cluster may spread over.
pub const MAX_BLOCKS: usize = 4;

/// How many nodes the address scheme holds.
pub const MAX_NODES: usize = NODES_PER_BLOCK * MAX_BLOCKS;

/// How many consecutive `127.B.0.0/16` blocks `nodes` nodes take (at least one).
pub fn blocks_for(nodes: usize) -> usize {
    nodes.div_ceil(NODES_PER_BLOCK).max(1)
}

/// `sim-node-0007`.
pub fn node_name(node: usize) -> String {
    format!("sim-node-{node:04}")
}

/// Node `i` of a cluster whose first block is `127.B.0.0/16`: `127.B.(i/250).(i%250+1)` for
/// the first [`NODES_PER_BLOCK`] nodes, then on in the next blocks (`127.(B+1).0.1`, ...).
pub fn node_ip(block: u8, node: usize) -> Ipv4Addr {
    let within = node % NODES_PER_BLOCK;
    let block = u8::try_from(usize::from(block) + node / NODES_PER_BLOCK).unwrap_or(u8::MAX);
    let hi = u8::try_from(within / 250).unwrap_or(0);
    let lo = u8::try_from(within % 250 + 1).unwrap_or(1);
    Ipv4Addr::new(127, block, hi, lo)
}

/// The namespace of pod `pod` on any node: cycles through [`NAMESPACES`].
pub fn pod_namespace(pod: usize) -> &'static str {
    NAMESPACES[pod % NAMESPACES.len()]
}

/// The `app` label of pod `pod` on any node.
pub fn pod_app(pod: usize) -> &'static str {
    const APPS: [&str; 7] = ["web", "api", "worker", "cache", "db", "queue", "batch"];
    APPS[pod % APPS.len()]
}

/// `web-sim-node-0007-003`: unique in the cluster.
pub fn pod_name(node: usize, pod: usize) -> String {
    format!("{}-{}-{pod:03}", pod_app(pod), node_name(node))
}

/// A deterministic UUID-shaped pod uid.
pub fn pod_uid(node: usize, pod: usize) -> String {
    format!(
        "5170ad00-0000-4000-8000-{:06x}{:06x}",
        node & 0xff_ffff,
        pod & 0xff_ffff
    )
}

/// `app`, `sidecar`, then `c2`, `c3`...
pub fn container_name(container: usize) -> String {
    match container {
        0 => "app".to_owned(),
        1 => "sidecar".to_owned(),
        n => format!("c{n}"),
    }
}

fn h(node: usize, pod: usize, container: usize) -> u64 {
    (node as u64) * 31 + (pod as u64) * 7 + (container as u64) * 3
}

/// Container CPU rate: `(1 + h % 50) * 10_000_000` nanocores (10m to 500m).
pub fn container_cpu_nanocores(node: usize, pod: usize, container: usize) -> u64 {
    (1 + h(node, pod, container) % 50) * 10_000_000
}

/// Container working set: `(16 + h % 64)` MiB.
pub fn container_working_set_bytes(node: usize, pod: usize, container: usize) -> u64 {
    (16 + h(node, pod, container) % 64) * MIB
}

/// Container memory usage: working set + 8 MiB.
pub fn container_memory_usage_bytes(node: usize, pod: usize, container: usize) -> u64 {
    container_working_set_bytes(node, pod, container) + 8 * MIB
}

/// Container RSS: working set - 4 MiB.
pub fn container_rss_bytes(node: usize, pod: usize, container: usize) -> u64 {
    container_working_set_bytes(node, pod, container) - 4 * MIB
}

/// Container page faults per second: `10 + h % 90`.
pub fn container_page_faults_per_sec(node: usize, pod: usize, container: usize) -> u64 {
    10 + h(node, pod, container) % 90
}

/// Container major page faults per second: `h % 3`.
pub fn container_major_page_faults_per_sec(node: usize, pod: usize, container: usize) -> u64 {
    h(node, pod, container) % 3
}

/// Container root filesystem usage: `(1 + h % 20)` MiB.
pub fn container_rootfs_used_bytes(node: usize, pod: usize, container: usize) -> u64 {
    (1 + h(node, pod, container) % 20) * MIB
}

/// Container log usage: `(1 + h % 10) * 64` KiB.
pub fn container_logs_used_bytes(node: usize, pod: usize, container: usize) -> u64 {
    (1 + h(node, pod, container) % 10) * 64 * KIB
}

/// Whether the container spec has requests and limits (cpu 100m/500m, memory 128Mi/256Mi):
/// all but those with `(node + pod + container) % 5 == 4`.
pub fn container_has_resources(node: usize, pod: usize, container: usize) -> bool {
    (node + pod + container) % 5 != 4
}

/// Pod network receive rate: `(1 + (node*13 + pod*5) % 40) * 1000` bytes/s.
pub fn pod_network_rx_bytes_per_sec(node: usize, pod: usize) -> u64 {
    (1 + ((node as u64) * 13 + (pod as u64) * 5) % 40) * 1000
}

/// Pod network transmit rate: half the receive rate.
pub fn pod_network_tx_bytes_per_sec(node: usize, pod: usize) -> u64 {
    pod_network_rx_bytes_per_sec(node, pod) / 2
}

/// Whether the pod has a `data` volume (a PVC) besides its service-account volume: `pod % 3 == 0`.
pub fn pod_has_data_volume(pod: usize) -> bool {
    pod.is_multiple_of(3)
}

/// Used bytes of the `data` volume: `(pod + 1) * 10` MiB (capacity 1 GiB).
pub fn pod_data_volume_used_bytes(pod: usize) -> u64 {
    (pod as u64 + 1) * 10 * MIB
}

/// Pressure stall rates, in microseconds of stall per second (10,000 µs/s is 1 % of the time),
/// for `some` tasks; `full` is half of it. The kubelet's `psi.*.total` grow at these rates
/// since the start of the entity (the node, the pod, the container).
///
/// A container's cpu stall: `(1 + h % 20) * 10_000` µs/s (1 % to 20 %).
pub fn container_cpu_stall_us_per_sec(node: usize, pod: usize, container: usize) -> u64 {
    (1 + h(node, pod, container) % 20) * 10_000
}

/// A pod's cpu stall: `(1 + (node*31 + pod*7) % 30) * 10_000` µs/s (1 % to 30 %).
pub fn pod_cpu_stall_us_per_sec(node: usize, pod: usize) -> u64 {
    (1 + h(node, pod, 0) % 30) * 10_000
}

/// A pod's or container's memory stall: `(h % 5) * 1_000` µs/s (0 to 0.4 %).
pub fn memory_stall_us_per_sec(node: usize, pod: usize, container: usize) -> u64 {
    (h(node, pod, container) % 5) * 1_000
}

/// A pod's or container's io stall: `(h % 10) * 5_000` µs/s (0 to 4.5 %).
pub fn io_stall_us_per_sec(node: usize, pod: usize, container: usize) -> u64 {
    (h(node, pod, container) % 10) * 5_000
}

/// A node's (and its system containers') cpu, memory and io stalls: 5 %, 0.1 %, 2 %.
pub const NODE_STALL_US_PER_SEC: [u64; 3] = [50_000, 1_000, 20_000];

/// A container's swap usage: `(h % 4)` MiB, of a swap limit of 256 MiB.
pub fn container_swap_usage_bytes(node: usize, pod: usize, container: usize) -> u64 {
    (h(node, pod, container) % 4) * MIB
}

/// A container's swap limit (`swapAvailableBytes` is it minus the usage).
pub const CONTAINER_SWAP_LIMIT_BYTES: u64 = 256 * MIB;

/// A node's swap: 2 GiB ([`node_swap_usage_bytes`] of it used).
pub const NODE_SWAP_BYTES: u64 = 2 << 30;

/// A node's swap usage: its containers' plus 64 MiB.
pub fn node_swap_usage_bytes(node: usize, pods: usize, containers: usize) -> u64 {
    let pods_sum: u64 = (0..pods)
        .flat_map(|p| (0..containers).map(move |c| container_swap_usage_bytes(node, p, c)))
        .sum();
    pods_sum + 64 * MIB
}

/// A pod's process count: `containers * (1 + pod % 4)`.
pub fn pod_process_count(pod: usize, containers: usize) -> u64 {
    containers as u64 * (1 + pod as u64 % 4)
}

/// A node's process limit (`rlimit.maxpid`).
pub const NODE_MAX_PIDS: u64 = 4_194_304;

/// A node's process count (`rlimit.curproc`): 300 besides its pods' processes.
pub fn node_process_count(pods: usize, containers: usize) -> u64 {
    300 + (0..pods)
        .map(|p| pod_process_count(p, containers))
        .sum::<u64>()
}

/// Pod CPU rate: the sum over its containers.
pub fn pod_cpu_nanocores(node: usize, pod: usize, containers: usize) -> u64 {
    (0..containers)
        .map(|c| container_cpu_nanocores(node, pod, c))
        .sum()
}

/// Pod working set: the sum over its containers.
pub fn pod_working_set_bytes(node: usize, pod: usize, containers: usize) -> u64 {
    (0..containers)
        .map(|c| container_working_set_bytes(node, pod, c))
        .sum()
}

/// Pod memory usage: the sum over its containers.
pub fn pod_memory_usage_bytes(node: usize, pod: usize, containers: usize) -> u64 {
    (0..containers)
        .map(|c| container_memory_usage_bytes(node, pod, c))
        .sum()
}

fn sys_index(name: &str) -> u64 {
    SYSTEM_CONTAINERS
        .iter()
        .position(|s| *s == name)
        .unwrap_or(0) as u64
}

/// System container CPU rate: kubelet `20m + (node % 5)m`, runtime `10m`, misc `5m`.
pub fn system_container_cpu_nanocores(node: usize, name: &str) -> u64 {
    match sys_index(name) {
        0 => 20_000_000 + (node as u64 % 5) * 1_000_000,
        1 => 10_000_000,
        _ => 5_000_000,
    }
}

/// System container working set: kubelet `64 + node % 8` MiB, runtime 96 MiB, misc 32 MiB.
pub fn system_container_working_set_bytes(node: usize, name: &str) -> u64 {
    match sys_index(name) {
        0 => (64 + node as u64 % 8) * MIB,
        1 => 96 * MIB,
        _ => 32 * MIB,
    }
}

/// System container memory usage: working set + 16 MiB.
pub fn system_container_memory_usage_bytes(node: usize, name: &str) -> u64 {
    system_container_working_set_bytes(node, name) + 16 * MIB
}

/// Node CPU rate: all pods plus kubelet, runtime and misc.
pub fn node_cpu_nanocores(node: usize, pods: usize, containers: usize) -> u64 {
    let pods_sum: u64 = (0..pods)
        .map(|p| pod_cpu_nanocores(node, p, containers))
        .sum();
    pods_sum
        + SYSTEM_CONTAINERS
            .iter()
            .map(|s| system_container_cpu_nanocores(node, s))
            .sum::<u64>()
}

/// Node working set: all pods plus kubelet, runtime and misc.
pub fn node_working_set_bytes(node: usize, pods: usize, containers: usize) -> u64 {
    let pods_sum: u64 = (0..pods)
        .map(|p| pod_working_set_bytes(node, p, containers))
        .sum();
    pods_sum
        + SYSTEM_CONTAINERS
            .iter()
            .map(|s| system_container_working_set_bytes(node, s))
            .sum::<u64>()
}

/// Node memory usage: all pods plus kubelet, runtime and misc.
pub fn node_memory_usage_bytes(node: usize, pods: usize, containers: usize) -> u64 {
    let pods_sum: u64 = (0..pods)
        .map(|p| pod_memory_usage_bytes(node, p, containers))
        .sum();
    pods_sum
        + SYSTEM_CONTAINERS
            .iter()
            .map(|s| system_container_memory_usage_bytes(node, s))
            .sum::<u64>()
}

/// Node root filesystem usage: `20 GiB + node` MiB.
pub fn node_fs_used_bytes(node: usize) -> u64 {
    (20 << 30) + node as u64 * MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert_eq!(node_name(7), "sim-node-0007");
        assert_eq!(node_ip(9, 0), Ipv4Addr::new(127, 9, 0, 1));
        assert_eq!(node_ip(9, 249), Ipv4Addr::new(127, 9, 0, 250));
        assert_eq!(node_ip(9, 250), Ipv4Addr::new(127, 9, 1, 1));
        assert_eq!(node_ip(9, 63_999), Ipv4Addr::new(127, 9, 255, 250));
        assert_eq!(node_ip(9, 64_000), Ipv4Addr::new(127, 10, 0, 1));
        assert_eq!(node_ip(9, 65_000), Ipv4Addr::new(127, 10, 4, 1));
        assert_eq!(
            (blocks_for(0), blocks_for(64_000), blocks_for(64_001)),
            (1, 1, 2)
        );
        assert_eq!(pod_name(7, 3), "cache-sim-node-0007-003");
        assert_eq!(pod_namespace(6), "kube-system");
        assert_eq!(container_name(0), "app");
        assert_eq!(container_name(3), "c3");
        assert_ne!(pod_uid(1, 2), pod_uid(2, 1));
    }

    #[test]
    fn rates() {
        assert_eq!(container_cpu_nanocores(0, 0, 0), 10_000_000);
        assert_eq!(container_cpu_nanocores(1, 2, 1), 490_000_000);
        assert_eq!(pod_cpu_nanocores(1, 2, 2), 460_000_000 + 490_000_000);
        assert_eq!(
            node_cpu_nanocores(0, 1, 1),
            10_000_000 + 20_000_000 + 10_000_000 + 5_000_000
        );
        assert!(container_rss_bytes(0, 0, 0) < container_working_set_bytes(0, 0, 0));
        assert_eq!(pod_network_tx_bytes_per_sec(0, 0), 500);
    }
}
