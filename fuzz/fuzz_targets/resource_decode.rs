//! A kubelet `/metrics/resource` body (see `heapster_rs::testing::fuzz::resource`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| heapster_rs::testing::fuzz::resource(data));
