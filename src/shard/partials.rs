//! Per-node contributions to the namespace and cluster sums, exchanged between replicas so
//! that every replica holds complete aggregates and one writes them.
//!
//! Each replica keeps, for its last few ticks, the nodes it was assigned and, for each node it
//! scraped, that node's pods summed per namespace ([`TickPartials`]); it serves them at
//! `/internal/shard/partials?window_end=NANOS` (window ends are multiples of the resolution in
//! every replica, so the same number names the same tick everywhere). [`merge`] sums one
//! contribution per node — the node's writer's when it sent one — and refuses a tick in which
//! some node's owner did not answer: a half-summed cluster is worse than a missing point.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Number, Value as Json, json};

use super::assign::Assignment;
use crate::model::{Metric, MetricSet, Nanos, SetKey, Value};
use crate::process::aggregate::Namespaces;

/// How many ticks a replica keeps for its peers.
const KEPT_TICKS: usize = 4;

/// One node's pods summed per namespace (namespace sets holding only the summed metrics).
#[derive(Clone, Debug, PartialEq)]
pub struct NodePartial {
    pub node: Arc<str>,
    pub namespaces: Vec<MetricSet>,
}

/// One replica's contributions to one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct TickPartials {
    pub window_end: Nanos,
    pub replica: Arc<str>,
    /// The nodes it was assigned (scraped or failed): who covers which node.
    pub assigned: Vec<Arc<str>>,
    /// The nodes it scraped.
    pub nodes: Vec<NodePartial>,
}

/// Why a tick's aggregates cannot be complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{missing} of {expected} nodes have no replica's contribution")]
pub struct Incomplete {
    pub missing: usize,
    pub expected: usize,
}

/// Sums the contributions of `parts` (one per replica, this one's among them) into the
/// namespaces' and the cluster's sets, one contribution per node: its writer's when present.
/// `expected`: the nodes that must be covered (assigned to some replica that answered).
pub fn merge(
    window_end: Nanos,
    parts: &[Arc<TickPartials>],
    assignment: &Assignment,
    expected: &[Arc<str>],
) -> Result<Vec<MetricSet>, Incomplete> {
    let covered: HashSet<&str> = parts
        .iter()
        .flat_map(|p| p.assigned.iter().map(|n| &**n))
        .collect();
    let missing = expected.iter().filter(|n| !covered.contains(&***n)).count();
    if missing > 0 {
        return Err(Incomplete {
            missing,
            expected: expected.len(),
        });
    }
    let mut chosen: HashMap<&str, (&NodePartial, bool)> = HashMap::new();
    for part in parts {
        for node in &part.nodes {
            let by_writer = assignment
                .writer(&node.node)
                .is_some_and(|w| w == part.replica);
            match chosen.get(&*node.node) {
                Some((_, true)) => {}
                Some((_, false)) if !by_writer => {}
                _ => {
                    chosen.insert(&node.node, (node, by_writer));
                }
            }
        }
    }
    let mut namespaces = Namespaces::default();
    // A fixed order (by node) so float sums do not depend on which peer answered first.
    let mut nodes: Vec<_> = chosen.into_iter().collect();
    nodes.sort_by(|a, b| a.0.cmp(b.0));
    for (_, (partial, _)) in nodes {
        namespaces.add_namespaces(&partial.namespaces, window_end);
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
    let nodes: Vec<Json> = p
        .nodes
        .iter()
        .map(|n| {
            let mut namespaces = Map::new();
            for set in &n.namespaces {
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
            json!({"node": &*n.node, "namespaces": namespaces})
        })
        .collect();
    json!({
        "windowEnd": p.window_end,
        "replica": &*p.replica,
        "assigned": p.assigned.iter().map(|n| &**n).collect::<Vec<_>>(),
        "nodes": nodes,
    })
}

/// Reads what [`encode`] wrote; unknown metrics are skipped (a newer peer).
pub fn decode(body: &[u8]) -> Result<TickPartials, String> {
    let v: Json = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let window_end = v["windowEnd"].as_i64().ok_or("no windowEnd")?;
    let replica: Arc<str> = Arc::from(v["replica"].as_str().ok_or("no replica")?);
    let names = |j: &Json| -> Vec<Arc<str>> {
        j.as_array()
            .map(|a| a.iter().filter_map(|n| n.as_str().map(Arc::from)).collect())
            .unwrap_or_default()
    };
    let assigned = names(&v["assigned"]);
    let mut nodes = Vec::new();
    for n in v["nodes"].as_array().ok_or("no nodes")? {
        let node: Arc<str> = Arc::from(n["node"].as_str().ok_or("a node without a name")?);
        let mut namespaces = Vec::new();
        for (ns, values) in n["namespaces"].as_object().into_iter().flatten() {
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
        nodes.push(NodePartial { node, namespaces });
    }
    Ok(TickPartials {
        window_end,
        replica,
        assigned,
        nodes,
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

    fn part(replica: &str, assigned: &[&str], nodes: &[(&str, i64)]) -> Arc<TickPartials> {
        Arc::new(TickPartials {
            window_end: 10,
            replica: Arc::from(replica),
            assigned: assigned.iter().map(|n| Arc::from(*n)).collect(),
            nodes: nodes
                .iter()
                .map(|(n, m)| NodePartial {
                    node: Arc::from(*n),
                    namespaces: vec![ns_set("a", *m, 0.5), ns_set("b", 1, 0.25)],
                })
                .collect(),
        })
    }

    fn names(v: &[&str]) -> Vec<Arc<str>> {
        v.iter().map(|n| Arc::from(*n)).collect()
    }

    #[test]
    fn round_trips_through_json() {
        let p = part("r1", &["n1", "n2"], &[("n1", 5)]);
        let body = serde_json::to_vec(&encode(&p)).expect("json");
        assert_eq!(decode(&body).expect("decode"), *p);
    }

    #[test]
    fn one_contribution_per_node_and_none_missing() {
        let assignment = Assignment::new(names(&["r1", "r2"]), 2);
        let w1 = assignment.writer("n1").expect("writer");
        let other = if &*w1 == "r1" { "r2" } else { "r1" };
        // Both scraped n1 (replication 2): the writer's value is taken, once.
        let parts = [
            part(other, &["n1"], &[("n1", 1000)]),
            part(&w1, &["n1", "n2"], &[("n1", 7), ("n2", 3)]),
        ];
        let sets = merge(10, &parts, &assignment, &names(&["n1", "n2"])).expect("complete");
        let get = |key: &SetKey| sets.iter().find(|s| s.key == *key).expect("set");
        let a = get(&SetKey::Namespace {
            namespace: Arc::from("a"),
        });
        assert_eq!(a.get(Metric::MemoryUsage), Some(Value::Int(10)));
        let cluster = get(&SetKey::Cluster);
        assert_eq!(cluster.get(Metric::MemoryUsage), Some(Value::Int(12)));
        assert_eq!(cluster.get(Metric::CpuUsageRate), Some(Value::Float(1.5)));
        // A node nobody covered: no aggregates at all.
        let err = merge(10, &parts[1..], &assignment, &names(&["n1", "n2", "n3"]));
        assert_eq!(
            err,
            Err(Incomplete {
                missing: 1,
                expected: 3
            })
        );
    }

    #[tokio::test]
    async fn waits_for_a_tick_in_progress() {
        let book = Arc::new(PartialsBook::new(Duration::from_secs(5)));
        assert!(book.wait_for(10, Duration::from_millis(10)).await.is_none());
        let b = Arc::clone(&book);
        let waiter = tokio::spawn(async move { b.wait_for(10, Duration::from_secs(5)).await });
        book.insert((*part("r", &[], &[])).clone());
        assert!(waiter.await.expect("join").is_some());
    }
}
