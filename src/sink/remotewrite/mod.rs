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

pub mod names;
pub mod proto;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::registry::Registry;
use prost::Message;
use tokio_util::sync::CancellationToken;

use super::Sink;
use super::delivery::metrics::reason;
use super::delivery::{Body, DeliveryOptions, DeliveryTuning, Pipeline, SinkFamilies, Stats};
use crate::config::RemoteWriteConfig;
use crate::model::{Batch, Metric, MetricSet, Nanos, SetKey, Value};
use names::{PromName, prom_name};
use proto::{Label, Sample, TimeSeries, WriteRequest};
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

/// Batches into snappy-compressed `WriteRequest`s of at most `per_request` samples. Pieces of a
/// tick fill the same request; the tick's end (or another tick) closes it.
pub struct Encoder {
    names: Vec<PromName>,
    /// `cluster` and the extra labels, sorted.
    common: Vec<Label>,
    per_request: usize,
    open: Vec<TimeSeries>,
    open_ts: Nanos,
    buf: Vec<u8>,
}

impl Encoder {
    pub fn new(cluster_name: &str, extra: &[(String, String)], per_request: usize) -> Encoder {
        let mut common = vec![label("cluster", cluster_name)];
        common.extend(extra.iter().map(|(k, v)| label(k, v)));
        common.sort_by(|a, b| a.name.cmp(&b.name));
        common.dedup_by(|a, b| a.name == b.name);
        Encoder {
            names: Metric::ALL.iter().map(|m| prom_name(*m)).collect(),
            common,
            per_request: per_request.max(1),
            open: Vec::new(),
            open_ts: 0,
            buf: Vec::new(),
        }
    }

    /// Encodes one batch, appending finished bodies to `out`; returns the non-finite values
    /// skipped.
    pub fn encode(&mut self, batch: &Batch, out: &mut Vec<Body>) -> usize {
        if self.open_ts != batch.timestamp {
            self.cut(out);
            self.open_ts = batch.timestamp;
        }
        let ms = batch.timestamp.div_euclid(1_000_000);
        let mut non_finite = 0;
        for set in &batch.sets {
            let base = self.set_labels(set);
            let values = set.values.iter().map(|(m, v)| (m, v, None)).chain(
                set.labeled
                    .iter()
                    .map(|l| (l.metric, l.value, Some(&*l.resource_id))),
            );
            for (metric, value, device) in values {
                let PromName { name, scale } = &self.names[metric as usize];
                let v = match value {
                    Value::Int(i) => i as f64 * scale,
                    Value::Float(f) => f * scale,
                };
                if !v.is_finite() {
                    non_finite += 1;
                    continue;
                }
                let mut labels = Vec::with_capacity(base.len() + 2);
                labels.push(label("__name__", name));
                labels.extend(base.iter().cloned());
                if let Some(d) = device {
                    labels.push(label("device", d));
                }
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                self.open.push(TimeSeries {
                    labels,
                    samples: vec![Sample {
                        value: v,
                        timestamp: ms,
                    }],
                });
                if self.open.len() >= self.per_request {
                    self.cut(out);
                }
            }
        }
        if !batch.more {
            self.cut(out);
        }
        non_finite
    }

    /// Closes the open request (shutdown).
    pub fn finish(&mut self, out: &mut Vec<Body>) {
        self.cut(out);
    }

    fn set_labels(&self, set: &MetricSet) -> Vec<Label> {
        let mut l = self.common.clone();
        l.push(label("type", set.key.set_type().as_str()));
        match &set.key {
            SetKey::Node { .. } | SetKey::Cluster => {}
            SetKey::SysContainer { container, .. } => l.push(label("container", container)),
            SetKey::Pod { namespace, pod } => {
                l.push(label("namespace", namespace));
                l.push(label("pod", pod));
            }
            SetKey::PodContainer {
                namespace,
                pod,
                container,
            } => {
                l.push(label("namespace", namespace));
                l.push(label("pod", pod));
                l.push(label("container", container));
            }
            SetKey::Namespace { namespace } => l.push(label("namespace", namespace)),
        }
        if let Some(node) = &set.node {
            l.push(label("node", node));
        }
        l
    }

    fn cut(&mut self, out: &mut Vec<Body>) {
        if self.open.is_empty() {
            return;
        }
        let request = WriteRequest {
            timeseries: std::mem::take(&mut self.open),
        };
        out.push(body(&request, self.open_ts, &mut self.buf));
    }
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}

/// A request as a snappy-compressed body; its points are its samples.
fn body(request: &WriteRequest, timestamp: Nanos, buf: &mut Vec<u8>) -> Body {
    buf.clear();
    // Encoding into a Vec cannot fail: it grows as needed.
    let _ = request.encode(buf);
    let compressed = snap::raw::Encoder::new()
        .compress_vec(buf)
        .unwrap_or_default();
    Body {
        bytes: Bytes::from(compressed),
        points: request.timeseries.iter().map(|t| t.samples.len()).sum(),
        timestamp,
        compressed: true,
    }
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
    let mut buf = Vec::new();
    Some((
        body(&request, b.timestamp, &mut buf),
        body(&second, b.timestamp, &mut buf),
    ))
}

/// The `remotewrite` sink.
pub struct RemoteWriteSink {
    encoder: Encoder,
    bodies: Vec<Body>,
    pipeline: Pipeline<RemoteWriteTransport>,
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
        Ok(RemoteWriteSink {
            encoder: Encoder::new(&cfg.cluster_name, &cfg.labels, cfg.samples_per_request),
            bodies: Vec::new(),
            pipeline,
        })
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

impl Sink for RemoteWriteSink {
    fn name(&self) -> &'static str {
        "remotewrite"
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

#[cfg(test)]
mod tests;
