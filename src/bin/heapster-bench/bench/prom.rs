//! The collector's self-metrics as the benchmark reads them (parsed by `prometheus-parse`):
//! sample values by name and labels, and quantiles of a histogram (difference of two scrapes).

use prometheus_parse::{Sample, Scrape, Value};

/// The samples of one exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    samples: Vec<Sample>,
}

/// A counter's, a gauge's or an untyped sample's value.
fn scalar(value: &Value) -> Option<f64> {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
        Value::Histogram(_) | Value::Summary(_) => None,
    }
}

impl Exposition {
    /// An exposition that does not parse has no samples.
    pub fn parse(text: &str) -> Exposition {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let samples = Scrape::parse(lines).map(|s| s.samples).unwrap_or_default();
        Exposition { samples }
    }

    /// Adds `other`'s samples to these (several collectors' expositions as one: sums, label
    /// breakdowns and histogram buckets add up).
    pub fn merge(&mut self, other: &Exposition) {
        self.samples.extend(other.samples.iter().cloned());
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| s.metric == name)
    }

    /// Whether any sample is named `name` (any labels).
    pub fn has(&self, name: &str) -> bool {
        self.named(name).next().is_some()
    }

    /// Sum of all samples named `name` (any labels).
    pub fn sum(&self, name: &str) -> f64 {
        self.named(name).filter_map(|s| scalar(&s.value)).sum()
    }

    /// Samples named `name` with their label text (`outcome="success"`), for breakdowns, sorted
    /// by it.
    pub fn labelled(&self, name: &str) -> Vec<(String, f64)> {
        let mut out = std::collections::BTreeMap::<String, f64>::new();
        for s in self.named(name).filter(|s| !s.labels.is_empty()) {
            if let Some(v) = scalar(&s.value) {
                *out.entry(s.labels.to_string()).or_default() += v;
            }
        }
        out.into_iter().collect()
    }

    /// Cumulative buckets `(le, count)` of histogram `name` (without labels), sorted by `le`.
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = Vec::new();
        for s in self.named(name).filter(|s| s.labels.is_empty()) {
            if let Value::Histogram(h) = &s.value {
                for b in h {
                    match out.iter_mut().find(|(le, _)| *le == b.less_than) {
                        Some((_, count)) => *count += b.count,
                        None => out.push((b.less_than, b.count)),
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// Buckets observed between two scrapes of the same histogram.
pub fn bucket_delta(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|&(le, n)| {
            let old = before
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |(_, c)| *c);
            (le, n - old)
        })
        .collect()
}

/// Quantile `q` of cumulative buckets, interpolated linearly inside the bucket like PromQL's
/// `histogram_quantile`; None without observations. A quantile in the `+Inf` bucket reports the
/// largest finite bound.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = count - below;
            let frac = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return Some(lower + (le - lower) * frac);
        }
        (lower, below) = (le, count);
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x y\n\
        # TYPE heapster_ticks counter\n\
        heapster_ticks_total 7\n\
        heapster_kubelet_requests_total{outcome=\"success\"} 90\n\
        heapster_kubelet_requests_total{outcome=\"timeout\"} 10\n\
        # TYPE h histogram\n\
        h_bucket{le=\"0.1\"} 50\n\
        h_bucket{le=\"0.2\"} 100\n\
        h_bucket{le=\"+Inf\"} 100\n\
        h_count 100\n";

    #[test]
    fn sums_and_labels() {
        let e = Exposition::parse(TEXT);
        assert_eq!(e.sum("heapster_ticks_total"), 7.0);
        assert_eq!(e.sum("heapster_kubelet_requests_total"), 100.0);
        assert_eq!(
            e.labelled("heapster_kubelet_requests_total"),
            [
                ("outcome=\"success\"".to_string(), 90.0),
                ("outcome=\"timeout\"".to_string(), 10.0)
            ]
        );
    }

    #[test]
    fn quantiles_interpolate() {
        let b = Exposition::parse(TEXT).buckets("h");
        assert_eq!(b.len(), 3);
        let q = |q| quantile(&b, q).expect("observations");
        assert!((q(0.5) - 0.1).abs() < 1e-9);
        assert!((q(0.75) - 0.15).abs() < 1e-9);
        assert!((q(0.25) - 0.05).abs() < 1e-9);
        assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        assert_eq!(
            quantile(&[(1.0, 1.0), (f64::INFINITY, 10.0)], 0.99),
            Some(1.0)
        );
    }

    #[test]
    fn deltas() {
        let before = [(0.1, 5.0), (f64::INFINITY, 6.0)];
        let after = [(0.1, 15.0), (f64::INFINITY, 20.0)];
        assert_eq!(
            bucket_delta(&before, &after),
            vec![(0.1, 10.0), (f64::INFINITY, 14.0)]
        );
    }
}
