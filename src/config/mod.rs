//! Flag and URL parsing (`--source`, `--sink`), validation returning every error.
//!
//! [`parse`] is the entry point: argv in, a validated [`Config`] or an exit code and message
//! out. It never reads the process environment; `$VAR` expansion uses the lookup it is given.

mod duration;
mod expand;
mod flags;
mod sink;
mod source;
mod types;

use std::ffi::OsString;

use clap::Parser;

pub use duration::{format as format_duration, parse as parse_duration};
pub use types::*;

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run the collector with this configuration.
    Run(Config),
    /// Print `message` and exit with `code`: 0 for `--help` and `--version` (print to stdout),
    /// 2 for bad flags (print to stderr; one `error: --flag: ...` line per problem).
    Exit { code: i32, message: String },
}

/// Parses and validates a command line; `args[0]` is the program name. `env` looks up
/// environment variables for `$VAR` expansion in `--source` and `--sink`.
///
/// ```
/// use heapster_rs::config::{parse, Parsed};
/// let no_env = |_: &str| None;
/// let Parsed::Run(config) = parse(["heapster", "-metric_resolution=30s"], &no_env) else {
///     panic!("valid");
/// };
/// assert_eq!(config.metric_resolution.as_secs(), 30);
/// ```
pub fn parse<I, S>(args: I, env: &dyn Fn(&str) -> Option<String>) -> Parsed
where
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    let argv = flags::normalise(args.into_iter().map(Into::into).collect());
    let raw = match flags::RawFlags::try_parse_from(argv) {
        Ok(raw) => raw,
        Err(e) => {
            return Parsed::Exit {
                code: e.exit_code(),
                message: e.to_string(),
            };
        }
    };
    match flags::validate(raw, env) {
        Ok(config) => Parsed::Run(config),
        Err(errors) => Parsed::Exit {
            code: 2,
            message: errors.join("\n"),
        },
    }
}
