//! API errors as JSON: `{"error": ...}` for the model API, a Kubernetes `Status` for
//! `metrics.k8s.io`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A model API failure.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A malformed request (bad time, bad labels, overlong path).
    #[error("{0}")]
    BadRequest(String),
    /// An unknown entity, metric or route.
    #[error("{0}")]
    NotFound(String),
    /// The metric sink is disabled.
    #[error("the metric sink is disabled (--disable_metric_sink)")]
    NoStore,
}

impl IntoResponse for ModelError {
    fn into_response(self) -> Response {
        let code = match self {
            ModelError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ModelError::NotFound(_) => StatusCode::NOT_FOUND,
            ModelError::NoStore => StatusCode::SERVICE_UNAVAILABLE,
        };
        let body = json!({ "error": self.to_string(), "code": code.as_u16() });
        (code, Json(body)).into_response()
    }
}

/// A Kubernetes API failure, rendered as a `Status` object.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{0}")]
    BadRequest(String),
    /// `kind` is the resource (`nodes`, `pods`).
    #[error("{kind}.metrics.k8s.io \"{name}\" not found")]
    NotFound { kind: &'static str, name: String },
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// The plain port does not serve the APIs (`--plain_port_apis=false`).
    #[error(
        "not served on this port (--plain_port_apis=false): the model API and metrics.k8s.io \
         are served on the secure port, with authentication"
    )]
    NotServed,
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
}

impl StatusError {
    fn code_reason(&self) -> (StatusCode, &'static str) {
        match self {
            StatusError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            StatusError::NotFound { .. } | StatusError::NoRoute | StatusError::NotServed => {
                (StatusCode::NOT_FOUND, "NotFound")
            }
            StatusError::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            StatusError::Forbidden(_) => (StatusCode::FORBIDDEN, "Forbidden"),
            StatusError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        }
    }
}

impl IntoResponse for StatusError {
    fn into_response(self) -> Response {
        let (code, reason) = self.code_reason();
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        });
        if let StatusError::NotFound { kind, name } = &self {
            body["details"] = json!({ "name": name, "group": "metrics.k8s.io", "kind": kind });
        }
        (code, Json(body)).into_response()
    }
}
