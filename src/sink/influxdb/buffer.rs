//! The bounded buffer of encoded chunks waiting for InfluxDB.
//!
//! Policy when full: drop the OLDEST chunks (fresh metrics matter more than stale ones); the
//! caller counts what was dropped. The bound is on waiting points; chunks in flight (at most
//! `concurrency` × `batch_size` lines) come on top, and when one comes back after a failed
//! attempt it is the oldest, so it is the first to go if the buffer filled meanwhile.

use std::collections::VecDeque;

use super::schema::Chunk;

pub struct Buffer {
    chunks: VecDeque<Chunk>,
    buffered: usize,
    in_flight: usize,
    cap: usize,
}

impl Buffer {
    pub fn new(cap_points: usize) -> Buffer {
        Buffer {
            chunks: VecDeque::new(),
            buffered: 0,
            in_flight: 0,
            cap: cap_points.max(1),
        }
    }

    /// Appends a chunk; returns how many points were dropped (oldest first) to make room.
    pub fn push(&mut self, chunk: Chunk) -> usize {
        self.buffered += chunk.points;
        self.chunks.push_back(chunk);
        self.enforce_cap()
    }

    /// Takes up to `n` chunks from the front for delivery; they stay counted until
    /// [`Buffer::done`] or [`Buffer::put_back`].
    pub fn take(&mut self, n: usize) -> Vec<Chunk> {
        let n = n.min(self.chunks.len());
        let taken: Vec<Chunk> = self.chunks.drain(..n).collect();
        let points: usize = taken.iter().map(|c| c.points).sum();
        self.buffered -= points;
        self.in_flight += points;
        taken
    }

    /// Marks taken points as finished (written or rejected).
    pub fn done(&mut self, points: usize) {
        self.in_flight = self.in_flight.saturating_sub(points);
    }

    /// Returns taken chunks to the front, in their original order; returns points dropped if
    /// the buffer overflowed meanwhile (those are then the oldest, so they go first).
    pub fn put_back(&mut self, chunks: Vec<Chunk>) -> usize {
        for chunk in chunks.into_iter().rev() {
            self.in_flight = self.in_flight.saturating_sub(chunk.points);
            self.buffered += chunk.points;
            self.chunks.push_front(chunk);
        }
        self.enforce_cap()
    }

    fn enforce_cap(&mut self) -> usize {
        let mut dropped = 0;
        while self.buffered > self.cap {
            match self.chunks.pop_front() {
                Some(old) => {
                    self.buffered -= old.points;
                    dropped += old.points;
                }
                None => break,
            }
        }
        dropped
    }

    /// Points waiting (not counting those in flight).
    pub fn buffered_points(&self) -> usize {
        self.buffered
    }

    /// Points waiting or in flight.
    pub fn pending_points(&self) -> usize {
        self.buffered + self.in_flight
    }

    /// Whether `points` more fit without dropping any (an empty buffer takes anything).
    pub fn has_room(&self, points: usize) -> bool {
        self.buffered == 0 || self.buffered + points <= self.cap
    }

    pub fn has_chunks(&self) -> bool {
        !self.chunks.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn chunk(points: usize, ts: i64) -> Chunk {
        Chunk {
            body: Bytes::new(),
            gzipped: false,
            lines: points,
            points,
            timestamp: ts,
        }
    }

    fn timestamps(b: &mut Buffer) -> Vec<i64> {
        let taken = b.take(usize::MAX);
        let ts = taken.iter().map(|c| c.timestamp).collect();
        b.put_back(taken);
        ts
    }

    #[test]
    fn drops_oldest_when_full() {
        let mut b = Buffer::new(10);
        assert_eq!(b.push(chunk(4, 1)), 0);
        assert_eq!(b.push(chunk(4, 2)), 0);
        assert_eq!(b.push(chunk(4, 3)), 4);
        assert_eq!(timestamps(&mut b), vec![2, 3]);
        assert_eq!(b.buffered_points(), 8);
    }

    #[test]
    fn a_failed_chunk_returns_first_and_is_dropped_first() {
        let mut b = Buffer::new(10);
        b.push(chunk(4, 1));
        b.push(chunk(4, 2));
        let taken = b.take(1);
        assert_eq!(b.pending_points(), 8);
        // While the oldest chunk is in flight, newer ones are kept...
        assert_eq!(b.push(chunk(4, 3)), 0);
        // ...and when its delivery fails it returns to the front and is the one dropped.
        assert_eq!(b.put_back(taken), 4);
        assert_eq!(timestamps(&mut b), vec![2, 3]);
        assert_eq!(b.push(chunk(4, 4)), 4);
        assert_eq!(timestamps(&mut b), vec![3, 4]);
    }

    #[test]
    fn done_releases_in_flight() {
        let mut b = Buffer::new(10);
        b.push(chunk(5, 1));
        let taken = b.take(4);
        assert_eq!(taken.len(), 1);
        assert!(!b.has_chunks());
        b.done(5);
        assert_eq!(b.pending_points(), 0);
    }
}
