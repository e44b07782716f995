//! `--sink=kind:URL?options`: `log`, `metric` and `influxdb` (REFERENCE.md §2 plus the 2.x and
//! batching options). Every problem is returned, one message each.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::duration;
use super::expand::{self, Target};
use super::types::{
    InfluxConfig, KafkaCompression, KafkaConfig, RemoteWriteConfig, SinkConfig, SpoolConfig,
};

const KINDS: &str = "influxdb, kafka, log, metric, remotewrite";

const INFLUX_OPTIONS: &[&str] = &[
    "user",
    "pw",
    "db",
    "retention",
    "rp",
    "secure",
    "insecuressl",
    "withfields",
    "cluster_name",
    "disable_counter_metrics",
    "concurrency",
    "version",
    "token",
    "org",
    "bucket",
    "batch_size",
    "buffer_points",
    "gzip",
    "gzip_level",
    "spool_dir",
    "spool_bytes",
];

/// Heapster's address when `influxdb:` names none.
const DEFAULT_INFLUX_URL: &str = "http://localhost:8086";
const DEFAULT_INFLUX_PORT: u16 = 8086;
/// InfluxDB refuses retention policies shorter than an hour.
const MIN_RETENTION: Duration = Duration::from_secs(3600);
/// One segment of the spool at its smallest.
const MIN_SPOOL_BYTES: u64 = 64 << 10;

/// Parses one `--sink` value. Messages do not carry the `--sink` prefix.
pub fn parse(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<SinkConfig, Vec<String>> {
    let (kind, rest) = expand::split(value);
    match kind {
        "log" | "metric" if !rest.is_empty() => {
            Err(vec![format!("the {kind} sink takes no URL or options")])
        }
        "log" => Ok(SinkConfig::Log),
        "metric" => Ok(SinkConfig::Metric),
        "influxdb" => {
            influxdb(Target::parse(rest, env)?).map(|c| SinkConfig::InfluxDb(Box::new(c)))
        }
        "kafka" => kafka(Target::parse(rest, env)?).map(|c| SinkConfig::Kafka(Box::new(c))),
        "remotewrite" => {
            remote_write(Target::parse(rest, env)?).map(|c| SinkConfig::RemoteWrite(Box::new(c)))
        }
        _ => Err(vec![format!("unknown sink kind {kind:?} (known: {KINDS})")]),
    }
}

fn influxdb(target: Target) -> Result<InfluxConfig, Vec<String>> {
    let Target { url, mut options } = target;
    let mut errors = Vec::new();
    let mut url = match url {
        Some(url) => url,
        None => Url::parse(DEFAULT_INFLUX_URL).map_err(|e| vec![e.to_string()])?,
    };
    if !matches!(url.scheme(), "http" | "https") {
        errors.push(format!(
            "InfluxDB URL scheme {} is not supported (use http or https, e.g. http://influxdb:8086)",
            options.show("scheme", url.scheme())
        ));
    }
    let explicit_port = url.port();
    if options.take_bool("secure") == Some(true) && url.set_scheme("https").is_err() {
        errors.push("secure=true: cannot switch this URL to https".to_string());
    }
    if explicit_port.is_none() && url.set_port(Some(DEFAULT_INFLUX_PORT)).is_err() {
        errors.push("InfluxDB URL cannot take a port".to_string());
    }

    let retention = match options.take_duration("retention") {
        Some(Duration::ZERO) | None => None,
        Some(d) if d < MIN_RETENTION => {
            let shown = options.show("retention", &duration::format(d));
            let message = format!(
                "{shown} is below the minimum of 1h (InfluxDB refuses shorter retention \
                 policies; 0 means infinite)"
            );
            options.error("retention", message);
            None
        }
        Some(d) => Some(d),
    };
    let version = match options.take("version").as_deref() {
        None => None,
        Some("1") => Some(1),
        Some("2") => Some(2),
        Some(other) => {
            let shown = options.show("version", other);
            options.error(
                "version",
                format!("{shown} is not 1 or 2 (omit it to detect)"),
            );
            None
        }
    };
    let mut optional = |name: &str| options.take(name).filter(|v| !v.is_empty());
    let (token, org, bucket) = (optional("token"), optional("org"), optional("bucket"));
    let config = InfluxConfig {
        url,
        user: options.take_string("user", "root", false),
        password: options.take_string("pw", "root", false),
        db: options.take_string("db", "k8s", true),
        retention,
        retention_policy: options.take_string("rp", "default", true),
        insecure_ssl: options.take_bool("insecuressl").unwrap_or(false),
        with_fields: options.take_bool("withfields").unwrap_or(false),
        cluster_name: options.take_string("cluster_name", "default", false),
        disable_counter_metrics: options
            .take_bool("disable_counter_metrics")
            .unwrap_or(false),
        concurrency: options.take_num("concurrency", 1, 1, 64),
        version,
        token,
        org,
        bucket,
        batch_size: options.take_num("batch_size", 5_000, 1, 100_000),
        buffer_points: options.take_num("buffer_points", 1_000_000, 1, usize::MAX),
        gzip: options.take_bool("gzip").unwrap_or(true),
        gzip_level: options
            .take("gzip_level")
            .is_some()
            .then(|| options.take_num("gzip_level", 1, 1, 9)),
        spool: spool(&mut options),
    };
    errors.extend(options.finish(INFLUX_OPTIONS));
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

const REMOTE_WRITE_OPTIONS: &[&str] = &[
    "user",
    "pw",
    "token",
    "token_file",
    "insecuressl",
    "cluster_name",
    "labels",
    "samples_per_request",
    "concurrency",
    "buffer_points",
    "spool_dir",
    "spool_bytes",
];

fn remote_write(target: Target) -> Result<RemoteWriteConfig, Vec<String>> {
    let Target { url, mut options } = target;
    let mut errors = Vec::new();
    let url = match url {
        Some(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        Some(url) => {
            let shown = options.show("scheme", url.scheme());
            errors.push(format!(
                "remote write URL scheme {shown} is not supported (use http or https, e.g. \
                 http://prometheus:9090/api/v1/write)"
            ));
            None
        }
        None => {
            errors.push(
                "remotewrite needs the write URL (e.g. remotewrite:http://prometheus:9090/api/v1/write)"
                    .to_string(),
            );
            None
        }
    };
    let mut optional = |name: &str| options.take(name).filter(|v| !v.is_empty());
    let (user, password, token) = (optional("user"), optional("pw"), optional("token"));
    let token_file = optional("token_file").map(PathBuf::from);
    if token.is_some() && token_file.is_some() {
        options.error("token_file", "give token or token_file, not both");
    }
    if (token.is_some() || token_file.is_some()) && (user.is_some() || password.is_some()) {
        options.error(
            "user",
            "give basic auth (user, pw) or a bearer token, not both",
        );
    }
    let mut labels = Vec::new();
    if let Some(list) = options.take("labels").filter(|v| !v.is_empty()) {
        for pair in list.split(',') {
            match pair.split_once(':') {
                Some((k, v))
                    if valid_label_name(k) && !k.starts_with("__") && !OWN_LABELS.contains(&k) =>
                {
                    labels.push((k.to_string(), v.to_string()));
                }
                _ => {
                    let shown = options.show("labels", pair);
                    options.error(
                        "labels",
                        format!(
                            "{shown} is not name:value with a Prometheus label name of your own \
                             (not {})",
                            OWN_LABELS.join(", ")
                        ),
                    );
                }
            }
        }
    }
    labels.sort();
    labels.dedup_by(|a, b| a.0 == b.0);
    let config = RemoteWriteConfig {
        url: url.unwrap_or_else(|| {
            Url::parse("http://localhost:9090/api/v1/write").expect("a valid URL")
        }),
        user,
        password,
        token,
        token_file,
        insecure_ssl: options.take_bool("insecuressl").unwrap_or(false),
        cluster_name: options.take_string("cluster_name", "default", false),
        labels,
        samples_per_request: options.take_num("samples_per_request", 5_000, 1, 1_000_000),
        concurrency: options.take_num("concurrency", 4, 1, 64),
        buffer_points: options.take_num("buffer_points", 1_000_000, 1, usize::MAX),
        spool: spool(&mut options),
    };
    errors.extend(options.finish(REMOTE_WRITE_OPTIONS));
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

const KAFKA_OPTIONS: &[&str] = &[
    "brokers",
    "timeseriestopic",
    "eventstopic",
    "compression",
    "user",
    "password",
    "cacert",
    "cert",
    "key",
    "insecuressl",
    "batch_size",
    "concurrency",
    "buffer_points",
    "spool_dir",
    "spool_bytes",
];

/// `kafka:?brokers=host:9092&...`: Heapster's options, plus batching and the spool.
fn kafka(target: Target) -> Result<KafkaConfig, Vec<String>> {
    let Target { url, mut options } = target;
    let mut errors = Vec::new();
    if url.is_some() {
        errors.push(
            "kafka takes its brokers as options, not a URL (e.g. kafka:?brokers=kafka:9092)"
                .to_string(),
        );
    }
    let mut brokers = Vec::new();
    for b in options.take_all("brokers") {
        if valid_broker(&b) {
            brokers.push(b);
        } else {
            let shown = options.show("brokers", &b);
            options.error(
                "brokers",
                format!("{shown} is not host:port (e.g. kafka:9092)"),
            );
        }
    }
    if brokers.is_empty() && !options.has_error("brokers") {
        options.error(
            "brokers",
            "at least one is required (e.g. brokers=kafka:9092)",
        );
    }
    let compression = match options.take("compression").as_deref() {
        None | Some("" | "none") => KafkaCompression::None,
        Some("gzip") => KafkaCompression::Gzip,
        Some("snappy") => KafkaCompression::Snappy,
        Some("lz4") => KafkaCompression::Lz4,
        Some(other) => {
            let shown = options.show("compression", other);
            options.error(
                "compression",
                format!("{shown} is not none, gzip, snappy or lz4"),
            );
            KafkaCompression::None
        }
    };
    let mut optional = |name: &str| options.take(name).filter(|v| !v.is_empty());
    let (user, password) = (optional("user"), optional("password"));
    let ca_cert = optional("cacert").map(PathBuf::from);
    let (cert, key) = (
        optional("cert").map(PathBuf::from),
        optional("key").map(PathBuf::from),
    );
    if user.is_some() != password.is_some() {
        options.error(
            "user",
            "give user and password together (SASL PLAIN), or neither",
        );
    }
    if cert.is_some() != key.is_some() {
        options.error(
            "cert",
            "give cert and key together (a client certificate), or neither",
        );
    }
    let config = KafkaConfig {
        brokers,
        timeseries_topic: options.take_string("timeseriestopic", "heapster-metrics", true),
        events_topic: options.take_string("eventstopic", "heapster-events", true),
        compression,
        user,
        password,
        ca_cert,
        cert,
        key,
        insecure_ssl: options.take_bool("insecuressl").unwrap_or(false),
        batch_size: options.take_num("batch_size", 1_000, 1, 100_000),
        concurrency: options.take_num("concurrency", 4, 1, 64),
        buffer_points: options.take_num("buffer_points", 1_000_000, 1, usize::MAX),
        spool: spool(&mut options),
    };
    errors.extend(options.finish(KAFKA_OPTIONS));
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// `host:port`: a host name or IP address (IPv6 in brackets) and a port.
fn valid_broker(b: &str) -> bool {
    let Some((host, port)) = b.rsplit_once(':') else {
        return false;
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    port.parse::<u16>().is_ok_and(|p| p > 0)
        && !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'))
}

/// The labels the remote write sink sets itself.
const OWN_LABELS: &[&str] = &[
    "cluster",
    "container",
    "device",
    "namespace",
    "node",
    "pod",
    "type",
];

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The disk spool options every delivery sink takes: `spool_dir` (off when absent) and
/// `spool_bytes`.
fn spool(options: &mut expand::Options) -> SpoolConfig {
    let dir = options
        .take("spool_dir")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    if let Some(d) = &dir
        && d.is_relative()
    {
        let shown = options.show("spool_dir", &d.display().to_string());
        options.error("spool_dir", format!("{shown} is not an absolute path"));
    }
    SpoolConfig {
        dir,
        bytes: options.take_bytes("spool_bytes", SpoolConfig::DEFAULT_BYTES, MIN_SPOOL_BYTES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "INFLUX_PW" => Some("pa55word".into()),
            "INFLUX_HOST" => Some("monitoring-influxdb".into()),
            _ => None,
        }
    }

    fn influx(value: &str) -> InfluxConfig {
        match parse(value, &env) {
            Ok(SinkConfig::InfluxDb(c)) => *c,
            other => panic!("{value}: {other:?}"),
        }
    }

    fn errors(value: &str) -> String {
        parse(value, &env).expect_err(value).join("\n")
    }

    #[test]
    fn simple_sinks() {
        assert_eq!(parse("log", &env), Ok(SinkConfig::Log));
        assert_eq!(parse("log:", &env), Ok(SinkConfig::Log));
        assert_eq!(parse("metric", &env), Ok(SinkConfig::Metric));
        assert!(errors("log:http://x").contains("takes no URL or options"));
        assert_eq!(
            errors("elasticsearch:?nodes=x"),
            "unknown sink kind \"elasticsearch\" (known: influxdb, kafka, log, metric, remotewrite)"
        );
    }

    #[test]
    fn influx_defaults() {
        for value in ["influxdb", "influxdb:", "influxdb:''"] {
            let c = influx(value);
            assert_eq!(c.url.as_str(), "http://localhost:8086/", "{value}");
            assert_eq!(
                (c.user.as_str(), c.password.as_str(), c.db.as_str()),
                ("root", "root", "k8s")
            );
            assert_eq!(
                (c.retention, c.retention_policy.as_str()),
                (None, "default")
            );
            assert!(!c.insecure_ssl && !c.with_fields && !c.disable_counter_metrics && c.gzip);
            assert_eq!(
                (c.cluster_name.as_str(), c.concurrency, c.version),
                ("default", 1, None)
            );
            assert_eq!((c.token, c.org, c.bucket), (None, None, None));
            assert_eq!((c.batch_size, c.buffer_points), (5_000, 1_000_000));
            assert_eq!(c.spool, SpoolConfig::default());
            assert_eq!(c.gzip_level, None, "the built-in line compressor");
        }
        assert_eq!(influx("influxdb:?gzip_level=9").gzip_level, Some(9));
    }

    #[test]
    fn influx_every_option() {
        let c = influx(
            "influxdb:http://$INFLUX_HOST/prefix?user=u&pw=$INFLUX_PW&db=d&retention=48h&rp=two_days\
             &secure=true&insecuressl=1&withfields=true&cluster_name=prod&disable_counter_metrics=t\
             &concurrency=64&version=2&token=tok&org=o&bucket=b&batch_size=100000&buffer_points=7&gzip=false\
             &spool_dir=/var/lib/heapster/spool&spool_bytes=2Gi",
        );
        assert_eq!(c.url.as_str(), "https://monitoring-influxdb:8086/prefix");
        assert_eq!(
            (c.user.as_str(), c.password.as_str(), c.db.as_str()),
            ("u", "pa55word", "d")
        );
        assert_eq!(c.retention, Some(Duration::from_secs(48 * 3600)));
        assert_eq!(c.retention_policy, "two_days");
        assert!(c.insecure_ssl && c.with_fields && c.disable_counter_metrics && !c.gzip);
        assert_eq!(
            (c.cluster_name.as_str(), c.concurrency, c.version),
            ("prod", 64, Some(2))
        );
        assert_eq!(c.token.as_deref(), Some("tok"));
        assert_eq!(
            (c.org.as_deref(), c.bucket.as_deref()),
            (Some("o"), Some("b"))
        );
        assert_eq!((c.batch_size, c.buffer_points), (100_000, 7));
        assert_eq!(
            c.spool,
            SpoolConfig {
                dir: Some("/var/lib/heapster/spool".into()),
                bytes: 2 << 30
            }
        );
        assert_eq!(influx("influxdb:http://h:9999?retention=0").retention, None);
        assert_eq!(
            influx("influxdb:http://h:9999").url.as_str(),
            "http://h:9999/"
        );
        assert_eq!(
            influx("influxdb:https://h?version=1").url.as_str(),
            "https://h:8086/"
        );
        assert_eq!(
            influx("influxdb:?db=x").url.as_str(),
            "http://localhost:8086/"
        );
    }

    #[test]
    fn influx_errors_name_the_option() {
        let cases: &[(&str, &str)] = &[
            (
                "influxdb:?retention=30m",
                "option retention: \"30m\" is below the minimum of 1h",
            ),
            (
                "influxdb:?retention=1d",
                "option retention: \"1d\" has an unknown unit",
            ),
            (
                "influxdb:?concurrency=0",
                "option concurrency: \"0\" is not a number from 1 to 64",
            ),
            (
                "influxdb:?gzip_level=0",
                "option gzip_level: \"0\" is not a number from 1 to 9",
            ),
            ("influxdb:?concurrency=65", "option concurrency"),
            ("influxdb:?version=3", "option version: \"3\" is not 1 or 2"),
            ("influxdb:?batch_size=100001", "option batch_size"),
            ("influxdb:?buffer_points=0", "option buffer_points"),
            (
                "influxdb:?spool_dir=spool",
                "option spool_dir: \"spool\" is not an absolute",
            ),
            (
                "influxdb:?spool_bytes=1k",
                "option spool_bytes: \"1k\" is not a size of at least",
            ),
            (
                "influxdb:?gzip=yes",
                "option gzip: \"yes\" is not a boolean",
            ),
            ("influxdb:?db=", "option db: must not be empty"),
            ("influxdb:?rp=", "option rp: must not be empty"),
            (
                "influxdb:?database=k8s",
                "unknown option \"database\" (known: user, pw, db,",
            ),
            ("influxdb:udp://h:8089", "scheme \"udp\" is not supported"),
            ("influxdb:monitoring-influxdb:8086", "not supported"),
            (
                "influxdb:http://$NOPE:8086",
                "environment variable $NOPE is not set",
            ),
        ];
        for (value, want) in cases {
            let got = errors(value);
            assert!(got.contains(want), "{value}: {got}");
        }
        let all = errors("influxdb:?concurrency=0&version=9&withfields=x&x=1");
        assert_eq!(all.lines().count(), 4, "{all}");
    }

    fn kafka(value: &str) -> KafkaConfig {
        match parse(value, &env) {
            Ok(SinkConfig::Kafka(c)) => *c,
            other => panic!("{value}: {other:?}"),
        }
    }

    #[test]
    fn kafka_options() {
        let c = kafka("kafka:?brokers=k1:9092&brokers=10.0.0.2:9093");
        assert_eq!(c.brokers, ["k1:9092", "10.0.0.2:9093"]);
        assert_eq!(c.timeseries_topic, "heapster-metrics");
        assert_eq!(c.events_topic, "heapster-events");
        assert_eq!(c.compression, KafkaCompression::None);
        assert!(!c.tls());
        let c = kafka(
            "kafka:?brokers=k:9092&timeseriestopic=m&eventstopic=e&compression=snappy\
             &user=u&password=hunter2&cacert=/ca.pem&insecuressl=true",
        );
        assert_eq!(
            (c.timeseries_topic.as_str(), c.events_topic.as_str()),
            ("m", "e")
        );
        assert_eq!(c.compression, KafkaCompression::Snappy);
        assert_eq!(c.password.as_deref(), Some("hunter2"));
        assert!(c.tls());
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn kafka_errors_name_the_option() {
        for (value, want) in [
            ("kafka:", "option brokers: at least one is required"),
            ("kafka:?brokers=k", "option brokers: \"k\" is not host:port"),
            ("kafka:?brokers=k:x", "option brokers"),
            (
                "kafka:?brokers=k:9092&compression=zstd",
                "option compression",
            ),
            ("kafka:?brokers=k:9092&user=u", "option user"),
            ("kafka:?brokers=k:9092&cert=/c", "option cert"),
            ("kafka:?brokers=k:9092&topic=x", "unknown option \"topic\""),
            ("kafka:http://k:9092", "not a URL"),
        ] {
            let errors = parse(value, &env).expect_err(value);
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{value}: {errors:?}"
            );
        }
        let errors = parse("kafka:?brokers=bad&password=hunter2&user=", &env).expect_err("bad");
        assert!(!errors.join("\n").contains("hunter2"), "{errors:?}");
    }

    fn remote(value: &str) -> RemoteWriteConfig {
        match parse(value, &env) {
            Ok(SinkConfig::RemoteWrite(c)) => *c,
            other => panic!("{value}: {other:?}"),
        }
    }

    #[test]
    fn remote_write_options() {
        let c = remote("remotewrite:http://prom:9090/api/v1/write");
        assert_eq!(c.url.as_str(), "http://prom:9090/api/v1/write");
        assert_eq!((c.user, c.password, c.token), (None, None, None));
        assert_eq!(
            (
                c.samples_per_request,
                c.concurrency,
                c.cluster_name.as_str()
            ),
            (5_000, 4, "default")
        );
        let c = remote(
            "remotewrite:https://mimir/api/v1/push?user=u&pw=$INFLUX_PW&insecuressl=true\
             &cluster_name=prod&labels=region:eu,env:prod&samples_per_request=100&concurrency=8\
             &buffer_points=9&spool_dir=/spool/rw&spool_bytes=1Gi",
        );
        assert_eq!(
            (c.user.as_deref(), c.password.as_deref()),
            (Some("u"), Some("pa55word"))
        );
        assert!(c.insecure_ssl);
        assert_eq!(
            c.labels,
            [
                ("env".into(), "prod".into()),
                ("region".into(), "eu".into())
            ]
        );
        assert_eq!(
            (c.samples_per_request, c.concurrency, c.buffer_points),
            (100, 8, 9)
        );
        assert_eq!(
            c.spool.dir.as_deref(),
            Some(std::path::Path::new("/spool/rw"))
        );
        let c = remote("remotewrite:http://vm:8428/api/v1/write?token_file=/var/run/token");
        assert_eq!(
            c.token_file.as_deref(),
            Some(std::path::Path::new("/var/run/token"))
        );
        let cases: &[(&str, &str)] = &[
            ("remotewrite:", "needs the write URL"),
            ("remotewrite:ftp://x/", "scheme \"ftp\" is not supported"),
            ("remotewrite:http://x/?token=a&token_file=/t", "not both"),
            ("remotewrite:http://x/?token=a&user=u", "not both"),
            ("remotewrite:http://x/?labels=9x:1", "option labels"),
            ("remotewrite:http://x/?labels=__name__:1", "option labels"),
            ("remotewrite:http://x/?labels=node:1", "of your own"),
            ("remotewrite:http://x/?concurrency=0", "option concurrency"),
            ("remotewrite:http://x/?db=k8s", "unknown option \"db\""),
        ];
        for (value, want) in cases {
            let got = errors(value);
            assert!(got.contains(want), "{value}: {got}");
        }
        let debug = format!("{:?}", remote("remotewrite:http://x/?pw=hunter2"));
        assert!(!debug.contains("hunter2"), "{debug}");
        let debug = format!("{:?}", remote("remotewrite:http://x/?token=hunter2"));
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn secrets_never_printed() {
        let cases = [
            "influxdb:?pw=hunter2&pw=hunter2",
            "influxdb:?token=hunter2&bogus=1",
            "influxdb:http://root:hunter2@h:8086",
            "influxdb:?retention=$INFLUX_PW",
            "influxdb:?concurrency=$INFLUX_PW",
        ];
        for value in cases {
            let got = errors(value);
            assert!(
                !got.contains("hunter2") && !got.contains("pa55word"),
                "{value}: {got}"
            );
        }
        let debug = format!("{:?}", influx("influxdb:?pw=hunter2&token=hunter2"));
        assert!(
            !debug.contains("hunter2") && debug.contains("**REDACTED**"),
            "{debug}"
        );
    }
}
