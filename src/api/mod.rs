//! HTTP APIs. The Heapster port (plain HTTP) serves `/healthz`, `/metrics` (self-metrics), the
//! model API (`/api/v1/model/...`) and `metrics.k8s.io` (as Heapster served its old
//! `/apis/metrics/v1alpha1`); the secure port ([`secure`]) serves only `metrics.k8s.io` and its
//! discovery, behind authentication and authorization, as an aggregated API.

pub mod error;
mod gzip;
pub mod health;
pub mod limits;
pub mod model;
pub mod resource;
pub mod secure;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::model::time;
use crate::source::watch::SharedState;
use crate::store::Store;
use health::Health;

/// What the handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub health: Arc<Health>,
    pub registry: Arc<Registry>,
    pub store: Option<Arc<Store>>,
    /// Node and pod labels (label selectors, `NodeMetrics.metadata.labels`).
    pub cluster: Option<SharedState>,
}

/// The Heapster port's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(model::router())
        .merge(resource::router())
        .layer(axum::middleware::from_fn(gzip::compress))
        .layer(axum::middleware::from_fn_with_state(
            limits::Limits::default(),
            limits::check,
        ))
        .with_state(state)
}

async fn healthz(State(s): State<ApiState>) -> Response {
    match s.health.check(time::now()) {
        Ok(msg) => (StatusCode::OK, msg).into_response(),
        Err(msg) => (StatusCode::INTERNAL_SERVER_ERROR, msg).into_response(),
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &s.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
