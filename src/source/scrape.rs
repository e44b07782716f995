//! One tick's fan-out: every node in parallel (bounded), each with its own timeout, a random
//! stagger, and a deadline for the whole tick. A failing node is counted and logged once; it
//! never delays or fails the others.

use std::collections::HashMap;
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
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use url::Url;

use super::kubelet::{KubeletClient, ScrapeError};
use super::summary;
use crate::model::cluster::NodeInfo;
use crate::model::time;
use crate::process::decode::{NodeSample, ResourceIds, decode_summary};

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
    /// Through the apiserver: `/api/v1/nodes/NAME/proxy/stats/summary`.
    Proxy { client: kube::Client },
}

impl Endpoint {
    /// The URL of a node's Summary API (for `Direct`).
    pub fn url(&self, node: &NodeInfo) -> Result<Url, ScrapeError> {
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
                    "{scheme}://{}:{port}/stats/summary",
                    NodeInfo::url_host(addr)
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
}

impl ScrapeMetrics {
    pub fn register(registry: &mut Registry) -> ScrapeMetrics {
        let m = ScrapeMetrics {
            requests: Family::default(),
            duration: Histogram::new(exponential_buckets(0.005, 2.0, 12)),
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
        m
    }
}

/// Scrapes all nodes of a tick.
pub struct Scraper {
    kubelet: KubeletClient,
    endpoint: Endpoint,
    concurrency: Arc<Semaphore>,
    stagger: Duration,
    ids: ResourceIds,
    metrics: ScrapeMetrics,
    /// Nodes currently failing, with the reason last logged (to log each failure once).
    failing: Mutex<HashMap<Arc<str>, &'static str>>,
}

/// What a tick's scrape produced.
pub struct ScrapeResult {
    pub samples: Vec<NodeSample>,
    pub failed: Vec<(Arc<str>, ScrapeError)>,
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
            concurrency: Arc::new(Semaphore::new(concurrency.max(1))),
            stagger,
            ids: ResourceIds::default(),
            metrics,
            failing: Mutex::new(HashMap::new()),
        }
    }

    /// Scrapes `nodes`; whatever has not answered by `deadline` is counted as failed.
    pub async fn scrape(
        self: &Arc<Self>,
        nodes: Vec<Arc<NodeInfo>>,
        deadline: Instant,
    ) -> ScrapeResult {
        let mut tasks = JoinSet::new();
        let mut pending: HashMap<tokio::task::Id, Arc<str>> = HashMap::with_capacity(nodes.len());
        for node in nodes {
            let me = Arc::clone(self);
            let name = Arc::clone(&node.name);
            let delay = if self.stagger.is_zero() {
                Duration::ZERO
            } else {
                rand::rng().random_range(Duration::ZERO..self.stagger)
            };
            let handle = tasks.spawn(async move {
                tokio::time::sleep(delay).await;
                let _permit = me.concurrency.acquire().await;
                let started = Instant::now();
                let result = me.scrape_node(&node).await;
                me.metrics.duration.observe(started.elapsed().as_secs_f64());
                (node, result)
            });
            pending.insert(handle.id(), name);
        }
        let mut out = ScrapeResult {
            samples: Vec::with_capacity(pending.len()),
            failed: Vec::new(),
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            match tokio::time::timeout_at(deadline, tasks.join_next_with_id()).await {
                Ok(Some(Ok((id, (node, result))))) => {
                    pending.remove(&id);
                    self.record(&node.name, &result);
                    match result {
                        Ok(sample) => out.samples.push(sample),
                        Err(e) => out.failed.push((Arc::clone(&node.name), e)),
                    }
                }
                Ok(Some(Err(join_err))) => {
                    if let Some(name) = pending.remove(&join_err.id()) {
                        let result: Result<(), _> =
                            Err(ScrapeError::Body(format!("scrape task failed: {join_err}")));
                        self.record(&name, &result);
                        if let Err(e) = result {
                            out.failed.push((name, e));
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    tasks.abort_all();
                    for (_, name) in pending.drain() {
                        self.record::<()>(&name, &Err(ScrapeError::Deadline));
                        out.failed.push((name, ScrapeError::Deadline));
                    }
                    break;
                }
            }
        }
        out
    }

    async fn scrape_node(&self, node: &NodeInfo) -> Result<NodeSample, ScrapeError> {
        let body = match &self.endpoint {
            Endpoint::Proxy { client } => self.fetch_proxy(client, &node.name).await?,
            direct => self.kubelet.fetch(&direct.url(node)?).await?,
        };
        let summary = summary::decode(&body).map_err(|e| ScrapeError::Decode(e.to_string()))?;
        Ok(decode_summary(&summary, &node.name, time::now(), &self.ids))
    }

    /// Through the apiserver's node proxy, with the same timeout and size cap.
    async fn fetch_proxy(&self, client: &kube::Client, node: &str) -> Result<Bytes, ScrapeError> {
        let opts = self.kubelet.options();
        let limit = opts.max_response_bytes;
        let path = format!("/api/v1/nodes/{node}/proxy/stats/summary");
        let req = http::Request::get(path)
            .body(kube::client::Body::empty())
            .map_err(|e| ScrapeError::Connect(e.to_string()))?;
        let fetch = async {
            let resp = client
                .send(req)
                .await
                .map_err(|e| ScrapeError::Connect(e.to_string()))?;
            if !resp.status().is_success() {
                return Err(ScrapeError::UnexpectedStatus {
                    status: resp.status().as_u16(),
                });
            }
            let mut body = resp.into_body();
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| ScrapeError::Body(e.to_string()))?;
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
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
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
                    tracing::warn!(node = %node, reason, error = %e, "kubelet scrape failed (logged once until it changes)");
                }
            }
        }
    }
}
