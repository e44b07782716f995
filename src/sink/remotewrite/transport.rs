//! The remote write sink's side of the shared delivery layer: one `reqwest` client, the
//! protocol's headers, the credentials (basic auth, a bearer token, or a token file read at
//! each request so a rotated token is picked up). Credentials travel only in headers, never in
//! logs or error messages.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use url::Url;

use super::BuildError;
use crate::config::RemoteWriteConfig;
use crate::sink::delivery::retry::{Verdict, is_retriable_error, should_retry_response};
use crate::sink::delivery::{Body, Transport};

enum Auth {
    None,
    Basic { user: String, password: String },
    Bearer(String),
    BearerFile(PathBuf),
}

pub struct RemoteWriteTransport {
    http: reqwest::Client,
    url: Url,
    /// The URL without credentials or query, for logs.
    shown: String,
    auth: Auth,
    /// A failed request was logged; cleared by the next success, so each outage says why once.
    reported: AtomicBool,
}

impl RemoteWriteTransport {
    pub fn new(
        cfg: &RemoteWriteConfig,
        timeout: Duration,
    ) -> Result<RemoteWriteTransport, BuildError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .danger_accept_invalid_certs(cfg.insecure_ssl)
            .pool_max_idle_per_host(cfg.concurrency.max(1))
            .user_agent(concat!("heapster-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError::Http)?;
        let mut url = cfg.url.clone();
        // Credentials in the URL become basic auth, never part of what is logged.
        let url_user = (!url.username().is_empty()).then(|| url.username().to_owned());
        let url_password = url.password().map(str::to_owned);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let auth = match (&cfg.token, &cfg.token_file) {
            (Some(t), _) => Auth::Bearer(t.clone()),
            (None, Some(f)) => Auth::BearerFile(f.clone()),
            (None, None) => match (
                cfg.user.clone().or(url_user),
                cfg.password.clone().or(url_password),
            ) {
                (None, None) => Auth::None,
                (user, password) => Auth::Basic {
                    user: user.unwrap_or_default(),
                    password: password.unwrap_or_default(),
                },
            },
        };
        let mut shown = url.clone();
        shown.set_query(None);
        Ok(RemoteWriteTransport {
            http,
            url,
            shown: shown.to_string(),
            auth,
            reported: AtomicBool::new(false),
        })
    }
}

impl Transport for RemoteWriteTransport {
    fn label(&self) -> &'static str {
        "remote write"
    }

    fn target(&self) -> String {
        self.shown.clone()
    }

    async fn send(&self, body: &Body) -> Verdict {
        let mut req = self
            .http
            .post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .header(http::header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.bytes.clone());
        req = match &self.auth {
            Auth::None => req,
            Auth::Basic { user, password } => req.basic_auth(user, Some(password)),
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::BearerFile(path) => match tokio::fs::read_to_string(path).await {
                Ok(t) => req.bearer_auth(t.trim()),
                Err(e) => {
                    return Verdict::Unauthorized {
                        status: 0,
                        message: format!("cannot read token_file {}: {e}", path.display()),
                    };
                }
            },
        };
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let headers = resp.headers().clone();
                let text = resp.text().await.unwrap_or_default();
                if status.is_success() {
                    self.reported.store(false, Ordering::Relaxed);
                }
                should_retry_response(status, &headers, &text)
            }
            Err(e) if is_retriable_error(&e) => {
                let e = e.without_url();
                if !self.reported.swap(true, Ordering::Relaxed) {
                    let why = crate::certificate::unreachable(&e, "the remote write endpoint");
                    tracing::warn!(url = %self.shown, error = %e, "{why}; retrying (logged once until a request succeeds)");
                } else {
                    tracing::debug!(error = %e, "remote write failed, will retry");
                }
                Verdict::Retry { after: None }
            }
            Err(e) => Verdict::Rejected {
                status: 0,
                message: e.without_url().to_string(),
            },
        }
    }

    fn split(&self, body: &Body) -> Option<(Body, Body)> {
        super::split(body)
    }

    fn auth_fix(&self) -> &'static str {
        "check the sink's user and pw, token or token_file, and that they may write"
    }
}
