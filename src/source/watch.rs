//! Node and pod watchers: list then watch, resume with backoff, and keep only a compact
//! [`NodeInfo`]/[`PodInfo`] per object in the shared [`ClusterState`].

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch as signal;

use super::quantity;
use crate::certificate::CertProblem;
use crate::model::FastMap;
use crate::model::cluster::{
    ClusterState, ClusterWriter, ContainerInfo, Interner, NodeInfo, PodInfo,
};
use crate::model::labels::LabelPolicy;

/// Which watchers have finished their first list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub nodes: bool,
    pub pods: bool,
    /// Why the first node list has not come yet (the latest watch failure), for `/healthz`.
    pub node_error: Option<Arc<str>>,
}

pub fn node_info(node: &Node, policy: &LabelPolicy) -> Option<NodeInfo> {
    let name = node.metadata.name.as_deref()?;
    let labels = node.metadata.labels.as_ref();
    let pairs = || {
        labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    };
    let status = node.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let q = |map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
             key: &str| { map.and_then(|m| m.get(key)).map(|q| q.0.clone()) };
    let capacity = status.and_then(|s| s.capacity.as_ref());
    let allocatable = status.and_then(|s| s.allocatable.as_ref());
    Some(NodeInfo {
        name: Arc::from(name),
        labels: policy.join(pairs()),
        extra_tags: policy.stored(pairs()),
        label_map: pairs().map(|(k, v)| (Arc::from(k), Arc::from(v))).collect(),
        schedulable: !node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
        ready,
        addresses: status
            .and_then(|s| s.addresses.as_ref())
            .map(|a| {
                a.iter()
                    .map(|a| (a.type_.clone(), a.address.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        kubelet_port: status
            .and_then(|s| s.daemon_endpoints.as_ref())
            .and_then(|d| d.kubelet_endpoint.as_ref())
            .and_then(|e| u16::try_from(e.port).ok())
            .unwrap_or(0),
        cpu_capacity_millis: q(capacity, "cpu").and_then(|v| quantity::millicores(&v)),
        memory_capacity_bytes: q(capacity, "memory").and_then(|v| quantity::bytes(&v)),
        cpu_allocatable_millis: q(allocatable, "cpu").and_then(|v| quantity::millicores(&v)),
        memory_allocatable_bytes: q(allocatable, "memory").and_then(|v| quantity::bytes(&v)),
    })
}

/// `None` for pods that are finished (`Succeeded`, `Failed`) or not named; they are not kept.
pub fn pod_info(pod: &Pod, policy: &LabelPolicy, strings: &mut Interner) -> Option<PodInfo> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    let name = pod.metadata.name.as_deref()?;
    let namespace = pod.metadata.namespace.as_deref()?;
    let labels = pod.metadata.labels.as_ref();
    let pairs = || {
        labels
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    };
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    let spec = pod.spec.as_ref();
    let containers = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let res = c.resources.as_ref();
            let get = |which: Option<
                &std::collections::BTreeMap<
                    String,
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                >,
            >,
                       key: &str,
                       f: fn(&str) -> Option<i64>| {
                which
                    .and_then(|m| m.get(key))
                    .and_then(|q| f(&q.0))
                    .unwrap_or(0)
            };
            let req = res.and_then(|r| r.requests.as_ref());
            let lim = res.and_then(|r| r.limits.as_ref());
            ContainerInfo {
                name: strings.get(&c.name),
                image: c.image.as_deref().map(|i| strings.get(i)),
                cpu_request_millis: get(req, "cpu", quantity::millicores),
                cpu_limit_millis: get(lim, "cpu", quantity::millicores),
                memory_request_bytes: get(req, "memory", quantity::bytes),
                memory_limit_bytes: get(lim, "memory", quantity::bytes),
                ephemeral_request_bytes: get(req, "ephemeral-storage", quantity::bytes),
                ephemeral_limit_bytes: get(lim, "ephemeral-storage", quantity::bytes),
                restart_count: statuses
                    .and_then(|s| s.iter().find(|s| s.name == c.name))
                    .map(|s| i64::from(s.restart_count))
                    .unwrap_or(0),
            }
        })
        .collect();
    Some(PodInfo {
        namespace: strings.get(namespace),
        name: Arc::from(name),
        uid: Arc::from(pod.metadata.uid.as_deref().unwrap_or_default()),
        node: spec
            .and_then(|s| s.node_name.as_deref())
            .map(|n| strings.get(n)),
        // Replicas share their labels.
        labels: policy.join(pairs()).map(|l| strings.get(&l)),
        extra_tags: policy.stored(pairs()),
        label_map: pairs()
            .map(|(k, v)| (strings.get(k), strings.get(v)))
            .collect(),
        containers,
    })
}

/// Watches nodes until the stream ends (never, in practice: the watcher retries with backoff).
pub async fn watch_nodes(
    client: kube::Client,
    policy: Arc<LabelPolicy>,
    state: ClusterWriter,
    synced: signal::Sender<Synced>,
) {
    let api: Api<Node> = Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut fresh: FastMap<Arc<str>, Arc<NodeInfo>> = FastMap::default();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Init) => fresh.clear(),
            Ok(Event::InitApply(n)) => {
                if let Some(info) = node_info(&n, &policy) {
                    fresh.insert(Arc::clone(&info.name), Arc::new(info));
                }
            }
            Ok(Event::InitDone) => {
                let count = fresh.len();
                state.write().nodes = std::mem::take(&mut fresh);
                synced.send_modify(|s| {
                    s.nodes = true;
                    s.node_error = None;
                });
                tracing::info!(nodes = count, "node list synced");
            }
            Ok(Event::Apply(n)) => {
                if let Some(info) = node_info(&n, &policy) {
                    state
                        .write()
                        .nodes
                        .insert(Arc::clone(&info.name), Arc::new(info));
                }
            }
            Ok(Event::Delete(n)) => {
                if let Some(name) = n.metadata.name.as_deref() {
                    state.write().nodes.remove(name);
                }
            }
            Err(e) => {
                let error = describe(&e);
                tracing::warn!(%error, "node watch failed; retrying");
                synced.send_if_modified(|s| {
                    let first_list_pending = !s.nodes;
                    if first_list_pending {
                        s.node_error = Some(Arc::from(error));
                    }
                    first_list_pending
                });
            }
        }
    }
}

/// Watches scheduled, not yet finished pods.
pub async fn watch_pods(
    client: kube::Client,
    policy: Arc<LabelPolicy>,
    state: ClusterWriter,
    synced: signal::Sender<Synced>,
) {
    let api: Api<Pod> = Api::all(client);
    // Finished pods are dropped client-side (see `pod_info`), so no `status.phase` selector:
    // not every apiserver (or proxy) supports it.
    let cfg = watcher::Config::default().fields("spec.nodeName!=");
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut fresh = ClusterState::default();
    let mut strings = Interner::default();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Init) => fresh = ClusterState::default(),
            Ok(Event::InitApply(p)) => {
                if let Some(info) = pod_info(&p, &policy, &mut strings) {
                    fresh.insert_pod(Arc::new(info));
                }
            }
            Ok(Event::InitDone) => {
                let count = fresh.pod_count();
                state.write().replace_pods(&mut fresh);
                strings.prune();
                synced.send_modify(|s| s.pods = true);
                tracing::info!(pods = count, "pod list synced");
            }
            Ok(Event::Apply(p)) => match pod_info(&p, &policy, &mut strings) {
                Some(info) => state.write().insert_pod(Arc::new(info)),
                None => {
                    if let (Some(ns), Some(name)) =
                        (p.metadata.namespace.as_deref(), p.metadata.name.as_deref())
                    {
                        state.write().remove_pod(ns, name);
                    }
                }
            },
            Ok(Event::Delete(p)) => {
                if let (Some(ns), Some(name)) =
                    (p.metadata.namespace.as_deref(), p.metadata.name.as_deref())
                {
                    state.write().remove_pod(ns, name);
                }
            }
            Err(e) => tracing::warn!(error = %describe(&e), "pod watch failed; retrying"),
        }
    }
}

/// A watch failure in words: what to change when the apiserver's certificate was refused.
fn describe(e: &watcher::Error) -> String {
    match CertProblem::find(e) {
        Some(problem) => super::apiserver::certificate_advice(&problem),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, hash: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                "labels": {"app": "web", "pod-template-hash": hash}
            },
            "spec": {
                "nodeName": "node-1",
                "containers": [
                    {"name": "app", "image": "registry.k8s.io/web:1.0"},
                    {"name": "sidecar", "image": "registry.k8s.io/proxy:2.0"}
                ]
            },
            "status": {"phase": "Running"}
        }))
        .expect("pod")
    }

    #[test]
    fn pods_share_the_strings_they_repeat() {
        let policy = LabelPolicy::new(",", &[], &[]);
        let mut strings = Interner::default();
        let a = pod_info(&pod("web-1", "abc"), &policy, &mut strings).expect("a");
        let b = pod_info(&pod("web-2", "abc"), &policy, &mut strings).expect("b");
        let same = |x: &Arc<str>, y: &Arc<str>| Arc::ptr_eq(x, y);
        assert!(same(&a.namespace, &b.namespace));
        assert!(
            a.node
                .as_ref()
                .zip(b.node.as_ref())
                .is_some_and(|(x, y)| same(x, y))
        );
        assert!(
            a.labels
                .as_ref()
                .zip(b.labels.as_ref())
                .is_some_and(|(x, y)| same(x, y))
        );
        for (x, y) in a.containers.iter().zip(&b.containers) {
            assert!(same(&x.name, &y.name));
            assert!(
                x.image
                    .as_ref()
                    .zip(y.image.as_ref())
                    .is_some_and(|(x, y)| same(x, y))
            );
        }
        for ((ka, va), (kb, vb)) in a.label_map.iter().zip(&b.label_map) {
            assert!(same(ka, kb) && same(va, vb));
        }
        // Names and UIDs are the pod's own.
        assert!(!same(&a.name, &b.name) && !same(&a.uid, &b.uid));
        assert_eq!(&*a.label_map[0].0, "app");
        // Strings no pod holds any more are forgotten.
        let held = strings.len();
        drop((a, b));
        strings.prune();
        assert!(held > 0 && strings.is_empty());
    }
}
