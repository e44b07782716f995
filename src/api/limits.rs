//! Bounds every request meets before a handler runs: the request target's length (414), a
//! request body (413: these APIs are read-only `GET`s and never read one) and the number of
//! requests answered at once (503, so concurrent large listings cannot add up without bound).
//! Names in paths are bounded where they are parsed ([`MAX_NAME`]); selectors and query
//! strings in their parsers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Semaphore;

/// Longest request target (path and query) accepted.
pub const MAX_URI: usize = 8192;
/// Longest name in a path: Kubernetes object names are at most 253 bytes.
pub const MAX_NAME: usize = 253;
/// Most requests answered at once per port; more get a 503 with `Retry-After`.
pub const MAX_IN_FLIGHT: usize = 256;

/// The in-flight budget of one router.
#[derive(Clone)]
pub struct Limits(Arc<Semaphore>);

impl Limits {
    pub fn new(max_in_flight: usize) -> Limits {
        Limits(Arc::new(Semaphore::new(max_in_flight)))
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::new(MAX_IN_FLIGHT)
    }
}

/// A refusal in the shape of the API asked: a Kubernetes `Status` under `/apis`, the model
/// API's `{"error","code"}` elsewhere.
fn refuse(path: &str, code: StatusCode, reason: &str, message: &str) -> Response {
    let body = if path.starts_with("/apis") {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        })
    } else {
        json!({ "error": message, "code": code.as_u16() })
    };
    (code, axum::Json(body)).into_response()
}

pub async fn check(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let uri = req.uri();
    let path = uri.path();
    let target_len = path.len() + uri.query().map_or(0, |q| q.len() + 1);
    if target_len > MAX_URI {
        let message = format!("request target longer than {MAX_URI} bytes");
        return refuse(
            path,
            StatusCode::URI_TOO_LONG,
            "RequestURITooLong",
            &message,
        );
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().parse::<u64>().unwrap_or(u64::MAX));
    if declared.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING) {
        return refuse(
            path,
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "these APIs take no request body",
        );
    }
    let Ok(_permit) = limits.0.try_acquire() else {
        let mut res = refuse(
            path,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "too many requests in flight, retry later",
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return res;
    };
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tokio::sync::Notify;
    use tower::ServiceExt;

    fn req(uri: &str) -> Request {
        Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn requests_beyond_the_in_flight_budget_get_503() {
        let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (e, r) = (Arc::clone(&entered), Arc::clone(&release));
        let app = Router::new()
            .route(
                "/apis/slow",
                get(move || async move {
                    e.notify_one();
                    r.notified().await;
                    "done"
                }),
            )
            .layer(axum::middleware::from_fn_with_state(Limits::new(1), check));
        let first = tokio::spawn(app.clone().oneshot(req("/apis/slow")));
        entered.notified().await;
        let second = app
            .clone()
            .oneshot(req("/apis/slow"))
            .await
            .expect("answer");
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.headers()[header::RETRY_AFTER], "1");
        release.notify_one();
        let first = first.await.expect("joins").expect("answer");
        assert_eq!(first.status(), StatusCode::OK);
        // The budget is returned with the answer.
        release.notify_one();
        let third = app.oneshot(req("/apis/slow")).await.expect("answer");
        assert_eq!(third.status(), StatusCode::OK);
    }
}
