//! The InfluxDB sink: Heapster's schema over InfluxDB 1.x `/write` or 2.x/3.x `/api/v2/write`.
//!
//! `export` encodes a batch into gzipped line-protocol chunks ([`schema`]) and hands them to
//! the shared delivery layer ([`crate::sink::delivery`]): the bounded memory queue, the disk
//! spool, retries with backoff, the self-metrics. This module adds InfluxDB's side
//! ([`transport`]): the write API detected from `/ping`, the database created on 1.x, one HTTP
//! client ([`client`]).

pub mod client;
pub mod deflate;
pub mod encode;
pub mod schema;
#[cfg(test)]
mod tests;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use super::Sink;
#[cfg(test)]
use super::delivery::DropWarnings;
use super::delivery::metrics::reason;
use super::delivery::{DeliveryOptions, Pipeline, SinkFamilies};
pub use super::delivery::{DeliveryTuning, Stats};
use crate::config::InfluxConfig;
use crate::model::Batch;
use client::Client;
use schema::{BatchEncoder, Chunk, SchemaOptions};
use transport::InfluxTransport;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] client::BuildError),
    /// The spool could not be opened.
    #[error(transparent)]
    Delivery(#[from] super::delivery::BuildError),
}

/// The `influxdb` sink.
pub struct InfluxSink {
    encoder: BatchEncoder,
    chunks: Vec<Chunk>,
    pipeline: Pipeline<InfluxTransport>,
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
        let families = SinkFamilies::register(registry);
        InfluxSink::build(cfg, &families, registry, tuning)
    }

    /// The sink with its metrics in `families` (shared with the other sinks of the registry)
    /// and, under their older `influxdb_*` names, in `registry`.
    pub fn build(
        cfg: &InfluxConfig,
        families: &SinkFamilies,
        registry: &mut Registry,
        tuning: DeliveryTuning,
    ) -> Result<InfluxSink, BuildError> {
        let client = Client::new(cfg, tuning.request_timeout)?;
        let metrics = families.sink("influxdb").alias(registry, "influxdb");
        let opts = DeliveryOptions {
            buffer_points: cfg.buffer_points,
            concurrency: cfg.concurrency,
            spool: cfg.spool.clone(),
        };
        let transport = InfluxTransport::new(client, cfg.version);
        let pipeline = Pipeline::new(transport, metrics, opts, tuning)?;
        let encoder = BatchEncoder::new(SchemaOptions {
            cluster_name: cfg.cluster_name.clone(),
            with_fields: cfg.with_fields,
            disable_counter_metrics: cfg.disable_counter_metrics,
            batch_size: cfg.batch_size,
            gzip: cfg.gzip,
            gzip_level: cfg.gzip_level,
        });
        Ok(InfluxSink {
            encoder,
            chunks: Vec::new(),
            pipeline,
        })
    }

    /// Queues pre-encoded line protocol (whole `\n`-terminated lines, `lines` of them, at most
    /// `batch_size`) for the same delivery as metrics: gzip, batching into one write request,
    /// retries, the memory queue and the spool. The eventer writes its points this way.
    /// Returns how many queued points were dropped (oldest first) to make room.
    pub fn export_lines(
        &mut self,
        body: &[u8],
        lines: usize,
        timestamp: crate::model::Nanos,
    ) -> usize {
        if lines == 0 {
            return 0;
        }
        let chunk = schema::chunk_from_lines(body, lines, timestamp, self.encoder.gzip());
        self.pipeline.push_now(chunk.into())
    }

    /// A snapshot of the sink's counters.
    pub fn stats(&self) -> Stats {
        self.pipeline.stats()
    }

    /// Moves the chunks just encoded into the delivery queue, a chunk at a time. With a
    /// `deadline`, a chunk that does not fit waits for room first.
    async fn queue_chunks(&mut self, non_finite: usize, deadline: Option<tokio::time::Instant>) {
        self.pipeline
            .metrics()
            .dropped(reason::NON_FINITE, non_finite);
        let mut chunks = std::mem::take(&mut self.chunks);
        for chunk in chunks.drain(..) {
            self.pipeline.push(chunk.into(), deadline).await;
        }
        // The vector's room is kept for the next batch.
        self.chunks = chunks;
    }
}

impl Sink for InfluxSink {
    fn name(&self) -> &'static str {
        "influxdb"
    }

    async fn export(&mut self, batch: Arc<Batch>) {
        self.chunks.clear();
        let stats = self.encoder.encode(&batch, &mut self.chunks);
        let deadline = self.pipeline.tick_deadline(batch.timestamp, batch.more);
        self.queue_chunks(stats.non_finite, Some(deadline)).await;
    }

    fn on_shutdown(&mut self, closing: CancellationToken) {
        self.pipeline.on_shutdown(closing);
    }

    async fn flush(&mut self, budget: Duration) {
        // The chunk a piece of a tick left open.
        self.chunks.clear();
        let stats = self.encoder.finish(&mut self.chunks);
        self.queue_chunks(stats.non_finite, None).await;
        self.pipeline.flush(budget).await;
    }
}
