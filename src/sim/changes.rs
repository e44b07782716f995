//! Runtime changes to a [`SimCluster`]: nodes added, removed, made (not) ready, containers
//! restarted; the apiserver stopped and started again. Each change takes the node table, then
//! the event log, and emits watch events.

use std::net::SocketAddr;

use super::cluster::new_node;
use super::serve;
use super::state::{self, Restart};
use super::watch::{node_event, pod_event};
use super::{SimCluster, SimError};
use crate::model::time::{NANOS_PER_SEC, align_down, now};

impl SimCluster {
    /// Adds a node (its pods start now) and starts its kubelet; returns its index.
    pub fn add_node(&self) -> usize {
        let cfg = &self.shared.cfg;
        let mut nodes = state::write(&self.shared.nodes);
        let index = nodes.len();
        let start = align_down(now(), NANOS_PER_SEC);
        let mut node = new_node(index, cfg.block, start, None);
        node.cancel = self.shared.cancel.child_token();
        let mut log = state::lock(&self.shared.log);
        node.rv = log.next_rv();
        node.created_rv = node.rv;
        log.push(node_event(cfg, "ADDED", &node));
        for p in 0..cfg.pods_per_node {
            let rv = log.next_rv();
            node.pod_rv.insert(p, rv);
            log.push(pod_event(cfg, "ADDED", &node, p, rv));
        }
        drop(log);
        let _guard = self.handle.enter();
        let started = serve::bind(SocketAddr::from((node.ip, cfg.kubelet_port)))
            .and_then(|listener| self.spawn_kubelet(&node, listener));
        if let Err(e) = started {
            tracing::warn!(node = %node.name, error = %e, "simulated kubelet not started");
        }
        nodes.push(node);
        index
    }

    /// Removes node `i` (its pods, then the node, are deleted) and stops its kubelet.
    pub fn remove_node(&self, i: usize) {
        let cfg = &self.shared.cfg;
        let mut nodes = state::write(&self.shared.nodes);
        let Some(node) = nodes.get_mut(i).filter(|n| !n.removed) else {
            return;
        };
        let mut log = state::lock(&self.shared.log);
        for p in 0..cfg.pods_per_node {
            let rv = log.next_rv();
            node.pod_rv.insert(p, rv);
            log.push(pod_event(cfg, "DELETED", node, p, rv));
        }
        node.rv = log.next_rv();
        log.push(node_event(cfg, "DELETED", node));
        node.removed = true;
        node.cancel.cancel();
    }

    /// Stops the apiserver, as a crash would: the listener closes and every open request,
    /// watches included, is dropped. Kubelets keep serving. Returns once the port is free.
    pub async fn stop_apiserver(&self) {
        let task = {
            let mut api = state::lock(&self.api);
            api.cancel.cancel();
            api.task.take()
        };
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Starts the apiserver again on the same address, with the same state (resource versions
    /// continue, so watches resume where they were).
    pub fn start_apiserver(&self) -> Result<(), SimError> {
        {
            let mut api = state::lock(&self.api);
            if !api.cancel.is_cancelled() {
                return Ok(());
            }
            api.cancel = self.shared.cancel.child_token();
        }
        let _guard = self.handle.enter();
        self.serve_apiserver(serve::bind(self.shared.cfg.api_addr)?)
    }

    /// Sets node `i`'s Ready condition (a MODIFIED event when it changes).
    pub fn set_ready(&self, i: usize, ready: bool) {
        let mut nodes = state::write(&self.shared.nodes);
        let Some(node) = nodes.get_mut(i).filter(|n| !n.removed && n.ready != ready) else {
            return;
        };
        node.ready = ready;
        let mut log = state::lock(&self.shared.log);
        node.rv = log.next_rv();
        log.push(node_event(&self.shared.cfg, "MODIFIED", node));
    }

    /// Restarts a container: a new start time (now, and at least a second after the previous
    /// one), counters from 0, restartCount + 1 (a MODIFIED pod event).
    pub fn restart_container(&self, node: usize, pod: usize, container: usize) {
        let cfg = &self.shared.cfg;
        if pod >= cfg.pods_per_node || container >= cfg.containers_per_pod {
            return;
        }
        let mut nodes = state::write(&self.shared.nodes);
        let Some(n) = nodes.get_mut(node).filter(|n| !n.removed) else {
            return;
        };
        let previous = n.container_start(pod, container);
        let at = align_down(now(), NANOS_PER_SEC).max(previous + NANOS_PER_SEC);
        let count = n.restart_count(pod, container) + 1;
        n.restarts.insert((pod, container), Restart { count, at });
        let mut log = state::lock(&self.shared.log);
        let rv = log.next_rv();
        n.pod_rv.insert(pod, rv);
        log.push(pod_event(cfg, "MODIFIED", n, pod, rv));
    }
}
