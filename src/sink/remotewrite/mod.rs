//! The `remotewrite` sink: Prometheus remote write 1.0 (protobuf `WriteRequest`, snappy block
//! compression) to Prometheus, Mimir, Thanos, Cortex or VictoriaMetrics, through the shared
//! delivery layer ([`crate::sink::delivery`]).
//!
//! Every value becomes a series named by [`names`] (base units, `_total` on counters) with
//! the labels users of kube-state-metrics and cAdvisor expect: `namespace`, `pod`,
//! `container`, `node`, plus `type` (the entity kind, as Heapster's `type` tag), `cluster`,
//! `device` for values per filesystem or device, and the configured extra labels. Pod labels are
//! not copied onto the series (one series set per label change, and a label set per pod on
//! every sample); PromQL joins them from kube-state-metrics' `kube_pod_labels` on
//! `namespace` and `pod`.

pub mod encode;
pub mod names;
pub mod proto;
pub mod transport;

use prometheus_client::registry::Registry;
use prost::Message;

use super::delivery::{Body, DeliveryOptions, DeliveryTuning, Pipeline, SinkFamilies};
use super::encoded::{Encode, EncodedSink};
use crate::config::RemoteWriteConfig;
use crate::model::{Batch, Nanos};
pub use encode::Encoder;
use proto::WriteRequest;
use transport::RemoteWriteTransport;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for remote write")]
    Http(#[source] reqwest::Error),
    /// The spool could not be opened.
    #[error(transparent)]
    Delivery(#[from] super::delivery::BuildError),
}

/// A request as a snappy-compressed body; its points are its samples.
fn body(request: &WriteRequest, timestamp: Nanos) -> Body {
    let points = request.timeseries.iter().map(|t| t.samples.len()).sum();
    encode::compress(&request.encode_to_vec(), points, timestamp)
}

/// The two halves of a body (a 413); `None` for a single series or a body that does not decode.
pub fn split(b: &Body) -> Option<(Body, Body)> {
    let raw = snap::raw::Decoder::new().decompress_vec(&b.bytes).ok()?;
    let mut request = WriteRequest::decode(&raw[..]).ok()?;
    if request.timeseries.len() < 2 {
        return None;
    }
    let second = WriteRequest {
        timeseries: request.timeseries.split_off(request.timeseries.len() / 2),
    };
    Some((body(&request, b.timestamp), body(&second, b.timestamp)))
}

/// The `remotewrite` sink.
pub type RemoteWriteSink = EncodedSink<Encoder, RemoteWriteTransport>;

impl Encode for Encoder {
    fn encode(&mut self, batch: &Batch, out: &mut Vec<Body>) -> usize {
        Encoder::encode(self, batch, out)
    }

    fn finish(&mut self, out: &mut Vec<Body>) {
        Encoder::finish(self, out);
    }
}

impl RemoteWriteSink {
    /// The sink with its own metric families in `registry` (tests).
    pub fn new(
        cfg: &RemoteWriteConfig,
        registry: &mut Registry,
        tuning: DeliveryTuning,
    ) -> Result<RemoteWriteSink, BuildError> {
        RemoteWriteSink::build(cfg, &SinkFamilies::register(registry), tuning)
    }

    /// Builds the sink; never contacts the destination (an unreachable one is retried later).
    pub fn build(
        cfg: &RemoteWriteConfig,
        families: &SinkFamilies,
        tuning: DeliveryTuning,
    ) -> Result<RemoteWriteSink, BuildError> {
        let transport = RemoteWriteTransport::new(cfg, tuning.request_timeout)?;
        let opts = DeliveryOptions {
            buffer_points: cfg.buffer_points,
            concurrency: cfg.concurrency,
            spool: cfg.spool.clone(),
        };
        let pipeline = Pipeline::new(transport, families.sink("remotewrite"), opts, tuning)?;
        Ok(EncodedSink::from_parts(
            "remotewrite",
            Encoder::new(&cfg.cluster_name, &cfg.labels, cfg.samples_per_request),
            pipeline,
        ))
    }
}

#[cfg(test)]
mod tests;
