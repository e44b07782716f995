//! Test support: real servers started per test.

pub mod influxd;
