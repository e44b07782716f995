//! `--source=...` through the whole flag parser (see `heapster_rs::testing::fuzz::flag`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = std::str::from_utf8(data) {
        heapster_rs::testing::fuzz::flag("source", value);
    }
});
