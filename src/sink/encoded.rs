//! A sink made of an encoder (batches into request bodies) and the shared delivery layer's
//! [`Pipeline`]: what the remote write and Kafka sinks have in common.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Sink;
use super::delivery::metrics::reason;
use super::delivery::{Body, Pipeline, Stats, Transport};
use crate::model::Batch;

/// Batches into bodies.
pub trait Encode: Send + 'static {
    /// Encodes a batch into `out` (closing bodies as they fill, and the open one when the batch
    /// ends a tick); returns the values left out because they are not finite.
    fn encode(&mut self, batch: &Batch, out: &mut Vec<Body>) -> usize;

    /// Closes the open body.
    fn finish(&mut self, out: &mut Vec<Body>);
}

/// A sink that encodes each batch and queues the bodies for delivery.
pub struct EncodedSink<E, T> {
    name: &'static str,
    encoder: E,
    bodies: Vec<Body>,
    pipeline: Pipeline<T>,
}

impl<E: Encode, T: Transport> EncodedSink<E, T> {
    pub fn from_parts(name: &'static str, encoder: E, pipeline: Pipeline<T>) -> EncodedSink<E, T> {
        EncodedSink {
            name,
            encoder,
            bodies: Vec::new(),
            pipeline,
        }
    }

    /// A snapshot of the sink's counters.
    pub fn stats(&self) -> Stats {
        self.pipeline.stats()
    }

    async fn queue(&mut self, deadline: Option<tokio::time::Instant>) {
        let mut bodies = std::mem::take(&mut self.bodies);
        for b in bodies.drain(..) {
            self.pipeline.push(b, deadline).await;
        }
        self.bodies = bodies;
    }
}

impl<E: Encode, T: Transport> Sink for EncodedSink<E, T> {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn export(&mut self, batch: Arc<Batch>) {
        let non_finite = self.encoder.encode(&batch, &mut self.bodies);
        self.pipeline
            .metrics()
            .dropped(reason::NON_FINITE, non_finite);
        let deadline = self.pipeline.tick_deadline(batch.timestamp, batch.more);
        self.queue(Some(deadline)).await;
    }

    fn on_shutdown(&mut self, closing: CancellationToken) {
        self.pipeline.on_shutdown(closing);
    }

    async fn flush(&mut self, budget: Duration) {
        self.encoder.finish(&mut self.bodies);
        self.queue(None).await;
        self.pipeline.flush(budget).await;
    }
}
