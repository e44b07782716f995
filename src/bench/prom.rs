//! Just enough of the Prometheus text format for the collector's self-metrics: sample values
//! by name and labels, and quantiles of a histogram (difference of two scrapes).

use std::collections::BTreeMap;

/// Samples of one exposition, `name{labels}` (as written) → value.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    samples: BTreeMap<String, f64>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (key, value) = l.rsplit_once(' ')?;
                Some((key.trim().to_string(), value.trim().parse().ok()?))
            })
            .collect();
        Exposition { samples }
    }

    /// Whether any sample is named `name` (any labels).
    pub fn has(&self, name: &str) -> bool {
        self.samples
            .keys()
            .any(|k| k == name || k.strip_prefix(name).is_some_and(|r| r.starts_with('{')))
    }

    /// Sum of all samples named `name` (any labels).
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    /// Samples named `name` with their label text (`outcome="success"`), for breakdowns.
    pub fn labelled(&self, name: &str) -> Vec<(String, f64)> {
        let prefix = format!("{name}{{");
        self.samples
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.trim_end_matches('}').into(), *v)))
            .collect()
    }

    /// Cumulative buckets `(le, count)` of histogram `name`, sorted by `le`.
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{le=\"");
        let mut out: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, *v))
            })
            .collect();
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
        heapster_ticks_total 7\n\
        heapster_kubelet_requests_total{outcome=\"success\"} 90\n\
        heapster_kubelet_requests_total{outcome=\"timeout\"} 10\n\
        h_bucket{le=\"0.1\"} 50\n\
        h_bucket{le=\"0.2\"} 100\n\
        h_bucket{le=\"+Inf\"} 100\n\
        h_count 100\n";

    #[test]
    fn sums_and_labels() {
        let e = Exposition::parse(TEXT);
        assert_eq!(e.sum("heapster_ticks_total"), 7.0);
        assert_eq!(e.sum("heapster_kubelet_requests_total"), 100.0);
        assert_eq!(e.labelled("heapster_kubelet_requests_total").len(), 2);
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
