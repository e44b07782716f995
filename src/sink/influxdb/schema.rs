//! Heapster's InfluxDB schema, and cutting a batch into request-sized chunks.
//!
//! Default schema: measurement = metric name with the slash (`cpu/usage_rate`), one field
//! `value`. `withfields`: measurement = the part before the first `/`, field = the rest
//! (`uptime` keeps `value`), and the fields of one set that share a measurement (and
//! `resource_id`) go on one line. Tags per set type follow REFERENCE.md §3, sorted by key:
//! `cluster_name`, `container_base_image`, `container_name`, `labels`, `namespace_name`,
//! `nodename`, `pod_name`, `pvc_name` (filesystem values of a claim's volume), `resource_id`,
//! `schedulable`, `type`.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

use super::deflate::{LineGzip, WINDOW};
use super::encode::{self, FieldValue};
use crate::model::{Batch, LabeledValue, Metric, MetricSet, Nanos, SetKey, SetType, Value};

/// The schema and chunking options, from `InfluxConfig`.
#[derive(Clone, Debug)]
pub struct SchemaOptions {
    pub cluster_name: String,
    pub with_fields: bool,
    pub disable_counter_metrics: bool,
    /// Lines per chunk (one write request).
    pub batch_size: usize,
    pub gzip: bool,
    /// With `gzip`: flate2's deflate at this level over each chunk instead of [`LineGzip`] over
    /// each line. Smaller bodies for several times the CPU.
    pub gzip_level: Option<u32>,
}

/// One write request's body.
#[derive(Clone, Debug)]
pub struct Chunk {
    pub body: Bytes,
    pub gzipped: bool,
    pub lines: usize,
    /// Field values in the chunk (what the buffer and the counters count).
    pub points: usize,
    /// The batch timestamp its points carry.
    pub timestamp: Nanos,
}

/// What one `encode` call produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodeStats {
    pub points: usize,
    pub lines: usize,
    /// Uncompressed line-protocol bytes.
    pub bytes: usize,
    /// NaN or infinite values skipped.
    pub non_finite: usize,
}

/// Encodes batches; keeps its buffers between calls so steady state allocates only bodies.
///
/// With gzip, each line is compressed as it is written ([`LineGzip`]). In the default schema
/// the encoder knows what repeats: the previous line's timestamp and this line's name are the
/// bytes before and at the start of the same metric's previous line, and a tag block written
/// from [`BatchEncoder::block`] repeats the previous line's when the block has not changed;
/// these go out as back-references unchecked (debug builds check them), the field value as
/// literals. Elsewhere (a new tag block, the `withfields` schema) it passes hints that
/// [`LineGzip::copy`] checks: the name where the same metric's previous line started, the tags
/// where the previous line's did, and the timestamp ending the previous line.
pub struct BatchEncoder {
    opts: SchemaOptions,
    buf: Vec<u8>,
    head: Vec<u8>,
    tail: Vec<u8>,
    ts: Vec<u8>,
    /// Default schema: the current set's tags, `resource_id` included, and ` value=`.
    block: Vec<u8>,
    /// What `block` holds: false after `set_tags`, else built for `block_rid` (None: no
    /// resource_id; the id's bytes otherwise).
    block_valid: bool,
    block_rid: Option<Vec<u8>>,
    /// Where `block`'s bytes were last written in a gzipped line of this chunk.
    block_at: usize,
    /// `,cluster_name=...` (nothing when the name is empty).
    cluster_tag: Vec<u8>,
    /// The `labels` string last written, and its `,labels=...` tag.
    labels_src: Option<Arc<str>>,
    labels_tag: Vec<u8>,
    /// Where the last two lines' timestamps start (the last line's may not be described yet).
    last_ts: usize,
    grouped: Vec<(&'static str, &'static str, Value)>,
    lines: usize,
    points: usize,
    /// The gzip member of the chunk being written (gzip on, at least one line buffered).
    z: Option<LineGzip>,
    /// Largest gzipped body so far: the next one's starting capacity.
    z_capacity: usize,
    /// Where the last line of each metric started (a hint; stale values only cost ratio).
    name_at: [usize; Metric::ALL.len()],
    /// The previous line's end of name and start of timestamp.
    prev_name_end: usize,
    prev_values: usize,
    prev_ts: usize,
    /// The timestamp of the lines buffered (of the tick being encoded).
    open_ts: Nanos,
}

/// Where the line being written starts, where its measurement ends, and where its field
/// values start (after the tags, and after ` value=` in the default schema).
#[derive(Clone, Copy)]
struct Marks {
    start: usize,
    name_end: usize,
    values: usize,
    metric: Option<Metric>,
}

fn split_name(m: Metric) -> (&'static str, &'static str) {
    m.name().split_once('/').unwrap_or((m.name(), "value"))
}

impl BatchEncoder {
    pub fn new(mut opts: SchemaOptions) -> BatchEncoder {
        opts.batch_size = opts.batch_size.max(1);
        let mut cluster_tag = Vec::new();
        encode::write_tag(&mut cluster_tag, "cluster_name", &opts.cluster_name);
        BatchEncoder {
            cluster_tag,
            opts,
            buf: Vec::with_capacity(1 << 16),
            head: Vec::new(),
            tail: Vec::new(),
            ts: Vec::new(),
            block: Vec::new(),
            block_valid: false,
            block_rid: None,
            block_at: usize::MAX,
            labels_src: None,
            labels_tag: Vec::new(),
            last_ts: usize::MAX,
            grouped: Vec::new(),
            lines: 0,
            points: 0,
            z: None,
            z_capacity: 1 << 12,
            name_at: [usize::MAX; Metric::ALL.len()],
            prev_name_end: usize::MAX,
            prev_values: usize::MAX,
            prev_ts: usize::MAX,
            open_ts: 0,
        }
    }

    /// Whether chunk bodies are gzipped.
    pub fn gzip(&self) -> bool {
        self.opts.gzip
    }

    /// Encodes one batch, appending chunks of at most `batch_size` lines to `out`. A piece of a
    /// tick (`batch.more`) leaves its last chunk open for the next piece, so a tick sent node
    /// by node makes as few chunks as a whole one; a batch of another tick first closes it.
    pub fn encode(&mut self, batch: &Batch, out: &mut Vec<Chunk>) -> EncodeStats {
        let mut stats = EncodeStats::default();
        if self.open_ts != batch.timestamp {
            self.cut(self.open_ts, out, &mut stats);
            self.open_ts = batch.timestamp;
        }
        self.ts.clear();
        encode::write_timestamp(&mut self.ts, batch.timestamp);
        for set in &batch.sets {
            self.set_tags(set);
            if self.opts.with_fields {
                self.set_with_fields(set, batch.timestamp, out, &mut stats);
            } else {
                self.set_default(set, batch.timestamp, out, &mut stats);
            }
        }
        if !batch.more {
            self.cut(batch.timestamp, out, &mut stats);
        }
        stats
    }

    /// Closes the chunk a piece left open (at shutdown, or when no more pieces come).
    pub fn finish(&mut self, out: &mut Vec<Chunk>) -> EncodeStats {
        let mut stats = EncodeStats::default();
        self.cut(self.open_ts, out, &mut stats);
        stats
    }

    fn keep(&self, m: Metric) -> bool {
        !(self.opts.disable_counter_metrics && m.is_counter_twin())
    }

    fn set_tags(&mut self, set: &MetricSet) {
        self.block_valid = false;
        let (head, tail) = (&mut self.head, &mut self.tail);
        head.clear();
        tail.clear();
        let t = set.set_type();
        let node = set.node.as_deref().or(match &set.key {
            SetKey::Node { node } | SetKey::SysContainer { node, .. } => Some(node),
            _ => None,
        });
        head.extend_from_slice(&self.cluster_tag);
        if t == SetType::PodContainer {
            encode::write_tag_value(head, ",container_base_image=", or_empty(set.image.as_ref()));
        }
        encode::write_tag_value(head, ",container_name=", or_empty(set.key.container()));
        if matches!(t, SetType::Node | SetType::Pod | SetType::PodContainer) {
            // A pod and its containers share one labels string: escaped once.
            match &set.labels {
                Some(l) if self.labels_src.as_ref().is_some_and(|c| Arc::ptr_eq(c, l)) => {}
                Some(l) => {
                    self.labels_tag.clear();
                    encode::write_tag_value(&mut self.labels_tag, ",labels=", l);
                    self.labels_src = Some(Arc::clone(l));
                }
                None => {
                    self.labels_tag.clear();
                    self.labels_src = None;
                }
            }
            head.extend_from_slice(&self.labels_tag);
        }
        encode::write_tag_value(head, ",namespace_name=", or_empty(set.key.namespace()));
        if !matches!(t, SetType::Namespace | SetType::Cluster) {
            encode::write_tag_value(head, ",nodename=", node.unwrap_or(""));
        }
        encode::write_tag_value(head, ",pod_name=", or_empty(set.key.pod()));
        if t == SetType::Node
            && let Some(s) = set.schedulable
        {
            tail.extend_from_slice(if s {
                b",schedulable=true"
            } else {
                b",schedulable=false"
            });
        }
        encode::write_tag_value(tail, ",type=", t.as_str());
        // `--store_label` tags come last; names that would clash with Heapster's tags are skipped.
        for (k, v) in set.extra_tags.iter().flat_map(|t| t.iter()) {
            if !RESERVED_TAGS.contains(&&**k) {
                encode::write_tag(tail, k, v);
            }
        }
    }

    /// Default schema: `name,tags value=`, the tags from `block` (rebuilt when the set or the
    /// resource id changes).
    fn start_metric_line(&mut self, metric: Metric, resource_id: Option<Rid<'_>>) -> Marks {
        let rid = resource_id.map(|r| r.id.as_bytes());
        // A set's values with one resource id are of one filesystem, so of one claim or none.
        if !self.block_valid || self.block_rid.as_deref() != rid {
            let block = &mut self.block;
            block.clear();
            block.extend_from_slice(&self.head);
            if let Some(r) = resource_id {
                r.write(block);
            }
            block.extend_from_slice(&self.tail);
            block.extend_from_slice(b" value=");
            match (&mut self.block_rid, rid) {
                (Some(v), Some(r)) => {
                    v.clear();
                    v.extend_from_slice(r);
                }
                (b, r) => *b = r.map(<[u8]>::to_vec),
            }
            self.block_valid = true;
            self.block_at = usize::MAX;
        }
        let start = self.buf.len();
        // Metric names need no escaping (tested below).
        self.buf.extend_from_slice(metric.name().as_bytes());
        let name_end = self.buf.len();
        self.buf.extend_from_slice(&self.block);
        Marks {
            start,
            name_end,
            values: self.buf.len(),
            metric: Some(metric),
        }
    }

    fn start_line(
        &mut self,
        measurement: &str,
        metric: Option<Metric>,
        resource_id: Option<Rid<'_>>,
        values_prefix: &[u8],
    ) -> Marks {
        let start = self.buf.len();
        match metric {
            // Metric names need no escaping (tested below).
            Some(m) => self.buf.extend_from_slice(m.name().as_bytes()),
            None => encode::escape_measurement(&mut self.buf, measurement),
        }
        let mut mark = Marks {
            start,
            name_end: self.buf.len(),
            values: 0,
            metric,
        };
        self.buf.extend_from_slice(&self.head);
        if let Some(r) = resource_id {
            r.write(&mut self.buf);
        }
        self.buf.extend_from_slice(&self.tail);
        self.buf.extend_from_slice(values_prefix);
        mark.values = self.buf.len();
        mark
    }

    fn end_line(
        &mut self,
        mark: Marks,
        fields: usize,
        ts: Nanos,
        out: &mut Vec<Chunk>,
        stats: &mut EncodeStats,
    ) {
        let ts_start = self.buf.len();
        self.buf.extend_from_slice(&self.ts);
        if self.opts.gzip && self.opts.gzip_level.is_none() {
            let cap = self.z_capacity;
            let z = self
                .z
                .get_or_insert_with(|| LineGzip::new(Vec::with_capacity(cap)));
            let buf = &self.buf;
            match mark.metric {
                Some(m) => {
                    // Default schema: the previous line's timestamp is still undescribed.
                    let name_at = self.name_at[m as usize];
                    let ts_len = self.ts.len();
                    if mark.start > 0
                        && name_at != usize::MAX
                        && name_at > 0
                        && mark.start - name_at <= WINDOW
                    {
                        // ` <ts>\n<name>` as the bytes before and at the start of the same
                        // metric's previous line (not the chunk's first: a timestamp precedes
                        // it).
                        z.repeat(
                            buf,
                            mark.start - name_at,
                            ts_len + mark.name_end - mark.start,
                        );
                    } else {
                        z.copy(buf, self.prev_ts, mark.start);
                        z.copy(buf, name_at, mark.name_end);
                    }
                    if self.block_at != usize::MAX && mark.name_end - self.block_at <= WINDOW {
                        z.repeat(
                            buf,
                            mark.name_end - self.block_at,
                            mark.values - mark.name_end,
                        );
                    } else if self.prev_name_end != usize::MAX {
                        // A new block: what it shares with the previous line's at either end
                        // (the tags before and after those that changed).
                        z.copy_ends(buf, self.prev_name_end, self.prev_values, mark.values);
                    } else {
                        z.literals(buf, mark.values);
                    }
                    self.block_at = mark.name_end;
                    z.literals(buf, ts_start);
                    self.name_at[m as usize] = mark.start;
                    self.prev_ts = self.last_ts;
                    self.last_ts = ts_start;
                }
                None => {
                    z.copy(buf, usize::MAX, mark.name_end);
                    z.copy(buf, self.prev_name_end, mark.values);
                    z.literals(buf, ts_start);
                    z.copy(buf, self.prev_ts, buf.len());
                    self.prev_ts = ts_start;
                }
            }
            self.prev_name_end = mark.name_end;
            self.prev_values = mark.values;
        }
        self.lines += 1;
        self.points += fields;
        if self.lines >= self.opts.batch_size {
            self.cut(ts, out, stats);
        }
    }

    fn set_default(
        &mut self,
        set: &MetricSet,
        ts: Nanos,
        out: &mut Vec<Chunk>,
        stats: &mut EncodeStats,
    ) {
        let labeled = set
            .labeled
            .iter()
            .map(|l| (l.metric, l.value, Some(Rid::of(l))));
        let plain = set.values.iter().map(|(m, v)| (m, v, None));
        for (metric, value, resource_id) in plain.chain(labeled) {
            if !self.keep(metric) {
                continue;
            }
            let mark = self.start_metric_line(metric, resource_id);
            if encode::write_number(&mut self.buf, field(value)) {
                self.end_line(mark, 1, ts, out, stats);
            } else {
                self.buf.truncate(mark.start);
                stats.non_finite += 1;
            }
        }
    }

    fn set_with_fields(
        &mut self,
        set: &MetricSet,
        ts: Nanos,
        out: &mut Vec<Chunk>,
        stats: &mut EncodeStats,
    ) {
        let mut grouped = std::mem::take(&mut self.grouped);
        grouped.clear();
        grouped.extend(
            set.values
                .iter()
                .filter(|(m, _)| self.keep(*m))
                .map(|(m, v)| {
                    let (meas, fld) = split_name(m);
                    (meas, fld, v)
                }),
        );
        self.write_groups(&grouped, None, ts, out, stats);
        // Labeled values: one group per resource_id, in order of first appearance.
        for (i, lv) in set.labeled.iter().enumerate() {
            if set.labeled[..i]
                .iter()
                .any(|p| p.resource_id == lv.resource_id)
            {
                continue;
            }
            grouped.clear();
            grouped.extend(
                set.labeled[i..]
                    .iter()
                    .filter(|l| l.resource_id == lv.resource_id && self.keep(l.metric))
                    .map(|l| {
                        let (meas, fld) = split_name(l.metric);
                        (meas, fld, l.value)
                    }),
            );
            self.write_groups(&grouped, Some(Rid::of(lv)), ts, out, stats);
        }
        self.grouped = grouped;
    }

    /// Writes one line per distinct measurement in `values`, fields in order of appearance.
    fn write_groups(
        &mut self,
        values: &[(&'static str, &'static str, Value)],
        resource_id: Option<Rid<'_>>,
        ts: Nanos,
        out: &mut Vec<Chunk>,
        stats: &mut EncodeStats,
    ) {
        for (i, (meas, _, _)) in values.iter().enumerate() {
            if values[..i].iter().any(|(m, _, _)| m == meas) {
                continue;
            }
            let mark = self.start_line(meas, None, resource_id, b"");
            let mut written = 0;
            for (_, fld, v) in values[i..].iter().filter(|(m, _, _)| m == meas) {
                let field_mark = self.buf.len();
                self.buf.push(if written == 0 { b' ' } else { b',' });
                encode::escape_key(&mut self.buf, fld);
                self.buf.push(b'=');
                if encode::write_number(&mut self.buf, field(*v)) {
                    written += 1;
                } else {
                    self.buf.truncate(field_mark);
                    stats.non_finite += 1;
                }
            }
            if written == 0 {
                self.buf.truncate(mark.start);
            } else {
                self.end_line(mark, written, ts, out, stats);
            }
        }
    }

    /// Turns the buffered lines into a chunk.
    fn cut(&mut self, ts: Nanos, out: &mut Vec<Chunk>, stats: &mut EncodeStats) {
        if self.lines == 0 {
            return;
        }
        stats.lines += self.lines;
        stats.points += self.points;
        stats.bytes += self.buf.len();
        // Bodies may wait in the outage buffer: they keep no spare capacity.
        // `gzip_level`: flate2's deflate over the whole chunk instead.
        let zlib = (self.opts.gzip_level)
            .filter(|_| self.opts.gzip)
            .and_then(|level| gzip(&self.buf, Compression::new(level)));
        let (mut body, gzipped) = match (self.z.take(), zlib) {
            (Some(mut z), _) => {
                // The default schema leaves the last line's timestamp to describe: it repeats
                // the line before's.
                z.copy(&self.buf, self.prev_ts, self.buf.len());
                let body = z.finish(&self.buf);
                self.z_capacity = self.z_capacity.max(body.len());
                self.buf.clear();
                (body, true)
            }
            (None, Some(body)) => {
                self.buf.clear();
                (body, true)
            }
            // The buffer itself becomes the body; the next one starts a little larger.
            (None, None) => {
                let len = self.buf.len();
                let next = Vec::with_capacity(len + len / 8);
                (std::mem::replace(&mut self.buf, next), false)
            }
        };
        body.shrink_to_fit();
        let body = Bytes::from(body);
        out.push(Chunk {
            body,
            gzipped,
            lines: self.lines,
            points: self.points,
            timestamp: ts,
        });
        self.lines = 0;
        self.points = 0;
        self.name_at = [usize::MAX; Metric::ALL.len()];
        self.prev_name_end = usize::MAX;
        self.prev_values = usize::MAX;
        self.prev_ts = usize::MAX;
        self.last_ts = usize::MAX;
        self.block_at = usize::MAX;
    }
}

/// The tags of a labeled value: its `resource_id` and, for a claim's volume, `pvc_name`.
#[derive(Clone, Copy)]
struct Rid<'a> {
    id: &'a str,
    pvc: Option<&'a str>,
}

impl<'a> Rid<'a> {
    fn of(l: &'a LabeledValue) -> Rid<'a> {
        Rid {
            id: &l.resource_id,
            pvc: l.pvc.as_deref(),
        }
    }

    /// `,pvc_name=...,resource_id=...` (sorted, as the other tags).
    fn write(self, out: &mut Vec<u8>) {
        if let Some(p) = self.pvc {
            encode::write_tag_value(out, ",pvc_name=", p);
        }
        encode::write_tag_value(out, ",resource_id=", self.id);
    }
}

/// Tags Heapster writes itself (and those it never writes).
const RESERVED_TAGS: [&str; 15] = [
    "cluster_name",
    "container_base_image",
    "container_name",
    "labels",
    "namespace_name",
    "nodename",
    "pod_name",
    "pvc_name",
    "resource_id",
    "schedulable",
    "type",
    "hostname",
    "host_id",
    "pod_id",
    "namespace_id",
];

/// A chunk of already-encoded lines (gzipped when asked and when compression works).
pub fn chunk_from_lines(body: &[u8], lines: usize, timestamp: Nanos, gzip_body: bool) -> Chunk {
    let (body, gzipped) = match gzip_body.then(|| gzip(body, Compression::fast())).flatten() {
        Some(z) => (Bytes::from(z), true),
        None => (Bytes::copy_from_slice(body), false),
    };
    Chunk {
        body,
        gzipped,
        lines,
        points: lines,
        timestamp,
    }
}

fn or_empty(v: Option<&Arc<str>>) -> &str {
    v.map_or("", |s| s)
}

fn field(v: Value) -> FieldValue<'static> {
    match v {
        Value::Int(i) => FieldValue::Int(i),
        Value::Float(f) => FieldValue::Float(f),
    }
}

/// Gzips a body with flate2's deflate at `level`.
fn gzip(data: &[u8], level: Compression) -> Option<Vec<u8>> {
    let mut z = GzEncoder::new(Vec::with_capacity(data.len() / 6 + 64), level);
    z.write_all(data).ok()?;
    z.finish().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_need_no_escaping() {
        for m in Metric::ALL {
            let mut b = Vec::new();
            encode::escape_measurement(&mut b, m.name());
            assert_eq!(b, m.name().as_bytes());
            let (meas, fld) = split_name(*m);
            let mut b = Vec::new();
            encode::escape_measurement(&mut b, meas);
            encode::escape_key(&mut b, fld);
            assert_eq!(b, format!("{meas}{fld}").as_bytes());
        }
    }
}
