//! One benchmark run: a simulated cluster of one size, the collector (and peers) against it,
//! sampled until the wanted number of ticks has completed.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::BenchError;
use super::child::{Guarded, free_port, http_get};
use super::procfs::{self, Usage};
use super::prom::Exposition;

/// What to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub nodes: usize,
    pub pods_per_node: usize,
    pub containers_per_pod: usize,
    pub resolution: Duration,
    /// Ticks excluded from the measurement (the first one runs at start-up).
    pub warmup: u32,
    /// Ticks measured after the warm-up.
    pub cycles: u32,
    /// Kubelets and apiserver over TLS with a bearer token.
    pub https: bool,
    /// More `--source` options (`K=V&...`) for the collector.
    pub source_options: Option<String>,
    /// The collector's `--sink=` (`influxdb:URL`, `remotewrite:URL`) when set.
    pub sink: Option<String>,
    /// The private database's port, substituted for `{sink_port}` in peer command lines and
    /// collector flags.
    pub sink_port: Option<u16>,
    pub metric_history: String,
    /// More collector flags, as given.
    pub collector_args: Vec<String>,
    /// Peer command lines (`{api}`, `{kubelet_port}`, `{kubeconfig}`, `{sink_port}`
    /// substituted).
    pub peers: Vec<String>,
    /// Time allowed for the simulator to come up.
    pub startup_timeout: Duration,
    /// The simulator's `--uptime`: how long its pods have been running.
    pub sim_uptime: String,
}

impl Scenario {
    /// `text` with `{sink_port}` replaced by the private database's port.
    pub fn substitute(&self, text: &str) -> String {
        match self.sink_port {
            Some(port) => text.replace("{sink_port}", &port.to_string()),
            None => text.to_string(),
        }
    }
}

/// Where the binaries are and where logs go.
#[derive(Debug, Clone)]
pub struct Paths {
    pub sim: PathBuf,
    pub collector: PathBuf,
    pub work_dir: PathBuf,
}

/// One line `tick` of the collector's JSON log.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct TickLine {
    pub nodes: u64,
    pub failed: u64,
    pub duration_ms: u64,
    pub points: u64,
}

/// A tick as observed by the harness, with resource use sampled when its log line arrived.
#[derive(Debug, Clone)]
pub struct Observed {
    pub line: TickLine,
    pub at: Instant,
    /// Collector, simulator, then peers (None once exited).
    pub usage: Vec<Option<Usage>>,
}

/// Everything measured in one run, for the report.
#[derive(Debug)]
pub struct Measured {
    pub ticks: Vec<Observed>,
    /// Warm-up ticks at the start of `ticks`.
    pub warmup: u32,
    /// The collector's resident set every second after the warm-up, KiB.
    pub rss_timeline: Vec<u64>,
    pub metrics_before: Exposition,
    pub metrics_after: Exposition,
    pub load_start: String,
    pub load_end: String,
    pub wall: Duration,
    pub sim_start: Duration,
    pub peer_names: Vec<String>,
    /// Wanted ticks were not all seen before the deadline.
    pub incomplete: Option<String>,
}

fn parse_tick(line: &str) -> Option<TickLine> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    if v.get("message")?.as_str()? != "tick" {
        return None;
    }
    let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Some(TickLine {
        nodes: n("nodes"),
        failed: n("failed"),
        duration_ms: n("duration_ms"),
        points: n("points"),
    })
}

fn log_file(paths: &Paths, name: &str) -> Result<std::fs::File, BenchError> {
    std::fs::File::create(paths.work_dir.join(name)).map_err(BenchError::Io)
}

/// Starts the simulator; returns it with the apiserver URL, kubelet port and kubeconfig path.
pub(super) fn start_sim(
    s: &Scenario,
    paths: &Paths,
) -> Result<(Guarded, String, u16, PathBuf), BenchError> {
    let kubeconfig = paths.work_dir.join(format!("kubeconfig-{}", s.nodes));
    let mut cmd = Command::new(&paths.sim);
    cmd.arg(format!("--nodes={}", s.nodes))
        .arg(format!("--pods-per-node={}", s.pods_per_node))
        .arg(format!("--containers-per-pod={}", s.containers_per_pod))
        .arg(format!("--uptime={}", s.sim_uptime))
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(paths, &format!("sim-{}.log", s.nodes))?);
    if s.https {
        cmd.arg("--https")
            .env("HEAPSTER_SIM_TOKEN", "heapster-bench-token");
    }
    let mut sim = Guarded::spawn("heapster-sim", &mut cmd)?;
    let stdout = sim
        .child_mut()
        .and_then(|c| c.stdout.take())
        .ok_or_else(|| BenchError::NotReady {
            what: "heapster-sim".into(),
            detail: "no stdout".into(),
        })?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let not_ready = |detail: String| BenchError::NotReady {
        what: "heapster-sim".into(),
        detail,
    };
    let api = rx
        .recv_timeout(s.startup_timeout)
        .map_err(|e| not_ready(format!("no apiserver URL on stdout ({e})")))?;
    let port_line = rx
        .recv_timeout(Duration::from_secs(5))
        .map_err(|e| not_ready(format!("no kubelet_port line on stdout ({e})")))?;
    let port = port_line
        .strip_prefix("kubelet_port=")
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| not_ready(format!("unexpected line {port_line:?}")))?;
    Ok((
        sim,
        api.trim().trim_end_matches('/').to_string(),
        port,
        kubeconfig,
    ))
}

fn source_flag(s: &Scenario, api: &str, port: u16, kubeconfig: &std::path::Path) -> String {
    let flag = base_source_flag(s, api, port, kubeconfig);
    match s.source_options.as_deref() {
        Some(more) if !more.is_empty() => format!("{flag}&{more}"),
        _ => flag,
    }
}

fn base_source_flag(s: &Scenario, api: &str, port: u16, kubeconfig: &std::path::Path) -> String {
    if s.https {
        format!(
            "--source=kubernetes:?inClusterConfig=false&auth={}&kubeletPort={port}&kubeletHttps=true",
            kubeconfig.display()
        )
    } else {
        format!(
            "--source=kubernetes:{api}?inClusterConfig=false&kubeletPort={port}&kubeletHttps=false"
        )
    }
}

/// Starts the collector against the simulator (`api`, kubelet port, kubeconfig), serving on
/// `metrics_port`; returns it with a channel of its tick log lines (the log is kept in the work
/// directory).
pub(super) fn start_collector(
    s: &Scenario,
    paths: &Paths,
    (api, kubelet_port, kubeconfig): (&str, u16, &std::path::Path),
    metrics_port: u16,
) -> Result<(Guarded, mpsc::Receiver<TickLine>), BenchError> {
    let mut cmd = Command::new(&paths.collector);
    cmd.arg(source_flag(s, api, kubelet_port, kubeconfig))
        .arg(format!("--metric_resolution={}s", s.resolution.as_secs()))
        .arg(format!("--heapster-port={metrics_port}"))
        .arg("--listen_ip=127.0.0.1")
        .arg("--log-format=json")
        .arg(format!("--metric_history={}", s.metric_history))
        .args(s.collector_args.iter().map(|a| s.substitute(a)))
        .stdin(Stdio::null())
        .stdout(log_file(paths, &format!("collector-{}.out", s.nodes))?)
        .stderr(Stdio::piped());
    if let Some(sink) = &s.sink {
        cmd.arg(format!("--sink={sink}"));
    }
    let mut collector = Guarded::spawn("heapster", &mut cmd)?;
    let stderr = collector
        .child_mut()
        .and_then(|c| c.stderr.take())
        .ok_or_else(|| BenchError::NotReady {
            what: "heapster".into(),
            detail: "no stderr".into(),
        })?;
    let mut log = log_file(paths, &format!("collector-{}.log", s.nodes))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            if let Some(tick) = parse_tick(&line)
                && tx.send(tick).is_err()
            {
                break;
            }
        }
    });
    Ok((collector, rx))
}

/// Runs the scenario and returns the raw measurements.
pub fn run(s: &Scenario, paths: &Paths) -> Result<Measured, BenchError> {
    let load_start = procfs::loadavg();
    let started = Instant::now();
    let (mut sim, api, kubelet_port, kubeconfig) = start_sim(s, paths)?;
    let sim_start = started.elapsed();
    eprintln!(
        "bench: {} nodes up in {:.1}s at {api}, kubelet port {kubelet_port}",
        s.nodes,
        sim_start.as_secs_f64()
    );

    let metrics_port = free_port()?;
    let (mut collector, rx) =
        start_collector(s, paths, (&api, kubelet_port, &kubeconfig), metrics_port)?;

    let mut peers = Vec::new();
    for (i, peer) in s.peers.iter().enumerate() {
        let line = s
            .substitute(peer)
            .replace("{api}", &api)
            .replace("{kubelet_port}", &kubelet_port.to_string())
            .replace("{kubeconfig}", &kubeconfig.display().to_string());
        let out = log_file(paths, &format!("peer{i}-{}.log", s.nodes))?;
        let err = out.try_clone().map_err(BenchError::Io)?;
        peers.push(Guarded::spawn(
            &format!("peer {i}"),
            Command::new("sh")
                .arg("-c")
                .arg(format!("exec {line}"))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        )?);
    }

    let pids: Vec<u32> = [collector.pid(), sim.pid()]
        .into_iter()
        .chain(peers.iter().map(Guarded::pid))
        .collect();
    let sample_all = || pids.iter().map(|&p| procfs::sample(p)).collect::<Vec<_>>();

    let wanted = s.warmup + s.cycles;
    let budget = s.resolution * (wanted + 3) + Duration::from_secs(120);
    let deadline = Instant::now() + budget;
    let mut ticks: Vec<Observed> = Vec::new();
    let mut rss_timeline = Vec::new();
    let mut metrics_before = Exposition::default();
    let mut incomplete = None;
    let scrape = || {
        http_get(metrics_port, "/metrics", Duration::from_secs(5))
            .map(|(_, body)| Exposition::parse(&body))
            .unwrap_or_default()
    };
    while (ticks.len() as u32) < wanted {
        if Instant::now() > deadline {
            incomplete = Some(format!("deadline of {budget:?} passed"));
            break;
        }
        if !collector.running() {
            incomplete = Some("the collector exited".into());
            break;
        }
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(line) => {
                let usage = sample_all();
                ticks.push(Observed {
                    line,
                    at: Instant::now(),
                    usage,
                });
                eprintln!(
                    "bench: tick {} of {wanted}: {} nodes, {} failed, {} ms, {} points",
                    ticks.len(),
                    line.nodes,
                    line.failed,
                    line.duration_ms,
                    line.points
                );
                if ticks.len() as u32 == s.warmup {
                    metrics_before = scrape();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                incomplete = Some("the collector closed its log".into());
                break;
            }
        }
        if ticks.len() as u32 >= s.warmup
            && let Some(u) = procfs::sample(collector.pid())
        {
            rss_timeline.push(u.rss_kib);
        }
    }
    let metrics_after = scrape();
    // Final peak values: the tick samples already hold VmHWM; refresh the last one.
    if let Some(last) = ticks.last_mut() {
        for (slot, fresh) in last.usage.iter_mut().zip(sample_all()) {
            if let (Some(old), Some(new)) = (slot.as_mut(), fresh) {
                old.hwm_kib = new.hwm_kib;
            }
        }
    }
    let load_end = procfs::loadavg();
    let wall = started.elapsed();
    let peer_names = s.peers.clone();
    for p in &mut peers {
        p.stop(Duration::from_secs(10));
    }
    collector.stop(Duration::from_secs(15));
    sim.stop(Duration::from_secs(15));
    if ticks.len() as u32 <= s.warmup {
        return Err(BenchError::TooFewTicks {
            got: ticks.len() as u32,
            wanted,
            detail: incomplete.unwrap_or_default(),
        });
    }
    Ok(Measured {
        ticks,
        warmup: s.warmup,
        rss_timeline,
        metrics_before,
        metrics_after,
        load_start,
        load_end,
        wall,
        sim_start,
        peer_names,
        incomplete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_lines() {
        let line = r#"{"timestamp":"2025-01-01T00:00:00Z","level":"INFO","window_end":"x","nodes":100,"failed":2,"duration_ms":350,"points":9000,"message":"tick","target":"heapster_rs::app::tick"}"#;
        let t = parse_tick(line).expect("a tick");
        assert_eq!(
            (t.nodes, t.failed, t.duration_ms, t.points),
            (100, 2, 350, 9000)
        );
        assert!(parse_tick(r#"{"message":"other","nodes":1}"#).is_none());
        assert!(parse_tick("not json").is_none());
    }
}
