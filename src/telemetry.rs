//! Self-metrics registry.
