//! Wiring: config → tasks.
