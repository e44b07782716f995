//! One HTTP request through the Heapster port's router (see
//! `heapster_rs::testing::fuzz::api_request`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| heapster_rs::testing::fuzz::api_request(data));
