//! The shared vocabulary: metric sets, values and batches.
//!
//! Data flows one way, source → process → store / sinks → api, and this module is the only one
//! they all import. A [`Batch`] is what one scrape tick produces: every entity of the cluster
//! (node, system container, pod, container, namespace, cluster) as a [`MetricSet`] of values.

pub mod cluster;
pub mod labels;
mod metric;
pub mod replica;
pub(crate) mod table;
#[cfg(test)]
pub(crate) mod test_keys;
pub mod time;
mod values;

pub use metric::{Metric, MetricKind, ValueType};
pub use time::Nanos;
pub use values::Values;

use std::sync::Arc;

/// Hash maps of the hot paths (per entity, per tick): foldhash instead of SipHash. Keys are
/// names the cluster chose, not attacker-controlled requests.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Heapster's metric set types, as written in the `type` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetType {
    Node,
    SysContainer,
    Pod,
    PodContainer,
    Namespace,
    Cluster,
}

impl SetType {
    /// The value of the `type` tag.
    pub const fn as_str(self) -> &'static str {
        match self {
            SetType::Node => "node",
            SetType::SysContainer => "sys_container",
            SetType::Pod => "pod",
            SetType::PodContainer => "pod_container",
            SetType::Namespace => "ns",
            SetType::Cluster => "cluster",
        }
    }
}

/// Identifies one entity. Names are shared (`Arc<str>`) so keys are cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetKey {
    Node {
        node: Arc<str>,
    },
    SysContainer {
        node: Arc<str>,
        container: Arc<str>,
    },
    Pod {
        namespace: Arc<str>,
        pod: Arc<str>,
    },
    PodContainer {
        namespace: Arc<str>,
        pod: Arc<str>,
        container: Arc<str>,
    },
    Namespace {
        namespace: Arc<str>,
    },
    Cluster,
}

impl SetKey {
    pub fn set_type(&self) -> SetType {
        match self {
            SetKey::Node { .. } => SetType::Node,
            SetKey::SysContainer { .. } => SetType::SysContainer,
            SetKey::Pod { .. } => SetType::Pod,
            SetKey::PodContainer { .. } => SetType::PodContainer,
            SetKey::Namespace { .. } => SetType::Namespace,
            SetKey::Cluster => SetType::Cluster,
        }
    }

    /// The namespace, for pods, containers and namespaces.
    pub fn namespace(&self) -> Option<&Arc<str>> {
        match self {
            SetKey::Pod { namespace, .. }
            | SetKey::PodContainer { namespace, .. }
            | SetKey::Namespace { namespace } => Some(namespace),
            _ => None,
        }
    }

    /// The pod name, for pods and their containers.
    pub fn pod(&self) -> Option<&Arc<str>> {
        match self {
            SetKey::Pod { pod, .. } | SetKey::PodContainer { pod, .. } => Some(pod),
            _ => None,
        }
    }

    /// The container name, for pod and system containers.
    pub fn container(&self) -> Option<&Arc<str>> {
        match self {
            SetKey::SysContainer { container, .. } | SetKey::PodContainer { container, .. } => {
                Some(container)
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for SetKey {
    /// Heapster's key strings (`namespace:NS/pod:P/container:C`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetKey::Node { node } => write!(f, "node:{node}"),
            SetKey::SysContainer { node, container } => {
                write!(f, "node:{node}/container:{container}")
            }
            SetKey::Pod { namespace, pod } => write!(f, "namespace:{namespace}/pod:{pod}"),
            SetKey::PodContainer {
                namespace,
                pod,
                container,
            } => write!(f, "namespace:{namespace}/pod:{pod}/container:{container}"),
            SetKey::Namespace { namespace } => write!(f, "namespace:{namespace}"),
            SetKey::Cluster => f.write_str("cluster"),
        }
    }
}

/// One value. Integer metrics stay integers end to end.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Int(i) => i as f64,
            Value::Float(f) => f,
        }
    }

    /// The integer value; floats are truncated toward zero (as Heapster's model API did).
    pub fn as_i64(self) -> i64 {
        match self {
            Value::Int(i) => i,
            Value::Float(f) => f as i64,
        }
    }

    /// Sum of two values of the same metric (aggregation).
    pub fn plus(self, other: Value) -> Value {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => Value::Int(a.saturating_add(b)),
            (a, b) => Value::Float(a.as_f64() + b.as_f64()),
        }
    }
}

/// A value labeled by `resource_id` (filesystems: `/`, `logs`, `Volume:<name>`).
#[derive(Clone, Debug, PartialEq)]
pub struct LabeledValue {
    pub metric: Metric,
    pub resource_id: Arc<str>,
    /// The PersistentVolumeClaim of a volume that belongs to one (`pvc_name` tag; the claim is
    /// in the pod's namespace).
    pub pvc: Option<Arc<str>>,
    pub value: Value,
}

/// All metrics of one entity at one moment, with the tags Heapster attached to it.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSet {
    pub key: SetKey,
    /// The entity's start time (node boot, pod or container start), when known.
    pub create_time: Option<Nanos>,
    /// When the values were sampled (the newest sample time of the set).
    pub scrape_time: Nanos,
    /// The node the entity runs on (`nodename` tag); none for namespaces and the cluster.
    pub node: Option<Arc<str>>,
    /// Kubernetes labels joined as `k:v` pairs by the label separator (`labels` tag).
    pub labels: Option<Arc<str>>,
    /// Pod UID (never written to InfluxDB; used by APIs).
    pub pod_uid: Option<Arc<str>>,
    /// Container image (`container_base_image` tag).
    pub image: Option<Arc<str>>,
    /// Node schedulability (`schedulable` tag on nodes).
    pub schedulable: Option<bool>,
    /// Labels stored as tags of their own (`--store_label`).
    pub extra_tags: Option<labels::StoredLabels>,
    /// Unlabeled values, at most one per metric (packed, in metric order).
    pub values: Values,
    /// Values labeled by `resource_id`.
    pub labeled: Vec<LabeledValue>,
}

impl MetricSet {
    pub fn new(key: SetKey, scrape_time: Nanos) -> MetricSet {
        MetricSet {
            key,
            create_time: None,
            scrape_time,
            node: None,
            labels: None,
            pod_uid: None,
            image: None,
            schedulable: None,
            extra_tags: None,
            values: Values::new(),
            labeled: Vec::new(),
        }
    }

    pub fn get(&self, metric: Metric) -> Option<Value> {
        self.values.get(metric)
    }

    /// Sets a value, replacing any previous value of the same metric.
    pub fn set(&mut self, metric: Metric, value: Value) {
        self.values.set(metric, value);
    }

    /// Sets an integer metric when the value is present; absent stays absent.
    pub fn set_int(&mut self, metric: Metric, value: Option<u64>) {
        if let Some(v) = value {
            self.set(metric, Value::Int(i64::try_from(v).unwrap_or(i64::MAX)));
        }
    }

    /// Adds to a value (or sets it when absent).
    pub fn add(&mut self, metric: Metric, value: Value) {
        self.values.add(metric, value);
    }

    pub fn set_type(&self) -> SetType {
        self.key.set_type()
    }
}

/// What one tick produced, whole or in pieces: entities' metric sets, stamped with the window
/// end.
///
/// The tick loop hands each node's sets to the sinks as a piece as soon as the node is scraped
/// (`more` set: more of this tick follows), and the namespaces and the cluster last (`more`
/// clear). A batch with `more` clear therefore ends a tick, whether it holds the whole tick or
/// only its last piece. Pieces of one tick share its timestamp.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// End of the scrape window, aligned to the resolution (the point timestamp in sinks).
    pub timestamp: Nanos,
    pub sets: Vec<MetricSet>,
    /// More pieces of this tick follow.
    pub more: bool,
}

impl Batch {
    /// A whole tick (or the last piece of one).
    pub fn new(timestamp: Nanos, sets: Vec<MetricSet>) -> Batch {
        Batch {
            timestamp,
            sets,
            more: false,
        }
    }

    /// A piece of a tick that more pieces follow.
    pub fn piece(timestamp: Nanos, sets: Vec<MetricSet>) -> Batch {
        Batch {
            timestamp,
            sets,
            more: true,
        }
    }

    /// Number of values (points) in the batch.
    pub fn point_count(&self) -> usize {
        self.sets
            .iter()
            .map(|s| s.values.len() + s.labeled.len())
            .sum()
    }

    pub fn find(&self, key: &SetKey) -> Option<&MetricSet> {
        self.sets.iter().find(|s| &s.key == key)
    }
}
