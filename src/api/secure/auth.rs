//! Authentication and authorization of the secure port, as an aggregated API server does it:
//! the front proxy's client certificate (CA `--requestheader_client_ca_file`, CN in
//! `--requestheader_allowed_names`) vouches for `X-Remote-User`/`X-Remote-Group`; otherwise a
//! bearer token is checked with a TokenReview. Then a SubjectAccessReview decides. Both reviews
//! go through the [`Authorizer`] trait (the apiserver in production, a fake in tests).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;

pub use super::attributes::Attributes;
use crate::api::error::StatusError;

/// Paths served without authentication (probes).
const ALWAYS_ALLOW: [&str; 3] = ["/healthz", "/livez", "/readyz"];

/// Who made a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
    pub uid: String,
}

/// Why a review could not be made (the apiserver is unreachable, answered an error...).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReviewFailed(pub String);

/// The apiserver's reviews. Implementations cache (see [`super::kube::KubeAuthorizer`]).
pub trait Authorizer: Send + Sync + 'static {
    /// TokenReview: the user the token belongs to, or `None` when it is not valid.
    fn review_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, ReviewFailed>>;

    /// SubjectAccessReview: whether the user may do it.
    fn review_access<'a>(
        &'a self,
        user: &'a UserInfo,
        attrs: &'a Attributes,
    ) -> BoxFuture<'a, Result<bool, ReviewFailed>>;
}

/// The verified client certificate of a connection (inserted by the secure server).
#[derive(Clone, Debug, Default)]
pub struct PeerCert {
    /// Subject CN; `None` when the connection has no client certificate.
    pub common_name: Option<String>,
}

/// What the middleware needs.
#[derive(Clone)]
pub struct AuthState {
    pub authorizer: Arc<dyn Authorizer>,
    /// Accepted front-proxy CNs; empty = any certificate the CA signed.
    pub allowed_names: Arc<[String]>,
}

/// The user vouched for by the front proxy's certificate, if any.
fn front_proxy_user(req: &Request, state: &AuthState) -> Option<UserInfo> {
    let cn = req.extensions().get::<PeerCert>()?.common_name.as_deref()?;
    if !state.allowed_names.is_empty() && !state.allowed_names.iter().any(|n| n == cn) {
        return None;
    }
    let h = req.headers();
    let name = h.get("x-remote-user")?.to_str().ok()?.trim();
    if name.is_empty() {
        return None;
    }
    let groups = h
        .get_all("x-remote-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(String::from)
        .collect();
    Some(UserInfo {
        name: name.to_string(),
        groups,
        uid: String::new(),
    })
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The authentication and authorization middleware.
pub async fn check(State(state): State<AuthState>, req: Request, next: Next) -> Response {
    if ALWAYS_ALLOW.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let user = match front_proxy_user(&req, &state) {
        Some(user) => user,
        None => match bearer(&req) {
            Some(token) => match state.authorizer.review_token(token).await {
                Ok(Some(user)) => user,
                Ok(None) => return StatusError::Unauthorized.into_response(),
                Err(e) => {
                    tracing::warn!(error = %e, "secure port: token review failed");
                    return StatusError::Unauthorized.into_response();
                }
            },
            None => return StatusError::Unauthorized.into_response(),
        },
    };
    let attrs = Attributes::of(req.uri().path());
    match state.authorizer.review_access(&user, &attrs).await {
        Ok(true) => next.run(req).await,
        Ok(false) => StatusError::Forbidden(attrs.describe(&user.name)).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, user = %user.name, "secure port: access review failed");
            StatusError::Forbidden(format!(
                "{} (the access review failed)",
                attrs.describe(&user.name)
            ))
            .into_response()
        }
    }
}
