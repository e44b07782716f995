//! The bounded memory queue of encoded bodies waiting for their destination.
//!
//! Policy when full: the OLDEST bodies leave (fresh metrics matter more than stale ones) and go
//! to the caller, which spools them to disk or counts them dropped. The bound is on waiting
//! points; bodies in flight (at most `concurrency` requests) come on top and are kept here too
//! (a cheap reference-counted copy), so a shutdown can spool what a request was still carrying.
//! A body that comes back after a failed attempt is the oldest, so it is the first to leave if
//! the queue filled meanwhile.

use std::collections::VecDeque;

use super::Body;

pub struct Buffer {
    bodies: VecDeque<Body>,
    in_flight: Vec<(u64, Body)>,
    next_ticket: u64,
    buffered: usize,
    in_flight_points: usize,
    cap: usize,
}

impl Buffer {
    pub fn new(cap_points: usize) -> Buffer {
        Buffer {
            bodies: VecDeque::new(),
            in_flight: Vec::new(),
            next_ticket: 0,
            buffered: 0,
            in_flight_points: 0,
            cap: cap_points.max(1),
        }
    }

    /// Appends a body; returns the oldest bodies that had to leave to make room.
    pub fn push(&mut self, body: Body) -> Vec<Body> {
        self.buffered += body.points;
        self.bodies.push_back(body);
        self.enforce_cap()
    }

    /// Takes up to `n` bodies from the front for delivery, each with its ticket; they stay
    /// counted until [`Buffer::done`] or [`Buffer::put_back`].
    pub fn take(&mut self, n: usize) -> Vec<(u64, Body)> {
        let n = n.min(self.bodies.len());
        let mut taken = Vec::with_capacity(n);
        for body in self.bodies.drain(..n) {
            self.buffered -= body.points;
            self.in_flight_points += body.points;
            let ticket = self.next_ticket;
            self.next_ticket += 1;
            self.in_flight.push((ticket, body.clone()));
            taken.push((ticket, body));
        }
        taken
    }

    /// Marks a taken body as finished (delivered, dropped or moved to the spool).
    pub fn done(&mut self, ticket: u64) {
        if let Some(i) = self.in_flight.iter().position(|(t, _)| *t == ticket) {
            let (_, body) = self.in_flight.swap_remove(i);
            self.in_flight_points -= body.points;
        }
    }

    /// Returns a taken body to the front (`bodies`: it, or what replaces it, e.g. the halves
    /// of a body too large); returns the bodies that had to leave if the queue overflowed
    /// meanwhile (those are then the oldest, so they go first). Bodies returned one after the
    /// other go back newest first, so they keep their order.
    pub fn put_back(&mut self, ticket: u64, bodies: Vec<Body>) -> Vec<Body> {
        self.done(ticket);
        for body in bodies.into_iter().rev() {
            self.buffered += body.points;
            self.bodies.push_front(body);
        }
        self.enforce_cap()
    }

    /// Everything waiting (not in flight), oldest first.
    pub fn take_waiting(&mut self) -> Vec<Body> {
        self.buffered = 0;
        self.bodies.drain(..).collect()
    }

    /// Everything waiting or in flight, oldest first; the queue is empty afterwards. The
    /// requests still carrying bodies finish as [`Buffer::done`] no-ops.
    pub fn take_all(&mut self) -> Vec<Body> {
        let mut all: Vec<Body> = self.in_flight.drain(..).map(|(_, b)| b).collect();
        all.extend(self.bodies.drain(..));
        self.buffered = 0;
        self.in_flight_points = 0;
        all
    }

    fn enforce_cap(&mut self) -> Vec<Body> {
        let mut out = Vec::new();
        while self.buffered > self.cap {
            match self.bodies.pop_front() {
                Some(old) => {
                    self.buffered -= old.points;
                    out.push(old);
                }
                None => break,
            }
        }
        out
    }

    /// Points waiting (not counting those in flight).
    pub fn buffered_points(&self) -> usize {
        self.buffered
    }

    /// Points waiting or in flight.
    pub fn pending_points(&self) -> usize {
        self.buffered + self.in_flight_points
    }

    /// Whether `points` more fit without any leaving (an empty queue takes anything).
    pub fn has_room(&self, points: usize) -> bool {
        self.buffered == 0 || self.buffered + points <= self.cap
    }

    pub fn has_bodies(&self) -> bool {
        !self.bodies.is_empty()
    }

    /// The timestamp of the oldest point waiting or in flight.
    pub fn oldest(&self) -> Option<i64> {
        let waiting = self.bodies.front().map(|b| b.timestamp);
        let flying = self.in_flight.iter().map(|(_, b)| b.timestamp).min();
        match (waiting, flying) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn body(points: usize, ts: i64) -> Body {
        Body {
            bytes: Bytes::new(),
            compressed: false,
            points,
            timestamp: ts,
        }
    }

    fn timestamps(b: &mut Buffer) -> Vec<i64> {
        let taken = b.take(usize::MAX);
        let ts = taken.iter().map(|(_, c)| c.timestamp).collect();
        put_back(b, taken);
        ts
    }

    fn put_back(b: &mut Buffer, taken: Vec<(u64, Body)>) -> Vec<Body> {
        let mut out = Vec::new();
        for (t, body) in taken.into_iter().rev() {
            out.extend(b.put_back(t, vec![body]));
        }
        out
    }

    fn stamps(bodies: &[Body]) -> Vec<i64> {
        bodies.iter().map(|b| b.timestamp).collect()
    }

    #[test]
    fn the_oldest_leave_when_full() {
        let mut b = Buffer::new(10);
        assert!(b.push(body(4, 1)).is_empty());
        assert!(b.push(body(4, 2)).is_empty());
        assert_eq!(stamps(&b.push(body(4, 3))), [1]);
        assert_eq!(timestamps(&mut b), vec![2, 3]);
        assert_eq!(b.buffered_points(), 8);
    }

    #[test]
    fn a_failed_body_returns_first_and_leaves_first() {
        let mut b = Buffer::new(10);
        b.push(body(4, 1));
        b.push(body(4, 2));
        let taken = b.take(1);
        assert_eq!(b.pending_points(), 8);
        // While the oldest body is in flight, newer ones are kept...
        assert!(b.push(body(4, 3)).is_empty());
        // ...and when its delivery fails it returns to the front and is the one to leave.
        assert_eq!(stamps(&put_back(&mut b, taken)), [1]);
        assert_eq!(timestamps(&mut b), vec![2, 3]);
        assert_eq!(stamps(&b.push(body(4, 4))), [2]);
        assert_eq!(timestamps(&mut b), vec![3, 4]);
    }

    #[test]
    fn done_releases_in_flight_and_take_all_empties() {
        let mut b = Buffer::new(10);
        b.push(body(5, 1));
        b.push(body(2, 2));
        let taken = b.take(1);
        assert_eq!(b.oldest(), Some(1));
        b.done(taken[0].0);
        assert_eq!(b.pending_points(), 2);
        let taken = b.take(1);
        b.push(body(3, 3));
        // A shutdown takes what is in flight too, oldest first.
        assert_eq!(stamps(&b.take_all()), [2, 3]);
        b.done(taken[0].0);
        assert_eq!((b.pending_points(), b.has_bodies()), (0, false));
    }
}
