//! `heapster-sim`: runs a simulated cluster (fake apiserver + kubelets on loopback) until SIGINT
//! or SIGTERM, for benchmarks and demos. Prints the apiserver URL on stdout (unless it serves
//! kubelets only), then lines `kubelet_port=PORT` (every kubelet listens on that port of its own
//! loopback address), `block=B` (the first `127.B.0.0/16` block of the kubelets' addresses) and
//! `start_unix=SECS` (when the nodes started).
//!
//! A cluster too large for one process's open-files limit is split: one process runs
//! `--serve apiserver`, others `--serve kubelets --node-range A..B`, all with the same
//! `--nodes`, `--block`, `--kubelet-port` and `--start-unix` (the first kubelet process may pick
//! the block and port, and the others take what it printed).

use std::ops::Range;
use std::path::PathBuf;

use clap::{CommandFactory, Parser, ValueEnum};
use heapster_rs::sim::{KubeletFault, SimAuth, SimCluster, SimLayout, SimOptions, SimServe};

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
    /// Which servers to run: `all`, the `apiserver` alone (needs --block and --kubelet-port),
    /// or the `kubelets` of --node-range alone.
    #[arg(long, value_enum, default_value_t = Serve::All)]
    serve: Serve,
    /// With `--serve kubelets`: the node indexes to serve, `A..B` (B excluded) [default: all].
    #[arg(long, value_parser = parse_range)]
    node_range: Option<Range<usize>>,
    /// The first `127.B.0.0/16` block of the kubelets' addresses; clusters of more than 64,000
    /// nodes go on into the next blocks [default: random].
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=250))]
    block: Option<u8>,
    /// The port every kubelet listens on [default: a free one].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    kubelet_port: Option<u16>,
    /// When the nodes and pods started, Unix seconds: the same in every process of one cluster
    /// [default: now minus --uptime].
    #[arg(long, conflicts_with = "uptime")]
    start_unix: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Serve {
    All,
    Apiserver,
    Kubelets,
}

fn parse_range(s: &str) -> Result<Range<usize>, String> {
    let (a, b) = s.split_once("..").ok_or("expected A..B")?;
    let a: usize = a.parse().map_err(|e| format!("bad start {a:?}: {e}"))?;
    let b: usize = b.parse().map_err(|e| format!("bad end {b:?}: {e}"))?;
    if a > b {
        return Err(format!("the start {a} is after the end {b}"));
    }
    Ok(a..b)
}

/// Descriptors kept free besides the kubelet listeners (apiserver, watches, logs).
const FILES_SPARE: u64 = 64;

/// Exits 2 with `message` (naming the flag) when the flags do not fit together.
fn check_flags(args: &Args) -> Result<SimServe, clap::Error> {
    let err =
        |message: String| Args::command().error(clap::error::ErrorKind::ArgumentConflict, message);
    if args.node_range.is_some() && args.serve != Serve::Kubelets {
        return Err(err("--node-range applies only with --serve kubelets".into()));
    }
    if args.https && args.serve != Serve::All {
        return Err(err(
            "--https needs --serve all: separate processes would each generate their own CA".into(),
        ));
    }
    let max_nodes = heapster_rs::sim::MAX_NODES;
    if args.nodes > max_nodes {
        return Err(err(format!(
            "--nodes {} is more than {max_nodes}",
            args.nodes
        )));
    }
    let blocks = heapster_rs::sim::blocks_for(args.nodes);
    if let Some(block) = args.block
        && usize::from(block) + blocks > 256
    {
        return Err(err(format!(
            "--block {block}: {} nodes take {blocks} blocks, so the first must be at most {}",
            args.nodes,
            256 - blocks
        )));
    }
    heapster_rs::app::startup::raise_open_files_limit();
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let listeners = match (args.serve, &args.node_range) {
        (Serve::Apiserver, _) => 0,
        (Serve::Kubelets, Some(range)) => range.len(),
        _ => args.nodes,
    };
    // Each kubelet holds its listener, and usually a kept-alive connection of the collector.
    if let Some(limit) = limit
        && listeners as u64 + FILES_SPARE > limit
    {
        return Err(err(format!(
            "--nodes {}: {listeners} kubelet listeners do not fit in this process's limit of \
             {limit} open files; split the kubelets over several processes (--serve kubelets \
             --node-range A..B, and one --serve apiserver)",
            args.nodes
        )));
    }
    Ok(match args.serve {
        Serve::All => SimServe::All,
        Serve::Apiserver => {
            if args.block.is_none() || args.kubelet_port.is_none() {
                return Err(err(
                    "--serve apiserver needs --block and --kubelet-port (those of the kubelet \
                     processes)"
                        .into(),
                ));
            }
            SimServe::ApiServer
        }
        Serve::Kubelets => {
            let range = args.node_range.clone().unwrap_or(0..args.nodes);
            if range.end > args.nodes {
                return Err(err(format!(
                    "--node-range {}..{} goes past --nodes {}",
                    range.start, range.end, args.nodes
                )));
            }
            SimServe::Kubelets(range)
        }
    })
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
    let serve = check_flags(&args).unwrap_or_else(|e| e.exit());
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
        serve: serve.clone(),
        layout: SimLayout {
            block: args.block,
            kubelet_port: args.kubelet_port,
            start_unix_secs: args.start_unix,
        },
    })
    .await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "cluster ready"
    );
    let kubelets_only = matches!(serve, SimServe::Kubelets(_));
    if let Some(path) = args.kubeconfig_out.as_ref().filter(|_| !kubelets_only) {
        std::fs::write(path, cluster.kubeconfig_yaml())?;
    }
    if let Some(dir) = &args.service_account_out {
        cluster.write_service_account_dir(dir)?;
    }
    if !kubelets_only {
        println!("{}", cluster.api_url());
    }
    println!("kubelet_port={}", cluster.kubelet_port());
    println!("block={}", cluster.block());
    println!("start_unix={}", cluster.start_unix_secs());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    cluster.shutdown().await;
    Ok(())
}
