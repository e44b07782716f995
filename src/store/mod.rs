//! The in-memory store behind the `metric` sink, read by the model API and `metrics.k8s.io`.
//!
//! One [`series::Series`] per entity (node, system container, pod, container, namespace,
//! cluster), keyed by its [`SetKey`] whose names are shared `Arc<str>`s. A series holds the
//! latest value of every metric (8 bytes each), a bounded history of [`HISTORY_METRICS`] and
//! the last two cumulative cpu samples plus the working set for the resource metrics API.
//! Bounds: history by age (`--metric_history`) and points (history / resolution), series by
//! `--max_series` (stale series are evicted first, then new ones are refused, both counted);
//! series not seen for longer than the history expire. Readers take snapshots under a read
//! lock and never trigger a scrape.

mod query;
mod resource;
mod series;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::{Batch, Nanos, SetKey};
use crate::sink::Sink;
pub use query::{ContainerUsage, PodUsage, Point};
pub use resource::Usage;
pub use series::HISTORY_METRICS;
use series::Series;

/// Default `--max_series`: 5,000 nodes × (node + 4 system containers + 30 pods × 3 sets).
pub const DEFAULT_MAX_SERIES: usize = 5_000 * (1 + 4 + 30 * 3);

/// Store bounds.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// How long history is kept, and how long an unseen series lives (ns).
    pub history: Nanos,
    /// The metric resolution (ns): history holds at most history / resolution + 1 points.
    pub resolution: Nanos,
    /// Most series (entities) held.
    pub max_series: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Default)]
struct StoreMetrics {
    series: Gauge,
    points: Gauge,
    evicted: Family<ReasonLabel, Counter>,
}

#[derive(Default)]
struct Inner {
    series: BTreeMap<SetKey, Series>,
    /// Timestamp of the newest batch.
    latest: Option<Nanos>,
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: RwLock<Inner>,
    opts: StoreOptions,
    max_points: usize,
    batches: AtomicU64,
    metrics: StoreMetrics,
}

impl Store {
    pub fn new(opts: StoreOptions, registry: &mut Registry) -> Store {
        let metrics = StoreMetrics::default();
        registry.register(
            "store_series",
            "Series (entities) held by the in-memory store",
            metrics.series.clone(),
        );
        registry.register(
            "store_points",
            "Values held by the in-memory store (latest values and history)",
            metrics.points.clone(),
        );
        registry.register(
            "store_series_evicted",
            "Series removed or refused: expired (unseen for the history), capacity (stale series \
             evicted at --max_series), refused (new series dropped at --max_series)",
            metrics.evicted.clone(),
        );
        let max_points = usize::try_from(opts.history / opts.resolution.max(1))
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(100_000);
        Store {
            inner: RwLock::new(Inner::default()),
            opts,
            max_points,
            batches: AtomicU64::new(0),
            metrics,
        }
    }

    fn evicted(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.metrics
                .evicted
                .get_or_create(&ReasonLabel { reason })
                .inc_by(n);
        }
    }

    /// Takes one batch. Holds the write lock for the whole batch (readers wait, never see
    /// half a batch).
    pub fn push(&self, batch: &Batch) {
        let ts = batch.timestamp;
        let keep = self.opts.history;
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.latest.is_some_and(|l| ts < l) {
            tracing::warn!("store: batch older than the newest one ignored");
            return;
        }
        inner.latest = Some(ts);
        // Expire first so that vanished entities make room.
        let before = inner.series.len();
        inner.series.retain(|_, s| ts - s.last_seen <= keep);
        self.evicted("expired", (before - inner.series.len()) as u64);

        let mut stale: Option<Vec<(Nanos, SetKey)>> = None;
        let (mut capacity, mut refused) = (0u64, 0u64);
        for set in &batch.sets {
            if let Some(s) = inner.series.get_mut(&set.key) {
                s.update(set, ts, keep, self.max_points);
                continue;
            }
            if inner.series.len() >= self.opts.max_series {
                let queue = stale.get_or_insert_with(|| {
                    let mut v: Vec<_> = inner
                        .series
                        .iter()
                        .filter(|(_, s)| s.last_seen < ts)
                        .map(|(k, s)| (s.last_seen, k.clone()))
                        .collect();
                    // Oldest last: popped first.
                    v.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
                    v
                });
                match queue.pop() {
                    Some((_, victim)) => {
                        inner.series.remove(&victim);
                        capacity += 1;
                    }
                    None => {
                        refused += 1;
                        continue;
                    }
                }
            }
            let mut s = Series::new();
            s.update(set, ts, keep, self.max_points);
            inner.series.insert(set.key.clone(), s);
        }
        self.evicted("capacity", capacity);
        self.evicted("refused", refused);
        if refused > 0 {
            tracing::warn!(
                refused,
                max_series = self.opts.max_series,
                "store full: new series dropped"
            );
        }
        let points: usize = inner.series.values().map(Series::points).sum();
        self.metrics.series.set(inner.series.len() as i64);
        self.metrics.points.set(points as i64);
        drop(inner);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Batches taken since start.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Timestamp of the newest batch.
    pub fn latest_timestamp(&self) -> Option<Nanos> {
        self.read().latest
    }

    /// Series held.
    pub fn series_count(&self) -> usize {
        self.read().series.len()
    }

    /// An estimate of the heap bytes held: series contents, map entries and B-tree nodes
    /// (names are shared with the cluster state and counted once per distinct `Arc`... not at
    /// all: they live as long as the entity does anyway).
    pub fn approx_bytes(&self) -> usize {
        let inner = self.read();
        let entry = std::mem::size_of::<SetKey>() + std::mem::size_of::<Series>();
        // B-tree leaves hold up to 11 entries and are at least half full; assume 3/4.
        let per_entry = entry * 4 / 3;
        inner
            .series
            .values()
            .map(|s| per_entry + s.heap_bytes())
            .sum()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `metric` sink: feeds the store (off the async runtime: a big batch takes milliseconds).
pub struct MetricSink(pub Arc<Store>);

impl Sink for MetricSink {
    fn name(&self) -> &'static str {
        "metric"
    }

    async fn export(&mut self, batch: Arc<Batch>) {
        let store = Arc::clone(&self.0);
        if tokio::task::spawn_blocking(move || store.push(&batch))
            .await
            .is_err()
        {
            tracing::error!("store: ingesting a batch panicked");
        }
    }
}

#[cfg(test)]
mod tests;
