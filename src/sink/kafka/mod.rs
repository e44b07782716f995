//! The `kafka` sink: Heapster's JSON messages (one per value, one per event) to Kafka topics,
//! through the shared delivery layer ([`crate::sink::delivery`]): the memory queue, the disk
//! spool, retries, the `heapster_sink_*` counters and the flush at shutdown.
//!
//! Unlike Heapster's sink, messages are keyed (by node for metrics, by involved object for
//! events) so one node's points stay in order on one partition, produced `batch_size` to a
//! request rather than one request per point, and acknowledged by all in-sync replicas.

pub mod encode;
pub mod transport;

use std::time::Duration;

use prometheus_client::registry::Registry;

use super::delivery::{Body, DeliveryOptions, DeliveryTuning, Pipeline, SinkFamilies, Stats};
use super::encoded::{Encode, EncodedSink};
use crate::config::KafkaConfig;
use crate::model::Batch;
use crate::model::event::{Record, hostname};
pub use encode::Encoder;
use transport::KafkaTransport;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The TLS files could not be used.
    #[error("kafka sink TLS")]
    Tls(#[from] transport::TlsError),
    /// The spool could not be opened.
    #[error(transparent)]
    Delivery(#[from] super::delivery::BuildError),
}

fn pipeline(
    cfg: &KafkaConfig,
    topic: &str,
    families: &SinkFamilies,
    tuning: DeliveryTuning,
) -> Result<Pipeline<KafkaTransport>, BuildError> {
    let transport = KafkaTransport::new(cfg, topic, tuning.request_timeout)?;
    let opts = DeliveryOptions {
        buffer_points: cfg.buffer_points,
        concurrency: cfg.concurrency,
        spool: cfg.spool.clone(),
    };
    Ok(Pipeline::new(
        transport,
        families.sink("kafka"),
        opts,
        tuning,
    )?)
}

/// The `kafka` sink for metrics (`timeseriestopic`).
pub type KafkaSink = EncodedSink<Encoder, KafkaTransport>;

impl Encode for Encoder {
    fn encode(&mut self, batch: &Batch, out: &mut Vec<Body>) -> usize {
        Encoder::encode(self, batch, out)
    }

    fn finish(&mut self, out: &mut Vec<Body>) {
        Encoder::finish(self, out);
    }
}

impl KafkaSink {
    /// The sink with its own metric families in `registry` (tests).
    pub fn new(
        cfg: &KafkaConfig,
        registry: &mut Registry,
        tuning: DeliveryTuning,
    ) -> Result<KafkaSink, BuildError> {
        KafkaSink::build(cfg, &SinkFamilies::register(registry), tuning)
    }

    /// Builds the sink; never contacts the brokers (unreachable ones are retried later).
    pub fn build(
        cfg: &KafkaConfig,
        families: &SinkFamilies,
        tuning: DeliveryTuning,
    ) -> Result<KafkaSink, BuildError> {
        Ok(EncodedSink::from_parts(
            "kafka",
            Encoder::new(cfg.batch_size),
            pipeline(cfg, &cfg.timeseries_topic, families, tuning)?,
        ))
    }
}

/// The `kafka` sink for events (`eventstopic`): Heapster's event messages.
pub struct KafkaEventSink {
    per_body: usize,
    buf: Vec<u8>,
    line: String,
    pipeline: Pipeline<KafkaTransport>,
}

impl KafkaEventSink {
    pub fn new(cfg: &KafkaConfig, registry: &mut Registry) -> Result<KafkaEventSink, BuildError> {
        let families = SinkFamilies::register(registry);
        Ok(KafkaEventSink {
            per_body: cfg.batch_size.max(1),
            buf: Vec::new(),
            line: String::new(),
            pipeline: pipeline(cfg, &cfg.events_topic, &families, DeliveryTuning::default())?,
        })
    }

    /// The delivery counters.
    pub fn stats(&self) -> Stats {
        self.pipeline.stats()
    }

    /// Encodes records, `batch_size` to a body, and queues them (never waits); returns how
    /// many were queued.
    pub fn export(&mut self, records: &[Record]) -> usize {
        let mut queued = 0;
        for chunk in records.chunks(self.per_body) {
            self.buf.clear();
            for r in chunk {
                event_message(&mut self.line, r);
                let o = &r.event.involved_object;
                let key = format!(
                    "{}/{}",
                    o.namespace.as_deref().unwrap_or_default(),
                    o.name.as_deref().unwrap_or_default()
                );
                encode::put_record(
                    &mut self.buf,
                    r.time,
                    Some(key.as_bytes()),
                    self.line.as_bytes(),
                );
            }
            let oldest = chunk.iter().map(|r| r.time).min().unwrap_or(0);
            let body = encode::body(self.buf.clone(), chunk.len(), oldest);
            self.pipeline.push_now(body);
            queued += chunk.len();
        }
        queued
    }

    /// Delivers what is queued within `budget`; the rest stays in the spool when there is one.
    pub async fn flush(&mut self, budget: Duration) {
        self.pipeline.flush(budget).await;
    }
}

/// Heapster's event message: the event as a JSON string, its time, and its tags.
pub fn event_message(line: &mut String, r: &Record) {
    let e = &*r.event;
    let o = &e.involved_object;
    let is_pod = o.kind.as_deref() == Some("Pod");
    let s = |v: &Option<String>| v.as_deref().unwrap_or_default().to_owned();
    let json = serde_json::to_string(e).unwrap_or_default();
    line.clear();
    line.push_str("{\"EventValue\":");
    encode::json_str(line, &json);
    line.push_str(",\"EventTimestamp\":");
    encode::json_str(line, &crate::model::time::format_rfc3339(r.time));
    line.push_str(",\"EventTags\":");
    let (uid, host) = (s(&e.metadata.uid), hostname(e).to_owned());
    let (pod_id, pod_name) = (s(&o.uid), s(&o.name));
    let mut tags = vec![("eventID", uid.as_str()), ("hostname", host.as_str())];
    if is_pod {
        tags.push(("pod_id", pod_id.as_str()));
        tags.push(("pod_name", pod_name.as_str()));
    }
    encode::json_tags(line, &tags);
    line.push('}');
}
