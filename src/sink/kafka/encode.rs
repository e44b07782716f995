//! Heapster's Kafka messages (JSON, one per value) and the bodies that carry them through the
//! delivery layer.
//!
//! A body is a run of records, each `timestamp (i64 ms) | key length (u32, u32::MAX: none) | key
//! | value length (u32) | value`, little-endian: what the disk spool keeps, and what the
//! transport turns into Kafka records. Compression happens at produce time, per record batch,
//! as Kafka expects, so bodies are stored uncompressed.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;

use crate::model::{Batch, MetricSet, Nanos, SetKey, Value};
use crate::sink::delivery::Body;

/// One message as the transport sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: &'a [u8],
}

const NO_KEY: u32 = u32::MAX;

/// Appends one record to a body under construction.
pub fn put_record(out: &mut Vec<u8>, timestamp: Nanos, key: Option<&[u8]>, value: &[u8]) {
    out.extend_from_slice(&(timestamp / 1_000_000).to_le_bytes());
    match key {
        Some(k) => {
            out.extend_from_slice(&u32::try_from(k.len()).unwrap_or(0).to_le_bytes());
            out.extend_from_slice(k);
        }
        None => out.extend_from_slice(&NO_KEY.to_le_bytes()),
    }
    out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(value);
}

/// The records of a body; `None` when it is malformed (a torn spool record is caught by the
/// spool's checksum, so this is a bug or a foreign file).
pub fn records(body: &[u8]) -> Option<Vec<Message<'_>>> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        *rest = tail;
        Some(head)
    }
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let ts = i64::from_le_bytes(take(&mut rest, 8)?.try_into().ok()?);
        let klen = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?);
        let key = match klen {
            NO_KEY => None,
            n => Some(take(&mut rest, n as usize)?),
        };
        let vlen = u32::from_le_bytes(take(&mut rest, 4)?.try_into().ok()?);
        let value = take(&mut rest, vlen as usize)?;
        out.push(Message {
            timestamp_ms: ts,
            key,
            value,
        });
    }
    Some(out)
}

/// A body of `messages` records.
pub fn body(bytes: Vec<u8>, messages: usize, timestamp: Nanos) -> Body {
    Body {
        bytes: Bytes::from(bytes),
        points: messages,
        timestamp,
        compressed: false,
    }
}

/// The two halves of a body (a request too large for the broker); `None` for one message.
pub fn split(b: &Body) -> Option<(Body, Body)> {
    let all = records(&b.bytes)?;
    if all.len() < 2 {
        return None;
    }
    let (first, second) = all.split_at(all.len() / 2);
    let half = |part: &[Message<'_>]| {
        let mut out = Vec::new();
        for m in part {
            out.extend_from_slice(&m.timestamp_ms.to_le_bytes());
            match m.key {
                Some(k) => {
                    out.extend_from_slice(&u32::try_from(k.len()).unwrap_or(0).to_le_bytes());
                    out.extend_from_slice(k);
                }
                None => out.extend_from_slice(&NO_KEY.to_le_bytes()),
            }
            out.extend_from_slice(&u32::try_from(m.value.len()).unwrap_or(0).to_le_bytes());
            out.extend_from_slice(m.value);
        }
        body(out, part.len(), b.timestamp)
    };
    Some((half(first), half(second)))
}

/// Appends `s` as a JSON string; runs that need no escaping are copied whole.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        // Every byte matched above is ASCII, so `i` is a character boundary.
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends a JSON object of string pairs (keys given sorted).
pub fn json_tags(out: &mut String, tags: &[(&str, &str)]) {
    out.push('{');
    for (i, (k, v)) in tags.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, k);
        out.push(':');
        json_str(out, v);
    }
    out.push('}');
}

/// Metric sets into Heapster's timeseries messages, `per_body` messages to a body.
pub struct Encoder {
    per_body: usize,
    open: Vec<u8>,
    messages: usize,
    open_ts: Nanos,
    /// The current set's tags as a JSON object, without and with a `resource_id` slot.
    head: String,
    tail: String,
    line: String,
}

impl Encoder {
    pub fn new(per_body: usize) -> Encoder {
        Encoder {
            per_body: per_body.max(1),
            open: Vec::new(),
            messages: 0,
            open_ts: 0,
            head: String::new(),
            tail: String::new(),
            line: String::new(),
        }
    }

    /// Encodes a batch; returns the values left out because JSON has no NaN or infinity.
    pub fn encode(&mut self, batch: &Batch, out: &mut Vec<Body>) -> usize {
        let ts = crate::model::time::format_rfc3339(batch.timestamp);
        let mut non_finite = 0;
        for set in &batch.sets {
            self.set_tags(set);
            let node = node_of(set);
            let key = node.map(str::as_bytes);
            for (metric, value) in set.values.iter() {
                if !self.message(metric.name(), None, value, &ts, key, batch.timestamp, out) {
                    non_finite += 1;
                }
            }
            for l in &set.labeled {
                // A claim's volume also names its claim (`pvc_name`, as in InfluxDB).
                let rid = Some((&*l.resource_id, l.pvc.as_deref()));
                if !self.message(
                    l.metric.name(),
                    rid,
                    l.value,
                    &ts,
                    key,
                    batch.timestamp,
                    out,
                ) {
                    non_finite += 1;
                }
            }
        }
        if !batch.more {
            self.finish(out);
        }
        non_finite
    }

    /// Closes the open body.
    pub fn finish(&mut self, out: &mut Vec<Body>) {
        if self.messages > 0 {
            // The next body is likely as large: allocated once rather than grown.
            let next = Vec::with_capacity(self.open.len());
            let bytes = std::mem::replace(&mut self.open, next);
            out.push(body(bytes, self.messages, self.open_ts));
            self.messages = 0;
        }
    }

    /// Heapster's point tags for a set, sorted by name, split around `resource_id`.
    fn set_tags(&mut self, set: &MetricSet) {
        let t = set.set_type();
        let or_empty = |v: Option<&Arc<str>>| v.map_or("", |s| &**s).to_string();
        let mut tags: Vec<(&str, String)> = Vec::with_capacity(10);
        if t == crate::model::SetType::PodContainer {
            tags.push(("container_base_image", or_empty(set.image.as_ref())));
        }
        if let Some(c) = set.key.container() {
            tags.push(("container_name", c.to_string()));
        }
        if let Some(l) = &set.labels {
            tags.push(("labels", l.to_string()));
        }
        if let Some(ns) = set.key.namespace() {
            tags.push(("namespace_name", ns.to_string()));
        }
        if let Some(n) = node_of(set) {
            tags.push(("nodename", n.to_string()));
            tags.push(("hostname", n.to_string()));
        }
        if let Some(p) = set.key.pod() {
            tags.push(("pod_name", p.to_string()));
        }
        if let Some(uid) = &set.pod_uid {
            tags.push(("pod_id", uid.to_string()));
        }
        if let Some(s) = set.schedulable {
            tags.push(("schedulable", s.to_string()));
        }
        tags.push(("type", t.as_str().to_string()));
        for (k, v) in set.extra_tags.iter().flat_map(|t| t.iter()) {
            if !tags.iter().any(|(n, _)| n == &&**k) && &**k != "resource_id" {
                tags.push((k, v.to_string()));
            }
        }
        tags.sort_by(|a, b| a.0.cmp(b.0));
        let split = tags.partition_point(|(k, _)| *k < "resource_id");
        let pairs: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.head.clear();
        self.tail.clear();
        json_tags(&mut self.head, &pairs[..split]);
        self.head.pop();
        json_tags(&mut self.tail, &pairs[split..]);
        self.tail.remove(0);
    }

    /// One message; false (nothing written) for a non-finite value.
    #[allow(clippy::too_many_arguments)]
    fn message(
        &mut self,
        name: &str,
        resource_id: Option<(&str, Option<&str>)>,
        value: Value,
        ts: &str,
        key: Option<&[u8]>,
        timestamp: Nanos,
        out: &mut Vec<Body>,
    ) -> bool {
        let line = &mut self.line;
        line.clear();
        line.push_str("{\"MetricsName\":");
        json_str(line, name);
        line.push_str(",\"MetricsValue\":{\"value\":");
        match value {
            Value::Int(i) => {
                let _ = write!(line, "{i}");
            }
            Value::Float(f) if f.is_finite() => {
                line.push_str(ryu::Buffer::new().format_finite(f));
            }
            Value::Float(_) => return false,
        }
        line.push_str("},\"MetricsTimestamp\":");
        json_str(line, ts);
        line.push_str(",\"MetricsTags\":");
        line.push_str(&self.head);
        let has_head = self.head.len() > 1;
        let has_tail = self.tail.len() > 1;
        if let Some((r, pvc)) = resource_id {
            if has_head {
                line.push(',');
            }
            if let Some(p) = pvc {
                line.push_str("\"pvc_name\":");
                json_str(line, p);
                line.push(',');
            }
            line.push_str("\"resource_id\":");
            json_str(line, r);
            if has_tail {
                line.push(',');
            }
        } else if has_head && has_tail {
            line.push(',');
        }
        line.push_str(&self.tail);
        line.push('}');
        if self.messages == 0 {
            self.open_ts = timestamp;
        }
        put_record(&mut self.open, timestamp, key, self.line.as_bytes());
        self.messages += 1;
        if self.messages >= self.per_body {
            self.finish(out);
        }
        true
    }
}

/// The node a set's entity runs on (the message key: one node's points stay in order on one
/// partition); namespaces and the cluster have none.
fn node_of(set: &MetricSet) -> Option<&str> {
    set.node.as_deref().or(match &set.key {
        SetKey::Node { node } | SetKey::SysContainer { node, .. } => Some(&**node),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Metric;

    fn decode(bodies: &[Body]) -> Vec<(Option<String>, serde_json::Value)> {
        bodies
            .iter()
            .flat_map(|b| records(&b.bytes).expect("records"))
            .map(|m| {
                (
                    m.key.map(|k| String::from_utf8_lossy(k).into_owned()),
                    serde_json::from_slice(m.value).expect("json"),
                )
            })
            .collect()
    }

    #[test]
    fn heapster_message_shape() {
        let mut set = MetricSet::new(
            SetKey::Pod {
                namespace: "default".into(),
                pod: "web-1".into(),
            },
            0,
        );
        set.node = Some("node-1".into());
        set.labels = Some("app:web".into());
        set.set(Metric::CpuUsageRate, Value::Int(123));
        set.set(Metric::MemoryUsage, Value::Float(f64::NAN));
        set.labeled.push(crate::model::LabeledValue {
            metric: Metric::FilesystemUsage,
            resource_id: "/dev/sda1".into(),
            pvc: None,
            value: Value::Float(1.5),
        });
        set.labeled.push(crate::model::LabeledValue {
            metric: Metric::FilesystemUsage,
            resource_id: "Volume:data".into(),
            pvc: Some("data-web-1".into()),
            value: Value::Int(7),
        });
        let batch = Batch::new(1_767_225_615_000_000_000, vec![set]);
        let mut enc = Encoder::new(1);
        let mut out = Vec::new();
        assert_eq!(enc.encode(&batch, &mut out), 1);
        assert_eq!(out.len(), 3);
        let msgs = decode(&out);
        assert_eq!(msgs[0].0.as_deref(), Some("node-1"));
        assert_eq!(
            msgs[0].1,
            serde_json::json!({
                "MetricsName": "cpu/usage_rate",
                "MetricsValue": {"value": 123},
                "MetricsTimestamp": "2026-01-01T00:00:15Z",
                "MetricsTags": {
                    "hostname": "node-1", "labels": "app:web", "namespace_name": "default",
                    "nodename": "node-1", "pod_name": "web-1", "type": "pod"
                }
            })
        );
        assert_eq!(msgs[1].1["MetricsTags"]["resource_id"], "/dev/sda1");
        assert_eq!(msgs[1].1["MetricsValue"]["value"], 1.5);
        assert_eq!(msgs[1].1["MetricsTags"].get("pvc_name"), None);
        assert_eq!(msgs[2].1["MetricsTags"]["pvc_name"], "data-web-1");
        assert_eq!(msgs[2].1["MetricsTags"]["resource_id"], "Volume:data");
        let (a, b) = split(&out[0]).map_or((0, 0), |(a, b)| (a.points, b.points));
        assert_eq!((a, b), (0, 0), "one message does not split");
    }

    #[test]
    fn json_strings_are_escaped() {
        for s in [
            "plain",
            "a \"quoted\" \\ path\n\t\r",
            "\u{1}ctl",
            "ünïcode ✓",
            "",
        ] {
            let mut out = String::new();
            json_str(&mut out, s);
            assert_eq!(serde_json::from_str::<String>(&out).expect(&out), s);
            assert_eq!(out, serde_json::to_string(s).expect("json"));
        }
    }

    #[test]
    fn bodies_split_in_halves() {
        let mut bytes = Vec::new();
        for i in 0..5 {
            put_record(
                &mut bytes,
                i * 1_000_000,
                (i % 2 == 0).then_some(b"k"),
                b"v",
            );
        }
        let (a, b) = split(&body(bytes, 5, 0)).expect("split");
        assert_eq!((a.points, b.points), (2, 3));
        let r = records(&b.bytes).expect("records");
        assert_eq!(r[0].timestamp_ms, 2);
        assert_eq!(r[1].key, None);
    }
}
