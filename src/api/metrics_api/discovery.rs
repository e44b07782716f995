//! Discovery documents: `/apis` (the group list), `/apis/metrics.k8s.io` (the group) and
//! `/apis/metrics.k8s.io/v1beta1` (the resources: `nodes`, `pods`; verbs get and list).

use serde_json::{Value, json};

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
/// Heapster's old group version, served at `/apis/metrics/v1alpha1`.
pub const OLD_GROUP_VERSION: &str = "metrics/v1alpha1";

fn version() -> Value {
    json!({ "groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION })
}

/// The group as it appears in `/apis` and at `/apis/metrics.k8s.io`.
pub fn group() -> Value {
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": GROUP,
        "versions": [version()],
        "preferredVersion": version(),
    })
}

pub fn group_list() -> Value {
    let mut g = group();
    if let Some(o) = g.as_object_mut() {
        o.remove("kind");
        o.remove("apiVersion");
    }
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": [g] })
}

pub fn resource_list(group_version: &str) -> Value {
    let resource = |name: &str, kind: &str, namespaced: bool| {
        json!({
            "name": name,
            "singularName": "",
            "namespaced": namespaced,
            "kind": kind,
            "verbs": ["get", "list"],
        })
    };
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": [
            resource("nodes", "NodeMetrics", false),
            resource("pods", "PodMetrics", true),
        ],
    })
}
