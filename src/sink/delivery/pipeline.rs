//! The sink's side of delivery: queueing encoded bodies, and the flush at shutdown.
//!
//! A tick can hold more points than the memory queue (2.7 M at 1,000 nodes of 30 pods, against
//! InfluxDB's default `buffer_points` of 1 M), and it is encoded faster than any destination
//! takes it. So while the destination is taking writes, new bodies wait for room instead of
//! pushing the oldest out, until the next tick is due (the batches wait in the sink's queue
//! meanwhile); only when it is down, or too slow to take a tick within a resolution, do the
//! oldest bodies leave the queue: to the spool, or dropped and counted without one.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::metrics::reason;
use super::run::{Delivery, Shared};
use super::spool::Spool;
use super::{Body, BuildError, DeliveryOptions, DeliveryTuning, SinkMetrics, Stats, Transport};
use crate::model::Nanos;

/// The "queue full" warnings: the first at once, then at most one every [`DropWarnings::EVERY`]
/// with the points dropped since. Against a destination that cannot keep up, points are dropped
/// a body at a time, and a warning per body would flood the log at scale; every dropped point
/// is still counted in `heapster_sink_dropped_points_total`.
#[derive(Default)]
pub struct DropWarnings {
    last: Option<Instant>,
    since: usize,
}

impl DropWarnings {
    pub const EVERY: Duration = Duration::from_secs(10);

    /// Counts `dropped` points; the points to warn about now, if a warning is due.
    pub fn add(&mut self, dropped: usize, now: Instant) -> Option<usize> {
        self.since += dropped;
        if self.since == 0 {
            return None;
        }
        match self.last {
            Some(last) if now.saturating_duration_since(last) < Self::EVERY => None,
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.since))
            }
        }
    }
}

/// A sink's handle on its delivery.
pub struct Pipeline<T> {
    shared: Arc<Shared>,
    /// The delivery loop before it is spawned (construction may happen outside a runtime).
    pending: Option<Delivery<T>>,
    task: Option<JoinHandle<()>>,
    label: &'static str,
    drop_warnings: DropWarnings,
    /// How long a tick's bodies may wait for room ([`DeliveryTuning::room_wait`]).
    room_wait: Duration,
    /// Until when the current tick's pieces may wait for room (`None`: between ticks).
    tick_deadline: Option<tokio::time::Instant>,
    /// Cancelled when shutdown starts: no more waiting for room.
    closing: CancellationToken,
}

impl<T: Transport> Pipeline<T> {
    /// Opens the spool (finding what a previous run left in it) and prepares the delivery loop,
    /// started at the first body (or at once inside a runtime).
    pub fn new(
        transport: T,
        metrics: SinkMetrics,
        opts: DeliveryOptions,
        tuning: DeliveryTuning,
    ) -> Result<Pipeline<T>, BuildError> {
        let label = transport.label();
        let spool = match &opts.spool.dir {
            None => None,
            Some(dir) => {
                let spool =
                    Spool::open(dir, opts.spool.bytes).map_err(|source| BuildError::Spool {
                        dir: dir.display().to_string(),
                        source,
                    })?;
                if spool.has_records() {
                    tracing::info!(dir = %dir.display(), bytes = spool.bytes(), segments = spool.segment_count(), "{label}: delivering what the spool kept from a previous run");
                }
                Some(spool)
            }
        };
        let shared = Arc::new(Shared::new(opts.buffer_points, spool, metrics));
        shared.publish();
        let mut pipeline = Pipeline {
            pending: Some(Delivery {
                shared: Arc::clone(&shared),
                transport,
                concurrency: opts.concurrency.max(1),
                tuning,
            }),
            shared,
            task: None,
            label,
            drop_warnings: DropWarnings::default(),
            room_wait: tuning.room_wait,
            tick_deadline: None,
            closing: CancellationToken::new(),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            pipeline.start();
        }
        Ok(pipeline)
    }

    /// Spawns the delivery loop once.
    pub fn start(&mut self) {
        if let Some(d) = self.pending.take() {
            self.task = Some(tokio::spawn(d.run()));
        }
    }

    pub fn metrics(&self) -> &SinkMetrics {
        &self.shared.metrics
    }

    /// A snapshot of the sink's counters.
    pub fn stats(&self) -> Stats {
        self.shared.publish();
        self.shared.metrics.stats()
    }

    /// Hands the pipeline the token cancelled when shutdown starts.
    pub fn on_shutdown(&mut self, closing: CancellationToken) {
        self.closing = closing;
    }

    /// Until when a piece of the tick at `timestamp` may wait for room: the tick's window end
    /// plus the wait (with the resolution: until the next tick is due), so a sink that fell
    /// behind does not wait again but catches up. `more`: pieces of this tick follow.
    pub fn tick_deadline(&mut self, timestamp: Nanos, more: bool) -> tokio::time::Instant {
        let room_wait = self.room_wait;
        let deadline = *self.tick_deadline.get_or_insert_with(|| {
            let due = i128::from(timestamp) + room_wait.as_nanos() as i128;
            let left = (due - i128::from(crate::model::time::now())).max(0);
            let left = Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX));
            tokio::time::Instant::now() + left.min(room_wait)
        });
        if !more {
            self.tick_deadline = None;
        }
        deadline
    }

    /// Queues one body and wakes the delivery loop. With a `deadline`, a body that does not fit
    /// waits for room first ([`Pipeline::wait_for_room`]). Returns the points dropped (never
    /// with a spool that can be written).
    pub async fn push(&mut self, body: Body, deadline: Option<tokio::time::Instant>) -> usize {
        self.start();
        if let Some(deadline) = deadline {
            self.wait_for_room(body.points, deadline).await;
        }
        self.push_now(body)
    }

    /// Queues one body without waiting; returns the points dropped.
    pub fn push_now(&mut self, body: Body) -> usize {
        self.start();
        let shared = &self.shared;
        let dropped = if shared.has_spool() && shared.down.load(Ordering::Acquire) {
            // During an outage straight to disk: a crash loses nothing queued.
            shared.overflow(vec![body], reason::BUFFER_FULL)
        } else {
            let out = shared.buffer().push(body);
            shared.overflow(out, reason::BUFFER_FULL)
        };
        shared.publish();
        shared.wake.notify_one();
        if dropped > 0 {
            self.warn_dropped(dropped);
        }
        dropped
    }

    /// Waits until `points` more fit in the memory queue, as long as the destination is taking
    /// writes and until `deadline`.
    async fn wait_for_room(&self, points: usize, deadline: tokio::time::Instant) {
        let fits = || {
            self.closing.is_cancelled()
                || self.shared.down.load(Ordering::Acquire)
                || self.shared.buffer().has_room(points)
        };
        let started = tokio::time::Instant::now();
        // A tick past its wait (a sink behind) pushes the oldest out without waiting.
        if started >= deadline || fits() {
            return;
        }
        loop {
            // Registered before the check, so a round finishing in between is not missed.
            let progress = self.shared.progress.notified();
            if fits() {
                break;
            }
            self.shared.wake.notify_one();
            tokio::select! {
                () = progress => {}
                () = tokio::time::sleep_until(deadline) => break,
                () = self.closing.cancelled() => break,
            }
        }
        self.shared
            .metrics
            .wait
            .inc_by(started.elapsed().as_secs_f64());
    }

    /// Warns that the queue dropped points, at most every [`DropWarnings::EVERY`].
    fn warn_dropped(&mut self, dropped: usize) {
        if let Some(dropped) = self.drop_warnings.add(dropped, Instant::now()) {
            let label = self.label;
            tracing::warn!(
                dropped,
                every = ?DropWarnings::EVERY,
                "{label} buffer full: dropped the oldest points (all counted in \
                 heapster_sink_dropped_points_total; this warning at most once per interval; \
                 a spool_dir keeps them on disk instead)"
            );
        }
    }

    /// Delivers what is queued in memory within `budget`; what is left goes to the spool, or is
    /// reported and counted without one. The spool's own backlog waits for the next start.
    pub async fn flush(&mut self, budget: Duration) {
        self.start();
        let deadline = tokio::time::Instant::now() + budget;
        let shared = &self.shared;
        shared.flushing.store(true, Ordering::Release);
        shared.hurry.notify_waiters();
        shared.wake.notify_one();
        loop {
            let progress = shared.progress.notified();
            if shared.buffer().pending_points() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                break;
            }
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let left = shared.buffer().take_all();
        let points: usize = left.iter().map(|b| b.points).sum();
        let label = self.label;
        let lost = shared.overflow(left, reason::SHUTDOWN);
        let spooled = if let Some(mut spool) = shared.spool() {
            if let Err(e) = spool.seal() {
                shared.spool_error(&e);
            }
            Some(spool.bytes())
        } else {
            None
        };
        shared.publish();
        match spooled {
            Some(bytes) => {
                if lost > 0 {
                    tracing::warn!(
                        points = lost,
                        ?budget,
                        "{label} sink shut down with undelivered points (the spool could not take them)"
                    );
                }
                tracing::info!(
                    spooled_points = points - lost,
                    spool_bytes = bytes,
                    "{label} sink flushed; what is left waits in the spool for the next start"
                );
            }
            None if lost > 0 => {
                tracing::warn!(
                    points = lost,
                    ?budget,
                    "{label} sink shut down with undelivered points"
                );
            }
            None => tracing::info!("{label} sink flushed"),
        }
    }
}

impl<T> Drop for Pipeline<T> {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}
