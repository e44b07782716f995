//! [`Eventer`]: the watch task and the flush loop, started together and stopped with a
//! deadline. Used by the `eventer` binary and by `heapster --event_sink`.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::Api;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::buffer::EventBuffer;
use super::dedup::Dedup;
use super::metrics::EventMetrics;
use super::sinks::EventSink;
use super::watch::EventWatch;
use crate::api::health::Health;
use crate::model::time::now;

/// Tuning of the pipeline.
#[derive(Clone, Copy, Debug)]
pub struct EventerOptions {
    /// How often buffered events are handed to the sinks (`--frequency`).
    pub frequency: Duration,
    /// Bound of the buffer between the watch and the sinks (`--max_buffered_events`).
    pub max_buffered_events: usize,
    /// Bound of the last-exported map per uid.
    pub max_tracked_events: usize,
}

impl Default for EventerOptions {
    fn default() -> Self {
        EventerOptions {
            frequency: Duration::from_secs(30),
            max_buffered_events: 100_000,
            max_tracked_events: 200_000,
        }
    }
}

/// Whether this process exports events now (see [`Eventer::export_only_when`]).
pub type ExportGate = Arc<dyn Fn() -> bool + Send + Sync>;

/// A running eventer.
pub struct Eventer {
    buffer: Arc<EventBuffer>,
    gate: Arc<std::sync::OnceLock<ExportGate>>,
    synced: signal::Receiver<bool>,
    stop: CancellationToken,
    watch: JoinHandle<()>,
    flush: JoinHandle<Vec<EventSink>>,
}

impl Eventer {
    /// Starts watching events with `client` and flushing them to `sinks`. `health`, when given,
    /// is marked after every flush once the first list is done.
    pub fn start(
        client: kube::Client,
        sinks: Vec<EventSink>,
        opts: EventerOptions,
        metrics: EventMetrics,
        health: Option<Arc<Health>>,
    ) -> Eventer {
        let buffer = Arc::new(EventBuffer::new(opts.max_buffered_events));
        let (synced_tx, synced) = signal::channel(false);
        let stop = CancellationToken::new();
        let w = EventWatch {
            api: Api::<Event>::all(client),
            dedup: Dedup::new(opts.max_tracked_events, metrics.tracked_evictions.clone()),
            buffer: Arc::clone(&buffer),
            metrics: metrics.clone(),
            synced: synced_tx,
        };
        let token = stop.clone();
        let watch = tokio::spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = w.run() => {}
            }
        });
        let gate = Arc::new(std::sync::OnceLock::new());
        let flusher = Flusher {
            buffer: Arc::clone(&buffer),
            gate: Arc::clone(&gate),
            sinks,
            metrics,
            health,
            synced: synced.clone(),
        };
        let flush = tokio::spawn(flusher.run(opts.frequency, stop.clone()));
        Eventer {
            buffer,
            gate,
            synced,
            stop,
            watch,
            flush,
        }
    }

    /// Waits until the first list is done (events from then on are exported).
    pub async fn synced(&self) {
        let mut rx = self.synced.clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Exports only while `gate` says so (a sharded replica: while it holds the aggregator
    /// Lease, so that one replica exports each event); the events of other flushes are counted
    /// as dropped with reason `standby`. Set once; later calls are ignored.
    pub fn export_only_when(&self, gate: ExportGate) {
        let _ = self.gate.set(gate);
    }

    /// Records waiting for the next flush.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Stops watching, flushes the buffer to the sinks and lets them deliver within `budget`.
    pub async fn stop(self, budget: Duration) {
        self.stop.cancel();
        let _ = self.watch.await;
        let Ok(mut sinks) = self.flush.await else {
            return;
        };
        let each = futures::future::join_all(sinks.iter_mut().map(|s| s.flush(budget)));
        let _ = tokio::time::timeout(budget + Duration::from_secs(1), each).await;
    }
}

struct Flusher {
    buffer: Arc<EventBuffer>,
    gate: Arc<std::sync::OnceLock<ExportGate>>,
    sinks: Vec<EventSink>,
    metrics: EventMetrics,
    health: Option<Arc<Health>>,
    synced: signal::Receiver<bool>,
}

impl Flusher {
    /// Flushes every `frequency` until stopped, then once more; returns the sinks.
    async fn run(mut self, frequency: Duration, stop: CancellationToken) -> Vec<EventSink> {
        let mut tick = tokio::time::interval(frequency);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick() => self.flush(),
            }
        }
        self.flush();
        self.sinks
    }

    fn flush(&mut self) {
        let records = self.buffer.drain();
        self.metrics.buffered.set(0);
        let standby = self.gate.get().is_some_and(|exporting| !exporting());
        if standby && !records.is_empty() {
            self.metrics
                .dropped(super::metrics::reason::STANDBY, records.len());
        } else if !records.is_empty() {
            for sink in &mut self.sinks {
                sink.export(&records, &self.metrics);
            }
            tracing::debug!(events = records.len(), "events flushed");
        }
        if let Some(h) = &self.health {
            if *self.synced.borrow() {
                h.batch_done(now());
            } else {
                h.waiting("listing events");
            }
        }
    }
}
