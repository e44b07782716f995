//! Test support shared by unit tests, integration tests and benches (not part of the API).

use std::path::PathBuf;

/// `../shared/fixtures` (or `$HEAPSTER_FIXTURES`). When missing, says so and returns `None`
/// so the caller skips; with `HEAPSTER_REQUIRE_FIXTURES=1` (set by `.ci/run`) it panics.
pub fn fixtures_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("HEAPSTER_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("HEAPSTER_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
        panic!(
            "fixtures not found at {} and HEAPSTER_REQUIRE_FIXTURES=1",
            dir.display()
        );
    }
    eprintln!(
        "skipped: fixtures not found at {} (set HEAPSTER_FIXTURES)",
        dir.display()
    );
    None
}

/// Reads one fixture file (`kubelet/...`), or `None` to skip.
pub fn fixture(rel: &str) -> Option<Vec<u8>> {
    let path = fixtures_dir()?.join(rel);
    Some(std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}
