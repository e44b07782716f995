//! A kubelet `/stats/summary` body (see `heapster_rs::testing::fuzz::summary`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| heapster_rs::testing::fuzz::summary(data));
