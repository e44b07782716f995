//! The `/stats/summary` wire shape (kubelet 1.34/1.35), as plain serde structs serialised
//! directly, with no intermediate `serde_json::Value`.

use serde::Serialize;

#[derive(Serialize)]
pub(crate) struct Summary<'a> {
    pub node: NodeStats<'a>,
    pub pods: Vec<PodStats<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeStats<'a> {
    pub node_name: &'a str,
    pub system_containers: Vec<ContainerStats<'a>>,
    pub start_time: &'a str,
    pub cpu: Cpu<'a>,
    pub memory: Memory<'a>,
    pub io: Io<'a>,
    pub network: Network<'a>,
    pub fs: Fs<'a>,
    pub runtime: Runtime<'a>,
    pub rlimit: Rlimit<'a>,
    pub swap: Swap<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ContainerStats<'a> {
    pub name: String,
    pub start_time: String,
    pub cpu: Cpu<'a>,
    pub memory: Memory<'a>,
    pub io: Io<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<Fs<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<Fs<'a>>,
    pub swap: Swap<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodStats<'a> {
    pub pod_ref: PodRef,
    pub start_time: &'a str,
    pub containers: Vec<ContainerStats<'a>>,
    pub cpu: Cpu<'a>,
    pub memory: Memory<'a>,
    pub io: Io<'a>,
    pub network: Network<'a>,
    pub volume: Vec<Volume<'a>>,
    #[serde(rename = "ephemeral-storage")]
    pub ephemeral_storage: Fs<'a>,
    #[serde(rename = "process_stats")]
    pub process_stats: ProcessStats,
    pub swap: Swap<'a>,
}

#[derive(Serialize)]
pub(crate) struct PodRef {
    pub name: String,
    pub namespace: &'static str,
    pub uid: String,
}

#[derive(Serialize)]
pub(crate) struct ProcessStats {
    #[serde(rename = "process_count")]
    pub process_count: u64,
}

#[derive(Serialize, Clone, Copy)]
pub(crate) struct PsiData {
    pub total: u64,
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
}

#[derive(Serialize, Clone, Copy)]
pub(crate) struct Psi {
    pub full: PsiData,
    pub some: PsiData,
}

impl Psi {
    /// Stall totals (microseconds) growing at `some_rate` and half of it per second. The
    /// averages are the rates as percentages, as the kernel's would settle at.
    pub fn growing(some_rate: u64, elapsed_secs: u64) -> Psi {
        let data = |rate: u64| {
            let percent = rate as f64 / 10_000.0;
            PsiData {
                total: rate * elapsed_secs,
                avg10: percent,
                avg60: percent,
                avg300: percent,
            }
        };
        Psi {
            full: data(some_rate / 2),
            some: data(some_rate),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Cpu<'a> {
    pub time: &'a str,
    pub usage_nano_cores: u64,
    pub usage_core_nano_seconds: u64,
    pub psi: Psi,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Memory<'a> {
    pub time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    pub usage_bytes: u64,
    pub working_set_bytes: u64,
    pub rss_bytes: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    pub psi: Psi,
}

#[derive(Serialize)]
pub(crate) struct Io<'a> {
    pub time: &'a str,
    pub psi: Psi,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Interface {
    pub name: &'static str,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Network<'a> {
    pub time: &'a str,
    pub name: &'static str,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub interfaces: Vec<Interface>,
}

impl<'a> Network<'a> {
    /// `eth0` with these counters, plus an idle `tunl0` as real nodes report.
    pub fn eth0(time: &'a str, rx_bytes: u64, tx_bytes: u64) -> Self {
        let iface = |name, rx_bytes, tx_bytes| Interface {
            name,
            rx_bytes,
            rx_errors: 0,
            tx_bytes,
            tx_errors: 0,
        };
        Network {
            time,
            name: "eth0",
            rx_bytes,
            rx_errors: 0,
            tx_bytes,
            tx_errors: 0,
            interfaces: vec![iface("tunl0", 0, 0), iface("eth0", rx_bytes, tx_bytes)],
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Fs<'a> {
    pub time: &'a str,
    pub available_bytes: u64,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub inodes_free: u64,
    pub inodes: u64,
    pub inodes_used: u64,
}

impl<'a> Fs<'a> {
    /// A filesystem of `capacity` bytes with `used` bytes used and one inode per 16 KiB.
    pub fn new(time: &'a str, capacity: u64, used: u64) -> Self {
        let inodes = capacity / 16_384;
        let inodes_used = (used / 16_384).max(1).min(inodes);
        Fs {
            time,
            available_bytes: capacity.saturating_sub(used),
            capacity_bytes: capacity,
            used_bytes: used,
            inodes_free: inodes - inodes_used,
            inodes,
            inodes_used,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Volume<'a> {
    pub time: &'a str,
    pub available_bytes: u64,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub inodes_free: u64,
    pub inodes: u64,
    pub inodes_used: u64,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pvc_ref: Option<PvcRef>,
}

impl<'a> Volume<'a> {
    pub fn new(fs: Fs<'a>, name: String, pvc_ref: Option<PvcRef>) -> Self {
        Volume {
            time: fs.time,
            available_bytes: fs.available_bytes,
            capacity_bytes: fs.capacity_bytes,
            used_bytes: fs.used_bytes,
            inodes_free: fs.inodes_free,
            inodes: fs.inodes,
            inodes_used: fs.inodes_used,
            name,
            pvc_ref,
        }
    }
}

#[derive(Serialize)]
pub(crate) struct PvcRef {
    pub name: String,
    pub namespace: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Runtime<'a> {
    pub image_fs: Fs<'a>,
    pub container_fs: Fs<'a>,
}

#[derive(Serialize)]
pub(crate) struct Rlimit<'a> {
    pub time: &'a str,
    pub maxpid: u64,
    pub curproc: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Swap<'a> {
    pub time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_available_bytes: Option<u64>,
    pub swap_usage_bytes: u64,
}
