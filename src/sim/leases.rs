//! `coordination.k8s.io/v1` Leases, namespaced, with the apiserver's semantics: list (label
//! selector), get, create (409 AlreadyExists), update (409 Conflict on a stale
//! `resourceVersion`, 404 when absent), delete. Resource versions come from the simulator's
//! counter, as its nodes' and pods' do. Leases are not watched (nothing here needs it).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::selector::{Facts, Filter};
use super::state::{Shared, lock};
use super::watch::status;

const BASE: &str = "/apis/coordination.k8s.io/v1";

/// Leases by namespace and name.
pub(crate) type LeaseStore = BTreeMap<(String, String), Value>;

type S = State<Arc<Shared>>;

/// The Lease routes (merged into the apiserver's router, behind its auth).
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(BASE, get(discovery))
        .route(&format!("{BASE}/leases"), get(list_all))
        .route(
            &format!("{BASE}/namespaces/{{ns}}/leases"),
            get(list).post(create),
        )
        .route(
            &format!("{BASE}/namespaces/{{ns}}/leases/{{name}}"),
            get(read).put(update).delete(delete),
        )
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeaseQuery {
    label_selector: Option<String>,
    field_selector: Option<String>,
}

async fn discovery() -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "coordination.k8s.io/v1",
            "resources": [{"name": "leases", "singularName": "lease", "namespaced": true,
                "kind": "Lease",
                "verbs": ["create", "delete", "get", "list", "update"]}],
        }),
    )
}

async fn list_all(State(s): S, Query(q): Query<LeaseQuery>) -> Response {
    list_in(&s, None, &q)
}

async fn list(State(s): S, Path(ns): Path<String>, Query(q): Query<LeaseQuery>) -> Response {
    list_in(&s, Some(&ns), &q)
}

fn list_in(s: &Shared, ns: Option<&str>, q: &LeaseQuery) -> Response {
    let filter = match Filter::parse(ns, q.field_selector.as_deref(), q.label_selector.as_deref()) {
        Ok(f) => f,
        Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let leases = lock(&s.leases);
    let items: Vec<&Value> = leases
        .iter()
        .filter(|((ns, name), lease)| {
            let labels = labels_of(lease);
            filter.matches(&Facts {
                name,
                namespace: Some(ns),
                node_name: None,
                labels: &labels,
            })
        })
        .map(|(_, lease)| lease)
        .collect();
    let rv = lock(&s.log).rv();
    json_response(
        StatusCode::OK,
        &json!({
            "kind": "LeaseList", "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"resourceVersion": rv.to_string()}, "items": items,
        }),
    )
}

async fn read(State(s): S, Path((ns, name)): Path<(String, String)>) -> Response {
    match lock(&s.leases).get(&(ns, name.clone())) {
        Some(lease) => json_response(StatusCode::OK, lease),
        None => not_found(&name),
    }
}

async fn create(State(s): S, Path(ns): Path<String>, body: Bytes) -> Response {
    let mut lease = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(name) = name_of(&lease) else {
        return status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "Lease.coordination.k8s.io is invalid: metadata.name: Required value",
        );
    };
    let mut leases = lock(&s.leases);
    let key = (ns.clone(), name.clone());
    if leases.contains_key(&key) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("leases.coordination.k8s.io \"{name}\" already exists"),
        );
    }
    let rv = lock(&s.log).next_rv();
    let meta = &mut lease["metadata"];
    meta["namespace"] = json!(ns);
    meta["uid"] = json!(format!("lease-{rv}"));
    meta["creationTimestamp"] = json!(now_rfc3339());
    stamp(&mut lease, rv);
    leases.insert(key, lease.clone());
    json_response(StatusCode::CREATED, &lease)
}

async fn update(State(s): S, Path((ns, name)): Path<(String, String)>, body: Bytes) -> Response {
    let mut lease = match parse_body(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if name_of(&lease).is_some_and(|n| n != name) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the name of the object does not match the name on the URL",
        );
    }
    let mut leases = lock(&s.leases);
    let key = (ns.clone(), name.clone());
    let Some(current) = leases.get(&key) else {
        return not_found(&name);
    };
    let given = lease["metadata"]["resourceVersion"]
        .as_str()
        .filter(|v| !v.is_empty());
    // As the apiserver: an update without a resourceVersion is unconditional; with one, it
    // must be the current one.
    if given.is_some_and(|v| Some(v) != current["metadata"]["resourceVersion"].as_str()) {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the \
                 object has been modified; please apply your changes to the latest version and \
                 try again"
            ),
        );
    }
    let rv = lock(&s.log).next_rv();
    for kept in ["uid", "creationTimestamp"] {
        lease["metadata"][kept] = current["metadata"][kept].clone();
    }
    lease["metadata"]["name"] = json!(name);
    lease["metadata"]["namespace"] = json!(ns);
    stamp(&mut lease, rv);
    leases.insert(key, lease.clone());
    json_response(StatusCode::OK, &lease)
}

async fn delete(State(s): S, Path((ns, name)): Path<(String, String)>) -> Response {
    let removed = lock(&s.leases).remove(&(ns, name.clone()));
    match removed {
        Some(lease) => {
            lock(&s.log).next_rv();
            json_response(StatusCode::OK, &lease)
        }
        None => not_found(&name),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, Box<Response>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => {
            let mut v = v;
            if !v["metadata"].is_object() {
                v["metadata"] = json!({});
            }
            v["kind"] = json!("Lease");
            v["apiVersion"] = json!("coordination.k8s.io/v1");
            Ok(v)
        }
        _ => Err(Box::new(status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "the body is not a JSON object",
        ))),
    }
}

fn name_of(lease: &Value) -> Option<String> {
    lease["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

fn labels_of(lease: &Value) -> BTreeMap<String, String> {
    lease["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn stamp(lease: &mut Value, rv: u64) {
    lease["metadata"]["resourceVersion"] = json!(rv.to_string());
}

fn now_rfc3339() -> String {
    let secs = crate::model::time::now().div_euclid(1_000_000_000) * 1_000_000_000;
    crate::model::time::format_rfc3339(secs)
}

fn not_found(name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("leases.coordination.k8s.io \"{name}\" not found"),
    )
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
