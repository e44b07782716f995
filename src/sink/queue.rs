//! A bounded async queue that drops the oldest item when full (the right policy for metrics:
//! fresh data matters more than stale data).
//!
//! Items may come in pieces of a unit (a tick sent node by node): the bound counts whole units,
//! and dropping the oldest unit drops all of its pieces still queued.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

struct Inner<T> {
    /// Items, each marked when it ends its unit.
    items: VecDeque<(T, bool)>,
    /// Items queued that end a unit.
    ends: usize,
    flush_budget: Duration,
}

/// Many producers, one consumer.
pub struct DropOldest<T> {
    inner: Mutex<Inner<T>>,
    capacity: usize,
    notify: Notify,
    /// Cancelled by [`DropOldest::close`]: the queue takes its last items.
    closing: CancellationToken,
}

impl<T> DropOldest<T> {
    pub fn new(capacity: usize) -> DropOldest<T> {
        DropOldest {
            inner: Mutex::new(Inner {
                items: VecDeque::with_capacity(capacity.min(64)),
                ends: 0,
                flush_budget: Duration::ZERO,
            }),
            capacity: capacity.max(1),
            notify: Notify::new(),
            closing: CancellationToken::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        // A poisoned lock only means another thread panicked mid-push; the deque is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a whole unit; when more than `capacity` are queued the oldest goes. Returns
    /// the items dropped.
    pub fn push(&self, item: T) -> usize {
        self.push_piece(item, true)
    }

    /// Queues a piece of a unit (`ends`: the unit's last). When a unit ends and more than
    /// `capacity` whole units are queued, the oldest unit's queued pieces are dropped. Returns
    /// how many items were dropped.
    pub fn push_piece(&self, item: T, ends: bool) -> usize {
        let dropped = {
            let mut inner = self.lock();
            inner.items.push_back((item, ends));
            let mut dropped = 0;
            if ends {
                inner.ends += 1;
                if inner.ends > self.capacity {
                    while let Some((_, end)) = inner.items.pop_front() {
                        dropped += 1;
                        if end {
                            inner.ends -= 1;
                            break;
                        }
                    }
                }
            }
            dropped
        };
        self.notify.notify_one();
        dropped
    }

    /// Waits for the next item; `None` once closed and drained.
    pub async fn pop(&self) -> Option<T> {
        loop {
            let notified = self.notify.notified();
            {
                let mut inner = self.lock();
                if let Some((item, end)) = inner.items.pop_front() {
                    inner.ends -= usize::from(end);
                    return Some(item);
                }
                if self.closing.is_cancelled() {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Stops accepting waits: the consumer drains what is left and then sees `None`.
    pub fn close(&self, flush_budget: Duration) {
        {
            let mut inner = self.lock();
            inner.flush_budget = flush_budget;
        }
        // After the budget is set: a consumer that sees the queue closed reads it next.
        self.closing.cancel();
        self.notify.notify_one();
    }

    /// Cancelled when the queue is closed: a consumer busy with an item can cut a wait short.
    pub fn closing(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// The time budget given at close.
    pub fn flush_budget(&self) -> Duration {
        self.lock().flush_budget
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_oldest_when_full() {
        let q = DropOldest::new(2);
        assert_eq!(q.push(1), 0);
        assert_eq!(q.push(2), 0);
        assert_eq!(q.push(3), 1);
        assert_eq!(q.len(), 2);
    }

    #[tokio::test]
    async fn counts_and_drops_whole_units() {
        let q = DropOldest::new(2);
        // Unit a (3 pieces), unit b (2), unit c in progress: nothing dropped yet.
        for (item, ends) in [("a1", false), ("a2", false), ("a3", true), ("b1", false)] {
            assert_eq!(q.push_piece(item, ends), 0);
        }
        assert_eq!(q.push_piece("b2", true), 0);
        assert_eq!(q.push_piece("c1", false), 0);
        assert_eq!(q.pop().await, Some("a1"));
        // Unit c ends: three units, the rest of a goes.
        assert_eq!(q.push_piece("c2", true), 2);
        let mut left = Vec::new();
        q.close(Duration::ZERO);
        while let Some(i) = q.pop().await {
            left.push(i);
        }
        assert_eq!(left, ["b1", "b2", "c1", "c2"]);
    }

    #[tokio::test]
    async fn drains_after_close() {
        let q = DropOldest::new(4);
        q.push(1);
        q.push(2);
        q.close(Duration::from_secs(1));
        assert_eq!(q.pop().await, Some(1));
        assert_eq!(q.pop().await, Some(2));
        assert_eq!(q.pop().await, None);
    }
}
