//! Answers for the whole cluster from any replica: the replica's own store plus the other
//! replicas' replica-local answers, asked in parallel and merged.
//!
//! Every API path is also served under [`LOCAL_PREFIX`] with no peers: that is what a replica
//! asks its peers, so nothing under `/internal/` ever asks further (no recursion, no loops
//! when two replicas list each other). With no peers (one replica, no sharding) the handlers
//! take their single-replica path unchanged.
//!
//! Merging: one entry per object (`metadata.namespace`/`metadata.name` for `metrics.k8s.io`, the
//! name for model API listings). With replication two replicas hold the same node: the newest
//! sample wins (latest `timestamp`, or `latestTimestamp` for model API points).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use serde_json::Value;

use super::ApiState;
use crate::model::replica::{NoPeers, Peer};
use crate::model::{Nanos, time};
use crate::shard::peer::PeerClient;

/// Where a replica serves its own data only (the same paths after it).
pub const LOCAL_PREFIX: &str = "/internal/shard/local";

/// The peers to ask and the client to ask them with; `None` when there is nobody to ask.
pub struct Fanout {
    peers: Vec<Peer>,
    client: Arc<PeerClient>,
}

impl Fanout {
    /// The live peers, when this replica has any (cheap: the membership's last view).
    pub fn of(state: &ApiState) -> Option<Fanout> {
        let client = state.peer_client.as_ref()?;
        let peers = state.peers.peers();
        (!peers.is_empty()).then(|| Fanout {
            peers,
            client: Arc::clone(client),
        })
    }

    /// GETs [`LOCAL_PREFIX`] + `path_and_query` from every peer; the 200 answers. Failures
    /// and 404s are counted and left out by the client.
    pub async fn ask(&self, path_and_query: &str) -> Vec<(Peer, Bytes)> {
        let path = format!("{LOCAL_PREFIX}{path_and_query}");
        self.client
            .get_all(&self.peers, &path)
            .await
            .into_iter()
            .filter_map(|(peer, r)| r.ok().map(|body| (peer, body)))
            .collect()
    }

    /// The 200 answers decoded as `T`; a body that does not decode is counted `invalid`.
    pub async fn ask_json<T: serde::de::DeserializeOwned>(&self, path_and_query: &str) -> Vec<T> {
        self.ask(path_and_query)
            .await
            .into_iter()
            .filter_map(|(peer, body)| match serde_json::from_slice(&body) {
                Ok(v) => Some(v),
                Err(e) => {
                    self.client.invalid(&peer, e);
                    None
                }
            })
            .collect()
    }
}

/// The API routes with nobody to ask, to mount under [`LOCAL_PREFIX`].
pub fn local_router(state: &ApiState) -> Router<ApiState> {
    let local = ApiState {
        peers: Arc::new(NoPeers),
        peer_client: None,
        ..state.clone()
    };
    Router::new()
        .merge(super::model::router())
        .merge(super::resource::router())
        .with_state(local)
}

/// `(namespace, name)` of a `metrics.k8s.io` object.
fn object_key(item: &Value) -> Option<(String, String)> {
    let meta = item.get("metadata")?;
    let name = meta.get("name")?.as_str()?.to_string();
    let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
    Some((ns.to_string(), name))
}

fn time_of(item: &Value, field: &str) -> Nanos {
    item.get(field)
        .and_then(Value::as_str)
        .and_then(time::parse_rfc3339)
        .unwrap_or(i64::MIN)
}

/// One object per `(namespace, name)`, the newest `timestamp` kept (the first of equals, so
/// the local one), sorted by namespace then name.
pub fn merge_objects(lists: impl IntoIterator<Item = Vec<Value>>) -> Vec<Value> {
    let mut merged: BTreeMap<(String, String), (Nanos, Value)> = BTreeMap::new();
    for item in lists.into_iter().flatten() {
        let Some(key) = object_key(&item) else {
            continue;
        };
        let t = time_of(&item, "timestamp");
        match merged.get(&key) {
            Some((kept, _)) if *kept >= t => {}
            _ => {
                merged.insert(key, (t, item));
            }
        }
    }
    merged.into_values().map(|(_, item)| item).collect()
}

/// The newest of several answers for one object, by `field` (the first of equals).
pub fn newest(answers: impl IntoIterator<Item = Value>, field: &str) -> Option<Value> {
    let mut best: Option<(Nanos, Value)> = None;
    for v in answers {
        let t = time_of(&v, field);
        if best.as_ref().is_none_or(|(kept, _)| t > *kept) {
            best = Some((t, v));
        }
    }
    best.map(|(_, v)| v)
}

/// The union of name listings, sorted, each name once.
pub fn union_names(lists: impl IntoIterator<Item = Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, t: &str, cpu: &str) -> Value {
        json!({"metadata": {"name": name}, "timestamp": t, "usage": {"cpu": cpu}})
    }

    fn pod(ns: &str, name: &str, t: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": ns}, "timestamp": t})
    }

    #[test]
    fn one_object_per_name_the_newest_sample_wins() {
        let local = vec![
            node("b", "2026-01-01T00:01:00Z", "local-b"),
            node("c", "2026-01-01T00:01:00Z", "local-c"),
        ];
        let peer1 = vec![
            node("a", "2026-01-01T00:01:00Z", "p1-a"),
            node("b", "2026-01-01T00:00:00Z", "p1-b-older"),
        ];
        let peer2 = vec![
            node("c", "2026-01-01T00:02:00Z", "p2-c-newer"),
            node("a", "2026-01-01T00:01:00Z", "p2-a-same"),
        ];
        let merged = merge_objects([local, peer1, peer2]);
        let cpus: Vec<&str> = merged
            .iter()
            .map(|v| v["usage"]["cpu"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(cpus, ["p1-a", "local-b", "p2-c-newer"]);
    }

    #[test]
    fn pods_are_keyed_by_namespace_and_name() {
        let t = "2026-01-01T00:00:00Z";
        let merged = merge_objects([
            vec![pod("b", "x", t), pod("a", "x", t)],
            vec![pod("a", "x", t), pod("a", "y", t)],
            vec![json!({"no": "metadata"})],
        ]);
        let keys: Vec<_> = merged.iter().filter_map(object_key).collect();
        let want =
            [("a", "x"), ("a", "y"), ("b", "x")].map(|(ns, n)| (ns.to_string(), n.to_string()));
        assert_eq!(keys, want);
    }

    #[test]
    fn a_sample_without_a_valid_timestamp_loses() {
        let merged = merge_objects([
            vec![json!({"metadata": {"name": "a"}, "timestamp": "garbage", "v": 1})],
            vec![node("a", "2026-01-01T00:00:00Z", "dated")],
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0]["usage"]["cpu"], "dated");
    }

    #[test]
    fn newest_answer_by_latest_timestamp() {
        let a = json!({"latestTimestamp": "2026-01-01T00:00:00Z", "id": "a"});
        let b = json!({"latestTimestamp": "2026-01-01T00:05:00Z", "id": "b"});
        let c = json!({"latestTimestamp": "0001-01-01T00:00:00Z", "id": "c"});
        let got = newest([a, b, c], "latestTimestamp").expect("one");
        assert_eq!(got["id"], "b");
        assert_eq!(newest(Vec::new(), "latestTimestamp"), None);
    }

    #[test]
    fn name_listings_are_unioned_once_each() {
        let got = union_names([
            vec!["b".to_string(), "a".to_string()],
            vec!["c".to_string(), "a".to_string()],
            vec![],
        ]);
        assert_eq!(got, ["a", "b", "c"]);
    }
}
