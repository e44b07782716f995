//! The secure port: `metrics.k8s.io` and its discovery over TLS, behind the front proxy's
//! client certificate or a bearer token ([`auth`]), as the apiserver's aggregation layer
//! expects of an `APIService` backend; and Heapster's model API behind the same
//! authentication, each request authorized on the resources its answer reveals
//! ([`attributes`]).

pub mod attributes;
pub mod auth;
pub mod kube;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::ApiState;
use auth::{AuthState, Authorizer, PeerCert};
use tls::TlsError;

/// Most connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 1024;
/// A client gets this long to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the secure port could not start.
#[derive(Debug, thiserror::Error)]
pub enum SecureError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("binding the secure port: {0}")]
    Bind(#[source] std::io::Error),
}

/// The secure port's routes: probes, discovery, `metrics.k8s.io` and the model API, all behind
/// auth (but the probes).
pub fn router(state: ApiState, auth: AuthState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .merge(super::resource::router())
        .merge(super::model::router())
        .nest(
            super::peers::LOCAL_PREFIX,
            super::peers::local_router(&state),
        )
        .merge(super::partials::router())
        .fallback(|| async {
            axum::response::IntoResponse::into_response(super::error::StatusError::NoRoute)
        })
        .layer(axum::middleware::from_fn_with_state(auth, auth::check))
        .layer(axum::middleware::from_fn(super::gzip::compress))
        .layer(axum::middleware::from_fn_with_state(
            super::limits::Limits::default(),
            super::limits::check,
        ))
        .with_state(state)
}

/// Binds `addr` and serves until `stop` is cancelled. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    cfg: &crate::config::SecureServing,
    state: ApiState,
    authorizer: Arc<dyn Authorizer>,
    stop: CancellationToken,
) -> Result<SocketAddr, SecureError> {
    let tls = TlsAcceptor::from(Arc::new(tls::server_config(cfg)?));
    let listener = TcpListener::bind(addr).await.map_err(SecureError::Bind)?;
    let local = listener.local_addr().map_err(SecureError::Bind)?;
    let app = router(
        state,
        AuthState {
            authorizer,
            allowed_names: cfg.allowed_names.clone().into(),
        },
    );
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
                return;
            };
            let (tcp, _) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "secure port: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let (tls, app, stop) = (tls.clone(), app.clone(), stop.clone());
            tokio::spawn(async move {
                let _permit = permit;
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "secure port: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let peer = PeerCert {
                    common_name: stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(tls::common_name),
                };
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(peer.clone());
                    app.clone().oneshot(req)
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    r = conn => if let Err(e) = r {
                        tracing::debug!(error = %e, "secure port: connection ended");
                    },
                }
            });
        }
    });
    tracing::info!(addr = %local, "serving metrics.k8s.io and the model API on the secure port");
    Ok(local)
}
