//! The bounded buffer between the watch and the sinks. Events are bursty (a rollout emits
//! thousands at once): when full, the OLDEST record is dropped and counted, so memory stays
//! bounded by `capacity` records whatever the burst.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::Record;

/// Many producers (the watch), one consumer (the flush loop).
pub struct EventBuffer {
    records: Mutex<VecDeque<Record>>,
    capacity: usize,
}

impl EventBuffer {
    pub fn new(capacity: usize) -> EventBuffer {
        let capacity = capacity.max(1);
        EventBuffer {
            records: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Record>> {
        // Poisoning only means a panic mid-push; the deque is still valid.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a record; returns how many old ones were dropped to make room (0 or 1).
    pub fn push(&self, record: Record) -> usize {
        let mut records = self.lock();
        let dropped = if records.len() >= self.capacity {
            records.pop_front();
            1
        } else {
            0
        };
        records.push_back(record);
        dropped
    }

    /// Takes everything buffered, oldest first.
    pub fn drain(&self) -> Vec<Record> {
        let mut records = self.lock();
        let taken: Vec<Record> = records.drain(..).collect();
        if records.capacity() > 4096 {
            records.shrink_to(1024);
        }
        taken
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn record(t: i64) -> Record {
        Record {
            event: Arc::default(),
            time: t,
        }
    }

    #[test]
    fn keeps_the_newest_when_full() {
        let b = EventBuffer::new(3);
        let dropped: usize = (0..5).map(|t| b.push(record(t))).sum();
        assert_eq!(dropped, 2);
        let times: Vec<i64> = b.drain().iter().map(|r| r.time).collect();
        assert_eq!(times, [2, 3, 4]);
        assert!(b.is_empty());
    }
}
