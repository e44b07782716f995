//! A kubelet's answer decoded, before processing: each entity's metric set with the times its
//! counters were sampled and the cumulative totals the rates need.

use std::sync::Arc;

use super::{MetricSet, Nanos};

/// When each group of cumulative counters was sampled (they differ within one response).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SampleTimes {
    pub cpu: Option<Nanos>,
    pub memory: Option<Nanos>,
    pub network: Option<Nanos>,
    /// Of the `io` section (its pressure stall totals).
    pub io: Option<Nanos>,
}

/// Cumulative pressure stall totals in microseconds: `some` then `full` of cpu, then of memory,
/// then of io. They only feed the pressure rates.
pub type PressureTotals = [Option<u64>; 6];

/// A metric set straight from the kubelet, with its sample times.
#[derive(Clone, Debug)]
pub struct RawSet {
    pub set: MetricSet,
    pub times: SampleTimes,
    /// Bit `m` set when the kubelet reported metric `m` for this set itself (pods: so container
    /// sums fill only what the pod lacks).
    pub own: u64,
    pub pressure: PressureTotals,
}

/// Everything one kubelet answered, decoded.
#[derive(Clone, Debug)]
pub struct NodeSample {
    pub node: Arc<str>,
    pub sets: Vec<RawSet>,
}
