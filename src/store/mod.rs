//! The in-memory store behind the `metric` sink: a bounded history of recent batches.
//!
//! Bounded by age (`--metric_history`) and by count; the APIs read snapshots (`Arc<Batch>`)
//! and never trigger a scrape.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::{Batch, Nanos};
use crate::sink::Sink;

/// Recent batches, oldest first.
pub struct Store {
    batches: RwLock<VecDeque<Arc<Batch>>>,
    max_age: Nanos,
    max_batches: usize,
    size_batches: Gauge,
    size_points: Gauge,
}

impl Store {
    /// Keeps batches no older than `max_age` behind the newest, and at most `max_batches`.
    pub fn new(max_age: Nanos, max_batches: usize, registry: &mut Registry) -> Store {
        let s = Store {
            batches: RwLock::new(VecDeque::new()),
            max_age,
            max_batches: max_batches.max(1),
            size_batches: Gauge::default(),
            size_points: Gauge::default(),
        };
        registry.register(
            "store_batches",
            "Batches held by the in-memory store",
            s.size_batches.clone(),
        );
        registry.register(
            "store_points",
            "Points held by the in-memory store",
            s.size_points.clone(),
        );
        s
    }

    pub fn push(&self, batch: Arc<Batch>) {
        let mut b = self.batches.write().unwrap_or_else(|e| e.into_inner());
        let newest = batch.timestamp;
        b.push_back(batch);
        while b.len() > self.max_batches
            || b.front()
                .is_some_and(|f| newest - f.timestamp > self.max_age)
        {
            b.pop_front();
        }
        self.size_batches.set(b.len() as i64);
        self.size_points
            .set(b.iter().map(|x| x.point_count() as i64).sum());
    }

    /// The newest batch.
    pub fn latest(&self) -> Option<Arc<Batch>> {
        self.batches
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .back()
            .cloned()
    }

    /// All batches held, oldest first.
    pub fn snapshot(&self) -> Vec<Arc<Batch>> {
        self.batches
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.batches.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `metric` sink: feeds the store.
pub struct MetricSink(pub Arc<Store>);

impl Sink for MetricSink {
    fn name(&self) -> &'static str {
        "metric"
    }

    async fn export(&mut self, batch: Arc<Batch>) {
        self.0.push(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_age_and_count() {
        let mut reg = Registry::default();
        let s = Store::new(100, 3, &mut reg);
        for t in [0, 50, 100, 150, 200, 250] {
            s.push(Arc::new(Batch {
                timestamp: t,
                sets: vec![],
            }));
        }
        let ts: Vec<_> = s.snapshot().iter().map(|b| b.timestamp).collect();
        assert_eq!(ts, vec![150, 200, 250]);
        let s = Store::new(100, 10, &mut reg);
        for t in [0, 50, 100, 150] {
            s.push(Arc::new(Batch {
                timestamp: t,
                sets: vec![],
            }));
        }
        assert_eq!(s.snapshot().first().map(|b| b.timestamp), Some(50));
    }
}
