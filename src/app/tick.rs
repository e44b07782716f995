//! The tick loop: once per resolution, aligned to it, scrape → process → sinks.
//!
//! Sharded ([`super::shard`]), a tick scrapes only this replica's nodes, hands a node's sets
//! to the network sinks only when this replica is its writer (to the store always), and ends
//! with the namespace and cluster aggregates summed from every replica's contributions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::api::health::Health;
use crate::model::Batch;
use crate::model::cluster::ClusterReader;
use crate::model::time::{self, Nanos};
use crate::process::Processor;
use crate::shard::assign::Role;
use crate::sink::FanOut;
use crate::source::scrape::Scraper;
use crate::source::watch::Synced;

#[derive(Clone)]
pub struct TickMetrics {
    duration: Histogram,
    ticks: Counter,
    nodes_scraped: Gauge,
    nodes_failed: Gauge,
    points: Gauge,
    nodes_known: Gauge,
    pods_known: Gauge,
}

impl TickMetrics {
    pub fn register(r: &mut Registry) -> TickMetrics {
        let m = TickMetrics {
            duration: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            ticks: Counter::default(),
            nodes_scraped: Gauge::default(),
            nodes_failed: Gauge::default(),
            points: Gauge::default(),
            nodes_known: Gauge::default(),
            pods_known: Gauge::default(),
        };
        r.register(
            "tick_duration_seconds",
            "Time from tick start to the batch being handed to the sinks",
            m.duration.clone(),
        );
        r.register("ticks", "Ticks completed", m.ticks.clone());
        r.register(
            "tick_nodes_scraped",
            "Nodes scraped successfully in the last tick",
            m.nodes_scraped.clone(),
        );
        r.register(
            "tick_nodes_failed",
            "Nodes that failed in the last tick",
            m.nodes_failed.clone(),
        );
        r.register("tick_points", "Points in the last batch", m.points.clone());
        r.register(
            "cluster_nodes",
            "Nodes known from the apiserver (ready or not)",
            m.nodes_known.clone(),
        );
        r.register(
            "cluster_pods",
            "Pods known from the apiserver",
            m.pods_known.clone(),
        );
        m
    }
}

/// The sinks, split: the store (which backs the APIs) takes every node a replica scrapes; the
/// network sinks only the nodes it writes. Unsharded, both take everything.
pub struct Sinks {
    pub local: FanOut,
    pub network: FanOut,
}

impl Sinks {
    /// Offers a batch to both; returns its points.
    fn send(&self, batch: &Arc<Batch>) -> usize {
        self.network.send(batch);
        self.local.send(batch)
    }

    pub async fn shutdown(self, budget: Duration) {
        futures::future::join(self.local.shutdown(budget), self.network.shutdown(budget)).await;
    }
}

pub struct TickLoop {
    pub resolution: Duration,
    /// Sharded collection, when on.
    pub shard: Option<super::shard::Shard>,
    pub scraper: Arc<Scraper>,
    pub cluster: ClusterReader,
    pub synced: tokio::sync::watch::Receiver<Synced>,
    pub health: Arc<Health>,
    pub metrics: TickMetrics,
}

impl TickLoop {
    pub async fn run(mut self, fanout: &Sinks, stop: CancellationToken) {
        let res_ns = i64::try_from(self.resolution.as_nanos()).unwrap_or(i64::MAX);
        // Wait for the first node list (pods too, briefly) before scraping.
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = self.first_node_list() => {}
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(10), self.synced.wait_for(|s| s.pods)).await;
        self.health.waiting("first scrape in progress");

        let mut processor = Processor::new();
        // The first tick runs at once (so data and rates come one resolution sooner); the
        // following ones at each multiple of the resolution.
        let mut window_end = time::align_down(time::now(), res_ns);
        loop {
            // A stop abandons the tick in progress (a hanging kubelet must not eat into the
            // shutdown budget); its batch would have been incomplete anyway.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.tick(&mut processor, fanout, window_end) => {}
            }
            window_end = time::align_down(time::now(), res_ns) + res_ns;
            let wait = Duration::from_nanos(u64::try_from(window_end - time::now()).unwrap_or(0));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Waits for the first node list; meanwhile `/healthz` says why it has not come.
    async fn first_node_list(&mut self) {
        loop {
            let synced = self.synced.borrow_and_update().clone();
            if synced.nodes {
                return;
            }
            if let Some(e) = synced.node_error {
                self.health
                    .waiting(format!("cannot list nodes from the apiserver: {e}"));
            }
            if self.synced.changed().await.is_err() {
                return;
            }
        }
    }

    /// One tick. Each node's sets are processed and handed to the sinks as soon as its scrape
    /// completes, so the tick never holds the whole cluster's sets; the namespaces and the
    /// cluster, which need every node, come last and end the tick.
    async fn tick(&self, processor: &mut Processor, sinks: &Sinks, window_end: Nanos) {
        let started = Instant::now();
        let plan = match &self.shard {
            Some(shard) => Some(shard.plan().await),
            None => None,
        };
        let mut nodes: Vec<_> = {
            let state = self.cluster.read();
            self.metrics.nodes_known.set(state.nodes.len() as i64);
            self.metrics.pods_known.set(state.pod_count() as i64);
            state.nodes.values().filter(|n| n.ready).cloned().collect()
        };
        let mut expected = Vec::new();
        let mut budget = self.resolution.mul_f64(0.95);
        if let (Some(shard), Some(plan)) = (&self.shard, &plan) {
            expected = nodes.iter().map(|n| Arc::clone(&n.name)).collect();
            nodes.retain(|n| plan.assignment.role(&n.name, shard.me()) != Role::None);
            shard.take_over(plan, &sinks.network, window_end);
            // Room to gather the peers' contributions before the next tick.
            budget = budget
                .saturating_sub(shard.peer_timeout)
                .max(self.resolution / 2);
        }
        let assigned = nodes.len();
        let writes: Vec<Arc<str>> = match (&self.shard, &plan) {
            (Some(shard), Some(plan)) => nodes
                .iter()
                .filter(|n| plan.assignment.role(&n.name, shard.me()) == Role::Writer)
                .map(|n| Arc::clone(&n.name))
                .collect(),
            _ => Vec::new(),
        };
        let deadline = started + budget;
        let max_age = 3 * i64::try_from(self.resolution.as_nanos()).unwrap_or(i64::MAX);
        let mut tick = processor.begin(window_end);
        // Sharded, this replica sums the pods of the nodes it writes; its peers sum the rest.
        let mut sums = crate::process::aggregate::Namespaces::default();
        let mut summed = Vec::new();
        if self.shard.is_some() {
            tick.sum_elsewhere();
        }
        let (mut scraped, mut points, mut writing) = (0usize, 0usize, 0usize);
        let failed = self
            .scraper
            .scrape_each(nodes, deadline, |sample| {
                let node = Arc::clone(&sample.node);
                let sets = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let state = self.cluster.read();
                    processor.node(&mut tick, sample, &state)
                }));
                let Ok(sets) = sets else {
                    tracing::error!(%node, "processing a node's sample panicked; node skipped");
                    return;
                };
                scraped += 1;
                let batch = Arc::new(Batch::piece(window_end, sets));
                let (Some(shard), Some(plan)) = (&self.shard, &plan) else {
                    points += sinks.send(&batch);
                    return;
                };
                points += sinks.local.send(&batch);
                let owners = plan.assignment.owners(&node);
                match owners.iter().position(|r| r == shard.me()) {
                    Some(0) => {
                        writing += 1;
                        sums.add_pods(&batch.sets, window_end);
                        summed.push(node);
                        sinks.network.send(&batch);
                    }
                    Some(_) => shard.keep(&node, Arc::clone(&owners[0]), window_end, &batch),
                    None => {}
                }
            })
            .await
            .len();
        let finished = processor.finish(tick, max_age);
        match (&self.shard, &plan) {
            (Some(shard), Some(plan)) => {
                shard.counted(assigned, writing);
                let sets = shard
                    .aggregate(
                        plan,
                        started + self.resolution.mul_f64(0.95),
                        window_end,
                        writes,
                        summed,
                        sums.into_namespaces(),
                        &expected,
                    )
                    .await
                    .unwrap_or_default();
                let last = Arc::new(Batch::new(window_end, sets));
                points += sinks.local.send(&last);
                if plan.view.aggregator {
                    sinks.network.send(&last);
                } else {
                    sinks
                        .network
                        .send(&Arc::new(Batch::new(window_end, Vec::new())));
                }
                if writing > 0 {
                    shard.membership.set_written(window_end);
                }
            }
            _ => points += sinks.send(&Arc::new(Batch::new(window_end, finished))),
        }
        self.health.batch_done(time::now());
        let elapsed = started.elapsed();
        self.metrics.duration.observe(elapsed.as_secs_f64());
        self.metrics.ticks.inc();
        self.metrics.nodes_scraped.set(scraped as i64);
        self.metrics.nodes_failed.set(failed as i64);
        self.metrics.points.set(points as i64);
        tracing::info!(
            window_end = %time::format_rfc3339(window_end),
            nodes = scraped,
            failed,
            duration_ms = elapsed.as_millis() as u64,
            points,
            "tick"
        );
    }
}
