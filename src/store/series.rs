//! One entity's series: compact latest values, a bounded history of the long-kept metrics, and
//! the samples the resource metrics API needs (last two cumulative cpu samples, working set).

use std::collections::VecDeque;
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

/// One history point: the batch timestamp and a value per [`HISTORY_METRICS`] entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistoryPoint {
    pub ts: Nanos,
    pub vals: [i64; HISTORY_METRICS.len()],
}

/// A cumulative cpu sample: kubelet sample time and `cpu/usage` in ns.
pub type CpuSample = (Nanos, i64);

/// Everything held for one entity.
#[derive(Debug)]
pub(crate) struct Series {
    /// Batch timestamp of the last batch that had this entity.
    pub last_seen: Nanos,
    pub create_time: Option<Nanos>,
    pub node: Option<Arc<str>>,
    /// Bit `m` set when metric `m` is in `values` (ascending metric order).
    mask: u64,
    values: Box<[i64]>,
    labeled: Box<[(Metric, Arc<str>, i64)]>,
    history: VecDeque<HistoryPoint>,
    /// Older and newer cumulative cpu sample (resource metrics API).
    pub cpu: [Option<CpuSample>; 2],
    /// Latest working set: (sample time, bytes).
    pub working_set: Option<(Nanos, i64)>,
}

fn bit(m: Metric) -> u64 {
    1u64 << (m as u8)
}

impl Series {
    pub fn new() -> Series {
        Series {
            last_seen: 0,
            create_time: None,
            node: None,
            mask: 0,
            values: Box::new([]),
            labeled: Box::new([]),
            history: VecDeque::new(),
            cpu: [None, None],
            working_set: None,
        }
    }

    /// Takes the entity's set from the batch at `ts`; drops history older than `keep`.
    pub fn update(&mut self, set: &MetricSet, ts: Nanos, keep: Nanos, max_points: usize) {
        self.last_seen = ts;
        if set.create_time.is_some() && set.create_time != self.create_time {
            // A restart: counters start over, so the old cpu samples give no rate.
            if self.create_time.is_some() {
                self.cpu = [None, None];
            }
            self.create_time = set.create_time;
        }
        if self.node.as_deref() != set.node.as_deref() {
            self.node.clone_from(&set.node);
        }
        self.take_latest(set);
        self.take_cpu(set);
        if let Some(ws) = set.get(Metric::MemoryWorkingSet) {
            self.working_set = Some((set.scrape_time, ws.as_i64()));
        }
        self.take_history(set, ts, keep, max_points);
    }

    fn take_latest(&mut self, set: &MetricSet) {
        // `MetricSet::set` keeps one value per metric, so the mask counts them exactly.
        let mask = set.values.iter().fold(0, |acc, (m, _)| acc | bit(*m));
        if mask != self.mask || self.values.len() != set.values.len() {
            self.mask = mask;
            self.values = vec![0; mask.count_ones() as usize].into_boxed_slice();
        }
        for (m, v) in &set.values {
            let idx = (mask & (bit(*m) - 1)).count_ones() as usize;
            if let Some(slot) = self.values.get_mut(idx) {
                *slot = encode(*m, *v);
            }
        }
        let same_shape = self.labeled.len() == set.labeled.len()
            && self
                .labeled
                .iter()
                .zip(&set.labeled)
                .all(|(a, b)| a.0 == b.metric && *a.1 == *b.resource_id);
        if same_shape {
            for (slot, l) in self.labeled.iter_mut().zip(&set.labeled) {
                slot.2 = encode(l.metric, l.value);
            }
        } else {
            self.labeled = set
                .labeled
                .iter()
                .map(|l| {
                    (
                        l.metric,
                        Arc::clone(&l.resource_id),
                        encode(l.metric, l.value),
                    )
                })
                .collect();
        }
    }

    fn take_cpu(&mut self, set: &MetricSet) {
        let Some(v) = set.get(Metric::CpuUsage) else {
            return;
        };
        let sample = (set.scrape_time, v.as_i64());
        match self.cpu[1] {
            // The kubelet served a cached sample: nothing new.
            Some((t, _)) if t >= sample.0 => {}
            last => self.cpu = [last, Some(sample)],
        }
    }

    fn take_history(&mut self, set: &MetricSet, ts: Nanos, keep: Nanos, max_points: usize) {
        let mut vals = [MISSING; HISTORY_METRICS.len()];
        let mut any = false;
        for (slot, m) in vals.iter_mut().zip(HISTORY_METRICS) {
            if let Some(v) = set.get(m) {
                *slot = encode(m, v);
                any = true;
            }
        }
        if any {
            match self.history.back_mut() {
                Some(last) if last.ts >= ts => *last = HistoryPoint { ts, vals },
                _ => {
                    if self.history.len() == self.history.capacity() {
                        let want = (self.history.len().max(2) * 2).min(max_points.max(1));
                        self.history
                            .reserve_exact(want.saturating_sub(self.history.len()));
                    }
                    self.history.push_back(HistoryPoint { ts, vals });
                }
            }
        }
        while self.history.len() > max_points
            || self.history.front().is_some_and(|p| ts - p.ts > keep)
        {
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
        for (m, _, _) in self.labeled.iter() {
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
        self.values.get(idx).map(|raw| decode(metric, *raw))
    }

    /// The latest value of a labeled metric.
    pub fn latest_labeled(&self, metric: Metric, resource_id: &str) -> Option<Value> {
        self.labeled
            .iter()
            .find(|(m, r, _)| *m == metric && &**r == resource_id)
            .map(|(m, _, raw)| decode(*m, *raw))
    }

    /// History points of a long-kept metric within `[start, end]`, oldest first.
    pub fn history(&self, metric: Metric, start: Nanos, end: Nanos) -> Option<Vec<(Nanos, Value)>> {
        let i = HISTORY_METRICS.iter().position(|m| *m == metric)?;
        Some(
            self.history
                .iter()
                .filter(|p| p.ts >= start && p.ts <= end && p.vals[i] != MISSING)
                .map(|p| (p.ts, decode(metric, p.vals[i])))
                .collect(),
        )
    }

    /// Values held (latest values plus history values), for self-metrics.
    pub fn points(&self) -> usize {
        self.values.len() + self.labeled.len() + self.history.len() * HISTORY_METRICS.len()
    }

    /// Heap bytes owned by this series (names are shared and not counted).
    pub fn heap_bytes(&self) -> usize {
        self.values.len() * 8
            + self.labeled.len() * std::mem::size_of::<(Metric, Arc<str>, i64)>()
            + self.history.capacity() * std::mem::size_of::<HistoryPoint>()
    }
}
