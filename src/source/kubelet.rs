//! The kubelet client: one idle connection per kubelet, a cap on response size, typed errors.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use url::Url;

use super::credentials::KubeletCredentials;
use super::http1::Http1Client;
use crate::certificate::{AnyServerCert, CertProblem};

/// Why a scrape failed. Messages never include credentials; a variant with a `#[source]` leaves
/// the cause's words to it (log with [`Chain`](crate::certificate::Chain)).
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// The TCP connection could not be made.
    #[error("cannot connect")]
    Connect(#[source] std::io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    /// The host of the URL is not a valid TLS server name.
    #[error("invalid TLS server name")]
    ServerName(#[source] rustls::pki_types::InvalidDnsNameError),
    /// The TLS handshake failed: see [`ScrapeError::certificate_problem`].
    #[error("TLS handshake failed")]
    Handshake(#[source] std::io::Error),
    #[error("TLS handshake timed out")]
    HandshakeTimeout,
    #[error("unsupported URL scheme {0}")]
    Scheme(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected status {status}")]
    UnexpectedStatus { status: u16 },
    #[error("response larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// Reading the response from the socket failed.
    #[error("reading the response failed")]
    Read(#[source] std::io::Error),
    /// The kubelet closed the connection before the end of the answer.
    #[error("connection closed {0}")]
    Closed(&'static str),
    /// The answer is not HTTP/1.1 as this client reads it.
    #[error("invalid response: {0}")]
    Malformed(&'static str),
    #[error("invalid response head")]
    Head(#[source] httparse::Error),
    /// A request through the apiserver's node proxy failed.
    #[error("request through the apiserver failed")]
    Proxy(#[source] kube::Error),
    #[error("building the request through the apiserver failed")]
    ProxyRequest(#[source] http::Error),
    #[error("reading the answer through the apiserver failed")]
    ProxyBody(#[source] kube::Error),
    #[error("invalid summary")]
    Summary(#[source] serde_json::Error),
    #[error("invalid /metrics/resource")]
    Resource(#[source] super::resource_metrics::DecodeError),
    /// The scrape's task panicked or was cancelled.
    #[error("scrape task failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("node has no usable address")]
    NoAddress,
    #[error("tick deadline passed before the node answered")]
    Deadline,
}

impl ScrapeError {
    /// The `reason` label of the failure counter.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Handshake(e) => CertProblem::find(e).map_or("connect", |p| p.reason()),
            ScrapeError::Connect(_)
            | ScrapeError::ConnectTimeout
            | ScrapeError::ServerName(_)
            | ScrapeError::HandshakeTimeout
            | ScrapeError::Scheme(_)
            | ScrapeError::Proxy(_)
            | ScrapeError::ProxyRequest(_) => "connect",
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::UnexpectedStatus { status: 401 | 403 } => "unauthorized",
            ScrapeError::UnexpectedStatus { .. } => "http_status",
            ScrapeError::TooLarge { .. } => "too_large",
            ScrapeError::Read(_)
            | ScrapeError::Closed(_)
            | ScrapeError::Malformed(_)
            | ScrapeError::Head(_)
            | ScrapeError::ProxyBody(_)
            | ScrapeError::Task(_) => "body",
            ScrapeError::Summary(_) | ScrapeError::Resource(_) => "decode",
            ScrapeError::NoAddress => "no_address",
            ScrapeError::Deadline => "deadline",
        }
    }

    /// Why the kubelet's serving certificate was refused, when that is what failed.
    pub fn certificate_problem(&self) -> Option<CertProblem> {
        match self {
            ScrapeError::Handshake(e) => CertProblem::find(e),
            _ => None,
        }
    }
}

/// What is wrong with kubelet `node`'s serving certificate and the setting that fixes it.
pub fn certificate_advice(node: &str, problem: &CertProblem) -> String {
    match problem {
        CertProblem::Untrusted { self_signed } => format!(
            "kubelet {node} serves a {}certificate not signed by the cluster CA (kubelets sign \
             their own unless serving-certificate bootstrap is on): set kubeletInsecure=true, or \
             enable serverTLSBootstrap and approve the CSRs",
            if *self_signed { "self-signed " } else { "" }
        ),
        CertProblem::WrongName { tried, names } => format!(
            "kubelet {node}: the address tried, {tried}, is not in its serving certificate \
             (which holds {}): set addressTypes=Hostname to connect by a name it holds, or \
             kubeletInsecure=true",
            CertProblem::names(names)
        ),
        CertProblem::Expired { .. } | CertProblem::NotYetValid { .. } => format!(
            "kubelet {node} serves a certificate that {}: renew it on the node (or fix the \
             clock), or set kubeletInsecure=true",
            problem.dates()
        ),
    }
}

/// Why the kubelet client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KubeletClientError {
    /// rustls refused the protocol versions (never with the ring provider).
    #[error("TLS configuration")]
    Tls(#[source] rustls::Error),
    #[error("a certificate of the cluster CA is invalid")]
    ClusterCa(#[source] rustls::Error),
    #[error("the client certificate is not valid PEM")]
    ClientCertPem(#[source] std::io::Error),
    #[error("the client certificate's PEM has no certificate")]
    NoClientCert,
    #[error("the client certificate's PEM has no private key")]
    NoClientKey,
    #[error("the client certificate or key was refused")]
    ClientCert(#[source] rustls::Error),
}

/// Settings of the kubelet client.
#[derive(Clone, Debug)]
pub struct KubeletClientOptions {
    pub timeout: Duration,
    pub max_response_bytes: usize,
    /// Skip verification of kubelet serving certificates (`kubeletInsecure=true`).
    pub insecure: bool,
    /// Keep an idle connection per kubelet between scrapes (`kubeletKeepAlive=true`).
    pub keep_alive: bool,
}

/// Open files kept out of the idle kubelet connections' reach: scrapes in flight (256 by default),
/// API clients, InfluxDB, files.
const FILES_RESERVED: u64 = 1024;

/// Scrapes kubelets over HTTP or HTTPS, with one idle connection per kubelet kept between
/// scrapes unless `keep_alive` is off (see [`Http1Client`]).
pub struct KubeletClient {
    http: Http1Client,
    creds: Arc<KubeletCredentials>,
    opts: KubeletClientOptions,
}

impl KubeletClient {
    pub fn new(
        creds: Arc<KubeletCredentials>,
        opts: KubeletClientOptions,
    ) -> Result<KubeletClient, KubeletClientError> {
        let tls = tls_config(&creds, opts.insecure)?;
        // Idle connections leave room for the scrapes in flight and the other sockets and files.
        let max_idle = if opts.keep_alive {
            rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .map_or(usize::MAX, |limit| {
                    usize::try_from(limit.saturating_sub(FILES_RESERVED)).unwrap_or(usize::MAX)
                })
        } else {
            0
        };
        let http = Http1Client::new(
            Arc::new(tls),
            max_idle,
            opts.timeout.min(Duration::from_secs(5)),
            opts.max_response_bytes,
            concat!("heapster-rs/", env!("CARGO_PKG_VERSION")),
        );
        Ok(KubeletClient { http, creds, opts })
    }

    pub fn options(&self) -> &KubeletClientOptions {
        &self.opts
    }

    /// Fetches `url` (a kubelet's `/stats/summary`). The bearer token goes only over https.
    pub async fn fetch(&self, url: &Url) -> Result<Bytes, ScrapeError> {
        let token = if url.scheme() == "https" {
            self.creds.token.as_ref().and_then(|t| t.current())
        } else {
            None
        };
        let attempt = self.http.get(url, token.as_ref().map(|t| t.expose()));
        match tokio::time::timeout(self.opts.timeout, attempt).await {
            Ok(Err(ScrapeError::UnexpectedStatus { status: 401 })) => {
                // The token may have been rotated since it was cached: re-read it for next time.
                if let Some(t) = &self.creds.token {
                    t.invalidate();
                }
                Err(ScrapeError::UnexpectedStatus { status: 401 })
            }
            Ok(r) => r,
            Err(_) => Err(ScrapeError::Timeout(self.opts.timeout)),
        }
    }
}

/// TLS for kubelets: the cluster CA (or the system's roots when none is known), or no
/// verification with `kubeletInsecure=true`; the client certificate when there is one; HTTP/1.1.
fn tls_config(
    creds: &KubeletCredentials,
    insecure: bool,
) -> Result<ClientConfig, KubeletClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(KubeletClientError::Tls)?;
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        if creds.ca_der.is_empty() {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        } else {
            for der in &creds.ca_der {
                roots
                    .add(CertificateDer::from(der.clone()))
                    .map_err(KubeletClientError::ClusterCa)?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &creds.identity_pem {
        Some(pem) => {
            let pem = pem.expose().as_bytes();
            let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
                .collect::<Result<_, _>>()
                .map_err(KubeletClientError::ClientCertPem)?;
            let key = rustls_pemfile::private_key(&mut &pem[..])
                .ok()
                .flatten()
                .ok_or(KubeletClientError::NoClientKey)?;
            if certs.is_empty() {
                return Err(KubeletClientError::NoClientCert);
            }
            builder
                .with_client_auth_cert(certs, key)
                .map_err(KubeletClientError::ClientCert)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A TLS configuration for the HTTP client's own tests.
#[cfg(test)]
pub(crate) fn tests_tls_config() -> ClientConfig {
    tls_config(&KubeletCredentials::default(), true).expect("tls config")
}
