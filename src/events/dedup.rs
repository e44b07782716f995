//! What was last exported per event uid, so a re-list after 410 Gone (or a replayed watch
//! event) exports only what changed, and so every exported point of one uid has its own time.
//!
//! Bounded: at most `capacity` uids, least recently updated evicted first and counted. An
//! evicted event that changes again is exported again (which is right); one that is merely
//! re-listed unchanged after eviction is exported twice: the eviction counter tells.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Event;
use prometheus_client::metrics::counter::Counter;

use super::schema::point_time;
use crate::model::Nanos;

/// The parts of an event whose change means "export again".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    count: i32,
    series_count: i32,
    time: Option<Nanos>,
}

#[derive(Debug)]
struct Entry {
    state: State,
    /// The last point time written for this uid.
    point: Nanos,
    /// Position in the eviction order.
    seq: u64,
}

/// The bounded map of last-exported state per uid.
#[derive(Debug)]
pub struct Dedup {
    entries: HashMap<String, Entry>,
    order: BTreeMap<u64, String>,
    next: u64,
    capacity: usize,
    evictions: Counter,
}

fn key(e: &Event) -> String {
    match e.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_owned(),
        _ => format!(
            "{}/{}",
            e.metadata.namespace.as_deref().unwrap_or_default(),
            e.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

fn state(e: &Event) -> State {
    State {
        count: e.count.unwrap_or(0),
        series_count: e.series.as_ref().and_then(|s| s.count).unwrap_or(0),
        time: point_time(e),
    }
}

impl Dedup {
    pub fn new(capacity: usize, evictions: Counter) -> Dedup {
        Dedup {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
            capacity: capacity.max(1),
            evictions,
        }
    }

    /// Records an event as already exported (it existed before the eventer started).
    pub fn remember(&mut self, e: &Event) {
        let point = point_time(e).unwrap_or(0);
        self.put(key(e), state(e), point);
    }

    /// `Some(point time)` when the event is new or changed since it was last exported (and
    /// records it), `None` when it was already exported as it is. The point time is the
    /// event's time, moved 1 ns past the previous point of the same uid when not later.
    pub fn admit(&mut self, e: &Event, now: Nanos) -> Option<Nanos> {
        let key = key(e);
        let state = state(e);
        let time = state.time.unwrap_or(now);
        let point = match self.entries.get(&key) {
            Some(old) if old.state == state => return None,
            Some(old) if time <= old.point => old.point + 1,
            _ => time,
        };
        self.put(key, state, point);
        Some(point)
    }

    /// Forgets a deleted event.
    pub fn forget(&mut self, e: &Event) {
        if let Some(old) = self.entries.remove(&key(e)) {
            self.order.remove(&old.seq);
        }
    }

    fn put(&mut self, key: String, state: State, point: Nanos) {
        let seq = self.next;
        self.next += 1;
        if let Some(old) = self.entries.get_mut(&key) {
            self.order.remove(&old.seq);
            *old = Entry { state, point, seq };
            self.order.insert(seq, key);
            return;
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
            self.evictions.inc();
        }
        self.order.insert(seq, key.clone());
        self.entries.insert(key, Entry { state, point, seq });
    }

    /// Uids tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn event(uid: &str, count: i32, secs: i64) -> Event {
        let t = k8s_openapi::jiff::Timestamp::from_second(secs).expect("time");
        Event {
            metadata: ObjectMeta {
                uid: Some(uid.into()),
                ..Default::default()
            },
            count: Some(count),
            last_timestamp: Some(Time(t)),
            ..Default::default()
        }
    }

    const S: i64 = 1_000_000_000;

    #[test]
    fn exports_new_and_changed_only() {
        let mut d = Dedup::new(10, Counter::default());
        d.remember(&event("old", 1, 100));
        assert_eq!(d.admit(&event("old", 1, 100), 0), None, "existed at start");
        assert_eq!(d.admit(&event("old", 2, 101), 0), Some(101 * S));
        assert_eq!(d.admit(&event("old", 2, 101), 0), None, "replayed");
        assert_eq!(d.admit(&event("new", 1, 100), 0), Some(100 * S));
    }

    #[test]
    fn point_times_are_unique_per_uid() {
        let mut d = Dedup::new(10, Counter::default());
        assert_eq!(d.admit(&event("u", 1, 100), 0), Some(100 * S));
        // Bumped twice within the same second: same lastTimestamp, distinct points.
        assert_eq!(d.admit(&event("u", 2, 100), 0), Some(100 * S + 1));
        assert_eq!(d.admit(&event("u", 3, 100), 0), Some(100 * S + 2));
        assert_eq!(d.admit(&event("u", 4, 101), 0), Some(101 * S));
    }

    #[test]
    fn bounded_with_evictions_counted() {
        let evictions = Counter::default();
        let mut d = Dedup::new(3, evictions.clone());
        for i in 0..5 {
            d.admit(&event(&format!("u{i}"), 1, 100), 0);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(evictions.get(), 2);
        // u0 was evicted: seen again, it is exported again.
        assert!(d.admit(&event("u0", 1, 100), 0).is_some());
        assert!(d.admit(&event("u4", 1, 100), 0).is_none());
    }
}
