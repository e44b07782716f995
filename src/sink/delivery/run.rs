//! The delivery loop: drains the memory queue, then the spool, into the destination, retrying
//! with backoff while it is down.
//!
//! It runs as its own task so `export` never waits on the destination: export encodes into the
//! queue and returns; this loop sends up to `concurrency` bodies at a time, oldest first, live
//! data (the memory queue) before the backlog (the spool). Bodies that fail transiently go
//! back: to the front of the queue, or, while the destination is down and there is a spool, to
//! the spool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::buffer::Buffer;
use super::metrics::{SinkMetrics, outcome, reason};
use super::retry::{Backoff, Verdict};
use super::spool::Spool;
use super::{Body, DeliveryTuning, Transport};

/// State shared by the sink (producer) and the delivery loop (consumer).
pub struct Shared {
    buffer: Mutex<Buffer>,
    spool: Option<Mutex<Spool>>,
    /// New bodies are waiting.
    pub wake: Notify,
    /// Something was delivered or dropped (flush waits on this).
    pub progress: Notify,
    /// Flush started: stop backing off.
    pub hurry: Notify,
    pub flushing: AtomicBool,
    /// The destination is unreachable or failing writes (set with the outage warning, cleared
    /// when a write succeeds again): new points do not wait for room then, and go to the
    /// spool when there is one.
    pub down: AtomicBool,
    spool_failed: AtomicBool,
    pub metrics: SinkMetrics,
}

impl Shared {
    pub fn new(buffer_points: usize, spool: Option<Spool>, metrics: SinkMetrics) -> Shared {
        Shared {
            buffer: Mutex::new(Buffer::new(buffer_points)),
            spool: spool.map(Mutex::new),
            wake: Notify::new(),
            progress: Notify::new(),
            hurry: Notify::new(),
            flushing: AtomicBool::new(false),
            down: AtomicBool::new(false),
            spool_failed: AtomicBool::new(false),
            metrics,
        }
    }

    /// The memory queue; never held across an await, nor while taking the spool.
    pub fn buffer(&self) -> MutexGuard<'_, Buffer> {
        // A poisoned lock means a panic mid-update of plain counters; the data is still usable.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The spool, if there is one; never held across an await, nor while taking the queue.
    pub fn spool(&self) -> Option<MutexGuard<'_, Spool>> {
        self.spool
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn has_spool(&self) -> bool {
        self.spool.is_some()
    }

    /// Bodies leaving the memory queue: to the spool, or dropped and counted for `why` when
    /// there is none (or it cannot be written). Returns the points dropped.
    pub fn overflow(&self, bodies: Vec<Body>, why: &'static str) -> usize {
        if bodies.is_empty() {
            return 0;
        }
        let mut lost = 0;
        match self.spool() {
            Some(mut spool) => {
                for body in bodies {
                    if let Err(e) = spool.append(&body) {
                        lost += body.points;
                        self.spool_error(&e);
                        self.metrics.dropped(reason::SPOOL_ERROR, body.points);
                    }
                }
                return lost;
            }
            None => lost = bodies.iter().map(|b| b.points).sum(),
        }
        self.metrics.dropped(why, lost);
        lost
    }

    /// Logs a spool I/O error once (every lost point is counted).
    pub fn spool_error(&self, e: &std::io::Error) {
        if !self.spool_failed.swap(true, Ordering::Relaxed) {
            tracing::error!(error = %e, "cannot write or read the spool; points that cannot be \
                spooled are dropped (counted as spool_error): check the spool directory's disk \
                and permissions (logging this once)");
        }
    }

    /// Updates the gauges (queued points, spool size, delivery lag) and counts what the spool
    /// lost since the last call.
    pub fn publish(&self) {
        let (pending, oldest) = {
            let buf = self.buffer();
            (buf.pending_points(), buf.oldest())
        };
        let m = &self.metrics;
        m.queued_points
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        let mut oldest = oldest;
        if let Some(mut spool) = self.spool() {
            let losses = spool.take_losses();
            m.dropped(reason::SPOOL_FULL, losses.full as usize);
            m.dropped(reason::SPOOL_CORRUPT, losses.corrupt as usize);
            m.spool_bytes
                .set(i64::try_from(spool.bytes()).unwrap_or(i64::MAX));
            m.spool_segments
                .set(i64::try_from(spool.segment_count()).unwrap_or(i64::MAX));
            oldest = match (oldest, spool.oldest()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let lag = oldest.map_or(0.0, |ts| {
            ((crate::model::time::now() - ts) as f64 / 1e9).max(0.0)
        });
        m.lag.set(lag);
    }
}

/// Where a body being sent came from.
#[derive(Clone, Copy, Debug)]
enum Origin {
    /// The memory queue, with its ticket.
    Memory(u64),
    /// The spool, with its segment.
    Spool(u64),
}

/// What the loop needs besides the shared state.
pub struct Delivery<T> {
    pub shared: Arc<Shared>,
    pub transport: T,
    pub concurrency: usize,
    pub tuning: DeliveryTuning,
}

#[derive(Default)]
struct Logged {
    outage: Option<Instant>,
    partial: bool,
    rejected: bool,
    too_large: bool,
    unauthorized: bool,
}

impl<T: Transport> Delivery<T> {
    pub async fn run(self) {
        let mut ready = false;
        let mut backoff = Backoff::new(self.tuning.initial_backoff, self.tuning.max_backoff);
        let mut logged = Logged::default();
        let label = self.transport.label();
        loop {
            self.wait_for_work().await;
            if !ready {
                match self.transport.setup().await {
                    Ok(()) => {
                        ready = true;
                        tracing::info!(url = %self.transport.target(), "connected to {label}");
                    }
                    Err(e) => {
                        self.outage(&mut logged, &e);
                        self.pause(backoff.next_delay(None)).await;
                        continue;
                    }
                }
            }
            let batch = self.take();
            if batch.is_empty() {
                // The spool could not be read (counted and logged); look again later.
                self.pause(self.tuning.initial_backoff).await;
                continue;
            }
            let answers = futures::future::join_all(batch.iter().map(|(_, b)| self.send(b))).await;
            let (mut failed, mut hint, mut setup) = (Vec::new(), None, false);
            for ((origin, body), verdict) in batch.into_iter().zip(answers) {
                match verdict {
                    Verdict::Written => {
                        self.shared.metrics.sent_points.inc_by(body.points as u64);
                        self.finish(origin);
                    }
                    Verdict::Retry { after } => {
                        hint = hint.max(after);
                        failed.push((origin, body));
                    }
                    Verdict::Setup => {
                        setup = true;
                        ready = false;
                        failed.push((origin, body));
                    }
                    Verdict::TooLarge => match self.transport.split(&body) {
                        Some((a, b)) => self.put_back(origin, vec![a, b]),
                        None => {
                            if !std::mem::replace(&mut logged.too_large, true) {
                                tracing::warn!(
                                    points = body.points,
                                    "{label} refused a request as too large and it cannot be split further; dropping it (logging this once)"
                                );
                            }
                            self.shared.metrics.dropped(reason::TOO_LARGE, body.points);
                            self.finish(origin);
                        }
                    },
                    Verdict::Unauthorized { status, message } => {
                        if !std::mem::replace(&mut logged.unauthorized, true) {
                            tracing::error!(status, %message, fix = self.transport.auth_fix(), "{label} refused the credentials; keeping the data and retrying (logging this once)");
                        }
                        failed.push((origin, body));
                    }
                    Verdict::Partial { dropped, message } => {
                        if !std::mem::replace(&mut logged.partial, true) {
                            tracing::warn!(%message, "{label} refused some points (partial write); logging this once");
                        }
                        let n = dropped
                            .map_or(body.points, |d| usize::try_from(d).unwrap_or(usize::MAX))
                            .min(body.points);
                        let m = &self.shared.metrics;
                        m.sent_points.inc_by((body.points - n) as u64);
                        m.dropped(reason::PARTIAL_WRITE, n);
                        self.finish(origin);
                    }
                    Verdict::Rejected { status, message } => {
                        if !std::mem::replace(&mut logged.rejected, true) {
                            tracing::warn!(status, %message, points = body.points, "{label} rejected a write; dropping it (logging this once)");
                        }
                        self.shared.metrics.dropped(reason::REJECTED, body.points);
                        self.finish(origin);
                    }
                }
            }
            if failed.is_empty() {
                backoff.reset();
                if let Some(since) = logged.outage.take() {
                    self.shared.down.store(false, Ordering::Release);
                    logged.unauthorized = false;
                    tracing::info!(down_for = ?since.elapsed(), "{label} is reachable again");
                }
            } else {
                if !setup {
                    self.outage(&mut logged, &"writes are failing");
                }
                self.shared.metrics.retries.inc_by(failed.len() as u64);
                // Newest first: each goes to the front, so they keep their order.
                for (origin, body) in failed.into_iter().rev() {
                    self.put_back(origin, vec![body]);
                }
                if !setup || hint.is_some() {
                    self.pause(backoff.next_delay(hint)).await;
                }
            }
            self.shared.publish();
            self.shared.progress.notify_waiters();
        }
    }

    async fn wait_for_work(&self) {
        loop {
            let notified = self.shared.wake.notified();
            if self.shared.buffer().has_bodies()
                || self.shared.spool().is_some_and(|s| s.has_records())
            {
                return;
            }
            notified.await;
        }
    }

    /// Up to `concurrency` bodies: from the memory queue, else from the spool.
    fn take(&self) -> Vec<(Origin, Body)> {
        let n = self.concurrency.max(1);
        let live = self.shared.buffer().take(n);
        if !live.is_empty() {
            return live
                .into_iter()
                .map(|(t, b)| (Origin::Memory(t), b))
                .collect();
        }
        let Some(mut spool) = self.shared.spool() else {
            return Vec::new();
        };
        match spool.take(n) {
            Ok(taken) => taken
                .into_iter()
                .map(|(s, b)| (Origin::Spool(s), b))
                .collect(),
            Err(e) => {
                drop(spool);
                self.shared.spool_error(&e);
                self.shared.publish();
                Vec::new()
            }
        }
    }

    /// A body is finished: delivered or dropped.
    fn finish(&self, origin: Origin) {
        match origin {
            Origin::Memory(ticket) => self.shared.buffer().done(ticket),
            Origin::Spool(seq) => {
                if let Some(mut s) = self.shared.spool() {
                    s.done(seq);
                }
            }
        }
    }

    /// A body (or what replaces it) goes back to be sent again: to the spool while the
    /// destination is down, else where it came from.
    fn put_back(&self, origin: Origin, bodies: Vec<Body>) {
        match origin {
            Origin::Memory(ticket) => {
                let down = self.shared.down.load(Ordering::Acquire);
                if down && self.shared.has_spool() {
                    self.shared.buffer().done(ticket);
                    self.shared.overflow(bodies, reason::BUFFER_FULL);
                } else {
                    let out = self.shared.buffer().put_back(ticket, bodies);
                    self.shared.overflow(out, reason::BUFFER_FULL);
                }
            }
            Origin::Spool(seq) => {
                if let Some(mut s) = self.shared.spool() {
                    s.put_back(seq, bodies);
                }
            }
        }
    }

    /// Logs the start of an outage once; recovery is logged when a write succeeds again. With
    /// a spool, the queued points move there: a crash during the outage loses none of them.
    fn outage(&self, logged: &mut Logged, err: &dyn std::fmt::Display) {
        if logged.outage.is_some() {
            return;
        }
        logged.outage = Some(Instant::now());
        self.shared.down.store(true, Ordering::Release);
        // Points waiting for room stop waiting (also when no write round ends, as while the
        // destination cannot be reached at all).
        self.shared.progress.notify_waiters();
        let pending = self.shared.buffer().pending_points();
        let label = self.transport.label();
        let url = self.transport.target();
        if self.shared.has_spool() {
            let waiting = self.shared.buffer().take_waiting();
            self.shared.overflow(waiting, reason::BUFFER_FULL);
            self.shared.publish();
            tracing::warn!(%url, error = %err, pending, "{label} is unavailable; spooling points to disk and retrying");
        } else {
            tracing::warn!(%url, error = %err, pending, "{label} is unavailable; buffering points and retrying");
        }
    }

    async fn send(&self, body: &Body) -> Verdict {
        let m = &self.shared.metrics;
        let started = Instant::now();
        m.sent_bytes.inc_by(body.bytes.len() as u64);
        let verdict = self.transport.send(body).await;
        m.duration.observe(started.elapsed().as_secs_f64());
        m.request(match &verdict {
            Verdict::Written => outcome::SUCCESS,
            Verdict::Retry { .. } => outcome::RETRY,
            Verdict::Setup => outcome::SETUP,
            Verdict::TooLarge => outcome::TOO_LARGE,
            Verdict::Unauthorized { .. } => outcome::UNAUTHORIZED,
            Verdict::Partial { .. } => outcome::PARTIAL,
            Verdict::Rejected { .. } => outcome::REJECTED,
        });
        verdict
    }

    /// Sleeps for a backoff delay; a flush cuts it short.
    async fn pause(&self, delay: Duration) {
        let delay = if self.shared.flushing.load(Ordering::Acquire) {
            delay.min(self.tuning.initial_backoff)
        } else {
            delay
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = self.shared.hurry.notified() => {}
        }
    }
}
