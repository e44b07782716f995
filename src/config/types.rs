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
    /// `kubeletPort=`: explicit port for every node (Heapster's meaning).
    pub kubelet_port: Option<u16>,
    /// `kubeletHttps=`: explicit scheme for every node (Heapster's meaning).
    pub kubelet_https: Option<bool>,
    /// Skip kubelet certificate checks only (`kubeletInsecure=true`).
    pub kubelet_insecure: bool,
    /// Scrape through the apiserver's node proxy (`nodeProxy=true`).
    pub node_proxy: bool,
    /// Address preference (`addressTypes=InternalIP,ExternalIP,Hostname`).
    pub address_types: Vec<AddressType>,
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
            .field("token", &self.token.as_ref().map(|_| "**REDACTED**"))
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("batch_size", &self.batch_size)
            .field("buffer_points", &self.buffer_points)
            .field("gzip", &self.gzip)
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
    /// `--event_sink`: also export cluster events (influxdb, log); empty = no events.
    pub event_sinks: Vec<SinkConfig>,
    pub metric_resolution: Duration,
    /// Per-node scrape timeout (default min(10s, 0.9 × resolution)).
    pub scrape_timeout: Duration,
    /// Maximum kubelet requests in flight (`--max_concurrent_scrapes`, default 256).
    pub max_concurrent_scrapes: usize,
    /// Largest accepted kubelet response body (`--max_response_bytes`, default 64 MiB).
    pub max_response_bytes: usize,
    pub heapster_port: u16,
    pub listen_ip: std::net::IpAddr,
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
}
