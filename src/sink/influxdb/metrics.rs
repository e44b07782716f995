//! The sink's self-metrics (`influxdb_*`), registered in the process registry.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Why points were dropped (the `reason` label).
pub mod reason {
    pub const BUFFER_FULL: &str = "buffer_full";
    pub const NON_FINITE: &str = "non_finite";
    pub const PARTIAL_WRITE: &str = "partial_write";
    pub const REJECTED: &str = "rejected";
    pub const SHUTDOWN: &str = "shutdown";
}

/// Request outcomes (the `outcome` label).
pub mod outcome {
    pub const SUCCESS: &str = "success";
    pub const RETRY: &str = "retry";
    pub const PARTIAL: &str = "partial";
    pub const REJECTED: &str = "rejected";
    pub const MISSING_DATABASE: &str = "missing_database";
}

#[derive(Clone)]
pub struct Metrics {
    pub points_written: Counter,
    pub bytes_sent: Counter,
    pub requests: Family<OutcomeLabel, Counter>,
    pub retries: Counter,
    pub buffered_points: Gauge,
    pub dropped_points: Family<ReasonLabel, Counter>,
    pub write_duration: Histogram,
    pub buffer_wait: Counter<f64, AtomicU64>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            points_written: Counter::default(),
            bytes_sent: Counter::default(),
            requests: Family::default(),
            retries: Counter::default(),
            buffered_points: Gauge::default(),
            dropped_points: Family::default(),
            write_duration: Histogram::new(exponential_buckets(0.001, 2.5, 12)),
            buffer_wait: Counter::default(),
        };
        registry.register(
            "influxdb_points_written",
            "Points InfluxDB accepted",
            m.points_written.clone(),
        );
        registry.register(
            "influxdb_bytes_sent",
            "Request body bytes sent to InfluxDB (after gzip)",
            m.bytes_sent.clone(),
        );
        registry.register(
            "influxdb_requests",
            "Write requests by outcome",
            m.requests.clone(),
        );
        registry.register(
            "influxdb_retries",
            "Write attempts that will be retried",
            m.retries.clone(),
        );
        registry.register(
            "influxdb_buffered_points",
            "Points waiting for InfluxDB (buffered or in flight)",
            m.buffered_points.clone(),
        );
        registry.register(
            "influxdb_dropped_points",
            "Points that will never be written, by reason",
            m.dropped_points.clone(),
        );
        registry.register(
            "influxdb_write_duration_seconds",
            "Duration of write requests",
            m.write_duration.clone(),
        );
        registry.register(
            "influxdb_buffer_wait_seconds",
            "Time new points waited for room in the full buffer while InfluxDB was taking writes",
            m.buffer_wait.clone(),
        );
        m
    }

    pub fn dropped(&self, reason: &'static str, points: usize) {
        if points > 0 {
            self.dropped_points
                .get_or_create(&ReasonLabel { reason })
                .inc_by(points as u64);
        }
    }

    pub fn request(&self, outcome: &'static str) {
        self.requests.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}

/// A snapshot of the counters, for tests and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub points_written: u64,
    pub bytes_sent: u64,
    pub retries: u64,
    pub buffered_points: i64,
    pub dropped_buffer_full: u64,
    pub dropped_non_finite: u64,
    pub dropped_partial_write: u64,
    pub dropped_rejected: u64,
    pub dropped_shutdown: u64,
    /// Milliseconds new points waited for room in the buffer.
    pub buffer_wait_ms: u64,
}

impl Metrics {
    pub fn stats(&self) -> Stats {
        let d = |reason| {
            self.dropped_points
                .get_or_create(&ReasonLabel { reason })
                .get()
        };
        Stats {
            points_written: self.points_written.get(),
            bytes_sent: self.bytes_sent.get(),
            retries: self.retries.get(),
            buffered_points: self.buffered_points.get(),
            dropped_buffer_full: d(reason::BUFFER_FULL),
            dropped_non_finite: d(reason::NON_FINITE),
            dropped_partial_write: d(reason::PARTIAL_WRITE),
            dropped_rejected: d(reason::REJECTED),
            dropped_shutdown: d(reason::SHUTDOWN),
            buffer_wait_ms: (self.buffer_wait.get() * 1000.0) as u64,
        }
    }
}
