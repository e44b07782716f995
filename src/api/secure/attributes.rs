//! What a request on the secure port reveals, as the attributes of the SubjectAccessReview that
//! authorizes it.
//!
//! `metrics.k8s.io` paths are their own resources, as the apiserver's aggregation layer sees
//! them. The model API is authorized on the same resources, by what its answer reveals: pods in
//! the namespace asked for, nodes for node and cluster answers. A namespace's viewers (who hold
//! `metrics.k8s.io` pods there through `view`) then read its model API too and no other
//! namespace's, and the roles that already serve `kubectl top` and the HPA serve Heapster-era
//! readers. A non-resource rule (`get` on `/api/v1/model/*`, as kube-rbac-proxy checks) would be
//! all or nothing: anyone allowed would see every namespace.
//!
//! Paths are percent-decoded as the routers decode them, so the review names the namespace the
//! handler will read.

use std::borrow::Cow;

use crate::api::partials::PARTIALS_PATH;
use crate::api::peers::LOCAL_PREFIX;
use crate::rbac::METRICS_GROUP;

/// The version named in reviews of model API paths.
const MODEL_VERSION: &str = "v1beta1";
/// Heapster's old group, served with the same data: reviewed as [`METRICS_GROUP`].
const OLD_GROUP: &str = "metrics";

/// What a request does, as a SubjectAccessReview asks it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attributes {
    Resource {
        verb: &'static str,
        group: String,
        version: String,
        resource: &'static str,
        namespace: Option<String>,
        name: Option<String>,
    },
    NonResource {
        verb: &'static str,
        path: String,
    },
}

fn decode(s: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy()
}

fn resource(
    group: &str,
    version: &str,
    resource: &'static str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Attributes {
    let group = if group == OLD_GROUP {
        METRICS_GROUP
    } else {
        group
    };
    Attributes::Resource {
        verb: if name.is_some() { "get" } else { "list" },
        group: group.to_string(),
        version: version.to_string(),
        resource,
        namespace: namespace.map(String::from),
        name: name.map(String::from),
    }
}

impl Attributes {
    /// `/apis/<group>/<version>/nodes[/n]`, `.../pods`, `.../namespaces/<ns>/pods[/p]`, the
    /// model API ([`Attributes::of_model`]); anything else is a non-resource path.
    ///
    /// A replica-local path (under [`LOCAL_PREFIX`], what a replica asks its peers) is reviewed
    /// as the same path without the prefix: it reveals a part of what that path reveals. A
    /// replica's contributions to the aggregates (`/internal/shard/partials`, pods' usage
    /// summed per namespace) are reviewed as a list of every pod's metrics, which reveals more.
    pub fn of(path: &str) -> Attributes {
        let path = match path.strip_prefix(LOCAL_PREFIX) {
            Some(rest) if rest.starts_with('/') => rest,
            _ if path == PARTIALS_PATH => "/apis/metrics.k8s.io/v1beta1/pods",
            _ => path,
        };
        if let Some(attrs) = path
            .strip_prefix("/api/v1/model")
            .and_then(Attributes::of_model)
        {
            return attrs;
        }
        let segs: Vec<Cow<'_, str>> = path.trim_matches('/').split('/').map(decode).collect();
        let segs: Vec<&str> = segs.iter().map(|s| s.as_ref()).collect();
        match segs.as_slice() {
            ["apis", g, v, "nodes"] => resource(g, v, "nodes", None, None),
            ["apis", g, v, "nodes", n] => resource(g, v, "nodes", None, Some(n)),
            ["apis", g, v, "pods"] => resource(g, v, "pods", None, None),
            ["apis", g, v, "namespaces", ns, "pods"] => resource(g, v, "pods", Some(ns), None),
            ["apis", g, v, "namespaces", ns, "pods", p] => {
                resource(g, v, "pods", Some(ns), Some(p))
            }
            _ => Attributes::NonResource {
                verb: "get",
                path: path.to_string(),
            },
        }
    }

    /// A model API path after `/api/v1/model` (decoded whole, then split, as its router does):
    ///
    /// | path | reviewed as (`metrics.k8s.io`) |
    /// |---|---|
    /// | `namespaces/{ns}/pods/{p}/...` | `get` pods `{p}` in `{ns}` |
    /// | `namespaces/{ns}/...` (pods, pod-list, the namespace's own metrics) | `list` pods in `{ns}` |
    /// | `namespaces`, `nodes/{n}/pods`, `debug/allkeys` | `list` pods, cluster-wide |
    /// | `nodes/{n}/...` (with `freecontainers`) | `get` nodes `{n}` |
    /// | `nodes`, `cluster/...`, `metrics` | `list` nodes |
    ///
    /// `None` for anything else (reviewed as a non-resource path).
    pub fn of_model(rest: &str) -> Option<Attributes> {
        let decoded = decode(rest);
        let trimmed = decoded.trim_matches('/');
        let segs: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        let pods = |ns: Option<&str>, name: Option<&str>| {
            resource(METRICS_GROUP, MODEL_VERSION, "pods", ns, name)
        };
        let nodes =
            |name: Option<&str>| resource(METRICS_GROUP, MODEL_VERSION, "nodes", None, name);
        Some(match segs.as_slice() {
            ["namespaces", ns, "pods", p, ..] => pods(Some(ns), Some(p)),
            ["namespaces", ns, ..] => pods(Some(ns), None),
            ["namespaces"] | ["nodes", _, "pods", ..] | ["debug", ..] => pods(None, None),
            ["nodes", n, ..] => nodes(Some(n)),
            ["nodes"] | ["cluster", ..] | ["metrics", ..] => nodes(None),
            _ => return None,
        })
    }

    /// The reason a denial gives, as the apiserver words it.
    pub fn describe(&self, user: &str) -> String {
        match self {
            Attributes::Resource {
                verb,
                group,
                resource,
                namespace,
                ..
            } => {
                let scope = match namespace {
                    Some(ns) => format!("in the namespace \"{ns}\""),
                    None => "at the cluster scope".into(),
                };
                format!(
                    "user \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
                )
            }
            Attributes::NonResource { verb, path } => {
                format!("user \"{user}\" cannot {verb} path \"{path}\"")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(a: &Attributes) -> String {
        match a {
            Attributes::Resource {
                verb,
                group,
                resource,
                namespace,
                name,
                ..
            } => format!(
                "{verb} {group}/{resource} ns={} name={}",
                namespace.as_deref().unwrap_or("-"),
                name.as_deref().unwrap_or("-")
            ),
            Attributes::NonResource { verb, path } => format!("{verb} {path}"),
        }
    }

    #[test]
    fn paths_map_to_what_they_reveal() {
        let m = "metrics.k8s.io";
        let table = [
            (
                "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/p",
                format!("get {m}/pods ns=ns name=p"),
            ),
            (
                "/apis/metrics.k8s.io/v1beta1/nodes",
                format!("list {m}/nodes ns=- name=-"),
            ),
            (
                "/apis/metrics.k8s.io/v1beta1/nodes/n1",
                format!("get {m}/nodes ns=- name=n1"),
            ),
            (
                "/apis/metrics/v1alpha1/pods",
                format!("list {m}/pods ns=- name=-"),
            ),
            (
                "/internal/shard/local/apis/metrics.k8s.io/v1beta1/nodes",
                format!("list {m}/nodes ns=- name=-"),
            ),
            (
                "/internal/shard/local/api/v1/model/namespaces/team-a/pods",
                format!("list {m}/pods ns=team-a name=-"),
            ),
            (
                "/internal/shard/partials",
                format!("list {m}/pods ns=- name=-"),
            ),
            (
                "/internal/shard/localx/apis/metrics.k8s.io/v1beta1/nodes",
                "get /internal/shard/localx/apis/metrics.k8s.io/v1beta1/nodes".into(),
            ),
            (
                "/apis/metrics.k8s.io/v1beta1",
                "get /apis/metrics.k8s.io/v1beta1".into(),
            ),
            (
                "/api/v1/model/namespaces/team-a/pods/web/metrics/cpu/usage_rate",
                format!("get {m}/pods ns=team-a name=web"),
            ),
            (
                "/api/v1/model/namespaces/team-a/pods/web/containers/app/metrics/x",
                format!("get {m}/pods ns=team-a name=web"),
            ),
            (
                "/api/v1/model/namespaces/team-a/pod-list/a,b/metrics/cpu-usage",
                format!("list {m}/pods ns=team-a name=-"),
            ),
            (
                "/api/v1/model/namespaces/team-a/metrics/memory/usage",
                format!("list {m}/pods ns=team-a name=-"),
            ),
            (
                "/api/v1/model/namespaces/team-a/pods/",
                format!("list {m}/pods ns=team-a name=-"),
            ),
            (
                "/api/v1/model/namespaces/",
                format!("list {m}/pods ns=- name=-"),
            ),
            (
                "/api/v1/model/nodes/n1/pods",
                format!("list {m}/pods ns=- name=-"),
            ),
            (
                "/api/v1/model/debug/allkeys",
                format!("list {m}/pods ns=- name=-"),
            ),
            (
                "/api/v1/model/nodes/n1/freecontainers/kubelet/metrics/x",
                format!("get {m}/nodes ns=- name=n1"),
            ),
            (
                "/api/v1/model/nodes/n1/metrics/cpu/usage_rate",
                format!("get {m}/nodes ns=- name=n1"),
            ),
            ("/api/v1/model/nodes", format!("list {m}/nodes ns=- name=-")),
            (
                "/api/v1/model/cluster/metrics/cpu/usage_rate",
                format!("list {m}/nodes ns=- name=-"),
            ),
            (
                "/api/v1/model/metrics/",
                format!("list {m}/nodes ns=- name=-"),
            ),
            ("/api/v1/model", "get /api/v1/model".into()),
            ("/api/v1/model/bogus", "get /api/v1/model/bogus".into()),
            // Decoded as the routers decode: the review names the namespace the handler reads.
            (
                "/api/v1/model/namespace%73/kube-system/pods",
                format!("list {m}/pods ns=kube-system name=-"),
            ),
            (
                "/api/v1/model/namespaces/team-a%2Fpods%2Fweb/metrics/x",
                format!("get {m}/pods ns=team-a name=web"),
            ),
            (
                "/apis/metrics.k8s.io/v1beta1/namespaces/kube%2Dsystem/pods",
                format!("list {m}/pods ns=kube-system name=-"),
            ),
        ];
        for (path, want) in table {
            assert_eq!(short(&Attributes::of(path)), want, "{path}");
        }
    }

    #[test]
    fn every_resource_review_is_within_the_reader_role() {
        let paths = [
            "/api/v1/model/namespaces/a/pods/p/metrics/x",
            "/api/v1/model/namespaces/a/pods",
            "/api/v1/model/namespaces",
            "/api/v1/model/nodes/n/metrics/x",
            "/api/v1/model/nodes",
            "/api/v1/model/cluster/metrics",
            "/apis/metrics.k8s.io/v1beta1/pods",
            "/apis/metrics.k8s.io/v1beta1/nodes/n",
        ];
        for path in paths {
            let Attributes::Resource {
                verb,
                group,
                resource,
                ..
            } = Attributes::of(path)
            else {
                panic!("{path}: a resource review");
            };
            assert_eq!(group, METRICS_GROUP, "{path}");
            let granted = crate::rbac::READER_GRANTS
                .iter()
                .any(|(r, verbs, _)| *r == resource && verbs.contains(&verb));
            assert!(granted, "{path}: {verb} {resource} is not in READER_GRANTS");
        }
    }

    #[test]
    fn denials_read_like_the_apiservers() {
        assert!(
            Attributes::of("/apis/metrics.k8s.io/v1beta1/pods")
                .describe("bob")
                .contains("cannot list resource \"pods\"")
        );
    }
}
