//! The eventer's self-metrics (`eventer_*` in the eventer binary; `heapster_eventer_*` when
//! events run inside `heapster`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Why events were dropped or a watch restarted (the `reason` label).
pub mod reason {
    /// The buffer overflowed; the oldest event went.
    pub const BUFFER_FULL: &str = "buffer_full";
    /// A sink could not encode the event.
    pub const ENCODE: &str = "encode";
    /// The resource version expired (410 Gone): list again.
    pub const EXPIRED: &str = "expired";
    /// Any other list or watch failure.
    pub const ERROR: &str = "error";
    /// A sharded replica that does not hold the aggregator Lease: the holder, which watches
    /// the same events, exports them.
    pub const STANDBY: &str = "standby";
}

#[derive(Clone, Default)]
pub struct EventMetrics {
    pub received: Counter,
    pub exported: Family<SinkLabel, Counter>,
    pub dropped: Family<ReasonLabel, Counter>,
    pub watch_restarts: Family<ReasonLabel, Counter>,
    pub relists: Counter,
    pub buffered: Gauge,
    pub tracked: Gauge,
    pub tracked_evictions: Counter,
}

impl EventMetrics {
    pub fn register(registry: &mut Registry) -> EventMetrics {
        let m = EventMetrics::default();
        let r = registry;
        r.register(
            "events_received",
            "Event adds and updates received from the apiserver",
            m.received.clone(),
        );
        r.register(
            "events_exported",
            "Events handed to each sink",
            m.exported.clone(),
        );
        r.register(
            "events_dropped",
            "Events that will not be exported, by reason",
            m.dropped.clone(),
        );
        r.register(
            "watch_restarts",
            "Event watches that ended in an error, by reason",
            m.watch_restarts.clone(),
        );
        r.register(
            "relists",
            "Event lists after the first (after 410 Gone)",
            m.relists.clone(),
        );
        r.register(
            "buffered_events",
            "Events waiting for the next flush",
            m.buffered.clone(),
        );
        r.register(
            "tracked_events",
            "Event uids whose last exported state is kept",
            m.tracked.clone(),
        );
        r.register(
            "tracked_evictions",
            "Event uids evicted from the bounded last-exported map",
            m.tracked_evictions.clone(),
        );
        m
    }

    pub fn dropped(&self, reason: &'static str, n: usize) {
        if n > 0 {
            self.dropped
                .get_or_create(&ReasonLabel { reason })
                .inc_by(n as u64);
        }
    }

    pub fn dropped_count(&self, reason: &'static str) -> u64 {
        self.dropped.get_or_create(&ReasonLabel { reason }).get()
    }

    pub fn exported(&self, sink: &'static str, n: usize) {
        self.exported
            .get_or_create(&SinkLabel { sink })
            .inc_by(n as u64);
    }
}
