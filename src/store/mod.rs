//! The in-memory store behind the `metric` sink, read by the model API and `metrics.k8s.io`.
//!
//! One [`series::Series`] per entity (node, system container, pod, container, namespace,
//! cluster), keyed by its [`SetKey`] whose names are shared `Arc<str>`s. A series holds the
//! latest value of every metric (packed, about 4.5 bytes each), a bounded history of the
//! [`HistoryMetrics`] (`--history_metrics`: Heapster's `cpu/usage_rate` and `memory/usage`) and
//! the last two cumulative cpu samples plus the working set for the resource metrics API.
//! Bounds: history by age (`--metric_history`) and points (history / resolution), series by
//! `--max_series` (stale series are evicted first, then new ones are refused, both counted);
//! series not seen for longer than the history expire. Readers take snapshots under a read
//! lock and never trigger a scrape.

mod query;
mod resource;
mod series;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::table::SetTable;
use crate::model::{Batch, Nanos, SetKey};
use crate::sink::Sink;
pub use query::{ContainerUsage, PodUsage, Point};
pub use resource::Usage;
pub use series::{HISTORY_CANDIDATES, HistoryMetrics};
use series::{HistorySpec, Series, Shapes, Ticks};

/// Sets ingested per write-lock hold.
const CHUNK: usize = 4096;

/// Default `--max_series`: 5,000 nodes × (node + 4 system containers + 30 pods with two
/// containers each = 95 series) plus room for namespaces and churn.
pub const DEFAULT_MAX_SERIES: usize = 500_000;

/// Store bounds.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// How long history is kept, and how long an unseen series lives (ns).
    pub history: Nanos,
    /// The metric resolution (ns): history holds at most history / resolution + 1 points.
    pub resolution: Nanos,
    /// Most series (entities) held.
    pub max_series: usize,
    /// The metrics kept for the whole history (`--history_metrics`).
    pub history_metrics: HistoryMetrics,
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
    /// Series by key. Hashed (foldhash): ingest looks up every entity once per batch; the few
    /// ordered listings the APIs need sort what they collect.
    series: SetTable<Series>,
    /// Timestamp of the newest batch.
    latest: Option<Nanos>,
    /// Timestamps of the batches the history slots hold.
    ticks: Ticks,
    /// Label shapes shared by the series.
    shapes: Shapes,
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: RwLock<Inner>,
    /// Serialises ingestion (the lock on `inner` is released between chunks), and knows the
    /// tick whose pieces are coming in.
    ingest: Mutex<Ingest>,
    opts: StoreOptions,
    /// What each series' history holds.
    spec: HistorySpec,
    batches: AtomicU64,
    metrics: StoreMetrics,
    /// Recent whole batches, for tests and debugging only: off (`None`) until
    /// [`Store::snapshot`] is first called, then at most [`TAP_BATCHES`].
    tap: Mutex<Option<Tap>>,
}

/// What ingestion remembers between batches.
#[derive(Default)]
struct Ingest {
    /// The tick whose pieces are being taken.
    open: Option<OpenTick>,
    /// Sets in the last complete tick: the series table is sized for as many when a tick
    /// starts (pieces do not say how many series are new).
    last_sets: usize,
}

/// The tick whose pieces are being taken.
#[derive(Clone, Copy)]
struct OpenTick {
    ts: Nanos,
    /// Its history slot, and the oldest slot kept.
    seq: u64,
    first: u64,
    /// Sets taken so far.
    sets: usize,
    /// Where in the series table the next set's series probably is (just after the last one
    /// found: [`SetTable::get_mut_near`]).
    near: usize,
}

/// Whole batches for [`Store::snapshot`]; pieces are put together as they come.
#[derive(Default)]
struct Tap {
    whole: VecDeque<Arc<Batch>>,
    partial: Option<Batch>,
}

/// Whole batches kept once [`Store::snapshot`] was called.
const TAP_BATCHES: usize = 3;

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
            ingest: Mutex::new(Ingest::default()),
            opts,
            spec: HistorySpec {
                metrics: opts.history_metrics,
                max_points,
            },
            batches: AtomicU64::new(0),
            metrics,
            tap: Mutex::new(None),
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

    /// Takes one batch: a whole tick, or a piece of one (see [`Batch`]). The write lock is
    /// taken per chunk of [`CHUNK`] sets, so readers wait at most one chunk; the tick's
    /// timestamp is published when its last piece is in (until then readers of "the latest
    /// batch" take series seen at or after the previous one).
    pub fn push(&self, batch: &Batch) {
        let mut ingest = self.ingest.lock().unwrap_or_else(|e| e.into_inner());
        let ts = batch.timestamp;
        let keep = self.opts.history;
        let (seq, first) = match ingest.open {
            Some(t) if t.ts == ts => (t.seq, t.first),
            open => {
                let mut inner = self.write();
                if inner.latest.is_some_and(|l| ts < l) || open.is_some_and(|t| ts < t.ts) {
                    tracing::warn!("store: batch older than the newest one ignored");
                    return;
                }
                // A new tick. Expire first so that vanished entities make room.
                let before = inner.series.len();
                inner.series.retain(|_, s| ts - s.last_seen <= keep);
                self.evicted("expired", (before - inner.series.len()) as u64);
                // The table sized for the tick in one step (as large as the last one, or this
                // batch when it is a whole tick): growing by steps holds the old and the new
                // table at once at every step.
                let expect = if batch.more { 0 } else { batch.sets.len() };
                let want = ingest.last_sets.max(expect).min(self.opts.max_series);
                let len = inner.series.len();
                inner.series.reserve(want.saturating_sub(len));
                let seq = inner.ticks.push(ts, keep, self.spec.max_points);
                let t = OpenTick {
                    ts,
                    seq,
                    first: inner.ticks.first(),
                    sets: 0,
                    near: 0,
                };
                ingest.open = Some(t);
                (t.seq, t.first)
            }
        };
        let mut near = ingest.open.map_or(0, |t| t.near);
        if let Some(t) = ingest.open.as_mut() {
            t.sets += batch.sets.len();
        }
        let mut stale: Option<Vec<(Nanos, SetKey)>> = None;
        let (mut capacity, mut refused) = (0u64, 0u64);
        for chunk in batch.sets.chunks(CHUNK) {
            let mut guard = self.write();
            let inner = &mut *guard;
            for set in chunk {
                if let Some(s) = inner.series.get_mut_near(&set.key, &mut near) {
                    s.update(set, ts, seq, first, self.spec, &mut inner.shapes);
                    continue;
                }
                if inner.series.len() >= self.opts.max_series {
                    if !self.make_room(inner, &mut stale, ts) {
                        refused += 1;
                        continue;
                    }
                    capacity += 1;
                }
                let mut s = Series::new();
                s.update(set, ts, seq, first, self.spec, &mut inner.shapes);
                inner.series.insert_new(set.key.clone(), s);
            }
        }
        if let Some(t) = ingest.open.as_mut() {
            t.near = near;
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
        if batch.more {
            return;
        }
        ingest.last_sets = ingest.open.take().map_or(0, |t| t.sets);
        let mut inner = self.write();
        // Shapes of series that expired, were evicted or changed shape.
        inner.shapes.prune();
        inner.latest = Some(ts);
        let points: usize = inner.series.values().map(Series::points).sum();
        self.metrics.series.set(inner.series.len() as i64);
        self.metrics.points.set(points as i64);
        drop(inner);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Evicts the series seen longest ago, if it is not in the batch being taken.
    fn make_room(
        &self,
        inner: &mut Inner,
        stale: &mut Option<Vec<(Nanos, SetKey)>>,
        ts: Nanos,
    ) -> bool {
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
        while let Some((_, victim)) = queue.pop() {
            // Seen again earlier in this batch: not stale any more.
            if inner.series.get(&victim).is_some_and(|s| s.last_seen < ts) {
                inner.series.remove(&victim);
                return true;
            }
        }
        false
    }

    /// Test and debugging aid: the whole batches taken since the first call (at most
    /// three, oldest first). The first call returns nothing; production never calls it, so
    /// the store holds no batch.
    #[doc(hidden)]
    pub fn snapshot(&self) -> Vec<Arc<Batch>> {
        let mut tap = self.tap.lock().unwrap_or_else(|e| e.into_inner());
        tap.get_or_insert_with(Tap::default)
            .whole
            .iter()
            .cloned()
            .collect()
    }

    fn record(&self, batch: &Arc<Batch>) {
        let mut tap = self.tap.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tap) = tap.as_mut() else {
            return;
        };
        let whole = match tap.partial.take() {
            None if !batch.more => Arc::clone(batch),
            partial => {
                let mut p = partial
                    .filter(|p| p.timestamp == batch.timestamp)
                    .unwrap_or_else(|| Batch::new(batch.timestamp, Vec::new()));
                p.sets.extend(batch.sets.iter().cloned());
                if batch.more {
                    tap.partial = Some(p);
                    return;
                }
                Arc::new(p)
            }
        };
        tap.whole.push_back(whole);
        while tap.whole.len() > TAP_BATCHES {
            tap.whole.pop_front();
        }
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

    /// An estimate of the heap bytes held: series contents and the series table (its slab,
    /// index buckets and control bytes). Names are not counted: they are `Arc`s shared with
    /// the batches and the cluster state.
    pub fn approx_bytes(&self) -> usize {
        let inner = self.read();
        inner.series.heap_bytes()
            + inner.series.values().map(Series::heap_bytes).sum::<usize>()
            + inner.shapes.heap_bytes()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Batches of at most this many sets are taken on the async runtime.
const INLINE_SETS: usize = 1024;

/// The `metric` sink: feeds the store (off the async runtime: a big batch takes milliseconds).
pub struct MetricSink(pub Arc<Store>);

impl Sink for MetricSink {
    fn name(&self) -> &'static str {
        "metric"
    }

    async fn export(&mut self, batch: Arc<Batch>) {
        // A node's piece takes tens of microseconds: not worth a thread hop.
        if batch.sets.len() <= INLINE_SETS {
            self.0.push(&batch);
            self.0.record(&batch);
            return;
        }
        let store = Arc::clone(&self.0);
        if tokio::task::spawn_blocking(move || {
            store.push(&batch);
            store.record(&batch);
        })
        .await
        .is_err()
        {
            tracing::error!("store: ingesting a batch panicked");
        }
    }
}

#[cfg(test)]
mod tests;
