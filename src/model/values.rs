//! The unlabeled values of a metric set, packed: a presence mask over the metric catalogue and
//! 8 bytes per value (the bits of an `i64` or an `f64`, a second mask says which), in metric
//! order. A set holds about 20 values; packed they take 8 bytes each instead of 24 for a
//! `(Metric, Value)` pair, which is most of a tick's memory in flight.

use super::Value;
use super::metric::Metric;

const _: () = assert!(Metric::ALL.len() <= 64, "the masks hold one bit per metric");

fn raw_value(float: bool, raw: u64) -> Value {
    if float {
        Value::Float(f64::from_bits(raw))
    } else {
        Value::Int(raw as i64)
    }
}

/// At most one value per metric, iterated in metric (catalogue) order.
#[derive(Clone, Default)]
pub struct Values {
    /// Bit `m` set when metric `m` has a value.
    mask: u64,
    /// Bit `m` set when that value is a float.
    floats: u64,
    /// One value per set bit of `mask`, in bit order.
    data: Vec<u64>,
}

impl Values {
    pub const fn new() -> Values {
        Values {
            mask: 0,
            floats: 0,
            data: Vec::new(),
        }
    }

    pub fn with_capacity(n: usize) -> Values {
        Values {
            data: Vec::with_capacity(n),
            ..Values::new()
        }
    }

    pub fn reserve_exact(&mut self, n: usize) {
        self.data.reserve_exact(n);
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Bit `m` set for each metric `m` present.
    pub fn mask(&self) -> u64 {
        self.mask
    }

    pub fn contains(&self, m: Metric) -> bool {
        self.mask & m.bit() != 0
    }

    /// Position of metric `m`'s value in `data` (whether or not it is present).
    fn index(&self, m: Metric) -> usize {
        (self.mask & (m.bit() - 1)).count_ones() as usize
    }

    fn decode(&self, m: Metric, raw: u64) -> Value {
        raw_value(self.floats & m.bit() != 0, raw)
    }

    pub fn get(&self, m: Metric) -> Option<Value> {
        if !self.contains(m) {
            return None;
        }
        let raw = *self.data.get(self.index(m))?;
        Some(self.decode(m, raw))
    }

    /// Sets a value, replacing any previous value of the same metric.
    pub fn set(&mut self, m: Metric, v: Value) {
        let b = m.bit();
        if self.mask < b {
            // Above every value held (sets are mostly built in metric order): appended, with
            // no count of the bits below and nothing to move.
            self.mask |= b;
            self.data.push(0);
            return self.put(self.data.len() - 1, b, v);
        }
        let i = self.index(m);
        if self.mask & b == 0 {
            self.mask |= b;
            self.data.insert(i, 0);
        }
        self.put(i, b, v);
    }

    /// Adds to a value (or sets it when absent).
    pub fn add(&mut self, m: Metric, v: Value) {
        let sum = match self.get(m) {
            Some(old) => old.plus(v),
            None => v,
        };
        self.set(m, sum);
    }

    /// Adds `other`'s values of the metrics in `metrics` (a mask) to these, as [`Values::add`]
    /// of each would: summed where both have one, taken where only `other` has.
    pub fn add_from(&mut self, other: &Values, metrics: u64) {
        self.merge(other.mask & metrics, |b, own| {
            let at = (other.mask & (b - 1)).count_ones() as usize;
            let theirs = raw_value(other.floats & b != 0, other.data[at]);
            match own {
                Some(v) => v.plus(theirs),
                None => theirs,
            }
        });
    }

    /// Values for the metrics in `incoming` (a mask), `value(bit, held)` each. The values above
    /// the highest incoming metric move up at once by the number of new ones; from there down,
    /// one pass writes from the end (so that no value is overwritten before it is read) until
    /// every new one is in; the values left are replaced in place. No insert moving the values
    /// above it per value (what `add` of each costs), and when nothing is new (a pod's second
    /// container, a namespace's next pod), no move at all.
    fn merge(&mut self, incoming: u64, mut value: impl FnMut(u64, Option<Value>) -> Value) {
        let mut new = incoming & !self.mask;
        let mut rest = incoming;
        if new != 0 {
            let len = self.data.len();
            let count = new.count_ones() as usize;
            let top = 63 - incoming.leading_zeros();
            let above = self.mask.checked_shr(top + 1).unwrap_or(0).count_ones() as usize;
            let mut mine = len - above;
            self.data.resize(len + count, 0);
            self.data.copy_within(mine..len, mine + count);
            let mut write = mine + count;
            let mut bits = (self.mask | incoming) & (u64::MAX >> (63 - top));
            while new != 0 {
                let b = 1u64 << (63 - bits.leading_zeros());
                bits &= !b;
                write -= 1;
                if self.mask & b != 0 {
                    // Held (and if incoming too, replaced below, in place): moved up.
                    mine -= 1;
                    self.data[write] = self.data[mine];
                    continue;
                }
                new &= !b;
                rest &= !b;
                self.mask |= b;
                let v = value(b, None);
                self.put(write, b, v);
            }
        }
        // What is left of `incoming` is held: replaced in place.
        while rest != 0 {
            let b = rest & rest.wrapping_neg();
            rest &= rest - 1;
            let at = (self.mask & (b - 1)).count_ones() as usize;
            let held = raw_value(self.floats & b != 0, self.data[at]);
            let v = value(b, Some(held));
            self.put(at, b, v);
        }
    }

    /// Writes `v` at `at`, the place of metric bit `b`, and its type in `floats`.
    fn put(&mut self, at: usize, b: u64, v: Value) {
        self.data[at] = match v {
            Value::Int(i) => {
                self.floats &= !b;
                i as u64
            }
            Value::Float(f) => {
                self.floats |= b;
                f.to_bits()
            }
        };
    }

    pub fn remove(&mut self, m: Metric) -> Option<Value> {
        let old = self.get(m)?;
        let i = self.index(m);
        self.data.remove(i);
        self.mask &= !m.bit();
        self.floats &= !m.bit();
        Some(old)
    }

    /// `(metric, value)` pairs in metric order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            values: self,
            rest: self.mask,
            next: 0,
        }
    }
}

/// Iterator over `(metric, value)` pairs in metric order.
pub struct Iter<'a> {
    values: &'a Values,
    rest: u64,
    next: usize,
}

impl Iterator for Iter<'_> {
    type Item = (Metric, Value);

    fn next(&mut self) -> Option<(Metric, Value)> {
        if self.rest == 0 {
            return None;
        }
        let m = Metric::ALL[self.rest.trailing_zeros() as usize];
        self.rest &= self.rest - 1;
        let raw = *self.values.data.get(self.next)?;
        self.next += 1;
        Some((m, self.values.decode(m, raw)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a Values {
    type Item = (Metric, Value);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl Extend<(Metric, Value)> for Values {
    fn extend<I: IntoIterator<Item = (Metric, Value)>>(&mut self, iter: I) {
        for (m, v) in iter {
            self.set(m, v);
        }
    }
}

impl FromIterator<(Metric, Value)> for Values {
    fn from_iter<I: IntoIterator<Item = (Metric, Value)>>(iter: I) -> Values {
        let mut values = Values::new();
        values.extend(iter);
        values
    }
}

impl<const N: usize> From<[(Metric, Value); N]> for Values {
    fn from(pairs: [(Metric, Value); N]) -> Values {
        pairs.into_iter().collect()
    }
}

/// Equal when they hold the same metrics with equal values (`Value`'s equality: NaN ≠ NaN).
impl PartialEq for Values {
    fn eq(&self, other: &Values) -> bool {
        self.mask == other.mask && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_replace_remove_in_metric_order() {
        let mut v = Values::new();
        assert!(v.is_empty());
        v.set(Metric::MemoryUsage, Value::Int(5));
        v.set(Metric::CpuUsage, Value::Int(-7));
        v.set(Metric::CpuUsageRate, Value::Float(1.5));
        assert_eq!(v.len(), 3);
        assert_eq!(v.get(Metric::CpuUsage), Some(Value::Int(-7)));
        assert_eq!(v.get(Metric::CpuUsageRate), Some(Value::Float(1.5)));
        assert_eq!(v.get(Metric::NetworkRx), None);
        // Replacing changes the value and its type, not the count.
        v.set(Metric::CpuUsageRate, Value::Int(2));
        assert_eq!(v.get(Metric::CpuUsageRate), Some(Value::Int(2)));
        assert_eq!(v.len(), 3);
        v.add(Metric::MemoryUsage, Value::Int(10));
        v.add(Metric::NetworkRx, Value::Int(1));
        assert_eq!(v.get(Metric::MemoryUsage), Some(Value::Int(15)));
        let order: Vec<Metric> = v.iter().map(|(m, _)| m).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        assert_eq!(v.iter().len(), 4);
        assert_eq!(v.remove(Metric::CpuUsage), Some(Value::Int(-7)));
        assert_eq!(v.remove(Metric::CpuUsage), None);
        assert_eq!(v.get(Metric::MemoryUsage), Some(Value::Int(15)));
        assert_eq!(v.len(), 3);
    }

    /// `add_from` gives what `add` of each value does, for random sets, masks and types.
    #[test]
    fn add_from_is_add_of_each_value() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let n = Metric::ALL.len();
        let random = |next: &mut dyn FnMut() -> u64| {
            let mut v = Values::new();
            let (mask, floats) = (next(), next());
            for (i, m) in Metric::ALL.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    let x = (next() % 1000) as i64 - 500;
                    let val = if floats & (1 << i) != 0 {
                        Value::Float(x as f64 / 4.0)
                    } else if x == 0 {
                        Value::Int(i64::MAX)
                    } else {
                        Value::Int(x)
                    };
                    v.set(*m, val);
                }
            }
            v
        };
        for round in 0..2000 {
            let mine = random(&mut next);
            let theirs = random(&mut next);
            let metrics = match round % 4 {
                0 => u64::MAX,
                1 => 0,
                _ => next() & ((1u64 << n) - 1),
            };
            let mut want = mine.clone();
            for (m, v) in &theirs {
                if metrics & m.bit() != 0 {
                    want.add(m, v);
                }
            }
            let mut got = mine.clone();
            got.add_from(&theirs, metrics);
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "round {round}");
            assert_eq!(
                (got.mask, got.floats, got.len()),
                (want.mask, want.floats, want.len())
            );
        }
    }

    #[test]
    fn every_metric_round_trips_with_extreme_values() {
        let mut v = Values::new();
        for (i, m) in Metric::ALL.iter().enumerate().rev() {
            let val = if i % 2 == 0 {
                Value::Int(if i % 4 == 0 { i64::MIN } else { i64::MAX })
            } else {
                Value::Float(-(i as f64) / 3.0)
            };
            v.set(*m, val);
        }
        assert_eq!(v.len(), Metric::ALL.len());
        for (i, (m, val)) in v.iter().enumerate() {
            assert_eq!(m, Metric::ALL[i]);
            assert_eq!(v.get(m), Some(val));
        }
        // `v` was built from the last metric down (each `set` an insert at the front), the
        // copy in metric order (each `set` an append): the same values.
        let copy: Values = v.iter().collect();
        assert_eq!(copy, v);
    }

    #[test]
    fn nan_is_kept_and_unequal_like_value() {
        let v = Values::from([(Metric::CpuUsageRate, Value::Float(f64::NAN))]);
        assert!(matches!(v.get(Metric::CpuUsageRate), Some(Value::Float(f)) if f.is_nan()));
        assert_ne!(v, v.clone());
    }
}
