//! The simulated cluster of a run: one `heapster-sim` process, or (when the kubelets do not fit
//! in one process's open-files limit) several processes serving ranges of kubelets plus one
//! serving the apiserver, all given the same layout (`--block`, `--kubelet-port`,
//! `--start-unix`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::BenchError;
use super::child::Guarded;
use super::run::{Paths, Scenario, log_file};

/// Kubelets one simulator process serves at most by default. Each holds a listener and,
/// between scrapes, the kept-alive connection of the collector that scrapes it: two descriptors
/// a kubelet against a limit of 20,000 open files a process, with room to spare.
pub const KUBELETS_PER_PROCESS: usize = 9_000;

/// Simulator processes serving kubelets for `nodes` nodes by default (1: one process serves
/// everything).
pub fn default_processes(nodes: usize) -> usize {
    nodes.div_ceil(KUBELETS_PER_PROCESS).max(1)
}

/// The node index ranges of `processes` kubelet processes, as even as possible.
pub fn ranges(nodes: usize, processes: usize) -> Vec<std::ops::Range<usize>> {
    let processes = processes.clamp(1, nodes.max(1));
    let (base, extra) = (nodes / processes, nodes % processes);
    let mut start = 0;
    (0..processes)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let range = start..start + len;
            start += len;
            range
        })
        .collect()
}

/// The running simulator processes and where they serve.
pub struct Sim {
    /// The apiserver's process first (the only one when not split), then the kubelets'.
    pub procs: Vec<Guarded>,
    /// The apiserver, without a trailing slash.
    pub api: String,
    pub kubelet_port: u16,
    pub kubeconfig: PathBuf,
}

impl Sim {
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(Guarded::pid).collect()
    }

    pub fn stop(&mut self, grace: Duration) {
        for p in &mut self.procs {
            p.stop(grace);
        }
    }
}

/// A started `heapster-sim` and its stdout lines.
struct Started {
    proc: Guarded,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Started {
    /// The next stdout line, waiting until `deadline`.
    fn line(&self, deadline: Instant) -> Result<String, BenchError> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines
            .recv_timeout(left)
            .map_err(|e| BenchError::NotReady {
                what: self.name.clone(),
                detail: format!("stdout ended or timed out ({e})"),
            })
    }

    /// The value of the next `key=VALUE` line.
    fn value<T: std::str::FromStr>(&self, key: &str, deadline: Instant) -> Result<T, BenchError> {
        let line = self.line(deadline)?;
        line.strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| BenchError::NotReady {
                what: self.name.clone(),
                detail: format!("expected a line {key}=..., got {line:?}"),
            })
    }
}

fn spawn(
    s: &Scenario,
    paths: &Paths,
    name: &str,
    log: &str,
    extra: &[String],
) -> Result<Started, BenchError> {
    let mut cmd = Command::new(&paths.sim);
    cmd.arg(format!("--nodes={}", s.nodes))
        .arg(format!("--pods-per-node={}", s.pods_per_node))
        .arg(format!("--containers-per-pod={}", s.containers_per_pod))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file(paths, log)?);
    if s.https {
        cmd.arg("--https")
            .env("HEAPSTER_SIM_TOKEN", "heapster-bench-token");
    }
    let mut proc = Guarded::spawn(name, &mut cmd)?;
    let stdout = proc
        .child_mut()
        .and_then(|c| c.stdout.take())
        .ok_or_else(|| BenchError::NotReady {
            what: name.into(),
            detail: "no stdout".into(),
        })?;
    let (tx, lines) = mpsc::channel();
    // Reads to the end even once nobody listens: a closed pipe would fail the simulator's
    // later prints.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Ok(Started {
        proc,
        lines,
        name: name.into(),
    })
}

/// Starts the simulator: one process when `processes` is 1, else `processes` kubelet processes
/// (the first picks the block and port) and an apiserver process.
pub fn start(s: &Scenario, paths: &Paths, processes: usize) -> Result<Sim, BenchError> {
    let deadline = Instant::now() + s.startup_timeout;
    let kubeconfig = paths.work_dir.join(format!("kubeconfig-{}", s.nodes));
    let kubeconfig_arg = |args: &mut Vec<String>| {
        args.push("--kubeconfig-out".into());
        args.push(kubeconfig.display().to_string());
    };
    if processes <= 1 {
        let mut args = vec![format!("--uptime={}", s.sim_uptime)];
        kubeconfig_arg(&mut args);
        let sim = spawn(
            s,
            paths,
            "heapster-sim",
            &format!("sim-{}.log", s.nodes),
            &args,
        )?;
        let api = sim.line(deadline)?;
        let kubelet_port = sim.value("kubelet_port", deadline)?;
        return Ok(Sim {
            procs: vec![sim.proc],
            api: api.trim().trim_end_matches('/').to_string(),
            kubelet_port,
            kubeconfig,
        });
    }
    if s.https {
        return Err(BenchError::NotReady {
            what: "heapster-sim".into(),
            detail: "--https needs one simulator process (--sim-processes=1)".into(),
        });
    }
    let uptime = uptime_secs(&s.sim_uptime)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let start_unix = now.saturating_sub(uptime).to_string();
    let ranges = ranges(s.nodes, processes);
    let kubelets = |i: usize, layout: &[String]| {
        let r = &ranges[i];
        let mut args = vec![
            "--serve=kubelets".to_string(),
            format!("--node-range={}..{}", r.start, r.end),
            format!("--start-unix={start_unix}"),
        ];
        args.extend_from_slice(layout);
        spawn(
            s,
            paths,
            &format!("heapster-sim kubelets {}..{}", r.start, r.end),
            &format!("sim-{}-kubelets{i}.log", s.nodes),
            &args,
        )
    };
    let first = kubelets(0, &[])?;
    let kubelet_port: u16 = first.value("kubelet_port", deadline)?;
    let block: u8 = first.value("block", deadline)?;
    let layout = [
        format!("--block={block}"),
        format!("--kubelet-port={kubelet_port}"),
    ];
    let mut started = vec![first];
    for i in 1..ranges.len() {
        started.push(kubelets(i, &layout)?);
    }
    let mut args = vec![
        "--serve=apiserver".to_string(),
        format!("--start-unix={start_unix}"),
    ];
    args.extend_from_slice(&layout);
    kubeconfig_arg(&mut args);
    let api = spawn(
        s,
        paths,
        "heapster-sim apiserver",
        &format!("sim-{}-apiserver.log", s.nodes),
        &args,
    )?;
    let url = api.line(deadline)?;
    for k in &started[1..] {
        // Ready once it printed its port (the first one's was read above).
        k.value::<u16>("kubelet_port", deadline)?;
    }
    let procs = std::iter::once(api.proc)
        .chain(started.into_iter().map(|k| k.proc))
        .collect();
    Ok(Sim {
        procs,
        api: url.trim().trim_end_matches('/').to_string(),
        kubelet_port,
        kubeconfig,
    })
}

fn uptime_secs(s: &str) -> Result<u64, BenchError> {
    heapster_rs::config::parse_duration(s)
        .map(|d| d.as_secs())
        .map_err(|e| BenchError::NotReady {
            what: "heapster-sim".into(),
            detail: format!("bad simulator uptime {s:?}: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_node_once() {
        assert_eq!(ranges(10, 3), [0..4, 4..7, 7..10]);
        assert_eq!(ranges(65_000, default_processes(65_000)).len(), 8);
        assert_eq!(ranges(2, 5), [0..1, 1..2]);
        assert_eq!(default_processes(100), 1);
        assert_eq!(default_processes(9_001), 2);
    }
}
