//! `heapster-bench`: end-to-end benchmark of the collector against a simulated cluster (see
//! BENCHMARKS.md). For each cluster size it starts `heapster-sim` (several processes when the
//! kubelets do not fit in one), the collector or several sharding replicas (and optional peer
//! collectors), waits for the warm-up and measured ticks, and prints tick and scrape times,
//! CPU per cycle and per node, peak memory and descriptors, plus the marginal cost per node
//! between sizes.

mod bench;

use std::path::PathBuf;
use std::time::Duration;

use crate::bench::influxd::{Influxd, VictoriaMetrics};
use crate::bench::report::{self, Summary};
use crate::bench::run::{self, Paths, Scenario};
use crate::bench::{outage, soak};
use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "heapster-bench",
    about = "End-to-end benchmark of the collector against a simulated cluster"
)]
struct Args {
    /// Cluster sizes to run, in order (e.g. 100,1000,5000).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    nodes: Vec<usize>,
    /// Pods per node.
    #[arg(long, default_value_t = 30)]
    pods_per_node: usize,
    /// Containers per pod.
    #[arg(long, default_value_t = 2)]
    containers_per_pod: usize,
    /// Collector resolution in seconds (`--metric_resolution`).
    #[arg(long, default_value_t = 15)]
    resolution: u64,
    /// Ticks measured after the warm-up.
    #[arg(long, default_value_t = 6)]
    cycles: u32,
    /// Ticks excluded at the start (the first tick runs at start-up, before rates exist).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    warmup: u32,
    /// How long the simulated pods have been running (`heapster-sim --uptime`): cumulative
    /// counters (cpu in ns, network bytes) are as large as a month-old pod's.
    #[arg(long, default_value = "720h")]
    sim_uptime: String,
    /// In-memory history (`--metric_history`).
    #[arg(long, default_value = "15m")]
    metric_history: String,
    /// Start a private InfluxDB (`influxd`) and write to it.
    #[arg(long, conflicts_with = "influxdb_url")]
    influxdb: bool,
    /// Start a private VictoriaMetrics and write to it through InfluxDB's 1.x write API: a
    /// database that keeps up with every point of large clusters on the same cores.
    #[arg(long, conflicts_with_all = ["influxdb", "influxdb_url", "soak_minutes"])]
    victoria_metrics: bool,
    /// Write to this InfluxDB sink URL (as in `--sink=influxdb:URL`).
    #[arg(long)]
    influxdb_url: Option<String>,
    /// With `--victoria-metrics`: write through Prometheus remote write
    /// (`--sink=remotewrite:http://127.0.0.1:PORT/api/v1/write`) instead of InfluxDB's API.
    #[arg(long, requires = "victoria_metrics")]
    remote_write: bool,
    /// More sink options (`K=V&...`) appended to the private database's sink URL, e.g.
    /// `concurrency=4&spool_bytes=4Gi`.
    #[arg(long, value_name = "K=V&...")]
    sink_options: Option<String>,
    /// The outage benchmark (with `--victoria-metrics`, first cluster size only): this long
    /// after the warm-up, kill the database (SIGKILL) ...
    #[arg(long, value_name = "DURATION", value_parser = duration, requires_all = ["victoria_metrics", "outage_for"])]
    outage_after: Option<Duration>,
    /// ... and start it again (same port and data) this much later; then run until the
    /// backlog is delivered. The sink gets a `spool_dir` in the work directory.
    #[arg(long, value_name = "DURATION", value_parser = duration, requires = "outage_after")]
    outage_for: Option<Duration>,
    /// How long after the restart the backlog may take to drain.
    #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "30m")]
    drain_timeout: Duration,
    /// Serve the simulated apiserver and kubelets over TLS with a bearer token.
    #[arg(long)]
    https: bool,
    /// More `--source` options appended to the collector's source URL, e.g.
    /// `kubeletKeepAlive=false`.
    #[arg(long, value_name = "K=V&...")]
    source_options: Option<String>,
    /// The simulator binary [default: heapster-sim next to this binary].
    #[arg(long)]
    sim: Option<PathBuf>,
    /// The collector binary [default: heapster next to this binary].
    #[arg(long)]
    collector: Option<PathBuf>,
    /// Another collector flag (repeatable), e.g. --collector-arg=--max_concurrent_scrapes=512.
    #[arg(long = "collector-arg", allow_hyphen_values = true)]
    collector_args: Vec<String>,
    /// Simulator processes serving kubelets (one more serves the apiserver when more than
    /// one) [default: enough that each holds at most 9,000 kubelets, within one process's
    /// open files with their collector's kept-alive connections].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    sim_processes: Option<u64>,
    /// Collectors run against the simulator; more than one shard the nodes between them
    /// (`--sharding=true`, identities r0, r1, ...).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    replicas: u64,
    /// A peer collector command line run against the same simulator (repeatable);
    /// `{api}`, `{kubelet_port}` and `{kubeconfig}` are substituted.
    #[arg(long = "peer-cmd")]
    peers: Vec<String>,
    /// Seconds allowed for the simulator to come up.
    #[arg(long, default_value_t = 600)]
    startup_timeout: u64,
    /// Directory for logs (kept) [default: a new directory under the temp dir].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Print JSON instead of Markdown tables.
    #[arg(long)]
    json: bool,
    /// Soak instead of measuring ticks: run the first cluster size for this many minutes,
    /// sampling the collector's resident set every minute (see BENCHMARKS.md).
    #[arg(long, conflicts_with = "replicas")]
    soak_minutes: Option<u64>,
    /// During a soak, kill and restart the private InfluxDB (`--influxdb`) this often.
    #[arg(long, value_name = "MINUTES", requires_all = ["soak_minutes", "influxdb"])]
    influxdb_restart_every: Option<u64>,
}

/// `90s`, `2m`, `1h`: a whole number and a unit.
fn duration(v: &str) -> Result<Duration, String> {
    let (n, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{v:?} is not a duration like 90s, 2m, 1h"))?;
    match unit {
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{v:?} is not a duration like 90s, 2m, 1h")),
    }
}

fn next_to_self(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this binary")?;
    Ok(exe.with_file_name(name))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let work_dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("heapster-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work_dir).with_context(|| format!("creating {work_dir:?}"))?;
    let paths = Paths {
        sim: match &args.sim {
            Some(p) => p.clone(),
            None => next_to_self("heapster-sim")?,
        },
        collector: match &args.collector {
            Some(p) => p.clone(),
            None => next_to_self("heapster")?,
        },
        work_dir: work_dir.clone(),
    };
    eprintln!("bench: logs in {}", work_dir.display());
    let mut influxd = if args.influxdb {
        Some(Influxd::start(&work_dir).context("starting influxd")?)
    } else {
        None
    };
    let mut vm = if args.victoria_metrics {
        Some(VictoriaMetrics::start(&work_dir).context("starting victoria-metrics")?)
    } else {
        None
    };
    let mut runs: Vec<Summary> = Vec::new();
    for &nodes in &args.nodes {
        let port = influxd
            .as_ref()
            .map(|i| i.port)
            .or(vm.as_ref().map(|v| v.port));
        let mut sink = match (port, &args.influxdb_url) {
            (Some(port), _) if args.remote_write => Some(format!(
                "remotewrite:http://127.0.0.1:{port}/api/v1/write?cluster_name=k8s_{nodes}"
            )),
            (Some(port), _) => Some(format!("influxdb:http://127.0.0.1:{port}?db=k8s_{nodes}")),
            (None, url) => url.as_ref().map(|u| format!("influxdb:{u}")),
        };
        if let Some(sink) = &mut sink {
            let mut more: Vec<String> = args.sink_options.iter().cloned().collect();
            if args.outage_after.is_some() {
                let dir = work_dir.join(format!("spool-{nodes}"));
                more.push(format!("spool_dir={}", dir.display()));
            }
            for option in more {
                sink.push(if sink.contains('?') { '&' } else { '?' });
                sink.push_str(&option);
            }
        }
        let scenario = Scenario {
            nodes,
            pods_per_node: args.pods_per_node,
            containers_per_pod: args.containers_per_pod,
            resolution: Duration::from_secs(args.resolution),
            warmup: args.warmup,
            cycles: args.cycles,
            https: args.https,
            source_options: args.source_options.clone(),
            sink,
            sink_port: port,
            metric_history: args.metric_history.clone(),
            collector_args: args.collector_args.clone(),
            peers: args.peers.clone(),
            startup_timeout: Duration::from_secs(args.startup_timeout),
            sim_uptime: args.sim_uptime.clone(),
            sim_processes: args.sim_processes.map(|k| k as usize),
            replicas: args.replicas as usize,
        };
        if let Some(minutes) = args.soak_minutes {
            let plan = soak::Soak {
                duration: Duration::from_secs(minutes * 60),
                restart_every: args
                    .influxdb_restart_every
                    .map(|m| Duration::from_secs(m * 60)),
                sample_every: Duration::from_secs(60),
            };
            let r = soak::run(&scenario, &plan, &paths, influxd.as_mut())?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", soak::table(&r));
            }
            return Ok(());
        }
        if let (Some(after), Some(down_for), Some(vm)) =
            (args.outage_after, args.outage_for, vm.as_mut())
        {
            let plan = outage::Plan {
                after,
                down_for,
                drain_timeout: args.drain_timeout,
            };
            let r = outage::run(&scenario, &plan, &paths, vm)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print!("{}", outage::table(&r));
            }
            return Ok(());
        }
        match run::run(&scenario, &paths) {
            Ok(measured) => {
                let summary = report::summarize(&scenario, &measured);
                eprintln!("{}", report::table(std::slice::from_ref(&summary)));
                runs.push(summary);
            }
            Err(e) => eprintln!("bench: {nodes} nodes failed: {:#}", anyhow::Error::from(e)),
        }
    }
    drop(influxd);
    drop(vm);
    if args.json {
        let marginals = report::marginals(&runs);
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "runs": runs,
                "marginals": marginals,
            }))?
        );
    } else {
        print!("{}", report::table(&runs));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(duration("2").is_err());
        assert!(duration("m").is_err());
        assert!(duration("1.5m").is_err());
    }
}
