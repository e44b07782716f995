//! The model API for the whole cluster: this replica's store, and the other replicas' for
//! what it does not hold (see [`crate::api::peers`]).
//!
//! Listings of nodes, of a namespace's pods and of every key are the union of all replicas'.
//! An entity's metrics, containers or pods are this replica's when it holds the entity, else
//! the peer's with the newest sample. Namespace and cluster entities, and the namespace list,
//! are local: every replica holds the whole aggregates.

use std::sync::Arc;

use axum::Json;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::path::ModelQuery;
use super::{Answer, Range, answer, render};
use crate::api::error::ModelError;
use crate::api::peers::{self, Fanout};
use crate::model::SetKey;
use crate::store::Store;

/// How far a query reaches.
enum Reach {
    /// This replica alone.
    Local,
    /// Every replica's names.
    Union,
    /// This replica when it holds the entity, else the peers.
    Holder(SetKey),
    /// Each pod of the list from whoever holds it.
    PodList,
}

fn reach(q: &ModelQuery) -> Reach {
    use ModelQuery as Q;
    match q {
        Q::Namespaces => Reach::Local,
        Q::MetricNames(key) | Q::Points(key, _) => match key {
            SetKey::Cluster | SetKey::Namespace { .. } => Reach::Local,
            other => Reach::Holder(other.clone()),
        },
        Q::Nodes | Q::Pods(_) | Q::AllKeys => Reach::Union,
        Q::PodsOnNode(node) | Q::FreeContainers(node) => Reach::Holder(SetKey::Node {
            node: Arc::clone(node),
        }),
        Q::Containers(namespace, pod) => Reach::Holder(SetKey::Pod {
            namespace: Arc::clone(namespace),
            pod: Arc::clone(pod),
        }),
        Q::PodList { .. } => Reach::PodList,
    }
}

/// Answers `q` from this store and the peers.
pub async fn answer_all(
    store: &Store,
    q: ModelQuery,
    r: &Range,
    uri: &Uri,
    fanout: Fanout,
) -> Result<Response, ModelError> {
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    match reach(&q) {
        Reach::Local => answer(store, q, r).map(Answer::into_response),
        Reach::Holder(key) if store.contains(&key) => {
            answer(store, q, r).map(Answer::into_response)
        }
        Reach::Holder(_) => {
            let answers = fanout.ask_json::<Value>(path).await;
            // Points carry `latestTimestamp`; listings have none and the first answer serves.
            match peers::newest(answers, "latestTimestamp") {
                Some(v) => Ok(Json(v).into_response()),
                None => answer(store, q, r).map(Answer::into_response),
            }
        }
        Reach::Union => {
            let local = match answer(store, q, r) {
                Ok(Answer::Names(names)) => Ok(names),
                Ok(other) => return Ok(other.into_response()),
                Err(e) => Err(e),
            };
            let lists = fanout.ask_json::<Vec<String>>(path).await;
            match local {
                Err(e) if lists.is_empty() => Err(e),
                local => Ok(render::names(peers::union_names(
                    local.ok().into_iter().chain(lists),
                ))),
            }
        }
        Reach::PodList => pod_list(store, q, r, path, fanout).await,
    }
}

/// A pod-list with the pods this replica does not hold taken from the peers (the newest
/// answer for each), in request order.
async fn pod_list(
    store: &Store,
    q: ModelQuery,
    r: &Range,
    path: &str,
    fanout: Fanout,
) -> Result<Response, ModelError> {
    let ModelQuery::PodList {
        namespace, pods, ..
    } = &q
    else {
        return answer(store, q, r).map(Answer::into_response);
    };
    let held: Vec<bool> = pods
        .iter()
        .map(|pod| {
            store.contains(&SetKey::Pod {
                namespace: Arc::clone(namespace),
                pod: Arc::clone(pod),
            })
        })
        .collect();
    if held.iter().all(|h| *h) {
        return answer(store, q, r).map(Answer::into_response);
    }
    let Answer::Items(local) = answer(store, q, r)? else {
        return Err(ModelError::NotFound("no such model API path".into()));
    };
    #[derive(serde::Deserialize)]
    struct PeerItems {
        items: Vec<Value>,
    }
    let mut remote: Vec<Vec<Value>> = fanout
        .ask_json::<PeerItems>(path)
        .await
        .into_iter()
        .map(|p| p.items)
        .filter(|items| items.len() == local.len())
        .collect();
    let items = local
        .iter()
        .zip(held)
        .enumerate()
        .map(|(i, (points, held))| {
            let theirs = remote.iter_mut().map(|items| std::mem::take(&mut items[i]));
            match held {
                true => render::item_json(points),
                false => peers::newest(theirs, "latestTimestamp")
                    .unwrap_or_else(|| render::item_json(points)),
            }
        })
        .collect();
    Ok(render::items_json(items))
}
