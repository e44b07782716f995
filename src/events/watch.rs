//! The event watch: list, then watch core v1 Events in all namespaces with `kube`'s watcher.
//!
//! The watcher resumes from its last resource version after a dropped watch, and lists again
//! after 410 Gone (`Init` … `InitApply` … `InitDone`). The first list only records what exists
//! ([`Dedup::remember`]); every later `InitApply` and `Apply` goes through [`Dedup::admit`], so
//! an event is exported only when new or changed. Admitted events go to the bounded buffer.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Error, Event as WatchEvent};
use tokio::sync::watch as signal;

use super::Record;
use super::buffer::EventBuffer;
use super::dedup::Dedup;
use super::metrics::{EventMetrics, ReasonLabel, reason};
use crate::model::time::now;

/// Where admitted events go, and what is counted.
pub struct EventWatch {
    pub api: Api<Event>,
    pub dedup: Dedup,
    pub buffer: Arc<EventBuffer>,
    pub metrics: EventMetrics,
    /// Set to true once the first list is done.
    pub synced: signal::Sender<bool>,
}

/// Whether a list is the first (record only) or a re-list (export what changed).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    FirstList,
    Relist,
    Watching,
}

impl EventWatch {
    /// Runs until the stream ends (never, in practice: errors are retried with backoff).
    pub async fn run(mut self) {
        let stream =
            watcher::watcher(self.api.clone(), watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let mut phase = Phase::FirstList;
        let mut listed_once = false;
        let mut failing = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(WatchEvent::Init) => {
                    phase = if listed_once {
                        Phase::Relist
                    } else {
                        Phase::FirstList
                    };
                    if listed_once {
                        self.metrics.relists.inc();
                        tracing::info!("listing events again; exporting only what changed");
                    }
                }
                Ok(WatchEvent::InitApply(e)) if phase == Phase::FirstList => {
                    self.dedup.remember(&strip(e));
                }
                Ok(WatchEvent::InitApply(e) | WatchEvent::Apply(e)) => self.admit(strip(e)),
                Ok(WatchEvent::InitDone) => {
                    if !listed_once {
                        tracing::info!(
                            existing = self.dedup.len(),
                            "events listed; watching (existing events are not exported)"
                        );
                    }
                    listed_once = true;
                    phase = Phase::Watching;
                    self.synced.send_replace(true);
                }
                Ok(WatchEvent::Delete(e)) => self.dedup.forget(&e),
                Err(e) => {
                    let why = match &e {
                        Error::WatchError(status) if status.code == 410 => reason::EXPIRED,
                        _ => reason::ERROR,
                    };
                    self.metrics
                        .watch_restarts
                        .get_or_create(&ReasonLabel { reason: why })
                        .inc();
                    if why == reason::EXPIRED {
                        tracing::info!("event watch expired (410 Gone); listing again");
                    } else if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(error = %e, "event watch failed; retrying with backoff");
                    } else {
                        tracing::debug!(error = %e, "event watch failed again");
                    }
                    continue;
                }
            }
            failing = false;
            self.metrics
                .tracked
                .set(i64::try_from(self.dedup.len()).unwrap_or(i64::MAX));
        }
    }

    fn admit(&mut self, e: Event) {
        self.metrics.received.inc();
        let Some(time) = self.dedup.admit(&e, now()) else {
            return;
        };
        let dropped = self.buffer.push(Record {
            event: Arc::new(e),
            time,
        });
        self.metrics.dropped(reason::BUFFER_FULL, dropped);
        if dropped > 0 && self.metrics.dropped_count(reason::BUFFER_FULL) == dropped as u64 {
            tracing::warn!(
                capacity = self.buffer.capacity(),
                "event buffer full: dropping the oldest events (counted in events_dropped)"
            );
        }
        self.metrics
            .buffered
            .set(i64::try_from(self.buffer.len()).unwrap_or(i64::MAX));
    }
}

/// Drops what no sink uses before the event is kept.
fn strip(mut e: Event) -> Event {
    e.metadata.managed_fields = None;
    e
}
