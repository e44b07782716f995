//! LIST of nodes, pods and namespaces: selection by filter, `limit`/`continue` pagination (the
//! token names the last key served, so removals between pages skip nothing), and the typed
//! `k8s_openapi` list bodies.

use std::collections::BTreeMap;

use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use serde::Serialize;

use super::formulas as f;
use super::objects;
use super::selector::{Facts, Filter};
use super::state::{Config, Kind, NodeState, watch_line};

/// Position of an object in list order: (node, pod) for pods, (node, 0) for nodes,
/// (namespace index, 0) for namespaces.
pub(crate) type Key = (usize, usize);

/// Keys of the objects of `kind` matching `filter`, after `after`, at most `limit`; and whether
/// more remain.
pub(crate) fn select(
    cfg: &Config,
    nodes: &[NodeState],
    kind: Kind,
    filter: &Filter,
    after: Option<Key>,
    limit: Option<usize>,
) -> (Vec<Key>, bool) {
    let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let mut keys = Vec::new();
    let mut more = false;
    let mut push = |key: Key| {
        if after.is_some_and(|a| key <= a) {
            return true;
        }
        if keys.len() == limit {
            more = true;
            return false;
        }
        keys.push(key);
        true
    };
    // Nodes sit at their index: a later page starts at the node it ended on, not at the start
    // (a list of two million pods takes thousands of pages).
    let from = after.map_or(0, |a| a.0).min(nodes.len());
    let live = nodes[from..].iter().filter(|n| !n.removed);
    match kind {
        Kind::Namespace => {
            let none = BTreeMap::new();
            for (i, ns) in f::NAMESPACES.iter().enumerate() {
                let facts = Facts {
                    name: ns,
                    namespace: None,
                    node_name: None,
                    labels: &none,
                };
                if filter.matches(&facts) && !push((i, 0)) {
                    break;
                }
            }
        }
        Kind::Node => {
            for n in live.filter(|n| after.is_none_or(|a| (n.index, 0) > a)) {
                let labels = objects::node_labels(&n.name);
                let facts = Facts {
                    name: &n.name,
                    namespace: None,
                    node_name: None,
                    labels: &labels,
                };
                if filter.matches(&facts) && !push((n.index, 0)) {
                    break;
                }
            }
        }
        Kind::Pod => {
            let labels: Vec<_> = (0..cfg.pods_per_node).map(objects::pod_labels).collect();
            let pinned = filter.node_name();
            let live = live.filter(|n| after.is_none_or(|a| n.index >= a.0));
            'nodes: for n in live.filter(|n| pinned.is_none_or(|p| p == n.name)) {
                for (p, labels) in labels.iter().enumerate() {
                    if after.is_some_and(|a| (n.index, p) <= a) {
                        continue;
                    }
                    let name = f::pod_name(n.index, p);
                    let facts = Facts {
                        name: &name,
                        namespace: Some(f::pod_namespace(p)),
                        node_name: Some(&n.name),
                        labels,
                    };
                    if filter.matches(&facts) && !push((n.index, p)) {
                        break 'nodes;
                    }
                }
            }
        }
        // Events are listed by `super::events`, not by key.
        Kind::Event => {}
    }
    (keys, more)
}

fn list_body<T>(items: Vec<T>, rv: u64, continue_: Option<String>) -> Vec<u8>
where
    T: k8s_openapi::ListableResource + Serialize,
{
    let list = k8s_openapi::List {
        items,
        metadata: ListMeta {
            resource_version: Some(rv.to_string()),
            continue_,
            ..Default::default()
        },
    };
    serde_json::to_vec(&list).unwrap_or_default()
}

fn node_at(nodes: &[NodeState], index: usize) -> Option<&NodeState> {
    nodes.get(index).filter(|n| !n.removed)
}

/// The list body of `keys` at resource version `rv`.
pub(crate) fn render_list(
    cfg: &Config,
    nodes: &[NodeState],
    kind: Kind,
    keys: &[Key],
    rv: u64,
    continue_: Option<String>,
) -> Vec<u8> {
    match kind {
        Kind::Namespace => {
            let items = keys
                .iter()
                .map(|k| objects::namespace(k.0, cfg.start))
                .collect();
            list_body(items, rv, continue_)
        }
        Kind::Node => {
            let items = keys
                .iter()
                .filter_map(|k| node_at(nodes, k.0))
                .map(|n| objects::node(cfg, n));
            list_body(items.collect(), rv, continue_)
        }
        Kind::Pod => {
            let items = keys
                .iter()
                .filter_map(|k| node_at(nodes, k.0).map(|n| objects::pod(cfg, n, k.1)))
                .collect();
            list_body(items, rv, continue_)
        }
        Kind::Event => list_body::<k8s_openapi::api::core::v1::Event>(Vec::new(), rv, continue_),
    }
}

/// `ADDED` watch lines for `keys` (a watch's initial events).
pub(crate) fn render_added(
    cfg: &Config,
    nodes: &[NodeState],
    kind: Kind,
    keys: &[Key],
) -> Vec<Bytes> {
    keys.iter()
        .filter_map(|&(a, b)| match kind {
            Kind::Namespace => Some(watch_line("ADDED", &objects::namespace(a, cfg.start))),
            Kind::Node => node_at(nodes, a).map(|n| watch_line("ADDED", &objects::node(cfg, n))),
            Kind::Pod => node_at(nodes, a).map(|n| watch_line("ADDED", &objects::pod(cfg, n, b))),
            Kind::Event => None,
        })
        .collect()
}

/// `"<rv>.<a>.<b>"`: resume after key (a, b).
pub(crate) fn continue_token(rv: u64, key: Key) -> String {
    format!("{rv}.{}.{}", key.0, key.1)
}

pub(crate) fn parse_continue(token: &str) -> Option<Key> {
    let mut parts = token.split('.').skip(1).map(str::parse::<usize>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), None) => Some((a, b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_round_trip() {
        assert_eq!(parse_continue(&continue_token(7, (3, 4))), Some((3, 4)));
        assert_eq!(parse_continue("garbage"), None);
    }
}
