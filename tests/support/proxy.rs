//! A fault-injecting HTTP proxy on 127.0.0.1 in front of a real server (InfluxDB here).
//!
//! Every request is forwarded as is, except writes (`POST /write`, `/api/v2/write`), which
//! get the next [`Fault`] of the script, or the default fault once the script is empty.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio_util::sync::CancellationToken;

/// What a write gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forwarded.
    Pass,
    /// Answered by the proxy with this status (and `Retry-After: 1` for 429 and 503).
    Status(u16),
    /// Forwarded after a delay (a server that accepts but answers slowly).
    Delay(Duration),
    /// Never answered (until the proxy is dropped).
    Hang,
}

struct Inner {
    target: url::Url,
    http: reqwest::Client,
    script: Mutex<(VecDeque<Fault>, Fault)>,
    writes: AtomicU64,
    faulted: AtomicU64,
    /// The bodies of the writes forwarded (uncompressed ones are readable).
    bodies: Mutex<Vec<bytes::Bytes>>,
    stop: CancellationToken,
}

/// A running proxy; stopped on drop.
pub struct FaultProxy {
    inner: Arc<Inner>,
    pub port: u16,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `target`.
    pub async fn start(target: url::Url) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let inner = Arc::new(Inner {
            target,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("proxy client"),
            script: Mutex::new((VecDeque::new(), Fault::Pass)),
            writes: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
            bodies: Mutex::default(),
            stop: CancellationToken::new(),
        });
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&inner));
        let stop = inner.stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        FaultProxy { inner, port }
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}", self.port)).expect("url")
    }

    /// Every following write gets `fault`; the script is cleared.
    pub fn set(&self, fault: Fault) {
        *self.inner.script.lock().expect("script") = (VecDeque::new(), fault);
    }

    /// The next writes get `faults` in order, then the default.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inner.script.lock().expect("script").0.extend(faults);
    }

    /// Writes received, and how many of them were not simply forwarded.
    pub fn writes(&self) -> (u64, u64) {
        (
            self.inner.writes.load(Ordering::Relaxed),
            self.inner.faulted.load(Ordering::Relaxed),
        )
    }
}

impl FaultProxy {
    /// The line-protocol lines of every write forwarded so far (send them uncompressed:
    /// `gzip=false`).
    pub fn written_lines(&self) -> Vec<String> {
        let bodies = self.inner.bodies.lock().expect("bodies");
        bodies
            .iter()
            .flat_map(|b| {
                String::from_utf8_lossy(b)
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.inner.stop.cancel();
    }
}

async fn forward(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let is_write = req.uri().path().ends_with("/write");
    let fault = if is_write {
        inner.writes.fetch_add(1, Ordering::Relaxed);
        let mut script = inner.script.lock().expect("script");
        let fault = script.0.pop_front().unwrap_or(script.1);
        if fault != Fault::Pass {
            inner.faulted.fetch_add(1, Ordering::Relaxed);
        }
        fault
    } else {
        Fault::Pass
    };
    match fault {
        Fault::Pass => {}
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).expect("status");
            let body = format!("{{\"error\":\"injected {code}\"}}");
            let mut resp = (status, body).into_response();
            if matches!(code, 429 | 503) {
                resp.headers_mut()
                    .insert("retry-after", "1".parse().expect("header"));
            }
            return resp;
        }
        Fault::Delay(d) => tokio::time::sleep(d).await,
        Fault::Hang => {
            inner.stop.cancelled().await;
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    let mut url = inner.target.clone();
    url.set_path(req.uri().path());
    url.set_query(req.uri().query());
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("request body");
    if is_write {
        inner.bodies.lock().expect("bodies").push(body.clone());
    }
    let mut out = inner.http.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) {
            out = out.header(name, value);
        }
    }
    let Ok(resp) = out.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let mut back = Response::builder().status(resp.status().as_u16());
    for (name, value) in resp.headers() {
        if !is_hop_by_hop(name) {
            back = back.header(name, value);
        }
    }
    let body = resp.bytes().await.unwrap_or_default();
    back.body(Body::from(body)).expect("response")
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive"
    )
}
