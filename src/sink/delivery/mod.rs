//! The delivery layer every network sink shares: a sink supplies an encoder (a batch → request
//! bodies) and a [`Transport`] (send one body, say what the answer means); this layer owns the
//! rest.
//!
//! - [`buffer`]: the bounded memory queue. A slow destination never blocks scraping: `export`
//!   queues and returns; when the queue is full the oldest bodies leave it.
//! - [`spool`]: the disk spool, when configured. Bodies leaving the full queue, and every body
//!   while the destination is down, go to segment files, delivered when it recovers and kept
//!   across restarts. Without a spool they are dropped and counted (`buffer_full`).
//! - [`run`]: the delivery loop, `concurrency` requests at a time, live data first: each round
//!   takes from the memory queue, and only when it is empty from the spool, so new ticks never
//!   wait behind a backlog for more than a round, and the backlog drains at the rate the
//!   destination takes between ticks.
//! - [`retry`]: what an answer means, backoff with jitter, `Retry-After`.
//! - [`metrics`]: the same self-metrics for every sink, with a `sink` label.
//! - [`pipeline`]: the sink-side handle: queueing with a bounded wait for room, the flush at
//!   shutdown that leaves what it could not send in the spool.

pub mod buffer;
pub mod metrics;
pub mod pipeline;
pub mod retry;
pub mod run;
pub mod spool;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

pub use crate::config::SpoolConfig;
use crate::model::Nanos;
pub use metrics::{SinkFamilies, SinkMetrics, Stats};
pub use pipeline::{DropWarnings, Pipeline};
pub use retry::Verdict;

/// One encoded request body.
#[derive(Clone, Debug)]
pub struct Body {
    pub bytes: Bytes,
    /// Points it carries (what the queue, the spool and the counters count).
    pub points: usize,
    /// The (oldest) timestamp of its points: the delivery lag.
    pub timestamp: Nanos,
    /// Compressed with the sink's encoding (gzip for InfluxDB, snappy for remote write).
    pub compressed: bool,
}

/// A destination's side of delivery.
pub trait Transport: Send + Sync + 'static {
    /// The destination's name in logs (`InfluxDB`).
    fn label(&self) -> &'static str;

    /// Where it is, without credentials, for logs.
    fn target(&self) -> String;

    /// Prepares the destination, before the first request and after [`Verdict::Setup`]. An
    /// error means it cannot be reached: retried with backoff.
    fn setup(&self) -> impl Future<Output = Result<(), SetupError>> + Send {
        async { Ok(()) }
    }

    /// Sends one body and classifies the answer.
    fn send(&self, body: &Body) -> impl Future<Output = Verdict> + Send;

    /// The two halves of a body the destination refused as too large (413); `None` when it
    /// cannot be split further.
    fn split(&self, body: &Body) -> Option<(Body, Body)>;

    /// What to do when the destination refuses the credentials (401, 403), in plain words.
    fn auth_fix(&self) -> &'static str;
}

/// Why [`Transport::setup`] failed.
pub type SetupError = Box<dyn std::error::Error + Send + Sync>;

/// Timing knobs; the defaults suit production, tests shorten them.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryTuning {
    /// First retry delay; doubles (with jitter) up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// How long after its window end a tick's points may wait for room in a full memory queue
    /// while the destination is taking writes (see [`Pipeline`]); the collector sets its
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

/// How a sink's delivery is sized.
#[derive(Clone, Debug)]
pub struct DeliveryOptions {
    /// The memory queue's bound, in points.
    pub buffer_points: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    pub spool: SpoolConfig,
}

/// Why a sink's delivery could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spool directory cannot be created, read or written.
    #[error(
        "cannot use the spool directory {dir} (make it writable by the collector, or change \
         spool_dir)"
    )]
    Spool {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}
