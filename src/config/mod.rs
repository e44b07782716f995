//! Flag and URL parsing (`--source`, `--sink`), validation returning every error.

mod duration;
mod expand;
mod sink;
mod source;
mod types;
pub use types::*;
