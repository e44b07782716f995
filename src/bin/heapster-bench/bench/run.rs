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
use super::simproc;

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
    /// Simulator processes serving kubelets (1: one process serves everything; more: plus
    /// one for the apiserver); `None` picks [`simproc::default_processes`].
    pub sim_processes: Option<usize>,
    /// Collectors run against the simulator, sharding the nodes when more than one.
    pub replicas: usize,
}

impl Scenario {
    /// Simulator processes serving kubelets in this run.
    pub fn kubelet_processes(&self) -> usize {
        self.sim_processes
            .unwrap_or_else(|| simproc::default_processes(self.nodes))
            .max(1)
    }
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

/// One line `tick` of the collector's JSON log (with several replicas: the sum of their lines
/// for one window, the longest duration).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct TickLine {
    /// The end of the tick's window, Unix nanoseconds (0 when absent).
    pub window_end: i64,
    pub nodes: u64,
    pub failed: u64,
    pub duration_ms: u64,
    pub points: u64,
}

impl TickLine {
    fn add(&mut self, other: &TickLine) {
        self.window_end = self.window_end.max(other.window_end);
        self.nodes += other.nodes;
        self.failed += other.failed;
        self.duration_ms = self.duration_ms.max(other.duration_ms);
        self.points += other.points;
    }
}

/// A tick as observed by the harness, with resource use sampled when its log line arrived.
#[derive(Debug, Clone)]
pub struct Observed {
    pub line: TickLine,
    pub at: Instant,
    /// Collectors (one per replica), simulator processes, then peers (None once exited).
    pub usage: Vec<Option<Usage>>,
}

/// Joins the replicas' tick lines into one per window: a window is complete once every replica
/// has reported it or a later one (a replica that overran a window skips it).
#[derive(Debug)]
struct Windows {
    latest: Vec<Option<i64>>,
    pending: std::collections::BTreeMap<i64, TickLine>,
}

impl Windows {
    fn new(replicas: usize) -> Self {
        Windows {
            latest: vec![None; replicas],
            pending: Default::default(),
        }
    }

    /// Adds replica `r`'s line; returns the windows now complete, oldest first.
    fn push(&mut self, r: usize, line: TickLine) -> Vec<TickLine> {
        if let Some(latest) = self.latest.get_mut(r) {
            *latest = Some(latest.map_or(line.window_end, |l| l.max(line.window_end)));
        }
        self.pending
            .entry(line.window_end)
            .or_insert_with(|| TickLine {
                window_end: line.window_end,
                ..TickLine::default()
            })
            .add(&line);
        let Some(done) = self.latest.iter().copied().min().flatten() else {
            return Vec::new();
        };
        let later = self.pending.split_off(&(done + 1));
        std::mem::replace(&mut self.pending, later)
            .into_values()
            .collect()
    }
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
    /// Collectors run (sharding when more than one).
    pub replicas: usize,
    /// Every tick line of each replica, in order.
    pub replica_ticks: Vec<Vec<TickLine>>,
    /// Simulator processes (the apiserver's first when split).
    pub sim_processes: usize,
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
    let window_end = v
        .get("window_end")
        .and_then(serde_json::Value::as_str)
        .and_then(heapster_rs::model::time::parse_rfc3339)
        .unwrap_or(0);
    Some(TickLine {
        window_end,
        nodes: n("nodes"),
        failed: n("failed"),
        duration_ms: n("duration_ms"),
        points: n("points"),
    })
}

pub(super) fn log_file(paths: &Paths, name: &str) -> Result<std::fs::File, BenchError> {
    std::fs::File::create(paths.work_dir.join(name)).map_err(BenchError::Io)
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

/// Flags of replica `replica` of `replicas` serving on `port`: none for a lone collector; with
/// several, the sharding flags (identity `r<i>`, its own address as the peers reach it).
fn sharding_flags(replica: usize, replicas: usize, port: u16) -> Vec<String> {
    if replicas <= 1 {
        return Vec::new();
    }
    vec![
        "--sharding=true".into(),
        format!("--sharding_identity=r{replica}"),
        "--sharding_namespace=kube-system".into(),
        format!("--sharding_address=http://127.0.0.1:{port}"),
    ]
}

/// Starts collector `replica` against the simulator, serving on `metrics_port`; its tick log
/// lines go to `ticks` tagged with `replica` (the log is kept in the work directory).
pub(super) fn start_collector(
    s: &Scenario,
    paths: &Paths,
    sim: &simproc::Sim,
    (replica, metrics_port): (usize, u16),
    ticks: mpsc::Sender<(usize, TickLine)>,
) -> Result<Guarded, BenchError> {
    let name = if s.replicas > 1 {
        format!("collector-{}-r{replica}", s.nodes)
    } else {
        format!("collector-{}", s.nodes)
    };
    let mut cmd = Command::new(&paths.collector);
    cmd.arg(source_flag(s, &sim.api, sim.kubelet_port, &sim.kubeconfig))
        .arg(format!("--metric_resolution={}s", s.resolution.as_secs()))
        .arg(format!("--heapster-port={metrics_port}"))
        .arg("--listen_ip=127.0.0.1")
        .arg("--log-format=json")
        .arg(format!("--metric_history={}", s.metric_history))
        .args(sharding_flags(replica, s.replicas, metrics_port))
        .args(s.collector_args.iter().map(|a| s.substitute(a)))
        .stdin(Stdio::null())
        .stdout(log_file(paths, &format!("{name}.out"))?)
        .stderr(Stdio::piped());
    if let Some(sink) = &s.sink {
        cmd.arg(format!("--sink={sink}"));
    }
    let mut collector = Guarded::spawn(&format!("heapster r{replica}"), &mut cmd)?;
    let stderr = collector
        .child_mut()
        .and_then(|c| c.stderr.take())
        .ok_or_else(|| BenchError::NotReady {
            what: "heapster".into(),
            detail: "no stderr".into(),
        })?;
    let mut log = log_file(paths, &format!("{name}.log"))?;
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            if let Some(tick) = parse_tick(&line)
                && ticks.send((replica, tick)).is_err()
            {
                break;
            }
        }
    });
    Ok(collector)
}

/// Runs the scenario and returns the raw measurements.
pub fn run(s: &Scenario, paths: &Paths) -> Result<Measured, BenchError> {
    let load_start = procfs::loadavg();
    let started = Instant::now();
    let mut sim = simproc::start(s, paths, s.kubelet_processes())?;
    let sim_start = started.elapsed();
    eprintln!(
        "bench: {} nodes up in {:.1}s at {} ({} simulator processes), kubelet port {}",
        s.nodes,
        sim_start.as_secs_f64(),
        sim.api,
        sim.procs.len(),
        sim.kubelet_port
    );

    let replicas = s.replicas.max(1);
    let (tx, rx) = mpsc::channel();
    let mut collectors = Vec::with_capacity(replicas);
    let mut ports = Vec::with_capacity(replicas);
    for r in 0..replicas {
        let port = free_port()?;
        collectors.push(start_collector(s, paths, &sim, (r, port), tx.clone())?);
        ports.push(port);
    }
    drop(tx);

    let mut peers = Vec::new();
    for (i, peer) in s.peers.iter().enumerate() {
        let line = s
            .substitute(peer)
            .replace("{api}", &sim.api)
            .replace("{kubelet_port}", &sim.kubelet_port.to_string())
            .replace("{kubeconfig}", &sim.kubeconfig.display().to_string());
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

    let collector_pids: Vec<u32> = collectors.iter().map(Guarded::pid).collect();
    let pids: Vec<u32> = collector_pids
        .iter()
        .copied()
        .chain(sim.pids())
        .chain(peers.iter().map(Guarded::pid))
        .collect();
    let sample_all = || pids.iter().map(|&p| procfs::sample(p)).collect::<Vec<_>>();

    let wanted = s.warmup + s.cycles;
    let budget = s.resolution * (wanted + 3) + Duration::from_secs(120);
    let deadline = Instant::now() + budget;
    let mut ticks: Vec<Observed> = Vec::new();
    let mut replica_ticks = vec![Vec::new(); replicas];
    let mut windows = Windows::new(replicas);
    let mut rss_timeline = Vec::new();
    let mut metrics_before = Exposition::default();
    let mut incomplete = None;
    let scrape = || {
        let mut all = Exposition::default();
        for &port in &ports {
            if let Some((_, body)) = http_get(port, "/metrics", Duration::from_secs(5)) {
                all.merge(&Exposition::parse(&body));
            }
        }
        all
    };
    while (ticks.len() as u32) < wanted {
        if Instant::now() > deadline {
            incomplete = Some(format!("deadline of {budget:?} passed"));
            break;
        }
        if let Some(c) = collectors
            .iter_mut()
            .find_map(|c| (!c.running()).then_some(&c.name))
        {
            incomplete = Some(format!("{c} exited"));
            break;
        }
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok((r, line)) => {
                replica_ticks[r].push(line);
                for line in windows.push(r, line) {
                    if ticks.len() as u32 >= wanted {
                        break;
                    }
                    ticks.push(Observed {
                        line,
                        at: Instant::now(),
                        usage: sample_all(),
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
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                incomplete = Some("the collectors closed their logs".into());
                break;
            }
        }
        if ticks.len() as u32 >= s.warmup {
            let rss: Option<Vec<u64>> = collector_pids
                .iter()
                .map(|&p| procfs::sample(p).map(|u| u.rss_kib))
                .collect();
            if let Some(rss) = rss {
                rss_timeline.push(rss.iter().sum());
            }
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
    for c in &mut collectors {
        c.stop(Duration::from_secs(15));
    }
    let sim_processes = sim.procs.len();
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
        replicas,
        replica_ticks,
        sim_processes,
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

    #[test]
    fn replicas_ticks_join_by_window() {
        let line = |window_end, nodes| TickLine {
            window_end,
            nodes,
            duration_ms: nodes * 10,
            ..TickLine::default()
        };
        let mut w = Windows::new(2);
        assert!(w.push(0, line(60, 3)).is_empty());
        let done = w.push(1, line(60, 4));
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].nodes, done[0].duration_ms), (7, 40));
        // Replica 1 skips window 120 (it overran): 120 completes when it reports 180.
        assert!(w.push(0, line(120, 3)).is_empty());
        assert!(w.push(0, line(180, 3)).is_empty());
        let done = w.push(1, line(180, 4));
        let seen: Vec<_> = done.iter().map(|t| (t.window_end, t.nodes)).collect();
        assert_eq!(seen, [(120, 3), (180, 7)]);
    }
}
