//! Minimal stand-in for the peer HTTP client (plain GETs bounded by a timeout), with the
//! interface the full client keeps: [`PeerClient::get_all`].

use std::time::Duration;

use crate::model::replica::Peer;

/// Why a peer's answer is missing.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No answer within the peer timeout.
    #[error("timed out")]
    Timeout,
    /// The peer answered with another status than 200.
    #[error("status {0}")]
    Status(u16),
    /// The request failed.
    #[error("request failed: {0}")]
    Request(String),
}

/// Asks peers in parallel, each bounded by the timeout.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl PeerClient {
    pub fn new(timeout: Duration) -> Result<PeerClient, PeerError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .map_err(|e| PeerError::Request(e.to_string()))?;
        Ok(PeerClient { http, timeout })
    }

    pub async fn get_all(
        &self,
        peers: &[Peer],
        path_and_query: &str,
    ) -> Vec<(Peer, Result<bytes::Bytes, PeerError>)> {
        let requests = peers.iter().map(|peer| async move {
            let url = format!("{}{path_and_query}", peer.url.trim_end_matches('/'));
            let got = tokio::time::timeout(self.timeout, async {
                let resp = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| PeerError::Request(e.to_string()))?;
                if resp.status() != reqwest::StatusCode::OK {
                    return Err(PeerError::Status(resp.status().as_u16()));
                }
                resp.bytes()
                    .await
                    .map_err(|e| PeerError::Request(e.to_string()))
            })
            .await
            .unwrap_or(Err(PeerError::Timeout));
            (peer.clone(), got)
        });
        futures::future::join_all(requests).await
    }
}
