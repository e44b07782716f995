//! The unlabeled values of a metric set, packed: a presence mask over the metric catalogue and
//! 8 bytes per value (the bits of an `i64` or an `f64`, a second mask says which), in metric
//! order. A set holds about 20 values; packed they take 8 bytes each instead of 24 for a
//! `(Metric, Value)` pair, which is most of a tick's memory in flight.

use super::Value;
use super::metric::Metric;

const _: () = assert!(Metric::ALL.len() <= 64, "the masks hold one bit per metric");

fn bit(m: Metric) -> u64 {
    1u64 << (m as u8)
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
        self.mask & bit(m) != 0
    }

    /// Position of metric `m`'s value in `data` (whether or not it is present).
    fn index(&self, m: Metric) -> usize {
        (self.mask & (bit(m) - 1)).count_ones() as usize
    }

    fn decode(&self, m: Metric, raw: u64) -> Value {
        if self.floats & bit(m) != 0 {
            Value::Float(f64::from_bits(raw))
        } else {
            Value::Int(raw as i64)
        }
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
        let raw = match v {
            Value::Int(i) => {
                self.floats &= !bit(m);
                i as u64
            }
            Value::Float(f) => {
                self.floats |= bit(m);
                f.to_bits()
            }
        };
        let i = self.index(m);
        if self.contains(m) {
            self.data[i] = raw;
        } else {
            self.mask |= bit(m);
            self.data.insert(i, raw);
        }
    }

    /// Adds to a value (or sets it when absent).
    pub fn add(&mut self, m: Metric, v: Value) {
        let sum = match self.get(m) {
            Some(old) => old.plus(v),
            None => v,
        };
        self.set(m, sum);
    }

    pub fn remove(&mut self, m: Metric) -> Option<Value> {
        let old = self.get(m)?;
        let i = self.index(m);
        self.data.remove(i);
        self.mask &= !bit(m);
        self.floats &= !bit(m);
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
