//! `/internal/shard/partials?window_end=NANOS`: this replica's own contribution to a tick's
//! namespace and cluster sums (the nodes it writes), for its peers
//! ([`crate::shard::partials`]). It waits for a tick in progress but never asks a peer.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::ApiState;

#[derive(Deserialize)]
struct Params {
    window_end: i64,
}

/// Where the contributions are served (on the secure port, authorized as a list of every
/// pod's metrics: see `secure::attributes`).
pub const PARTIALS_PATH: &str = "/internal/shard/partials";

pub fn router() -> Router<ApiState> {
    Router::new().route(PARTIALS_PATH, get(partials))
}

async fn partials(
    State(state): State<ApiState>,
    params: Result<Query<Params>, QueryRejection>,
) -> Response {
    let Some(book) = state.partials else {
        return (StatusCode::NOT_FOUND, "sharding is off\n").into_response();
    };
    let Ok(Query(params)) = params else {
        return (StatusCode::BAD_REQUEST, "window_end=NANOS is required\n").into_response();
    };
    match book.wait_for(params.window_end, book.wait).await {
        Some(p) => {
            let body = serde_json::to_vec(&crate::shard::partials::encode(&p)).unwrap_or_default();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such tick on this replica\n").into_response(),
    }
}
