//! The command line: Heapster's flag names, read by clap as raw strings, then validated together
//! so that every problem is reported in one run.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use clap::Parser;

use super::types::{Config, LogFormat, PeerConfig, SecureServing, SinkConfig, SourceConfig};
use super::{duration, sink, source};

/// Heapster-compatible flags, as given. Validation happens in [`validate`].
#[derive(Parser, Debug)]
#[command(
    name = "heapster-rs",
    version,
    about = "A Kubernetes cluster metrics collector compatible with Heapster."
)]
#[command(after_help = "Flag names accept `_` or `-` and one dash or two, as Heapster's did.")]
pub struct RawFlags {
    /// Where metrics come from: kubernetes:URL?options or simulated:?nodes=N [default: simulated:]
    #[arg(long, value_name = "KIND:URL?OPTIONS", allow_hyphen_values = true)]
    source: Vec<String>,
    /// Where metrics go (repeatable): log, metric, influxdb:URL?options, remotewrite:URL?options,
    /// kafka:?brokers=HOST:PORT&options
    #[arg(long, value_name = "KIND:URL?OPTIONS", allow_hyphen_values = true)]
    sink: Vec<String>,
    /// Also export cluster events to this sink (repeatable): influxdb:URL?options, kafka:?options,
    /// log
    #[arg(long, value_name = "KIND:URL?OPTIONS", allow_hyphen_values = true)]
    event_sink: Vec<String>,
    /// Scrape interval, a Go duration (at least 5s) [default: 60s]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    metric_resolution: Option<String>,
    /// Port of the APIs [default: 8082]
    #[arg(long, value_name = "PORT", allow_hyphen_values = true)]
    heapster_port: Option<String>,
    /// Address of the APIs [default: 127.0.0.1 for the simulated source, 0.0.0.0 otherwise]
    #[arg(long, value_name = "IP", allow_hyphen_values = true)]
    listen_ip: Option<String>,
    /// Also serve the model API and metrics.k8s.io on --heapster-port, with no authentication
    /// (health and self-metrics are always served) [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    plain_port_apis: Option<String>,
    /// Separator of the `labels` tag [default: ,]
    #[arg(long, value_name = "SEP", allow_hyphen_values = true)]
    label_separator: Option<String>,
    /// Labels left out of the `labels` tag (repeatable, comma-separated)
    #[arg(long, value_name = "LABELS", allow_hyphen_values = true)]
    ignore_label: Vec<String>,
    /// Labels also stored as tags of their own (repeatable, comma-separated)
    #[arg(long, value_name = "LABELS", allow_hyphen_values = true)]
    store_label: Vec<String>,
    /// Do not keep metrics in memory for the APIs
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    disable_metric_sink: Option<String>,
    /// Log format: text or json [default: text]
    #[arg(long, value_name = "FORMAT", allow_hyphen_values = true)]
    log_format: Option<String>,
    /// A tracing filter, e.g. info or heapster_rs=debug [default: info]
    #[arg(long, value_name = "FILTER", allow_hyphen_values = true)]
    log_level: Option<String>,
    /// Most kubelet scrapes alive at once, decoded samples waiting to be processed included [default: 256]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    max_concurrent_scrapes: Option<String>,
    /// Per-node scrape timeout, at most 0.9 x resolution [default: min(10s, 0.9 x resolution)]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    scrape_timeout: Option<String>,
    /// Largest kubelet response accepted, in bytes (at least 1024) [default: 67108864]
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    max_response_bytes: Option<String>,
    /// History kept in memory for the APIs, at least one resolution [default: 15m]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    metric_history: Option<String>,
    /// Metrics kept for the whole history, comma-separated, from cpu/usage_rate,
    /// memory/usage and memory/working_set; other metrics keep their latest value
    /// [default: cpu/usage_rate,memory/usage]
    #[arg(long, value_name = "METRICS", allow_hyphen_values = true)]
    history_metrics: Option<String>,
    /// Time allowed to flush sinks at shutdown [default: 10s]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    shutdown_timeout: Option<String>,
    /// Most series (entities) held in memory for the APIs; overrides --store_memory_bytes
    /// [default: as many as --store_memory_bytes holds]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    max_series: Option<String>,
    /// Memory for the in-memory store's series, in bytes (suffixes Ki, Mi, Gi accepted): the
    /// series cap is this over the estimated bytes of a series with a full history
    /// [default: 1Gi]
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    store_memory_bytes: Option<String>,
    /// HTTPS port serving metrics.k8s.io as an aggregated API; 0 = off [default: 0]
    #[arg(long, value_name = "PORT", allow_hyphen_values = true)]
    secure_port: Option<String>,
    /// Serving certificate (PEM) of the secure port [default: self-signed]
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    tls_cert_file: Option<std::path::PathBuf>,
    /// Private key (PEM) of --tls_cert_file
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    tls_private_key_file: Option<std::path::PathBuf>,
    /// CA that signs the front proxy's client certificates (X-Remote-User is trusted from them)
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    requestheader_client_ca_file: Option<std::path::PathBuf>,
    /// Accepted front-proxy client certificate CNs, comma-separated [default: any]
    #[arg(long, value_name = "NAMES", allow_hyphen_values = true)]
    requestheader_allowed_names: Vec<String>,
    /// Shard scraping over the replicas that hold a Lease in --sharding_namespace [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    sharding: Option<String>,
    /// Namespace of the replicas' Leases [default: $POD_NAMESPACE, else kube-system]
    #[arg(long, value_name = "NS", allow_hyphen_values = true)]
    sharding_namespace: Option<String>,
    /// This replica's name among the replicas [default: $POD_NAME, else the hostname]
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    sharding_identity: Option<String>,
    /// Where the other replicas reach this one's APIs [default: https://$POD_IP:<secure port>
    /// with --secure_port, else http://$POD_IP:<heapster port>]
    #[arg(long, value_name = "URL", allow_hyphen_values = true)]
    sharding_address: Option<String>,
    /// How many replicas scrape each node, 1 to 3; the first writes its points [default: 1]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    replication: Option<String>,
    /// Bound on each request to another replica, below --metric_resolution
    /// [default: min(5s, 0.9 x resolution)]
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    peer_timeout: Option<String>,
    /// CA (PEM) that signs the other replicas' serving certificates [default: not verified]
    #[arg(long, value_name = "FILE", allow_hyphen_values = true)]
    peer_ca_file: Option<std::path::PathBuf>,
}

/// Every problem found, one `error: --flag: message` line each.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, flag: &str, message: impl std::fmt::Display) {
        self.0.push(format!("error: {flag}: {message}"));
    }

    fn duration(&mut self, flag: &str, raw: Option<&str>, min: Duration) -> Option<Duration> {
        let raw = raw?;
        match duration::parse(raw) {
            Ok(d) if d < min => {
                let min = duration::format(min);
                self.add(flag, format!("{raw} is below the minimum of {min}"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.add(flag, e);
                None
            }
        }
    }

    /// A Go boolean (`strconv.ParseBool`), as Heapster's flags took them.
    fn boolean(&mut self, flag: &str, raw: Option<&str>, default: bool) -> bool {
        match raw {
            None => default,
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => true,
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => false,
            Some(other) => {
                self.add(flag, format!("{other:?} is not a boolean (true or false)"));
                default
            }
        }
    }

    fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
        &mut self,
        flag: &str,
        raw: Option<&str>,
        min: T,
        default: T,
    ) -> T {
        let Some(raw) = raw else { return default };
        match raw.parse::<T>() {
            Ok(n) if n >= min => n,
            _ => {
                self.add(
                    flag,
                    format!("{raw:?} is not a whole number of at least {min}"),
                );
                default
            }
        }
    }
}

/// Checks every flag and builds the [`Config`], or returns every problem.
pub fn validate(
    raw: RawFlags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<String>> {
    let mut p = Problems::default();
    let secure = secure_serving(&mut p, &raw);
    let source = source_flag(&mut p, &raw, env);
    let (sinks, event_sinks, disable_metric_sink) = sink_flags(&mut p, &raw, env);
    let timing = timing_flags(&mut p, &raw);
    let peers = peer_flags(&mut p, &raw, timing.resolution);
    let simulated = matches!(source, Some(SourceConfig::Simulated(_)));
    let (heapster_port, listen_ip) = listen_flags(&mut p, &raw, simulated);
    let plain_port_apis = p.boolean("--plain_port_apis", raw.plain_port_apis.as_deref(), true);
    let (label_separator, log_format, log_level) = text_flags(&mut p, &raw);
    let max_concurrent_scrapes = p.number(
        "--max_concurrent_scrapes",
        raw.max_concurrent_scrapes.as_deref(),
        1,
        256,
    );
    let max_response_bytes = p.number(
        "--max_response_bytes",
        raw.max_response_bytes.as_deref(),
        1024,
        64 << 20,
    );

    let (series_limit, history_metrics) = store_flags(&mut p, &raw);
    let sharding = sharding_flags(&mut p, &raw, heapster_port, secure.port, env);

    let Some(source) = source.filter(|_| p.0.is_empty()) else {
        return Err(p.0);
    };
    Ok(Config {
        source,
        sinks,
        event_sinks,
        metric_resolution: timing.resolution,
        scrape_timeout: timing.scrape_timeout,
        max_concurrent_scrapes,
        max_response_bytes,
        heapster_port,
        listen_ip,
        plain_port_apis,
        label_separator,
        ignore_labels: split_labels(&raw.ignore_label),
        store_labels: split_labels(&raw.store_label),
        disable_metric_sink,
        log_format,
        log_level,
        metric_history: timing.history,
        shutdown_timeout: timing.shutdown,
        series_limit,
        history_metrics,
        secure,
        sharding,
        peers,
    })
}

/// `--sharding` and its companions ([`super::sharding`]).
fn sharding_flags(
    p: &mut Problems,
    raw: &RawFlags,
    heapster_port: u16,
    secure_port: u16,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<super::sharding::Sharding> {
    let given = super::sharding::RawSharding {
        sharding: raw.sharding.as_deref(),
        namespace: raw.sharding_namespace.as_deref(),
        identity: raw.sharding_identity.as_deref(),
        address: raw.sharding_address.as_deref(),
        replication: raw.replication.as_deref(),
    };
    let ports = super::sharding::Ports {
        heapster_port,
        secure_port,
    };
    super::sharding::validate(&given, &ports, env).unwrap_or_else(|problems| {
        for (flag, message) in problems {
            p.add(flag, message);
        }
        None
    })
}

/// `--source`: exactly one, the simulated cluster when none.
fn source_flag(
    p: &mut Problems,
    raw: &RawFlags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<SourceConfig> {
    match raw.source.as_slice() {
        [] => Some(SourceConfig::Simulated(source::simulated_default())),
        [one] => source::parse(one, env)
            .map_err(|errors| errors.into_iter().for_each(|e| p.add("--source", e)))
            .ok(),
        many => {
            let n = many.len();
            p.add(
                "--source",
                format!("given {n} times; exactly one source is supported"),
            );
            None
        }
    }
}

/// `--sink`, `--event_sink` and `--disable_metric_sink`: the metric sinks (the store first
/// unless disabled), the event sinks, and whether the store is disabled.
fn sink_flags(
    p: &mut Problems,
    raw: &RawFlags,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Vec<SinkConfig>, Vec<SinkConfig>, bool) {
    let disable_metric_sink = p.boolean(
        "--disable_metric_sink",
        raw.disable_metric_sink.as_deref(),
        false,
    );
    let mut sinks = Vec::new();
    if !disable_metric_sink {
        sinks.push(SinkConfig::Metric);
    }
    for value in &raw.sink {
        match sink::parse(value, env) {
            Ok(SinkConfig::Metric) if disable_metric_sink => {
                p.add("--disable_metric_sink", "conflicts with --sink=metric");
            }
            Ok(SinkConfig::Metric) => {}
            Ok(sink) => sinks.push(sink),
            Err(errors) => errors.into_iter().for_each(|e| p.add("--sink", e)),
        }
    }

    let mut event_sinks = Vec::new();
    for value in &raw.event_sink {
        match super::eventer::event_sink(value, env) {
            Ok(sink) => event_sinks.push(sink),
            Err(errors) => errors.into_iter().for_each(|e| p.add("--event_sink", e)),
        }
    }
    // Each sink's spool holds its own segments: two sharing a directory would send each
    // other's.
    let mut spools = std::collections::BTreeSet::new();
    for sink in sinks.iter().chain(&event_sinks) {
        if let Some(dir) = sink.spool_dir()
            && !spools.insert(dir)
        {
            p.add(
                "--sink",
                "two sinks (--sink or --event_sink) share a spool_dir; give each its own",
            );
        }
    }
    (sinks, event_sinks, disable_metric_sink)
}

/// The durations: resolution, scrape timeout, history, shutdown budget.
struct Timing {
    resolution: Duration,
    scrape_timeout: Duration,
    history: Duration,
    shutdown: Duration,
}

/// `--metric_resolution`, `--scrape_timeout`, `--metric_history`, `--shutdown_timeout`, and
/// how they bound each other.
fn timing_flags(p: &mut Problems, raw: &RawFlags) -> Timing {
    let resolution = p.duration(
        "--metric_resolution",
        raw.metric_resolution.as_deref(),
        Duration::from_secs(5),
    );
    let resolution_ok = resolution.is_some() || raw.metric_resolution.is_none();
    let resolution = resolution.unwrap_or(Duration::from_secs(60));
    let max_timeout = resolution * 9 / 10;
    let scrape_timeout = match p.duration(
        "--scrape_timeout",
        raw.scrape_timeout.as_deref(),
        Duration::ZERO,
    ) {
        None => Duration::from_secs(10).min(max_timeout),
        Some(Duration::ZERO) => {
            p.add("--scrape_timeout", "must be greater than 0");
            max_timeout
        }
        Some(d) if d > max_timeout && resolution_ok => {
            let (given, max) = (duration::format(d), duration::format(max_timeout));
            p.add(
                "--scrape_timeout",
                format!("{given} exceeds 0.9 x --metric_resolution ({max})"),
            );
            max_timeout
        }
        Some(d) => d,
    };
    let history = raw.metric_history.as_deref();
    let metric_history = match p.duration("--metric_history", history, Duration::ZERO) {
        None => Duration::from_secs(15 * 60).max(resolution),
        Some(d) if d < resolution && resolution_ok => {
            let (given, min) = (duration::format(d), duration::format(resolution));
            p.add(
                "--metric_history",
                format!("{given} is shorter than --metric_resolution ({min})"),
            );
            resolution
        }
        Some(d) => d,
    };
    let shutdown_timeout = p
        .duration(
            "--shutdown_timeout",
            raw.shutdown_timeout.as_deref(),
            Duration::ZERO,
        )
        .unwrap_or(Duration::from_secs(10));
    Timing {
        resolution,
        scrape_timeout,
        history: metric_history,
        shutdown: shutdown_timeout,
    }
}

/// `--peer_timeout` (below the resolution) and `--peer_ca_file`.
fn peer_flags(p: &mut Problems, raw: &RawFlags, resolution: Duration) -> PeerConfig {
    let max = resolution * 9 / 10;
    let timeout = match p.duration(
        "--peer_timeout",
        raw.peer_timeout.as_deref(),
        Duration::ZERO,
    ) {
        None => Duration::from_secs(5).min(max),
        Some(Duration::ZERO) => {
            p.add("--peer_timeout", "must be greater than 0");
            max
        }
        Some(d) if d >= resolution => {
            let (given, res) = (duration::format(d), duration::format(resolution));
            p.add(
                "--peer_timeout",
                format!("{given} is not below --metric_resolution ({res})"),
            );
            max
        }
        Some(d) => d,
    };
    PeerConfig {
        timeout,
        ca_file: raw.peer_ca_file.clone(),
    }
}

/// `--heapster-port` and `--listen_ip` (loopback by default for the simulated cluster).
fn listen_flags(p: &mut Problems, raw: &RawFlags, simulated: bool) -> (u16, IpAddr) {
    let heapster_port = match raw.heapster_port.as_deref().map(str::parse::<u16>) {
        None => 8082,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            p.add(
                "--heapster-port",
                format!(
                    "{:?} is not a port (0 to 65535)",
                    raw.heapster_port.as_deref().unwrap_or_default()
                ),
            );
            8082
        }
    };
    let listen_ip = match raw.listen_ip.as_deref() {
        None if simulated => IpAddr::V4(Ipv4Addr::LOCALHOST),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Some(text) => text.parse().unwrap_or_else(|_| {
            p.add("--listen_ip", format!("{text:?} is not an IP address"));
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }),
    };
    (heapster_port, listen_ip)
}

/// `--label_separator`, `--log-format`, `--log-level`.
fn text_flags(p: &mut Problems, raw: &RawFlags) -> (String, LogFormat, String) {
    let label_separator = raw.label_separator.clone().unwrap_or_else(|| ",".into());
    if label_separator.is_empty() {
        p.add("--label_separator", "must not be empty");
    }
    let log_format = match raw.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            p.add(
                "--log-format",
                format!("unknown format {other:?} (known: json, text)"),
            );
            LogFormat::Text
        }
    };
    let log_level = raw.log_level.clone().unwrap_or_else(|| "info".into());
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&log_level) {
        p.add(
            "--log-level",
            format!("{log_level:?} is not a tracing filter ({e})"),
        );
    } else if log_level.trim().is_empty() {
        p.add(
            "--log-level",
            "must not be empty (e.g. info, heapster_rs=debug)",
        );
    }
    (label_separator, log_format, log_level)
}

/// `--store_memory_bytes`, `--max_series` and `--history_metrics`.
fn store_flags(
    p: &mut Problems,
    raw: &RawFlags,
) -> (crate::store::SeriesLimit, crate::store::HistoryMetrics) {
    let store_memory_bytes = match raw.store_memory_bytes.as_deref().map(parse_bytes) {
        None => crate::store::DEFAULT_STORE_MEMORY_BYTES,
        Some(Ok(b)) if b >= MIN_STORE_BYTES => b,
        Some(_) => {
            let given = raw.store_memory_bytes.as_deref().unwrap_or_default();
            p.add(
                "--store_memory_bytes",
                format!("{given:?} is not a byte count of at least 1Mi (e.g. 2Gi, 1500Mi)"),
            );
            crate::store::DEFAULT_STORE_MEMORY_BYTES
        }
    };
    let series_limit = match raw.max_series.as_deref() {
        None => crate::store::SeriesLimit::Bytes(store_memory_bytes),
        given => crate::store::SeriesLimit::Series(p.number("--max_series", given, 1, 1)),
    };

    let history_metrics = match raw.history_metrics.as_deref() {
        None => crate::store::HistoryMetrics::default(),
        Some(list) => crate::store::HistoryMetrics::parse(list).unwrap_or_else(|e| {
            p.add("--history_metrics", e);
            crate::store::HistoryMetrics::default()
        }),
    };
    (series_limit, history_metrics)
}

/// The least `--store_memory_bytes`: 1 MiB.
const MIN_STORE_BYTES: u64 = 1 << 20;

/// A byte count: digits, optionally followed by `Ki`, `Mi` or `Gi` (powers of 1024, as in
/// Kubernetes quantities).
fn parse_bytes(text: &str) -> Result<u64, ()> {
    let text = text.trim();
    let (digits, shift) = match text.len().checked_sub(2).map(|i| text.split_at(i)) {
        Some((d, "Ki")) => (d, 10),
        Some((d, "Mi")) => (d, 20),
        Some((d, "Gi")) => (d, 30),
        _ => (text, 0),
    };
    let n: u64 = digits.parse().map_err(|_| ())?;
    n.checked_mul(1 << shift).ok_or(())
}

/// `--secure_port` and the files it uses.
fn secure_serving(p: &mut Problems, raw: &RawFlags) -> SecureServing {
    let port = p.number("--secure_port", raw.secure_port.as_deref(), 0u16, 0);
    if raw.tls_cert_file.is_some() != raw.tls_private_key_file.is_some() {
        p.add(
            "--tls_cert_file",
            "--tls_cert_file and --tls_private_key_file go together",
        );
    }
    SecureServing {
        port,
        cert_file: raw.tls_cert_file.clone(),
        key_file: raw.tls_private_key_file.clone(),
        client_ca_file: raw.requestheader_client_ca_file.clone(),
        allowed_names: split_labels(&raw.requestheader_allowed_names),
    }
}

/// `--ignore_label=a,b --ignore_label=c` → `[a, b, c]`.
fn split_labels(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_binary_suffixes() {
        for (text, want) in [
            ("1048576", Ok(1 << 20)),
            ("2Gi", Ok(2 << 30)),
            (" 1500Mi", Ok(1500 << 20)),
            ("64Ki", Ok(64 << 10)),
            ("1.5Gi", Err(())),
            ("2GB", Err(())),
            ("Gi", Err(())),
            ("-1", Err(())),
            ("18446744073709551615Ki", Err(())),
        ] {
            assert_eq!(parse_bytes(text), want, "{text}");
        }
    }

    #[test]
    fn labels_split_on_commas() {
        let values = vec!["a,b".to_string(), " c ,,".to_string()];
        assert_eq!(split_labels(&values), ["a", "b", "c"]);
    }
}
