//! Rates from cumulative counters, with the guards that keep them honest.
//!
//! A rate exists only when the entity was in both samples, time advanced, its start time did
//! not change (a restart gives a gap) and the counter did not decrease. So no rate is ever
//! negative. Pressure (the share of a tick some or all tasks were stalled, in percent) is the
//! rate of the kubelet's pressure stall totals under the same guards, and never above 100.
//! The state is rebuilt from each tick; entries of nodes that failed a scrape are carried over
//! for a few ticks so one missed scrape costs one rate, not two.

use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::Arc;

use foldhash::fast::RandomState;

use crate::model::sample::{PressureTotals, RawSet, SampleTimes};
use crate::model::{FastMap, Metric, MetricSet, Nanos, SetKey, Value};

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

/// One entity's previous sample: 152 bytes.
#[derive(Clone, Copy, Debug)]
struct Prev {
    /// A 64-bit hash of the entity's key ([`key_hash`]). Entries are looked up among their
    /// node's only (about 100), where two keys with the same hash are as likely as 1 in 10^15.
    key: u64,
    create_time: i64,
    /// cpu, memory, network and io sample times.
    times: [i64; 4],
    /// Counter values in the order of [`COUNTERS`].
    counters: [i64; COUNTERS.len()],
    /// Pressure stall totals in the order of [`PRESSURES`].
    pressure: [i64; PRESSURES.len()],
}

/// The previous samples of one node's entities, in the order its kubelet listed them.
#[derive(Debug, Default)]
struct NodeRates {
    entries: Vec<Prev>,
    /// When the node was last scraped successfully.
    seen: Nanos,
    /// The tick ([`RateState::begin`]) that last refreshed it.
    generation: u64,
}

/// The key's hash, the same for the life of the process.
fn key_hash(key: &SetKey) -> u64 {
    foldhash::quality::FixedState::with_seed(0x6865_6170_7374_6572).hash_one(key)
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

/// (pressure metric, which sample time applies), in the order of [`PressureTotals`].
pub const PRESSURES: [(Metric, Group); 6] = [
    (Metric::CpuPressureSome, Group::Cpu),
    (Metric::CpuPressureFull, Group::Cpu),
    (Metric::MemoryPressureSome, Group::Memory),
    (Metric::MemoryPressureFull, Group::Memory),
    (Metric::IoPressureSome, Group::Io),
    (Metric::IoPressureFull, Group::Io),
];

/// The pressure metrics as a mask.
pub const PRESSURE_MASK: u64 = Metric::mask(&[
    PRESSURES[0].0,
    PRESSURES[1].0,
    PRESSURES[2].0,
    PRESSURES[3].0,
    PRESSURES[4].0,
    PRESSURES[5].0,
]);

#[derive(Clone, Copy, Debug)]
pub enum Group {
    Cpu,
    Memory,
    Network,
    Io,
}

impl Group {
    fn time(self, t: &SampleTimes) -> Option<Nanos> {
        match self {
            Group::Cpu => t.cpu,
            Group::Memory => t.memory,
            Group::Network => t.network,
            Group::Io => t.io,
        }
    }
}

/// The rate metrics computed from the counters in `counters` (masks of metric bits).
pub fn rates_of(counters: u64) -> u64 {
    COUNTERS
        .iter()
        .filter(|(c, _, _)| counters & c.bit() != 0)
        .fold(0, |rates, (_, r, _)| rates | r.bit())
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

/// Pressure in percent of the time between two samples of a stall total in microseconds (the
/// unit of cgroup v2's `*.pressure` files, which the kubelet passes on): the same guards as
/// [`rate`], and at most 100 (sample times are whole seconds in most kubelets, so a fully
/// stalled entity can measure a little over).
pub fn pressure_rate(old: (Nanos, i64), new: (Nanos, i64)) -> Option<Value> {
    let dt = new.0.checked_sub(old.0)?;
    let dv = new.1.checked_sub(old.1)?;
    if dt <= 0 || dv < 0 {
        return None;
    }
    // µs × 1000 / ns is a fraction; × 100 a percentage.
    let percent = dv as f64 * 100_000.0 / dt as f64;
    Some(Value::Float(percent.min(100.0)))
}

/// Remembers the previous sample of every entity, node by node: a node's entries are one
/// `Vec` of 152-byte [`Prev`]s in the order its kubelet lists them, found by position first and
/// by hash when the order changed. No key is held: a table keyed by [`SetKey`] took 176 bytes
/// an entry plus its index, about twice as much, and hashed and compared names for each set.
#[derive(Default)]
pub struct RateState {
    nodes: FastMap<Arc<str>, NodeRates>,
    generation: u64,
    /// A cleared `Vec` to build the next node's entries in (the last node's old ones).
    spare: Vec<Prev>,
}

impl RateState {
    /// Entities remembered.
    pub fn len(&self) -> usize {
        self.nodes.values().map(|n| n.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.values().all(|n| n.entries.is_empty())
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
        let mut rest = sets;
        while let Some(first) = rest.first() {
            let node = first.set.node.clone().unwrap_or_else(|| Arc::from(""));
            let n = rest
                .iter()
                .take_while(|r| r.set.node.as_deref().unwrap_or("") == &*node)
                .count();
            let (these, more) = rest.split_at_mut(n);
            self.apply_node(&node, these, now);
            rest = more;
        }
        self.end(scraped_nodes, now, max_age);
    }

    /// Starts a tick: the sets of each node follow ([`RateState::apply_node`]), then
    /// [`RateState::end`].
    pub fn begin(&mut self) {
        self.generation += 1;
    }

    /// Adds rate values to one node's sets and remembers them in place of the node's last.
    pub fn apply_node(&mut self, node: &Arc<str>, sets: &mut [RawSet], now: Nanos) {
        let mut fresh = std::mem::take(&mut self.spare);
        fresh.reserve_exact(sets.len());
        if !self.nodes.contains_key(&**node) {
            self.nodes.insert(Arc::clone(node), NodeRates::default());
        }
        let Some(state) = self.nodes.get_mut(&**node) else {
            return;
        };
        let old = &state.entries;
        // Where the next set's entry is expected: after the last one found.
        let mut next = 0;
        for raw in sets.iter_mut() {
            let counters = COUNTERS.map(|(m, _, _)| raw.set.get(m).map(Value::as_i64));
            if !counters.iter().any(Option::is_some) && !raw.pressure.iter().any(Option::is_some) {
                continue;
            }
            let key = key_hash(&raw.set.key);
            let found = match old.get(next) {
                Some(p) if p.key == key => Some(next),
                _ => old.iter().position(|p| p.key == key),
            };
            if let Some(i) = found {
                add_rates(&mut raw.set, &raw.times, &counters, &raw.pressure, &old[i]);
                next = i + 1;
            }
            fresh.push(Prev {
                key,
                create_time: pack(raw.set.create_time),
                times: pack_times(&raw.times),
                counters: counters.map(pack),
                pressure: raw
                    .pressure
                    .map(|v| pack(v.and_then(|v| i64::try_from(v).ok()))),
            });
        }
        let mut used = std::mem::replace(&mut state.entries, fresh);
        state.seen = now;
        state.generation = self.generation;
        used.clear();
        self.spare = used;
    }

    /// Ends a tick. Nodes not refreshed in it are remembered only while missing from
    /// `scraped_nodes` (a failed scrape) and for at most `max_age`.
    pub fn end(&mut self, scraped_nodes: &[Arc<str>], now: Nanos, max_age: Nanos) {
        let generation = self.generation;
        let scraped: HashSet<&str, RandomState> = scraped_nodes.iter().map(|n| &**n).collect();
        self.nodes.retain(|name, n| {
            n.generation == generation
                || (!scraped.contains(&**name) && now - n.seen <= max_age && !n.entries.is_empty())
        });
        if self.spare.capacity() > 4096 {
            self.spare = Vec::new();
        }
    }
}

fn pack_times(t: &SampleTimes) -> [i64; 4] {
    [pack(t.cpu), pack(t.memory), pack(t.network), pack(t.io)]
}

fn add_rates(
    set: &mut MetricSet,
    times: &SampleTimes,
    counters: &[Option<i64>; COUNTERS.len()],
    pressure: &PressureTotals,
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
    for (i, (metric, group)) in PRESSURES.iter().enumerate() {
        let new_v = pressure[i].and_then(|v| i64::try_from(v).ok());
        let (Some(new_v), Some(old_v)) = (new_v, unpack(old.pressure[i])) else {
            continue;
        };
        let (Some(new_t), Some(old_t)) = (group.time(times), unpack(old.times[*group as usize]))
        else {
            continue;
        };
        if let Some(v) = pressure_rate((old_t, old_v), (new_t, new_v)) {
            set.set(*metric, v);
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
            pressure: Default::default(),
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

    fn container_set(node: &Arc<str>, name: &str, t: Nanos, cpu_ns: i64) -> RawSet {
        let mut raw = node_set(node, t, cpu_ns);
        raw.set.key = SetKey::PodContainer {
            namespace: Arc::from("ns"),
            pod: Arc::from("p"),
            container: Arc::from(name),
        };
        raw
    }

    #[test]
    fn entries_are_found_whatever_the_order_and_only_on_their_node() {
        let (n1, n2): (Arc<str>, Arc<str>) = (Arc::from("n1"), Arc::from("n2"));
        let names = ["a", "b", "c", "d"];
        let mut state = RateState::default();
        let mut first: Vec<RawSet> = names
            .iter()
            .enumerate()
            .map(|(i, c)| container_set(&n1, c, 0, i as i64))
            .collect();
        state.apply(&mut first, std::slice::from_ref(&n1), 0, 100 * S);
        assert_eq!(state.len(), 4);
        // Reversed, one gone, one new: every known entity gets its own rate.
        let mut second: Vec<RawSet> = ["e", "d", "b", "a"]
            .iter()
            .map(|c| {
                let i = names.iter().position(|n| n == c).unwrap_or(9) as i64;
                container_set(&n1, c, 10 * S, i + (i + 1) * S)
            })
            .collect();
        state.apply(&mut second, std::slice::from_ref(&n1), 10 * S, 100 * S);
        let rates: Vec<Option<Value>> = second
            .iter()
            .map(|r| r.set.get(Metric::CpuUsageRate))
            .collect();
        assert_eq!(
            rates,
            [
                None,
                Some(Value::Int(400)),
                Some(Value::Int(200)),
                Some(Value::Int(100))
            ]
        );
        assert_eq!(state.len(), 4, "c is forgotten, e remembered");
        // The same entity reported by another node starts over there.
        let mut moved = vec![container_set(&n2, "a", 20 * S, 5 * S)];
        state.apply(
            &mut moved,
            &[Arc::clone(&n1), Arc::clone(&n2)],
            20 * S,
            100 * S,
        );
        assert_eq!(moved[0].set.get(Metric::CpuUsageRate), None);
        assert_eq!(state.len(), 1, "n1 was scraped and listed nothing");
    }

    #[test]
    fn key_hashes_are_stable_and_tell_names_apart() {
        let a = SetKey::Pod {
            namespace: Arc::from("ns"),
            pod: Arc::from("ab"),
        };
        let b = SetKey::Pod {
            namespace: Arc::from("nsa"),
            pod: Arc::from("b"),
        };
        assert_eq!(key_hash(&a), key_hash(&a.clone()));
        assert_ne!(key_hash(&a), key_hash(&b));
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
