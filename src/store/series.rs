//! One entity's series: compact latest values, a bounded history of the long-kept metrics, and
//! the samples the resource metrics API needs (last two cumulative cpu samples, working set).

use std::borrow::Borrow;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::model::{Metric, MetricSet, Nanos, Value, ValueType};

/// Metrics kept for the whole history (Heapster kept `cpu/usage_rate` and `memory/usage`).
pub const HISTORY_METRICS: [Metric; 3] = [
    Metric::CpuUsageRate,
    Metric::MemoryUsage,
    Metric::MemoryWorkingSet,
];

/// Marks a missing value in a history point.
const MISSING: i64 = i64::MIN;

/// A value stored as 8 bytes; the metric's value type says how to read it back.
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

/// History values, one slot per batch, in the narrowest of three layouts that holds them all:
/// - `Tiny`, 2 bytes a value: offsets from the series' first values, in millicores for
///   `cpu/usage_rate` (±32 cores) and in 4 KiB pages for memory (±128 MiB; kubelets report
///   cgroup memory in whole pages);
/// - `Narrow`, 4 bytes: offsets within ±2 GiB;
/// - `Wide`, 8 bytes.
///
/// A ring moves to a wider layout when a value does not fit, never back.
#[derive(Debug)]
enum Ring {
    Tiny {
        base: [i64; HISTORY_METRICS.len()],
        slots: VecDeque<[i16; HISTORY_METRICS.len()]>,
    },
    Narrow {
        base: [i64; HISTORY_METRICS.len()],
        slots: VecDeque<[i32; HISTORY_METRICS.len()]>,
    },
    Wide(VecDeque<[i64; HISTORY_METRICS.len()]>),
}

const NARROW_MISSING: i32 = i32::MIN;
const TINY_MISSING: i16 = i16::MIN;
/// `Tiny` units as shifts: 1 for `cpu/usage_rate` (millicores), 4 KiB pages for memory.
const TINY_SHIFT: [u32; HISTORY_METRICS.len()] = [0, 12, 12];

impl Ring {
    fn new() -> Ring {
        Ring::Tiny {
            base: [0; HISTORY_METRICS.len()],
            slots: VecDeque::new(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Ring::Tiny { slots, .. } => slots.len(),
            Ring::Narrow { slots, .. } => slots.len(),
            Ring::Wide(slots) => slots.len(),
        }
    }

    fn tiny(
        base: &[i64; HISTORY_METRICS.len()],
        vals: &[i64; HISTORY_METRICS.len()],
    ) -> Option<[i16; HISTORY_METRICS.len()]> {
        let mut out = [TINY_MISSING; HISTORY_METRICS.len()];
        for (((o, v), b), shift) in out.iter_mut().zip(vals).zip(base).zip(TINY_SHIFT) {
            if *v != MISSING {
                let d = v.checked_sub(*b)?;
                if d & ((1 << shift) - 1) != 0 {
                    return None;
                }
                *o = i16::try_from(d >> shift)
                    .ok()
                    .filter(|q| *q != TINY_MISSING)?;
            }
        }
        Some(out)
    }

    fn narrow(
        base: &[i64; HISTORY_METRICS.len()],
        vals: &[i64; HISTORY_METRICS.len()],
    ) -> Option<[i32; HISTORY_METRICS.len()]> {
        let mut out = [NARROW_MISSING; HISTORY_METRICS.len()];
        for ((o, v), b) in out.iter_mut().zip(vals).zip(base) {
            if *v != MISSING {
                *o = i32::try_from(v.checked_sub(*b)?)
                    .ok()
                    .filter(|d| *d != NARROW_MISSING)?;
            }
        }
        Some(out)
    }

    fn get(&self, i: usize) -> Option<[i64; HISTORY_METRICS.len()]> {
        let mut out = [MISSING; HISTORY_METRICS.len()];
        match self {
            Ring::Tiny { base, slots } => {
                let s = slots.get(i)?;
                for (((o, q), b), shift) in out.iter_mut().zip(s).zip(base).zip(TINY_SHIFT) {
                    if *q != TINY_MISSING {
                        *o = b + (i64::from(*q) << shift);
                    }
                }
            }
            Ring::Narrow { base, slots } => {
                let s = slots.get(i)?;
                for ((o, d), b) in out.iter_mut().zip(s).zip(base) {
                    if *d != NARROW_MISSING {
                        *o = b + i64::from(*d);
                    }
                }
            }
            Ring::Wide(slots) => out = *slots.get(i)?,
        }
        Some(out)
    }

    /// Moves to the next wider layout that holds every slot (`Tiny` → `Narrow` → `Wide`).
    fn widen(&mut self) {
        let all: Vec<[i64; HISTORY_METRICS.len()]> =
            (0..self.len()).filter_map(|i| self.get(i)).collect();
        if let Ring::Tiny { base, .. } = self {
            let base = *base;
            if let Some(slots) = all.iter().map(|v| Ring::narrow(&base, v)).collect() {
                *self = Ring::Narrow { base, slots };
                return;
            }
        }
        *self = Ring::Wide(all.into());
    }

    /// Appends a slot (`overwrite`: replaces the newest one), growing by doubling up to
    /// `max_points` so a full ring holds no spare capacity.
    fn put(&mut self, vals: [i64; HISTORY_METRICS.len()], overwrite: bool, max_points: usize) {
        if let Ring::Tiny { base, slots } = self {
            if slots.is_empty() {
                *base = vals.map(|v| if v == MISSING { 0 } else { v });
            }
            match Ring::tiny(base, &vals) {
                Some(t) => return put(slots, t, overwrite, max_points),
                None => self.widen(),
            }
        }
        if let Ring::Narrow { base, slots } = self {
            match Ring::narrow(base, &vals) {
                Some(n) => return put(slots, n, overwrite, max_points),
                None => self.widen(),
            }
        }
        if let Ring::Wide(slots) = self {
            put(slots, vals, overwrite, max_points);
        }
    }

    fn pop_front(&mut self) {
        match self {
            Ring::Tiny { slots, .. } => {
                slots.pop_front();
            }
            Ring::Narrow { slots, .. } => {
                slots.pop_front();
            }
            Ring::Wide(slots) => {
                slots.pop_front();
            }
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Ring::Tiny { slots, .. } => slots.capacity() * 2 * HISTORY_METRICS.len(),
            Ring::Narrow { slots, .. } => slots.capacity() * 4 * HISTORY_METRICS.len(),
            Ring::Wide(slots) => slots.capacity() * 8 * HISTORY_METRICS.len(),
        }
    }
}

fn put<T>(slots: &mut VecDeque<T>, v: T, overwrite: bool, max_points: usize) {
    if overwrite && let Some(last) = slots.back_mut() {
        *last = v;
        return;
    }
    if slots.len() >= max_points.max(1) {
        // Full: the oldest slot goes first. Appending first would push the ring one past
        // `max_points` and double its capacity, for good.
        slots.pop_front();
    }
    if slots.len() == slots.capacity() {
        let want = (slots.len().max(2) * 2).min(max_points.max(1));
        slots.reserve_exact(want.saturating_sub(slots.len()));
    }
    slots.push_back(v);
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
    /// The latest values: one per bit of `mask`, then the labeled values in the order of
    /// `label_shape`. One allocation for both.
    data: Box<[i64]>,
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

fn bit(m: Metric) -> u64 {
    1u64 << (m as u8)
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
            history: Ring::new(),
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
        max_points: usize,
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
        if self.node.as_deref() != set.node.as_deref() {
            self.node.clone_from(&set.node);
        }
        self.take_latest(set, shapes);
        self.take_cpu(set);
        if let Some(ws) = set.get(Metric::MemoryWorkingSet) {
            self.working_set = (set.scrape_time, ws.as_i64());
        }
        self.take_history(set, seq, first, max_points);
    }

    fn take_latest(&mut self, set: &MetricSet, shapes: &mut Shapes) {
        // `MetricSet::set` keeps one value per metric, so the mask counts them exactly.
        let mask = set.values.mask();
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
        let n = mask.count_ones() as usize;
        if mask != self.mask || n != set.values.len() || !same_shape {
            // Both are in metric order: the values in mask order, then the labeled values.
            self.mask = mask;
            let mut data = Vec::with_capacity(n + set.labeled.len());
            data.extend(set.values.iter().map(|(m, v)| encode(m, v)));
            data.extend(set.labeled.iter().map(|l| encode(l.metric, l.value)));
            self.data = data.into_boxed_slice();
            return;
        }
        let (values, labeled) = self.data.split_at_mut(n);
        // Both are in metric order: the i-th value goes to the i-th slot.
        for (slot, (m, v)) in values.iter_mut().zip(&set.values) {
            *slot = encode(m, v);
        }
        for (slot, l) in labeled.iter_mut().zip(&set.labeled) {
            *slot = encode(l.metric, l.value);
        }
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

    fn take_history(&mut self, set: &MetricSet, seq: u64, first: u64, max_points: usize) {
        let mut vals = [MISSING; HISTORY_METRICS.len()];
        let mut any = false;
        for (slot, m) in vals.iter_mut().zip(HISTORY_METRICS) {
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
                        self.history
                            .put([MISSING; HISTORY_METRICS.len()], false, max_points);
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
            .filter(|m| self.mask & bit(*m) != 0)
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
        if self.mask & bit(metric) == 0 {
            return None;
        }
        let idx = (self.mask & (bit(metric) - 1)).count_ones() as usize;
        self.data.get(idx).map(|raw| decode(metric, *raw))
    }

    /// The latest value of a labeled metric.
    pub fn latest_labeled(&self, metric: Metric, resource_id: &str) -> Option<Value> {
        let shape = self.label_shape.as_ref()?;
        shape
            .iter()
            .zip(&self.data[self.value_count()..])
            .find(|((m, r), _)| *m == metric && &**r == resource_id)
            .map(|((m, _), raw)| decode(*m, *raw))
    }

    /// History points of a long-kept metric within `[start, end]`, oldest first.
    pub fn history(
        &self,
        metric: Metric,
        ticks: &Ticks,
        start: Nanos,
        end: Nanos,
    ) -> Option<Vec<(Nanos, Value)>> {
        let i = HISTORY_METRICS.iter().position(|m| *m == metric)?;
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
        self.data.len() + self.history.len() * HISTORY_METRICS.len()
    }

    /// Heap bytes owned by this series (names are shared and not counted).
    pub fn heap_bytes(&self) -> usize {
        self.data.len() * 8 + self.history.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: i64 = 4096;

    fn layout(r: &Ring) -> &'static str {
        match r {
            Ring::Tiny { .. } => "tiny",
            Ring::Narrow { .. } => "narrow",
            Ring::Wide(_) => "wide",
        }
    }

    fn all(r: &Ring) -> Vec<[i64; 3]> {
        (0..r.len()).filter_map(|i| r.get(i)).collect()
    }

    #[test]
    fn tiny_shift_follows_history_metrics() {
        assert_eq!(HISTORY_METRICS[0], Metric::CpuUsageRate);
        assert_eq!(TINY_SHIFT[0], 0, "millicores");
        assert_eq!(TINY_SHIFT[1..], [12, 12], "memory in pages");
    }

    #[test]
    fn ring_widens_only_when_a_value_does_not_fit_and_keeps_every_value() {
        let mut r = Ring::new();
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
        let mut r = Ring::new();
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
        let mut r = Ring::new();
        r.put([0, 1 << 30, 1 << 30], false, 10);
        let low = (1 << 30) + i64::from(i16::MIN) * PAGE;
        r.put([0, low, 1 << 30], false, 10);
        assert_eq!(layout(&r), "narrow");
        assert_eq!(all(&r), vec![[0, 1 << 30, 1 << 30], [0, low, 1 << 30]]);
    }

    #[test]
    fn overwrite_replaces_the_newest_slot_in_any_layout() {
        let mut r = Ring::new();
        r.put([1, PAGE, PAGE], false, 10);
        r.put([2, 2 * PAGE, PAGE], true, 10);
        assert_eq!(all(&r), vec![[2, 2 * PAGE, PAGE]]);
        r.put([3, 5, PAGE], true, 10);
        assert_eq!(layout(&r), "narrow");
        assert_eq!(all(&r), vec![[3, 5, PAGE]]);
    }
}
