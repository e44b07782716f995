//! The validated configuration: what the rest of the program reads. Parsing lives beside it.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// Which node address to connect to, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressType {
    InternalIp,
    ExternalIp,
    Hostname,
    InternalDns,
    ExternalDns,
}

impl AddressType {
    /// The `type` of a node address in `status.addresses`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AddressType::InternalIp => "InternalIP",
            AddressType::ExternalIp => "ExternalIP",
            AddressType::Hostname => "Hostname",
            AddressType::InternalDns => "InternalDNS",
            AddressType::ExternalDns => "ExternalDNS",
        }
    }
}

/// How the collector authenticates to the apiserver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiAuth {
    /// Service-account token and CA from `service_account_dir` (Heapster's `inClusterConfig=true`).
    InCluster,
    /// A kubeconfig file (`auth=`), current context.
    Kubeconfig(PathBuf),
    /// No credentials (`inClusterConfig=false` without `auth=`), e.g. the insecure port.
    None,
}

/// `--source=kubernetes:...`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesSource {
    /// Apiserver URL; `None` means in-cluster defaults (`KUBERNETES_SERVICE_HOST:PORT`).
    pub api_server: Option<Url>,
    pub auth: ApiAuth,
    /// Skip TLS verification of the apiserver (`insecure=true`).
    pub insecure: bool,
    /// Send the service-account token as bearer token in any mode (`useServiceAccount=true`).
    pub use_service_account: bool,
    /// Where the service-account token and CA live (`serviceAccountDir=`, default
    /// `/var/run/secrets/kubernetes.io/serviceaccount`).
    pub service_account_dir: PathBuf,
    /// The kubelet port for every node; `None`: the port each node advertises
    /// (`status.daemonEndpoints`, else 10250). Finished by the parser with Heapster's defaults:
    /// when `kubeletPort=` or `kubeletHttps=` is given, plain http means port 10255 unless
    /// `kubeletPort=` says otherwise.
    pub kubelet_port: Option<u16>,
    /// Scrape kubelets over https: true unless `kubeletHttps=false`, or `kubeletPort=` is given
    /// without `kubeletHttps=true` (Heapster's meaning of an explicit port).
    pub kubelet_https: bool,
    /// `kubeletInsecure=`: skip kubelet certificate checks. When not given it follows
    /// `insecure`, as in Heapster (see [`KubernetesSource::kubelet_insecure`]).
    pub kubelet_insecure: Option<bool>,
    /// Scrape through the apiserver's node proxy (`nodeProxy=true`).
    pub node_proxy: bool,
    /// Address preference (`addressTypes=InternalIP,ExternalIP,Hostname`).
    pub address_types: Vec<AddressType>,
    /// Which kubelet endpoint to scrape (`kubeletEndpoint=summary|resource|auto`).
    pub kubelet_endpoint: KubeletEndpoint,
    /// Keep one idle connection per kubelet between scrapes (`kubeletKeepAlive`, on by default):
    /// no TCP connect and no TLS handshake per node per tick. An idle connection holds its
    /// socket and TLS session only, not a response buffer.
    pub kubelet_keep_alive: bool,
}

/// `kubeletEndpoint=`: which kubelet endpoint the collector scrapes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KubeletEndpoint {
    /// `/stats/summary` (RBAC `nodes/stats`): everything Heapster wrote.
    #[default]
    Summary,
    /// `/metrics/resource` (RBAC `nodes/metrics`): cpu and memory only.
    Resource,
    /// Summary, falling back per node to resource when summary answers 403 or 404.
    Auto,
}

impl KubeletEndpoint {
    pub const ALL: [KubeletEndpoint; 3] = [
        KubeletEndpoint::Summary,
        KubeletEndpoint::Resource,
        KubeletEndpoint::Auto,
    ];

    /// The option value.
    pub const fn as_str(self) -> &'static str {
        match self {
            KubeletEndpoint::Summary => "summary",
            KubeletEndpoint::Resource => "resource",
            KubeletEndpoint::Auto => "auto",
        }
    }
}

/// Where a pod's service-account token and CA are mounted.
pub const DEFAULT_SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The default node address preference.
pub const DEFAULT_ADDRESS_TYPES: [AddressType; 3] = [
    AddressType::InternalIp,
    AddressType::ExternalIp,
    AddressType::Hostname,
];

impl KubernetesSource {
    /// Whether kubelet certificates go unverified: `kubeletInsecure` when given, else
    /// `insecure` (Heapster skipped kubelet verification with `insecure=true`).
    pub fn kubelet_insecure(&self) -> bool {
        self.kubelet_insecure.unwrap_or(self.insecure)
    }

    /// True when kubelet verification is off only because `insecure=true` implies it.
    pub fn kubelet_insecure_implied(&self) -> bool {
        self.insecure && self.kubelet_insecure.is_none()
    }

    /// Heapster's defaults (in-cluster, modern kubelet endpoint) for an apiserver URL; the
    /// parser and the simulated source start from here.
    pub fn new(api_server: Option<Url>) -> KubernetesSource {
        KubernetesSource {
            api_server,
            auth: ApiAuth::InCluster,
            insecure: false,
            use_service_account: false,
            service_account_dir: PathBuf::from(DEFAULT_SERVICE_ACCOUNT_DIR),
            kubelet_port: None,
            kubelet_https: true,
            kubelet_insecure: None,
            node_proxy: false,
            address_types: DEFAULT_ADDRESS_TYPES.to_vec(),
            kubelet_endpoint: KubeletEndpoint::Summary,
            kubelet_keep_alive: true,
        }
    }
}

/// `--source=simulated:?nodes=N&podsPerNode=M...`: an in-process simulated cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedSource {
    pub nodes: usize,
    pub pods_per_node: usize,
    pub containers_per_pod: usize,
    /// Serve kubelets and apiserver over HTTPS with a generated CA and a bearer token.
    pub https: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceConfig {
    Kubernetes(KubernetesSource),
    Simulated(SimulatedSource),
}

/// Options of `--sink=influxdb:URL?...` (REFERENCE.md §2 plus the 2.x options).
#[derive(Clone, PartialEq, Eq)]
pub struct InfluxConfig {
    /// Base URL (scheme, host, port, optional path prefix); `secure=true` forces https.
    pub url: Url,
    pub user: String,
    pub password: String,
    pub db: String,
    /// Retention of the policy written to; `None` = infinite (Heapster's `0`).
    pub retention: Option<Duration>,
    /// Name of the retention policy written to (Heapster: `default`).
    pub retention_policy: String,
    pub insecure_ssl: bool,
    pub with_fields: bool,
    pub cluster_name: String,
    pub disable_counter_metrics: bool,
    pub concurrency: usize,
    /// `version=1|2`; `None` = detect from `/ping`'s `X-Influxdb-Version`.
    pub version: Option<u8>,
    /// InfluxDB 2.x/3.x token, org and bucket (bucket defaults to `db/rp`).
    pub token: Option<String>,
    pub org: Option<String>,
    pub bucket: Option<String>,
    /// Lines per write request (default 5,000).
    pub batch_size: usize,
    /// Points held while InfluxDB is unreachable (default 1,000,000).
    pub buffer_points: usize,
    /// Gzip request bodies (default true).
    pub gzip: bool,
    /// The disk spool (`spool_dir`, `spool_bytes`); off by default.
    pub spool: crate::sink::delivery::SpoolConfig,
}

/// An optional secret as `Debug` prints it: `**REDACTED**` when set.
fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "**REDACTED**")
}

impl std::fmt::Debug for InfluxConfig {
    /// Secrets print as `**REDACTED**`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InfluxConfig")
            .field("url", &self.url.as_str())
            .field("user", &self.user)
            .field("password", &"**REDACTED**")
            .field("db", &self.db)
            .field("retention", &self.retention)
            .field("retention_policy", &self.retention_policy)
            .field("insecure_ssl", &self.insecure_ssl)
            .field("with_fields", &self.with_fields)
            .field("cluster_name", &self.cluster_name)
            .field("disable_counter_metrics", &self.disable_counter_metrics)
            .field("concurrency", &self.concurrency)
            .field("version", &self.version)
            .field("token", &redacted(&self.token))
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("batch_size", &self.batch_size)
            .field("buffer_points", &self.buffer_points)
            .field("gzip", &self.gzip)
            .field("spool", &self.spool)
            .finish()
    }
}

/// `--sink=remotewrite:URL?options`: Prometheus remote write.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteWriteConfig {
    /// The full write URL (`http://prometheus:9090/api/v1/write`).
    pub url: Url,
    /// Basic auth.
    pub user: Option<String>,
    pub password: Option<String>,
    /// `Authorization: Bearer`, from the option or read from a file at each request.
    pub token: Option<String>,
    pub token_file: Option<std::path::PathBuf>,
    pub insecure_ssl: bool,
    /// The `cluster` label on every series.
    pub cluster_name: String,
    /// Extra labels on every series (`labels=k:v,k2:v2`), sorted by name.
    pub labels: Vec<(String, String)>,
    pub samples_per_request: usize,
    pub concurrency: usize,
    /// Samples held in memory (the delivery layer's queue).
    pub buffer_points: usize,
    pub spool: crate::sink::delivery::SpoolConfig,
}

impl std::fmt::Debug for RemoteWriteConfig {
    /// Secrets print as `**REDACTED**`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteWriteConfig")
            .field("url", &self.url.as_str())
            .field("user", &self.user)
            .field("password", &redacted(&self.password))
            .field("token", &redacted(&self.token))
            .field("token_file", &self.token_file)
            .field("insecure_ssl", &self.insecure_ssl)
            .field("cluster_name", &self.cluster_name)
            .field("labels", &self.labels)
            .field("samples_per_request", &self.samples_per_request)
            .field("concurrency", &self.concurrency)
            .field("buffer_points", &self.buffer_points)
            .field("spool", &self.spool)
            .finish()
    }
}

/// Compression of Kafka record batches (`compression=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KafkaCompression {
    None,
    Gzip,
    Snappy,
    Lz4,
}

/// `--sink=kafka:?brokers=...`: JSON messages to Kafka topics, as Heapster's Kafka sink.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    pub timeseries_topic: String,
    pub events_topic: String,
    pub compression: KafkaCompression,
    /// SASL PLAIN; both or neither.
    pub user: Option<String>,
    pub password: Option<String>,
    /// TLS: on when any of these is given.
    pub ca_cert: Option<std::path::PathBuf>,
    pub cert: Option<std::path::PathBuf>,
    pub key: Option<std::path::PathBuf>,
    pub insecure_ssl: bool,
    /// Messages per produce request.
    pub batch_size: usize,
    pub concurrency: usize,
    /// Messages held in memory (the delivery layer's queue).
    pub buffer_points: usize,
    pub spool: crate::sink::delivery::SpoolConfig,
}

impl KafkaConfig {
    /// Whether the connection uses TLS.
    pub fn tls(&self) -> bool {
        self.ca_cert.is_some() || self.cert.is_some() || self.insecure_ssl
    }
}

impl std::fmt::Debug for KafkaConfig {
    /// The password prints as `**REDACTED**`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("timeseries_topic", &self.timeseries_topic)
            .field("events_topic", &self.events_topic)
            .field("compression", &self.compression)
            .field("user", &self.user)
            .field("password", &redacted(&self.password))
            .field("ca_cert", &self.ca_cert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("insecure_ssl", &self.insecure_ssl)
            .field("batch_size", &self.batch_size)
            .field("concurrency", &self.concurrency)
            .field("buffer_points", &self.buffer_points)
            .field("spool", &self.spool)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkConfig {
    /// Prints batches (debugging).
    Log,
    /// The in-memory store for the APIs (on by default; `--disable_metric_sink` turns it off).
    Metric,
    InfluxDb(Box<InfluxConfig>),
    RemoteWrite(Box<RemoteWriteConfig>),
    Kafka(Box<KafkaConfig>),
}

impl SinkConfig {
    /// The sink's spool directory, if it has one.
    pub fn spool_dir(&self) -> Option<&std::path::Path> {
        match self {
            SinkConfig::Log | SinkConfig::Metric => None,
            SinkConfig::InfluxDb(c) => c.spool.dir.as_deref(),
            SinkConfig::RemoteWrite(c) => c.spool.dir.as_deref(),
            SinkConfig::Kafka(c) => c.spool.dir.as_deref(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything the collector needs, validated.
#[derive(Clone, Debug)]
pub struct Config {
    pub source: SourceConfig,
    pub sinks: Vec<SinkConfig>,
    /// `--event_sink`: also export cluster events (influxdb, kafka, log); empty = no events.
    pub event_sinks: Vec<SinkConfig>,
    pub metric_resolution: Duration,
    /// Per-node scrape timeout (default min(10s, 0.9 × resolution)).
    pub scrape_timeout: Duration,
    /// Most kubelet scrapes alive at once, decoded samples waiting to be processed included
    /// (`--max_concurrent_scrapes`, default 256).
    pub max_concurrent_scrapes: usize,
    /// Largest accepted kubelet response body (`--max_response_bytes`, default 64 MiB).
    pub max_response_bytes: usize,
    pub heapster_port: u16,
    pub listen_ip: std::net::IpAddr,
    /// Whether `--heapster-port` also serves the model API and `metrics.k8s.io`, with no
    /// authentication (`--plain_port_apis`, default true for Heapster's clients).
    pub plain_port_apis: bool,
    pub label_separator: String,
    pub ignore_labels: Vec<String>,
    pub store_labels: Vec<String>,
    pub disable_metric_sink: bool,
    pub log_format: LogFormat,
    /// A tracing filter (`info`, `debug`, `heapster_rs=debug`).
    pub log_level: String,
    /// How long history the in-memory store keeps (`--metric_history`, default 15m).
    pub metric_history: Duration,
    /// Budget to flush sinks at shutdown (`--shutdown_timeout`, default 10s).
    pub shutdown_timeout: Duration,
    /// What bounds the series (entities) the in-memory store holds: `--max_series` when
    /// given, `--store_memory_bytes` otherwise.
    pub series_limit: crate::store::SeriesLimit,
    /// The metrics the in-memory store keeps a history of (`--history_metrics`).
    pub history_metrics: crate::store::HistoryMetrics,
    /// The secure port serving `metrics.k8s.io` as an aggregated API.
    pub secure: SecureServing,
    /// Sharded, replicated collection (`--sharding=true`); `None`: one replica does it all.
    pub sharding: Option<super::sharding::Sharding>,
    /// How this replica asks the other replicas (`--peer_timeout`, `--peer_ca_file`).
    pub peers: PeerConfig,
}

/// Requests to the other replicas of a sharded collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The bound on each request (`--peer_timeout`, default min(5s, 0.9 x resolution)).
    pub timeout: Duration,
    /// CA of the peers' serving certificates (`--peer_ca_file`); `None`: not verified.
    pub ca_file: Option<PathBuf>,
}

/// `--secure_port` and its TLS and authentication files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecureServing {
    /// 0 = off.
    pub port: u16,
    /// Serving certificate and key (PEM); both or neither (then a self-signed one is made).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// CA of the front proxy's client certificates (`--requestheader_client_ca_file`).
    pub client_ca_file: Option<PathBuf>,
    /// Accepted client certificate CNs; empty = any signed by the CA.
    pub allowed_names: Vec<String>,
}
