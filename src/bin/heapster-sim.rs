//! `heapster-sim`: runs a simulated cluster (fake apiserver + kubelets on loopback) until SIGINT
//! or SIGTERM, for benchmarks and demos. Prints the apiserver URL on stdout, then a line
//! `kubelet_port=PORT` (every kubelet listens on that port of its own loopback address).

use std::path::PathBuf;

use clap::Parser;
use heapster_rs::sim::{KubeletFault, SimAuth, SimCluster, SimOptions};

#[derive(Debug, Parser)]
#[command(
    name = "heapster-sim",
    about = "Simulated Kubernetes cluster on loopback"
)]
struct Args {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Pods per node.
    #[arg(long, default_value_t = 4)]
    pods_per_node: usize,
    /// Containers per pod.
    #[arg(long, default_value_t = 2)]
    containers_per_pod: usize,
    /// Serve the apiserver and kubelets over TLS (certificates from a generated CA).
    #[arg(long)]
    https: bool,
    /// Require this bearer token (with --https).
    #[arg(long, env = "HEAPSTER_SIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Require a client certificate signed by the generated CA (with --https).
    #[arg(long, conflicts_with = "token")]
    client_cert: bool,
    /// Kubelet certificates carry only a DNS SAN of the node name, like real kubelets.
    #[arg(long)]
    no_kubelet_ip_san: bool,
    /// A kubelet fault, `INDEX=KIND` with KIND one of hang, 500, garbage, truncated, huge:BYTES,
    /// slow, refuse, summary403, hugechunked:BYTES, gzipbomb:BYTES, wronghost. Repeatable.
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<(usize, KubeletFault)>,
    /// Node whose Ready condition is False. Repeatable.
    #[arg(long = "not-ready")]
    not_ready: Vec<usize>,
    /// Minor version reported by /version.
    #[arg(long, default_value_t = 33)]
    kubernetes_minor: u32,
    /// How long nodes and pods have been running at start-up (a Go duration, e.g. `720h`):
    /// their start times, and the size of their cumulative counters.
    #[arg(long, default_value = "0s", value_parser = parse_uptime)]
    uptime: u64,
    /// Write a kubeconfig for the cluster here.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Write a service-account directory (token, ca.crt, namespace) here.
    #[arg(long)]
    service_account_out: Option<PathBuf>,
}

fn parse_uptime(s: &str) -> Result<u64, String> {
    heapster_rs::config::parse_duration(s).map(|d| d.as_secs())
}

fn parse_fault(s: &str) -> Result<(usize, KubeletFault), String> {
    let (index, kind) = s.split_once('=').ok_or("expected INDEX=KIND")?;
    let index = index
        .parse()
        .map_err(|e| format!("bad node index {index:?}: {e}"))?;
    Ok((index, kind.parse()?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    if !args.https && (args.token.is_some() || args.client_cert) {
        tracing::warn!("--token and --client-cert only apply with --https; serving without auth");
    }
    let auth = match (&args.token, args.client_cert) {
        (Some(token), _) => SimAuth::Token(token.clone()),
        (None, true) => SimAuth::ClientCert,
        (None, false) => SimAuth::None,
    };
    let started = std::time::Instant::now();
    let cluster = SimCluster::start(SimOptions {
        nodes: args.nodes,
        pods_per_node: args.pods_per_node,
        containers_per_pod: args.containers_per_pod,
        https: args.https,
        auth,
        kubelet_cert_ip_san: !args.no_kubelet_ip_san,
        faults: args.faults,
        not_ready: args.not_ready,
        kubernetes_minor: args.kubernetes_minor,
        uptime_secs: args.uptime,
    })
    .await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "cluster ready"
    );
    if let Some(path) = &args.kubeconfig_out {
        std::fs::write(path, cluster.kubeconfig_yaml())?;
    }
    if let Some(dir) = &args.service_account_out {
        cluster.write_service_account_dir(dir)?;
    }
    println!("{}", cluster.api_url());
    println!("kubelet_port={}", cluster.kubelet_port());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    cluster.shutdown().await;
    Ok(())
}
