//! The InfluxDB sink: Heapster's schema over InfluxDB 1.x `/write` or 2.x/3.x `/api/v2/write`.
//!
//! `export` encodes a batch into gzipped line-protocol chunks ([`schema`]) and appends them to
//! a bounded buffer ([`buffer`]); a background task ([`delivery`]) drains the buffer through one
//! HTTP client ([`client`]), retrying transient failures with backoff ([`retry`]). So an
//! InfluxDB outage costs nothing until the buffer fills, and then only the oldest points.
//!
//! A tick can hold more points than the buffer (2.7 M at 1,000 nodes of 30 pods, against the
//! default `buffer_points` of 1 M), and it is encoded faster than any InfluxDB takes it. So
//! while InfluxDB is taking writes, new points wait for room instead of pushing the oldest out,
//! until the next tick is due (the batches wait in the sink's queue meanwhile); only when
//! InfluxDB is down, or too slow to take a tick within a resolution, do the oldest points go.

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
use tokio_util::sync::CancellationToken;

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
    /// How long a tick's points may wait for room ([`DeliveryTuning::room_wait`]).
    room_wait: Duration,
    /// Until when the current tick's pieces may wait for room (`None`: between ticks).
    tick_deadline: Option<tokio::time::Instant>,
    /// Cancelled when shutdown starts: no more waiting for room ([`Sink::on_shutdown`]).
    closing: CancellationToken,
}

/// The "buffer full" warnings: the first at once, then at most one every [`DropWarnings::EVERY`]
/// with the points dropped since. Against an InfluxDB that cannot keep up, points are dropped a
/// chunk at a time, and a warning per chunk would flood the log at scale; every dropped point
/// is still counted in `heapster_influxdb_dropped_points_total`.
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
            room_wait: tuning.room_wait,
            tick_deadline: None,
            closing: CancellationToken::new(),
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
        let room_wait = self.room_wait;
        let deadline = *self.tick_deadline.get_or_insert_with(|| {
            // Until the tick's window end plus the wait (with the resolution: until the next
            // tick is due), so a sink that fell behind does not wait again but catches up.
            let due = i128::from(batch.timestamp) + room_wait.as_nanos() as i128;
            let left = (due - i128::from(crate::model::time::now())).max(0);
            let left = Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX));
            tokio::time::Instant::now() + left.min(room_wait)
        });
        if !batch.more {
            self.tick_deadline = None;
        }
        self.buffer_chunks(stats.non_finite, Some(deadline)).await;
    }

    fn on_shutdown(&mut self, closing: CancellationToken) {
        self.closing = closing;
    }

    async fn flush(&mut self, budget: Duration) {
        self.start();
        // The chunk a piece of a tick left open.
        self.chunks.clear();
        let stats = self.encoder.finish(&mut self.chunks);
        self.buffer_chunks(stats.non_finite, None).await;
        self.drain(budget).await;
    }
}

impl InfluxSink {
    /// Moves the chunks just encoded into the outage buffer, a chunk at a time, and wakes the
    /// writer. With a `deadline`, a chunk that does not fit waits for room first
    /// ([`InfluxSink::wait_for_room`]).
    async fn buffer_chunks(&mut self, non_finite: usize, deadline: Option<tokio::time::Instant>) {
        self.shared
            .metrics
            .dropped(metrics::reason::NON_FINITE, non_finite);
        let mut chunks = std::mem::take(&mut self.chunks);
        let mut dropped = 0;
        for chunk in chunks.drain(..) {
            if let Some(deadline) = deadline {
                self.wait_for_room(chunk.points, deadline).await;
            }
            let mut buf = self.shared.buffer();
            dropped += buf.push(chunk);
            self.shared.publish(&buf);
            drop(buf);
            self.shared.wake.notify_one();
        }
        // The vector's room is kept for the next batch.
        self.chunks = chunks;
        if dropped > 0 {
            self.shared
                .metrics
                .dropped(metrics::reason::BUFFER_FULL, dropped);
            self.warn_dropped(dropped);
        }
    }

    /// Waits until `points` more fit in the buffer, as long as InfluxDB is taking writes and
    /// until `deadline`.
    async fn wait_for_room(&self, points: usize, deadline: tokio::time::Instant) {
        let fits = || {
            self.closing.is_cancelled()
                || self.shared.down.load(Ordering::Acquire)
                || self.shared.buffer().has_room(points)
        };
        let started = tokio::time::Instant::now();
        // A tick past its wait (a sink behind) pushes the oldest out without waiting.
        if started >= deadline || fits() {
            return;
        }
        loop {
            // Registered before the check, so a round finishing in between is not missed.
            let progress = self.shared.progress.notified();
            if fits() {
                break;
            }
            self.shared.wake.notify_one();
            tokio::select! {
                () = progress => {}
                () = tokio::time::sleep_until(deadline) => break,
                () = self.closing.cancelled() => break,
            }
        }
        self.shared
            .metrics
            .buffer_wait
            .inc_by(started.elapsed().as_secs_f64());
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
