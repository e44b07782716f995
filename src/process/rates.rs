//! Rates from cumulative counters, with the guards that keep them honest.
//!
//! A rate exists only when the entity was in both samples, time advanced, its start time did
//! not change (a restart gives a gap) and the counter did not decrease. So no rate is ever
//! negative. The state is rebuilt from each tick; entries of nodes that failed a scrape are
//! carried over for a few ticks so one missed scrape costs one rate, not two.

use std::collections::HashSet;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::decode::{RawSet, SampleTimes};
use crate::model::table::SetTable;
use crate::model::{Metric, MetricSet, Nanos, Value};

const NANOS_PER_SEC_F: f64 = 1e9;

/// Marks an absent value in [`Prev`] (counters and times are never `i64::MIN`); keeps an
/// entry at 120 bytes instead of 200.
const ABSENT: i64 = i64::MIN;

fn pack(v: Option<i64>) -> i64 {
    v.unwrap_or(ABSENT)
}

fn unpack(v: i64) -> Option<i64> {
    (v != ABSENT).then_some(v)
}

#[derive(Clone, Debug)]
struct Prev {
    node: Option<Arc<str>>,
    create_time: i64,
    /// cpu, memory and network sample times.
    times: [i64; 3],
    /// Counter values in the order of [`COUNTERS`].
    counters: [i64; COUNTERS.len()],
    /// When the entry was last refreshed by a successful scrape.
    seen: Nanos,
    /// The tick ([`RateState::begin`]) that last refreshed it.
    generation: u64,
}

/// (cumulative metric, rate metric, which sample time applies).
const COUNTERS: [(Metric, Metric, Group); 7] = [
    (Metric::CpuUsage, Metric::CpuUsageRate, Group::Cpu),
    (
        Metric::MemoryPageFaults,
        Metric::MemoryPageFaultsRate,
        Group::Memory,
    ),
    (
        Metric::MemoryMajorPageFaults,
        Metric::MemoryMajorPageFaultsRate,
        Group::Memory,
    ),
    (Metric::NetworkRx, Metric::NetworkRxRate, Group::Network),
    (
        Metric::NetworkRxErrors,
        Metric::NetworkRxErrorsRate,
        Group::Network,
    ),
    (Metric::NetworkTx, Metric::NetworkTxRate, Group::Network),
    (
        Metric::NetworkTxErrors,
        Metric::NetworkTxErrorsRate,
        Group::Network,
    ),
];

#[derive(Clone, Copy, Debug)]
enum Group {
    Cpu,
    Memory,
    Network,
}

impl Group {
    fn time(self, t: &SampleTimes) -> Option<Nanos> {
        match self {
            Group::Cpu => t.cpu,
            Group::Memory => t.memory,
            Group::Network => t.network,
        }
    }
}

/// The cumulative metric a rate metric is computed from.
pub fn counter_of(rate: Metric) -> Option<Metric> {
    COUNTERS
        .iter()
        .find(|(_, r, _)| *r == rate)
        .map(|(c, _, _)| *c)
}

/// The rate of a counter between two samples, if the guards allow one.
/// `cpu/usage_rate` is integer millicores (truncated, as Heapster); the others per second.
pub fn rate(metric: Metric, old: (Nanos, i64), new: (Nanos, i64)) -> Option<Value> {
    let dt = new.0.checked_sub(old.0)?;
    let dv = new.1.checked_sub(old.1)?;
    if dt <= 0 || dv < 0 {
        return None;
    }
    if metric == Metric::CpuUsageRate {
        let millis = i128::from(dv) * 1000 / i128::from(dt);
        Some(Value::Int(i64::try_from(millis).ok()?))
    } else {
        Some(Value::Float(dv as f64 * NANOS_PER_SEC_F / dt as f64))
    }
}

/// Remembers the previous sample of every entity (updated in place: one table, no copy per
/// tick). The table is a slab sized for the last tick ([`SetTable`]): a hash map of the
/// 176-byte entries doubled in one step and kept up to 7/16 of its buckets empty, about
/// 40 KiB per node at the margin between 1,000 and 5,000 nodes.
#[derive(Default)]
pub struct RateState {
    prev: SetTable<Prev>,
    generation: u64,
    /// Entries after the last tick: room for as many is made at the start of the next.
    last_len: usize,
}

impl RateState {
    pub fn len(&self) -> usize {
        self.prev.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prev.is_empty()
    }

    /// A whole tick in one call (the tests' shorthand for `begin`, `apply_node`, `end`).
    #[cfg(test)]
    pub fn apply(
        &mut self,
        sets: &mut [RawSet],
        scraped_nodes: &[Arc<str>],
        now: Nanos,
        max_age: Nanos,
    ) {
        self.begin();
        self.apply_node(sets, now);
        self.end(scraped_nodes, now, max_age);
    }

    /// Starts a tick: the sets of each node follow ([`RateState::apply_node`]), then
    /// [`RateState::end`].
    pub fn begin(&mut self) {
        self.generation += 1;
        self.prev
            .reserve(self.last_len.saturating_sub(self.prev.len()));
    }

    /// Adds rate values to one node's sets (or any sets of the tick) and remembers them.
    pub fn apply_node(&mut self, sets: &mut [RawSet], now: Nanos) {
        let generation = self.generation;
        for raw in sets.iter_mut() {
            let counters = COUNTERS.map(|(m, _, _)| raw.set.get(m).map(Value::as_i64));
            let fresh = counters.iter().any(Option::is_some);
            if let Some(old) = self.prev.get_mut(&raw.set.key) {
                add_rates(&mut raw.set, &raw.times, &counters, old);
                if fresh {
                    old.node.clone_from(&raw.set.node);
                    old.create_time = pack(raw.set.create_time);
                    old.times = pack_times(&raw.times);
                    old.counters = counters.map(pack);
                    old.seen = now;
                    old.generation = generation;
                }
            } else if fresh {
                self.prev.insert_new(
                    raw.set.key.clone(),
                    Prev {
                        node: raw.set.node.clone(),
                        create_time: pack(raw.set.create_time),
                        times: pack_times(&raw.times),
                        counters: counters.map(pack),
                        seen: now,
                        generation,
                    },
                );
            }
        }
    }

    /// Ends a tick. Entries not refreshed in it survive only while their node is missing from
    /// `scraped_nodes` (a failed scrape) and for at most `max_age`.
    pub fn end(&mut self, scraped_nodes: &[Arc<str>], now: Nanos, max_age: Nanos) {
        let generation = self.generation;
        let scraped: HashSet<&str, RandomState> = scraped_nodes.iter().map(|n| &**n).collect();
        self.prev.retain(|_, old| {
            old.generation == generation
                || (old.node.as_ref().is_some_and(|n| !scraped.contains(&**n))
                    && now - old.seen <= max_age)
        });
        self.last_len = self.prev.len();
    }
}

fn pack_times(t: &SampleTimes) -> [i64; 3] {
    [pack(t.cpu), pack(t.memory), pack(t.network)]
}

fn add_rates(
    set: &mut MetricSet,
    times: &SampleTimes,
    counters: &[Option<i64>; COUNTERS.len()],
    old: &Prev,
) {
    if let (Some(a), Some(b)) = (unpack(old.create_time), set.create_time)
        && a != b
    {
        return; // restarted: a gap, never a negative or inflated rate
    }
    for (i, (_, rate_metric, group)) in COUNTERS.iter().enumerate() {
        let (Some(new_v), Some(old_v)) = (counters[i], unpack(old.counters[i])) else {
            continue;
        };
        let (Some(new_t), Some(old_t)) = (group.time(times), unpack(old.times[*group as usize]))
        else {
            continue;
        };
        if let Some(v) = rate(*rate_metric, (old_t, old_v), (new_t, new_v)) {
            set.set(*rate_metric, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SetKey;
    use proptest::prelude::*;

    const S: Nanos = 1_000_000_000;

    #[test]
    fn cpu_rate_is_millicores() {
        // 0.25 cores for 10 s = 2.5e9 ns
        assert_eq!(
            rate(Metric::CpuUsageRate, (0, 0), (10 * S, 2_500_000_000)),
            Some(Value::Int(250))
        );
        assert_eq!(
            rate(Metric::NetworkRxRate, (0, 100), (2 * S, 300)),
            Some(Value::Float(100.0))
        );
    }

    #[test]
    fn guards() {
        assert_eq!(
            rate(Metric::CpuUsageRate, (10 * S, 5), (10 * S, 9)),
            None,
            "no time advance"
        );
        assert_eq!(
            rate(Metric::CpuUsageRate, (0, 9), (S, 5)),
            None,
            "counter decreased"
        );
        assert_eq!(
            rate(Metric::CpuUsageRate, (S, 5), (0, 9)),
            None,
            "time went back"
        );
    }

    fn node_set(node: &Arc<str>, t: Nanos, cpu_ns: i64) -> RawSet {
        let mut set = MetricSet::new(
            SetKey::Node {
                node: Arc::clone(node),
            },
            t,
        );
        set.node = Some(Arc::clone(node));
        set.set(Metric::CpuUsage, Value::Int(cpu_ns));
        RawSet {
            set,
            times: SampleTimes {
                cpu: Some(t),
                ..SampleTimes::default()
            },
            own: 0,
        }
    }

    #[test]
    fn a_missed_scrape_costs_one_rate_not_two() {
        let n: Arc<str> = Arc::from("n1");
        let mut state = RateState::default();
        let mut a = vec![node_set(&n, 0, 0)];
        state.apply(&mut a, std::slice::from_ref(&n), 0, 100 * S);
        // Tick 2: the node failed; its previous sample is kept.
        state.apply(&mut [], &[], 10 * S, 100 * S);
        assert_eq!(state.len(), 1);
        // Tick 3: a rate over the 20 s since the last good sample.
        let mut c = vec![node_set(&n, 20 * S, 10 * S)];
        state.apply(&mut c, std::slice::from_ref(&n), 20 * S, 100 * S);
        assert_eq!(c[0].set.get(Metric::CpuUsageRate), Some(Value::Int(500)));
        // Too old: forgotten.
        state.apply(&mut [], &[], 200 * S, 100 * S);
        assert!(state.is_empty());
    }

    proptest! {
        #[test]
        fn never_negative(t0 in any::<i64>(), t1 in any::<i64>(), v0 in any::<i64>(), v1 in any::<i64>()) {
            for m in [Metric::CpuUsageRate, Metric::NetworkTxRate] {
                if let Some(v) = rate(m, (t0, v0), (t1, v1)) {
                    prop_assert!(v.as_f64() >= 0.0);
                }
            }
        }
    }
}
