//! The soak benchmark (`heapster-bench --soak-minutes N`): one simulated cluster and the
//! collector for a long time, the private InfluxDB optionally killed and restarted every few
//! minutes (`--influxdb-restart-every`), and the collector's resident set sampled every minute.
//! The point is the shape of the series: it must stay flat (bounded buffers, no leak across
//! outages).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::BenchError;
use super::child::{free_port, http_get};
use super::influxd::Influxd;
use super::procfs;
use super::prom::Exposition;
use super::run::{Paths, Scenario, start_collector};
use super::simproc;

/// How long, and how often to restart InfluxDB and to sample.
#[derive(Debug, Clone)]
pub struct Soak {
    pub duration: Duration,
    /// Restart the private InfluxDB this often (`None`: never).
    pub restart_every: Option<Duration>,
    pub sample_every: Duration,
}

/// One sample of the collector.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub minute: f64,
    pub rss_kib: u64,
    /// Ticks completed so far.
    pub ticks: u64,
    /// Points held for InfluxDB at that moment, and dropped so far (oldest first).
    pub influxdb_buffered: f64,
    pub influxdb_dropped: f64,
    pub influxdb_restarts: u32,
}

/// The series, and why it ended early if it did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SoakReport {
    pub nodes: usize,
    pub samples: Vec<Sample>,
    pub influxdb_restarts: u32,
    pub influxdb_points_written: f64,
    pub incomplete: Option<String>,
}

/// Runs the soak; `influxd` is restarted when `soak.restart_every` is set.
pub fn run(
    s: &Scenario,
    soak: &Soak,
    paths: &Paths,
    mut influxd: Option<&mut Influxd>,
) -> Result<SoakReport, BenchError> {
    let mut sim = simproc::start(s, paths, s.kubelet_processes())?;
    let metrics_port = free_port()?;
    let (tx, rx) = mpsc::channel();
    let mut collector = start_collector(s, paths, &sim, (0, metrics_port), tx)?;
    let metrics = || {
        http_get(metrics_port, "/metrics", Duration::from_secs(5))
            .map(|(_, body)| Exposition::parse(&body))
            .unwrap_or_default()
    };
    let started = Instant::now();
    let end = started + soak.duration;
    let (stop, restarts) = (AtomicBool::new(false), AtomicU32::new(0));
    let pid = collector.pid();
    // Sampling and tick counting run on their own thread: restarting InfluxDB can take minutes
    // (reopening millions of series) and must not delay a sample.
    let (samples, mut incomplete, restart_error) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let rx = rx;
            let (mut samples, mut ticks, mut next_sample) =
                (Vec::new(), 0u64, started + soak.sample_every);
            loop {
                let now = Instant::now();
                if now >= next_sample || now >= end {
                    let Some(usage) = procfs::sample(pid) else {
                        return (samples, Some("the collector is gone".to_string()));
                    };
                    let m = metrics();
                    let sample = Sample {
                        minute: started.elapsed().as_secs_f64() / 60.0,
                        rss_kib: usage.rss_kib,
                        ticks,
                        // `+ 0.0`: an empty sum is -0.0.
                        influxdb_buffered: m.sum("heapster_influxdb_buffered_points") + 0.0,
                        influxdb_dropped: m.sum("heapster_influxdb_dropped_points_total") + 0.0,
                        influxdb_restarts: restarts.load(Ordering::Relaxed),
                    };
                    eprintln!(
                        "soak: {:5.1} min  rss {:8.1} MiB  ticks {:4}  influxdb buffered {:8}  dropped {:8}",
                        sample.minute,
                        sample.rss_kib as f64 / 1024.0,
                        ticks,
                        sample.influxdb_buffered,
                        sample.influxdb_dropped
                    );
                    samples.push(sample);
                    next_sample += soak.sample_every;
                }
                if now >= end || stop.load(Ordering::Relaxed) {
                    return (samples, None);
                }
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(_) => ticks += 1,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return (samples, Some("the collector closed its log".to_string()));
                    }
                }
            }
        });
        let mut next_restart = soak.restart_every.map(|every| started + every);
        let mut outcome = (None, None);
        while !sampler.is_finished() {
            let now = Instant::now();
            if now >= end {
                break;
            }
            if !collector.running() {
                outcome.0 = Some("the collector exited".to_string());
                break;
            }
            if let (Some(at), Some(i)) = (next_restart, influxd.as_deref_mut())
                && now >= at
            {
                eprintln!("soak: restarting influxd");
                if let Err(e) = i.restart() {
                    outcome.1 = Some(e);
                    break;
                }
                restarts.fetch_add(1, Ordering::Relaxed);
                next_restart = soak.restart_every.map(|every| at + every);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        stop.store(true, Ordering::Relaxed);
        let (samples, sampler_why) = sampler
            .join()
            .unwrap_or_else(|_| (Vec::new(), Some("the sampler panicked".to_string())));
        (samples, outcome.0.or(sampler_why), outcome.1)
    });
    if let Some(e) = restart_error {
        incomplete.get_or_insert(format!("restarting influxd failed: {e}"));
    }
    let restarts = restarts.into_inner();
    let written = metrics().sum("heapster_influxdb_points_written_total");
    collector.stop(Duration::from_secs(15));
    sim.stop(Duration::from_secs(15));
    Ok(SoakReport {
        nodes: s.nodes,
        samples,
        influxdb_restarts: restarts,
        influxdb_points_written: written,
        incomplete,
    })
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The series as Markdown, then start (the first sample, one minute in), middle, end, min and
/// max of the resident set.
pub fn table(r: &SoakReport) -> String {
    let mut out = format!(
        "## Soak: {} nodes, {} InfluxDB restarts, {:.0} points written\n\n\
         | minute | RSS | ticks | InfluxDB buffered | dropped |\n|---|---|---|---|---|\n",
        r.nodes, r.influxdb_restarts, r.influxdb_points_written
    );
    for s in &r.samples {
        out.push_str(&format!(
            "| {:.1} | {} | {} | {} | {} |\n",
            s.minute,
            mib(s.rss_kib),
            s.ticks,
            s.influxdb_buffered,
            s.influxdb_dropped
        ));
    }
    let warm = r.samples.as_slice();
    if let (Some(first), Some(last)) = (warm.first(), warm.last()) {
        let rss: Vec<u64> = warm.iter().map(|s| s.rss_kib).collect();
        let (min, max) = (
            rss.iter().min().copied().unwrap_or(0),
            rss.iter().max().copied().unwrap_or(0),
        );
        let middle = warm[warm.len() / 2].rss_kib;
        out.push_str(&format!(
            "\nRSS start {} (minute {:.1}), middle {}, end {}; min {}, max {}; end − start {:+.1} MiB\n",
            mib(first.rss_kib),
            first.minute,
            mib(middle),
            mib(last.rss_kib),
            mib(min),
            mib(max),
            (last.rss_kib as f64 - first.rss_kib as f64) / 1024.0
        ));
    }
    if let Some(why) = &r.incomplete {
        out.push_str(&format!("\nIncomplete: {why}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_reports_start_middle_end_min_max() {
        let sample = |minute: f64, rss_kib: u64| Sample {
            minute,
            rss_kib,
            ticks: 0,
            influxdb_buffered: 0.0,
            influxdb_dropped: 0.0,
            influxdb_restarts: 0,
        };
        let r = SoakReport {
            nodes: 100,
            samples: vec![sample(1.0, 10240), sample(2.0, 12288), sample(3.0, 11264)],
            influxdb_restarts: 2,
            influxdb_points_written: 5.0,
            incomplete: None,
        };
        let t = table(&r);
        assert!(
            t.contains(
                "RSS start 10.0 MiB (minute 1.0), middle 12.0 MiB, end 11.0 MiB; \
                 min 10.0 MiB, max 12.0 MiB; end − start +1.0 MiB"
            ),
            "{t}"
        );
        assert_eq!(
            t.matches("\n| ").count(),
            1 + 3,
            "the header and 3 rows: {t}"
        );
    }
}
