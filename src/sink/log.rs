//! The `log` sink: prints a summary of every tick, and every point at debug level.

use std::sync::Arc;

use super::Sink;
use crate::model::{Batch, time};

/// Logs a summary line per tick (pieces of a tick are counted together).
#[derive(Default)]
pub struct LogSink {
    sets: usize,
    points: usize,
}

impl Sink for LogSink {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn export(&mut self, batch: Arc<Batch>) {
        self.sets += batch.sets.len();
        self.points += batch.point_count();
        if !batch.more {
            tracing::info!(
                timestamp = %time::format_rfc3339(batch.timestamp),
                sets = self.sets,
                points = self.points,
                "batch"
            );
            (self.sets, self.points) = (0, 0);
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            for set in &batch.sets {
                for (metric, value) in &set.values {
                    tracing::debug!(set = %set.key, metric = metric.name(), value = ?value);
                }
                for lv in &set.labeled {
                    tracing::debug!(set = %set.key, metric = lv.metric.name(), resource_id = %lv.resource_id, value = ?lv.value);
                }
            }
        }
    }
}
