//! The delivery layer's self-metrics, the same for every sink, told apart by a `sink` label
//! (`sink_sent_points_total{sink="influxdb"}`).
//!
//! The families are registered once per registry ([`SinkFamilies::register`]) and shared by
//! the sinks; each sink holds a [`SinkMetrics`] of handles to its own children. A sink may also
//! publish its series under older names of its own ([`SinkMetrics::alias`]): the InfluxDB sink
//! keeps `influxdb_*` for existing dashboards and alerts. An alias shares the counters; only
//! the labelled families (requests, drops) are counted twice.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub sink: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub sink: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AliasOutcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AliasReason {
    reason: &'static str,
}

/// Why points were dropped (the `reason` label).
pub mod reason {
    /// The memory queue overflowed and there is no spool.
    pub const BUFFER_FULL: &str = "buffer_full";
    pub const NON_FINITE: &str = "non_finite";
    pub const PARTIAL_WRITE: &str = "partial_write";
    /// A permanent refusal (400, 422, other 4xx).
    pub const REJECTED: &str = "rejected";
    /// 413 for a body that cannot be split further.
    pub const TOO_LARGE: &str = "too_large";
    /// Shutdown with no spool to leave the rest in.
    pub const SHUTDOWN: &str = "shutdown";
    /// The spool reached `spool_bytes`: its oldest segment went.
    pub const SPOOL_FULL: &str = "spool_full";
    /// A spooled record torn by a crash or damaged on disk.
    pub const SPOOL_CORRUPT: &str = "spool_corrupt";
    /// The spool directory could not be written.
    pub const SPOOL_ERROR: &str = "spool_error";
}

/// Request outcomes (the `outcome` label).
pub mod outcome {
    pub const SUCCESS: &str = "success";
    pub const RETRY: &str = "retry";
    pub const PARTIAL: &str = "partial";
    pub const REJECTED: &str = "rejected";
    pub const TOO_LARGE: &str = "too_large";
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// InfluxDB's `database not found` (the name it has always had).
    pub const SETUP: &str = "missing_database";
}

type FloatCounter = Counter<f64, AtomicU64>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 12))
}

/// The families, registered once per registry.
#[derive(Clone)]
pub struct SinkFamilies {
    sent_points: Family<SinkLabel, Counter>,
    sent_bytes: Family<SinkLabel, Counter>,
    requests: Family<OutcomeLabel, Counter>,
    retries: Family<SinkLabel, Counter>,
    queued_points: Family<SinkLabel, Gauge>,
    spool_bytes: Family<SinkLabel, Gauge>,
    spool_segments: Family<SinkLabel, Gauge>,
    dropped: Family<ReasonLabel, Counter>,
    lag: Family<SinkLabel, FloatGauge>,
    duration: Family<SinkLabel, Histogram, fn() -> Histogram>,
    wait: Family<SinkLabel, FloatCounter>,
}

impl SinkFamilies {
    pub fn register(registry: &mut Registry) -> SinkFamilies {
        let f = SinkFamilies {
            sent_points: Family::default(),
            sent_bytes: Family::default(),
            requests: Family::default(),
            retries: Family::default(),
            queued_points: Family::default(),
            spool_bytes: Family::default(),
            spool_segments: Family::default(),
            dropped: Family::default(),
            lag: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            wait: Family::default(),
        };
        let r = registry;
        r.register(
            "sink_sent_points",
            "Points the destination accepted",
            f.sent_points.clone(),
        );
        r.register(
            "sink_sent_bytes",
            "Request body bytes sent (after compression)",
            f.sent_bytes.clone(),
        );
        r.register("sink_requests", "Requests by outcome", f.requests.clone());
        r.register(
            "sink_retries",
            "Requests that will be retried",
            f.retries.clone(),
        );
        r.register(
            "sink_queued_points",
            "Points in the memory queue (waiting or in flight)",
            f.queued_points.clone(),
        );
        r.register(
            "sink_spool_bytes",
            "Bytes of the disk spool (undelivered bodies)",
            f.spool_bytes.clone(),
        );
        r.register(
            "sink_spool_segments",
            "Segment files of the disk spool",
            f.spool_segments.clone(),
        );
        r.register(
            "sink_dropped_points",
            "Points that will never be delivered, by reason",
            f.dropped.clone(),
        );
        r.register(
            "sink_delivery_lag_seconds",
            "Age of the oldest undelivered point (0 when everything is delivered)",
            f.lag.clone(),
        );
        r.register(
            "sink_request_duration_seconds",
            "Duration of requests",
            f.duration.clone(),
        );
        r.register(
            "sink_queue_wait_seconds",
            "Time new points waited for room in the full memory queue while the destination \
             was taking writes",
            f.wait.clone(),
        );
        f
    }

    /// The handles of one sink.
    pub fn sink(&self, sink: &'static str) -> SinkMetrics {
        let l = SinkLabel { sink };
        SinkMetrics {
            sink,
            families: self.clone(),
            sent_points: self.sent_points.get_or_create(&l).clone(),
            sent_bytes: self.sent_bytes.get_or_create(&l).clone(),
            retries: self.retries.get_or_create(&l).clone(),
            queued_points: self.queued_points.get_or_create(&l).clone(),
            spool_bytes: self.spool_bytes.get_or_create(&l).clone(),
            spool_segments: self.spool_segments.get_or_create(&l).clone(),
            lag: self.lag.get_or_create(&l).clone(),
            duration: self.duration.get_or_create(&l).clone(),
            wait: self.wait.get_or_create(&l).clone(),
            alias: None,
        }
    }
}

#[derive(Clone)]
struct Alias {
    requests: Family<AliasOutcome, Counter>,
    dropped: Family<AliasReason, Counter>,
}

/// One sink's metrics.
#[derive(Clone)]
pub struct SinkMetrics {
    sink: &'static str,
    families: SinkFamilies,
    pub sent_points: Counter,
    pub sent_bytes: Counter,
    pub retries: Counter,
    pub queued_points: Gauge,
    pub spool_bytes: Gauge,
    pub spool_segments: Gauge,
    pub lag: FloatGauge,
    pub duration: Histogram,
    pub wait: FloatCounter,
    alias: Option<Alias>,
}

impl SinkMetrics {
    /// Also publishes this sink's series as `<prefix>_points_written`, `_bytes_sent`,
    /// `_requests{outcome}`, `_retries`, `_buffered_points`, `_dropped_points{reason}`,
    /// `_write_duration_seconds` and `_buffer_wait_seconds` (the InfluxDB sink's names before
    /// the delivery layer was shared).
    pub fn alias(mut self, registry: &mut Registry, prefix: &str) -> SinkMetrics {
        let alias = Alias {
            requests: Family::default(),
            dropped: Family::default(),
        };
        let r = registry;
        let name = |n: &str| format!("{prefix}_{n}");
        r.register(
            name("points_written"),
            "Points the destination accepted (also sink_sent_points)",
            self.sent_points.clone(),
        );
        r.register(
            name("bytes_sent"),
            "Request body bytes sent (also sink_sent_bytes)",
            self.sent_bytes.clone(),
        );
        r.register(
            name("requests"),
            "Write requests by outcome (also sink_requests)",
            alias.requests.clone(),
        );
        r.register(
            name("retries"),
            "Write attempts that will be retried (also sink_retries)",
            self.retries.clone(),
        );
        r.register(
            name("buffered_points"),
            "Points in the memory queue, waiting or in flight (also sink_queued_points)",
            self.queued_points.clone(),
        );
        r.register(
            name("dropped_points"),
            "Points that will never be written, by reason (also sink_dropped_points)",
            alias.dropped.clone(),
        );
        r.register(
            name("write_duration_seconds"),
            "Duration of write requests (also sink_request_duration_seconds)",
            self.duration.clone(),
        );
        r.register(
            name("buffer_wait_seconds"),
            "Time new points waited for room in the full memory queue (also \
             sink_queue_wait_seconds)",
            self.wait.clone(),
        );
        self.alias = Some(alias);
        self
    }

    pub fn dropped(&self, reason: &'static str, points: usize) {
        if points == 0 {
            return;
        }
        let sink = self.sink;
        self.families
            .dropped
            .get_or_create(&ReasonLabel { sink, reason })
            .inc_by(points as u64);
        if let Some(a) = &self.alias {
            a.dropped
                .get_or_create(&AliasReason { reason })
                .inc_by(points as u64);
        }
    }

    pub fn request(&self, outcome: &'static str) {
        let sink = self.sink;
        self.families
            .requests
            .get_or_create(&OutcomeLabel { sink, outcome })
            .inc();
        if let Some(a) = &self.alias {
            a.requests.get_or_create(&AliasOutcome { outcome }).inc();
        }
    }

    fn dropped_count(&self, reason: &'static str) -> u64 {
        let sink = self.sink;
        self.families
            .dropped
            .get_or_create(&ReasonLabel { sink, reason })
            .get()
    }

    fn requests_count(&self, outcome: &'static str) -> u64 {
        let sink = self.sink;
        self.families
            .requests
            .get_or_create(&OutcomeLabel { sink, outcome })
            .get()
    }

    /// A snapshot of the counters, for tests and logs.
    pub fn stats(&self) -> Stats {
        let d = |reason| self.dropped_count(reason);
        Stats {
            points_written: self.sent_points.get(),
            bytes_sent: self.sent_bytes.get(),
            retries: self.retries.get(),
            buffered_points: self.queued_points.get(),
            spooled_bytes: self.spool_bytes.get(),
            spool_segments: self.spool_segments.get(),
            dropped_buffer_full: d(reason::BUFFER_FULL),
            dropped_non_finite: d(reason::NON_FINITE),
            dropped_partial_write: d(reason::PARTIAL_WRITE),
            dropped_rejected: d(reason::REJECTED),
            dropped_too_large: d(reason::TOO_LARGE),
            dropped_shutdown: d(reason::SHUTDOWN),
            dropped_spool_full: d(reason::SPOOL_FULL),
            dropped_spool_corrupt: d(reason::SPOOL_CORRUPT),
            requests_too_large: self.requests_count(outcome::TOO_LARGE),
            requests_rejected: self.requests_count(outcome::REJECTED),
            buffer_wait_ms: (self.wait.get() * 1000.0) as u64,
        }
    }
}

/// A snapshot of one sink's counters, for tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub points_written: u64,
    pub bytes_sent: u64,
    pub retries: u64,
    /// Points in the memory queue (waiting or in flight).
    pub buffered_points: i64,
    pub spooled_bytes: i64,
    pub spool_segments: i64,
    pub dropped_buffer_full: u64,
    pub dropped_non_finite: u64,
    pub dropped_partial_write: u64,
    pub dropped_rejected: u64,
    pub dropped_too_large: u64,
    pub dropped_shutdown: u64,
    pub dropped_spool_full: u64,
    pub dropped_spool_corrupt: u64,
    pub requests_too_large: u64,
    pub requests_rejected: u64,
    /// Milliseconds new points waited for room in the memory queue.
    pub buffer_wait_ms: u64,
}
