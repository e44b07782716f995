//! Event sinks: `log` (one line per event), `influxdb` and `kafka` (Heapster's event schemas,
//! delivered by the metrics sinks' machinery: batching, compression, retries, the bounded
//! outage buffer and the spool).

use std::time::Duration;

use prometheus_client::registry::Registry;

use super::Record;
use super::metrics::{EventMetrics, reason};
use super::schema::{EventSchema, hostname};
use crate::config::{InfluxConfig, SinkConfig};
use crate::sink::Sink;
use crate::sink::influxdb::{BuildError, InfluxSink, Stats};
use crate::sink::kafka::KafkaEventSink;

/// A destination for event records.
pub enum EventSink {
    Log(LogEventSink),
    Influx(Box<InfluxEventSink>),
    Kafka(Box<KafkaEventSink>),
}

impl EventSink {
    /// The sink for a `--sink`/`--event_sink` value; `None` for kinds that take no events
    /// (`metric`). Each InfluxDB or Kafka sink's counters go under `events_<n>_` in
    /// `registry`.
    pub fn from_config(
        cfg: &SinkConfig,
        index: usize,
        registry: &mut Registry,
    ) -> anyhow::Result<Option<EventSink>> {
        Ok(match cfg {
            SinkConfig::Log => Some(EventSink::Log(LogEventSink)),
            SinkConfig::Metric | SinkConfig::RemoteWrite(_) => None,
            SinkConfig::InfluxDb(influx) => {
                let sub = registry.sub_registry_with_prefix(format!("events_{index}"));
                Some(EventSink::Influx(Box::new(InfluxEventSink::new(
                    influx, sub,
                )?)))
            }
            SinkConfig::Kafka(kafka) => {
                let sub = registry.sub_registry_with_prefix(format!("events_{index}"));
                Some(EventSink::Kafka(Box::new(KafkaEventSink::new(kafka, sub)?)))
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            EventSink::Log(_) => "log",
            EventSink::Influx(_) => "influxdb",
            EventSink::Kafka(_) => "kafka",
        }
    }

    /// Takes records (never waits on the network).
    pub fn export(&mut self, records: &[Record], metrics: &EventMetrics) {
        let exported = match self {
            EventSink::Log(s) => s.export(records),
            EventSink::Influx(s) => s.export(records, metrics),
            EventSink::Kafka(s) => s.export(records),
        };
        metrics.exported(self.name(), exported);
    }

    /// Delivers what is buffered within `budget`.
    pub async fn flush(&mut self, budget: Duration) {
        match self {
            EventSink::Log(_) => {}
            EventSink::Influx(s) => s.sink.flush(budget).await,
            EventSink::Kafka(s) => s.flush(budget).await,
        }
    }
}

/// Prints every event on one line (`tracing` at info).
pub struct LogEventSink;

impl LogEventSink {
    fn export(&mut self, records: &[Record]) -> usize {
        for r in records {
            let e = &r.event;
            let o = &e.involved_object;
            let s = |v: &Option<String>| v.as_deref().unwrap_or_default().to_owned();
            tracing::info!(
                target: "eventer",
                time = %crate::model::time::format_rfc3339(r.time),
                namespace = %s(&e.metadata.namespace),
                kind = %s(&o.kind),
                object = %s(&o.name),
                r#type = %s(&e.type_),
                reason = %s(&e.reason),
                count = e.count.unwrap_or(1),
                host = %hostname(e),
                message = %s(&e.message).replace('\n', " "),
                "event"
            );
        }
        records.len()
    }
}

/// Heapster's event schema into InfluxDB.
pub struct InfluxEventSink {
    sink: InfluxSink,
    schema: EventSchema,
    batch_size: usize,
    buf: Vec<u8>,
}

impl InfluxEventSink {
    pub fn new(cfg: &InfluxConfig, registry: &mut Registry) -> Result<InfluxEventSink, BuildError> {
        Ok(InfluxEventSink {
            sink: InfluxSink::new(cfg, registry)?,
            schema: EventSchema {
                cluster_name: cfg.cluster_name.clone(),
                with_fields: cfg.with_fields,
            },
            batch_size: cfg.batch_size.max(1),
            buf: Vec::new(),
        })
    }

    /// The delivery counters (points written, dropped, retries).
    pub fn stats(&self) -> Stats {
        self.sink.stats()
    }

    /// Encodes records into chunks of `batch_size` lines and queues them; returns how many
    /// were queued.
    fn export(&mut self, records: &[Record], metrics: &EventMetrics) -> usize {
        let mut queued = 0;
        for batch in records.chunks(self.batch_size) {
            self.buf.clear();
            let mut lines = 0;
            for r in batch {
                match self.schema.write(&mut self.buf, r) {
                    Ok(()) => lines += 1,
                    Err(e) => {
                        tracing::debug!(error = %e, "event not encodable");
                        metrics.dropped(reason::ENCODE, 1);
                    }
                }
            }
            let last = batch.last().map_or(0, |r| r.time);
            self.sink.export_lines(&self.buf, lines, last);
            queued += lines;
        }
        queued
    }
}
