//! HTTP APIs. The Heapster port (plain HTTP) serves `/healthz`, `/metrics` (self-metrics) and,
//! unless `--plain_port_apis=false`, the model API (`/api/v1/model/...`) and `metrics.k8s.io`
//! (as Heapster served its old `/apis/metrics/v1alpha1`) to anyone who reaches it; the secure
//! port ([`secure`]) serves `metrics.k8s.io` as an aggregated API and the model API, behind
//! authentication and authorization.

pub mod error;
mod gzip;
pub mod health;
pub mod limits;
pub mod model;
mod partials;
pub mod peers;
pub mod resource;
pub mod secure;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use crate::model::cluster::ClusterReader;
use crate::model::replica::Peers;
use crate::model::time;
use crate::shard::peer::PeerClient;
use crate::store::Store;
use health::Health;

/// What the handlers read.
#[derive(Clone)]
pub struct ApiState {
    pub health: Arc<Health>,
    pub registry: Arc<Registry>,
    pub store: Option<Arc<Store>>,
    /// Node and pod labels (label selectors, `NodeMetrics.metadata.labels`).
    pub cluster: Option<ClusterReader>,
    /// This replica's contributions to the aggregates, when sharded (`/internal/shard/`).
    pub partials: Option<Arc<crate::shard::partials::PartialsBook>>,
    /// The other replicas, asked for the whole cluster's answers ([`NoPeers`](crate::model::replica::NoPeers)
    /// unless sharded).
    pub peers: Arc<dyn Peers>,
    /// How they are asked; `None`: never.
    pub peer_client: Option<Arc<PeerClient>>,
}

impl ApiState {
    /// A replica alone: nobody to ask.
    pub fn new(
        health: Arc<Health>,
        registry: Arc<Registry>,
        store: Option<Arc<Store>>,
        cluster: Option<ClusterReader>,
    ) -> ApiState {
        ApiState {
            health,
            registry,
            store,
            cluster,
            peers: Arc::new(crate::model::replica::NoPeers),
            peer_client: None,
            partials: None,
        }
    }

    /// Answers for the whole cluster, asking `peers` with `client`.
    pub fn with_peers(self, peers: Arc<dyn Peers>, client: Arc<PeerClient>) -> ApiState {
        ApiState {
            peers,
            peer_client: Some(client),
            ..self
        }
    }
}

/// The Heapster port's routes, with the model API and `metrics.k8s.io` (Heapster's).
pub fn router(state: ApiState) -> Router {
    plain_router(state, true)
}

/// The Heapster port's routes: health and self-metrics, and the model API and `metrics.k8s.io`
/// when `apis` (`--plain_port_apis`). Without them, their paths answer 404 like any unknown
/// path, with a message saying where they are served.
pub fn plain_router(state: ApiState, apis: bool) -> Router {
    let r = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics));
    let r = if apis {
        r.merge(model::router())
            .merge(resource::router())
            .nest(peers::LOCAL_PREFIX, peers::local_router(&state))
            .merge(partials::router())
    } else {
        r.fallback(not_served)
    };
    r.layer(axum::middleware::from_fn(gzip::compress))
        .layer(axum::middleware::from_fn_with_state(
            limits::Limits::default(),
            limits::check,
        ))
        .with_state(state)
}

/// The unauthenticated APIs' paths on a plain port that does not serve them.
async fn not_served(uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/v1/model") || path.starts_with("/apis") {
        error::StatusError::NotServed.into_response()
    } else {
        error::StatusError::NoRoute.into_response()
    }
}

/// Logs the start-up WARN when the plain port answers the APIs beyond this host (it serves
/// them and listens on a non-loopback address); returns whether it did.
pub fn warn_if_plain_apis_exposed(listen: std::net::SocketAddr, apis: bool) -> bool {
    let exposed = apis && !listen.ip().is_loopback();
    if exposed {
        tracing::warn!(
            addr = %listen,
            "the model API and metrics.k8s.io on --heapster-port answer without authentication: \
             anyone who reaches this port reads every pod's name, namespace, labels, node and \
             usage; set --plain_port_apis=false to serve them only on the secure port \
             (--secure_port), behind authentication and authorization"
        );
    }
    exposed
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
