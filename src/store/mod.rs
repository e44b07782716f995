//! The in-memory store behind the `metric` sink, read by the model API and `metrics.k8s.io`.
//!
//! One [`series::Series`] per entity (node, system container, pod, container, namespace,
//! cluster), keyed by its [`SetKey`] whose names are shared `Arc<str>`s. A series holds the
//! latest value of every metric (packed, about 4.5 bytes each), a bounded history of the
//! [`HistoryMetrics`] (`--history_metrics`: Heapster's `cpu/usage_rate` and `memory/usage`) and
//! the last two cumulative cpu samples plus the working set for the resource metrics API.
//! Bounds: history by age (`--metric_history`) and points (history / resolution), series by
//! [`SeriesLimit`]; series not seen for longer than the history expire. Readers take snapshots
//! under a read lock and never trigger a scrape.
//!
//! At the series cap the series held stay: they are updated in place, and only a series that
//! missed the last whole tick (its pod or node went away) may be evicted to make room, oldest
//! first. Other new series are refused and counted until room frees up, so a cluster larger
//! than the cap costs what a cluster at the cap costs, instead of replacing hundreds of
//! thousands of series every tick. The eviction candidates are collected once a tick, in the
//! pass that expires series.

mod query;
mod series;
mod usage;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use crate::model::history::{
    DEFAULT_STORE_MEMORY_BYTES, HISTORY_CANDIDATES, HistoryMetrics, SeriesLimit,
};
use crate::model::table::SetTable;
use crate::model::{Batch, Nanos, SetKey};
use crate::sink::Sink;
pub use query::{ContainerUsage, PodUsage, Point};
use series::{HistorySpec, Series, Shapes, Ticks};
pub use usage::Usage;

/// Sets ingested per write-lock hold.
const CHUNK: usize = 4096;

/// The estimated heap bytes of a series beside its history: the series itself, its packed
/// latest values (a container's dozens of values and filesystems), its place in the series
/// table and its share of the label shapes. Measured as `heapster_store_bytes` over
/// `heapster_store_series` with the simulator's payloads (shaped like 1.35 kubelets) and
/// `--history_metrics=` (no history): about 450.
const SERIES_FIXED_BYTES: usize = 460;

/// Bytes of one history value as most series keep it (the `Tiny` layout: an offset in
/// millicores or 4 KiB pages; measured as above with a history: 2.0 a value); values that do not
/// fit widen a series' history to 4 or 8 bytes.
const HISTORY_VALUE_BYTES: usize = 2;

/// The estimated heap bytes of a series with a full history of `max_points` slots of
/// `metrics`: what `--store_memory_bytes` is divided by.
pub fn series_bytes(metrics: HistoryMetrics, max_points: usize) -> usize {
    SERIES_FIXED_BYTES + max_points * metrics.len() * HISTORY_VALUE_BYTES
}

/// History slots a series keeps: history / resolution, both ends included.
fn max_points(history: Nanos, resolution: Nanos) -> usize {
    usize::try_from(history / resolution.max(1))
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .min(100_000)
}

/// How often, in batch time, the "store full" warning repeats while series are refused.
const WARN_EVERY: Nanos = 5 * 60 * 1_000_000_000;

/// Store bounds.
#[derive(Clone, Copy, Debug)]
pub struct StoreOptions {
    /// How long history is kept, and how long an unseen series lives (ns).
    pub history: Nanos,
    /// The metric resolution (ns): history holds at most history / resolution + 1 points.
    pub resolution: Nanos,
    /// What bounds the number of series (entities) held.
    pub limit: SeriesLimit,
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
    max_series: Gauge,
    points: Gauge,
    bytes: Gauge,
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
    /// The series cap, from [`StoreOptions::limit`].
    max_series: usize,
    /// The estimated bytes of a series with a full history ([`series_bytes`]).
    series_bytes: usize,
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
    /// Series that may be evicted for room in the open tick (they missed the last complete
    /// one), oldest last; collected when the tick starts, only near the cap.
    stale: Vec<(Nanos, SetKey)>,
    /// New series refused in the open tick, and in the last complete one.
    refused: u64,
    last_refused: u64,
    /// When the "store full" warning was last given (batch time).
    warned: Option<Nanos>,
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
    /// The last complete tick when this one started: a series seen before it missed that
    /// tick and may make room at the cap. Series seen in this tick or the last are never
    /// evicted for capacity.
    stale_before: Option<Nanos>,
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
            "store_max_series",
            "Most series the in-memory store holds (--max_series, or --store_memory_bytes over \
             the estimated bytes of a series)",
            metrics.max_series.clone(),
        );
        registry.register(
            "store_bytes",
            "Estimated heap bytes of the in-memory store's series (what --store_memory_bytes \
             bounds once every history is full)",
            metrics.bytes.clone(),
        );
        registry.register(
            "store_points",
            "Values held by the in-memory store (latest values and history)",
            metrics.points.clone(),
        );
        registry.register(
            "store_series_evicted",
            "Series removed or refused: expired (unseen for the history), capacity (series that \
             missed the last tick, evicted at the series cap for a new one), refused (new series \
             dropped at the series cap)",
            metrics.evicted.clone(),
        );
        let max_points = max_points(opts.history, opts.resolution);
        let series_bytes = series_bytes(opts.history_metrics, max_points);
        let max_series = match opts.limit {
            SeriesLimit::Series(n) => n,
            SeriesLimit::Bytes(b) => usize::try_from(b / series_bytes as u64).unwrap_or(usize::MAX),
        }
        .max(1);
        metrics.max_series.set(max_series as i64);
        Store {
            inner: RwLock::new(Inner::default()),
            ingest: Mutex::new(Ingest::default()),
            opts,
            max_series,
            series_bytes,
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
        let mut guard = self.ingest.lock().unwrap_or_else(|e| e.into_inner());
        let ingest = &mut *guard;
        let ts = batch.timestamp;
        let open = match ingest.open {
            Some(t) if t.ts == ts => t,
            open => {
                if self.read().latest.is_some_and(|l| ts < l) || open.is_some_and(|t| ts < t.ts) {
                    tracing::warn!("store: batch older than the newest one ignored");
                    return;
                }
                let t = self.start_tick(ingest, batch);
                ingest.open = Some(t);
                t
            }
        };
        let (seq, first, mut near) = (open.seq, open.first, open.near);
        let (mut capacity, mut refused) = (0u64, 0u64);
        for chunk in batch.sets.chunks(CHUNK) {
            let mut guard = self.write();
            let inner = &mut *guard;
            for set in chunk {
                if let Some(s) = inner.series.get_mut_near(&set.key, &mut near) {
                    s.update(set, ts, seq, first, self.spec, &mut inner.shapes);
                    continue;
                }
                if inner.series.len() >= self.max_series {
                    if !make_room(inner, &mut ingest.stale, open.stale_before) {
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
            t.sets += batch.sets.len();
        }
        self.evicted("capacity", capacity);
        self.evicted("refused", refused);
        ingest.refused += refused;
        if batch.more {
            return;
        }
        ingest.last_sets = ingest.open.take().map_or(0, |t| t.sets);
        ingest.stale = Vec::new();
        ingest.last_refused = std::mem::take(&mut ingest.refused);
        let mut inner = self.write();
        // Shapes of series that expired, were evicted or changed shape.
        inner.shapes.prune();
        inner.latest = Some(ts);
        let (mut points, mut bytes) = (0, inner.series.heap_bytes() + inner.shapes.heap_bytes());
        for s in inner.series.values() {
            points += s.points();
            bytes += s.heap_bytes();
        }
        let held = inner.series.len();
        drop(inner);
        self.metrics.series.set(held as i64);
        self.metrics.points.set(points as i64);
        self.metrics.bytes.set(bytes as i64);
        if ingest.last_refused > 0 && ingest.warned.is_none_or(|w| ts - w >= WARN_EVERY) {
            ingest.warned = Some(ts);
            self.warn_full(held, ingest.last_refused);
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Opens the tick of `batch`: expires the series unseen for the history (making room),
    /// collects the eviction candidates when the store is near its cap, sizes the table and
    /// takes a history slot. One of the two passes over every series a tick takes (the other
    /// totals them when the tick ends).
    fn start_tick(&self, ingest: &mut Ingest, batch: &Batch) -> OpenTick {
        let (ts, keep) = (batch.timestamp, self.opts.history);
        let mut inner = self.write();
        let stale_before = inner.latest;
        let before = inner.series.len();
        // Candidates are kept only when new series may meet the cap this tick: they cost a key
        // each, and a store well below its cap needs none.
        let near_cap = before >= self.max_series - self.max_series / 10 || ingest.last_refused > 0;
        let stale = &mut ingest.stale;
        stale.clear();
        inner.series.retain(|k, s| {
            if ts - s.last_seen > keep {
                return false;
            }
            if near_cap && stale_before.is_some_and(|l| s.last_seen < l) {
                stale.push((s.last_seen, k.clone()));
            }
            true
        });
        // Oldest last: popped first.
        stale.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        self.evicted("expired", (before - inner.series.len()) as u64);
        // The table sized for the tick in one step (as large as the last one, or this batch
        // when it is a whole tick): growing by steps holds the old and the new table at once
        // at every step.
        let expect = if batch.more { 0 } else { batch.sets.len() };
        let want = ingest.last_sets.max(expect).min(self.max_series);
        let len = inner.series.len();
        inner.series.reserve(want.saturating_sub(len));
        let seq = inner.ticks.push(ts, keep, self.spec.max_points);
        ingest.refused = 0;
        OpenTick {
            ts,
            seq,
            first: inner.ticks.first(),
            sets: 0,
            near: 0,
            stale_before,
        }
    }

    /// The "store full" warning: how many series the cluster has, and the flag and value
    /// that would hold them all.
    fn warn_full(&self, held: usize, refused: u64) {
        let wanted = held as u64 + refused;
        let needed = mebibytes(wanted * self.series_bytes as u64);
        let (max_series, per_series) = (self.max_series, self.series_bytes);
        let fix = match self.opts.limit {
            SeriesLimit::Bytes(_) => format!("--store_memory_bytes={needed}"),
            SeriesLimit::Series(_) => format!("--max_series={wanted} (about {needed} of memory)"),
        };
        tracing::warn!(
            max_series,
            refused,
            per_series,
            "store full: {refused} new series refused this tick, counted in \
             heapster_store_series_evicted_total{{reason=\"refused\"}}; to hold all {wanted} \
             series, raise {fix}"
        );
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

    /// The series cap ([`StoreOptions::limit`]).
    pub fn max_series(&self) -> usize {
        self.max_series
    }

    /// The estimated heap bytes of a series with a full history ([`series_bytes`]).
    pub fn series_bytes(&self) -> usize {
        self.series_bytes
    }

    /// Whether taking `batch` is a bounded piece of work: a middle piece of the open tick. The
    /// piece that opens a tick expires series and the last one totals them, each a pass over
    /// every series.
    fn is_light(&self, batch: &Batch) -> bool {
        batch.sets.len() <= INLINE_SETS
            && batch.more
            && self
                .ingest
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .open
                .is_some_and(|t| t.ts == batch.timestamp)
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

/// `bytes` rounded up to mebibytes, as `--store_memory_bytes` takes them.
fn mebibytes(bytes: u64) -> String {
    format!("{}Mi", bytes.div_ceil(1 << 20))
}

/// Evicts the series seen longest ago among `stale` if it still missed the last complete tick
/// (`stale_before`): a candidate seen again in this tick stays. Each candidate is looked at once
/// a tick.
fn make_room(
    inner: &mut Inner,
    stale: &mut Vec<(Nanos, SetKey)>,
    stale_before: Option<Nanos>,
) -> bool {
    let Some(before) = stale_before else {
        return false;
    };
    while let Some((_, victim)) = stale.pop() {
        if inner
            .series
            .get(&victim)
            .is_some_and(|s| s.last_seen < before)
        {
            inner.series.remove(&victim);
            return true;
        }
    }
    false
}

/// Batches of at most this many sets are taken on the async runtime.
const INLINE_SETS: usize = 1024;

/// The `metric` sink: feeds the store (off the async runtime: a big batch, or a pass over every
/// series, takes milliseconds).
pub struct MetricSink(pub Arc<Store>);

impl Sink for MetricSink {
    fn name(&self) -> &'static str {
        "metric"
    }

    async fn export(&mut self, batch: Arc<Batch>) {
        // A node's piece takes tens of microseconds: not worth a thread hop. Anything that
        // passes over every series runs off the async workers, which would otherwise stall
        // (shutdown included) for as long as the store is large.
        if self.0.is_light(&batch) {
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
