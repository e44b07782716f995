//! Sinks: where batches go after processing.
//!
//! Each sink runs as its own task behind a bounded [`queue::DropOldest`] queue, so a slow sink
//! never blocks scraping: when its queue is full the oldest batch is dropped and counted.
//! [`FanOut`] hands every batch to every sink.

pub mod delivery;
pub mod encoded;
pub mod influxdb;
pub mod kafka;
pub mod log;
pub mod queue;
pub mod remotewrite;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::model::Batch;
use queue::DropOldest;

/// A destination for batches. Implementations own their transport and retries.
pub trait Sink: Send + 'static {
    /// A short name for logs and self-metrics (`influxdb`, `log`, `metric`).
    fn name(&self) -> &'static str;

    /// Takes one batch. Called sequentially; a slow call only delays this sink.
    fn export(&mut self, batch: Arc<Batch>) -> impl Future<Output = ()> + Send;

    /// Called once at shutdown with a time budget: deliver what is buffered, report the rest.
    fn flush(&mut self, _budget: Duration) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Hands the sink a token cancelled when shutdown starts, before [`Sink::flush`]: an
    /// `export` that waits (on room in a buffer) stops waiting then, so the flush keeps its
    /// budget.
    fn on_shutdown(&mut self, _closing: CancellationToken) {}
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabel {
    sink: &'static str,
    reason: &'static str,
}

/// Self-metrics shared by all sinks' queues.
#[derive(Clone, Default)]
pub struct FanOutMetrics {
    batches: Family<SinkLabel, Counter>,
    points: Family<SinkLabel, Counter>,
    dropped: Family<DropLabel, Counter>,
}

impl FanOutMetrics {
    pub fn register(registry: &mut Registry) -> FanOutMetrics {
        let m = FanOutMetrics::default();
        registry.register(
            "sink_batches",
            "Batches (ticks) handed to each sink",
            m.batches.clone(),
        );
        registry.register(
            "sink_points",
            "Points handed to each sink",
            m.points.clone(),
        );
        registry.register(
            "sink_dropped_batches",
            "Batches (ticks) dropped before a sink took them, by reason",
            m.dropped.clone(),
        );
        m
    }
}

struct Lane {
    name: &'static str,
    queue: Arc<DropOldest<Arc<Batch>>>,
    task: JoinHandle<()>,
}

/// Hands each batch to every sink through a bounded queue per sink.
pub struct FanOut {
    lanes: Vec<Lane>,
    metrics: FanOutMetrics,
}

impl FanOut {
    pub fn new(metrics: FanOutMetrics) -> FanOut {
        FanOut {
            lanes: Vec::new(),
            metrics,
        }
    }

    /// Starts a sink's task with a queue of `capacity` batches.
    pub fn add<S: Sink>(&mut self, mut sink: S, capacity: usize) {
        let name = sink.name();
        let queue = Arc::new(DropOldest::new(capacity));
        sink.on_shutdown(queue.closing());
        let q = Arc::clone(&queue);
        let task = tokio::spawn(async move {
            while let Some(batch) = q.pop().await {
                sink.export(batch).await;
            }
            sink.flush(q.flush_budget()).await;
        });
        self.lanes.push(Lane { name, queue, task });
    }

    /// Offers a batch (a whole tick or a piece of one) to every sink; never waits. A sink's
    /// queue holds a few ticks; when it is full the oldest tick's pieces still queued go.
    /// Returns the batch's points.
    pub fn send(&self, batch: &Arc<Batch>) -> usize {
        let count = batch.point_count();
        let points = count as u64;
        for lane in &self.lanes {
            let label = SinkLabel { sink: lane.name };
            if !batch.more {
                self.metrics.batches.get_or_create(&label).inc();
            }
            self.metrics.points.get_or_create(&label).inc_by(points);
            if lane.queue.push_piece(Arc::clone(batch), !batch.more) > 0 {
                self.metrics
                    .dropped
                    .get_or_create(&DropLabel {
                        sink: lane.name,
                        reason: "queue_full",
                    })
                    .inc();
                tracing::warn!(
                    sink = lane.name,
                    "sink queue full, dropped the oldest batch"
                );
            }
        }
        count
    }

    /// Closes the queues and waits for every sink to drain and flush within `budget`.
    pub async fn shutdown(self, budget: Duration) {
        for lane in &self.lanes {
            lane.queue.close(budget);
        }
        let all = futures::future::join_all(self.lanes.into_iter().map(|l| l.task));
        // The sinks' own flush honours the budget; the margin covers scheduling.
        let _ = tokio::time::timeout(budget + Duration::from_secs(1), all).await;
    }
}
