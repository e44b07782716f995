//! The `eventer` command line: Heapster eventer's flags, validated together (every problem in
//! one run, exit 2). `--source` and `--sink` values share the collector's parsers.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use clap::Parser;

use super::types::{KubernetesSource, LogFormat, SinkConfig, SourceConfig};
use super::{duration, normalise, sink, source};

/// `--frequency` bounds, as Heapster's eventer had them.
const MIN_FREQUENCY: Duration = Duration::from_secs(5);
const MAX_FREQUENCY: Duration = Duration::from_secs(180);

/// Heapster eventer's flags, as given.
#[derive(Parser, Debug)]
#[command(
    name = "eventer",
    version,
    about = "Exports Kubernetes events to InfluxDB or the log, as Heapster's eventer did."
)]
#[command(after_help = "Flag names accept `_` or `-` and one dash or two, as Heapster's did.")]
struct RawEventerFlags {
    /// Where events come from: kubernetes:URL?options (as heapster's --source)
    #[arg(
        long,
        value_name = "kubernetes:URL?OPTIONS",
        allow_hyphen_values = true
    )]
    source: Vec<String>,
    /// Where events go (repeatable): log, influxdb:URL?options
    #[arg(long, value_name = "KIND:URL?OPTIONS", allow_hyphen_values = true)]
    sink: Vec<String>,
    /// How often buffered events are flushed to the sinks, 5s to 3m [default: 30s]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    frequency: Option<String>,
    /// Port of /healthz and /metrics [default: 8084]
    #[arg(long, value_name = "PORT", allow_hyphen_values = true)]
    healthz_port: Option<String>,
    /// Address of /healthz and /metrics [default: 0.0.0.0]
    #[arg(long, value_name = "IP", allow_hyphen_values = true)]
    healthz_ip: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, value_name = "FORMAT", allow_hyphen_values = true)]
    log_format: Option<String>,
    /// A tracing filter, e.g. info or heapster_rs=debug [default: info]
    #[arg(long, value_name = "FILTER", allow_hyphen_values = true)]
    log_level: Option<String>,
    /// Most events held between flushes; beyond it the oldest are dropped [default: 100000]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    max_buffered_events: Option<String>,
}

/// Everything the eventer needs, validated.
#[derive(Clone, Debug)]
pub struct EventerConfig {
    pub source: KubernetesSource,
    /// `log`, `influxdb` and `kafka` sinks.
    pub sinks: Vec<SinkConfig>,
    pub frequency: Duration,
    pub healthz_port: u16,
    pub healthz_ip: IpAddr,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_buffered_events: usize,
}

/// What the eventer command line asks for.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once per process; boxing would only add noise
pub enum EventerParsed {
    Run(EventerConfig),
    /// Print `message` and exit with `code` (0: stdout, 2: stderr, one line per problem).
    Exit {
        code: i32,
        message: String,
    },
}

/// Parses and validates an eventer command line; `args[0]` is the program name.
pub fn parse_eventer<I, S>(args: I, env: &dyn Fn(&str) -> Option<String>) -> EventerParsed
where
    I: IntoIterator<Item = S>,
    S: Into<OsString> + Clone,
{
    let argv = normalise(args.into_iter().map(Into::into).collect());
    match RawEventerFlags::try_parse_from(argv) {
        Ok(raw) => match validate(raw, env) {
            Ok(cfg) => EventerParsed::Run(cfg),
            Err(errors) => EventerParsed::Exit {
                code: 2,
                message: errors.join("\n") + "\n",
            },
        },
        Err(e) => EventerParsed::Exit {
            code: e.exit_code(),
            message: e.to_string(),
        },
    }
}

/// Parses one `--sink`/`--event_sink` value for events: `log`, `influxdb:...` or `kafka:...`.
pub(super) fn event_sink(
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SinkConfig, Vec<String>> {
    match sink::parse(value, env)? {
        SinkConfig::Metric => Err(vec![
            "the metric sink takes no events (known for events: influxdb, kafka, log)".into(),
        ]),
        SinkConfig::RemoteWrite(_) => Err(vec![
            "the remotewrite sink takes no events (known for events: influxdb, kafka, log)".into(),
        ]),
        other => Ok(other),
    }
}

fn validate(
    raw: RawEventerFlags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<EventerConfig, Vec<String>> {
    let mut errors = Vec::new();
    let mut add = |flag: &str, message: String| errors.push(format!("error: {flag}: {message}"));
    let source = match raw.source.as_slice() {
        [] => {
            add(
                "--source",
                "required (e.g. --source=kubernetes:https://kubernetes.default)".into(),
            );
            None
        }
        [one] => match source::parse(one, env) {
            Ok(SourceConfig::Kubernetes(k)) => Some(k),
            Ok(SourceConfig::Simulated(_)) => {
                add("--source", "the eventer needs a kubernetes: source".into());
                None
            }
            Err(es) => {
                es.into_iter().for_each(|e| add("--source", e));
                None
            }
        },
        many => {
            add(
                "--source",
                format!(
                    "given {} times; exactly one source is supported",
                    many.len()
                ),
            );
            None
        }
    };
    let mut sinks = Vec::new();
    for value in &raw.sink {
        match event_sink(value, env) {
            Ok(s) => sinks.push(s),
            Err(es) => es.into_iter().for_each(|e| add("--sink", e)),
        }
    }
    if raw.sink.is_empty() {
        add(
            "--sink",
            "at least one is required (log or influxdb:URL?options)".into(),
        );
    }
    let frequency = match raw.frequency.as_deref().map(duration::parse) {
        None => Duration::from_secs(30),
        Some(Ok(d)) if (MIN_FREQUENCY..=MAX_FREQUENCY).contains(&d) => d,
        Some(Ok(d)) => {
            add(
                "--frequency",
                format!("{} is outside 5s..3m", duration::format(d)),
            );
            Duration::from_secs(30)
        }
        Some(Err(e)) => {
            add("--frequency", e);
            Duration::from_secs(30)
        }
    };
    let healthz_port = match raw.healthz_port.as_deref() {
        None => 8084,
        Some(p) => p.parse::<u16>().unwrap_or_else(|_| {
            add(
                "--healthz-port",
                format!("{p:?} is not a port (0 to 65535)"),
            );
            8084
        }),
    };
    let healthz_ip = match raw.healthz_ip.as_deref() {
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(text) => text.parse().unwrap_or_else(|_| {
            add("--healthz-ip", format!("{text:?} is not an IP address"));
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }),
    };
    let log_format = match raw.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            add(
                "--log-format",
                format!("unknown format {other:?} (known: json, text)"),
            );
            LogFormat::Text
        }
    };
    let log_level = raw.log_level.unwrap_or_else(|| "info".into());
    if log_level.trim().is_empty() {
        add(
            "--log-level",
            "must not be empty (e.g. info, heapster_rs=debug)".into(),
        );
    } else if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_level) {
        add(
            "--log-level",
            format!("{log_level:?} is not a tracing filter ({e})"),
        );
    }
    let max_buffered_events = match raw.max_buffered_events.as_deref() {
        None => 100_000,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                add(
                    "--max_buffered_events",
                    format!("{n:?} is not a whole number of at least 1"),
                );
                100_000
            }
        },
    };
    match source {
        Some(source) if errors.is_empty() => Ok(EventerConfig {
            source,
            sinks,
            frequency,
            healthz_port,
            healthz_ip,
            log_format,
            log_level,
            max_buffered_events,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> EventerParsed {
        let argv = std::iter::once("eventer").chain(args.iter().copied());
        parse_eventer(argv, &|_| None)
    }

    #[test]
    fn seed_flags_parse() {
        let EventerParsed::Run(cfg) = parse(&[
            "--source=kubernetes:http://10.0.0.1:8080?inClusterConfig=false",
            "--sink=influxdb:http://monitoring-influxdb:8086?withfields=true",
            "--sink=log",
            "-frequency=10s",
            "--max_buffered_events=10",
        ]) else {
            panic!("valid");
        };
        assert_eq!(cfg.sinks.len(), 2);
        assert_eq!(cfg.frequency, Duration::from_secs(10));
        assert_eq!(cfg.max_buffered_events, 10);
        assert_eq!(cfg.healthz_port, 8084);
    }

    #[test]
    fn every_problem_is_reported() {
        let EventerParsed::Exit { code, message } = parse(&[
            "--source=simulated:",
            "--sink=metric",
            "--frequency=1s",
            "--healthz-port=x",
            "--max_buffered_events=0",
            "--log-format=xml",
        ]) else {
            panic!("invalid");
        };
        assert_eq!(code, 2);
        for flag in [
            "--source",
            "--sink",
            "--frequency",
            "--healthz-port",
            "--max_buffered_events",
            "--log-format",
        ] {
            assert!(
                message.contains(&format!("error: {flag}: ")),
                "{flag}: {message}"
            );
        }
    }
}
