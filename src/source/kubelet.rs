//! The kubelet client: one connection pool for all nodes, a cap on response size, typed errors.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use url::Url;

use super::credentials::KubeletCredentials;

/// Why a scrape failed. Messages never include credentials.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected status {status}")]
    UnexpectedStatus { status: u16 },
    #[error("response larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("reading the response failed: {0}")]
    Body(String),
    #[error("invalid summary: {0}")]
    Decode(String),
    #[error("node has no usable address")]
    NoAddress,
    #[error("tick deadline passed before the node answered")]
    Deadline,
}

impl ScrapeError {
    /// The `reason` label of the failure counter.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Connect(_) => "connect",
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::UnexpectedStatus { status: 401 | 403 } => "unauthorized",
            ScrapeError::UnexpectedStatus { .. } => "http_status",
            ScrapeError::TooLarge { .. } => "too_large",
            ScrapeError::Body(_) => "body",
            ScrapeError::Decode(_) => "decode",
            ScrapeError::NoAddress => "no_address",
            ScrapeError::Deadline => "deadline",
        }
    }
}

/// Describes a reqwest error with its causes (URLs here never carry credentials).
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
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

/// Scrapes kubelets over HTTP or HTTPS. Connections are closed after each scrape unless
/// `keep_alive` is set: hyper's HTTP/1 connection keeps a read buffer as large as the last
/// response while idle in the pool, which at one connection per node cost ~130 KiB per node
/// (the largest item of the collector's memory at 1,000 nodes). A new connection per node per
/// tick costs a TCP connect (and a TLS handshake over https) instead.
pub struct KubeletClient {
    http: reqwest::Client,
    creds: Arc<KubeletCredentials>,
    opts: KubeletClientOptions,
}

impl KubeletClient {
    pub fn new(
        creds: Arc<KubeletCredentials>,
        opts: KubeletClientOptions,
    ) -> Result<KubeletClient, String> {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(usize::from(opts.keep_alive))
            .user_agent(concat!("heapster-rs/", env!("CARGO_PKG_VERSION")));
        if opts.insecure {
            b = b.danger_accept_invalid_certs(true);
        } else if !creds.ca_der.is_empty() {
            let certs = creds
                .ca_der
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("cluster CA: {}", describe(&e)))?;
            b = b.tls_certs_only(certs);
        }
        if let Some(pem) = &creds.identity_pem {
            let id = reqwest::Identity::from_pem(pem.expose().as_bytes())
                .map_err(|_| "client certificate: invalid PEM".to_string())?;
            b = b.identity(id);
        }
        let http = b.build().map_err(|e| describe(&e))?;
        Ok(KubeletClient { http, creds, opts })
    }

    pub fn options(&self) -> &KubeletClientOptions {
        &self.opts
    }

    /// Fetches `url` (a kubelet's `/stats/summary`). The bearer token goes only over https.
    pub async fn fetch(&self, url: &Url) -> Result<Bytes, ScrapeError> {
        let attempt = self.fetch_once(url);
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

    async fn fetch_once(&self, url: &Url) -> Result<Bytes, ScrapeError> {
        // A `Url` goes in as it is; a `&str` would be parsed again.
        let mut req = self.http.get(url.clone());
        if url.scheme() == "https"
            && let Some(token) = self.creds.token.as_ref().and_then(|t| t.current())
        {
            req = req.bearer_auth(token.expose());
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| ScrapeError::Connect(describe(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ScrapeError::UnexpectedStatus {
                status: status.as_u16(),
            });
        }
        read_capped(&mut resp, self.opts.max_response_bytes).await
    }
}

/// Reads a body, failing as soon as it passes `limit` bytes (never buffering more).
async fn read_capped(resp: &mut reqwest::Response, limit: usize) -> Result<Bytes, ScrapeError> {
    let declared = resp.content_length().unwrap_or(0);
    if declared > limit as u64 {
        return Err(ScrapeError::TooLarge { limit });
    }
    let mut buf = BytesMut::with_capacity((declared as usize).clamp(16 * 1024, limit));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ScrapeError::Body(describe(&e)))?
    {
        if buf.len() + chunk.len() > limit {
            return Err(ScrapeError::TooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
