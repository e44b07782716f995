//! A simulated Kubernetes cluster for tests, the demo mode and benchmarks: an in-process fake
//! apiserver plus one fake kubelet per node, over real HTTP or HTTPS on loopback addresses.
//!
//! [`SimCluster::start`] binds the apiserver on `127.0.0.1:0` and every kubelet on the same port
//! of its own address `127.B.(i/250).(i%250+1)` (B random in 2..=250, the next blocks past
//! 64,000 nodes, see [`node_ip`]). A cluster may be split over processes ([`SimServe`]: the
//! apiserver in one, ranges of kubelets in others) given the same [`SimLayout`]. The
//! kubelets serve `GET /stats/summary` shaped like the 1.34/1.35 captures in
//! `shared/fixtures/kubelet/`, and `GET /metrics/resource` with the same counters; the apiserver serves discovery, LIST + WATCH of nodes, pods and
//! namespaces as `kube` watchers use them, and the node proxy to `/stats/summary`;
//! `coordination.k8s.io/v1` Leases (see `leases`); core v1 Events
//! ([`SimCluster::emit_event`], [`SimCluster::bump_event`]) with LIST + WATCH, and
//! [`SimCluster::expire_watches`] to force a 410 Gone; [`SimCluster::stop_apiserver`] and
//! [`SimCluster::start_apiserver`] for an apiserver outage.
//!
//! # Values (all deterministic; see [`formulas`])
//!
//! With `h = node*31 + pod*7 + container*3` and `MiB = 1 << 20`:
//!
//! | value | formula |
//! |---|---|
//! | container `usageNanoCores` | [`container_cpu_nanocores`] = `(1 + h % 50) * 10_000_000` |
//! | container `usageCoreNanoSeconds` | `usageNanoCores * (sample_secs - start_secs)` |
//! | container `workingSetBytes` | [`container_working_set_bytes`] = `(16 + h % 64) * MiB` |
//! | container `usageBytes` | [`container_memory_usage_bytes`] = working set + 8 MiB |
//! | container `rssBytes` | [`container_rss_bytes`] = working set - 4 MiB |
//! | container `pageFaults` / `majorPageFaults` | per-second rates `10 + h % 90` / `h % 3`, × elapsed seconds |
//! | container `rootfs.usedBytes` / `logs.usedBytes` | `(1 + h % 20) * MiB` / `(1 + h % 10) * 64 KiB` |
//! | pod network `rxBytes` / `txBytes` | rates [`pod_network_rx_bytes_per_sec`] = `(1 + (node*13 + pod*5) % 40) * 1000`, tx = rx / 2, × elapsed |
//! | pod cpu / memory | sums over its containers (counters too) |
//! | system containers | [`system_container_cpu_nanocores`], [`system_container_working_set_bytes`] (kubelet, runtime, misc) |
//! | node cpu / memory | sum over pods + kubelet + runtime + misc ([`node_cpu_nanocores`], [`node_working_set_bytes`]) |
//! | node network | sums over pods |
//!
//! Sample `time` is the current time truncated to whole seconds; every start time is the cluster
//! start (or node add time, or container restart time) truncated to whole seconds, so a rate from
//! any two samples is exactly the configured rate. [`SimCluster::restart_container`] resets that
//! container's counters (and so drops the pod and node sums).
//!
//! # Selectors
//!
//! Lists and watches honour `fieldSelector` on `metadata.name`, `metadata.namespace` and (pods)
//! `spec.nodeName`, and `labelSelector` terms `k=v`, `k==v`, `k!=v`, `k`, `!k`; set-based terms
//! (`k in (..)`) are refused with 400. `limit`/`continue` pagination is supported (pages are
//! served from the current state, not a snapshot at the first page's resource version).
//!
//! # Auth
//!
//! Over http nothing is checked, but kubelets still record any `Authorization` header
//! ([`KubeletStats`]). With https and [`SimAuth::Token`] the apiserver (all but `/healthz`,
//! `/livez`, `/readyz`) and kubelets answer 401 without the current bearer token; with
//! [`SimAuth::ClientCert`] the TLS handshake requires a certificate signed by the simulator's CA.
//! TokenReview and SubjectAccessReview answer for the users and RBAC rules a test registers
//! ([`SimCluster::add_user`], [`SimCluster::allow`]).
//! Servers speak HTTP/1.1 only (ALPN `http/1.1`).

mod apiserver;
pub mod bomb;
mod changes;
mod cluster;
mod events;
pub mod formulas;
mod kubeconfig;
mod kubelet;
mod leases;
mod list;
mod objects;
mod payload;
mod resource_metrics;
mod review;
mod selector;
mod serve;
mod state;
mod summary;
mod tls;
mod watch;

pub use cluster::SimCluster;
pub use events::SimEvent;
pub use formulas::*;
pub use review::{SimRule, SimSubject};

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

/// How the simulated cluster is built.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub nodes: usize,
    pub pods_per_node: usize,
    pub containers_per_pod: usize,
    /// TLS for the apiserver and kubelets, with certificates from a generated CA.
    pub https: bool,
    /// Only meaningful with `https`; over http there is never auth.
    pub auth: SimAuth,
    /// True: kubelet certificates carry the node IP SAN; false: only a DNS SAN of the node name,
    /// like real kubelets (verification by IP fails).
    pub kubelet_cert_ip_san: bool,
    /// Node index → fault of its kubelet.
    pub faults: Vec<(usize, KubeletFault)>,
    /// Nodes whose Ready condition is False.
    pub not_ready: Vec<usize>,
    /// The minor version `/version` reports.
    pub kubernetes_minor: u32,
    /// How long the nodes and pods have been running when the simulator starts: it sets
    /// their start times, and so the size of cumulative counters (cpu in ns, network bytes,
    /// uptime). Real pods run for days; 0 starts everything now.
    pub uptime_secs: u64,
    /// Which servers this process runs: a cluster may be split over several processes (one
    /// apiserver, kubelets by node range) that agree on [`Self::layout`].
    pub serve: SimServe,
    /// Where the kubelets are and when the cluster started; every process of a split cluster
    /// must be given the same.
    pub layout: SimLayout,
}

/// Which servers [`SimCluster::start`] runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SimServe {
    /// The apiserver and every kubelet.
    #[default]
    All,
    /// The apiserver alone (its node proxy answers from the same formulas); the kubelets run
    /// elsewhere, at the addresses [`SimOptions::layout`] gives.
    ApiServer,
    /// The kubelets of these node indexes alone, no apiserver.
    Kubelets(std::ops::Range<usize>),
}

/// The address layout and clock of a cluster, fixed so that several processes agree on it.
/// Each field left `None` is chosen at start-up (random block, free port, now − uptime).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimLayout {
    /// The first `127.B.0.0/16` block of the kubelets (see [`node_ip`]).
    pub block: Option<u8>,
    /// The port every kubelet listens on.
    pub kubelet_port: Option<u16>,
    /// When the nodes and pods started, Unix seconds (overrides `uptime_secs`).
    pub start_unix_secs: Option<i64>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            nodes: 3,
            pods_per_node: 4,
            containers_per_pod: 2,
            https: false,
            auth: SimAuth::None,
            kubelet_cert_ip_san: true,
            faults: Vec::new(),
            not_ready: Vec::new(),
            kubernetes_minor: 33,
            uptime_secs: 0,
            serve: SimServe::All,
            layout: SimLayout::default(),
        }
    }
}

/// How clients authenticate to the apiserver and kubelets (with https only).
#[derive(Clone, PartialEq, Eq)]
pub enum SimAuth {
    None,
    /// `Authorization: Bearer <token>`; rotate with [`SimCluster::set_token`].
    Token(String),
    /// A client certificate signed by the simulator's CA.
    ClientCert,
}

impl fmt::Debug for SimAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimAuth::None => f.write_str("None"),
            SimAuth::Token(_) => f.write_str("Token(**REDACTED**)"),
            SimAuth::ClientCert => f.write_str("ClientCert"),
        }
    }
}

/// Node `node`'s `/stats/summary` body as its kubelet would serve it at `now`, rendered in
/// process (no servers): for benches and tests of the decoder. The node and its containers
/// started at `start` (nanoseconds).
pub fn summary_body(
    node: usize,
    pods_per_node: usize,
    containers_per_pod: usize,
    start: crate::model::Nanos,
    now: crate::model::Nanos,
) -> Vec<u8> {
    let cfg = state::Config {
        pods_per_node,
        containers_per_pod,
        https: false,
        auth: state::AuthKind::None,
        kubelet_port: 0,
        block: 2,
        api_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        minor: SimOptions::default().kubernetes_minor,
        start,
    };
    summary::render(&cfg, &cluster::new_node(node, cfg.block, start, None), now)
}

/// A misbehaving kubelet (it affects `/stats/summary`, direct and through the node proxy, and
/// `/metrics/resource`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KubeletFault {
    /// Accepts and reads the request, never answers.
    Hang,
    /// Answers 500.
    Status500,
    /// Answers 200 `text/plain` with a body that is not JSON.
    Garbage,
    /// Answers 200 `application/json` with the first half of a real payload.
    TruncatedJson,
    /// Answers 200 `application/json` with a `Content-Length` of this many bytes, streamed.
    HugeBody(u64),
    /// The same body without a `Content-Length` (chunked): only a cap while reading stops it.
    HugeChunkedBody(u64),
    /// Answers 200 and sends the payload one byte per second.
    SlowTrickle,
    /// The listener is never bound: connections are refused.
    RefuseConnections,
    /// `/stats/summary` answers 403 (no `nodes/stats` permission); `/metrics/resource` works.
    SummaryForbidden,
    /// Answers 200 with `Content-Encoding: gzip` and a valid gzip body that inflates to this
    /// many zero bytes (about 1,000 times smaller on the wire; see [`bomb`]).
    GzipBomb(u64),
    /// Serves (https only) a certificate for another host name, without the node's IP SAN:
    /// verification fails.
    WrongHostCert,
    /// Serves (https only) a self-signed certificate marked as a CA, as kubelets make for
    /// themselves unless serving-certificate bootstrap is on.
    SelfSignedCert,
    /// Serves (https only) a certificate signed by a CA the collector is not told about.
    UnknownCaCert,
    /// Serves (https only) a cluster-CA certificate that expired in 2021.
    ExpiredCert,
    /// Serves (https only) a cluster-CA certificate valid only from 2090.
    NotYetValidCert,
}

impl std::str::FromStr for KubeletFault {
    type Err = String;

    /// `hang`, `500`, `garbage`, `truncated`, `huge:<bytes>`, `slow`, `refuse`, `summary403`,
    /// `hugechunked:<bytes>`, `gzipbomb:<inflated bytes>`, `wronghost`, `selfsigned`, `unknownca`,
    /// `expired`, `notyetvalid`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "hang" => KubeletFault::Hang,
            "500" | "status500" => KubeletFault::Status500,
            "garbage" => KubeletFault::Garbage,
            "truncated" => KubeletFault::TruncatedJson,
            "slow" => KubeletFault::SlowTrickle,
            "refuse" => KubeletFault::RefuseConnections,
            "summary403" => KubeletFault::SummaryForbidden,
            "wronghost" => KubeletFault::WrongHostCert,
            "selfsigned" => KubeletFault::SelfSignedCert,
            "unknownca" => KubeletFault::UnknownCaCert,
            "expired" => KubeletFault::ExpiredCert,
            "notyetvalid" => KubeletFault::NotYetValidCert,
            other => {
                let size = |prefix: &str| other.strip_prefix(prefix).and_then(|n| n.parse().ok());
                if let Some(n) = size("huge:") {
                    KubeletFault::HugeBody(n)
                } else if let Some(n) = size("hugechunked:") {
                    KubeletFault::HugeChunkedBody(n)
                } else if let Some(n) = size("gzipbomb:") {
                    KubeletFault::GzipBomb(n)
                } else {
                    return Err(format!("unknown kubelet fault {other:?}"));
                }
            }
        })
    }
}

/// One node as the simulator placed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimNodeInfo {
    pub index: usize,
    pub name: String,
    pub ip: Ipv4Addr,
}

/// What one kubelet has seen.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KubeletStats {
    /// Requests the kubelet itself answered (any path, any outcome; not node-proxy requests).
    pub requests: u64,
    /// The last `Authorization` header value received, if any request carried one.
    pub last_authorization: Option<String>,
}

impl fmt::Debug for KubeletStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeletStats")
            .field("requests", &self.requests)
            .field(
                "last_authorization",
                &self.last_authorization.as_ref().map(|_| "**REDACTED**"),
            )
            .finish()
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listener could not be bound.
    #[error("cannot bind {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Every attempt at a free `127.B.0.0/16` block and port collided with something.
    #[error("no free loopback block for the kubelets after {attempts} attempts")]
    NoFreeBlock { attempts: usize },
    /// More nodes than the address scheme holds.
    #[error("too many nodes: {nodes} (at most {max})")]
    TooManyNodes { nodes: usize, max: usize },
    /// The nodes would spill past block 255 from the given first block.
    #[error("{nodes} nodes take {blocks} blocks: the first block must be at most {max}")]
    BlockTooHigh {
        nodes: usize,
        blocks: usize,
        max: usize,
    },
    /// A kubelet range outside the cluster's nodes.
    #[error("node range {start}..{end} is outside the {nodes} nodes")]
    BadRange {
        start: usize,
        end: usize,
        nodes: usize,
    },
    /// An apiserver alone needs to know where the kubelets listen.
    #[error("an apiserver without its kubelets needs the kubelets' block and port")]
    LayoutMissing,
    /// Generating a certificate failed.
    #[error("certificate generation failed")]
    Certificate(#[source] rcgen::Error),
    /// Building a TLS configuration failed.
    #[error("TLS configuration failed")]
    Tls(#[source] rustls::Error),
    /// Building the client-certificate verifier failed.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}
