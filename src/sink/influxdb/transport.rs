//! The InfluxDB sink's side of the shared delivery layer: which write API to use (detected
//! once), the database set up on 1.x, one write per body, and bodies split for a 413.

use std::io::Read;
use std::sync::Mutex;

use super::client::{Api, Client, ClientError};
use super::schema::{Chunk, chunk_from_lines};
use crate::sink::delivery::retry::{Verdict, is_retriable_error, should_retry_response};
use crate::sink::delivery::{Body, SetupError, Transport};

impl From<Chunk> for Body {
    fn from(c: Chunk) -> Body {
        Body {
            bytes: c.body,
            points: c.points,
            timestamp: c.timestamp,
            compressed: c.gzipped,
        }
    }
}

pub struct InfluxTransport {
    pub client: Client,
    /// `version=` when given; else detected from `/ping`.
    pub version: Option<u8>,
    api: Mutex<Option<Api>>,
}

impl InfluxTransport {
    pub fn new(client: Client, version: Option<u8>) -> InfluxTransport {
        InfluxTransport {
            client,
            version,
            api: Mutex::new(None),
        }
    }

    fn api(&self) -> Api {
        self.api
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or(Api::V1)
    }

    /// `ensure_database`, where only transport errors are fatal: a user without admin rights
    /// can still write to an existing database.
    async fn ensure(&self) -> Result<(), ClientError> {
        match self.client.ensure_database().await {
            Err(ClientError::Transport(e)) => Err(ClientError::Transport(e)),
            Err(e) => {
                tracing::warn!(error = %e, "could not create the InfluxDB database or retention policy; writing anyway");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }
}

impl Transport for InfluxTransport {
    fn label(&self) -> &'static str {
        "InfluxDB"
    }

    fn target(&self) -> String {
        self.client.base().to_string()
    }

    /// Detects the API and, for 1.x, makes sure the database and retention policy exist.
    async fn setup(&self) -> Result<(), SetupError> {
        let api = self.client.detect(self.version).await?;
        if api == Api::V1 {
            self.ensure().await?;
        }
        *self.api.lock().unwrap_or_else(|e| e.into_inner()) = Some(api);
        tracing::debug!(api = ?api, "InfluxDB write API");
        Ok(())
    }

    async fn send(&self, body: &Body) -> Verdict {
        let result = self
            .client
            .write(self.api(), body.bytes.clone(), body.compressed)
            .await;
        match result {
            Ok(a) => should_retry_response(a.status, &a.headers, &a.body),
            Err(e) if is_retriable_error(&e) => {
                tracing::debug!(error = %e.without_url(), "write failed, will retry");
                Verdict::Retry { after: None }
            }
            Err(e) => Verdict::Rejected {
                status: 0,
                message: e.without_url().to_string(),
            },
        }
    }

    /// Halves by lines; the points are shared in proportion (exact without `withfields`).
    fn split(&self, body: &Body) -> Option<(Body, Body)> {
        let text = if body.compressed {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body.bytes[..])
                .read_to_end(&mut out)
                .ok()?;
            out
        } else {
            body.bytes.to_vec()
        };
        let lines = text.iter().filter(|b| **b == b'\n').count();
        if lines < 2 {
            return None;
        }
        let half = lines / 2;
        let cut = text
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(half - 1)
            .map(|(i, _)| i + 1)?;
        let first_points = body.points * half / lines;
        let half_body = |part: &[u8], n: usize, points: usize| {
            let mut b = Body::from(chunk_from_lines(part, n, body.timestamp, body.compressed));
            b.points = points;
            b
        };
        Some((
            half_body(&text[..cut], half, first_points),
            half_body(&text[cut..], lines - half, body.points - first_points),
        ))
    }

    fn auth_fix(&self) -> &'static str {
        "check the sink's user and pw (1.x) or token (2.x/3.x), and that they may write to \
         the database or bucket"
    }
}
