//! Flag and URL parsing (`--source`, `--sink`), validation returning every error.

mod types;
pub use types::*;
