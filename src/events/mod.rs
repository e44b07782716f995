//! Heapster's eventer: cluster events to the sinks, bounded and without duplicates.
//!
//! Data flows one way: [`watch`] (list, then watch core `v1` Events in every namespace; resume
//! after errors and 410 Gone) → [`dedup`] (export an event only when its `(uid, count,
//! lastTimestamp)` changed; a bounded map with an eviction counter) → [`buffer`] (bounded,
//! drops the OLDEST when a burst overflows it, counted) → every `frequency` [`run`] drains the
//! buffer into the [`sinks`] (`log`, `influxdb` through the metrics sink's delivery).
//!
//! # Why core `v1` Events and not `events.k8s.io/v1`
//!
//! Heapster's eventer watched core `v1` Events and its InfluxDB schema is built from their
//! fields (`involvedObject`, `source.host`, `lastTimestamp`, `count`), and the `log/events`
//! value is the serialised core Event; `kubectl get events` shows the same fields. The apiserver
//! serves every event through both APIs (one storage), so nothing is missed by choosing core
//! `v1`; newer reporters fill `reportingInstance`, `eventTime` and `series`, which are used as
//! fallbacks for the host and the point time ([`schema::point_time`]).
//!
//! # What "exactly once" means here
//!
//! Events that exist when the eventer starts are recorded, not exported. After a watch error
//! the watcher resumes from its last resource version; after 410 Gone it lists again and
//! exports only events whose state changed since they were last exported. Events created and
//! deleted while the watch was down cannot be recovered (the apiserver no longer has them).

pub mod app;
pub mod buffer;
pub mod dedup;
pub mod metrics;
pub mod run;
pub mod schema;
pub mod sinks;
pub mod watch;

pub use crate::model::event::Record;
pub use app::EventerApp;
pub use buffer::EventBuffer;
pub use metrics::EventMetrics;
pub use run::{Eventer, EventerOptions};
pub use sinks::{EventSink, InfluxEventSink, LogEventSink};
