//! What the in-memory store is asked to keep (`--history_metrics`, `--max_series`,
//! `--store_memory_bytes`): shared by the flags that set it and the store that honours it.

use super::Metric;

/// The metrics a history can hold, in catalogue order.
pub const HISTORY_CANDIDATES: [Metric; MAX_HISTORY] = [
    Metric::CpuUsageRate,
    Metric::MemoryUsage,
    Metric::MemoryWorkingSet,
];

/// How many metrics a history can hold at most.
pub const MAX_HISTORY: usize = 3;

/// Which metrics the store keeps a history of (`--history_metrics`): a subset of
/// [`HISTORY_CANDIDATES`]. Heapster kept `cpu/usage_rate` and `memory/usage`, the default;
/// `memory/working_set` adds half as much again (2 bytes per series per slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryMetrics(u8);

impl Default for HistoryMetrics {
    fn default() -> HistoryMetrics {
        HistoryMetrics::HEAPSTER
    }
}

impl HistoryMetrics {
    /// `cpu/usage_rate` and `memory/usage`, as Heapster kept them.
    pub const HEAPSTER: HistoryMetrics = HistoryMetrics(0b011);
    /// Every candidate.
    pub const ALL: HistoryMetrics = HistoryMetrics(0b111);
    /// No history: latest values only.
    pub const NONE: HistoryMetrics = HistoryMetrics(0);

    /// A comma-separated list of metric names (`cpu/usage_rate,memory/usage`); empty: none.
    pub fn parse(list: &str) -> Result<HistoryMetrics, String> {
        let mut bits = 0u8;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let i = HISTORY_CANDIDATES
                .iter()
                .position(|m| m.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = HISTORY_CANDIDATES.iter().map(|m| m.name()).collect();
                    format!("{name:?} is not one of {}", known.join(", "))
                })?;
            bits |= 1 << i;
        }
        Ok(HistoryMetrics(bits))
    }

    /// The metrics, in catalogue order.
    pub fn metrics(self) -> impl Iterator<Item = Metric> {
        self.held().map(|i| HISTORY_CANDIDATES[i])
    }

    /// How many metrics: the values in each history slot.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The metric's place in a slot.
    pub fn position(self, metric: Metric) -> Option<usize> {
        self.metrics().position(|m| m == metric)
    }

    /// The places in [`HISTORY_CANDIDATES`] of the metrics held, in order.
    pub fn held(self) -> impl Iterator<Item = usize> {
        (0..MAX_HISTORY).filter(move |i| self.0 & (1 << i) != 0)
    }

    /// Display form, as `--history_metrics` takes it.
    pub fn names(self) -> String {
        self.metrics()
            .map(Metric::name)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Default `--store_memory_bytes`: 1 GiB. A node with 30 pods of two containers has 95 series
/// (node, 4 system containers, pods, containers); at 15 s resolution with the default history
/// (15 minutes, two metrics) a series is estimated at 704 bytes (the store's `series_bytes`), so the
/// default holds 1.5 million series: every series of a cluster of 16,000 such nodes.
pub const DEFAULT_STORE_MEMORY_BYTES: u64 = 1 << 30;

/// What bounds the number of series the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesLimit {
    /// `--max_series`: at most this many.
    Series(usize),
    /// `--store_memory_bytes`: as many series with a full history as the store's
    /// estimate of a series' bytes fits in this many bytes.
    Bytes(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_metrics_parse_and_default_to_heapsters() {
        assert_eq!(
            HistoryMetrics::default().names(),
            "cpu/usage_rate,memory/usage"
        );
        let all = HistoryMetrics::parse(" memory/working_set , cpu/usage_rate,memory/usage")
            .expect("valid");
        assert_eq!(all, HistoryMetrics::ALL);
        assert_eq!(
            all.names(),
            "cpu/usage_rate,memory/usage,memory/working_set"
        );
        assert_eq!(
            HistoryMetrics::parse("").expect("empty is none"),
            HistoryMetrics::NONE
        );
        let err = HistoryMetrics::parse("cpu/usage_rate,memory/rss").expect_err("not a candidate");
        assert!(
            err.contains("\"memory/rss\" is not one of cpu/usage_rate"),
            "{err}"
        );
    }
}
