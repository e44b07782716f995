//! Test support: real servers started per test, and what tests need around them.

// Each test crate uses only part of the support code.
#[allow(dead_code)]
pub mod heapster;
#[allow(dead_code)]
pub mod influx_data;
#[allow(dead_code)]
pub mod influxd;
#[allow(dead_code)]
pub mod kubectl;
#[allow(dead_code)]
pub mod proxy;
#[allow(dead_code)]
pub mod tansu;
