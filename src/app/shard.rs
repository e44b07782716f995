//! The sharded part of a tick: which nodes this replica scrapes and writes, the standby's
//! recent ticks and their replay on takeover, and the complete aggregates summed from every
//! replica's contributions.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::time::Nanos;
use crate::model::{Batch, MetricSet};
use crate::shard::assign::{Assignment, Role};
use crate::shard::membership::{Membership, View};
use crate::shard::partials::{self, PartialsBook, TickPartials};
use crate::shard::peer::{PeerClient, PeerError};

/// How many ticks a standby keeps of each node it stands by for: enough to cover a dead
/// writer's Lease running out (up to two resolutions) and its `written` annotation lagging.
const STANDBY_TICKS: usize = 4;

/// The pause before asking again a peer that has no sums for the tick yet.
const PARTIALS_RETRY: Duration = Duration::from_millis(250);

#[derive(Clone)]
pub(super) struct ShardMetrics {
    assigned: Gauge,
    writing: Gauge,
    skipped: Counter,
    replayed: Counter,
}

impl ShardMetrics {
    pub fn register(r: &mut Registry) -> ShardMetrics {
        let m = ShardMetrics {
            assigned: Gauge::default(),
            writing: Gauge::default(),
            skipped: Counter::default(),
            replayed: Counter::default(),
        };
        r.register(
            "shard_nodes_assigned",
            "Nodes this replica scraped in the last tick (as writer or standby)",
            m.assigned.clone(),
        );
        r.register(
            "shard_nodes_writing",
            "Nodes whose points this replica wrote to the network sinks in the last tick",
            m.writing.clone(),
        );
        r.register(
            "shard_aggregates_skipped",
            "Ticks whose namespace and cluster aggregates were not written because some \
             node was in no answering replica's sums, or in two (a replica joining or leaving)",
            m.skipped.clone(),
        );
        r.register(
            "shard_ticks_replayed",
            "Node ticks a standby wrote on taking over from a writer that left",
            m.replayed.clone(),
        );
        m
    }
}

/// One node's recent ticks, kept by a standby.
struct Kept {
    writer: Arc<str>,
    ticks: VecDeque<(Nanos, Arc<Batch>)>,
}

/// This replica's share of the sharded collection.
pub(super) struct Shard {
    pub membership: Arc<Membership>,
    pub replication: usize,
    pub book: Arc<PartialsBook>,
    pub peers: Arc<PeerClient>,
    pub peer_timeout: Duration,
    pub metrics: ShardMetrics,
    standby: Mutex<HashMap<Arc<str>, Kept>>,
    /// The last reason logged for incomplete aggregates (logged once per change).
    last_incomplete: Mutex<Option<partials::Incomplete>>,
}

/// A tick's plan: the view it was made from and who scrapes what.
pub(super) struct Plan {
    pub view: Arc<View>,
    pub assignment: Assignment,
}

impl Shard {
    pub fn new(
        membership: Arc<Membership>,
        replication: usize,
        book: Arc<PartialsBook>,
        peers: Arc<PeerClient>,
        peer_timeout: Duration,
        metrics: ShardMetrics,
    ) -> Shard {
        Shard {
            membership,
            replication,
            book,
            peers,
            peer_timeout,
            metrics,
            standby: Mutex::default(),
            last_incomplete: Mutex::default(),
        }
    }

    pub fn me(&self) -> &Arc<str> {
        self.membership.identity()
    }

    /// Refreshes the membership (bounded by the peer timeout) so that every replica plans
    /// the tick from the same Leases, then assigns the nodes.
    pub async fn plan(&self) -> Plan {
        let _ = tokio::time::timeout(self.peer_timeout, self.membership.refresh()).await;
        let view = self.membership.view();
        let mut replicas = view.identities();
        // Before its first renew is seen (or while the apiserver is away) a replica still
        // counts itself: scraping a node twice beats leaving it out.
        if !replicas.contains(self.me()) {
            replicas.push(Arc::clone(self.me()));
        }
        Plan {
            assignment: Assignment::new(replicas, self.replication),
            view,
        }
    }

    /// Writes, for the nodes this replica now writes but stood by for, the kept ticks after
    /// the last one their previous writer handed to the sinks; forgets the nodes it no longer
    /// stands by for.
    pub fn take_over(&self, plan: &Plan, network: &crate::sink::FanOut, window_end: Nanos) {
        let mut standby = self.standby.lock().unwrap_or_else(|e| e.into_inner());
        let me = Arc::clone(self.me());
        let mut replays = Vec::new();
        standby.retain(|node, kept| match plan.assignment.role(node, &me) {
            Role::Standby => true,
            Role::None => false,
            Role::Writer => {
                if let Some(&written) = plan.view.written.get(&kept.writer) {
                    for (w, batch) in kept.ticks.drain(..) {
                        if w > written && w < window_end {
                            replays.push((w, batch));
                        }
                    }
                }
                false
            }
        });
        drop(standby);
        replays.sort_by_key(|(w, _)| *w);
        for (w, batch) in replays {
            self.metrics.replayed.inc();
            network.send(&Arc::new(Batch::new(w, batch.sets.clone())));
        }
    }

    /// Keeps a node's sets of this tick, as its standby.
    pub fn keep(&self, node: &Arc<str>, writer: Arc<str>, window_end: Nanos, batch: &Arc<Batch>) {
        let mut standby = self.standby.lock().unwrap_or_else(|e| e.into_inner());
        let kept = standby.entry(Arc::clone(node)).or_insert_with(|| Kept {
            writer: Arc::clone(&writer),
            ticks: VecDeque::new(),
        });
        kept.writer = writer;
        kept.ticks.push_back((window_end, Arc::clone(batch)));
        while kept.ticks.len() > STANDBY_TICKS {
            kept.ticks.pop_front();
        }
    }

    pub fn counted(&self, assigned: usize, writing: usize) {
        self.metrics.assigned.set(assigned as i64);
        self.metrics.writing.set(writing as i64);
    }

    /// Publishes this tick's contribution (`sums`: the pods of the nodes in `summed`, per
    /// namespace; `writes`: the nodes this replica writes), gathers the peers' (until
    /// `deadline` at the latest, so the next tick starts on time) and adds them up: the
    /// namespaces' and the cluster's sets, or `None` (counted, logged once per change) when
    /// some node is in no answering replica's share, or in two.
    #[allow(clippy::too_many_arguments)]
    pub async fn aggregate(
        &self,
        plan: &Plan,
        deadline: std::time::Instant,
        window_end: Nanos,
        writes: Vec<Arc<str>>,
        summed: Vec<Arc<str>>,
        sums: Vec<MetricSet>,
        expected: &[Arc<str>],
    ) -> Option<Vec<MetricSet>> {
        self.book.insert(TickPartials {
            window_end,
            replica: Arc::clone(self.me()),
            assigned: writes,
            summed,
            namespaces: sums,
        });
        let mut parts = Vec::new();
        parts.extend(self.book.get(window_end));
        let peers: Vec<_> = plan
            .view
            .members
            .iter()
            .filter(|m| m.identity != *self.me() && !m.url.is_empty())
            .map(|m| crate::model::replica::Peer {
                identity: Arc::clone(&m.identity),
                url: Arc::clone(&m.url),
            })
            .collect();
        let path = format!("/internal/shard/partials?window_end={window_end}");
        // A peer still scraping has no sums for this tick yet (404): it is asked again until
        // it has, or until the deadline. On a large cluster the replicas finish their ticks
        // seconds apart.
        let mut pending = peers;
        while !pending.is_empty() {
            let answers =
                tokio::time::timeout_at(deadline.into(), self.peers.get_all(&pending, &path))
                    .await
                    .unwrap_or_default();
            let mut later = Vec::new();
            for (peer, answer) in answers {
                match answer.map(|body| partials::decode(&body)) {
                    Ok(Ok(p)) if p.window_end == window_end => parts.push(Arc::new(p)),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => self.peers.invalid(&peer, e),
                    Err(PeerError::UnexpectedStatus { status: 404 }) => later.push(peer),
                    // Counted and logged by the client.
                    Err(_) => {}
                }
            }
            if std::time::Instant::now() + PARTIALS_RETRY >= deadline {
                break;
            }
            if !later.is_empty() {
                tokio::time::sleep(PARTIALS_RETRY).await;
            }
            pending = later;
        }
        let merged = partials::merge(window_end, &parts, expected);
        let mut last = self
            .last_incomplete
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match merged {
            Ok(sets) => {
                if last.take().is_some() {
                    tracing::info!("sharding: the aggregates are complete again");
                }
                Some(sets)
            }
            Err(e) => {
                self.metrics.skipped.inc();
                if last.as_ref() != Some(&e) {
                    tracing::warn!(
                        "sharding: namespace and cluster aggregates not written this tick: {e} \
                         (a replica joining or leaving); counted in \
                         heapster_shard_aggregates_skipped_total"
                    );
                    *last = Some(e);
                }
                None
            }
        }
    }
}
