//! Test support: real servers started per test.

// Each test crate uses only part of the support code.
#[allow(dead_code)]
pub mod influxd;
