//! LIST and WATCH endpoints as `kube` watchers use them: `?watch=true&resourceVersion=RV
//! &timeoutSeconds=T&allowWatchBookmarks=true` streams newline-delimited events after RV (410
//! Expired as a watch `ERROR` when RV is older than the event log); `resourceVersion` absent or
//! `0`, or `sendInitialEvents=true`, first sends `ADDED` for every current object. Events are
//! listed from [`super::events`] (no pagination: the whole list in one page).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::stream;
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::events;
use super::formulas as f;
use super::list;
use super::objects;
use super::selector::{Facts, Filter};
use super::state::{Config, Event, Kind, NodeState, Shared, lock, read, watch_line};

/// Longest watch the simulator holds open.
pub(crate) const MAX_WATCH: Duration = Duration::from_secs(300);
const BOOKMARK_EVERY: Duration = Duration::from_secs(15);

/// The query parameters of a LIST or WATCH.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    watch: Option<String>,
    resource_version: Option<String>,
    timeout_seconds: Option<u64>,
    allow_watch_bookmarks: Option<String>,
    send_initial_events: Option<String>,
    limit: Option<usize>,
    #[serde(rename = "continue")]
    continue_: Option<String>,
    field_selector: Option<String>,
    label_selector: Option<String>,
}

fn truthy(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("true" | "1"))
}

fn api_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Node => "Node",
        Kind::Pod => "Pod",
        Kind::Namespace => "Namespace",
        Kind::Event => "Event",
    }
}

/// A `Status` failure response.
pub(crate) fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code.as_u16(),
    });
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Serves a LIST or a WATCH of `kind` (in `namespace` when given). Selection and rendering run
/// on the blocking pool: a list of 150,000 pods takes a while.
pub(crate) async fn list_or_watch(
    shared: Arc<Shared>,
    kind: Kind,
    namespace: Option<String>,
    q: ListQuery,
) -> Response {
    let work = move || list_or_watch_now(&shared, kind, namespace.as_deref(), &q);
    match tokio::task::spawn_blocking(work).await {
        Ok(response) => response,
        Err(_) => status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "list failed",
        ),
    }
}

fn list_or_watch_now(
    shared: &Arc<Shared>,
    kind: Kind,
    namespace: Option<&str>,
    q: &ListQuery,
) -> Response {
    let filter = match Filter::parse(
        namespace,
        q.field_selector.as_deref(),
        q.label_selector.as_deref(),
    ) {
        Ok(filter) => filter,
        Err(message) => return status(StatusCode::BAD_REQUEST, "BadRequest", &message),
    };
    if truthy(&q.watch) {
        return watch(shared, kind, filter, q);
    }
    if kind == Kind::Event {
        let store = lock(&shared.events);
        let rv = lock(&shared.log).rv();
        let body = events::render_list(&store, &filter, rv);
        return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let nodes = read(&shared.nodes);
    let rv = lock(&shared.log).rv();
    let after = q.continue_.as_deref().and_then(list::parse_continue);
    let (keys, more) = list::select(&shared.cfg, &nodes, kind, &filter, after, q.limit);
    let cont = more
        .then(|| keys.last().map(|k| list::continue_token(rv, *k)))
        .flatten();
    let body = list::render_list(&shared.cfg, &nodes, kind, &keys, rv, cont);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The `ERROR` 410 line that ends a watch whose resource version expired.
fn gone_line(requested: u64) -> Bytes {
    watch_line(
        "ERROR",
        &serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {requested}"),
            "reason": "Expired", "code": 410,
        }),
    )
}

fn expired(requested: u64, current: u64) -> Response {
    let line = watch_line(
        "ERROR",
        &serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {requested} ({current})"),
            "reason": "Expired", "code": 410,
        }),
    );
    ([(header::CONTENT_TYPE, "application/json")], line).into_response()
}

fn bookmark(kind: Kind, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = serde_json::json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        metadata["annotations"] = serde_json::json!({ "k8s.io/initial-events-end": "true" });
    }
    let object =
        serde_json::json!({ "kind": api_kind(kind), "apiVersion": "v1", "metadata": metadata });
    watch_line("BOOKMARK", &object)
}

fn event_matches(kind: Kind, filter: &Filter, ev: &Event) -> bool {
    ev.kind == kind
        && filter.matches(&Facts {
            name: &ev.name,
            namespace: ev.namespace.as_deref(),
            node_name: ev.node_name.as_deref(),
            labels: &ev.labels,
        })
}

struct WatchState {
    kind: Kind,
    filter: Filter,
    queue: VecDeque<Bytes>,
    rx: broadcast::Receiver<Arc<Event>>,
    last_rv: u64,
    deadline: Instant,
    /// Fires on [`super::SimCluster::expire_watches`]: the watch ends with a 410.
    expire: tokio::sync::watch::Receiver<u64>,
    /// The 410 line was queued: end once the queue is sent.
    ending: bool,
    bookmarks: bool,
    next_bookmark: Instant,
    cancel: CancellationToken,
}

fn watch(shared: &Arc<Shared>, kind: Kind, filter: Filter, q: &ListQuery) -> Response {
    let requested = q
        .resource_version
        .as_deref()
        .and_then(|rv| rv.parse::<u64>().ok());
    let explicit_initial = truthy(&q.send_initial_events);
    let initial = explicit_initial || matches!(requested, None | Some(0));
    let mut queue = VecDeque::new();
    let (rx, last_rv) = {
        let nodes = read(&shared.nodes);
        let store = lock(&shared.events);
        let log = lock(&shared.log);
        let current = log.rv();
        let from = if initial {
            current
        } else {
            requested.unwrap_or(current).min(current)
        };
        let Some((backlog, rx)) = log.since(from) else {
            return expired(from, current);
        };
        if initial && kind == Kind::Event {
            queue.extend(events::render_added(&store, &filter));
        } else if initial {
            let (keys, _) = list::select(&shared.cfg, &nodes, kind, &filter, None, None);
            queue.extend(list::render_added(&shared.cfg, &nodes, kind, &keys));
        }
        if initial && explicit_initial {
            queue.push_back(bookmark(kind, current, true));
        }
        let last = backlog.last().map_or(from, |e| e.rv);
        queue.extend(
            backlog
                .iter()
                .filter(|e| event_matches(kind, &filter, e))
                .map(|e| e.line.clone()),
        );
        (rx, last)
    };
    let timeout = q
        .timeout_seconds
        .map_or(MAX_WATCH, Duration::from_secs)
        .min(MAX_WATCH);
    let now = Instant::now();
    let state = WatchState {
        kind,
        filter,
        queue,
        rx,
        last_rv,
        deadline: now + timeout,
        expire: shared.expire.subscribe(),
        ending: false,
        bookmarks: truthy(&q.allow_watch_bookmarks),
        next_bookmark: now + BOOKMARK_EVERY,
        cancel: shared.cancel.clone(),
    };
    let body = Body::from_stream(stream::unfold(state, next_line));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn next_line(mut w: WatchState) -> Option<(Result<Bytes, Infallible>, WatchState)> {
    loop {
        if let Some(line) = w.queue.pop_front() {
            return Some((Ok(line), w));
        }
        if w.ending {
            return None;
        }
        tokio::select! {
            Ok(()) = w.expire.changed() => {
                w.ending = true;
                w.queue.push_back(gone_line(w.last_rv));
            }
            () = w.cancel.cancelled() => return None,
            () = tokio::time::sleep_until(w.deadline) => return None,
            () = tokio::time::sleep_until(w.next_bookmark), if w.bookmarks => {
                w.next_bookmark += BOOKMARK_EVERY;
                w.queue.push_back(bookmark(w.kind, w.last_rv, false));
            }
            received = w.rx.recv() => match received {
                Ok(ev) => {
                    w.last_rv = w.last_rv.max(ev.rv);
                    if event_matches(w.kind, &w.filter, &ev) {
                        w.queue.push_back(ev.line.clone());
                    }
                }
                // A lagging watcher is cut off; the client re-lists or resumes.
                Err(_) => return None,
            },
        }
    }
}

/// A watch event for node `n` (its object at `n.rv`).
pub(crate) fn node_event(cfg: &Config, type_: &str, n: &NodeState) -> Event {
    Event {
        rv: n.rv,
        kind: Kind::Node,
        name: n.name.clone(),
        namespace: None,
        node_name: None,
        labels: objects::node_labels(&n.name),
        line: watch_line(type_, &objects::node(cfg, n)),
    }
}

/// A watch event for pod `pod` of node `n`, at resource version `rv`.
pub(crate) fn pod_event(cfg: &Config, type_: &str, n: &NodeState, pod: usize, rv: u64) -> Event {
    let mut object = objects::pod(cfg, n, pod);
    object.metadata.resource_version = Some(rv.to_string());
    Event {
        rv,
        kind: Kind::Pod,
        name: f::pod_name(n.index, pod),
        namespace: Some(f::pod_namespace(pod).to_owned()),
        node_name: Some(n.name.clone()),
        labels: objects::pod_labels(pod),
        line: watch_line(type_, &object),
    }
}
