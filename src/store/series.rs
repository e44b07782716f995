//! One entity's series: compact latest values, a bounded history of the long-kept metrics, and
//! the samples the resource metrics API needs (last two cumulative cpu samples, working set).

use std::borrow::Borrow;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::model::history::{HistoryMetrics, MAX_HISTORY};
use crate::model::{Metric, MetricSet, Nanos, Value, ValueType};

/// `Tiny` units as shifts, per candidate: millicores for `cpu/usage_rate`, 4 KiB pages for
/// memory (kubelets report cgroup memory in whole pages).
const TINY_SHIFT: [u32; MAX_HISTORY] = [0, 12, 12];

/// The `Tiny` shifts of a history's metrics, in slot order (unused places: 0).
fn shifts(metrics: HistoryMetrics) -> [u32; MAX_HISTORY] {
    let mut out = [0; MAX_HISTORY];
    for (o, i) in out.iter_mut().zip(metrics.held()) {
        *o = TINY_SHIFT[i];
    }
    out
}

/// What every series' history holds: which metrics, and at most how many slots.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistorySpec {
    pub metrics: HistoryMetrics,
    pub max_points: usize,
}

/// Marks a missing value in a history point.
const MISSING: i64 = i64::MIN;

/// A history value as 8 bytes; the metric's value type says how to read it back.
pub(crate) fn encode(metric: Metric, v: Value) -> i64 {
    match metric.value_type() {
        ValueType::Int => v.as_i64(),
        ValueType::Float => v.as_f64().to_bits() as i64,
    }
}

pub(crate) fn decode(metric: Metric, raw: i64) -> Value {
    match metric.value_type() {
        ValueType::Int => Value::Int(raw),
        ValueType::Float => Value::Float(f64::from_bits(raw as u64)),
    }
}

/// The most bytes [`pack_into`] writes for one value (a 10-byte varint).
const PACKED_MAX: usize = 10;

/// Writes a latest value at `out[at..]`, packed, and returns where the next one goes: an
/// integer metric as a zigzag LEB128 varint (1 byte for counts and small limits, 4 or 5 for
/// memory in bytes, 6 or 7 for cumulative cpu in ns), a float metric as its 8 bytes. The value
/// types come from the metric, as for [`encode`]. `out` must have [`PACKED_MAX`] bytes from
/// `at`; bytes past the value may be overwritten.
#[inline]
fn pack_into(out: &mut [u8], at: usize, metric: Metric, v: Value) -> usize {
    let word = match metric.value_type() {
        ValueType::Int => {
            let i = v.as_i64();
            let z = ((i << 1) ^ (i >> 63)) as u64;
            if z < 0x80 {
                if let Some(b) = out.get_mut(at) {
                    *b = z as u8;
                }
                return at + 1;
            }
            // Bytes needed (2 to 10). Up to 8 (56 bits), the seven-bit groups are spread into
            // one word and written at once, with the continuation bits of all but the last.
            let n = (64 - z.leading_zeros() as usize).div_ceil(7);
            if n > 8 {
                return pack_long(out, at, z);
            }
            // 56 bits → two 28-bit halves 32 bits apart → four 14-bit quarters 16 apart →
            // eight 7-bit groups 8 apart.
            let mut spread = (z & 0x0fff_ffff) | ((z & 0x00ff_ffff_f000_0000) << 4);
            spread = (spread & 0x0000_3fff_0000_3fff) | ((spread & 0x0fff_c000_0fff_c000) << 2);
            spread = (spread & 0x007f_007f_007f_007f) | ((spread & 0x3f80_3f80_3f80_3f80) << 1);
            let more = (1u64 << (8 * (n - 1))) - 1;
            ((spread | (more & 0x8080_8080_8080_8080)), n)
        }
        ValueType::Float => (v.as_f64().to_bits(), 8),
    };
    let (bits, n) = word;
    if let Some(dst) = out.get_mut(at..at + 8) {
        dst.copy_from_slice(&bits.to_le_bytes());
    }
    at + n
}

/// A varint of 9 or 10 bytes, a byte at a time.
#[cold]
fn pack_long(out: &mut [u8], mut at: usize, mut z: u64) -> usize {
    while z >= 0x80 {
        if let Some(b) = out.get_mut(at) {
            *b = z as u8 | 0x80;
        }
        z >>= 7;
        at += 1;
    }
    if let Some(b) = out.get_mut(at) {
        *b = z as u8;
    }
    at + 1
}

/// Reads the packed value at the front of `data` ([`pack_into`]) and moves past it.
fn unpack_value(data: &mut &[u8], metric: Metric) -> Option<Value> {
    match metric.value_type() {
        ValueType::Int => {
            let mut z = 0u64;
            let mut shift = 0;
            loop {
                let (&b, rest) = data.split_first()?;
                *data = rest;
                z |= u64::from(b & 0x7f).checked_shl(shift)?;
                if b < 0x80 {
                    break;
                }
                shift += 7;
            }
            Some(Value::Int((z >> 1) as i64 ^ -((z & 1) as i64)))
        }
        ValueType::Float => {
            let (bytes, rest) = data.split_first_chunk::<8>()?;
            *data = rest;
            Some(Value::Float(f64::from_le_bytes(*bytes)))
        }
    }
}

thread_local! {
    /// The latest values being packed ([`Series::update`]): one buffer per store thread, so
    /// a series whose packed size did not change is rewritten in place, without allocating.
    static PACK: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The batch timestamps of the history slots, shared by every series: slot `seq` of a series
/// was taken from the batch at `ts[seq - first]`. Series keep values only (no timestamps).
#[derive(Debug, Default)]
pub(crate) struct Ticks {
    /// Sequence number after the newest batch.
    pub end: u64,
    pub ts: VecDeque<Nanos>,
}

impl Ticks {
    /// Sequence number of the oldest batch still held.
    pub fn first(&self) -> u64 {
        self.end - self.ts.len() as u64
    }

    /// Takes the batch at `ts` and returns its sequence number (a batch at the newest
    /// timestamp again reuses its slot); drops ticks beyond `max_points` or older than `keep`.
    pub fn push(&mut self, ts: Nanos, keep: Nanos, max_points: usize) -> u64 {
        if self.ts.back() != Some(&ts) {
            self.ts.push_back(ts);
            self.end += 1;
        }
        while self.ts.len() > max_points || self.ts.front().is_some_and(|t| ts - t > keep) {
            self.ts.pop_front();
        }
        self.end - 1
    }

    /// The timestamp of slot `seq`, if still held.
    pub fn get(&self, seq: u64) -> Option<Nanos> {
        let i = usize::try_from(seq.checked_sub(self.first())?).ok()?;
        self.ts.get(i).copied()
    }
}

/// One history slot's values, in the order of the store's [`HistoryMetrics`] (places past
/// their count unused).
type Slot = [i64; MAX_HISTORY];

/// History values, one slot per batch, in the narrowest of three layouts that holds them all:
/// - `Tiny`, 2 bytes a value: offsets from the series' first values, in millicores for
///   `cpu/usage_rate` (±32 cores) and in 4 KiB pages for memory (±128 MiB; kubelets report
///   cgroup memory in whole pages);
/// - `Narrow`, 4 bytes: offsets within ±2 GiB;
/// - `Wide`, 8 bytes.
///
/// Each layout keeps its slots flat, `n` values a slot (the store's history metrics), so a
/// slot takes 2 × `n` bytes in `Tiny`. A ring moves to a wider layout when a value does not
/// fit, never back.
#[derive(Debug)]
struct Ring {
    /// Values a slot (1 to 3).
    n: u8,
    /// `Tiny` shifts of the values, in slot order.
    shifts: [u8; MAX_HISTORY],
    layout: Layout,
}

#[derive(Debug)]
enum Layout {
    Tiny { base: Slot, values: VecDeque<i16> },
    Narrow { base: Slot, values: VecDeque<i32> },
    Wide(VecDeque<i64>),
}

const NARROW_MISSING: i32 = i32::MIN;
const TINY_MISSING: i16 = i16::MIN;

impl Ring {
    fn new(metrics: HistoryMetrics) -> Ring {
        Ring {
            n: metrics.len() as u8,
            shifts: shifts(metrics).map(|s| s as u8),
            layout: Layout::Tiny {
                base: [0; MAX_HISTORY],
                values: VecDeque::new(),
            },
        }
    }

    fn n(&self) -> usize {
        usize::from(self.n)
    }

    /// Slots held.
    fn len(&self) -> usize {
        if self.n == 0 {
            return 0;
        }
        let values = match &self.layout {
            Layout::Tiny { values, .. } => values.len(),
            Layout::Narrow { values, .. } => values.len(),
            Layout::Wide(values) => values.len(),
        };
        values / self.n()
    }

    /// `vals` as `Tiny` offsets from `base` (`n` values, with their `shifts`), if they fit.
    fn tiny(
        n: usize,
        shifts: &[u8; MAX_HISTORY],
        base: &Slot,
        vals: &Slot,
    ) -> Option<[i16; MAX_HISTORY]> {
        let mut out = [TINY_MISSING; MAX_HISTORY];
        for i in 0..n {
            let (v, shift) = (vals[i], u32::from(shifts[i]));
            if v != MISSING {
                let d = v.checked_sub(base[i])?;
                if d & ((1 << shift) - 1) != 0 {
                    return None;
                }
                out[i] = i16::try_from(d >> shift)
                    .ok()
                    .filter(|q| *q != TINY_MISSING)?;
            }
        }
        Some(out)
    }

    /// `vals` as `Narrow` offsets from `base` (`n` values), if they fit.
    fn narrow(n: usize, base: &Slot, vals: &Slot) -> Option<[i32; MAX_HISTORY]> {
        let mut out = [NARROW_MISSING; MAX_HISTORY];
        for i in 0..n {
            if vals[i] != MISSING {
                out[i] = i32::try_from(vals[i].checked_sub(base[i])?)
                    .ok()
                    .filter(|d| *d != NARROW_MISSING)?;
            }
        }
        Some(out)
    }

    fn get(&self, k: usize) -> Option<Slot> {
        let mut out = [MISSING; MAX_HISTORY];
        let n = self.n();
        if k >= self.len() {
            return None;
        }
        for (i, o) in out.iter_mut().enumerate().take(n) {
            let at = k * n + i;
            *o = match &self.layout {
                Layout::Tiny { base, values } => match values[at] {
                    TINY_MISSING => MISSING,
                    q => base[i] + (i64::from(q) << self.shifts[i]),
                },
                Layout::Narrow { base, values } => match values[at] {
                    NARROW_MISSING => MISSING,
                    d => base[i] + i64::from(d),
                },
                Layout::Wide(values) => values[at],
            };
        }
        Some(out)
    }

    /// Moves to the next wider layout that holds every slot (`Tiny` → `Narrow` → `Wide`).
    fn widen(&mut self) {
        let n = self.n();
        let all: Vec<Slot> = (0..self.len()).filter_map(|k| self.get(k)).collect();
        let cap = match &self.layout {
            Layout::Tiny { values, .. } => values.capacity(),
            Layout::Narrow { values, .. } => values.capacity(),
            Layout::Wide(values) => values.capacity(),
        };
        if let Layout::Tiny { base, .. } = &self.layout {
            let base = *base;
            if let Some(slots) = all
                .iter()
                .map(|v| Ring::narrow(n, &base, v))
                .collect::<Option<Vec<_>>>()
            {
                let mut values = VecDeque::with_capacity(cap);
                for s in &slots {
                    values.extend(&s[..n]);
                }
                self.layout = Layout::Narrow { base, values };
                return;
            }
        }
        let mut values = VecDeque::with_capacity(cap);
        for s in &all {
            values.extend(&s[..n]);
        }
        self.layout = Layout::Wide(values);
    }

    /// Appends a slot (`overwrite`: replaces the newest one), growing by doubling up to
    /// `max_points` so a full ring holds no spare capacity.
    fn put(&mut self, vals: Slot, overwrite: bool, max_points: usize) {
        let (n, shifts) = (self.n(), self.shifts);
        loop {
            match &mut self.layout {
                Layout::Tiny { base, values } => {
                    if values.is_empty() {
                        *base = vals.map(|v| if v == MISSING { 0 } else { v });
                    }
                    if let Some(t) = Ring::tiny(n, &shifts, base, &vals) {
                        return put(values, &t[..n], overwrite, max_points);
                    }
                }
                Layout::Narrow { base, values } => {
                    if let Some(d) = Ring::narrow(n, base, &vals) {
                        return put(values, &d[..n], overwrite, max_points);
                    }
                }
                Layout::Wide(values) => return put(values, &vals[..n], overwrite, max_points),
            }
            // The slot does not fit: every slot moves to a wider layout (`Wide` always fits).
            self.widen();
        }
    }

    fn pop_front(&mut self) {
        let n = self.n();
        match &mut self.layout {
            Layout::Tiny { values, .. } => drop(values.drain(..n.min(values.len()))),
            Layout::Narrow { values, .. } => drop(values.drain(..n.min(values.len()))),
            Layout::Wide(values) => drop(values.drain(..n.min(values.len()))),
        }
    }

    fn heap_bytes(&self) -> usize {
        match &self.layout {
            Layout::Tiny { values, .. } => values.capacity() * 2,
            Layout::Narrow { values, .. } => values.capacity() * 4,
            Layout::Wide(values) => values.capacity() * 8,
        }
    }
}

/// Appends one slot (`slot.len()` values) to a flat ring, or replaces the newest.
fn put<T: Copy>(values: &mut VecDeque<T>, slot: &[T], overwrite: bool, max_points: usize) {
    let n = slot.len();
    if overwrite && values.len() >= n {
        let at = values.len() - n;
        for (i, v) in slot.iter().enumerate() {
            values[at + i] = *v;
        }
        return;
    }
    if values.len() >= max_points.max(1) * n {
        // Full: the oldest slot goes first. Appending first would push the ring one past
        // `max_points` and double its capacity, for good.
        values.drain(..n);
    }
    if values.len() + n > values.capacity() {
        let slots = values.len() / n;
        let want = (slots.max(2) * 2).min(max_points.max(1)) * n;
        values.reserve_exact(want.saturating_sub(values.len()));
    }
    values.extend(slot);
}

/// The (metric, resource id) of each labeled value of a series, in order. Shared by every
/// series with the same ones: every container has the same `/` and `logs` filesystems.
/// A thin pointer (8 bytes in a series, `None` included), hashed and compared as the slice.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(crate) struct LabelShape(Arc<Box<[Label]>>);

/// A labeled value's metric and resource id.
type Label = (Metric, Arc<str>);

impl Borrow<[(Metric, Arc<str>)]> for LabelShape {
    fn borrow(&self) -> &[(Metric, Arc<str>)] {
        &self.0
    }
}

impl std::ops::Deref for LabelShape {
    type Target = [(Metric, Arc<str>)];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The label shapes in use, interned (see [`LabelShape`]).
#[derive(Debug, Default)]
pub(crate) struct Shapes(HashSet<LabelShape, foldhash::fast::RandomState>);

impl Shapes {
    /// The shared shape of a set's labeled values.
    fn intern(&mut self, set: &MetricSet) -> LabelShape {
        let shape: Vec<(Metric, Arc<str>)> = set
            .labeled
            .iter()
            .map(|l| (l.metric, Arc::clone(&l.resource_id)))
            .collect();
        if let Some(known) = self.0.get(shape.as_slice()) {
            return known.clone();
        }
        let shape = LabelShape(Arc::new(shape.into_boxed_slice()));
        self.0.insert(shape.clone());
        shape
    }

    /// Forgets the shapes no series uses any more.
    pub fn prune(&mut self) {
        self.0.retain(|s| Arc::strong_count(&s.0) > 1);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Heap bytes of the shapes (names are shared and not counted).
    pub fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .map(|s| 16 + 16 + s.len() * std::mem::size_of::<(Metric, Arc<str>)>())
            .sum()
    }
}

/// A cumulative cpu sample: kubelet sample time and `cpu/usage` in ns.
pub type CpuSample = (Nanos, i64);

/// A time that is not there (`create_time`, the cpu samples, the working set): the series
/// keeps times as plain `Nanos` rather than 16-byte `Option`s.
const NO_TIME: Nanos = Nanos::MIN;

fn some_time<T>(t: Nanos, v: T) -> Option<(Nanos, T)> {
    (t != NO_TIME).then_some((t, v))
}

/// Everything held for one entity.
#[derive(Debug)]
pub(crate) struct Series {
    /// Batch timestamp of the last batch that had this entity.
    pub last_seen: Nanos,
    /// The set's start time ([`NO_TIME`]: none seen).
    create_time: Nanos,
    pub node: Option<Arc<str>>,
    /// Bit `m` set when metric `m` has a latest value (ascending metric order).
    mask: u64,
    /// The latest values, packed ([`pack_into`]): one per bit of `mask`, then the labeled
    /// values in the order of `label_shape`. One allocation for both; about 4.5 bytes a value
    /// against 8 unpacked.
    data: Box<[u8]>,
    /// Labeled values' (metric, resource id) (`None`: no labeled values).
    label_shape: Option<LabelShape>,
    /// History slots, the newest being batch `hist_end - 1` (see [`Ticks`]).
    history: Ring,
    hist_end: u64,
    /// Older and newer cumulative cpu sample (resource metrics API); time [`NO_TIME`]: none.
    cpu: [CpuSample; 2],
    /// Latest working set: (sample time, bytes); time [`NO_TIME`]: none.
    working_set: (Nanos, i64),
}

impl Series {
    pub fn new() -> Series {
        Series {
            last_seen: 0,
            create_time: NO_TIME,
            node: None,
            mask: 0,
            data: Box::new([]),
            label_shape: None,
            history: Ring::new(HistoryMetrics::NONE),
            hist_end: 0,
            cpu: [(NO_TIME, 0); 2],
            working_set: (NO_TIME, 0),
        }
    }

    /// Older and newer cumulative cpu sample.
    pub fn cpu(&self) -> [Option<CpuSample>; 2] {
        self.cpu.map(|(t, v)| some_time(t, v))
    }

    /// Latest working set: (sample time, bytes).
    pub fn working_set(&self) -> Option<(Nanos, i64)> {
        some_time(self.working_set.0, self.working_set.1)
    }

    /// Latest unlabeled values held.
    fn value_count(&self) -> usize {
        self.mask.count_ones() as usize
    }

    /// Takes the entity's set from the batch at `ts`, sequence number `seq`; drops history
    /// slots older than `first` (the oldest batch the store still holds).
    pub fn update(
        &mut self,
        set: &MetricSet,
        ts: Nanos,
        seq: u64,
        first: u64,
        history: HistorySpec,
        shapes: &mut Shapes,
    ) {
        self.last_seen = ts;
        if let Some(created) = set.create_time
            && created != self.create_time
        {
            // A restart: counters start over, so the old cpu samples give no rate.
            if self.create_time != NO_TIME {
                self.cpu = [(NO_TIME, 0); 2];
            }
            self.create_time = created;
        }
        let same_node = match (&self.node, &set.node) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            (a, b) => a.is_none() && b.is_none(),
        };
        if !same_node {
            self.node.clone_from(&set.node);
        }
        self.take_latest(set, shapes);
        self.take_cpu(set);
        if let Some(ws) = set.get(Metric::MemoryWorkingSet) {
            self.working_set = (set.scrape_time, ws.as_i64());
        }
        self.take_history(set, seq, first, history);
    }

    fn take_latest(&mut self, set: &MetricSet, shapes: &mut Shapes) {
        // `MetricSet::set` keeps one value per metric, so the mask counts them exactly.
        let same_shape = match &self.label_shape {
            Some(shape) => {
                shape.len() == set.labeled.len()
                    && shape.iter().zip(&set.labeled).all(|(a, b)| {
                        a.0 == b.metric
                            && (Arc::ptr_eq(&a.1, &b.resource_id) || *a.1 == *b.resource_id)
                    })
            }
            None => set.labeled.is_empty(),
        };
        if !same_shape {
            self.label_shape = (!set.labeled.is_empty()).then(|| shapes.intern(set));
        }
        self.mask = set.values.mask();
        PACK.with_borrow_mut(|buf| {
            // Room for every value at its longest; the buffer only grows.
            let room = (set.values.len() + set.labeled.len()) * PACKED_MAX + PACKED_MAX;
            if buf.len() < room {
                buf.resize(room, 0);
            }
            // Both are in metric order: the values in mask order, then the labeled values.
            let mut at = 0;
            for (m, v) in &set.values {
                at = pack_into(buf, at, m, v);
            }
            for l in &set.labeled {
                at = pack_into(buf, at, l.metric, l.value);
            }
            let packed = buf.get(..at).unwrap_or_default();
            if packed.len() == self.data.len() {
                self.data.copy_from_slice(packed);
            } else {
                self.data = packed.into();
            }
        });
    }

    fn take_cpu(&mut self, set: &MetricSet) {
        let Some(v) = set.get(Metric::CpuUsage) else {
            return;
        };
        let sample = (set.scrape_time, v.as_i64());
        let last = self.cpu[1];
        // The kubelet served a cached sample: nothing new.
        if last.0 == NO_TIME || last.0 < sample.0 {
            self.cpu = [last, sample];
        }
    }

    fn take_history(&mut self, set: &MetricSet, seq: u64, first: u64, spec: HistorySpec) {
        if spec.metrics.is_empty() {
            return;
        }
        if self.history.n() != spec.metrics.len() {
            self.history = Ring::new(spec.metrics);
        }
        let max_points = spec.max_points;
        let mut vals = [MISSING; MAX_HISTORY];
        let mut any = false;
        for (slot, m) in vals.iter_mut().zip(spec.metrics.metrics()) {
            if let Some(v) = set.get(m) {
                *slot = encode(m, v);
                any = true;
            }
        }
        if any {
            let held = self.history.len() as u64;
            if held > 0 && seq + 1 == self.hist_end {
                self.history.put(vals, true, max_points);
            } else if seq >= self.hist_end || held == 0 {
                if held > 0 {
                    // Batches this series missed: empty slots (at most a full ring).
                    let gap = (seq - self.hist_end).min(max_points as u64);
                    for _ in 0..gap {
                        self.history.put([MISSING; MAX_HISTORY], false, max_points);
                    }
                }
                self.history.put(vals, false, max_points);
                self.hist_end = seq + 1;
            }
        }
        let oldest = |s: &Series| s.hist_end - s.history.len() as u64;
        while self.history.len() > max_points || (self.history.len() > 0 && oldest(self) < first) {
            self.history.pop_front();
        }
    }

    /// Metric names with a value (labeled metrics once), in catalogue order.
    pub fn metric_names(&self) -> Vec<&'static str> {
        let mut names: Vec<Metric> = Metric::ALL
            .iter()
            .copied()
            .filter(|m| self.mask & m.bit() != 0)
            .collect();
        for (m, _) in self.label_shape.iter().flat_map(|s| s.iter()) {
            if !names.contains(m) {
                names.push(*m);
            }
        }
        names.sort_unstable();
        names.into_iter().map(Metric::name).collect()
    }

    /// The latest value of an unlabeled metric.
    pub fn latest(&self, metric: Metric) -> Option<Value> {
        if self.mask & metric.bit() == 0 {
            return None;
        }
        let mut data = self.skip(self.mask & (metric.bit() - 1))?;
        unpack_value(&mut data, metric)
    }

    /// The latest value of a labeled metric.
    pub fn latest_labeled(&self, metric: Metric, resource_id: &str) -> Option<Value> {
        let shape = self.label_shape.as_ref()?;
        let mut data = self.skip(self.mask)?;
        for (m, r) in shape.iter() {
            let v = unpack_value(&mut data, *m)?;
            if *m == metric && &**r == resource_id {
                return Some(v);
            }
        }
        None
    }

    /// The packed values after those of the metrics in `mask` (a prefix of `self.mask`).
    fn skip(&self, mut mask: u64) -> Option<&[u8]> {
        let mut data = &*self.data;
        while mask != 0 {
            let m = Metric::ALL[mask.trailing_zeros() as usize];
            mask &= mask - 1;
            unpack_value(&mut data, m)?;
        }
        Some(data)
    }

    /// History points of a long-kept metric (one of the store's `metrics`) within
    /// `[start, end]`, oldest first.
    pub fn history(
        &self,
        metric: Metric,
        metrics: HistoryMetrics,
        ticks: &Ticks,
        start: Nanos,
        end: Nanos,
    ) -> Option<Vec<(Nanos, Value)>> {
        let i = metrics.position(metric)?;
        let first = self.hist_end - self.history.len() as u64;
        Some(
            (0..self.history.len())
                .filter_map(|k| {
                    let ts = ticks.get(first + k as u64)?;
                    let raw = self.history.get(k)?[i];
                    (ts >= start && ts <= end && raw != MISSING).then(|| (ts, decode(metric, raw)))
                })
                .collect(),
        )
    }

    /// Values held (latest values plus history values), for self-metrics.
    pub fn points(&self) -> usize {
        self.value_count()
            + self.label_shape.as_ref().map_or(0, |s| s.len())
            + self.history.len() * self.history.n()
    }

    /// Heap bytes owned by this series (names are shared and not counted).
    pub fn heap_bytes(&self) -> usize {
        self.data.len() + self.history.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: i64 = 4096;

    fn layout(r: &Ring) -> &'static str {
        match r.layout {
            Layout::Tiny { .. } => "tiny",
            Layout::Narrow { .. } => "narrow",
            Layout::Wide(_) => "wide",
        }
    }

    fn all(r: &Ring) -> Vec<[i64; 3]> {
        (0..r.len()).filter_map(|i| r.get(i)).collect()
    }

    #[test]
    fn tiny_shift_follows_history_metrics() {
        assert_eq!(
            crate::model::history::HISTORY_CANDIDATES[0],
            Metric::CpuUsageRate
        );
        assert_eq!(TINY_SHIFT[0], 0, "millicores");
        assert_eq!(TINY_SHIFT[1..], [12, 12], "memory in pages");
        assert_eq!(shifts(HistoryMetrics::ALL), [0, 12, 12]);
        let memory = HistoryMetrics::parse("memory/working_set,memory/usage").expect("valid");
        assert_eq!(shifts(memory), [12, 12, 0]);
    }

    #[test]
    fn a_two_metric_ring_takes_four_bytes_a_slot() {
        let hm = HistoryMetrics::parse("cpu/usage_rate,memory/working_set").expect("valid");
        let mut r = Ring::new(hm);
        for i in 0..100 {
            r.put([i, (1 << 30) + i * PAGE, 99], false, 60);
        }
        assert_eq!(r.len(), 60);
        assert_eq!(r.heap_bytes(), 60 * 2 * 2);
        assert_eq!(r.get(0), Some([40, (1 << 30) + 40 * PAGE, MISSING]));
        assert_eq!(r.get(59), Some([99, (1 << 30) + 99 * PAGE, MISSING]));
        assert_eq!(r.get(60), None);
        r.put([1, 3, 0], false, 60);
        assert_eq!(layout(&r), "narrow");
        assert_eq!(r.len(), 60);
        assert_eq!(r.get(59), Some([1, 3, MISSING]));
        assert_eq!(r.get(0), Some([41, (1 << 30) + 41 * PAGE, MISSING]));
    }

    #[test]
    fn no_history_metrics_hold_no_history() {
        let mut s = Series::new();
        let mut set = MetricSet::new(
            crate::model::SetKey::Node {
                node: Arc::from("n"),
            },
            5,
        );
        set.set(Metric::CpuUsageRate, Value::Int(3));
        let spec = HistorySpec {
            metrics: HistoryMetrics::NONE,
            max_points: 10,
        };
        s.update(&set, 5, 0, 0, spec, &mut Shapes::default());
        assert_eq!(s.history.heap_bytes(), 0);
        assert_eq!(s.points(), 1);
        let ticks = Ticks::default();
        assert_eq!(
            s.history(Metric::CpuUsageRate, spec.metrics, &ticks, 0, 9),
            None
        );
        assert_eq!(s.latest(Metric::CpuUsageRate), Some(Value::Int(3)));
    }

    #[test]
    fn ring_widens_only_when_a_value_does_not_fit_and_keeps_every_value() {
        let mut r = Ring::new(HistoryMetrics::ALL);
        let mut want = Vec::new();
        let mut put = |r: &mut Ring, v: [i64; 3]| {
            r.put(v, false, 100);
            want.push(v);
            assert_eq!(all(r), want);
        };
        // Page multiples within ±128 MiB of the first values, cpu within ±32 cores, gaps.
        let base = 3 << 30;
        put(&mut r, [MISSING, base, base - 7 * PAGE]);
        put(&mut r, [250, base + 32_767 * PAGE, base - 32_767 * PAGE]);
        put(&mut r, [-32_767, MISSING, base]);
        put(&mut r, [32_767, base - 32_767 * PAGE, MISSING]);
        assert_eq!(layout(&r), "tiny");
        assert_eq!(r.heap_bytes(), 4 * 2 * 3);
        // A byte count that is not a whole page.
        put(&mut r, [1, base + 1, base]);
        assert_eq!(layout(&r), "narrow");
        // 8 GiB above the base.
        put(&mut r, [1, base + (8 << 30), base]);
        assert_eq!(layout(&r), "wide");
        put(&mut r, [7, 1, 2]);
        assert_eq!(all(&r).len(), 7);
    }

    #[test]
    fn a_full_ring_keeps_its_capacity() {
        let mut r = Ring::new(HistoryMetrics::ALL);
        for i in 0..200 {
            r.put([i, i * PAGE, MISSING], false, 61);
        }
        assert_eq!(r.len(), 61);
        assert_eq!(r.heap_bytes(), 61 * 2 * 3, "exactly max_points slots");
        assert_eq!(r.get(0), Some([139, 139 * PAGE, MISSING]));
    }

    #[test]
    fn the_missing_marker_is_never_a_value() {
        // i16::MIN pages below the base would read as missing in `Tiny`: it widens instead.
        let mut r = Ring::new(HistoryMetrics::ALL);
        r.put([0, 1 << 30, 1 << 30], false, 10);
        let low = (1 << 30) + i64::from(i16::MIN) * PAGE;
        r.put([0, low, 1 << 30], false, 10);
        assert_eq!(layout(&r), "narrow");
        assert_eq!(all(&r), vec![[0, 1 << 30, 1 << 30], [0, low, 1 << 30]]);
    }

    #[test]
    fn overwrite_replaces_the_newest_slot_in_any_layout() {
        let mut r = Ring::new(HistoryMetrics::ALL);
        r.put([1, PAGE, PAGE], false, 10);
        r.put([2, 2 * PAGE, PAGE], true, 10);
        assert_eq!(all(&r), vec![[2, 2 * PAGE, PAGE]]);
        r.put([3, 5, PAGE], true, 10);
        assert_eq!(layout(&r), "narrow");
        assert_eq!(all(&r), vec![[3, 5, PAGE]]);
    }

    fn labeled(metric: Metric, id: &str, v: i64) -> crate::model::LabeledValue {
        crate::model::LabeledValue {
            metric,
            pvc: None,
            resource_id: Arc::from(id),
            value: Value::Int(v),
        }
    }

    #[test]
    fn latest_values_read_back_as_taken_whatever_their_packed_size() {
        let mut shapes = Shapes::default();
        let mut s = Series::new();
        let key = crate::model::SetKey::Node {
            node: Arc::from("n"),
        };
        // Each tick changes the values' packed sizes (1 to 10 bytes) or their metrics.
        let ticks: [&[(Metric, Value)]; 4] = [
            &[
                (Metric::CpuUsage, Value::Int(1 << 40)),
                (Metric::CpuNodeCapacity, Value::Float(4000.5)),
                (Metric::MemoryUsage, Value::Int(0)),
                (Metric::RestartCount, Value::Int(-1)),
            ],
            &[
                (Metric::CpuUsage, Value::Int(i64::MAX)),
                (Metric::CpuNodeCapacity, Value::Float(f64::NAN)),
                (Metric::MemoryUsage, Value::Int(i64::MIN)),
                (Metric::RestartCount, Value::Int(3)),
            ],
            &[
                (Metric::CpuUsage, Value::Int(7)),
                (Metric::CpuNodeCapacity, Value::Float(-0.0)),
                (Metric::MemoryUsage, Value::Int(300 << 20)),
                (Metric::RestartCount, Value::Int(4)),
            ],
            &[(Metric::MemoryUsage, Value::Int(64))],
        ];
        for (i, values) in ticks.iter().enumerate() {
            let mut set = MetricSet::new(key.clone(), i as Nanos);
            for (m, v) in values.iter() {
                set.set(*m, *v);
            }
            set.labeled = vec![
                labeled(Metric::FilesystemUsage, "/", 1 << 33),
                labeled(Metric::FilesystemUsage, "logs", i as i64),
                labeled(Metric::FilesystemInodes, "logs", -(1 << 20)),
            ];
            let spec = HistorySpec {
                metrics: HistoryMetrics::NONE,
                max_points: 10,
            };
            s.update(&set, i as Nanos, i as u64, 0, spec, &mut shapes);
            for m in Metric::ALL {
                let want = values.iter().find(|(w, _)| w == m).map(|(_, v)| *v);
                match (s.latest(*m), want) {
                    (Some(Value::Float(a)), Some(Value::Float(b))) => {
                        assert_eq!(a.to_bits(), b.to_bits(), "{m:?}")
                    }
                    (got, want) => assert_eq!(got, want, "{m:?}, tick {i}"),
                }
            }
            for l in &set.labeled {
                let got = s.latest_labeled(l.metric, &l.resource_id);
                assert_eq!(got, Some(l.value), "{:?} {}", l.metric, l.resource_id);
            }
            assert_eq!(s.latest_labeled(Metric::FilesystemLimit, "/"), None);
            assert_eq!(
                s.points(),
                values.len() + 3,
                "no history: latest values only"
            );
        }
    }

    /// Appends a packed value to `out` (the tests' shorthand for [`pack_into`]).
    fn pack_value(out: &mut Vec<u8>, metric: Metric, v: Value) {
        let at = out.len();
        out.resize(at + PACKED_MAX, 0xee);
        let end = pack_into(out, at, metric, v);
        out.truncate(end);
    }

    /// The zigzag LEB128 varint of `i`, a byte at a time: what [`pack_into`] must write.
    fn leb128(out: &mut Vec<u8>, i: i64) {
        let mut z = ((i << 1) ^ (i >> 63)) as u64;
        while z >= 0x80 {
            out.push(z as u8 | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    #[test]
    fn varints_of_every_length_are_plain_leb128() {
        let mut edges = vec![0i64, 1, -1, i64::MAX, i64::MIN];
        for k in 1..63 {
            let p = 1i64 << k;
            edges.extend([p - 1, p, p + 1, -p, -p - 1, -p + 1]);
        }
        for i in edges {
            let (mut fast, mut plain) = (Vec::new(), Vec::new());
            pack_value(&mut fast, Metric::CpuUsage, Value::Int(i));
            leb128(&mut plain, i);
            assert_eq!(fast, plain, "{i}");
            let mut data = fast.as_slice();
            assert_eq!(
                unpack_value(&mut data, Metric::CpuUsage),
                Some(Value::Int(i))
            );
            assert!(data.is_empty());
        }
    }

    proptest::proptest! {
        #[test]
        fn packed_values_round_trip(ints in proptest::collection::vec(proptest::prelude::any::<i64>(), 0..20), f in proptest::prelude::any::<f64>()) {
            let mut buf = Vec::new();
            for i in &ints {
                pack_value(&mut buf, Metric::CpuUsage, Value::Int(*i));
            }
            pack_value(&mut buf, Metric::CpuNodeCapacity, Value::Float(f));
            let mut plain = Vec::new();
            for i in &ints {
                leb128(&mut plain, *i);
            }
            proptest::prop_assert_eq!(&buf[..buf.len() - 8], plain.as_slice());
            let mut data = buf.as_slice();
            for i in &ints {
                proptest::prop_assert_eq!(unpack_value(&mut data, Metric::CpuUsage), Some(Value::Int(*i)));
            }
            let back = unpack_value(&mut data, Metric::CpuNodeCapacity);
            proptest::prop_assert!(matches!(back, Some(Value::Float(b)) if b.to_bits() == f.to_bits()));
            proptest::prop_assert!(data.is_empty());
            // A truncated buffer reads as missing, never as a wrong value or a panic.
            let mut short = &buf[..buf.len() - 1];
            for i in &ints {
                let _ = unpack_value(&mut short, Metric::CpuUsage) == Some(Value::Int(*i));
            }
            proptest::prop_assert_eq!(unpack_value(&mut short, Metric::CpuNodeCapacity), None);
        }
    }

    #[test]
    fn small_values_pack_small() {
        let mut buf = Vec::new();
        for (v, len) in [
            (0, 1),
            (-1, 1),
            (63, 1),
            (64, 2),
            (50 << 20, 4),
            (1 << 44, 7),
        ] {
            buf.clear();
            pack_value(&mut buf, Metric::MemoryUsage, Value::Int(v));
            assert_eq!(buf.len(), len, "{v}");
        }
    }
}
