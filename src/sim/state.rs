//! The simulator's mutable state shared by the apiserver, the kubelets and [`super::SimCluster`]:
//! the node table, the current token, and the bounded event log behind watches.
//!
//! Lock order: `nodes`, then `events`, then `log`. Every change takes `nodes` for writing, then `log`, assigns
//! the next resource version, appends the event and broadcasts it while still holding `log`, so
//! a watcher that subscribes under `log` neither misses nor repeats an event.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::KubeletFault;
use crate::model::Nanos;

/// How many events the log keeps; older resource versions get 410 Expired.
pub(crate) const EVENT_LOG_CAP: usize = 20_000;

/// Which auth the servers require (with https only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthKind {
    None,
    Token,
    ClientCert,
}

/// Immutable facts about the cluster.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub pods_per_node: usize,
    pub containers_per_pod: usize,
    pub https: bool,
    pub auth: AuthKind,
    pub kubelet_port: u16,
    pub block: u8,
    pub api_addr: std::net::SocketAddr,
    pub minor: u32,
    /// Cluster start, whole seconds.
    pub start: Nanos,
}

/// A container restart: how many so far, and the latest start time (whole seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Restart {
    pub count: u32,
    pub at: Nanos,
}

/// Requests seen by one kubelet.
#[derive(Debug, Default)]
pub(crate) struct KubeletCounters {
    pub requests: AtomicU64,
    pub last_authorization: Mutex<Option<String>>,
}

impl KubeletCounters {
    pub fn record(&self, authorization: Option<&str>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(value) = authorization {
            *lock(&self.last_authorization) = Some(value.to_owned());
        }
    }
}

/// One node (kept after removal, flagged, so indices stay stable).
#[derive(Clone, Debug)]
pub(crate) struct NodeState {
    pub index: usize,
    pub name: String,
    pub ip: Ipv4Addr,
    pub ready: bool,
    pub removed: bool,
    pub fault: Option<KubeletFault>,
    /// When the node and its pods started, whole seconds.
    pub start: Nanos,
    /// Resource version of the node object.
    pub rv: u64,
    /// Resource version at which the node (and its pods) were created.
    pub created_rv: u64,
    /// Resource version of each pod object changed since the node was added.
    pub pod_rv: HashMap<usize, u64>,
    pub restarts: HashMap<(usize, usize), Restart>,
    pub counters: Arc<KubeletCounters>,
    /// Cancelled when the node is removed (stops its kubelet).
    pub cancel: CancellationToken,
}

impl NodeState {
    /// Resource version of a pod object: its last change, else the node's creation.
    pub fn pod_rv(&self, pod: usize) -> u64 {
        self.pod_rv.get(&pod).copied().unwrap_or(self.created_rv)
    }

    /// Start time of a container: its latest restart, else the node start.
    pub fn container_start(&self, pod: usize, container: usize) -> Nanos {
        self.restarts
            .get(&(pod, container))
            .map_or(self.start, |r| r.at)
    }

    pub fn restart_count(&self, pod: usize, container: usize) -> u32 {
        self.restarts.get(&(pod, container)).map_or(0, |r| r.count)
    }
}

/// Kinds of object the apiserver serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Node,
    Pod,
    Namespace,
    /// Core `v1` Events (stored in [`super::events::EventStore`]).
    Event,
}

/// One change, as watchers receive it.
#[derive(Debug)]
pub(crate) struct Event {
    pub rv: u64,
    pub kind: Kind,
    pub name: String,
    pub namespace: Option<String>,
    pub node_name: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The whole `{"type":..,"object":..}\n` line.
    pub line: Bytes,
}

#[derive(Serialize)]
struct WatchLine<'a, T> {
    #[serde(rename = "type")]
    type_: &'a str,
    object: &'a T,
}

/// Serialises one watch line (`{"type":..,"object":..}\n`).
pub(crate) fn watch_line<T: Serialize>(type_: &str, object: &T) -> Bytes {
    let mut buf = serde_json::to_vec(&WatchLine { type_, object }).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

/// Events after a resource version, and a receiver for later ones.
pub(crate) type Resume = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// The bounded log of changes and the current resource version.
#[derive(Debug)]
pub(crate) struct EventLog {
    rv: u64,
    /// The oldest resource version a watch may resume from.
    horizon: u64,
    events: VecDeque<Arc<Event>>,
    sender: broadcast::Sender<Arc<Event>>,
}

impl EventLog {
    fn new(rv: u64) -> Self {
        let (sender, _) = broadcast::channel(4096);
        EventLog {
            rv,
            horizon: rv,
            events: VecDeque::new(),
            sender,
        }
    }

    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Reserves the next resource version.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// Appends an event (its `rv` from [`Self::next_rv`]) and broadcasts it.
    pub fn push(&mut self, event: Event) {
        let event = Arc::new(event);
        if self.events.len() >= EVENT_LOG_CAP
            && let Some(old) = self.events.pop_front()
        {
            self.horizon = old.rv;
        }
        self.events.push_back(Arc::clone(&event));
        let _ = self.sender.send(event);
    }

    /// Makes every resource version handed out so far too old: skips one resource version and
    /// moves the horizon to it (a fresh list at the new version can still be watched from).
    pub fn expire(&mut self) {
        self.rv += 1;
        self.horizon = self.rv;
        self.events.clear();
    }

    /// Events after `rv` and a receiver for later ones; `None` when `rv` is too old.
    pub fn since(&self, rv: u64) -> Option<Resume> {
        if rv < self.horizon {
            return None;
        }
        let backlog = self.events.iter().filter(|e| e.rv > rv).cloned().collect();
        Some((backlog, self.sender.subscribe()))
    }
}

/// Everything the servers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: Config,
    pub token: RwLock<Option<String>>,
    /// Users and rules of TokenReview and SubjectAccessReview.
    pub access: RwLock<super::review::Access>,
    pub nodes: RwLock<Vec<NodeState>>,
    pub log: Mutex<EventLog>,
    /// Core v1 Events (lock after `nodes`, before `log`).
    pub events: Mutex<super::events::EventStore>,
    /// `coordination.k8s.io` Leases (lock before `log`).
    pub leases: Mutex<super::leases::LeaseStore>,
    /// Bumped by [`super::SimCluster::expire_watches`]: open watches end with 410.
    pub expire: tokio::sync::watch::Sender<u64>,
    /// Cancelled on shutdown.
    pub cancel: CancellationToken,
}

impl Shared {
    pub fn new(
        cfg: Config,
        token: Option<String>,
        nodes: Vec<NodeState>,
        cancel: CancellationToken,
    ) -> Self {
        Shared {
            cfg,
            token: RwLock::new(token),
            access: RwLock::default(),
            nodes: RwLock::new(nodes),
            log: Mutex::new(EventLog::new(1)),
            events: Mutex::new(super::events::EventStore::default()),
            leases: Mutex::default(),
            expire: tokio::sync::watch::Sender::new(0),
            cancel,
        }
    }

    /// Whether a request with this `Authorization` value may pass (over http: always).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        if !self.cfg.https || self.cfg.auth != AuthKind::Token {
            return true;
        }
        let token = read(&self.token);
        match (
            token.as_deref(),
            authorization.and_then(|a| a.strip_prefix("Bearer ")),
        ) {
            (Some(expected), Some(got)) => expected == got.trim(),
            _ => false,
        }
    }

    /// A copy of one node's state, if it exists and is not removed.
    pub fn node(&self, index: usize) -> Option<NodeState> {
        read(&self.nodes).get(index).filter(|n| !n.removed).cloned()
    }

    pub fn node_by_name(&self, name: &str) -> Option<NodeState> {
        let index = name.strip_prefix("sim-node-")?.parse::<usize>().ok()?;
        self.node(index).filter(|n| n.name == name)
    }
}

pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn lock<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(rv: u64) -> Event {
        Event {
            rv,
            kind: Kind::Node,
            name: format!("n{rv}"),
            namespace: None,
            node_name: None,
            labels: BTreeMap::new(),
            line: Bytes::new(),
        }
    }

    #[test]
    fn log_resumes_until_trimmed_then_expires() {
        let mut log = EventLog::new(1);
        for _ in 0..3 {
            let rv = log.next_rv();
            log.push(event(rv));
        }
        let (backlog, _) = log.since(2).expect("resumable");
        assert_eq!(backlog.iter().map(|e| e.rv).collect::<Vec<_>>(), [3, 4]);
        assert!(log.since(1).is_some());
        for _ in 0..EVENT_LOG_CAP {
            let rv = log.next_rv();
            log.push(event(rv));
        }
        assert!(log.since(1).is_none(), "410 Expired");
        assert!(log.since(log.rv()).expect("current").0.is_empty());
    }
}
