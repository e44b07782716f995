//! The fake kubelet: `GET /stats/summary`, `GET /metrics/resource` and `GET /healthz` per node,
//! with auth, request counting and the configured [`KubeletFault`] (which affects both data
//! endpoints, except [`KubeletFault::SummaryForbidden`]). The same summary response (fault
//! included) backs the apiserver's node proxy.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures::stream;

use super::KubeletFault;
use super::state::{KubeletCounters, NodeState, Shared};
use super::{resource_metrics, summary};
use crate::model::time::now;

/// Per-listener state: which node this kubelet is.
#[derive(Clone)]
struct Kubelet {
    shared: Arc<Shared>,
    index: usize,
    counters: Arc<KubeletCounters>,
}

/// The router of node `index`.
pub(crate) fn router(shared: Arc<Shared>, index: usize, counters: Arc<KubeletCounters>) -> Router {
    let kubelet = Kubelet {
        shared,
        index,
        counters,
    };
    Router::new()
        .route("/stats/summary", get(summary_handler))
        .route("/metrics/resource", get(resource_handler))
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::from_fn_with_state(kubelet.clone(), auth))
        .with_state(kubelet)
}

async fn auth(State(k): State<Kubelet>, req: Request, next: Next) -> Response {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    k.counters.record(authorization);
    if k.shared.authorized(authorization) {
        next.run(req).await
    } else {
        (StatusCode::UNAUTHORIZED, "Unauthorized").into_response()
    }
}

async fn summary_handler(State(k): State<Kubelet>) -> Response {
    match k.shared.node(k.index) {
        Some(node) => summary_response(&k.shared, &node).await,
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn resource_handler(State(k): State<Kubelet>) -> Response {
    match k.shared.node(k.index) {
        Some(node) => respond(&k.shared, &node, Api::Resource).await,
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The kubelet's data endpoints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Summary,
    Resource,
}

/// The kubelet's answer to `GET /stats/summary`, fault included.
pub(crate) async fn summary_response(shared: &Shared, node: &NodeState) -> Response {
    respond(shared, node, Api::Summary).await
}

/// The answer of one data endpoint, fault included.
async fn respond(shared: &Shared, node: &NodeState, api: Api) -> Response {
    let render = || match api {
        Api::Summary => summary::render(&shared.cfg, node, now()),
        Api::Resource => resource_metrics::render(&shared.cfg, node, now()),
    };
    let content_type = match api {
        Api::Summary => "application/json",
        Api::Resource => "text/plain; version=0.0.4; charset=utf-8",
    };
    let ok = |body: Body| ([(header::CONTENT_TYPE, content_type)], body).into_response();
    match node.fault {
        None
        | Some(
            KubeletFault::WrongHostCert
            | KubeletFault::SelfSignedCert
            | KubeletFault::UnknownCaCert
            | KubeletFault::ExpiredCert
            | KubeletFault::NotYetValidCert,
        ) => ok(render().into()),
        Some(KubeletFault::SummaryForbidden) if api == Api::Resource => ok(render().into()),
        Some(KubeletFault::SummaryForbidden) => (
            StatusCode::FORBIDDEN,
            "Forbidden (user=system:serviceaccount:kube-system:heapster, verb=get, resource=nodes, subresource=stats)\n",
        )
            .into_response(),
        Some(KubeletFault::Hang) => {
            shared.cancel.cancelled().await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Some(KubeletFault::Status500) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "simulated kubelet failure\n").into_response()
        }
        Some(KubeletFault::Garbage) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "<html><body>this is not the JSON you are looking for</body></html>\n",
        )
            .into_response(),
        Some(KubeletFault::TruncatedJson) => {
            let mut body = render();
            body.truncate(body.len() / 2);
            ok(body.into())
        }
        Some(KubeletFault::HugeBody(len)) => huge_body(len, true),
        Some(KubeletFault::HugeChunkedBody(len)) => huge_body(len, false),
        Some(KubeletFault::GzipBomb(inflated)) => {
            let chunks = stream::iter(super::bomb::chunks(inflated).map(Ok::<_, std::io::Error>));
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CONTENT_ENCODING, "gzip"),
                ],
                Body::from_stream(chunks),
            )
                .into_response()
        }
        Some(KubeletFault::SlowTrickle) => {
            let body = Bytes::from(render());
            let chunks = stream::unfold((body, 0usize), |(body, at)| async move {
                if at >= body.len() {
                    return None;
                }
                if at > 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let chunk = body.slice(at..at + 1);
                Some((Ok::<_, std::io::Error>(chunk), (body, at + 1)))
            });
            ok(Body::from_stream(chunks))
        }
        Some(KubeletFault::RefuseConnections) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"error trying to reach service: dial tcp: connect: connection refused","reason":"ServiceUnavailable","code":503}"#,
        )
            .into_response(),
    }
}

/// `{"node":{"nodeName":"` then filler, `len` bytes in all, streamed in 64 KiB chunks, with
/// or without a `Content-Length`.
fn huge_body(len: u64, declared: bool) -> Response {
    const PREFIX: &[u8] = br#"{"node":{"nodeName":""#;
    const CHUNK: usize = 64 * 1024;
    let filler = Bytes::from(vec![b'x'; CHUNK]);
    let prefix_len = (PREFIX.len() as u64).min(len);
    let first = Bytes::from_static(&PREFIX[..usize::try_from(prefix_len).unwrap_or(0)]);
    let chunks = stream::unfold((Some(first), len - prefix_len), move |(first, left)| {
        let filler = filler.clone();
        async move {
            if let Some(first) = first {
                return Some((Ok::<_, std::io::Error>(first), (None, left)));
            }
            if left == 0 {
                return None;
            }
            let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            Some((Ok(filler.slice(..n)), (None, left - n as u64)))
        }
    });
    let mut resp = (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(chunks),
    )
        .into_response();
    if declared {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    resp
}
