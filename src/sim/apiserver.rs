//! The fake apiserver's router: discovery (`/version`, `/api`, `/apis`, `/api/v1`), LIST/WATCH/GET
//! of nodes, pods, namespaces and events, the node proxy to `/stats/summary`, and TokenReview and
//! SubjectAccessReview ([`review`]).
//! With https and a token every path but the health probes requires the current bearer token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

use super::formulas as f;
use super::kubelet;
use super::objects;
use super::review;
use super::state::{Kind, Shared};
use super::watch::{ListQuery, list_or_watch, status};

type S = State<Arc<Shared>>;

/// The apiserver router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(api_versions))
        .route("/apis", get(api_groups))
        .route("/api/v1", get(api_resources))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/nodes/{name}", get(get_node))
        .route(
            "/api/v1/nodes/{name}/proxy/stats/summary",
            get(proxy_summary),
        )
        .route("/api/v1/pods", get(list_pods))
        .route("/api/v1/namespaces", get(list_namespaces))
        .route("/api/v1/namespaces/{ns}", get(get_namespace))
        .route("/api/v1/namespaces/{ns}/pods", get(list_namespaced_pods))
        .route("/api/v1/namespaces/{ns}/pods/{name}", get(get_pod))
        .route("/api/v1/events", get(list_events))
        .route(
            "/api/v1/namespaces/{ns}/events",
            get(list_namespaced_events),
        )
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(review::token_review),
        )
        .route(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            post(review::access_review),
        )
        .merge(super::leases::routes())
        .layer(middleware::from_fn_with_state(Arc::clone(&shared), auth))
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .with_state(shared)
}

async fn list_nodes(State(s): S, Query(q): Query<ListQuery>) -> Response {
    list_or_watch(s, Kind::Node, None, q).await
}

async fn list_pods(State(s): S, Query(q): Query<ListQuery>) -> Response {
    list_or_watch(s, Kind::Pod, None, q).await
}

async fn list_namespaced_pods(
    State(s): S,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    list_or_watch(s, Kind::Pod, Some(ns), q).await
}

async fn list_namespaces(State(s): S, Query(q): Query<ListQuery>) -> Response {
    list_or_watch(s, Kind::Namespace, None, q).await
}

/// The simulated API groups (add metrics.k8s.io here if it is ever simulated).
async fn api_groups() -> Response {
    let version = json!({"groupVersion": "coordination.k8s.io/v1", "version": "v1"});
    json_ok(
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "coordination.k8s.io", "versions": [version], "preferredVersion": version},
        ]}),
    )
}

fn json_ok<T: Serialize>(value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn not_found(what: &str, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{what} \"{name}\" not found"),
    )
}

async fn auth(State(shared): S, req: Request, next: Next) -> Response {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if shared.authorized(authorization) {
        next.run(req).await
    } else {
        status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }
}

async fn version(State(shared): S) -> Response {
    let minor = shared.cfg.minor;
    json_ok(&json!({
        "major": "1", "minor": minor.to_string(), "gitVersion": format!("v1.{minor}.0"),
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24.0", "compiler": "gc",
        "platform": "linux/amd64",
    }))
}

async fn api_versions(State(shared): S) -> Response {
    json_ok(&json!({
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": shared.cfg.api_addr.to_string()}
        ],
    }))
}

async fn api_resources() -> Response {
    let resource = |name: &str, kind: &str, namespaced: bool, verbs: &[&str]| json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs});
    json_ok(&json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
        "resources": [
            resource("events", "Event", true, &["list", "watch"]),
            resource("namespaces", "Namespace", false, &["get", "list", "watch"]),
            resource("nodes", "Node", false, &["get", "list", "watch"]),
            resource("nodes/proxy", "NodeProxyOptions", false, &["get"]),
            resource("pods", "Pod", true, &["get", "list", "watch"]),
        ],
    }))
}

async fn get_node(State(shared): S, Path(name): Path<String>) -> Response {
    match shared.node_by_name(&name) {
        Some(node) => json_ok(&objects::node(&shared.cfg, &node)),
        None => not_found("nodes", &name),
    }
}

async fn proxy_summary(State(shared): S, Path(name): Path<String>) -> Response {
    match shared.node_by_name(&name) {
        Some(node) => kubelet::summary_response(&shared, &node).await,
        None => not_found("nodes", &name),
    }
}

async fn get_namespace(State(shared): S, Path(ns): Path<String>) -> Response {
    match f::NAMESPACES.iter().position(|n| *n == ns) {
        Some(i) => json_ok(&objects::namespace(i, shared.cfg.start)),
        None => not_found("namespaces", &ns),
    }
}

/// `(node, pod)` of a pod name like `web-sim-node-0007-003`.
fn parse_pod_name(name: &str) -> Option<(usize, usize)> {
    let (_, rest) = name.split_once("sim-node-")?;
    let (node, pod) = rest.split_once('-')?;
    Some((node.parse().ok()?, pod.parse().ok()?))
}

async fn get_pod(State(shared): S, Path((ns, name)): Path<(String, String)>) -> Response {
    let found = parse_pod_name(&name).and_then(|(n, p)| {
        let node = shared.node(n)?;
        let ok =
            p < shared.cfg.pods_per_node && f::pod_namespace(p) == ns && f::pod_name(n, p) == name;
        ok.then(|| objects::pod(&shared.cfg, &node, p))
    });
    match found {
        Some(pod) => json_ok(&pod),
        None => not_found("pods", &name),
    }
}

async fn list_events(State(s): S, Query(q): Query<ListQuery>) -> Response {
    list_or_watch(s, Kind::Event, None, q).await
}

async fn list_namespaced_events(
    State(s): S,
    Path(ns): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    list_or_watch(s, Kind::Event, Some(ns), q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_parse_back() {
        assert_eq!(parse_pod_name(&f::pod_name(7, 3)), Some((7, 3)));
        assert_eq!(parse_pod_name(&f::pod_name(12345, 0)), Some((12345, 0)));
        assert_eq!(parse_pod_name("nope"), None);
    }
}
