//! The delivery loop: drains the buffer into InfluxDB, retrying with backoff while it is down.
//!
//! It runs as its own task so `export` never waits on InfluxDB: export encodes into the
//! buffer and returns; this loop sends up to `concurrency` chunks at a time, oldest first.
//! Chunks that fail transiently go back to the front of the buffer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::buffer::Buffer;
use super::client::{Api, Client, ClientError};
use super::metrics::{Metrics, outcome, reason};
use super::retry::{Backoff, Verdict, is_retriable_error, should_retry_response};
use super::schema::Chunk;

/// Timing knobs; the defaults suit production, tests shorten them.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryTuning {
    /// First retry delay; doubles (with jitter) up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// How long after its window end a tick's points may wait for room in a full buffer while
    /// InfluxDB is taking writes (see [`super::InfluxSink`]); the collector sets its
    /// resolution, so a tick waits at most until the next one is due.
    pub room_wait: Duration,
}

impl Default for DeliveryTuning {
    fn default() -> DeliveryTuning {
        DeliveryTuning {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            room_wait: Duration::from_secs(15),
        }
    }
}

/// State shared by the sink (producer) and the delivery loop (consumer).
pub struct Shared {
    buffer: Mutex<Buffer>,
    /// New chunks are waiting.
    pub wake: Notify,
    /// Something was delivered or dropped (flush waits on this).
    pub progress: Notify,
    /// Flush started: stop backing off.
    pub hurry: Notify,
    pub flushing: AtomicBool,
    /// InfluxDB is unreachable or failing writes (set with the outage warning, cleared when a
    /// write succeeds again): new points do not wait for room then, the oldest go.
    pub down: AtomicBool,
    pub metrics: Metrics,
}

impl Shared {
    pub fn new(buffer_points: usize, metrics: Metrics) -> Shared {
        Shared {
            buffer: Mutex::new(Buffer::new(buffer_points)),
            wake: Notify::new(),
            progress: Notify::new(),
            hurry: Notify::new(),
            flushing: AtomicBool::new(false),
            down: AtomicBool::new(false),
            metrics,
        }
    }

    /// The buffer; never held across an await.
    pub fn buffer(&self) -> MutexGuard<'_, Buffer> {
        // A poisoned lock means a panic mid-update of plain counters; the data is still usable.
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Updates the gauge from the buffer.
    pub fn publish(&self, buffer: &Buffer) {
        self.metrics
            .buffered_points
            .set(i64::try_from(buffer.pending_points()).unwrap_or(i64::MAX));
    }
}

/// What the loop needs besides the shared state.
pub struct Delivery {
    pub shared: Arc<Shared>,
    pub client: Client,
    pub version: Option<u8>,
    pub concurrency: usize,
    pub tuning: DeliveryTuning,
}

#[derive(Default)]
struct Logged {
    outage: Option<Instant>,
    partial: bool,
    rejected: bool,
}

impl Delivery {
    pub async fn run(self) {
        let mut api: Option<Api> = None;
        let mut backoff = Backoff::new(self.tuning.initial_backoff, self.tuning.max_backoff);
        let mut logged = Logged::default();
        loop {
            self.wait_for_chunks().await;
            let current = match api {
                Some(a) => a,
                None => match self.setup().await {
                    Ok(a) => {
                        api = Some(a);
                        a
                    }
                    Err(e) => {
                        self.outage(&mut logged, &e);
                        self.pause(backoff.next_delay(None)).await;
                        continue;
                    }
                },
            };
            let batch = self.shared.buffer().take(self.concurrency.max(1));
            let answers =
                futures::future::join_all(batch.iter().map(|c| self.send(current, c))).await;
            let (mut failed, mut hint, mut recreate) = (Vec::new(), None, false);
            for (chunk, verdict) in batch.into_iter().zip(answers) {
                match verdict {
                    Verdict::Written => self.finish(&chunk, None),
                    Verdict::Retry { after } => {
                        hint = hint.max(after);
                        failed.push(chunk);
                    }
                    Verdict::MissingDatabase => {
                        recreate = true;
                        failed.push(chunk);
                    }
                    Verdict::Partial { dropped, message } => {
                        if !std::mem::replace(&mut logged.partial, true) {
                            tracing::warn!(%message, "InfluxDB refused some lines (partial write); logging this once");
                        }
                        let n = dropped
                            .map_or(chunk.points, |d| usize::try_from(d).unwrap_or(usize::MAX));
                        self.shared
                            .metrics
                            .points_written
                            .inc_by(chunk.points.saturating_sub(n) as u64);
                        self.finish(&chunk, Some((reason::PARTIAL_WRITE, n.min(chunk.points))));
                    }
                    Verdict::Rejected { status, message } => {
                        if !std::mem::replace(&mut logged.rejected, true) {
                            tracing::warn!(status, %message, points = chunk.points, "InfluxDB rejected a write; dropping it (logging this once)");
                        }
                        self.finish(&chunk, Some((reason::REJECTED, chunk.points)));
                    }
                }
            }
            if recreate && let Err(e) = self.shared_ensure().await {
                tracing::debug!(error = %e, "creating the database failed");
            }
            if failed.is_empty() {
                backoff.reset();
                if let Some(since) = logged.outage.take() {
                    self.shared.down.store(false, Ordering::Release);
                    tracing::info!(down_for = ?since.elapsed(), "InfluxDB is reachable again");
                }
            } else {
                if !recreate {
                    self.outage(&mut logged, &"writes are failing");
                }
                self.shared.metrics.retries.inc_by(failed.len() as u64);
                let dropped = {
                    let mut buf = self.shared.buffer();
                    let d = buf.put_back(failed);
                    self.shared.publish(&buf);
                    d
                };
                self.shared.metrics.dropped(reason::BUFFER_FULL, dropped);
                if !recreate || hint.is_some() {
                    self.pause(backoff.next_delay(hint)).await;
                }
            }
            self.shared.progress.notify_waiters();
        }
    }

    async fn wait_for_chunks(&self) {
        loop {
            let notified = self.shared.wake.notified();
            if self.shared.buffer().has_chunks() {
                return;
            }
            notified.await;
        }
    }

    /// Detects the API and, for 1.x, makes sure the database and retention policy exist.
    async fn setup(&self) -> Result<Api, ClientError> {
        let api = self.client.detect(self.version).await?;
        if api == Api::V1 {
            self.shared_ensure().await?;
        }
        tracing::info!(url = %self.client.base(), api = ?api, "connected to InfluxDB");
        Ok(api)
    }

    /// `ensure_database`, where only transport errors are fatal: a user without admin rights
    /// can still write to an existing database.
    async fn shared_ensure(&self) -> Result<(), ClientError> {
        match self.client.ensure_database().await {
            Err(ClientError::Transport(e)) => Err(ClientError::Transport(e)),
            Err(e) => {
                tracing::warn!(error = %e, "could not create the InfluxDB database or retention policy; writing anyway");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Logs the start of an outage once; recovery is logged when a write succeeds again.
    fn outage(&self, logged: &mut Logged, err: &dyn std::fmt::Display) {
        if logged.outage.is_none() {
            logged.outage = Some(Instant::now());
            self.shared.down.store(true, Ordering::Release);
            // Points waiting for room stop waiting (also when no write round ends, as while
            // InfluxDB cannot be reached at all).
            self.shared.progress.notify_waiters();
            let pending = self.shared.buffer().pending_points();
            tracing::warn!(url = %self.client.base(), error = %err, pending, "InfluxDB is unavailable; buffering points and retrying");
        }
    }

    async fn send(&self, api: Api, chunk: &Chunk) -> Verdict {
        let m = &self.shared.metrics;
        let started = Instant::now();
        m.bytes_sent.inc_by(chunk.body.len() as u64);
        let result = self
            .client
            .write(api, chunk.body.clone(), chunk.gzipped)
            .await;
        m.write_duration.observe(started.elapsed().as_secs_f64());
        let verdict = match result {
            Ok(a) => should_retry_response(a.status, &a.headers, &a.body),
            Err(e) if is_retriable_error(&e) => {
                tracing::debug!(error = %e.without_url(), "write failed, will retry");
                Verdict::Retry { after: None }
            }
            Err(e) => Verdict::Rejected {
                status: 0,
                message: e.without_url().to_string(),
            },
        };
        m.request(match &verdict {
            Verdict::Written => outcome::SUCCESS,
            Verdict::Retry { .. } => outcome::RETRY,
            Verdict::MissingDatabase => outcome::MISSING_DATABASE,
            Verdict::Partial { .. } => outcome::PARTIAL,
            Verdict::Rejected { .. } => outcome::REJECTED,
        });
        verdict
    }

    /// A chunk is finished: written (no drop) or dropped for a reason.
    fn finish(&self, chunk: &Chunk, dropped: Option<(&'static str, usize)>) {
        match dropped {
            None => {
                self.shared
                    .metrics
                    .points_written
                    .inc_by(chunk.points as u64);
            }
            Some((why, n)) => self.shared.metrics.dropped(why, n),
        }
        let mut buf = self.shared.buffer();
        buf.done(chunk.points);
        self.shared.publish(&buf);
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
