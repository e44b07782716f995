//! Processing: kubelet samples + cluster state → a [`Batch`] of Heapster metric sets.
//!
//! Pure functions and one piece of state (the previous counters for rates); no I/O.

pub mod aggregate;
pub mod decode;
pub mod enrich;
pub mod rates;

use std::sync::Arc;

use crate::model::cluster::ClusterState;
use crate::model::{Batch, Nanos};
use decode::NodeSample;
use rates::RateState;

/// Turns each tick's samples into a batch.
#[derive(Default)]
pub struct Processor {
    rates: RateState,
}

impl Processor {
    pub fn new() -> Processor {
        Processor::default()
    }

    /// Number of entities whose previous counters are remembered.
    pub fn remembered(&self) -> usize {
        self.rates.len()
    }

    /// One tick: rates, enrichment, aggregation. `timestamp` is the window end (aligned);
    /// `max_age` bounds how long counters of an unreachable node are kept.
    pub fn process(
        &mut self,
        samples: Vec<NodeSample>,
        cluster: &ClusterState,
        timestamp: Nanos,
        max_age: Nanos,
    ) -> Batch {
        let scraped: Vec<Arc<str>> = samples.iter().map(|s| Arc::clone(&s.node)).collect();
        // Sized once: growing by doubling would copy the sets several times and, at the
        // last step, hold twice their size.
        let mut sets = Vec::with_capacity(samples.iter().map(|s| s.sets.len()).sum::<usize>() + 64);
        for sample in samples {
            sets.extend(sample.sets);
        }
        self.rates.apply(&mut sets, &scraped, timestamp, max_age);
        for raw in &mut sets {
            enrich::enrich(raw, cluster);
        }
        aggregate::containers_to_pods(&mut sets);
        aggregate::pods_up(&mut sets, timestamp);
        Batch {
            timestamp,
            sets: sets.into_iter().map(|r| r.set).collect(),
        }
    }
}
