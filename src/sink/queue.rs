//! A bounded async queue that drops the oldest item when full (the right policy for metrics:
//! fresh data matters more than stale data).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

struct Inner<T> {
    items: VecDeque<T>,
    closed: bool,
    flush_budget: Duration,
}

/// Many producers, one consumer.
pub struct DropOldest<T> {
    inner: Mutex<Inner<T>>,
    capacity: usize,
    notify: Notify,
}

impl<T> DropOldest<T> {
    pub fn new(capacity: usize) -> DropOldest<T> {
        DropOldest {
            inner: Mutex::new(Inner {
                items: VecDeque::with_capacity(capacity.min(64)),
                closed: false,
                flush_budget: Duration::ZERO,
            }),
            capacity: capacity.max(1),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        // A poisoned lock only means another thread panicked mid-push; the deque is still valid.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends an item; returns the dropped oldest item when the queue was full.
    pub fn push(&self, item: T) -> Option<T> {
        let dropped = {
            let mut inner = self.lock();
            let dropped = if inner.items.len() >= self.capacity {
                inner.items.pop_front()
            } else {
                None
            };
            inner.items.push_back(item);
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
                if let Some(item) = inner.items.pop_front() {
                    return Some(item);
                }
                if inner.closed {
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
            inner.closed = true;
            inner.flush_budget = flush_budget;
        }
        self.notify.notify_one();
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
        assert_eq!(q.push(1), None);
        assert_eq!(q.push(2), None);
        assert_eq!(q.push(3), Some(1));
        assert_eq!(q.len(), 2);
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
