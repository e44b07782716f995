//! The Kubernetes API calls the binaries make, as data: the single source of truth for the RBAC
//! manifests in `deploy/kube-config/`.
//!
//! `tests/deploy.rs` renders the manifests and checks that every call here is granted by the
//! role named in [`ApiCall::granted_by`], and that `system:heapster` grants nothing that is not
//! listed here. Add an entry in the same change that adds an `Api<...>` call or a kubelet
//! endpoint; the test then tells you which manifest to update.

/// Which program makes a call (each runs under its own ServiceAccount in-cluster).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// The collector (`/heapster`, ServiceAccount `heapster`).
    Heapster,
    /// The event exporter (`/eventer`, ServiceAccount `eventer`).
    Eventer,
}

/// The role that grants a call in `deploy/kube-config/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// ClusterRole `system:heapster` (ours, least privilege).
    Heapster,
    /// ClusterRole `system:heapster-eventer` (ours).
    Eventer,
    /// ClusterRole `heapster-nodeproxy` (ours, bound only by the `node-proxy` overlay).
    NodeProxy,
    /// Built-in ClusterRole `system:auth-delegator` (TokenReview, SubjectAccessReview).
    AuthDelegator,
    /// Built-in Role `extension-apiserver-authentication-reader` in `kube-system`.
    AuthReader,
    /// ClusterRole [`READER_ROLE`] (ours), bound to the collector cluster-wide only by the
    /// `peer-reader` component, for sharded replicas asking each other.
    MetricsReader,
    /// Role `heapster-sharding` in `kube-system` (ours), bound only by the `sharded`
    /// component: the replicas' Leases.
    Sharding,
}

impl Grant {
    /// The role's `metadata.name`.
    pub const fn role_name(self) -> &'static str {
        match self {
            Grant::Heapster => "system:heapster",
            Grant::Eventer => "system:heapster-eventer",
            Grant::NodeProxy => "heapster-nodeproxy",
            Grant::AuthDelegator => "system:auth-delegator",
            Grant::AuthReader => "extension-apiserver-authentication-reader",
            Grant::MetricsReader => READER_ROLE,
            Grant::Sharding => "heapster-sharding",
        }
    }

    /// Whether the role ships with Kubernetes (we bind it but never define it).
    pub const fn built_in(self) -> bool {
        matches!(self, Grant::AuthDelegator | Grant::AuthReader)
    }
}

/// One kind of request a binary sends to the apiserver (or to a kubelet, which authorizes it
/// as a `nodes/<subresource>` request through the apiserver).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiCall {
    /// API group; `""` is the core group.
    pub group: &'static str,
    /// Resource, with `/subresource` when there is one (`nodes/stats`).
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// `Some(ns)` for a namespaced grant (a Role), `None` cluster-wide.
    pub namespace: Option<&'static str>,
    /// Restricts the grant to these object names (empty: any).
    pub resource_names: &'static [&'static str],
    pub binary: Binary,
    pub granted_by: Grant,
    /// When the call is made.
    pub when: &'static str,
}

const fn call(
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    binary: Binary,
    granted_by: Grant,
    when: &'static str,
) -> ApiCall {
    ApiCall {
        group,
        resource,
        verbs,
        namespace: None,
        resource_names: &[],
        binary,
        granted_by,
        when,
    }
}

/// Every API call the binaries make.
pub const API_CALLS: &[ApiCall] = &[
    call(
        "",
        "nodes",
        &["list", "watch"],
        Binary::Heapster,
        Grant::Heapster,
        "always: node discovery (addresses, readiness, labels, capacity, allocatable)",
    ),
    call(
        "",
        "pods",
        &["list", "watch"],
        Binary::Heapster,
        Grant::Heapster,
        "always: pod labels, requests and limits, restart counts",
    ),
    call(
        "",
        "nodes/stats",
        &["get"],
        Binary::Heapster,
        Grant::Heapster,
        "always: the kubelet authorizes GET /stats/summary as nodes/stats",
    ),
    call(
        "",
        "nodes/metrics",
        &["get"],
        Binary::Heapster,
        Grant::Heapster,
        "when the kubelet serves /metrics/resource (optional endpoint)",
    ),
    call(
        "",
        "nodes/proxy",
        &["get"],
        Binary::Heapster,
        Grant::NodeProxy,
        "only with --source=kubernetes:...?nodeProxy=true (scrapes through the apiserver)",
    ),
    call(
        "authentication.k8s.io",
        "tokenreviews",
        &["create"],
        Binary::Heapster,
        Grant::AuthDelegator,
        "metrics.k8s.io on the secure port: authenticating bearer tokens",
    ),
    call(
        "authorization.k8s.io",
        "subjectaccessreviews",
        &["create"],
        Binary::Heapster,
        Grant::AuthDelegator,
        "metrics.k8s.io on the secure port: authorizing requests",
    ),
    ApiCall {
        group: "",
        resource: "configmaps",
        verbs: &["get"],
        namespace: Some("kube-system"),
        resource_names: &["extension-apiserver-authentication"],
        binary: Binary::Heapster,
        granted_by: Grant::AuthReader,
        when: "secure port start: the request-header client CA of the aggregation layer",
    },
    call(
        METRICS_GROUP,
        "nodes",
        &["get", "list"],
        Binary::Heapster,
        Grant::MetricsReader,
        "with sharding: another replica authorizes this one's requests for its nodes' usage \
         (SubjectAccessReview) as it authorizes kubectl top",
    ),
    call(
        METRICS_GROUP,
        "pods",
        &["get", "list"],
        Binary::Heapster,
        Grant::MetricsReader,
        "with sharding: another replica authorizes this one's requests for its pods' usage \
         as it authorizes kubectl top and the HPA",
    ),
    ApiCall {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "list", "watch", "create", "update", "delete"],
        namespace: Some("kube-system"),
        resource_names: &[],
        binary: Binary::Heapster,
        granted_by: Grant::Sharding,
        when: "with --sharding: each replica's Lease (renewed, listed, deleted at shutdown) and                the aggregator Lease (leader election); watch is granted for tools, not used",
    },
    call(
        "",
        "events",
        &["list", "watch"],
        Binary::Eventer,
        Grant::Eventer,
        "always (eventer): the events it exports",
    ),
];

/// The API group whose resources authorize a reader of the metrics, on both APIs of the secure
/// port: `metrics.k8s.io` itself, and the model API, whose answers are the same usage of the
/// same nodes and pods (see `api::secure::attributes`).
pub const METRICS_GROUP: &str = "metrics.k8s.io";

/// ClusterRole that grants [`READER_GRANTS`] (ours; aggregated into `view`, `edit` and `admin`,
/// so a namespace's viewers see its pods' metrics and no other namespace's).
pub const READER_ROLE: &str = "system:heapster-metrics-reader";

/// What a reader of the secure port's APIs needs, as `(resource, verbs, what it reads)` in
/// [`METRICS_GROUP`].
pub const READER_GRANTS: &[(&str, &[&str], &str)] = &[
    (
        "nodes",
        &["get", "list"],
        "kubectl top node; model API nodes/, nodes/{n}/..., cluster/, metrics",
    ),
    (
        "pods",
        &["get", "list"],
        "kubectl top pod, the HPA; model API namespaces/{ns}/... (and, cluster-wide, \
         namespaces/, nodes/{n}/pods, debug/allkeys)",
    ),
];

/// The calls a role must grant.
pub fn granted_by(grant: Grant) -> impl Iterator<Item = &'static ApiCall> {
    API_CALLS.iter().filter(move |c| c.granted_by == grant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_has_verbs_and_a_reason() {
        for c in API_CALLS {
            assert!(!c.verbs.is_empty(), "{c:?}");
            assert!(!c.when.is_empty(), "{c:?}");
        }
    }

    #[test]
    fn namespaced_grants_come_from_roles_and_cluster_grants_from_cluster_roles() {
        for c in API_CALLS {
            assert_eq!(
                c.namespace.is_some(),
                matches!(c.granted_by, Grant::AuthReader | Grant::Sharding),
                "{c:?}"
            );
        }
    }

    #[test]
    fn eventer_needs_only_events() {
        let eventer: Vec<_> = API_CALLS
            .iter()
            .filter(|c| c.binary == Binary::Eventer)
            .map(|c| c.resource)
            .collect();
        assert_eq!(eventer, ["events"]);
    }
}
