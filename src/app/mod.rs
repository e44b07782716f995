//! Wiring: a validated [`Config`] → watchers, scraper, processor, sinks, HTTP server, and the
//! tick loop that drives them. [`App::start`] returns handles so tests run it in-process.

pub mod process;
mod shard;
pub mod simulated;
mod tick;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, health::Health};
use crate::config::{Config, KubernetesSource, SinkConfig, SourceConfig};
use crate::model::cluster::{ClusterReader, cluster_state};
use crate::model::labels::LabelPolicy;
use crate::model::replica::Peers;
use crate::shard::membership::{Membership, MembershipOptions};
use crate::shard::partials::PartialsBook;
use crate::shard::peer::{PeerClient, PeerMetrics, PeerOptions};
use crate::sink::delivery::SinkFamilies;
use crate::sink::influxdb::{DeliveryTuning, InfluxSink};
use crate::sink::kafka::KafkaSink;
use crate::sink::remotewrite::RemoteWriteSink;
use crate::sink::{FanOut, FanOutMetrics, log::LogSink};
use crate::source::apiserver;
use crate::source::credentials::TokenSource;
use crate::source::kubelet::{KubeletClient, KubeletClientOptions};
use crate::source::scrape::{Endpoint, ScrapeMetrics, Scraper};
use crate::source::watch;
use crate::store::{MetricSink, Store, StoreOptions};

/// Environment lookups (in-cluster variables), injected so tests never touch the process env.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment.
pub fn process_env() -> Env {
    Arc::new(|k: &str| std::env::var(k).ok())
}

/// A running collector.
pub struct App {
    /// Where the Heapster port listens.
    pub addr: SocketAddr,
    /// Where the secure port (`metrics.k8s.io`) listens, when `--secure_port` is set.
    pub secure_addr: Option<SocketAddr>,
    pub store: Option<Arc<Store>>,
    pub health: Arc<Health>,
    pub registry: Arc<Registry>,
    pub cluster: ClusterReader,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    /// The simulated cluster, when the source is `simulated:` (kept alive with the app).
    pub simulator: Option<simulated::Simulation>,
}

impl App {
    /// Builds everything and starts the tasks. Fails only on what cannot work at all (a port
    /// in use, unreadable credentials); an unreachable apiserver is retried.
    pub async fn start(cfg: Config, env: Env) -> anyhow::Result<App> {
        App::start_with_peers(cfg, env, None).await
    }

    /// [`App::start`], with the APIs answering for the whole cluster by asking `peers` (the
    /// other replicas) with a [`PeerClient`] built from `--peer_timeout` and `--peer_ca_file`.
    pub async fn start_with_peers(
        cfg: Config,
        env: Env,
        peers: Option<Arc<dyn Peers>>,
    ) -> anyhow::Result<App> {
        let mut registry = Registry::with_prefix("heapster");
        let health = Arc::new(Health::new(nanos(cfg.metric_resolution)));
        health.waiting("connecting to the apiserver");

        let (source, simulator) = match &cfg.source {
            SourceConfig::Kubernetes(k) => (k.clone(), None),
            SourceConfig::Simulated(s) => {
                let (k, sim) = simulated::start(s).await?;
                (k, Some(sim))
            }
        };
        let clients = apiserver::connect(&source, &*env).await?;
        let scraper = build_scraper(&cfg, &source, &clients, &mut registry)?;
        let shutdown = CancellationToken::new();
        let (cluster, synced) = start_watchers(&cfg, &clients.client, &shutdown);
        let (fanout, store) = build_sinks(&cfg, &mut registry)?;
        let peer_client = (cfg.sharding.is_some() || peers.is_some())
            .then(|| peer_client(&cfg, &source, &mut registry))
            .transpose()?;
        let (shard, partials) =
            build_shard(&cfg, &clients.client, peer_client.clone(), &mut registry)?;
        let eventer = start_events(&cfg, &clients.client, &mut registry)?;
        let tick_metrics = tick::TickMetrics::register(&mut registry);
        let authorizer = (cfg.secure.port != 0).then(|| {
            Arc::new(api::secure::kube::KubeAuthorizer::new(
                clients.client.clone(),
                &mut registry,
            ))
        });
        // The APIs ask the given peers (tests), else the membership's live replicas.
        let api_peers = peers.or_else(|| {
            let membership = Arc::clone(&shard.as_ref()?.membership);
            Some(membership as Arc<dyn Peers>)
        });
        let registry = Arc::new(registry);
        let mut api_state = ApiState::new(
            Arc::clone(&health),
            Arc::clone(&registry),
            store.clone(),
            Some(cluster.clone()),
        );
        api_state.partials = partials;
        if let (Some(peers), Some(client)) = (api_peers, peer_client) {
            api_state = api_state.with_peers(peers, client);
        }
        let (addr, secure_addr, server) =
            serve_apis(&cfg, api_state, authorizer, &shutdown).await?;

        let membership = shard
            .as_ref()
            .map(|s| tokio::spawn(Arc::clone(&s.membership).run(shutdown.child_token())));
        let looper = tick::TickLoop {
            resolution: cfg.metric_resolution,
            shard,
            scraper,
            cluster: cluster.clone(),
            synced,
            health: Arc::clone(&health),
            metrics: tick_metrics,
        };
        let stop = shutdown.clone();
        let shutdown_budget = cfg.shutdown_timeout;
        let task = tokio::spawn(async move {
            looper.run(&fanout, stop).await;
            if let Some(membership) = membership {
                let _ = membership.await;
            }
            tracing::info!(budget = ?shutdown_budget, "stopping: flushing sinks");
            fanout.shutdown(shutdown_budget).await;
            if let Some(eventer) = eventer {
                eventer.stop(shutdown_budget).await;
            }
            let _ = server.await;
        });
        Ok(App {
            addr,
            secure_addr,
            store,
            health,
            registry,
            cluster,
            shutdown,
            task,
            simulator,
        })
    }

    /// A token that stops the app when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops the tick loop, flushes the sinks within the configured budget, stops the server.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
        if let Some(sim) = self.simulator {
            sim.shutdown().await;
        }
    }

    /// Runs until the shutdown token is cancelled (e.g. by SIGTERM), then stops.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.stop().await;
    }
}

/// A duration in nanoseconds, saturated.
fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The client that asks the other replicas (for their aggregates' contributions and API
/// answers): the pod's service-account token (the one TokenReview knows this replica by) goes
/// to https peers; without the file, nothing is sent.
fn peer_client(
    cfg: &Config,
    source: &KubernetesSource,
    registry: &mut Registry,
) -> anyhow::Result<Arc<PeerClient>> {
    let opts = PeerOptions {
        ca_file: cfg.peers.ca_file.clone(),
        token: Some(TokenSource::file(source.service_account_dir.join("token"))),
        ..PeerOptions::new(cfg.peers.timeout)
    };
    let client = PeerClient::new(opts, PeerMetrics::register(registry))
        .map_err(|e| anyhow::Error::new(e).context("peer client"))?;
    if !client.verifies_peers() {
        tracing::warn!(
            "--peer_ca_file is not set: the other replicas' serving certificates are not \
             verified, so whoever answers at a replica's address (the Lease annotation \
             heapster.k8s.io/address) over https receives this replica's service-account \
             token; give the CA that signs their certificates with --peer_ca_file"
        );
    }
    Ok(Arc::new(client))
}

/// The kubelet client and the scraper, on the endpoint the source says.
fn build_scraper(
    cfg: &Config,
    source: &KubernetesSource,
    clients: &apiserver::ApiClients,
    registry: &mut Registry,
) -> anyhow::Result<Arc<Scraper>> {
    if source.kubelet_insecure_implied() {
        tracing::warn!(
            "insecure=true: kubelet serving certificates are not verified either (as in \
             Heapster); add kubeletInsecure=false to --source to verify them against the \
             cluster CA"
        );
    }
    let kubelet = KubeletClient::new(
        Arc::clone(&clients.kubelet),
        KubeletClientOptions {
            timeout: cfg.scrape_timeout,
            max_response_bytes: cfg.max_response_bytes,
            insecure: source.kubelet_insecure(),
            keep_alive: source.kubelet_keep_alive,
        },
    )
    .map_err(|e| anyhow::Error::new(e).context("kubelet client"))?;
    let endpoint = if source.node_proxy {
        Endpoint::Proxy {
            client: clients.client.clone(),
        }
    } else {
        Endpoint::Direct {
            https: source.kubelet_https,
            port: source.kubelet_port,
            address_types: source.address_types.iter().map(|a| a.as_str()).collect(),
        }
    };
    let stagger = cfg
        .metric_resolution
        .mul_f64(0.05)
        .min(Duration::from_secs(1));
    let scraper = Scraper::new(
        kubelet,
        endpoint,
        cfg.max_concurrent_scrapes,
        stagger,
        ScrapeMetrics::register(registry),
    );
    Ok(Arc::new(scraper.with_endpoint(source.kubelet_endpoint)))
}

/// The node and pod watchers, writing the cluster state that the returned handle reads; the
/// receiver says when their first lists are in.
fn start_watchers(
    cfg: &Config,
    client: &kube::Client,
    shutdown: &CancellationToken,
) -> (ClusterReader, tokio::sync::watch::Receiver<watch::Synced>) {
    let (writer, reader) = cluster_state();
    let policy = Arc::new(LabelPolicy::new(
        &cfg.label_separator,
        &cfg.ignore_labels,
        &cfg.store_labels,
    ));
    let (synced_tx, synced_rx) = tokio::sync::watch::channel(watch::Synced::default());
    spawn_until(
        shutdown,
        watch::watch_nodes(
            client.clone(),
            Arc::clone(&policy),
            writer.share(),
            synced_tx.clone(),
        ),
    );
    spawn_until(
        shutdown,
        watch::watch_pods(client.clone(), policy, writer, synced_tx),
    );
    (reader, synced_rx)
}

/// With `--sharding`: this replica's membership and share of the work, and the book of its
/// contributions that `/internal/shard/partials` serves.
fn build_shard(
    cfg: &Config,
    client: &kube::Client,
    peers: Option<Arc<PeerClient>>,
    registry: &mut Registry,
) -> anyhow::Result<(Option<shard::Shard>, Option<Arc<PartialsBook>>)> {
    let (Some(sharding), Some(peers)) = (&cfg.sharding, peers) else {
        return Ok((None, None));
    };
    let options = MembershipOptions {
        namespace: sharding.namespace.clone(),
        identity: sharding.identity.clone(),
        address: sharding.address.as_str().trim_end_matches('/').to_owned(),
        resolution: cfg.metric_resolution,
    };
    let membership = Membership::new(client.clone(), options, registry);
    let timeout = cfg.peers.timeout;
    let book = Arc::new(PartialsBook::new(timeout.mul_f64(0.8)));
    tracing::info!(
        identity = %sharding.identity,
        namespace = %sharding.namespace,
        address = %sharding.address,
        replication = sharding.replication,
        "sharding on: scraping this replica's share of the nodes"
    );
    let shard = shard::Shard::new(
        membership,
        sharding.replication,
        Arc::clone(&book),
        peers,
        timeout,
        shard::ShardMetrics::register(registry),
    );
    Ok((Some(shard), Some(book)))
}

/// The metric sinks behind two fan-outs (the store, which backs the APIs; the others), and the
/// store when `--sink=metric` is among them.
fn build_sinks(
    cfg: &Config,
    registry: &mut Registry,
) -> anyhow::Result<(tick::Sinks, Option<Arc<Store>>)> {
    let metrics = FanOutMetrics::register(registry);
    let mut local = FanOut::new(metrics.clone());
    let mut fanout = FanOut::new(metrics);
    let delivery = SinkFamilies::register(registry);
    // A tick's points may wait for room in a network sink's buffer until the next is due.
    let tuning = DeliveryTuning {
        room_wait: cfg.metric_resolution,
        ..DeliveryTuning::default()
    };
    let mut store = None;
    for sink in &cfg.sinks {
        match sink {
            SinkConfig::Metric => {
                let opts = StoreOptions {
                    history: nanos(cfg.metric_history),
                    resolution: nanos(cfg.metric_resolution),
                    limit: cfg.series_limit,
                    history_metrics: cfg.history_metrics,
                };
                let s = Arc::new(Store::new(opts, registry));
                local.add(MetricSink(Arc::clone(&s)), 4);
                store = Some(s);
            }
            SinkConfig::Log => fanout.add(LogSink::default(), 4),
            SinkConfig::InfluxDb(influx) => {
                let sink = InfluxSink::build(influx, &delivery, registry, tuning)
                    .map_err(|e| anyhow::Error::new(e).context("influxdb sink"))?;
                fanout.add(sink, 4);
            }
            SinkConfig::RemoteWrite(rw) => {
                let sink = RemoteWriteSink::build(rw, &delivery, tuning)
                    .map_err(|e| anyhow::Error::new(e).context("remotewrite sink"))?;
                fanout.add(sink, 4);
            }
            SinkConfig::Kafka(kafka) => {
                let sink = KafkaSink::build(kafka, &delivery, tuning)
                    .map_err(|e| anyhow::Error::new(e).context("kafka sink"))?;
                fanout.add(sink, 4);
            }
        }
    }
    let sinks = tick::Sinks {
        local,
        network: fanout,
    };
    Ok((sinks, store))
}

/// The Heapster port and, with `--secure_port`, the secure port; returns their addresses and
/// the plain server's task.
async fn serve_apis(
    cfg: &Config,
    api_state: ApiState,
    authorizer: Option<Arc<api::secure::kube::KubeAuthorizer>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(SocketAddr, Option<SocketAddr>, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind((cfg.listen_ip, cfg.heapster_port)).await?;
    let addr = listener.local_addr()?;
    let secure_addr = match authorizer {
        Some(authorizer) => Some(
            api::secure::serve(
                SocketAddr::new(cfg.listen_ip, cfg.secure.port),
                &cfg.secure,
                api_state.clone(),
                authorizer,
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let router = api::plain_router(api_state, cfg.plain_port_apis);
    let server_stop = shutdown.clone();
    let server = tokio::spawn(async move {
        let serve =
            axum::serve(listener, router).with_graceful_shutdown(server_stop.cancelled_owned());
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "http server failed");
        }
    });
    if cfg.plain_port_apis {
        tracing::info!(%addr, "serving /healthz, /metrics, the model API and metrics.k8s.io");
    } else {
        let apis = if cfg.secure.port == 0 {
            "served nowhere: set --secure_port to serve them with authentication"
        } else {
            "on the secure port only"
        };
        tracing::info!(
            %addr,
            "serving /healthz and /metrics (--plain_port_apis=false); the model API and \
             metrics.k8s.io {apis}"
        );
    }
    api::warn_if_plain_apis_exposed(addr, cfg.plain_port_apis);
    Ok((addr, secure_addr, server))
}

/// `--event_sink`: the eventer in this process (metrics under `heapster_eventer_`).
fn start_events(
    cfg: &Config,
    client: &kube::Client,
    registry: &mut Registry,
) -> anyhow::Result<Option<crate::events::Eventer>> {
    use crate::events::{EventMetrics, EventSink, Eventer, EventerOptions};
    if cfg.event_sinks.is_empty() {
        return Ok(None);
    }
    let registry = registry.sub_registry_with_prefix("eventer");
    let metrics = EventMetrics::register(registry);
    let mut sinks = Vec::new();
    for (i, sink) in cfg.event_sinks.iter().enumerate() {
        let built = EventSink::from_config(sink, i, registry)
            .map_err(|e| anyhow::anyhow!("event sink: {e:#}"))?;
        sinks.extend(built);
    }
    let opts = EventerOptions {
        frequency: cfg.metric_resolution.min(Duration::from_secs(30)),
        ..EventerOptions::default()
    };
    Ok(Some(Eventer::start(
        client.clone(),
        sinks,
        opts,
        metrics,
        None,
    )))
}

/// Spawns a task that ends with the app.
fn spawn_until<F>(token: &CancellationToken, fut: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let token = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = token.cancelled() => {}
            _ = fut => {}
        }
    });
}
