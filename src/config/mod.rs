//! Flag and URL parsing (`--source`, `--sink`), validation returning every error.
//!
//! [`parse`] is the entry point: argv in, a validated [`Config`] or an exit code and message
//! out. It never reads the process environment; `$VAR` expansion uses the lookup it is given.
//! Before clap sees the arguments, `normalise` makes `_` and `-` interchangeable in flag names
//! and accepts Go's single dash (`-metric_resolution=30s` == `--metric-resolution=30s`).

mod duration;
mod eventer;
mod expand;
mod flags;
mod sharding;
mod sink;
mod source;
mod types;

use std::ffi::OsString;

use clap::Parser;

pub use duration::{format as format_duration, parse as parse_duration};
pub use eventer::{EventerConfig, EventerParsed, parse_eventer};
pub use sharding::{MAX_REPLICATION, Sharding};
pub use types::*;

/// What the command line asks for.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once per process; boxing would only add noise
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
    let argv = normalise(args.into_iter().map(Into::into).collect());
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

/// Flags that take no separate value (`--flag` or `--flag=VALUE`).
const NO_VALUE_FLAGS: &[&str] = &["help", "version", "disable-metric-sink", "sharding"];

/// Rewrites `-name`, `--na_me` and `-na_me=v` to `--na-me[=v]`; leaves values, `-h`, `-V`, `-`
/// and everything after `--` alone. argv[0] is kept.
fn normalise(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut args = args.into_iter();
    out.extend(args.next());
    let mut value_next = false;
    for arg in args.by_ref() {
        let text = match arg.to_str() {
            Some(text) if !value_next => text,
            _ => {
                value_next = false;
                out.push(arg);
                continue;
            }
        };
        if text == "--" {
            out.push(arg);
            break;
        }
        let body = match text.strip_prefix("--") {
            Some(body) => body,
            None => match text.strip_prefix('-') {
                Some(body) if body.chars().count() > 1 => body,
                _ => {
                    out.push(arg);
                    continue;
                }
            },
        };
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name.replace('_', "-"), Some(value)),
            None => (body.replace('_', "-"), None),
        };
        value_next = value.is_none() && !NO_VALUE_FLAGS.contains(&name.as_str());
        out.push(match value {
            Some(value) => format!("--{name}={value}").into(),
            None => format!("--{name}").into(),
        });
    }
    out.extend(args);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        let args = std::iter::once("prog")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        normalise(args)
            .into_iter()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn normalises_heapster_names() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["--metric_resolution=30s"], &["--metric-resolution=30s"]),
            (&["-metric_resolution=30s"], &["--metric-resolution=30s"]),
            (&["-source", "kubernetes:"], &["--source", "kubernetes:"]),
            (
                &["--sink=influxdb:?cluster_name=a_b"],
                &["--sink=influxdb:?cluster_name=a_b"],
            ),
            (
                &["--label_separator", "-x_y"],
                &["--label-separator", "-x_y"],
            ),
            (
                &["--metric_history", "-5m", "-log_level=debug"],
                &["--metric-history", "-5m", "--log-level=debug"],
            ),
            (
                &["-disable_metric_sink", "-version"],
                &["--disable-metric-sink", "--version"],
            ),
            (&["-h", "-V", "-"], &["-h", "-V", "-"]),
            (&["--", "-a_b"], &["--", "-a_b"]),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), *want, "{input:?}");
        }
    }
}
