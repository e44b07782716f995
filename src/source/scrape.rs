//! One tick's fan-out: every node in parallel (bounded), each with its own timeout, a random
//! stagger, and a deadline for the whole tick. A failing node is counted and logged once; it
//! never delays or fails the others.
//!
//! Which kubelet endpoint is asked follows `kubeletEndpoint` ([`KubeletEndpoint`]): with `auto`
//! a node whose `/stats/summary` answers 403 or 404 is scraped through `/metrics/resource` in the
//! same tick and, from then on, directly (summary is tried again every [`SUMMARY_RETRY`]). All
//! per-node state (that choice, failures already logged) is pruned to the nodes of each tick, so
//! it never outgrows the cluster, whatever the node churn.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rand::Rng;
use tokio::task::JoinSet;
use url::Url;

use super::decode::{NodeNames, ResourceIds, decode_summary_with};
use super::kubelet::{KubeletClient, ScrapeError, certificate_advice};
use super::{resource_metrics, summary};
use crate::certificate::Chain;
use crate::config::KubeletEndpoint;
use crate::model::cluster::NodeInfo;
use crate::model::sample::NodeSample;
use crate::model::time;

/// With `kubeletEndpoint=auto`, how long a node stays on `/metrics/resource` before summary is
/// tried again.
pub const SUMMARY_RETRY: Duration = Duration::from_secs(600);

/// A kubelet data endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `/stats/summary` (RBAC `nodes/stats`).
    Summary,
    /// `/metrics/resource` (RBAC `nodes/metrics`).
    Resource,
}

impl Api {
    pub const fn path(self) -> &'static str {
        match self {
            Api::Summary => "/stats/summary",
            Api::Resource => "/metrics/resource",
        }
    }
}

/// How to reach a node's kubelet.
#[derive(Clone)]
pub enum Endpoint {
    /// `scheme://address:port/stats/summary`. `port: None` means the node's advertised
    /// kubelet port (`status.daemonEndpoints.kubeletEndpoint.Port`, 10250 when unknown).
    Direct {
        https: bool,
        port: Option<u16>,
        address_types: Vec<&'static str>,
    },
    /// Through the apiserver: `/api/v1/nodes/NAME/proxy/stats/summary` (or `.../metrics/resource`).
    Proxy { client: kube::Client },
}

impl Endpoint {
    /// The URL of one of a node's data endpoints (for `Direct`).
    pub fn api_url(&self, node: &NodeInfo, api: Api) -> Result<Url, ScrapeError> {
        match self {
            Endpoint::Direct {
                https,
                port,
                address_types,
            } => {
                let addr = node.address(address_types).ok_or(ScrapeError::NoAddress)?;
                let port = port.unwrap_or(if node.kubelet_port != 0 {
                    node.kubelet_port
                } else {
                    10250
                });
                let scheme = if *https { "https" } else { "http" };
                Url::parse(&format!(
                    "{scheme}://{}:{port}{}",
                    NodeInfo::url_host(addr),
                    api.path()
                ))
                .map_err(|_| ScrapeError::NoAddress)
            }
            Endpoint::Proxy { .. } => Err(ScrapeError::NoAddress),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// Scrape self-metrics.
#[derive(Clone)]
pub struct ScrapeMetrics {
    requests: Family<Outcome, Counter>,
    duration: Histogram,
    fallbacks: Counter,
    resource_errors: Counter,
}

impl ScrapeMetrics {
    pub fn register(registry: &mut Registry) -> ScrapeMetrics {
        let m = ScrapeMetrics {
            requests: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
            fallbacks: Counter::default(),
            resource_errors: Counter::default(),
        };
        registry.register(
            "kubelet_requests",
            "Kubelet Summary API requests by outcome (success or the failure reason)",
            m.requests.clone(),
        );
        registry.register(
            "kubelet_request_duration_seconds",
            "Time to fetch and decode one kubelet's Summary API",
            m.duration.clone(),
        );
        registry.register(
            "kubelet_endpoint_fallbacks",
            "Nodes switched from /stats/summary to /metrics/resource (kubeletEndpoint=auto)",
            m.fallbacks.clone(),
        );
        registry.register(
            "kubelet_resource_scrape_errors",
            "Kubelet /metrics/resource answers with resource_scrape_error 1 (used anyway)",
            m.resource_errors.clone(),
        );
        m
    }
}

/// Scrapes all nodes of a tick.
pub struct Scraper {
    kubelet: KubeletClient,
    endpoint: Endpoint,
    /// Scrapes alive at once, decoded samples waiting for the caller included.
    concurrency: usize,
    stagger: Duration,
    ids: ResourceIds,
    metrics: ScrapeMetrics,
    /// Nodes currently failing, with the reason last logged (to log each failure once).
    failing: Mutex<HashMap<Arc<str>, &'static str>>,
    /// `kubeletEndpoint`.
    mode: KubeletEndpoint,
    /// With `auto`: nodes scraped through `/metrics/resource`, since when.
    on_resource: Mutex<HashMap<Arc<str>, Instant>>,
    /// Nodes whose last `/metrics/resource` reported `resource_scrape_error 1` (logged once).
    resource_errors: Mutex<HashSet<Arc<str>>>,
    /// The names each node's last Summary gave, shared with its next one.
    names: Mutex<HashMap<Arc<str>, NodeNames>>,
}

impl Scraper {
    pub fn new(
        kubelet: KubeletClient,
        endpoint: Endpoint,
        concurrency: usize,
        stagger: Duration,
        metrics: ScrapeMetrics,
    ) -> Scraper {
        Scraper {
            kubelet,
            endpoint,
            concurrency: concurrency.max(1),
            stagger,
            ids: ResourceIds::default(),
            metrics,
            failing: Mutex::new(HashMap::new()),
            mode: KubeletEndpoint::Summary,
            on_resource: Mutex::new(HashMap::new()),
            resource_errors: Mutex::new(HashSet::new()),
            names: Mutex::new(HashMap::new()),
        }
    }

    /// Chooses the kubelet endpoint (`kubeletEndpoint=`; default summary).
    pub fn with_endpoint(mut self, mode: KubeletEndpoint) -> Scraper {
        self.mode = mode;
        self
    }

    /// Scrapes `nodes`, handing each node's sample to `on_sample` as soon as it is decoded (in
    /// the caller's task, one at a time); returns the nodes that failed.
    ///
    /// At most `concurrency` scrapes are alive at once, and a scrape's slot is freed only when
    /// `on_sample` has taken its sample: when the caller falls behind, scrapes wait instead of
    /// piling up decoded samples, so a tick's transient memory does not grow with the cluster.
    /// Nodes start in the order of their random stagger delay.
    pub async fn scrape_each(
        self: &Arc<Self>,
        nodes: Vec<Arc<NodeInfo>>,
        deadline: Instant,
        mut on_sample: impl FnMut(NodeSample),
    ) -> Vec<(Arc<str>, ScrapeError)> {
        self.forget_other_nodes(&nodes);
        let mut order: Vec<(Duration, Arc<NodeInfo>)> = {
            let mut rng = rand::rng();
            nodes
                .into_iter()
                .map(|node| {
                    let delay = if self.stagger.is_zero() {
                        Duration::ZERO
                    } else {
                        rng.random_range(Duration::ZERO..self.stagger)
                    };
                    (delay, node)
                })
                .collect()
        };
        order.sort_by_key(|(delay, _)| *delay);
        let mut queue = order.into_iter();
        let start = tokio::time::Instant::now();
        let mut tasks = JoinSet::new();
        let mut pending: HashMap<tokio::task::Id, Arc<str>> =
            HashMap::with_capacity(self.concurrency.min(queue.len()));
        let mut failed = Vec::new();
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            while tasks.len() < self.concurrency {
                let Some((delay, node)) = queue.next() else {
                    break;
                };
                let me = Arc::clone(self);
                let name = Arc::clone(&node.name);
                let handle = tasks.spawn(async move {
                    tokio::time::sleep_until(start + delay).await;
                    let started = Instant::now();
                    let result = me.scrape_node(&node).await;
                    me.metrics.duration.observe(started.elapsed().as_secs_f64());
                    (node, result)
                });
                pending.insert(handle.id(), name);
            }
            match tokio::time::timeout_at(deadline, tasks.join_next_with_id()).await {
                Ok(Some(Ok((id, (node, result))))) => {
                    pending.remove(&id);
                    self.record(&node.name, &result);
                    match result {
                        Ok(sample) => on_sample(sample),
                        Err(e) => failed.push((Arc::clone(&node.name), e)),
                    }
                }
                Ok(Some(Err(join_err))) => {
                    if let Some(name) = pending.remove(&join_err.id()) {
                        let result: Result<(), _> = Err(ScrapeError::Task(join_err));
                        self.record(&name, &result);
                        if let Err(e) = result {
                            failed.push((name, e));
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    tasks.abort_all();
                    let late = pending.drain().map(|(_, name)| name);
                    let unstarted = queue.by_ref().map(|(_, node)| Arc::clone(&node.name));
                    for name in late.chain(unstarted).collect::<Vec<_>>() {
                        self.record::<()>(&name, &Err(ScrapeError::Deadline));
                        failed.push((name, ScrapeError::Deadline));
                    }
                    break;
                }
            }
        }
        failed
    }

    async fn scrape_node(&self, node: &NodeInfo) -> Result<NodeSample, ScrapeError> {
        if self.api_for(&node.name) == Api::Resource {
            return self.scrape_resource(node).await;
        }
        match self.scrape_summary(node).await {
            Err(ScrapeError::UnexpectedStatus {
                status: status @ (403 | 404),
            }) if self.mode == KubeletEndpoint::Auto => {
                let result = self.scrape_resource(node).await;
                if result.is_ok() {
                    let mut on = lock(&self.on_resource);
                    if on.insert(Arc::clone(&node.name), Instant::now()).is_none() {
                        self.metrics.fallbacks.inc();
                        tracing::info!(node = %node.name, status, "/stats/summary refused: using /metrics/resource for this node (cpu and memory only)");
                    }
                }
                result
            }
            result => {
                if result.is_ok() && lock(&self.on_resource).remove(&node.name).is_some() {
                    tracing::info!(node = %node.name, "/stats/summary works again for this node");
                }
                result
            }
        }
    }

    /// The endpoint to ask first for a node.
    fn api_for(&self, node: &Arc<str>) -> Api {
        match self.mode {
            KubeletEndpoint::Summary => Api::Summary,
            KubeletEndpoint::Resource => Api::Resource,
            KubeletEndpoint::Auto => match lock(&self.on_resource).get(node) {
                Some(since) if since.elapsed() < SUMMARY_RETRY => Api::Resource,
                _ => Api::Summary,
            },
        }
    }

    /// Keeps per-node state only for the nodes of this tick.
    fn forget_other_nodes(&self, nodes: &[Arc<NodeInfo>]) {
        let names: HashSet<&str> = nodes.iter().map(|n| &*n.name).collect();
        lock(&self.failing).retain(|n, _| names.contains(&**n));
        lock(&self.on_resource).retain(|n, _| names.contains(&**n));
        lock(&self.resource_errors).retain(|n| names.contains(&**n));
        lock(&self.names).retain(|n, _| names.contains(&**n));
    }

    async fn fetch(&self, node: &NodeInfo, api: Api) -> Result<Bytes, ScrapeError> {
        match &self.endpoint {
            Endpoint::Proxy { client } => self.fetch_proxy(client, &node.name, api).await,
            direct => self.kubelet.fetch(&direct.api_url(node, api)?).await,
        }
    }

    async fn scrape_summary(&self, node: &NodeInfo) -> Result<NodeSample, ScrapeError> {
        let body = self.fetch(node, Api::Summary).await?;
        let summary = summary::decode(&body).map_err(ScrapeError::Summary)?;
        // Taken out while decoding: the lock is not held across the decode.
        let mut names = lock(&self.names).remove(&node.name).unwrap_or_default();
        let sample = decode_summary_with(&summary, &node.name, time::now(), &self.ids, &mut names);
        lock(&self.names).insert(Arc::clone(&node.name), names);
        Ok(sample)
    }

    async fn scrape_resource(&self, node: &NodeInfo) -> Result<NodeSample, ScrapeError> {
        let body = self.fetch(node, Api::Resource).await?;
        let decoded = resource_metrics::decode(&body, &node.name, time::now())
            .map_err(ScrapeError::Resource)?;
        let mut errors = lock(&self.resource_errors);
        if decoded.scrape_error {
            self.metrics.resource_errors.inc();
            if errors.insert(Arc::clone(&node.name)) {
                tracing::warn!(node = %node.name, "kubelet reported resource_scrape_error 1: some container metrics are missing (logged once until it clears)");
            }
        } else {
            errors.remove(&node.name);
        }
        Ok(decoded.sample)
    }

    /// Through the apiserver's node proxy, with the same timeout and size cap.
    async fn fetch_proxy(
        &self,
        client: &kube::Client,
        node: &str,
        api: Api,
    ) -> Result<Bytes, ScrapeError> {
        let opts = self.kubelet.options();
        let limit = opts.max_response_bytes;
        let path = format!("/api/v1/nodes/{node}/proxy{}", api.path());
        let req = http::Request::get(path)
            .body(kube::client::Body::empty())
            .map_err(ScrapeError::ProxyRequest)?;
        let fetch = async {
            let resp = client.send(req).await.map_err(ScrapeError::Proxy)?;
            if !resp.status().is_success() {
                return Err(ScrapeError::UnexpectedStatus {
                    status: resp.status().as_u16(),
                });
            }
            let mut body = resp.into_body();
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(ScrapeError::ProxyBody)?;
                if let Some(data) = frame.data_ref() {
                    if buf.len() + data.len() > limit {
                        return Err(ScrapeError::TooLarge { limit });
                    }
                    buf.extend_from_slice(data);
                }
            }
            Ok(Bytes::from(buf))
        };
        tokio::time::timeout(opts.timeout, fetch)
            .await
            .unwrap_or(Err(ScrapeError::Timeout(opts.timeout)))
    }

    /// Counts the outcome and logs a node's failure once, and its recovery.
    fn record<T>(&self, node: &Arc<str>, result: &Result<T, ScrapeError>) {
        let mut failing = lock(&self.failing);
        match result {
            Ok(_) => {
                self.metrics
                    .requests
                    .get_or_create(&Outcome { outcome: "success" })
                    .inc();
                if failing.remove(node).is_some() {
                    tracing::info!(node = %node, "kubelet scrape recovered");
                }
            }
            Err(e) => {
                let reason = e.reason();
                self.metrics
                    .requests
                    .get_or_create(&Outcome { outcome: reason })
                    .inc();
                if failing.insert(Arc::clone(node), reason) != Some(reason) {
                    match e.certificate_problem() {
                        Some(problem) => {
                            let advice = certificate_advice(node, &problem);
                            tracing::warn!(node = %node, reason, "{advice} (logged once until it changes)");
                        }
                        None => {
                            tracing::warn!(node = %node, reason, error = %Chain(e), "kubelet scrape failed (logged once until it changes)");
                        }
                    }
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::kubelet::KubeletClientOptions;

    #[tokio::test]
    async fn failures_of_nodes_that_are_gone_are_forgotten() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let opts = KubeletClientOptions {
            timeout: Duration::from_secs(1),
            max_response_bytes: 1024,
            insecure: false,
            keep_alive: false,
        };
        let kubelet = KubeletClient::new(Arc::default(), opts).expect("client");
        let endpoint = Endpoint::Direct {
            https: false,
            port: Some(10255),
            address_types: vec!["InternalIP"],
        };
        let metrics = ScrapeMetrics::register(&mut Registry::default());
        let scraper = Arc::new(Scraper::new(kubelet, endpoint, 4, Duration::ZERO, metrics));
        // No address: fails at once, without any traffic.
        let node = Arc::new(NodeInfo {
            name: Arc::from("removed-node"),
            ..NodeInfo::default()
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let failed = scraper.scrape_each(vec![node], deadline, |_| {}).await;
        assert_eq!(failed.len(), 1);
        assert_eq!(lock(&scraper.failing).len(), 1);
        scraper.scrape_each(Vec::new(), deadline, |_| {}).await;
        assert!(lock(&scraper.failing).is_empty());
    }

    /// A kubelet on 127.0.0.1 that answers every request with an empty summary and counts the
    /// requests it has received.
    async fn counting_kubelet() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    let body = br#"{"node":{"nodeName":"n","startTime":"2024-01-01T00:00:00Z"},"pods":[]}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(body).await;
                });
            }
        });
        (port, count)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scrapes_wait_for_the_caller_to_take_their_samples() {
        use std::sync::atomic::Ordering;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (port, requests) = counting_kubelet().await;
        let opts = KubeletClientOptions {
            timeout: Duration::from_secs(10),
            max_response_bytes: 1 << 20,
            insecure: false,
            keep_alive: false,
        };
        let kubelet = KubeletClient::new(Arc::default(), opts).expect("client");
        let endpoint = Endpoint::Direct {
            https: false,
            port: Some(port),
            address_types: vec!["InternalIP"],
        };
        let metrics = ScrapeMetrics::register(&mut Registry::default());
        let concurrency = 3;
        let scraper = Arc::new(Scraper::new(
            kubelet,
            endpoint,
            concurrency,
            Duration::ZERO,
            metrics,
        ));
        let nodes: Vec<_> = (0..12)
            .map(|i| {
                Arc::new(NodeInfo {
                    name: Arc::from(format!("n{i}")),
                    addresses: vec![("InternalIP".to_owned(), "127.0.0.1".to_owned())],
                    ..NodeInfo::default()
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut taken = 0;
        let failed = scraper
            .scrape_each(nodes, deadline, |_| {
                // A slow caller: the other scrapes finish meanwhile, but no new one starts
                // until this sample is taken.
                std::thread::sleep(Duration::from_millis(30));
                let started = requests.load(Ordering::SeqCst);
                assert!(
                    started <= taken + concurrency,
                    "{started} requests with {taken} samples taken"
                );
                taken += 1;
            })
            .await;
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(taken, 12);
        assert_eq!(requests.load(Ordering::SeqCst), 12);
    }
}
