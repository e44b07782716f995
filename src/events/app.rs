//! [`EventerApp`]: the `eventer` process wired up (apiserver client from `--source`, sinks,
//! the [`Eventer`], `/healthz` and `/metrics`), startable in-process by tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{EventMetrics, EventSink, Eventer, EventerOptions};
use crate::api::{self, ApiState, health::Health};
use crate::app::Env;
use crate::config::EventerConfig;
use crate::source::apiserver;

/// Time the sinks get to deliver at shutdown.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(10);

/// A running eventer process.
pub struct EventerApp {
    /// Where `/healthz` and `/metrics` listen.
    pub addr: SocketAddr,
    pub registry: Arc<Registry>,
    pub metrics: EventMetrics,
    pub eventer: Eventer,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

impl EventerApp {
    /// Connects, binds the health port and starts watching. `opts` overrides the tuning
    /// (tests use a sub-second frequency); `None` takes it from the flags.
    pub async fn start(
        cfg: &EventerConfig,
        env: Env,
        opts: Option<EventerOptions>,
    ) -> anyhow::Result<EventerApp> {
        let opts = opts.unwrap_or(EventerOptions {
            frequency: cfg.frequency,
            max_buffered_events: cfg.max_buffered_events,
            ..EventerOptions::default()
        });
        let clients = apiserver::connect(&cfg.source, &*env).await?;
        let mut registry = Registry::with_prefix("eventer");
        let metrics = EventMetrics::register(&mut registry);
        let mut sinks = Vec::new();
        for (i, sink) in cfg.sinks.iter().enumerate() {
            let built = EventSink::from_config(sink, i, &mut registry)
                .map_err(|e| anyhow::anyhow!("sink: {e:#}"))?;
            sinks.extend(built);
        }
        let frequency_ns = i64::try_from(opts.frequency.as_nanos()).unwrap_or(i64::MAX);
        let health = Arc::new(Health::new(frequency_ns));
        health.waiting("listing events");
        let registry = Arc::new(registry);
        let listener = tokio::net::TcpListener::bind((cfg.healthz_ip, cfg.healthz_port)).await?;
        let addr = listener.local_addr()?;
        // No store: health and self-metrics only.
        let state = ApiState::new(Arc::clone(&health), Arc::clone(&registry), None, None);
        let router = api::plain_router(state, false);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let server = tokio::spawn(async move {
            let serve =
                axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "http server failed");
            }
        });
        tracing::info!(%addr, "serving /healthz and /metrics");
        let eventer = Eventer::start(clients.client, sinks, opts, metrics.clone(), Some(health));
        Ok(EventerApp {
            addr,
            registry,
            metrics,
            eventer,
            shutdown,
            server,
        })
    }

    /// A token that stops the eventer when cancelled (e.g. on SIGTERM).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Flushes what is buffered (within 10 s) and stops the server.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.eventer.stop(SHUTDOWN_BUDGET).await;
        let _ = self.server.await;
    }

    /// Runs until the shutdown token is cancelled, then stops.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.stop().await;
    }
}
