//! A cluster event as the eventer exports it: shared by the eventer and the sinks that write
//! events.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Event;

use super::Nanos;

/// One event update to export, with the point time already chosen (unique per uid).
#[derive(Clone, Debug)]
pub struct Record {
    pub event: Arc<Event>,
    /// Nanoseconds since the epoch: the eventer's point time (`lastTimestamp` or its
    /// fallbacks), moved forward by a few nanoseconds when an earlier update of the same uid
    /// already used it.
    pub time: Nanos,
}

/// The host an event comes from: `source.host`, else `reportingInstance`.
pub fn hostname(e: &Event) -> &str {
    e.source
        .as_ref()
        .and_then(|s| s.host.as_deref())
        .filter(|h| !h.is_empty())
        .or(e.reporting_instance.as_deref())
        .unwrap_or_default()
}
