//! Builds one node's `/metrics/resource` body (Prometheus text, as kubelet 1.30+ writes it)
//! from the same formulas and sample time as [`super::summary::render`]: at one instant both
//! endpoints report the same counters and working sets, and every sample carries the
//! second-truncated sample time in milliseconds.

use std::fmt::Write;

use super::formulas as f;
use super::state::{Config, NodeState};
use crate::model::Nanos;
use crate::model::time::{NANOS_PER_SEC, align_down};

fn elapsed_secs(sample: Nanos, start: Nanos) -> u64 {
    u64::try_from((sample - start) / NANOS_PER_SEC).unwrap_or(0)
}

/// Nanoseconds as exact decimal seconds (`12.000000345`).
fn seconds(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

struct Container {
    pod: usize,
    name: String,
    core_nanos: u64,
    working_set: u64,
    start: Nanos,
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} [STABLE] {help}\n# TYPE {name} {kind}");
}

/// Renders the `/metrics/resource` of `node` as sampled at `now` (truncated to whole seconds).
pub(crate) fn render(cfg: &Config, node: &NodeState, now: Nanos) -> Vec<u8> {
    let sample = align_down(now, NANOS_PER_SEC);
    let ms = sample / 1_000_000;
    let n = node.index;
    let node_elapsed = elapsed_secs(sample, node.start);

    let mut containers = Vec::with_capacity(cfg.pods_per_node * cfg.containers_per_pod);
    let mut pods = Vec::with_capacity(cfg.pods_per_node);
    let (mut node_nanos, mut node_ws) = (0u64, 0u64);
    for p in 0..cfg.pods_per_node {
        let (mut pod_nanos, mut pod_ws) = (0u64, 0u64);
        for c in 0..cfg.containers_per_pod {
            let start = node.container_start(p, c);
            let core_nanos = f::container_cpu_nanocores(n, p, c) * elapsed_secs(sample, start);
            let working_set = f::container_working_set_bytes(n, p, c);
            pod_nanos += core_nanos;
            pod_ws += working_set;
            containers.push(Container {
                pod: p,
                name: f::container_name(c),
                core_nanos,
                working_set,
                start,
            });
        }
        node_nanos += pod_nanos;
        node_ws += pod_ws;
        pods.push((p, pod_nanos, pod_ws));
    }
    for name in f::SYSTEM_CONTAINERS {
        node_nanos += f::system_container_cpu_nanocores(n, name) * node_elapsed;
        node_ws += f::system_container_working_set_bytes(n, name);
    }

    let labels = |pod: usize| {
        format!(
            "namespace=\"{}\",pod=\"{}\"",
            f::pod_namespace(pod),
            f::pod_name(n, pod)
        )
    };
    let mut out = String::with_capacity(256 + containers.len() * 600 + pods.len() * 300);
    let per_container = [
        (
            "container_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed by the container in core-seconds",
        ),
        (
            "container_memory_working_set_bytes",
            "gauge",
            "Current working set of the container in bytes",
        ),
        (
            "container_start_time_seconds",
            "gauge",
            "Start time of the container since unix epoch in seconds",
        ),
    ];
    for (i, (name, kind, help)) in per_container.into_iter().enumerate() {
        family(&mut out, name, kind, help);
        for c in &containers {
            let _ = write!(out, "{name}{{container=\"{}\",{}}} ", c.name, labels(c.pod));
            let _ = match i {
                0 => writeln!(out, "{} {ms}", seconds(c.core_nanos)),
                1 => writeln!(out, "{} {ms}", c.working_set),
                _ => writeln!(out, "{}", c.start / NANOS_PER_SEC),
            };
        }
    }
    family(
        &mut out,
        "node_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the node in core-seconds",
    );
    let _ = writeln!(
        out,
        "node_cpu_usage_seconds_total {} {ms}",
        seconds(node_nanos)
    );
    family(
        &mut out,
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
    );
    let _ = writeln!(out, "node_memory_working_set_bytes {node_ws} {ms}");
    let per_pod = [
        (
            "pod_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed by the pod in core-seconds",
        ),
        (
            "pod_memory_working_set_bytes",
            "gauge",
            "Current working set of the pod in bytes",
        ),
    ];
    for (i, (name, kind, help)) in per_pod.into_iter().enumerate() {
        family(&mut out, name, kind, help);
        for &(p, nanos, ws) in &pods {
            let _ = match i {
                0 => writeln!(out, "{name}{{{}}} {} {ms}", labels(p), seconds(nanos)),
                _ => writeln!(out, "{name}{{{}}} {ws} {ms}", labels(p)),
            };
        }
    }
    family(
        &mut out,
        "resource_scrape_error",
        "gauge",
        "1 if there was an error while getting container metrics, 0 otherwise",
    );
    out.push_str("resource_scrape_error 0\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(0), "0.000000000");
        assert_eq!(seconds(12_000_000_345), "12.000000345");
    }
}
