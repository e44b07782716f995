//! The public command-line entry point, `heapster_rs::config::parse`, end to end.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use heapster_rs::config::{
    ApiAuth, Config, LogFormat, Parsed, SimulatedSource, SinkConfig, SourceConfig, parse,
};
use heapster_rs::store::SeriesLimit;

fn env(name: &str) -> Option<String> {
    match name {
        "INFLUX_PASSWORD" => Some("very-secret-pw".into()),
        "APISERVER" => Some("https://10.96.0.1:443".into()),
        _ => None,
    }
}

fn argv<'a>(args: &[&'a str]) -> Vec<&'a str> {
    std::iter::once("heapster")
        .chain(args.iter().copied())
        .collect()
}

fn run(args: &[&str]) -> Config {
    match parse(argv(args), &env) {
        Parsed::Run(config) => config,
        Parsed::Exit { code, message } => panic!("{args:?}: exit {code}: {message}"),
    }
}

fn exit(args: &[&str]) -> (i32, String) {
    match parse(argv(args), &env) {
        Parsed::Exit { code, message } => (code, message),
        Parsed::Run(config) => panic!("{args:?} should not run: {config:?}"),
    }
}

#[test]
fn max_series_overrides_the_memory_budget() {
    let c = run(&["--store_memory_bytes=3Gi", "--max_series=1000"]);
    assert_eq!(c.series_limit, SeriesLimit::Series(1000));
    let c = run(&["--max_series=2000000"]);
    assert_eq!(c.series_limit, SeriesLimit::Series(2_000_000));
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn defaults() {
    let c = run(&[]);
    let demo = SimulatedSource {
        nodes: 5,
        pods_per_node: 10,
        containers_per_pod: 2,
        https: false,
    };
    assert_eq!(c.source, SourceConfig::Simulated(demo));
    assert_eq!(c.sinks, vec![SinkConfig::Metric]);
    assert_eq!(
        (c.metric_resolution, c.scrape_timeout),
        (secs(60), secs(10))
    );
    assert_eq!(
        (c.metric_history, c.shutdown_timeout),
        (secs(900), secs(10))
    );
    assert_eq!(
        (c.max_concurrent_scrapes, c.max_response_bytes),
        (256, 67_108_864)
    );
    assert_eq!(
        (c.heapster_port, c.listen_ip),
        (8082, "127.0.0.1".parse::<IpAddr>().expect("ip"))
    );
    assert_eq!(
        (c.label_separator.as_str(), c.log_level.as_str()),
        (",", "info")
    );
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.series_limit, SeriesLimit::Bytes(1 << 30));
    assert!(c.ignore_labels.is_empty() && c.store_labels.is_empty() && !c.disable_metric_sink);
}

#[test]
fn seed_command_lines() {
    let k = |args: &[&str]| match run(args).source {
        SourceConfig::Kubernetes(k) => k,
        other => panic!("{other:?}"),
    };
    let a = k(&["--source=kubernetes:https://kubernetes.default"]);
    assert_eq!(
        a.api_server.map(String::from).as_deref(),
        Some("https://kubernetes.default/")
    );
    assert_eq!(a.auth, ApiAuth::InCluster);
    let b = k(&["--source=kubernetes:http://10.47.136.60:8080?inClusterConfig=false"]);
    assert_eq!((b.auth, b.insecure), (ApiAuth::None, false));
    let c = k(&[
        "--source=kubernetes:https://kubernetes.default?inClusterConfig=false&insecure=true&auth=/root/.kube/config",
    ]);
    assert_eq!(
        c.auth,
        ApiAuth::Kubeconfig(PathBuf::from("/root/.kube/config"))
    );
    assert!(c.insecure);
    let d = k(&["--source", "kubernetes.summary_api:''"]);
    assert_eq!((d.api_server, d.auth), (None, ApiAuth::InCluster));
}

#[test]
fn kubernetes_source_listens_everywhere() {
    let c = run(&["--source=kubernetes:"]);
    assert_eq!(c.listen_ip, "0.0.0.0".parse::<IpAddr>().expect("ip"));
    let c = run(&["--source=kubernetes:", "--listen_ip=::1"]);
    assert_eq!(c.listen_ip, "::1".parse::<IpAddr>().expect("ip"));
}

#[test]
fn every_flag() {
    let c = run(&[
        "--source=simulated:?nodes=3",
        "--sink=log",
        "--sink=influxdb:http://influx:8086?db=metrics",
        "--metric_resolution=30s",
        "--heapster-port=9000",
        "--listen_ip=10.1.2.3",
        "--label_separator=;",
        "--ignore_label=a,b",
        "--ignore_label=c",
        "--store_label=app",
        "--log-format=json",
        "--log-level=heapster_rs=debug,info",
        "--max_concurrent_scrapes=8",
        "--scrape_timeout=27s",
        "--max_response_bytes=1024",
        "--metric_history=1h",
        "--shutdown_timeout=0",
        "--store_memory_bytes=3Gi",
    ]);
    assert_eq!(c.series_limit, SeriesLimit::Bytes(3 << 30));
    assert!(matches!(
        c.source,
        SourceConfig::Simulated(SimulatedSource { nodes: 3, .. })
    ));
    assert_eq!(c.sinks.len(), 3);
    assert!(
        matches!(&c.sinks[..], [SinkConfig::Metric, SinkConfig::Log, SinkConfig::InfluxDb(i)] if i.db == "metrics")
    );
    assert_eq!(
        (c.metric_resolution, c.scrape_timeout),
        (secs(30), secs(27))
    );
    assert_eq!(
        (c.metric_history, c.shutdown_timeout),
        (secs(3600), Duration::ZERO)
    );
    assert_eq!(
        (c.heapster_port, c.listen_ip.to_string().as_str()),
        (9000, "10.1.2.3")
    );
    assert_eq!(c.label_separator, ";");
    assert_eq!(
        (c.ignore_labels, c.store_labels),
        (vec!["a".into(), "b".into(), "c".into()], vec!["app".into()])
    );
    assert_eq!(
        (c.log_format, c.log_level.as_str()),
        (LogFormat::Json, "heapster_rs=debug,info")
    );
    assert_eq!((c.max_concurrent_scrapes, c.max_response_bytes), (8, 1024));
}

#[test]
fn underscores_dashes_and_single_dash_are_equivalent() {
    let forms: &[&[&str]] = &[
        &[
            "--metric_resolution=20s",
            "--max_concurrent_scrapes=4",
            "--heapster_port=1",
        ],
        &[
            "--metric-resolution=20s",
            "--max-concurrent-scrapes=4",
            "--heapster-port=1",
        ],
        &[
            "-metric_resolution=20s",
            "-max_concurrent_scrapes",
            "4",
            "-heapster-port",
            "1",
        ],
        &[
            "--metric_resolution",
            "20s",
            "--max-concurrent_scrapes=4",
            "-heapster_port=1",
        ],
    ];
    let want = format!("{:?}", run(forms[0]));
    for args in forms {
        assert_eq!(format!("{:?}", run(args)), want, "{args:?}");
    }
}

#[test]
fn derived_defaults_follow_the_resolution() {
    let c = run(&["--metric_resolution=5s"]);
    assert_eq!(c.scrape_timeout, Duration::from_millis(4_500));
    let c = run(&["--metric_resolution=30m"]);
    assert_eq!((c.scrape_timeout, c.metric_history), (secs(10), secs(1800)));
}

#[test]
fn sinks_keep_one_metric_sink_in_front() {
    let c = run(&["--sink=log", "--sink=metric", "--sink=metric"]);
    assert_eq!(c.sinks, vec![SinkConfig::Metric, SinkConfig::Log]);
    let c = run(&["--sink=log", "--disable_metric_sink"]);
    assert_eq!(
        (c.sinks, c.disable_metric_sink),
        (vec![SinkConfig::Log], true)
    );
    let c = run(&["-disable_metric_sink=false"]);
    assert_eq!(
        (c.sinks, c.disable_metric_sink),
        (vec![SinkConfig::Metric], false)
    );
}

#[test]
fn help_and_version_exit_zero() {
    let (code, help) = exit(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        help.contains("--metric-resolution") && help.contains("--source"),
        "{help}"
    );
    assert_eq!(exit(&["-help"]).0, 0);
    for flag in ["--version", "-version", "-V"] {
        let (code, message) = exit(&[flag]);
        assert_eq!(
            (code, message.trim()),
            (
                0,
                format!("heapster-rs {}", env!("CARGO_PKG_VERSION")).as_str()
            )
        );
    }
}

#[test]
fn unknown_flags_exit_two_naming_the_flag() {
    let (code, message) = exit(&["--metric_resoluton=30s"]);
    assert_eq!(code, 2);
    assert!(message.contains("--metric-resoluton"), "{message}");
}

#[test]
fn peer_flags_default_below_the_resolution() {
    let c = run(&[]);
    assert_eq!((c.peers.timeout, c.peers.ca_file), (secs(5), None));
    let c = run(&["--metric_resolution=5s"]);
    assert_eq!(c.peers.timeout, Duration::from_millis(4_500));
    let c = run(&["--peer_timeout=2s", "--peer_ca_file=/etc/peers/ca.crt"]);
    assert_eq!(c.peers.timeout, secs(2));
    assert_eq!(c.peers.ca_file, Some(PathBuf::from("/etc/peers/ca.crt")));
}

#[test]
fn every_error_names_its_flag() {
    let cases: &[(&str, &str)] = &[
        (
            "--metric_resolution=3s",
            "error: --metric_resolution: 3s is below the minimum of 5s",
        ),
        (
            "--metric_resolution=-1m",
            "error: --metric_resolution: \"-1m\" is negative",
        ),
        (
            "--metric_resolution=60",
            "error: --metric_resolution: \"60\" is missing a unit",
        ),
        (
            "--scrape_timeout=55s",
            "error: --scrape_timeout: 55s exceeds 0.9 x --metric_resolution (54s)",
        ),
        (
            "--scrape_timeout=0",
            "error: --scrape_timeout: must be greater than 0",
        ),
        (
            "--peer_timeout=60s",
            "error: --peer_timeout: 1m is not below --metric_resolution (1m)",
        ),
        (
            "--peer_timeout=0s",
            "error: --peer_timeout: must be greater than 0",
        ),
        (
            "--replication=4",
            "error: --replication: \"4\" is not a whole number from 1 to 3",
        ),
        (
            "--sharding=maybe",
            "error: --sharding: \"maybe\" is not a boolean (true or false)",
        ),
        (
            "--sharding_address=ftp://peer",
            "error: --sharding_address: \"ftp://peer\" is not an http(s) URL with a host",
        ),
        (
            "--sharding_identity=Heapster_0",
            "error: --sharding_identity: \"Heapster_0\" cannot name a Lease (lowercase letters, digits, '-', '.')",
        ),
        (
            "--metric_history=30s",
            "error: --metric_history: 30s is shorter than --metric_resolution (1m)",
        ),
        (
            "--history_metrics=cpu/usage_rate,memory/rss",
            "error: --history_metrics: \"memory/rss\" is not one of cpu/usage_rate, memory/usage, memory/working_set",
        ),
        (
            "--store_memory_bytes=2GB",
            "error: --store_memory_bytes: \"2GB\" is not a byte count of at least 1Mi (e.g. 2Gi, 1500Mi)",
        ),
        (
            "--store_memory_bytes=1000",
            "error: --store_memory_bytes: \"1000\" is not a byte count of at least 1Mi",
        ),
        (
            "--max_series=0",
            "error: --max_series: \"0\" is not a whole number of at least 1",
        ),
        (
            "--shutdown_timeout=soon",
            "error: --shutdown_timeout: \"soon\" is not a duration",
        ),
        (
            "--heapster-port=80000",
            "error: --heapster-port: \"80000\" is not a port",
        ),
        (
            "--listen_ip=localhost",
            "error: --listen_ip: \"localhost\" is not an IP address",
        ),
        (
            "--label_separator=",
            "error: --label_separator: must not be empty",
        ),
        (
            "--log-format=xml",
            "error: --log-format: unknown format \"xml\" (known: json, text)",
        ),
        ("--log-level=", "error: --log-level: must not be empty"),
        (
            "--log-level=foo=notalevel",
            "error: --log-level: \"foo=notalevel\" is not a tracing filter",
        ),
        (
            "--max_concurrent_scrapes=0",
            "error: --max_concurrent_scrapes: \"0\" is not a whole number of at least 1",
        ),
        (
            "--max_response_bytes=1023",
            "error: --max_response_bytes: \"1023\" is not a whole number of at least 1024",
        ),
        (
            "--disable_metric_sink=maybe",
            "error: --disable_metric_sink: \"maybe\" is not a boolean",
        ),
        (
            "--source=kubernetes:?kubeletPrt=10250",
            "error: --source: unknown option \"kubeletPrt\" (known: inClusterConfig,",
        ),
        (
            "--source=prometheus:",
            "error: --source: unknown source kind \"prometheus\"",
        ),
        (
            "--sink=kafka:",
            "error: --sink: option brokers: at least one is required (e.g. brokers=kafka:9092)",
        ),
        (
            "--sink=riemann:",
            "error: --sink: unknown sink kind \"riemann\" (known: influxdb, kafka, log, metric, remotewrite)",
        ),
        (
            "--sink=influxdb:?concurrency=100",
            "error: --sink: option concurrency: \"100\" is not a number from 1 to 64",
        ),
    ];
    for (arg, want) in cases {
        let (code, message) = exit(&[arg]);
        assert_eq!(code, 2, "{arg}");
        assert!(message.contains(want), "{arg}: {message}");
        assert!(
            message.lines().all(|l| l.starts_with("error: --")),
            "{message}"
        );
    }
    let (_, message) = exit(&["--disable_metric_sink", "--sink=metric"]);
    assert!(message.contains("error: --disable_metric_sink: conflicts with --sink=metric"));
    let (_, message) = exit(&["--source=simulated:", "--source=kubernetes:"]);
    assert!(message.contains("error: --source: given 2 times; exactly one source is supported"));
    let (code, message) = exit(&[
        "--sink=influxdb:?spool_dir=/var/lib/heapster/spool",
        "--sink=remotewrite:http://prom:9090/api/v1/write?spool_dir=/var/lib/heapster/spool",
    ]);
    assert_eq!(code, 2);
    assert!(
        message.contains("error: --sink: two sinks (--sink or --event_sink) share a spool_dir")
    );
}

#[test]
fn all_errors_reported_at_once() {
    let (code, message) = exit(&[
        "--metric_resolution=3s",
        "--source=kubernetes:?kubeletPrt=1&insecure=maybe",
        "--sink=kafka:",
        "--sink=influxdb:?version=7",
        "--heapster-port=x",
        "--log-format=xml",
        "--max_response_bytes=1",
    ]);
    assert_eq!(code, 2);
    assert_eq!(message.lines().count(), 8, "{message}");
    for flag in [
        "--metric_resolution",
        "--source",
        "--sink",
        "--heapster-port",
        "--log-format",
        "--max_response_bytes",
    ] {
        assert!(
            message.contains(&format!("error: {flag}: ")),
            "{flag}: {message}"
        );
    }
}

#[test]
fn environment_is_expanded_and_never_echoed() {
    let c = run(&[
        "--source=kubernetes:${APISERVER}",
        "--sink=influxdb:http://influx?pw=$INFLUX_PASSWORD",
    ]);
    match (&c.source, &c.sinks[1]) {
        (SourceConfig::Kubernetes(k), SinkConfig::InfluxDb(i)) => {
            assert_eq!(
                k.api_server.as_ref().map(|u| u.as_str()),
                Some("https://10.96.0.1/")
            );
            assert_eq!(i.password, "very-secret-pw");
        }
        other => panic!("{other:?}"),
    }
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("very-secret-pw") && debug.contains("**REDACTED**"),
        "{debug}"
    );

    let (code, message) = exit(&[
        "--source=kubernetes:$NOT_SET",
        "--sink=influxdb:http://influx?pw=$INFLUX_PASSWORD&concurrency=$INFLUX_PASSWORD",
        "--sink=influxdb:?pw=literal-secret&pw=literal-secret&token=tok-secret&version=$INFLUX_PASSWORD",
    ]);
    assert_eq!(code, 2);
    assert!(
        message.contains("error: --source: environment variable $NOT_SET is not set"),
        "{message}"
    );
    for secret in ["very-secret-pw", "literal-secret", "tok-secret"] {
        assert!(!message.contains(secret), "{secret} leaked: {message}");
    }
}
