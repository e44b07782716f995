//! The `log` sink: prints a summary of every batch, and every point at debug level.

use std::sync::Arc;

use super::Sink;
use crate::model::{Batch, time};

pub struct LogSink;

impl Sink for LogSink {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn export(&mut self, batch: Arc<Batch>) {
        tracing::info!(
            timestamp = %time::format_rfc3339(batch.timestamp),
            sets = batch.sets.len(),
            points = batch.point_count(),
            "batch"
        );
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
