//! Processing: kubelet samples + cluster state → a [`Batch`] of Heapster metric sets.
//!
//! Pure functions and one piece of state (the previous counters for rates); no I/O.

pub mod aggregate;
pub mod decode;
pub mod enrich;
pub mod rates;

use std::sync::Arc;

use crate::model::cluster::ClusterState;
use crate::model::{Batch, FastMap, MetricSet, Nanos};
use decode::NodeSample;
use rates::RateState;

/// Turns each tick's samples into metric sets, node by node.
///
/// A tick is [`Processor::begin`], then [`Processor::node`] for each node's sample as its scrape
/// completes (rates, enrichment, container → pod and pod → node sums: everything a node's sets
/// need from that node alone), then [`Processor::finish`] for the namespaces and the cluster.
/// So a node's sets can go to the sinks as soon as it is scraped and no tick ever holds the
/// whole cluster's sets at once. [`Processor::process`] does a whole tick in one call.
#[derive(Default)]
pub struct Processor {
    rates: RateState,
    /// Each node's pod records from its last tick (kept for the nodes of the last tick).
    pods: FastMap<Arc<str>, enrich::NodePods>,
    /// Ticks begun.
    ticks: u64,
}

/// What a tick in progress accumulates across its nodes.
pub struct Tick {
    timestamp: Nanos,
    scraped: Vec<Arc<str>>,
    namespaces: aggregate::Namespaces,
    /// Whether the namespaces are summed by the caller instead ([`Tick::sum_elsewhere`]).
    sum_elsewhere: bool,
}

impl Tick {
    /// The caller sums the namespaces (a sharded replica sums only the nodes it writes, and
    /// its peers' sums complete them): [`Processor::finish`] then returns none.
    pub fn sum_elsewhere(&mut self) {
        self.sum_elsewhere = true;
    }
}

impl Processor {
    pub fn new() -> Processor {
        Processor::default()
    }

    /// Number of entities whose previous counters are remembered.
    pub fn remembered(&self) -> usize {
        self.rates.len()
    }

    /// Starts a tick. `timestamp` is the window end (aligned).
    pub fn begin(&mut self, timestamp: Nanos) -> Tick {
        self.rates.begin();
        self.ticks += 1;
        Tick {
            timestamp,
            scraped: Vec::new(),
            namespaces: aggregate::Namespaces::default(),
            sum_elsewhere: false,
        }
    }

    /// One node's sets, finished: rates, enrichment, pods filled from their containers, the
    /// node from its pods. Its pods are added to the tick's namespace sums.
    pub fn node(
        &mut self,
        tick: &mut Tick,
        sample: NodeSample,
        cluster: &ClusterState,
    ) -> Vec<MetricSet> {
        let mut sets = sample.sets;
        self.rates
            .apply_node(&sample.node, &mut sets, tick.timestamp);
        let kept = match self.pods.get_mut(&sample.node) {
            Some(kept) => kept,
            None => self.pods.entry(Arc::clone(&sample.node)).or_default(),
        };
        kept.tick = self.ticks;
        enrich::enrich_all(&mut sets, cluster, &sample.node, kept);
        aggregate::containers_to_pods(&mut sets);
        aggregate::pods_to_nodes(&mut sets);
        if !tick.sum_elsewhere {
            tick.namespaces.add(&sets, tick.timestamp);
        }
        tick.scraped.push(sample.node);
        sets.into_iter().map(|r| r.set).collect()
    }

    /// Ends a tick: the namespaces' and the cluster's sets. `max_age` bounds how long counters
    /// of an unreachable node are kept.
    pub fn finish(&mut self, tick: Tick, max_age: Nanos) -> Vec<MetricSet> {
        self.rates.end(&tick.scraped, tick.timestamp, max_age);
        let now = self.ticks;
        self.pods.retain(|_, kept| kept.tick == now);
        if tick.sum_elsewhere {
            return Vec::new();
        }
        tick.namespaces.finish(tick.timestamp)
    }

    /// A whole tick in one call: rates, enrichment, aggregation. `timestamp` is the window end
    /// (aligned); `max_age` bounds how long counters of an unreachable node are kept.
    pub fn process(
        &mut self,
        samples: Vec<NodeSample>,
        cluster: &ClusterState,
        timestamp: Nanos,
        max_age: Nanos,
    ) -> Batch {
        let mut tick = self.begin(timestamp);
        let mut sets = Vec::with_capacity(samples.iter().map(|s| s.sets.len()).sum::<usize>() + 64);
        for sample in samples {
            sets.extend(self.node(&mut tick, sample, cluster));
        }
        sets.extend(self.finish(tick, max_age));
        Batch::new(timestamp, sets)
    }
}
