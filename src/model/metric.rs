//! The catalogue of Heapster metrics: names, value types and kinds.
//!
//! A [`Metric`] is a one-byte identifier; its name (`cpu/usage_rate`) is what the sinks and the
//! model API show. The list follows Heapster's `core/metrics.go` as described in
//! `REFERENCE.md` §3, then what kubelets report since: pressure stall information, swap and
//! process counts.

/// Whether a metric's points are integers (`i` in line protocol) or floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    Int,
    Float,
}

/// Cumulative counters grow from the entity's start; gauges are instantaneous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Cumulative,
    Gauge,
}

macro_rules! metrics {
    ($( $variant:ident => $name:literal, $vt:ident, $kind:ident, $units:literal; )*) => {
        /// A metric Heapster knows.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Metric { $( $variant, )* }

        impl Metric {
            /// Every metric, in catalogue order.
            pub const ALL: &'static [Metric] = &[ $( Metric::$variant, )* ];

            /// Heapster's name, with the slash (`cpu/usage_rate`).
            pub const fn name(self) -> &'static str {
                match self { $( Metric::$variant => $name, )* }
            }

            /// Integer or float.
            pub const fn value_type(self) -> ValueType {
                match self { $( Metric::$variant => ValueType::$vt, )* }
            }

            /// Cumulative or gauge.
            pub const fn kind(self) -> MetricKind {
                match self { $( Metric::$variant => MetricKind::$kind, )* }
            }

            /// Units, as Heapster's `/api/v1/model/metrics` described them.
            pub const fn units(self) -> &'static str {
                match self { $( Metric::$variant => $units, )* }
            }
        }
    };
}

metrics! {
    Uptime => "uptime", Int, Cumulative, "ms";
    CpuUsage => "cpu/usage", Int, Cumulative, "ns";
    CpuUsageRate => "cpu/usage_rate", Int, Gauge, "millicores";
    CpuRequest => "cpu/request", Int, Gauge, "millicores";
    CpuLimit => "cpu/limit", Int, Gauge, "millicores";
    CpuNodeCapacity => "cpu/node_capacity", Float, Gauge, "millicores";
    CpuNodeAllocatable => "cpu/node_allocatable", Float, Gauge, "millicores";
    CpuNodeUtilization => "cpu/node_utilization", Float, Gauge, "fraction";
    CpuNodeReservation => "cpu/node_reservation", Float, Gauge, "fraction";
    MemoryUsage => "memory/usage", Int, Gauge, "bytes";
    MemoryWorkingSet => "memory/working_set", Int, Gauge, "bytes";
    MemoryRss => "memory/rss", Int, Gauge, "bytes";
    MemoryPageFaults => "memory/page_faults", Int, Cumulative, "count";
    MemoryMajorPageFaults => "memory/major_page_faults", Int, Cumulative, "count";
    MemoryPageFaultsRate => "memory/page_faults_rate", Float, Gauge, "count/s";
    MemoryMajorPageFaultsRate => "memory/major_page_faults_rate", Float, Gauge, "count/s";
    MemoryRequest => "memory/request", Int, Gauge, "bytes";
    MemoryLimit => "memory/limit", Int, Gauge, "bytes";
    MemoryNodeCapacity => "memory/node_capacity", Float, Gauge, "bytes";
    MemoryNodeAllocatable => "memory/node_allocatable", Float, Gauge, "bytes";
    MemoryNodeUtilization => "memory/node_utilization", Float, Gauge, "fraction";
    MemoryNodeReservation => "memory/node_reservation", Float, Gauge, "fraction";
    NetworkRx => "network/rx", Int, Cumulative, "bytes";
    NetworkRxErrors => "network/rx_errors", Int, Cumulative, "count";
    NetworkTx => "network/tx", Int, Cumulative, "bytes";
    NetworkTxErrors => "network/tx_errors", Int, Cumulative, "count";
    NetworkRxRate => "network/rx_rate", Float, Gauge, "bytes/s";
    NetworkRxErrorsRate => "network/rx_errors_rate", Float, Gauge, "count/s";
    NetworkTxRate => "network/tx_rate", Float, Gauge, "bytes/s";
    NetworkTxErrorsRate => "network/tx_errors_rate", Float, Gauge, "count/s";
    FilesystemUsage => "filesystem/usage", Int, Gauge, "bytes";
    FilesystemLimit => "filesystem/limit", Int, Gauge, "bytes";
    FilesystemAvailable => "filesystem/available", Int, Gauge, "bytes";
    FilesystemInodes => "filesystem/inodes", Int, Gauge, "count";
    FilesystemInodesFree => "filesystem/inodes_free", Int, Gauge, "count";
    EphemeralStorageUsage => "ephemeral_storage/usage", Int, Gauge, "bytes";
    EphemeralStorageRequest => "ephemeral_storage/request", Int, Gauge, "bytes";
    EphemeralStorageLimit => "ephemeral_storage/limit", Int, Gauge, "bytes";
    RestartCount => "restart_count", Int, Cumulative, "count";
    CpuPressureSome => "cpu/pressure_some", Float, Gauge, "percent";
    CpuPressureFull => "cpu/pressure_full", Float, Gauge, "percent";
    MemoryPressureSome => "memory/pressure_some", Float, Gauge, "percent";
    MemoryPressureFull => "memory/pressure_full", Float, Gauge, "percent";
    IoPressureSome => "io/pressure_some", Float, Gauge, "percent";
    IoPressureFull => "io/pressure_full", Float, Gauge, "percent";
    MemorySwapUsage => "memory/swap_usage", Int, Gauge, "bytes";
    MemorySwapAvailable => "memory/swap_available", Int, Gauge, "bytes";
    ProcessCount => "process/count", Int, Gauge, "count";
    ProcessLimit => "process/limit", Int, Gauge, "count";
}

impl Metric {
    /// The metric's bit in a mask of metrics (as in [`super::Values::mask`]).
    pub const fn bit(self) -> u64 {
        1 << self as u8
    }

    /// `metrics` as a mask: each one's [`Metric::bit`].
    pub const fn mask(metrics: &[Metric]) -> u64 {
        let mut mask = 0;
        let mut i = 0;
        while i < metrics.len() {
            mask |= metrics[i].bit();
            i += 1;
        }
        mask
    }

    /// Looks a metric up by its Heapster name.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// The cumulative metrics whose rate twin makes them redundant
    /// (InfluxDB sink option `disable_counter_metrics`).
    pub const fn is_counter_twin(self) -> bool {
        matches!(
            self,
            Metric::CpuUsage
                | Metric::MemoryPageFaults
                | Metric::MemoryMajorPageFaults
                | Metric::NetworkRx
                | Metric::NetworkRxErrors
                | Metric::NetworkTx
                | Metric::NetworkTxErrors
        )
    }

    /// Whether this metric is labeled by `resource_id` (filesystem metrics).
    pub const fn is_labeled(self) -> bool {
        matches!(
            self,
            Metric::FilesystemUsage
                | Metric::FilesystemLimit
                | Metric::FilesystemAvailable
                | Metric::FilesystemInodes
                | Metric::FilesystemInodesFree
        )
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(*m));
        }
        let mut names: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::ALL.len());
    }

    #[test]
    fn rate_is_integer_millicores() {
        assert_eq!(Metric::CpuUsageRate.value_type(), ValueType::Int);
        assert_eq!(Metric::CpuUsageRate.units(), "millicores");
        assert_eq!(Metric::NetworkRxRate.value_type(), ValueType::Float);
    }
}
