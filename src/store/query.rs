//! Reading the store: listings, points of one metric, resource usage. Every call takes the
//! read lock once and returns owned data.

use std::sync::Arc;

use super::series::Series;
use super::usage::{Usage, usage};
use super::{Inner, Store};
use crate::model::{Metric, Nanos, SetKey, Value};

/// One point of a metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub timestamp: Nanos,
    pub value: Value,
}

/// One container's usage in a [`PodUsage`].
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerUsage {
    pub name: Arc<str>,
    pub usage: Usage,
}

/// A pod's usage: every container has cpu and memory, or the pod is left out.
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    /// The newest container sample and its window.
    pub timestamp: Nanos,
    pub window: Nanos,
    pub containers: Vec<ContainerUsage>,
}

fn empty() -> Arc<str> {
    Arc::from("")
}

/// The entries whose key is at least `start` and passes `keep`, in key order (the keys that
/// pass `keep` are contiguous in key order: one kind, one prefix).
fn scan<'a>(
    inner: &'a Inner,
    start: SetKey,
    keep: impl Fn(&SetKey) -> bool + 'a,
) -> impl Iterator<Item = (&'a SetKey, &'a Series)> + 'a {
    let mut hits: Vec<(&SetKey, &Series)> = inner
        .series
        .iter()
        .filter(|(k, _)| keep(k) && **k >= start)
        .collect();
    hits.sort_unstable_by(|a, b| a.0.cmp(b.0));
    hits.into_iter()
}

impl Store {
    /// Node names, sorted.
    pub fn nodes(&self) -> Vec<Arc<str>> {
        let inner = self.read();
        scan(&inner, SetKey::Node { node: empty() }, |k| {
            matches!(k, SetKey::Node { .. })
        })
        .filter_map(|(k, _)| match k {
            SetKey::Node { node } => Some(Arc::clone(node)),
            _ => None,
        })
        .collect()
    }

    /// Namespace names, sorted.
    pub fn namespaces(&self) -> Vec<Arc<str>> {
        let inner = self.read();
        scan(&inner, SetKey::Namespace { namespace: empty() }, |k| {
            matches!(k, SetKey::Namespace { .. })
        })
        .filter_map(|(k, _)| k.namespace().cloned())
        .collect()
    }

    /// Pods of a namespace, sorted; `None` when the namespace is unknown.
    pub fn pods(&self, namespace: &str) -> Option<Vec<Arc<str>>> {
        let inner = self.read();
        let ns: Arc<str> = Arc::from(namespace);
        if !inner.series.contains_key(&SetKey::Namespace {
            namespace: Arc::clone(&ns),
        }) {
            return None;
        }
        let start = SetKey::Pod {
            namespace: Arc::clone(&ns),
            pod: empty(),
        };
        Some(
            scan(
                &inner,
                start,
                |k| matches!(k, SetKey::Pod { namespace: n, .. } if **n == *namespace),
            )
            .filter_map(|(k, _)| k.pod().cloned())
            .collect(),
        )
    }

    /// Pods (namespace, name) on a node; `None` when the node is unknown.
    pub fn pods_on_node(&self, node: &str) -> Option<Vec<(Arc<str>, Arc<str>)>> {
        let inner = self.read();
        if !inner.series.contains_key(&SetKey::Node {
            node: Arc::from(node),
        }) {
            return None;
        }
        let start = SetKey::Pod {
            namespace: empty(),
            pod: empty(),
        };
        Some(
            scan(&inner, start, |k| matches!(k, SetKey::Pod { .. }))
                .filter(|(_, s)| s.node.as_deref() == Some(node))
                .filter_map(|(k, _)| match k {
                    SetKey::Pod { namespace, pod } => {
                        Some((Arc::clone(namespace), Arc::clone(pod)))
                    }
                    _ => None,
                })
                .collect(),
        )
    }

    /// Containers of a pod, sorted; `None` when the pod is unknown.
    pub fn containers(&self, namespace: &str, pod: &str) -> Option<Vec<Arc<str>>> {
        let inner = self.read();
        let (ns, p): (Arc<str>, Arc<str>) = (Arc::from(namespace), Arc::from(pod));
        let key = SetKey::Pod {
            namespace: Arc::clone(&ns),
            pod: Arc::clone(&p),
        };
        if !inner.series.contains_key(&key) {
            return None;
        }
        let start = SetKey::PodContainer {
            namespace: ns,
            pod: p,
            container: empty(),
        };
        Some(
            scan(&inner, start, |k| {
                matches!(k, SetKey::PodContainer { namespace: n, pod: q, .. }
                    if **n == *namespace && **q == *pod)
            })
            .filter_map(|(k, _)| k.container().cloned())
            .collect(),
        )
    }

    /// System containers of a node, sorted; `None` when the node is unknown.
    pub fn sys_containers(&self, node: &str) -> Option<Vec<Arc<str>>> {
        let inner = self.read();
        let n: Arc<str> = Arc::from(node);
        if !inner.series.contains_key(&SetKey::Node {
            node: Arc::clone(&n),
        }) {
            return None;
        }
        let start = SetKey::SysContainer {
            node: n,
            container: empty(),
        };
        Some(
            scan(
                &inner,
                start,
                |k| matches!(k, SetKey::SysContainer { node: m, .. } if **m == *node),
            )
            .filter_map(|(k, _)| k.container().cloned())
            .collect(),
        )
    }

    /// Whether the entity has a series.
    pub fn contains(&self, key: &SetKey) -> bool {
        self.read().series.contains_key(key)
    }

    /// Whether the entity is in the newest batch: held now, not only its history (a node
    /// scraped by another replica since keeps its series here until it expires).
    pub fn is_current(&self, key: &SetKey) -> bool {
        let inner = self.read();
        match (inner.series.get(key), inner.latest) {
            (Some(s), Some(latest)) => s.last_seen >= latest,
            _ => false,
        }
    }

    /// Names of the metrics an entity has values of; `None` when unknown.
    pub fn metric_names(&self, key: &SetKey) -> Option<Vec<&'static str>> {
        self.read().series.get(key).map(Series::metric_names)
    }

    /// Points of one metric within `[start, end]`, oldest first; `None` when the entity is
    /// unknown. Long-kept metrics have their history; others their latest value. A labeled
    /// metric needs its `resource_id`.
    pub fn points(
        &self,
        key: &SetKey,
        metric: Metric,
        resource_id: Option<&str>,
        start: Nanos,
        end: Nanos,
    ) -> Option<Vec<Point>> {
        let inner = self.read();
        let s = inner.series.get(key)?;
        let latest = |v: Option<Value>| {
            v.filter(|_| s.last_seen >= start && s.last_seen <= end)
                .map(|value| Point {
                    timestamp: s.last_seen,
                    value,
                })
                .into_iter()
                .collect()
        };
        if metric.is_labeled() {
            return Some(match resource_id {
                Some(id) => latest(s.latest_labeled(metric, id)),
                None => Vec::new(),
            });
        }
        Some(
            match s.history(metric, self.spec.metrics, &inner.ticks, start, end) {
                Some(h) => h
                    .into_iter()
                    .map(|(timestamp, value)| Point { timestamp, value })
                    .collect(),
                None => latest(s.latest(metric)),
            },
        )
    }

    /// Every key, as Heapster's `/api/v1/model/debug/allkeys` showed them.
    pub fn all_keys(&self) -> Vec<String> {
        let inner = self.read();
        let mut keys: Vec<&SetKey> = inner.series.keys().collect();
        keys.sort_unstable();
        keys.into_iter().map(ToString::to_string).collect()
    }

    /// Usage of the nodes seen in the newest batch (all, or the one named).
    pub fn node_usage(&self, only: Option<&str>) -> Vec<(Arc<str>, Usage)> {
        let inner = self.read();
        let Some(latest) = inner.latest else {
            return Vec::new();
        };
        let start = SetKey::Node {
            node: Arc::from(only.unwrap_or("")),
        };
        scan(&inner, start, |k| match (k, only) {
            (SetKey::Node { node }, Some(name)) => **node == *name,
            (SetKey::Node { .. }, None) => true,
            _ => false,
        })
        .filter(|(_, s)| s.last_seen >= latest)
        .filter_map(|(k, s)| match k {
            SetKey::Node { node } => usage(s).map(|u| (Arc::clone(node), u)),
            _ => None,
        })
        .collect()
    }

    /// Usage of the pods seen in the newest batch, optionally of one namespace or one pod.
    /// A pod is left out when any of its containers lacks cpu or memory.
    pub fn pod_usage(&self, namespace: Option<&str>, pod: Option<&str>) -> Vec<PodUsage> {
        let inner = self.read();
        let Some(latest) = inner.latest else {
            return Vec::new();
        };
        let start = SetKey::PodContainer {
            namespace: Arc::from(namespace.unwrap_or("")),
            pod: Arc::from(pod.filter(|_| namespace.is_some()).unwrap_or("")),
            container: empty(),
        };
        let in_scope = |k: &SetKey| match k {
            SetKey::PodContainer {
                namespace: n,
                pod: p,
                ..
            } => namespace.is_none_or(|ns| **n == *ns) && pod.is_none_or(|q| **p == *q),
            _ => false,
        };
        let mut out: Vec<PodUsage> = Vec::new();
        let mut broken = false;
        for (k, s) in scan(&inner, start, move |k| {
            matches!(k, SetKey::PodContainer { namespace: n, .. }
                if namespace.is_none_or(|ns| **n == *ns))
        }) {
            let SetKey::PodContainer {
                namespace: n,
                pod: p,
                container,
            } = k
            else {
                continue;
            };
            if !in_scope(k) || s.last_seen < latest {
                continue;
            }
            let same_pod = out
                .last()
                .is_some_and(|last| last.namespace == *n && last.name == *p);
            if !same_pod {
                if broken {
                    out.pop();
                }
                broken = false;
                out.push(PodUsage {
                    namespace: Arc::clone(n),
                    name: Arc::clone(p),
                    timestamp: 0,
                    window: 0,
                    containers: Vec::new(),
                });
            }
            let (Some(u), Some(last)) = (usage(s), out.last_mut()) else {
                broken = true;
                continue;
            };
            if u.timestamp > last.timestamp {
                last.timestamp = u.timestamp;
                last.window = u.window;
            }
            last.containers.push(ContainerUsage {
                name: Arc::clone(container),
                usage: u,
            });
        }
        if broken {
            out.pop();
        }
        out
    }
}
