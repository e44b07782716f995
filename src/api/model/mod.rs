//! Heapster's model API (`/api/v1/model/...`), read by Dashboard v1.x and the old HPA.
//!
//! Listings are JSON arrays of names; metric queries answer
//! `{"metrics":[{"timestamp","value","floatValue"}],"latestTimestamp"}` (`floatValue` is new:
//! Heapster truncated float metrics to integers); `pod-list` answers `{"items":[...]}` in
//! request order. Unknown entities are 404, malformed requests 400, both as JSON.

pub mod path;
mod render;
mod whole;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiState;
use super::error::ModelError;
use super::peers::Fanout;
use crate::model::{Metric, Nanos, SetKey, time};
use crate::store::{Point, Store};
use path::ModelQuery;

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/model", get(root))
        .route("/api/v1/model/", get(root))
        .route("/api/v1/model/{*path}", get(handle))
}

async fn root() -> Response {
    ModelError::NotFound("see /api/v1/model/nodes, /namespaces, /metrics".into()).into_response()
}

/// `?start=&end=&labels=` of a metric query.
#[derive(Debug, Default, PartialEq)]
pub struct Range {
    pub start: Nanos,
    pub end: Nanos,
    pub resource_id: Option<String>,
}

/// Parses the query string; a bad time or label is a 400.
pub fn parse_query(raw: Option<&str>) -> Result<Range, ModelError> {
    let mut r = Range {
        start: i64::MIN,
        end: i64::MAX,
        resource_id: None,
    };
    let raw = raw.unwrap_or("");
    if raw.len() > path::MAX_PATH {
        return Err(ModelError::BadRequest("query string too long".into()));
    }
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        let time = |v: &str| {
            time::parse_rfc3339(v).ok_or_else(|| {
                ModelError::BadRequest(format!("{k}: {v:?} is not an RFC 3339 time"))
            })
        };
        match &*k {
            "start" if !v.is_empty() => r.start = time(&v)?,
            "end" if !v.is_empty() => r.end = time(&v)?,
            "labels" if !v.is_empty() => {
                for pair in v.split(',') {
                    match pair.split_once(':') {
                        Some(("resource_id", id)) => r.resource_id = Some(id.to_string()),
                        Some((other, _)) => {
                            return Err(ModelError::BadRequest(format!(
                                "labels: only resource_id is supported, not {other:?}"
                            )));
                        }
                        None => {
                            return Err(ModelError::BadRequest(format!(
                                "labels: {pair:?} is not key:value"
                            )));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if r.start > r.end {
        return Err(ModelError::BadRequest("start is after end".into()));
    }
    Ok(r)
}

async fn handle(
    State(s): State<ApiState>,
    Path(path): Path<String>,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Result<Response, ModelError> {
    let q = path::parse(&path)?;
    let range = parse_query(query.as_deref())?;
    let store = s.store.as_deref().ok_or(ModelError::NoStore)?;
    match Fanout::of(&s) {
        Some(fanout) => whole::answer_all(store, q, &range, &uri, fanout).await,
        None => answer(store, q, &range).map(Answer::into_response),
    }
}

fn unknown(what: &str, name: &str) -> ModelError {
    ModelError::NotFound(format!("{what} {name:?} not found"))
}

fn describe(key: &SetKey) -> ModelError {
    ModelError::NotFound(format!("no metrics for {key}"))
}

/// What the store answers, before rendering.
pub enum Answer {
    Names(Vec<String>),
    Points(Vec<Point>),
    /// A pod-list: each pod's points, in request order.
    Items(Vec<Vec<Point>>),
}

impl Answer {
    pub fn into_response(self) -> Response {
        match self {
            Answer::Names(names) => render::names(names),
            Answer::Points(points) => render::points(&points),
            Answer::Items(items) => render::items(&items),
        }
    }
}

fn names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Answer {
    Answer::Names(names.into_iter().map(|s| s.as_ref().to_string()).collect())
}

/// Answers a parsed query from the store.
pub fn answer(store: &Store, q: ModelQuery, r: &Range) -> Result<Answer, ModelError> {
    use ModelQuery as Q;
    let points =
        |key: &SetKey, m: Metric| store.points(key, m, r.resource_id.as_deref(), r.start, r.end);
    Ok(match q {
        Q::Nodes => names(store.nodes()),
        Q::Namespaces => names(store.namespaces()),
        Q::Pods(ns) => names(store.pods(&ns).ok_or_else(|| unknown("namespace", &ns))?),
        Q::PodsOnNode(n) => {
            let pods = store.pods_on_node(&n).ok_or_else(|| unknown("node", &n))?;
            names(pods.into_iter().map(|(ns, p)| format!("{ns}/{p}")))
        }
        Q::Containers(ns, p) => names(
            store
                .containers(&ns, &p)
                .ok_or_else(|| unknown("pod", &format!("{ns}/{p}")))?,
        ),
        Q::FreeContainers(n) => names(
            store
                .sys_containers(&n)
                .ok_or_else(|| unknown("node", &n))?,
        ),
        Q::AllKeys => Answer::Names(store.all_keys()),
        Q::MetricNames(key) => {
            let found = store.metric_names(&key);
            // The cluster exists as soon as there is data; before that its list is empty.
            match (found, &key) {
                (Some(n), _) => names(n),
                (None, SetKey::Cluster) => Answer::Names(Vec::new()),
                (None, _) => return Err(describe(&key)),
            }
        }
        Q::Points(key, m) => match points(&key, m) {
            Some(p) => Answer::Points(p),
            None if key == SetKey::Cluster => Answer::Points(Vec::new()),
            None => return Err(describe(&key)),
        },
        Q::PodList {
            namespace,
            pods,
            metric,
        } => Answer::Items(
            pods.into_iter()
                .map(|pod| {
                    let key = SetKey::Pod {
                        namespace: Arc::clone(&namespace),
                        pod,
                    };
                    points(&key, metric).unwrap_or_default()
                })
                .collect(),
        ),
    })
}
