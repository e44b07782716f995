//! The kubelet's `/metrics/resource` (Prometheus text) → raw metric sets, as an alternative to
//! the Summary API for clusters that need only cpu and memory (kubectl top, HPA).
//!
//! # Which endpoint, which RBAC
//!
//! | `kubeletEndpoint=` | kubelet path | RBAC on `nodes` | what you get |
//! |---|---|---|---|
//! | `summary` (default) | `/stats/summary` | `nodes/stats` `get` | everything Heapster wrote |
//! | `resource` | `/metrics/resource` | `nodes/metrics` `get` | cpu and memory working set |
//! | `auto` | summary, per node resource on 403/404 | both (either works) | per node |
//!
//! Through the apiserver's node proxy (`nodeProxy=true`) the collector needs `nodes/proxy`
//! `get` instead.
//!
//! # Mapping
//!
//! `node_*` → the node set, `pod_*{namespace,pod}` → pod sets,
//! `container_*{namespace,pod,container}` → container sets: `*_cpu_usage_seconds_total` becomes
//! `cpu/usage` (integer nanoseconds; rates follow as with the Summary API),
//! `*_memory_working_set_bytes` becomes `memory/working_set`, `container_start_time_seconds`
//! the container's start time (truncated to whole seconds, as the Summary API reports it, so
//! switching endpoint is not mistaken for a restart). Each sample's millisecond timestamp is
//! the sample time of its group (samples without one take the parse time, i.e. the scrape).
//! Everything else the Summary API has (memory usage, rss, page faults, network, filesystems,
//! system containers, node and pod start times) is simply absent. Swap
//! (`*_swap_usage_bytes`, alpha) is ignored: the model has no swap metric.
//! `resource_scrape_error 1` is reported in [`ResourceSample::scrape_error`]; the values that
//! are there are still used.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_parse::{Sample, Scrape, Value as PromValue};

use crate::model::sample::{NodeSample, RawSet, SampleTimes};
use crate::model::time::NANOS_PER_SEC;
use crate::model::{Metric, MetricSet, Nanos, SetKey, Value};

/// Why a `/metrics/resource` body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body is not UTF-8 text.
    #[error("body is not UTF-8")]
    NotUtf8,
    /// Nothing in the body is a kubelet resource metric (e.g. an HTML error page).
    #[error("no kubelet resource metrics in the body")]
    NoMetrics,
}

/// One kubelet's `/metrics/resource`, decoded.
#[derive(Clone, Debug)]
pub struct ResourceSample {
    pub sample: NodeSample,
    /// The kubelet reported `resource_scrape_error 1` (some container stats are missing).
    pub scrape_error: bool,
}

/// One entity's newest cpu and memory samples: (value, sample time).
#[derive(Default)]
struct Acc {
    cpu: Option<(f64, Nanos)>,
    memory: Option<(f64, Nanos)>,
    start: Option<f64>,
}

/// Keeps the newer of two samples (ties: the later line), as the Summary decoder does.
fn newer(slot: &mut Option<(f64, Nanos)>, value: f64, time: Nanos) {
    if slot.is_none_or(|(_, t)| time >= t) {
        *slot = Some((value, time));
    }
}

#[derive(Clone, Copy)]
enum Field {
    Cpu,
    Memory,
    Start,
}

impl Acc {
    fn put(&mut self, field: Field, value: f64, time: Nanos) {
        match field {
            Field::Cpu => newer(&mut self.cpu, value, time),
            Field::Memory => newer(&mut self.memory, value, time),
            Field::Start => self.start = Some(value),
        }
    }
}

/// A finite, non-negative float as an integer (rounded), else `None`.
fn whole(v: f64) -> Option<i64> {
    (v.is_finite() && v >= 0.0 && v < i64::MAX as f64).then(|| v.round() as i64)
}

fn value(s: &Sample) -> f64 {
    match s.value {
        PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => v,
        PromValue::Histogram(_) | PromValue::Summary(_) => f64::NAN,
    }
}

fn millis_to_nanos(s: &Sample) -> Nanos {
    s.timestamp.timestamp_millis().saturating_mul(1_000_000)
}

/// One shared `Arc<str>` per distinct name.
fn intern<'a>(names: &mut BTreeMap<&'a str, Arc<str>>, name: &'a str) -> Arc<str> {
    Arc::clone(names.entry(name).or_insert_with(|| Arc::from(name)))
}

/// Builds the raw set of one entity.
fn finish(key: SetKey, node: &Arc<str>, acc: &Acc, fallback_time: Nanos) -> RawSet {
    let mut set = MetricSet::new(key, fallback_time);
    set.node = Some(Arc::clone(node));
    let mut times = SampleTimes::default();
    if let Some((v, t)) = acc.cpu
        && let Some(ns) = whole(v * NANOS_PER_SEC as f64)
    {
        set.set(Metric::CpuUsage, Value::Int(ns));
        times.cpu = Some(t);
    }
    if let Some((v, t)) = acc.memory
        && let Some(bytes) = whole(v)
    {
        set.set(Metric::MemoryWorkingSet, Value::Int(bytes));
        times.memory = Some(t);
    }
    if let Some(t) = times.cpu.or(times.memory) {
        set.scrape_time = t;
    }
    set.create_time = acc
        .start
        .and_then(|s| whole(s.floor()))
        .map(|s| s.saturating_mul(NANOS_PER_SEC));
    if let Some(start) = set.create_time
        && set.scrape_time >= start
    {
        set.set(
            Metric::Uptime,
            Value::Int((set.scrape_time - start) / 1_000_000),
        );
    }
    let own = set.values.mask();
    RawSet {
        set,
        times,
        own,
        pressure: Default::default(),
    }
}

/// Decodes one kubelet's `/metrics/resource`. `node` is the name the apiserver knows the node
/// by; `fallback_time` is the sample time of sets without any sample (the scrape time).
pub fn decode(
    body: &[u8],
    node: &Arc<str>,
    fallback_time: Nanos,
) -> Result<ResourceSample, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::NotUtf8)?;
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = Scrape::parse(lines).map_err(|_| DecodeError::NotUtf8)?;

    let mut node_acc = Acc::default();
    // Keys borrow from the parsed samples: no copies until the sets are built.
    let mut pods: BTreeMap<(&str, &str), Acc> = BTreeMap::new();
    let mut containers: BTreeMap<(&str, &str, &str), Acc> = BTreeMap::new();
    let mut scrape_error = false;
    let mut recognised = 0usize;
    for s in &scrape.samples {
        let (v, t) = (value(s), millis_to_nanos(s));
        let label = |name: &str| s.labels.get(name);
        let (scope, field) = match s.metric.as_str() {
            "node_cpu_usage_seconds_total" => (0, Field::Cpu),
            "node_memory_working_set_bytes" => (0, Field::Memory),
            "pod_cpu_usage_seconds_total" => (1, Field::Cpu),
            "pod_memory_working_set_bytes" => (1, Field::Memory),
            "container_cpu_usage_seconds_total" => (2, Field::Cpu),
            "container_memory_working_set_bytes" => (2, Field::Memory),
            "container_start_time_seconds" => (2, Field::Start),
            "resource_scrape_error" => {
                scrape_error |= v != 0.0;
                continue;
            }
            _ => continue,
        };
        let acc = match scope {
            0 => &mut node_acc,
            1 => {
                let (Some(ns), Some(pod)) = (label("namespace"), label("pod")) else {
                    continue;
                };
                pods.entry((ns, pod)).or_default()
            }
            _ => {
                let (Some(ns), Some(pod), Some(c)) =
                    (label("namespace"), label("pod"), label("container"))
                else {
                    continue;
                };
                containers.entry((ns, pod, c)).or_default()
            }
        };
        acc.put(field, v, t);
        recognised += 1;
    }
    if recognised == 0 && !scrape_error {
        return Err(DecodeError::NoMetrics);
    }

    let mut sets = Vec::with_capacity(1 + pods.len() + containers.len());
    let node_key = SetKey::Node {
        node: Arc::clone(node),
    };
    sets.push(finish(node_key, node, &node_acc, fallback_time));
    // Namespace and pod names are shared by their sets.
    let mut names: BTreeMap<&str, Arc<str>> = BTreeMap::new();
    for ((ns, pod), acc) in pods {
        let key = SetKey::Pod {
            namespace: intern(&mut names, ns),
            pod: intern(&mut names, pod),
        };
        sets.push(finish(key, node, &acc, fallback_time));
    }
    for ((ns, pod, container), acc) in containers {
        let key = SetKey::PodContainer {
            namespace: intern(&mut names, ns),
            pod: intern(&mut names, pod),
            container: Arc::from(container),
        };
        sets.push(finish(key, node, &acc, fallback_time));
    }
    Ok(ResourceSample {
        sample: NodeSample {
            node: Arc::clone(node),
            sets,
        },
        scrape_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_750_705_768_415;

    fn node() -> Arc<str> {
        Arc::from("n1")
    }

    fn find<'a>(s: &'a ResourceSample, key: &SetKey) -> &'a RawSet {
        s.sample
            .sets
            .iter()
            .find(|r| &r.set.key == key)
            .unwrap_or_else(|| panic!("no set {key:?}"))
    }

    #[test]
    fn maps_every_metric_and_keeps_absent_absent() {
        let body = format!(
            "# TYPE node_cpu_usage_seconds_total counter\n\
             node_cpu_usage_seconds_total 12.5 {T}\n\
             container_cpu_usage_seconds_total{{container=\"c\",namespace=\"ns\",pod=\"p\"}} 1.000000001 {T}\n\
             container_memory_working_set_bytes{{container=\"c\",namespace=\"ns\",pod=\"p\"}} 1.7391616e+07 {}\n\
             container_start_time_seconds{{container=\"c\",namespace=\"ns\",pod=\"p\"}} 1.7507e+09\n\
             container_swap_usage_bytes{{container=\"c\",namespace=\"ns\",pod=\"p\"}} 0 {T}\n\
             resource_scrape_error 1\n",
            T + 5
        );
        let s = decode(body.as_bytes(), &node(), 7).expect("decodes");
        assert!(s.scrape_error);
        let n = find(&s, &SetKey::Node { node: node() });
        assert_eq!(
            n.set.get(Metric::CpuUsage),
            Some(Value::Int(12_500_000_000))
        );
        assert_eq!(n.set.get(Metric::MemoryWorkingSet), None, "absent, not 0");
        assert_eq!(n.times.cpu, Some(T * 1_000_000));
        assert_eq!(n.times.memory, None);
        assert_eq!(n.set.scrape_time, T * 1_000_000);
        let c = find(
            &s,
            &SetKey::PodContainer {
                namespace: Arc::from("ns"),
                pod: Arc::from("p"),
                container: Arc::from("c"),
            },
        );
        assert_eq!(c.set.get(Metric::CpuUsage), Some(Value::Int(1_000_000_001)));
        assert_eq!(
            c.set.get(Metric::MemoryWorkingSet),
            Some(Value::Int(17_391_616))
        );
        assert_eq!(c.times.memory, Some((T + 5) * 1_000_000));
        assert_eq!(c.set.create_time, Some(1_750_700_000 * NANOS_PER_SEC));
        assert!(c.set.get(Metric::Uptime).is_some());
        assert_eq!(
            c.own,
            Metric::mask(&[Metric::CpuUsage, Metric::MemoryWorkingSet, Metric::Uptime])
        );
        // No pod samples: no pod set here (aggregation creates it from its containers).
        assert_eq!(s.sample.sets.len(), 2);
    }

    #[test]
    fn newest_duplicate_wins_and_bad_values_are_dropped() {
        let body = format!(
            "pod_cpu_usage_seconds_total{{namespace=\"ns\",pod=\"p\"}} 5 {}\n\
             pod_cpu_usage_seconds_total{{namespace=\"ns\",pod=\"p\"}} 4 {T}\n\
             pod_memory_working_set_bytes{{namespace=\"ns\",pod=\"p\"}} NaN {T}\n\
             pod_memory_working_set_bytes{{pod=\"no-namespace\"}} 1 {T}\n",
            T + 1
        );
        let s = decode(body.as_bytes(), &node(), 7).expect("decodes");
        let p = find(
            &s,
            &SetKey::Pod {
                namespace: Arc::from("ns"),
                pod: Arc::from("p"),
            },
        );
        assert_eq!(p.set.get(Metric::CpuUsage), Some(Value::Int(5_000_000_000)));
        assert_eq!(p.set.get(Metric::MemoryWorkingSet), None);
        let n = find(&s, &SetKey::Node { node: node() });
        assert_eq!(n.set.scrape_time, 7, "no samples: the fallback time");
        assert!(n.set.values.is_empty());
    }

    #[test]
    fn bodies_without_resource_metrics_fail() {
        for body in [
            &b"<html><body>this is not the text you are looking for</body></html>\n"[..],
            b"",
            b"# HELP x y\nsome_other_metric 1\n",
        ] {
            assert!(matches!(
                decode(body, &node(), 0),
                Err(DecodeError::NoMetrics)
            ));
        }
        assert!(matches!(
            decode(b"\xff\xfe", &node(), 0),
            Err(DecodeError::NotUtf8)
        ));
    }
}
