//! The resource metrics API, `metrics.k8s.io/v1beta1` (kubectl top, HPA, VPA, Dashboard 2.x),
//! with its discovery documents and Heapster's old `/apis/metrics/v1alpha1` paths.
//!
//! Values as metrics-server computes them (see [`crate::store::Usage`]); lists are filtered by
//! `labelSelector` (node and pod labels from the cluster state) and `fieldSelector`
//! (`metadata.name`, `metadata.namespace`); a single object without data is a 404 `Status`.

pub mod discovery;
pub mod format;
pub mod selector;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::ApiState;
use super::error::StatusError;
use super::limits::MAX_NAME;
use super::peers::{self, Fanout};
use crate::model::cluster::{LabelPairs, NodeInfo, PodInfo};
use crate::model::time;
use crate::store::{Store, Usage};
use selector::{FieldSelector, LabelSelector};

/// The group versions served: the current one and Heapster's old one.
const GROUP_VERSIONS: [&str; 2] = ["metrics.k8s.io/v1beta1", discovery::OLD_GROUP_VERSION];

pub fn router() -> Router<ApiState> {
    let mut r = Router::new()
        .route("/apis", get(|| async { Json(discovery::group_list()) }))
        .route("/apis/", get(|| async { Json(discovery::group_list()) }))
        .route(
            "/apis/metrics.k8s.io",
            get(|| async { Json(discovery::group()) }),
        );
    for gv in GROUP_VERSIONS {
        let base = format!("/apis/{gv}");
        r = r
            .route(
                &base,
                get(move || async move { Json(discovery::resource_list(gv)) }),
            )
            .route(
                &format!("{base}/nodes"),
                get(move |s: State<ApiState>, u: Uri, q: RawQuery| nodes(s, u, q, None, gv)),
            )
            .route(
                &format!("{base}/nodes/{{name}}"),
                get(
                    move |s: State<ApiState>, Path(n): Path<String>, u: Uri, q: RawQuery| {
                        nodes(s, u, q, Some(n), gv)
                    },
                ),
            )
            .route(
                &format!("{base}/pods"),
                get(move |s: State<ApiState>, u: Uri, q: RawQuery| pods(s, u, q, None, None, gv)),
            )
            .route(
                &format!("{base}/namespaces/{{ns}}/pods"),
                get(
                    move |s: State<ApiState>, Path(ns): Path<String>, u: Uri, q: RawQuery| {
                        pods(s, u, q, Some(ns), None, gv)
                    },
                ),
            )
            .route(
                &format!("{base}/namespaces/{{ns}}/pods/{{name}}"),
                get(
                    move |s: State<ApiState>,
                          Path((ns, n)): Path<(String, String)>,
                          u: Uri,
                          q: RawQuery| pods(s, u, q, Some(ns), Some(n), gv),
                ),
            );
    }
    r
}

#[derive(Serialize)]
struct Meta<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<&'a str, &'a str>,
    #[serde(rename = "creationTimestamp")]
    creation_timestamp: &'a str,
}

#[derive(Serialize)]
struct UsageJson {
    cpu: String,
    memory: String,
}

impl From<&Usage> for UsageJson {
    fn from(u: &Usage) -> UsageJson {
        UsageJson {
            cpu: format::cpu(u.cpu_nanocores),
            memory: format::memory(u.memory_bytes),
        }
    }
}

#[derive(Serialize)]
struct Item<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Meta<'a>,
    timestamp: String,
    window: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    containers: Option<Vec<ContainerJson<'a>>>,
}

#[derive(Serialize)]
struct ContainerJson<'a> {
    name: &'a str,
    usage: UsageJson,
}

/// Serializes as `{}`.
#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct List<T> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: Empty,
    items: Vec<T>,
}

/// Parsed `labelSelector` and `fieldSelector`.
fn selectors(raw: Option<&str>) -> Result<(LabelSelector, FieldSelector), StatusError> {
    let raw = raw.unwrap_or("");
    if raw.len() > 2 * selector::MAX_LEN {
        return Err(StatusError::BadRequest("query string too long".into()));
    }
    let (mut labels, mut fields) = (LabelSelector::default(), FieldSelector::default());
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        let bad = |e: selector::SelectorError| StatusError::BadRequest(e.to_string());
        match &*k {
            "labelSelector" => labels = LabelSelector::parse(&v).map_err(bad)?,
            "fieldSelector" => fields = FieldSelector::parse(&v).map_err(bad)?,
            "watch" if v == "true" || v == "1" => {
                return Err(StatusError::BadRequest("watch is not supported".into()));
            }
            _ => {}
        }
    }
    Ok((labels, fields))
}

fn store(s: &ApiState) -> Result<&Store, StatusError> {
    s.store
        .as_deref()
        .ok_or_else(|| StatusError::Unavailable("the metric sink is disabled".into()))
}

fn labels_of(pairs: &[(Arc<str>, Arc<str>)]) -> BTreeMap<&str, &str> {
    pairs.iter().map(|(k, v)| (&**k, &**v)).collect()
}

/// Names in the path are bounded like Kubernetes names.
fn check_names(names: &[Option<&str>]) -> Result<(), StatusError> {
    if names.iter().flatten().any(|n| n.len() > MAX_NAME) {
        return Err(StatusError::BadRequest(format!(
            "name in path longer than {MAX_NAME} bytes"
        )));
    }
    Ok(())
}

async fn nodes(
    State(s): State<ApiState>,
    uri: Uri,
    RawQuery(q): RawQuery,
    name: Option<String>,
    gv: &'static str,
) -> Result<Response, StatusError> {
    check_names(&[name.as_deref()])?;
    let (label_sel, field_sel) = selectors(q.as_deref())?;
    let usage = store(&s)?.node_usage(name.as_deref());
    let infos: Vec<Option<Arc<NodeInfo>>> = match &s.cluster {
        Some(c) => {
            let state = c.read();
            usage
                .iter()
                .map(|(n, _)| state.nodes.get(n).cloned())
                .collect()
        }
        None => vec![None; usage.len()],
    };
    let now = format::k8s_time(time::now());
    let empty = LabelPairs::default();
    let items: Vec<Item<'_>> = usage
        .iter()
        .zip(&infos)
        .map(|((n, u), info)| (n, u, info.as_ref().map_or(&empty, |i| &i.label_map)))
        .filter(|(n, _, labels)| {
            name.is_some() || (label_sel.matches(labels) && field_sel.matches(None, n))
        })
        .map(|(n, u, labels)| Item {
            kind: "NodeMetrics",
            api_version: gv,
            metadata: Meta {
                name: n,
                namespace: None,
                labels: labels_of(labels),
                creation_timestamp: &now,
            },
            timestamp: format::k8s_time(u.timestamp),
            window: format::go_duration(u.window),
            usage: Some(u.into()),
            containers: None,
        })
        .collect();
    let kinds = Kinds {
        resource: "nodes",
        list: "NodeMetricsList",
        gv,
    };
    match Fanout::of(&s) {
        Some(fanout) => whole_cluster(items, name, &uri, kinds, fanout).await,
        None => single_or_list(items, name, kinds),
    }
}

/// The resource, list kind and group version of an answer.
#[derive(Clone, Copy)]
struct Kinds {
    resource: &'static str,
    list: &'static str,
    gv: &'static str,
}

fn single_or_list<T: Serialize>(
    mut items: Vec<T>,
    name: Option<String>,
    kinds: Kinds,
) -> Result<Response, StatusError> {
    match name {
        Some(name) => match items.pop() {
            Some(item) => Ok(Json(item).into_response()),
            None => Err(StatusError::NotFound {
                kind: kinds.resource,
                name,
            }),
        },
        None => Ok(Json(List {
            kind: kinds.list,
            api_version: kinds.gv,
            metadata: Empty {},
            items,
        })
        .into_response()),
    }
}

/// This replica's items and its peers' for the same request, merged. A single object held
/// here is answered without asking.
async fn whole_cluster(
    items: Vec<Item<'_>>,
    name: Option<String>,
    uri: &Uri,
    kinds: Kinds,
    fanout: Fanout,
) -> Result<Response, StatusError> {
    if name.is_some() && !items.is_empty() {
        return single_or_list(items, name, kinds);
    }
    let local: Vec<serde_json::Value> = items
        .iter()
        .filter_map(|i| serde_json::to_value(i).ok())
        .collect();
    drop(items);
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let merged = if name.is_some() {
        let answers = fanout.ask_json::<serde_json::Value>(path).await;
        peers::newest(answers, "timestamp").into_iter().collect()
    } else {
        #[derive(serde::Deserialize)]
        struct PeerList {
            items: Vec<serde_json::Value>,
        }
        let lists = fanout.ask_json::<PeerList>(path).await;
        peers::merge_objects(std::iter::once(local).chain(lists.into_iter().map(|l| l.items)))
    };
    single_or_list(merged, name, kinds)
}

async fn pods(
    State(s): State<ApiState>,
    uri: Uri,
    RawQuery(q): RawQuery,
    namespace: Option<String>,
    name: Option<String>,
    gv: &'static str,
) -> Result<Response, StatusError> {
    check_names(&[namespace.as_deref(), name.as_deref()])?;
    let (label_sel, field_sel) = selectors(q.as_deref())?;
    let usage = store(&s)?.pod_usage(namespace.as_deref(), name.as_deref());
    let infos: Vec<Option<Arc<PodInfo>>> = match &s.cluster {
        Some(c) => {
            let state = c.read();
            usage
                .iter()
                .map(|p| state.pod(&p.namespace, &p.name).cloned())
                .collect()
        }
        None => vec![None; usage.len()],
    };
    let now = format::k8s_time(time::now());
    let empty = LabelPairs::default();
    let items: Vec<Item<'_>> = usage
        .iter()
        .zip(&infos)
        .map(|(p, info)| (p, info.as_ref().map_or(&empty, |i| &i.label_map)))
        .filter(|(p, labels)| {
            name.is_some()
                || (label_sel.matches(labels) && field_sel.matches(Some(&p.namespace), &p.name))
        })
        .map(|(p, labels)| Item {
            kind: "PodMetrics",
            api_version: gv,
            metadata: Meta {
                name: &p.name,
                namespace: Some(&p.namespace),
                labels: labels_of(labels),
                creation_timestamp: &now,
            },
            timestamp: format::k8s_time(p.timestamp),
            window: format::go_duration(p.window),
            usage: None,
            containers: Some(
                p.containers
                    .iter()
                    .map(|c| ContainerJson {
                        name: &c.name,
                        usage: (&c.usage).into(),
                    })
                    .collect(),
            ),
        })
        .collect();
    let kinds = Kinds {
        resource: "pods",
        list: "PodMetricsList",
        gv,
    };
    match Fanout::of(&s) {
        Some(fanout) => whole_cluster(items, name, &uri, kinds, fanout).await,
        None => single_or_list(items, name, kinds),
    }
}
