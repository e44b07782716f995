//! The InfluxDB sink: Heapster's schema over InfluxDB 1.x `/write` or 2.x/3.x `/api/v2/write`.
//!
//! `export` encodes a batch into gzipped line-protocol chunks ([`schema`]) and appends them to
//! a bounded buffer ([`buffer`]); a background task ([`delivery`]) drains the buffer through one
//! HTTP client ([`client`]), retrying transient failures with backoff ([`retry`]). So an
//! InfluxDB outage costs nothing until the buffer fills, and then only the oldest points.

pub mod buffer;
pub mod client;
pub mod deflate;
pub mod delivery;
pub mod encode;
pub mod metrics;
pub mod retry;
pub mod schema;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;

use super::Sink;
use crate::config::InfluxConfig;
use crate::model::Batch;
pub use client::BuildError;
use client::Client;
pub use delivery::DeliveryTuning;
use delivery::{Delivery, Shared};
pub use metrics::Stats;
use schema::{BatchEncoder, Chunk, SchemaOptions};

/// The `influxdb` sink.
pub struct InfluxSink {
    encoder: BatchEncoder,
    chunks: Vec<Chunk>,
    shared: Arc<Shared>,
    /// The delivery loop before it is spawned (construction may happen outside a runtime).
    pending: Option<Delivery>,
    task: Option<JoinHandle<()>>,
    drop_warnings: DropWarnings,
}

/// The "buffer full" warnings: the first at once, then at most one every [`DropWarnings::EVERY`]
/// with the points dropped since. Against an InfluxDB that cannot keep up, points are dropped a
/// chunk at a time, which was a warning per chunk (about 170 a second at 5,000 nodes); every
/// dropped point is still counted in `heapster_influxdb_dropped_points_total`.
#[derive(Default)]
struct DropWarnings {
    last: Option<Instant>,
    since: usize,
}

impl DropWarnings {
    const EVERY: Duration = Duration::from_secs(10);

    /// Counts `dropped` points; the points to warn about now, if a warning is due.
    fn add(&mut self, dropped: usize, now: Instant) -> Option<usize> {
        self.since += dropped;
        if self.since == 0 {
            return None;
        }
        match self.last {
            Some(last) if now.saturating_duration_since(last) < Self::EVERY => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.since))
            }
        }
    }
}

impl InfluxSink {
    /// Builds the sink; never contacts InfluxDB (an unreachable server is retried later).
    pub fn new(cfg: &InfluxConfig, registry: &mut Registry) -> Result<InfluxSink, BuildError> {
        InfluxSink::with_tuning(cfg, registry, DeliveryTuning::default())
    }

    /// [`InfluxSink::new`] with explicit backoff and timeout settings.
    pub fn with_tuning(
        cfg: &InfluxConfig,
        registry: &mut Registry,
        tuning: DeliveryTuning,
    ) -> Result<InfluxSink, BuildError> {
        let client = Client::new(cfg, tuning.request_timeout)?;
        let shared = Arc::new(Shared::new(
            cfg.buffer_points,
            metrics::Metrics::register(registry),
        ));
        let encoder = BatchEncoder::new(SchemaOptions {
            cluster_name: cfg.cluster_name.clone(),
            with_fields: cfg.with_fields,
            disable_counter_metrics: cfg.disable_counter_metrics,
            batch_size: cfg.batch_size,
            gzip: cfg.gzip,
        });
        let mut sink = InfluxSink {
            encoder,
            chunks: Vec::new(),
            pending: Some(Delivery {
                shared: Arc::clone(&shared),
                client,
                version: cfg.version,
                concurrency: cfg.concurrency.max(1),
                tuning,
            }),
            shared,
            drop_warnings: DropWarnings::default(),
            task: None,
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            sink.start();
        }
        Ok(sink)
    }

    /// Spawns the delivery loop once (it connects, creates the database, then writes).
    fn start(&mut self) {
        if let Some(d) = self.pending.take() {
            self.task = Some(tokio::spawn(d.run()));
        }
    }

    /// Queues pre-encoded line protocol (whole `\n`-terminated lines, `lines` of them, at most
    /// `batch_size`) for the same delivery as metrics: gzip, batching into one write request,
    /// retries, the bounded outage buffer. The eventer writes its points this way. Returns how
    /// many buffered points were dropped (oldest first) to make room.
    pub fn export_lines(
        &mut self,
        body: &[u8],
        lines: usize,
        timestamp: crate::model::Nanos,
    ) -> usize {
        if lines == 0 {
            return 0;
        }
        self.start();
        let chunk = schema::chunk_from_lines(body, lines, timestamp, self.encoder.gzip());
        let dropped = {
            let mut buf = self.shared.buffer();
            let d = buf.push(chunk);
            self.shared.publish(&buf);
            d
        };
        if dropped > 0 {
            self.shared
                .metrics
                .dropped(metrics::reason::BUFFER_FULL, dropped);
            self.warn_dropped(dropped);
        }
        self.shared.wake.notify_one();
        dropped
    }

    /// A snapshot of the sink's counters.
    pub fn stats(&self) -> Stats {
        self.shared.metrics.stats()
    }
}

impl Drop for InfluxSink {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Sink for InfluxSink {
    fn name(&self) -> &'static str {
        "influxdb"
    }

    async fn export(&mut self, batch: Arc<Batch>) {
        self.start();
        self.chunks.clear();
        let stats = self.encoder.encode(&batch, &mut self.chunks);
        self.buffer_chunks(stats.non_finite);
    }

    async fn flush(&mut self, budget: Duration) {
        self.start();
        // The chunk a piece of a tick left open.
        self.chunks.clear();
        let stats = self.encoder.finish(&mut self.chunks);
        self.buffer_chunks(stats.non_finite);
        self.drain(budget).await;
    }
}

impl InfluxSink {
    /// Moves the chunks just encoded into the outage buffer and wakes the writer.
    fn buffer_chunks(&mut self, non_finite: usize) {
        if self.chunks.is_empty() && non_finite == 0 {
            return;
        }
        let m = &self.shared.metrics;
        m.dropped(metrics::reason::NON_FINITE, non_finite);
        let dropped: usize = {
            let mut buf = self.shared.buffer();
            let d = self.chunks.drain(..).map(|c| buf.push(c)).sum();
            self.shared.publish(&buf);
            d
        };
        if dropped > 0 {
            m.dropped(metrics::reason::BUFFER_FULL, dropped);
            self.warn_dropped(dropped);
        }
        self.shared.wake.notify_one();
    }

    /// Warns that the buffer dropped points, at most every [`DropWarnings::EVERY`].
    fn warn_dropped(&mut self, dropped: usize) {
        if let Some(dropped) = self.drop_warnings.add(dropped, Instant::now()) {
            tracing::warn!(
                dropped,
                every = ?DropWarnings::EVERY,
                "InfluxDB buffer full: dropped the oldest points (all counted in \
                 heapster_influxdb_dropped_points_total; this warning at most once per interval)"
            );
        }
    }

    /// Delivers what is buffered within `budget`; reports the rest.
    async fn drain(&mut self, budget: Duration) {
        let deadline = tokio::time::Instant::now() + budget;
        self.shared.flushing.store(true, Ordering::Release);
        self.shared.hurry.notify_waiters();
        self.shared.wake.notify_one();
        loop {
            let progress = self.shared.progress.notified();
            if self.shared.buffer().pending_points() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                break;
            }
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let left = {
            let mut buf = self.shared.buffer();
            let left = buf.pending_points();
            drop(buf.take(usize::MAX));
            buf.done(usize::MAX);
            self.shared.publish(&buf);
            left
        };
        if left > 0 {
            self.shared.metrics.dropped(metrics::reason::SHUTDOWN, left);
            tracing::warn!(
                points = left,
                ?budget,
                "InfluxDB sink shut down with undelivered points"
            );
        } else {
            tracing::info!("InfluxDB sink flushed");
        }
    }
}
