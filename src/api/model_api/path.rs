//! Parses model API paths (`/api/v1/model/...` after the prefix) into a [`ModelQuery`].
//!
//! One catch-all route and this parser instead of a route per shape: metric names hold
//! slashes (`cpu/usage_rate`), and the trailing slash Heapster's clients send is optional.

use std::sync::Arc;

use crate::api::error::ModelError;
use crate::api::limits::MAX_NAME;
use crate::model::{Metric, SetKey};

/// Longest accepted path after the prefix, and most pods in one pod-list.
pub const MAX_PATH: usize = 4096;
pub const MAX_POD_LIST: usize = 1000;

/// What a model API path asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelQuery {
    /// Names of the metrics an entity has.
    MetricNames(SetKey),
    /// Points of one metric of one entity.
    Points(SetKey, Metric),
    /// Points of one metric of several pods, in request order.
    PodList {
        namespace: Arc<str>,
        pods: Vec<Arc<str>>,
        metric: Metric,
    },
    Nodes,
    Namespaces,
    Pods(Arc<str>),
    PodsOnNode(Arc<str>),
    Containers(Arc<str>, Arc<str>),
    FreeContainers(Arc<str>),
    AllKeys,
}

/// Heapster's old metric names.
fn metric(name: &str) -> Result<Metric, ModelError> {
    let name = match name {
        "cpu-usage" => "cpu/usage_rate",
        "memory-usage" => "memory/usage",
        "memory-working" => "memory/working_set",
        "cpu-limit" => "cpu/limit",
        "memory-limit" => "memory/limit",
        "cpu-request" => "cpu/request",
        "memory-request" => "memory/request",
        other => other,
    };
    Metric::from_name(name).ok_or_else(|| ModelError::NotFound(format!("unknown metric {name:?}")))
}

/// `metrics` → names; `metrics/<name with slashes>` → points.
fn metrics_of(key: SetKey, rest: &[&str]) -> Result<ModelQuery, ModelError> {
    match rest {
        ["metrics"] => Ok(ModelQuery::MetricNames(key)),
        ["metrics", name @ ..] => Ok(ModelQuery::Points(key, metric(&name.join("/"))?)),
        _ => Err(not_found()),
    }
}

fn not_found() -> ModelError {
    ModelError::NotFound("no such model API path".into())
}

fn name(s: &str) -> Result<Arc<str>, ModelError> {
    if s.is_empty() {
        return Err(ModelError::BadRequest("empty name in path".into()));
    }
    if s.len() > MAX_NAME {
        return Err(ModelError::BadRequest(format!(
            "name in path longer than {MAX_NAME} bytes"
        )));
    }
    Ok(Arc::from(s))
}

/// Parses the path after `/api/v1/model/` (already percent-decoded by the router).
pub fn parse(path: &str) -> Result<ModelQuery, ModelError> {
    if path.len() > MAX_PATH {
        return Err(ModelError::BadRequest(format!(
            "path longer than {MAX_PATH} bytes"
        )));
    }
    let path = path.trim_matches('/');
    let segs: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    use ModelQuery as Q;
    match segs.as_slice() {
        ["metrics"] => Ok(Q::MetricNames(SetKey::Cluster)),
        ["cluster", rest @ ..] => metrics_of(SetKey::Cluster, rest),
        ["debug", "allkeys"] => Ok(Q::AllKeys),
        ["nodes"] => Ok(Q::Nodes),
        ["nodes", n, "pods"] => Ok(Q::PodsOnNode(name(n)?)),
        ["nodes", n, "freecontainers"] => Ok(Q::FreeContainers(name(n)?)),
        ["nodes", n, "freecontainers", c, rest @ ..] => {
            let key = SetKey::SysContainer {
                node: name(n)?,
                container: name(c)?,
            };
            metrics_of(key, rest)
        }
        ["nodes", n, rest @ ..] => metrics_of(SetKey::Node { node: name(n)? }, rest),
        ["namespaces"] => Ok(Q::Namespaces),
        ["namespaces", ns, "pods"] => Ok(Q::Pods(name(ns)?)),
        ["namespaces", ns, "pod-list", list, "metrics", m @ ..] if !m.is_empty() => {
            let pods: Vec<Arc<str>> = list.split(',').map(name).collect::<Result<_, _>>()?;
            if pods.len() > MAX_POD_LIST {
                return Err(ModelError::BadRequest(format!(
                    "more than {MAX_POD_LIST} pods in one pod-list"
                )));
            }
            Ok(Q::PodList {
                namespace: name(ns)?,
                pods,
                metric: metric(&m.join("/"))?,
            })
        }
        ["namespaces", ns, "pods", p, "containers"] => Ok(Q::Containers(name(ns)?, name(p)?)),
        ["namespaces", ns, "pods", p, "containers", c, rest @ ..] => {
            let key = SetKey::PodContainer {
                namespace: name(ns)?,
                pod: name(p)?,
                container: name(c)?,
            };
            metrics_of(key, rest)
        }
        ["namespaces", ns, "pods", p, rest @ ..] => {
            let key = SetKey::Pod {
                namespace: name(ns)?,
                pod: name(p)?,
            };
            metrics_of(key, rest)
        }
        ["namespaces", ns, rest @ ..] => metrics_of(
            SetKey::Namespace {
                namespace: name(ns)?,
            },
            rest,
        ),
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_keys::node;

    #[test]
    fn shapes() {
        use ModelQuery as Q;
        let ok = |p: &str| parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(ok("nodes/"), Q::Nodes);
        assert_eq!(ok("metrics/"), Q::MetricNames(SetKey::Cluster));
        assert_eq!(
            ok("nodes/n1/metrics/cpu/usage_rate"),
            Q::Points(node("n1"), Metric::CpuUsageRate)
        );
        assert_eq!(
            ok("nodes/n1/metrics/memory-usage/"),
            Q::Points(node("n1"), Metric::MemoryUsage)
        );
        assert_eq!(ok("nodes/n1/metrics"), Q::MetricNames(node("n1")));
        assert_eq!(
            ok("cluster/metrics/cpu-limit"),
            Q::Points(SetKey::Cluster, Metric::CpuLimit)
        );
        assert!(matches!(
            ok("namespaces/ns/pod-list/a,b/metrics/cpu/usage_rate"),
            Q::PodList { pods, .. } if pods.len() == 2
        ));
        assert!(matches!(
            ok("namespaces/ns/pods/p/containers/c/metrics/memory/working_set"),
            Q::Points(SetKey::PodContainer { .. }, Metric::MemoryWorkingSet)
        ));
        assert!(matches!(
            ok("nodes/n/freecontainers/kubelet/metrics"),
            Q::MetricNames(SetKey::SysContainer { .. })
        ));
        assert_eq!(ok("namespaces/ns/pods"), Q::Pods(Arc::from("ns")));
    }

    #[test]
    fn bad_paths() {
        let cases = [
            ("nodes/n1/metrics/nope", 404),
            ("nodes/n1/whatever", 404),
            ("", 404),
            ("namespaces/ns/pod-list/a,,b/metrics/cpu/usage_rate", 400),
            ("namespaces/ns/pod-list/a/metrics", 404),
        ];
        for (p, code) in cases {
            let got = match parse(p) {
                Err(ModelError::BadRequest(_)) => 400,
                Err(ModelError::NotFound(_)) => 404,
                other => panic!("{p}: {other:?}"),
            };
            assert_eq!(got, code, "{p}");
        }
        let long = "n".repeat(MAX_NAME + 1);
        for p in [
            format!("nodes/{long}/metrics"),
            format!("namespaces/ns/pod-list/a,{long}/metrics/cpu-usage"),
            format!("namespaces/{long}/pods"),
        ] {
            assert!(matches!(parse(&p), Err(ModelError::BadRequest(_))), "{p}");
        }
        assert!(matches!(
            parse(&"a/".repeat(MAX_PATH)),
            Err(ModelError::BadRequest(_))
        ));
    }
}
