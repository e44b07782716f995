//! Core `v1` Events in the simulator: a store, [`SimCluster::emit_event`] (ADDED),
//! [`SimCluster::bump_event`] (MODIFIED with a rising `count`), LIST rendering, and
//! [`SimCluster::expire_watches`] (every open watch ends with an `ERROR` 410 and older resource
//! versions are refused from then on, as after an etcd compaction).
//!
//! Lock order: `nodes` (when taken), then `events`, then `log`.

use std::collections::BTreeMap;

use bytes::Bytes;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, MicroTime, ObjectMeta, Time};

use super::SimCluster;
use super::selector::{Facts, Filter};
use super::state::{self, Event as Change, Kind, Shared, watch_line};
use crate::model::Nanos;
use crate::model::time::now;

/// What a new event says. `host` becomes `source.host` (the node), `component` `source.component`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimEvent {
    pub namespace: String,
    /// `involvedObject.kind`, e.g. `Pod`, `Node`, `Deployment`.
    pub kind: String,
    pub object_name: String,
    pub reason: String,
    pub message: String,
    /// `Normal` or `Warning`.
    pub type_: String,
    pub component: String,
    pub host: Option<String>,
}

/// Every event ever emitted, by creation order (the index is in the uid).
#[derive(Debug, Default)]
pub(crate) struct EventStore {
    events: Vec<Event>,
}

fn time(t: Nanos) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(t)).unwrap_or_default())
}

fn uid(index: usize) -> String {
    format!("e7e00000-0000-4000-8000-{index:012x}")
}

fn index_of(uid: &str) -> Option<usize> {
    let hex = uid.strip_prefix("e7e00000-0000-4000-8000-")?;
    usize::from_str_radix(hex, 16).ok()
}

fn change(event: &Event, type_: &str, rv: u64) -> Change {
    Change {
        rv,
        kind: Kind::Event,
        name: event.metadata.name.clone().unwrap_or_default(),
        namespace: event.metadata.namespace.clone(),
        node_name: None,
        labels: BTreeMap::new(),
        line: watch_line(type_, event),
    }
}

fn facts_match(filter: &Filter, event: &Event) -> bool {
    let none = BTreeMap::new();
    filter.matches(&Facts {
        name: event.metadata.name.as_deref().unwrap_or_default(),
        namespace: event.metadata.namespace.as_deref(),
        node_name: None,
        labels: &none,
    })
}

impl EventStore {
    /// The events matching `filter`.
    pub fn matching<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = &'a Event> {
        self.events.iter().filter(move |e| facts_match(filter, e))
    }
}

/// The `EventList` body at resource version `rv`.
pub(crate) fn render_list(store: &EventStore, filter: &Filter, rv: u64) -> Vec<u8> {
    let list = k8s_openapi::List {
        items: store.matching(filter).cloned().collect::<Vec<Event>>(),
        metadata: ListMeta {
            resource_version: Some(rv.to_string()),
            ..Default::default()
        },
    };
    serde_json::to_vec(&list).unwrap_or_default()
}

/// `ADDED` lines for every matching event (a watch without a resource version).
pub(crate) fn render_added(store: &EventStore, filter: &Filter) -> Vec<Bytes> {
    store
        .matching(filter)
        .map(|e| watch_line("ADDED", e))
        .collect()
}

impl SimCluster {
    /// Records a new event (`count` 1, first and last timestamp now); returns its uid.
    pub fn emit_event(&self, spec: SimEvent) -> String {
        emit(&self.shared, spec, now())
    }

    /// Bumps event `uid`: `count` + 1, `lastTimestamp` now (a MODIFIED watch event). Returns the
    /// new count, or `None` for an unknown uid.
    pub fn bump_event(&self, uid: &str) -> Option<i32> {
        let mut store = state::lock(&self.shared.events);
        let event = store.events.get_mut(index_of(uid)?)?;
        let count = event.count.unwrap_or(1) + 1;
        event.count = Some(count);
        event.last_timestamp = Some(time(now()));
        let mut log = state::lock(&self.shared.log);
        let rv = log.next_rv();
        event.metadata.resource_version = Some(rv.to_string());
        log.push(change(event, "MODIFIED", rv));
        Some(count)
    }

    /// Ends every open watch (all kinds) with an `ERROR` 410 Expired, and makes every resource
    /// version handed out so far too old to resume from: clients must list again.
    pub fn expire_watches(&self) {
        let _store = state::lock(&self.shared.events);
        let mut log = state::lock(&self.shared.log);
        log.expire();
        self.shared.expire.send_modify(|epoch| *epoch += 1);
    }

    /// How many events were emitted.
    pub fn event_count(&self) -> usize {
        state::lock(&self.shared.events).events.len()
    }
}

fn emit(shared: &Shared, spec: SimEvent, at: Nanos) -> String {
    let mut store = state::lock(&shared.events);
    let index = store.events.len();
    let uid = uid(index);
    let involved_uid = format!("0b1ec700-0000-4000-8000-{:012x}", index);
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:016x}",
                spec.object_name,
                0x18a0_0000_0000 + index
            )),
            namespace: Some(spec.namespace.clone()),
            uid: Some(uid.clone()),
            creation_timestamp: Some(time(at)),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some(spec.kind),
            name: Some(spec.object_name),
            namespace: Some(spec.namespace),
            uid: Some(involved_uid),
            ..Default::default()
        },
        reason: Some(spec.reason),
        message: Some(spec.message),
        type_: Some(spec.type_),
        source: Some(EventSource {
            component: Some(spec.component.clone()),
            host: spec.host.clone(),
        }),
        reporting_component: Some(spec.component),
        reporting_instance: spec.host,
        first_timestamp: Some(time(at)),
        last_timestamp: Some(time(at)),
        event_time: None::<MicroTime>,
        count: Some(1),
        ..Default::default()
    };
    let mut log = state::lock(&shared.log);
    let rv = log.next_rv();
    let mut event = event;
    event.metadata.resource_version = Some(rv.to_string());
    log.push(change(&event, "ADDED", rv));
    store.events.push(event);
    uid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_round_trip() {
        assert_eq!(index_of(&uid(0x2a)), Some(0x2a));
        assert_eq!(index_of("nope"), None);
    }
}
