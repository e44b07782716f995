//! Resource usage as `metrics.k8s.io` serves it: cpu as the rate of the cumulative counter
//! between the last two kubelet samples (nanocores), memory as the latest working set.

use super::series::Series;
use crate::model::{Nanos, time::NANOS_PER_SEC};

/// One node's or container's usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The newer cpu sample's time.
    pub timestamp: Nanos,
    /// Real time between the two cpu samples.
    pub window: Nanos,
    pub cpu_nanocores: i64,
    pub memory_bytes: i64,
}

/// The usage, or `None` when cpu or memory is missing, zero, or gives no rate (one sample,
/// time not advancing, counter decreasing: metrics-server's guards).
pub(crate) fn usage(s: &Series) -> Option<Usage> {
    let [Some((t0, v0)), Some((t1, v1))] = s.cpu() else {
        return None;
    };
    let (_, ws) = s.working_set()?;
    if t1 <= t0 || v1 < v0 || v1 == 0 || ws <= 0 {
        return None;
    }
    let rate = i128::from(v1 - v0) * i128::from(NANOS_PER_SEC) / i128::from(t1 - t0);
    Some(Usage {
        timestamp: t1,
        window: t1 - t0,
        cpu_nanocores: i64::try_from(rate).ok()?,
        memory_bytes: ws,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::history::HistoryMetrics;
    use crate::model::{Metric, MetricSet, SetKey, Value};
    use crate::store::series::{HistorySpec, Shapes};

    /// Takes `set` as batch `seq` at `ts`, into a history of `max_points`.
    fn update(s: &mut Series, set: &MetricSet, ts: Nanos, seq: u64, max_points: usize) {
        let spec = HistorySpec {
            metrics: HistoryMetrics::default(),
            max_points,
        };
        s.update(set, ts, seq, 0, spec, &mut Shapes::default());
    }

    fn set(t: Nanos, cpu: i64, ws: i64, start: Nanos) -> MetricSet {
        let mut s = MetricSet::new(
            SetKey::Node {
                node: Arc::from("n"),
            },
            t,
        );
        s.create_time = Some(start);
        s.set(Metric::CpuUsage, Value::Int(cpu));
        s.set(Metric::MemoryWorkingSet, Value::Int(ws));
        s
    }

    #[test]
    fn rate_between_the_last_two_samples() {
        let sec = NANOS_PER_SEC;
        let mut s = Series::new();
        update(&mut s, &set(10 * sec, 1_000, 4096, 1), 10 * sec, 0, 100);
        assert_eq!(usage(&s), None, "one sample gives no rate");
        update(
            &mut s,
            &set(30 * sec, 1_000 + 20 * sec / 2, 8192, 1),
            30 * sec,
            1,
            100,
        );
        let u = usage(&s).expect("rate");
        assert_eq!(u.cpu_nanocores, sec / 2);
        assert_eq!(u.window, 20 * sec);
        assert_eq!(u.timestamp, 30 * sec);
        assert_eq!(u.memory_bytes, 8192);
        // Same sample served again (kubelet cache): the window stays real.
        update(
            &mut s,
            &set(30 * sec, 1_000 + 20 * sec / 2, 8192, 1),
            40 * sec,
            2,
            100,
        );
        assert_eq!(usage(&s).map(|u| u.window), Some(20 * sec));
        // A restart (new start time) drops the old samples.
        update(&mut s, &set(50 * sec, 10, 8192, 2), 50 * sec, 3, 100);
        assert_eq!(usage(&s), None);
    }

    #[test]
    fn decreasing_counter_and_zero_memory_give_nothing() {
        let mut s = Series::new();
        update(&mut s, &set(10, 500, 1, 1), 10, 0, 10);
        update(&mut s, &set(20, 400, 1, 1), 20, 1, 10);
        assert_eq!(usage(&s), None);
        let mut s = Series::new();
        update(&mut s, &set(10, 500, 0, 1), 10, 0, 10);
        update(&mut s, &set(20, 600, 0, 1), 20, 1, 10);
        assert_eq!(usage(&s), None);
    }
}
