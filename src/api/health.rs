//! Liveness: healthy once a batch was produced and while the newest is recent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::model::{Nanos, time};

/// Written by the tick loop, read by `/healthz`.
pub struct Health {
    last_batch: AtomicI64,
    resolution: Nanos,
    /// Why there is no batch yet (e.g. the apiserver is unreachable).
    waiting_for: Mutex<String>,
}

impl Health {
    pub fn new(resolution: Nanos) -> Health {
        Health {
            last_batch: AtomicI64::new(0),
            resolution,
            waiting_for: Mutex::new("starting".into()),
        }
    }

    pub fn batch_done(&self, at: Nanos) {
        self.last_batch.store(at, Ordering::Relaxed);
    }

    pub fn waiting(&self, why: impl Into<String>) {
        *self.waiting_for.lock().unwrap_or_else(|e| e.into_inner()) = why.into();
    }

    /// `Ok` with a message, or `Err` with the reason for a 500.
    pub fn check(&self, now: Nanos) -> Result<String, String> {
        let last = self.last_batch.load(Ordering::Relaxed);
        if last == 0 {
            let why = self
                .waiting_for
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            return Err(format!("no batch yet: {why}"));
        }
        let age = now - last;
        if age > 3 * self.resolution {
            return Err(format!(
                "last batch is {}s old (more than 3 resolutions)",
                age / time::NANOS_PER_SEC
            ));
        }
        Ok(format!("ok: last batch {}s ago", age / time::NANOS_PER_SEC))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        let s = time::NANOS_PER_SEC;
        let h = Health::new(60 * s);
        h.waiting("apiserver unreachable");
        assert_eq!(
            h.check(0),
            Err("no batch yet: apiserver unreachable".into())
        );
        h.batch_done(1000 * s);
        assert!(h.check(1100 * s).is_ok());
        assert!(h.check(1181 * s).is_err());
    }
}
