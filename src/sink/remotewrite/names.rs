//! Heapster's metric names and units as Prometheus names: base units (cores, seconds, bytes,
//! ratios 0–1 for percentages), `_total` on counters, a `heapster_` prefix so they never collide
//! with cAdvisor's or kubelet's own series in the same store.

use crate::model::{Metric, MetricKind};

/// A metric's Prometheus name and the factor from Heapster's unit to the base unit.
#[derive(Clone, Debug, PartialEq)]
pub struct PromName {
    pub name: String,
    pub scale: f64,
}

/// The Prometheus name of `metric`, from its name, units and kind (a metric added to the
/// catalogue gets one without a change here).
pub fn prom_name(metric: Metric) -> PromName {
    // `_count` is the suffix of a histogram's or summary's sample count: a gauge of processes
    // is named as cAdvisor's `container_processes`.
    if metric == Metric::ProcessCount {
        return PromName {
            name: "heapster_processes".into(),
            scale: 1.0,
        };
    }
    let base = format!("heapster_{}", metric.name().replace('/', "_"));
    let rate = base.strip_suffix("_rate").unwrap_or(&base);
    let counter = metric.kind() == MetricKind::Cumulative;
    let (name, scale) = match (metric.units(), counter) {
        ("millicores", _) => (format!("{rate}_cores"), 1e-3),
        ("ns", true) => (format!("{base}_seconds_total"), 1e-9),
        ("ms", _) => (format!("{base}_seconds"), 1e-3),
        ("bytes", true) => (format!("{base}_bytes_total"), 1.0),
        ("bytes", false) => (format!("{base}_bytes"), 1.0),
        ("count", true) => (format!("{base}_total"), 1.0),
        ("bytes/s", _) => (format!("{rate}_bytes_per_second"), 1.0),
        ("count/s", _) => (format!("{rate}_per_second"), 1.0),
        ("fraction", _) => (format!("{base}_ratio"), 1.0),
        // Pressure stall percentages as the fraction of time stalled, the base unit PromQL
        // users compare with `cpu/node_utilization` and alert on (`> 0.1`).
        ("percent", _) => (format!("{base}_ratio"), 1e-2),
        _ => (base, 1.0),
    };
    PromName { name, scale }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let cases = [
            (Metric::CpuUsage, "heapster_cpu_usage_seconds_total", 1e-9),
            (Metric::CpuUsageRate, "heapster_cpu_usage_cores", 1e-3),
            (Metric::CpuLimit, "heapster_cpu_limit_cores", 1e-3),
            (Metric::Uptime, "heapster_uptime_seconds", 1e-3),
            (
                Metric::MemoryWorkingSet,
                "heapster_memory_working_set_bytes",
                1.0,
            ),
            (
                Metric::MemoryPageFaults,
                "heapster_memory_page_faults_total",
                1.0,
            ),
            (
                Metric::MemoryPageFaultsRate,
                "heapster_memory_page_faults_per_second",
                1.0,
            ),
            (Metric::NetworkRx, "heapster_network_rx_bytes_total", 1.0),
            (
                Metric::NetworkRxRate,
                "heapster_network_rx_bytes_per_second",
                1.0,
            ),
            (
                Metric::CpuNodeUtilization,
                "heapster_cpu_node_utilization_ratio",
                1.0,
            ),
            (Metric::FilesystemInodes, "heapster_filesystem_inodes", 1.0),
            (Metric::RestartCount, "heapster_restart_count_total", 1.0),
            (
                Metric::CpuPressureSome,
                "heapster_cpu_pressure_some_ratio",
                1e-2,
            ),
            (
                Metric::CpuPressureFull,
                "heapster_cpu_pressure_full_ratio",
                1e-2,
            ),
            (
                Metric::MemoryPressureSome,
                "heapster_memory_pressure_some_ratio",
                1e-2,
            ),
            (
                Metric::MemoryPressureFull,
                "heapster_memory_pressure_full_ratio",
                1e-2,
            ),
            (
                Metric::IoPressureSome,
                "heapster_io_pressure_some_ratio",
                1e-2,
            ),
            (
                Metric::IoPressureFull,
                "heapster_io_pressure_full_ratio",
                1e-2,
            ),
            (
                Metric::MemorySwapUsage,
                "heapster_memory_swap_usage_bytes",
                1.0,
            ),
            (
                Metric::MemorySwapAvailable,
                "heapster_memory_swap_available_bytes",
                1.0,
            ),
            (Metric::ProcessCount, "heapster_processes", 1.0),
            (Metric::ProcessLimit, "heapster_process_limit", 1.0),
        ];
        for (m, name, scale) in cases {
            assert_eq!(
                prom_name(m),
                PromName {
                    name: name.into(),
                    scale
                },
                "{m:?}"
            );
        }
        // Every metric has a distinct, valid name.
        let mut all: Vec<String> = Metric::ALL.iter().map(|m| prom_name(*m).name).collect();
        assert!(
            all.iter()
                .all(|n| n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        );
        // No gauge ends in `_total`, nor in a histogram's or summary's `_count` or `_sum`.
        for m in Metric::ALL {
            let name = prom_name(*m).name;
            if m.kind() == MetricKind::Gauge {
                assert!(!name.ends_with("_total"), "{name}");
            }
            assert!(
                !name.ends_with("_count") && !name.ends_with("_sum"),
                "{name}"
            );
        }
        all.sort();
        all.dedup();
        assert_eq!(all.len(), Metric::ALL.len());
    }

    #[test]
    fn the_readme_maps_every_metric_as_the_sink_names_it() {
        let readme = include_str!("../../../README.md");
        for m in Metric::ALL {
            let row = format!("| `{}` | `{}` |", m.name(), prom_name(*m).name);
            assert!(readme.contains(&row), "README lacks {row}");
        }
    }
}
