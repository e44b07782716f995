//! Each replica's contribution to the namespace and cluster sums, exchanged between replicas so
//! that every replica holds complete aggregates and one writes them.
//!
//! A replica sums, per namespace, the pods of the nodes it writes (each node has exactly one
//! writer, so the replicas' sums add up to the cluster's), and keeps for its last few ticks
//! that sum, the nodes it writes and the nodes the sum holds ([`TickPartials`]). It serves them
//! at `/internal/shard/partials?window_end=NANOS` (window ends are multiples of the resolution
//! in every replica, so the same number names the same tick everywhere): a few namespaces'
//! sums and two lists of names, whatever the number of pods. [`merge`] adds the replicas' sums
//! and refuses a tick in which some node is covered by no replica that answered, or summed by
//! two (replicas that disagree on the membership for a moment): a half-summed or twice-summed
//! cluster is worse than a missing point.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Number, Value as Json, json};

use crate::model::{Metric, MetricSet, Nanos, SetKey, Value};
use crate::process::aggregate::Namespaces;

/// How many ticks a replica keeps for its peers.
const KEPT_TICKS: usize = 4;

/// One replica's contribution to one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct TickPartials {
    pub window_end: Nanos,
    pub replica: Arc<str>,
    /// The nodes it writes (scraped or failed): who covers which node.
    pub assigned: Vec<Arc<str>>,
    /// The nodes whose pods its sums hold (those of `assigned` it scraped).
    pub summed: Vec<Arc<str>>,
    /// Its pods summed per namespace (namespace sets holding only the summed metrics).
    pub namespaces: Vec<MetricSet>,
}

/// Why a tick's aggregates cannot be complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    /// Nodes no answering replica writes.
    #[error("{missing} of {expected} nodes have no replica's contribution")]
    Missing { missing: usize, expected: usize },
    /// Nodes in two replicas' sums.
    #[error("{twice} nodes are in two replicas' sums")]
    Twice { twice: usize },
}

/// Sums the contributions of `parts` (one per replica, this one's among them) into the
/// namespaces' and the cluster's sets. `expected`: the nodes that must be covered.
pub fn merge(
    window_end: Nanos,
    parts: &[Arc<TickPartials>],
    expected: &[Arc<str>],
) -> Result<Vec<MetricSet>, Incomplete> {
    let covered: HashSet<&str> = parts
        .iter()
        .flat_map(|p| p.assigned.iter().map(|n| &**n))
        .collect();
    let missing = expected.iter().filter(|n| !covered.contains(&***n)).count();
    if missing > 0 {
        return Err(Incomplete::Missing {
            missing,
            expected: expected.len(),
        });
    }
    let mut summed = HashSet::new();
    let twice = parts
        .iter()
        .flat_map(|p| p.summed.iter())
        .filter(|n| !summed.insert(&***n))
        .count();
    if twice > 0 {
        return Err(Incomplete::Twice { twice });
    }
    let mut parts: Vec<_> = parts.iter().collect();
    // A fixed order so float sums do not depend on which peer answered first.
    parts.sort_by(|a, b| a.replica.cmp(&b.replica));
    let mut namespaces = Namespaces::default();
    for part in parts {
        namespaces.add_namespaces(&part.namespaces, window_end);
    }
    Ok(namespaces.finish(window_end))
}

/// This replica's contributions for its last few ticks, and a signal when a tick is done.
pub struct PartialsBook {
    ticks: Mutex<VecDeque<Arc<TickPartials>>>,
    done: tokio::sync::watch::Sender<Nanos>,
    /// How long a request for a tick in progress waits for it.
    pub wait: Duration,
}

impl PartialsBook {
    /// `wait`: how long a peer's request for a tick still in progress waits (below the peer
    /// timeout, so the peer gets an answer rather than a timeout).
    pub fn new(wait: Duration) -> PartialsBook {
        PartialsBook {
            ticks: Mutex::default(),
            done: tokio::sync::watch::Sender::new(0),
            wait,
        }
    }

    pub fn insert(&self, partials: TickPartials) {
        let window_end = partials.window_end;
        {
            let mut ticks = self.ticks.lock().unwrap_or_else(|e| e.into_inner());
            ticks.push_back(Arc::new(partials));
            while ticks.len() > KEPT_TICKS {
                ticks.pop_front();
            }
        }
        self.done.send_if_modified(|last| {
            let newer = window_end > *last;
            *last = (*last).max(window_end);
            newer
        });
    }

    pub fn get(&self, window_end: Nanos) -> Option<Arc<TickPartials>> {
        let ticks = self.ticks.lock().unwrap_or_else(|e| e.into_inner());
        ticks.iter().find(|t| t.window_end == window_end).cloned()
    }

    /// The tick's contributions, waiting up to `wait` for a tick still in progress. `None`
    /// when this replica has no such tick (too old, not reached in time, or skipped).
    pub async fn wait_for(&self, window_end: Nanos, wait: Duration) -> Option<Arc<TickPartials>> {
        let mut done = self.done.subscribe();
        let reached = tokio::time::timeout(wait, done.wait_for(|last| *last >= window_end)).await;
        match reached {
            Ok(Ok(_)) => self.get(window_end),
            _ => None,
        }
    }
}

/// The JSON served to peers.
pub fn encode(p: &TickPartials) -> Json {
    let mut namespaces = Map::new();
    for set in &p.namespaces {
        let SetKey::Namespace { namespace } = &set.key else {
            continue;
        };
        let mut values = Map::new();
        for (metric, value) in set.values.iter() {
            let number = match value {
                Value::Int(i) => Some(Number::from(i)),
                Value::Float(f) => Number::from_f64(f),
            };
            if let Some(number) = number {
                values.insert(metric.name().to_owned(), Json::Number(number));
            }
        }
        namespaces.insert(namespace.to_string(), Json::Object(values));
    }
    let names = |v: &[Arc<str>]| v.iter().map(|n| Json::from(&**n)).collect::<Vec<_>>();
    json!({
        "windowEnd": p.window_end,
        "replica": &*p.replica,
        "assigned": names(&p.assigned),
        "summed": names(&p.summed),
        "namespaces": namespaces,
    })
}

/// Reads what [`encode`] wrote; unknown metrics are skipped (a newer peer).
pub fn decode(body: &[u8]) -> Result<TickPartials, String> {
    let v: Json = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let window_end = v["windowEnd"].as_i64().ok_or("no windowEnd")?;
    let replica: Arc<str> = Arc::from(v["replica"].as_str().ok_or("no replica")?);
    let names = |key: &str| -> Result<Vec<Arc<str>>, String> {
        let list = v[key].as_array().ok_or(format!("no {key}"))?;
        Ok(list
            .iter()
            .filter_map(|n| n.as_str().map(Arc::from))
            .collect())
    };
    let mut namespaces = Vec::new();
    for (ns, values) in v["namespaces"].as_object().ok_or("no namespaces")? {
        let mut set = MetricSet::new(
            SetKey::Namespace {
                namespace: Arc::from(ns.as_str()),
            },
            window_end,
        );
        for (name, value) in values.as_object().into_iter().flatten() {
            let Some(metric) = Metric::from_name(name) else {
                continue;
            };
            let value = match (value.as_i64(), value.as_f64()) {
                (Some(i), _) => Value::Int(i),
                (None, Some(f)) => Value::Float(f),
                _ => continue,
            };
            set.set(metric, value);
        }
        namespaces.push(set);
    }
    Ok(TickPartials {
        window_end,
        replica,
        assigned: names("assigned")?,
        summed: names("summed")?,
        namespaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns_set(ns: &str, memory: i64, cpu: f64) -> MetricSet {
        let mut set = MetricSet::new(
            SetKey::Namespace {
                namespace: Arc::from(ns),
            },
            10,
        );
        set.set(Metric::MemoryUsage, Value::Int(memory));
        set.set(Metric::CpuUsageRate, Value::Float(cpu));
        set
    }

    fn names(v: &[&str]) -> Vec<Arc<str>> {
        v.iter().map(|n| Arc::from(*n)).collect()
    }

    fn part(replica: &str, assigned: &[&str], summed: &[&str], memory: i64) -> Arc<TickPartials> {
        Arc::new(TickPartials {
            window_end: 10,
            replica: Arc::from(replica),
            assigned: names(assigned),
            summed: names(summed),
            namespaces: vec![ns_set("a", memory, 0.5), ns_set("b", 1, 0.25)],
        })
    }

    #[test]
    fn round_trips_through_json() {
        let p = part("r1", &["n1", "n2"], &["n1"], 5);
        let body = serde_json::to_vec(&encode(&p)).expect("json");
        assert_eq!(decode(&body).expect("decode"), *p);
    }

    #[test]
    fn sums_every_replica_once_and_refuses_gaps_and_overlaps() {
        let parts = [
            part("r2", &["n3"], &["n3"], 3),
            part("r1", &["n1", "n2"], &["n1"], 7),
        ];
        let sets = merge(10, &parts, &names(&["n1", "n2", "n3"])).expect("complete");
        let get = |key: &SetKey| sets.iter().find(|s| s.key == *key).expect("set");
        let a = get(&SetKey::Namespace {
            namespace: Arc::from("a"),
        });
        assert_eq!(a.get(Metric::MemoryUsage), Some(Value::Int(10)));
        let cluster = get(&SetKey::Cluster);
        assert_eq!(cluster.get(Metric::MemoryUsage), Some(Value::Int(12)));
        assert_eq!(cluster.get(Metric::CpuUsageRate), Some(Value::Float(1.5)));
        // A node nobody that answered covers: no aggregates at all.
        let err = merge(10, &parts[1..], &names(&["n1", "n2", "n3"]));
        assert_eq!(
            err,
            Err(Incomplete::Missing {
                missing: 1,
                expected: 3
            })
        );
        // Two replicas that both think they write n1.
        let both = [
            part("r1", &["n1"], &["n1"], 1),
            part("r2", &["n1"], &["n1"], 1),
        ];
        assert_eq!(
            merge(10, &both, &names(&["n1"])),
            Err(Incomplete::Twice { twice: 1 })
        );
    }

    #[tokio::test]
    async fn waits_for_a_tick_in_progress() {
        let book = Arc::new(PartialsBook::new(Duration::from_secs(5)));
        assert!(book.wait_for(10, Duration::from_millis(10)).await.is_none());
        let b = Arc::clone(&book);
        let waiter = tokio::spawn(async move { b.wait_for(10, Duration::from_secs(5)).await });
        book.insert((*part("r", &[], &[], 0)).clone());
        assert!(waiter.await.expect("join").is_some());
    }
}
