//! Asking the other replicas: parallel GETs of their replica-local answers, each bounded by
//! `--peer_timeout`, the answer's size capped, every request counted by outcome.
//!
//! A peer that fails or is late is one entry of the result, never an error of the whole call:
//! the caller answers with what came back. Over https the replica's own service-account token
//! goes along as a Bearer token (re-read from its file when it changes, never logged), and the
//! peer's certificate is verified against `--peer_ca_file` when given; without it the
//! connection is encrypted but the peer is not authenticated (the README says so). Over plain
//! http nothing is sent but the request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rustls::pki_types::CertificateDer;

use crate::model::replica::Peer;
use crate::source::credentials::TokenSource;
use crate::source::kubelet::AnyServerCert;

/// Largest answer accepted from a peer by default: a whole replica's pod list with labels
/// stays well below it.
pub const DEFAULT_MAX_BODY: usize = 128 << 20;
/// Peers asked at once by default.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// A failing peer is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// How one request to a peer failed. Messages never include the token.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("invalid peer URL {0:?}")]
    Url(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or sending failed (refused, reset, TLS handshake).
    #[error("cannot reach the peer")]
    Unreachable(#[source] reqwest::Error),
    #[error("unexpected status {status}")]
    UnexpectedStatus { status: u16 },
    #[error("answer larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The connection broke while the body was read.
    #[error("reading the answer failed")]
    Read(#[source] reqwest::Error),
    /// The answer came but could not be used (the caller's decoding failed).
    #[error("invalid answer: {0}")]
    Invalid(String),
}

impl PeerError {
    /// The `outcome` label of `heapster_peer_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            PeerError::Url(_) => "bad_url",
            PeerError::Timeout(_) => "timeout",
            PeerError::Unreachable(_) => "unreachable",
            PeerError::UnexpectedStatus { status: 404 } => "not_found",
            PeerError::UnexpectedStatus { status: 401 | 403 } => "denied",
            PeerError::UnexpectedStatus { .. } => "bad_status",
            PeerError::TooLarge { .. } => "too_large",
            PeerError::Read(_) => "read_error",
            PeerError::Invalid(_) => "invalid",
        }
    }

    /// A 404: the peer does not hold the object (an answer, not a failure).
    pub fn is_not_found(&self) -> bool {
        matches!(self, PeerError::UnexpectedStatus { status: 404 })
    }

    /// What the operator can do about it, for the log line.
    fn advice(&self) -> &'static str {
        match self {
            PeerError::Timeout(_) => {
                "the peer is overloaded or unreachable; its nodes are left out of answers until \
                 it answers within --peer_timeout"
            }
            PeerError::Unreachable(_) => {
                "check that the peer is running and that its address (the Lease annotation \
                 heapster.k8s.io/address) is reachable from this pod; with --peer_ca_file, that \
                 its serving certificate is signed by that CA for that address"
            }
            PeerError::UnexpectedStatus { status: 401 | 403 } => {
                "grant this replica's service account get and list on nodes and pods in \
                 metrics.k8s.io (the sharded RBAC manifests do)"
            }
            _ => "its nodes are left out of answers until it answers",
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PeerClientError {
    #[error("--peer_ca_file: reading {path}")]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--peer_ca_file: no PEM certificate in {0}")]
    NoCa(PathBuf),
    #[error("--peer_ca_file: certificate in {0} refused")]
    BadCa(PathBuf, #[source] rustls::Error),
    #[error("TLS settings refused")]
    Tls(#[source] rustls::Error),
    #[error("building the HTTP client")]
    Http(#[source] reqwest::Error),
}

/// The client's settings.
#[derive(Debug)]
pub struct PeerOptions {
    /// The bound on each request, connection included (`--peer_timeout`).
    pub timeout: Duration,
    /// CA of the peers' serving certificates (`--peer_ca_file`); `None`: not verified.
    pub ca_file: Option<PathBuf>,
    /// This replica's service-account token, sent to https peers.
    pub token: Option<TokenSource>,
    pub max_body: usize,
    /// Peers asked at once.
    pub concurrency: usize,
}

impl PeerOptions {
    /// Defaults but the timeout: no CA, no token.
    pub fn new(timeout: Duration) -> PeerOptions {
        PeerOptions {
            timeout,
            ca_file: None,
            token: None,
            max_body: DEFAULT_MAX_BODY,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// Self-metrics of the requests to peers.
#[derive(Clone)]
pub struct PeerMetrics {
    requests: Family<Outcome, Counter>,
    duration: Histogram,
}

impl PeerMetrics {
    pub fn register(registry: &mut Registry) -> PeerMetrics {
        let m = PeerMetrics {
            requests: Family::default(),
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
        };
        registry.register(
            "peer_requests",
            "Requests to other replicas by outcome (ok or the failure reason)",
            m.requests.clone(),
        );
        registry.register(
            "peer_request_duration_seconds",
            "Time to get one replica-local answer from another replica",
            m.duration.clone(),
        );
        m
    }

    /// Requests so far with this outcome (tests).
    pub fn count(&self, outcome: &'static str) -> u64 {
        self.requests.get_or_create(&Outcome { outcome }).get()
    }

    fn record(&self, outcome: &'static str) {
        self.requests.get_or_create(&Outcome { outcome }).inc();
    }
}

/// The HTTP client for peers (one connection pool for all of them).
pub struct PeerClient {
    http: reqwest::Client,
    timeout: Duration,
    max_body: usize,
    concurrency: usize,
    token: Option<TokenSource>,
    verified: bool,
    metrics: PeerMetrics,
    /// When each failing peer was last logged.
    logged: Mutex<HashMap<Arc<str>, Instant>>,
}

impl PeerClient {
    pub fn new(opts: PeerOptions, metrics: PeerMetrics) -> Result<PeerClient, PeerClientError> {
        let tls = tls_config(opts.ca_file.as_deref())?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .pool_max_idle_per_host(1)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(PeerClientError::Http)?;
        Ok(PeerClient {
            http,
            timeout: opts.timeout,
            max_body: opts.max_body,
            concurrency: opts.concurrency.max(1),
            token: opts.token,
            verified: opts.ca_file.is_some(),
            metrics,
            logged: Mutex::new(HashMap::new()),
        })
    }

    /// The bound on each request (`--peer_timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether https peers' certificates are verified (`--peer_ca_file`).
    pub fn verifies_peers(&self) -> bool {
        self.verified
    }

    pub fn metrics(&self) -> &PeerMetrics {
        &self.metrics
    }

    /// GETs `path_and_query` (starting with `/`) from every peer, at most
    /// [`PeerOptions::concurrency`] at once, all within one `--peer_timeout` of the call: a
    /// request still waiting for its turn then is a timeout too. Results in any order.
    pub async fn get_all(
        &self,
        peers: &[Peer],
        path_and_query: &str,
    ) -> Vec<(Peer, Result<Bytes, PeerError>)> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        futures::stream::iter(peers.iter().cloned())
            .map(|peer| async move {
                let started = Instant::now();
                let result = match tokio::time::timeout_at(
                    deadline,
                    self.get(&peer, path_and_query),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(PeerError::Timeout(self.timeout)),
                };
                self.metrics
                    .duration
                    .observe(started.elapsed().as_secs_f64());
                match &result {
                    Ok(_) => self.metrics.record("ok"),
                    Err(e) => self.failed(&peer, e),
                }
                (peer, result)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await
    }

    /// Counts an answer that came but could not be used (already counted `ok` by
    /// [`PeerClient::get_all`]: this adds the `invalid` outcome), and logs it like a failure.
    pub fn invalid(&self, peer: &Peer, why: impl std::fmt::Display) {
        self.failed(peer, &PeerError::Invalid(why.to_string()));
    }

    /// Counts a failure and logs it, at most once per peer per minute; 404s are answers.
    fn failed(&self, peer: &Peer, e: &PeerError) {
        self.metrics.record(e.outcome());
        if e.is_not_found() {
            return;
        }
        let now = Instant::now();
        {
            let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
            match logged.get(&peer.identity) {
                Some(t) if now.duration_since(*t) < LOG_EVERY => return,
                _ => {}
            }
            // Bounded by the replicas ever seen; forget the quiet ones.
            logged.retain(|_, t| now.duration_since(*t) < LOG_EVERY);
            logged.insert(Arc::clone(&peer.identity), now);
        }
        tracing::warn!(
            peer = %peer.identity,
            url = %peer.url,
            error = %crate::certificate::Chain(e),
            "a replica did not answer; {} (logged at most once a minute per replica)",
            e.advice()
        );
    }

    /// One request, with the token over https, the body read up to the cap.
    async fn get(&self, peer: &Peer, path_and_query: &str) -> Result<Bytes, PeerError> {
        let url = format!("{}{path_and_query}", peer.url.trim_end_matches('/'));
        let url = reqwest::Url::parse(&url).map_err(|_| PeerError::Url(peer.url.to_string()))?;
        let mut req = self.http.get(url.clone());
        let https = url.scheme() == "https";
        if https && let Some(token) = self.token.as_ref().and_then(TokenSource::current) {
            req = req.bearer_auth(token.expose());
        }
        let mut resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                PeerError::Timeout(self.timeout)
            } else {
                PeerError::Unreachable(e)
            }
        })?;
        let status = resp.status().as_u16();
        if status != 200 {
            if status == 401
                && let Some(token) = &self.token
            {
                // The token may have been rotated since it was read: re-read it next time.
                token.invalidate();
            }
            return Err(PeerError::UnexpectedStatus { status });
        }
        let limit = self.max_body;
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(PeerError::TooLarge { limit });
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            if e.is_timeout() {
                PeerError::Timeout(self.timeout)
            } else {
                PeerError::Read(e)
            }
        })? {
            if body.len() + chunk.len() > limit {
                return Err(PeerError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

/// TLS to peers: their certificates verified against `ca_file`, or not verified at all.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, PeerClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(PeerClientError::Tls)?;
    let builder = match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| PeerClientError::ReadCa {
                path: path.to_path_buf(),
                source,
            })?;
            let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
                .filter_map(Result::ok)
                .collect();
            if certs.is_empty() {
                return Err(PeerClientError::NoCa(path.to_path_buf()));
            }
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| PeerClientError::BadCa(path.to_path_buf(), e))?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider))),
    };
    let mut config = builder.with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(timeout: Duration, max_body: usize) -> PeerClient {
        let opts = PeerOptions {
            max_body,
            ..PeerOptions::new(timeout)
        };
        PeerClient::new(opts, PeerMetrics::register(&mut Registry::default())).expect("client")
    }

    fn peer(name: &str, url: String) -> Peer {
        Peer {
            identity: name.into(),
            url: url.into(),
        }
    }

    /// A server answering `body` to every GET, recording the Authorization header.
    async fn serve(body: &'static str) -> String {
        let app = axum::Router::new().fallback(move || async move { body });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn answers_failures_and_late_peers_are_each_one_entry() {
        let ok = serve("hello").await;
        // Accepts connections and never answers.
        let hang = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let hang_url = format!("http://{}", hang.local_addr().expect("addr"));
        // Bound then closed: nothing listens there.
        let dead_url = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            format!("http://{}", l.local_addr().expect("addr"))
        };
        let c = client(Duration::from_millis(300), DEFAULT_MAX_BODY);
        let peers = [
            peer("ok", ok),
            peer("hang", hang_url),
            peer("dead", dead_url),
            peer("bad", "not a url".into()),
        ];
        let started = Instant::now();
        let mut got = c.get_all(&peers, "/x?y=1").await;
        assert!(started.elapsed() < Duration::from_secs(2), "bounded");
        got.sort_by(|a, b| a.0.identity.cmp(&b.0.identity));
        let outcomes: Vec<_> = got
            .iter()
            .map(|(p, r)| (&*p.identity, r.as_ref().map_err(PeerError::outcome)))
            .collect();
        assert_eq!(
            outcomes,
            [
                ("bad", Err("bad_url")),
                ("dead", Err("unreachable")),
                ("hang", Err("timeout")),
                ("ok", Ok(&Bytes::from_static(b"hello"))),
            ]
        );
        for outcome in ["ok", "timeout", "unreachable", "bad_url"] {
            assert_eq!(c.metrics().count(outcome), 1, "{outcome}");
        }
        drop(hang);
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused() {
        let url = serve("0123456789").await;
        let c = client(Duration::from_secs(5), 4);
        let got = c.get_all(&[peer("big", url)], "/").await;
        assert!(matches!(got[0].1, Err(PeerError::TooLarge { limit: 4 })));
        assert_eq!(c.metrics().count("too_large"), 1);
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").expect("write");
        let err = tls_config(Some(&path)).expect_err("no certificate");
        assert!(err.to_string().contains("--peer_ca_file"), "{err}");
        assert!(tls_config(Some(&dir.path().join("missing"))).is_err());
    }
}
