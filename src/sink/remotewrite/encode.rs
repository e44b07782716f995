//! Batches into snappy-compressed `WriteRequest`s, written straight into protobuf bytes.
//!
//! A tick at 1,000 nodes of 30 pods is millions of samples of eight-odd labels each; building
//! `TimeSeries` messages would allocate two strings per label per sample. Instead each set's
//! labels are encoded once, sorted by name with slots for `__name__` (encoded once per metric),
//! `device` and `persistentvolumeclaim` (a claim's volume), and each sample copies those bytes
//! around its own. [`super::proto`] decodes
//! the result in tests and for a 413 split, so the two cannot drift apart.

use bytes::Bytes;

use super::names::{PromName, prom_name};
use crate::model::{Batch, Metric, MetricSet, Nanos, SetKey, Value};
use crate::sink::delivery::Body;

/// `WriteRequest.timeseries`, `TimeSeries.labels`: field 1, length-delimited.
const FIELD1_LEN: u8 = 1 << 3 | 2;
/// `TimeSeries.samples`, `Label.value`: field 2, length-delimited.
const FIELD2_LEN: u8 = 2 << 3 | 2;
/// `Sample.value`: field 1, 64-bit.
const SAMPLE_VALUE: u8 = 1 << 3 | 1;
/// `Sample.timestamp`: field 2, varint.
const SAMPLE_TIMESTAMP: u8 = 2 << 3;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// One `TimeSeries.labels` entry, with its key and length.
fn label(out: &mut Vec<u8>, name: &str, value: &str) {
    let inner = 1
        + varint_len(name.len() as u64)
        + name.len()
        + 1
        + varint_len(value.len() as u64)
        + value.len();
    out.push(FIELD1_LEN);
    put_varint(out, inner as u64);
    out.push(FIELD1_LEN);
    put_varint(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
    out.push(FIELD2_LEN);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value.as_bytes());
}

/// The label of a volume's claim, as the kubelet's `kubelet_volume_stats_*` series name it.
const CLAIM: &str = "persistentvolumeclaim";

/// A set's labels, sorted by name, as bytes around the `__name__`, `device` and
/// `persistentvolumeclaim` slots.
#[derive(Default)]
struct Template {
    /// Encoded labels before `__name__`, between it and `device`, between `device` and
    /// `persistentvolumeclaim`, and after that.
    parts: [Vec<u8>; 4],
}

pub struct Encoder {
    /// Per metric: its `__name__` label, encoded, and its unit scale.
    names: Vec<(Vec<u8>, f64)>,
    /// `cluster` and the extra labels.
    common: Vec<(String, String)>,
    per_request: usize,
    /// The open request: encoded series and how many.
    open: Vec<u8>,
    samples: usize,
    open_ts: Nanos,
    template: Template,
    device: Vec<u8>,
    claim: Vec<u8>,
}

impl Encoder {
    pub fn new(cluster_name: &str, extra: &[(String, String)], per_request: usize) -> Encoder {
        let mut common = vec![("cluster".to_string(), cluster_name.to_string())];
        common.extend(extra.iter().cloned());
        common.sort();
        common.dedup_by(|a, b| a.0 == b.0);
        let names = Metric::ALL
            .iter()
            .map(|m| {
                let PromName { name, scale } = prom_name(*m);
                let mut b = Vec::new();
                label(&mut b, "__name__", &name);
                (b, scale)
            })
            .collect();
        Encoder {
            names,
            common,
            per_request: per_request.max(1),
            open: Vec::new(),
            samples: 0,
            open_ts: 0,
            template: Template::default(),
            device: Vec::new(),
            claim: Vec::new(),
        }
    }

    /// Encodes one batch, appending finished bodies to `out`; returns the non-finite values
    /// skipped. Pieces of a tick fill the same request; the tick's end (or another tick)
    /// closes it.
    pub fn encode(&mut self, batch: &Batch, out: &mut Vec<Body>) -> usize {
        if self.open_ts != batch.timestamp {
            self.cut(out);
            self.open_ts = batch.timestamp;
        }
        let ms = batch.timestamp.div_euclid(1_000_000);
        let mut non_finite = 0;
        for set in &batch.sets {
            self.set_template(set);
            for (metric, value) in set.values.iter() {
                non_finite += usize::from(!self.sample(metric, value, ms, None, None, out));
            }
            for l in &set.labeled {
                let (device, claim) = (Some(&*l.resource_id), l.pvc.as_deref());
                non_finite += usize::from(!self.sample(l.metric, l.value, ms, device, claim, out));
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

    /// Appends one series of one sample; false (nothing written) for a non-finite value.
    fn sample(
        &mut self,
        metric: Metric,
        value: Value,
        ms: i64,
        device: Option<&str>,
        claim: Option<&str>,
        out: &mut Vec<Body>,
    ) -> bool {
        let (name, scale) = &self.names[metric as usize];
        let v = match value {
            Value::Int(i) => i as f64 * scale,
            Value::Float(f) => f * scale,
        };
        if !v.is_finite() {
            return false;
        }
        self.device.clear();
        if let Some(d) = device {
            label(&mut self.device, "device", d);
        }
        self.claim.clear();
        if let Some(c) = claim {
            label(&mut self.claim, CLAIM, c);
        }
        // Sample: value (key + 8 bytes) and timestamp (key + varint).
        let sample = 1 + 8 + 1 + varint_len(ms as u64);
        let [before, middle, between, after] = &self.template.parts;
        let series = before.len()
            + name.len()
            + middle.len()
            + self.device.len()
            + between.len()
            + self.claim.len()
            + after.len()
            + 1
            + varint_len(sample as u64)
            + sample;
        let o = &mut self.open;
        o.push(FIELD1_LEN);
        put_varint(o, series as u64);
        o.extend_from_slice(before);
        o.extend_from_slice(name);
        o.extend_from_slice(middle);
        o.extend_from_slice(&self.device);
        o.extend_from_slice(between);
        o.extend_from_slice(&self.claim);
        o.extend_from_slice(after);
        o.push(FIELD2_LEN);
        put_varint(o, sample as u64);
        o.push(SAMPLE_VALUE);
        o.extend_from_slice(&v.to_le_bytes());
        o.push(SAMPLE_TIMESTAMP);
        put_varint(o, ms as u64);
        self.samples += 1;
        if self.samples >= self.per_request {
            self.cut(out);
        }
        true
    }

    /// Encodes the set's labels (all but `__name__`, `device` and the claim) around their
    /// slots.
    fn set_template(&mut self, set: &MetricSet) {
        let mut labels: Vec<(&str, &str)> = self
            .common
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        labels.push(("type", set.key.set_type().as_str()));
        match &set.key {
            SetKey::Node { .. } | SetKey::Cluster => {}
            SetKey::SysContainer { container, .. } => labels.push(("container", container)),
            SetKey::Pod { namespace, pod } => {
                labels.push(("namespace", namespace));
                labels.push(("pod", pod));
            }
            SetKey::PodContainer {
                namespace,
                pod,
                container,
            } => {
                labels.push(("namespace", namespace));
                labels.push(("pod", pod));
                labels.push(("container", container));
            }
            SetKey::Namespace { namespace } => labels.push(("namespace", namespace)),
        }
        if let Some(node) = &set.node {
            labels.push(("node", node));
        }
        labels.sort_unstable();
        for part in &mut self.template.parts {
            part.clear();
        }
        for (k, v) in labels {
            let slot = match k {
                k if k < "__name__" => 0,
                k if k < "device" => 1,
                k if k < CLAIM => 2,
                _ => 3,
            };
            label(&mut self.template.parts[slot], k, v);
        }
    }

    fn cut(&mut self, out: &mut Vec<Body>) {
        if self.samples == 0 {
            return;
        }
        out.push(compress(&self.open, self.samples, self.open_ts));
        self.open.clear();
        self.samples = 0;
    }
}

/// A snappy-compressed body of `points` samples.
pub fn compress(request: &[u8], points: usize, timestamp: Nanos) -> Body {
    let compressed = snap::raw::Encoder::new()
        .compress_vec(request)
        .unwrap_or_default();
    Body {
        bytes: Bytes::from(compressed),
        points,
        timestamp,
        compressed: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_their_lengths() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
        }
        let mut b = Vec::new();
        put_varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
    }
}
