//! The outage benchmark (`heapster-bench --victoria-metrics --outage-after 2m --outage-for 10m`):
//! one simulated cluster and the collector writing to the private VictoriaMetrics; after the
//! warm-up and `after`, the database is killed (SIGKILL) and started again `down_for` later on
//! the same port and data, and the run goes on until the backlog is delivered: the spool empty,
//! nothing queued in memory, the delivery lag under one resolution.
//!
//! What it shows: whether any point was lost (`heapster_sink_dropped_points_total`, all
//! reasons, and the points sent against the points the ticks made), how large the spool grew,
//! how long the backlog took to drain, and the collector's peak resident set (the backlog is on
//! disk, so it should not grow with the outage).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::BenchError;
use super::child::{free_port, http_get};
use super::influxd::VictoriaMetrics;
use super::procfs;
use super::prom::Exposition;
use super::run::{Paths, Scenario, start_collector};
use super::simproc;

/// When the database goes down, for how long, and how long the drain may take.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// After the warm-up ticks.
    pub after: Duration,
    pub down_for: Duration,
    /// After the restart; past it the run ends undrained.
    pub drain_timeout: Duration,
}

/// The sink's state at one moment (seconds since the warm-up ended).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub ticks: u64,
    pub spool_bytes: f64,
    pub queued_points: f64,
    pub lag_s: f64,
    pub sent_points: f64,
    pub dropped_points: f64,
    pub rss_kib: u64,
}

impl Sample {
    fn read(m: &Exposition) -> Sample {
        // `+ 0.0`: an empty sum is -0.0.
        Sample {
            spool_bytes: m.sum("heapster_sink_spool_bytes") + 0.0,
            queued_points: m.sum("heapster_sink_queued_points") + 0.0,
            lag_s: m.sum("heapster_sink_delivery_lag_seconds") + 0.0,
            sent_points: m.sum("heapster_sink_sent_points_total") + 0.0,
            dropped_points: m.sum("heapster_sink_dropped_points_total") + 0.0,
            ..Sample::default()
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OutageReport {
    pub nodes: usize,
    pub sink: String,
    pub resolution_s: f64,
    pub ticks: u64,
    /// Points of every tick (the collector's `tick` log lines).
    pub points_made: f64,
    pub sent_points: f64,
    /// `heapster_sink_dropped_points_total` by reason at the end.
    pub dropped: Vec<(String, f64)>,
    pub dropped_total: f64,
    /// Made − sent − dropped − queued at the end: points still in the spool, or lost (0 once
    /// drained: every point made was sent or counted).
    pub unaccounted: f64,
    /// Bytes a tick takes, from the bytes per point sent before the outage (what each
    /// resolution of outage adds to the spool).
    pub bytes_per_tick: f64,
    pub killed_at_s: f64,
    pub restarted_at_s: f64,
    /// Seconds the database took to answer `/health` again.
    pub restart_took_s: f64,
    pub peak_spool_bytes: f64,
    pub peak_queued_points: f64,
    pub peak_lag_s: f64,
    /// After the restart: seconds until the spool was empty, and until the delivery lag was
    /// back under one resolution with the spool empty (`None`: not within the drain timeout).
    pub spool_empty_after_s: Option<f64>,
    pub caught_up_after_s: Option<f64>,
    /// VmHWM at the end, and the resident set just before the outage.
    pub peak_rss_kib: u64,
    pub rss_before_kib: u64,
    /// Collector CPU seconds from the end of the warm-up to the end.
    pub cpu_s: f64,
    pub samples: Vec<Sample>,
    pub load_start: String,
    pub load_end: String,
    pub incomplete: Option<String>,
}

/// Runs the scenario with the outage.
pub fn run(
    s: &Scenario,
    plan: &Plan,
    paths: &Paths,
    vm: &mut VictoriaMetrics,
) -> Result<OutageReport, BenchError> {
    let load_start = procfs::loadavg();
    let mut sim = simproc::start(s, paths, s.kubelet_processes())?;
    let metrics_port = free_port()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut collector = start_collector(s, paths, &sim, (0, metrics_port), tx)?;
    let scrape = || {
        http_get(metrics_port, "/metrics", Duration::from_secs(5))
            .map(|(_, body)| Exposition::parse(&body))
    };
    let pid = collector.pid();
    let mut r = OutageReport {
        nodes: s.nodes,
        sink: s
            .sink
            .as_deref()
            .and_then(|k| k.split_once(':'))
            .map_or("none".into(), |(kind, _)| kind.to_string()),
        resolution_s: s.resolution.as_secs_f64(),
        load_start,
        ..OutageReport::default()
    };
    let res = s.resolution.as_secs_f64();
    let deadline = Instant::now() + s.resolution * (s.warmup + 3) + Duration::from_secs(120);
    let mut start: Option<(Instant, f64)> = None;
    let mut killed: Option<Instant> = None;
    let mut restarted: Option<Instant> = None;
    let mut next_sample = Instant::now();
    let mut last = Sample::default();
    let mut last_tick_points = 0.0;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((_, line)) => {
                r.ticks += 1;
                r.points_made += line.points as f64;
                last_tick_points = line.points as f64;
                eprintln!(
                    "outage: tick {}: {} nodes, {} ms, {} points",
                    r.ticks, line.nodes, line.duration_ms, line.points
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                r.incomplete = Some("the collector closed its log".into());
                break;
            }
        }
        if !collector.running() {
            r.incomplete = Some("the collector exited".into());
            break;
        }
        let now = Instant::now();
        let Some((t0, cpu0)) = start else {
            if r.ticks >= u64::from(s.warmup) {
                let cpu = procfs::sample(pid).map_or(0.0, |u| u.cpu_seconds);
                start = Some((now, cpu));
            } else if now > deadline {
                r.incomplete = Some(format!("only {} warm-up ticks", r.ticks));
                break;
            }
            continue;
        };
        if now < next_sample {
            continue;
        }
        next_sample = now + Duration::from_secs(1);
        let Some(m) = scrape() else {
            continue;
        };
        let usage = procfs::sample(pid);
        last = Sample {
            t_s: now.duration_since(t0).as_secs_f64(),
            ticks: r.ticks,
            rss_kib: usage.map_or(0, |u| u.rss_kib),
            ..Sample::read(&m)
        };
        r.cpu_s = usage.map_or(0.0, |u| u.cpu_seconds) - cpu0;
        r.peak_rss_kib = r.peak_rss_kib.max(usage.map_or(0, |u| u.hwm_kib));
        r.peak_spool_bytes = r.peak_spool_bytes.max(last.spool_bytes);
        r.peak_queued_points = r.peak_queued_points.max(last.queued_points);
        r.peak_lag_s = r.peak_lag_s.max(last.lag_s);
        if r.samples.last().is_none_or(|p| last.t_s - p.t_s >= 30.0) {
            eprintln!(
                "outage: {:6.0}s  spool {:6.1} MiB  queued {:9.0}  lag {:6.1}s  sent {:11.0}  dropped {:.0}  rss {:.1} MiB",
                last.t_s,
                last.spool_bytes / 1048576.0,
                last.queued_points,
                last.lag_s,
                last.sent_points,
                last.dropped_points,
                last.rss_kib as f64 / 1024.0
            );
            r.samples.push(last);
        }
        match (killed, restarted) {
            (None, _) if now >= t0 + plan.after => {
                eprintln!("outage: killing victoria-metrics (SIGKILL)");
                r.rss_before_kib = last.rss_kib;
                let points = last.sent_points.max(1.0);
                r.bytes_per_tick =
                    m.sum("heapster_sink_sent_bytes_total") / points * last_tick_points;
                vm.kill();
                killed = Some(now);
                r.killed_at_s = last.t_s;
            }
            (Some(k), None) if now >= k + plan.down_for => {
                eprintln!("outage: starting victoria-metrics again");
                let asked = Instant::now();
                if let Err(e) = vm.start_again() {
                    r.incomplete = Some(format!("restarting victoria-metrics failed: {e}"));
                    break;
                }
                r.restart_took_s = asked.elapsed().as_secs_f64();
                restarted = Some(asked);
                r.restarted_at_s = asked.duration_since(t0).as_secs_f64();
            }
            (Some(_), Some(up)) => {
                let since = now.duration_since(up).as_secs_f64();
                if last.spool_bytes == 0.0 && r.spool_empty_after_s.is_none() {
                    r.spool_empty_after_s = Some(since);
                }
                if last.spool_bytes == 0.0 && last.lag_s < res && r.caught_up_after_s.is_none() {
                    r.caught_up_after_s = Some(since);
                }
                // Done once caught up and nothing is left in memory either.
                if r.caught_up_after_s.is_some() && last.queued_points == 0.0 {
                    break;
                }
                if now >= up + plan.drain_timeout {
                    r.incomplete = Some(format!(
                        "the backlog was not delivered within {:?} of the restart",
                        plan.drain_timeout
                    ));
                    break;
                }
            }
            _ => {}
        }
    }
    if let Some(m) = scrape() {
        let end = Sample::read(&m);
        r.sent_points = end.sent_points;
        r.dropped_total = end.dropped_points;
        r.dropped = m.labelled("heapster_sink_dropped_points_total");
        r.unaccounted = r.points_made - end.sent_points - end.dropped_points - end.queued_points;
    }
    r.samples.push(last);
    r.load_end = procfs::loadavg();
    collector.stop(Duration::from_secs(30));
    sim.stop(Duration::from_secs(15));
    Ok(r)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / 1048576.0)
}

fn secs(v: Option<f64>) -> String {
    v.map_or("not within the drain timeout".into(), |s| {
        format!("{s:.0} s")
    })
}

/// The report as Markdown: the figures, then the sink's state every 30 s.
pub fn table(r: &OutageReport) -> String {
    let mut out = format!(
        "## Outage: {} nodes, {} sink, {} s resolution\n\n\
         | | |\n|---|---|\n\
         | database killed / started again | {:.0} s / {:.0} s after the warm-up (up in {:.1} s) |\n\
         | ticks, points made | {}, {:.0} |\n\
         | points sent | {:.0} |\n\
         | points dropped (all reasons) | {:.0} {:?} |\n\
         | made − sent − dropped − queued (in the spool, or lost) | {:.0} |\n\
         | bytes sent per tick before the outage | {} |\n\
         | peak spool | {} |\n\
         | peak queued in memory | {:.0} points |\n\
         | peak delivery lag | {:.0} s |\n\
         | spool empty after the restart | {} |\n\
         | lag under one resolution after the restart | {} |\n\
         | collector RSS before the outage, peak (VmHWM) | {}, {} |\n\
         | collector CPU after the warm-up | {:.1} s |\n\
         | load (start → end) | {} → {} |\n",
        r.nodes,
        r.sink,
        r.resolution_s,
        r.killed_at_s,
        r.restarted_at_s,
        r.restart_took_s,
        r.ticks,
        r.points_made,
        r.sent_points,
        r.dropped_total,
        r.dropped,
        r.unaccounted,
        mib(r.bytes_per_tick),
        mib(r.peak_spool_bytes),
        r.peak_queued_points,
        r.peak_lag_s,
        secs(r.spool_empty_after_s),
        secs(r.caught_up_after_s),
        mib(r.rss_before_kib as f64 * 1024.0),
        mib(r.peak_rss_kib as f64 * 1024.0),
        r.cpu_s,
        r.load_start.split_whitespace().next().unwrap_or("?"),
        r.load_end.split_whitespace().next().unwrap_or("?"),
    );
    out.push_str(
        "\n| s | ticks | spool | queued points | lag s | sent | dropped | RSS |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for s in &r.samples {
        out.push_str(&format!(
            "| {:.0} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} |\n",
            s.t_s,
            s.ticks,
            mib(s.spool_bytes),
            s.queued_points,
            s.lag_s,
            s.sent_points,
            s.dropped_points,
            mib(s.rss_kib as f64 * 1024.0)
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
    fn table_reports_losses_spool_and_drain() {
        let m = Exposition::parse(
            "heapster_sink_spool_bytes{sink=\"influxdb\"} 1048576\n\
             heapster_sink_queued_points{sink=\"influxdb\"} 10\n\
             heapster_sink_delivery_lag_seconds{sink=\"influxdb\"} 40.2\n\
             heapster_sink_sent_points_total{sink=\"influxdb\"} 900\n",
        );
        let s = Sample::read(&m);
        assert_eq!(
            (
                s.spool_bytes,
                s.queued_points,
                s.lag_s,
                s.sent_points,
                s.dropped_points
            ),
            (1048576.0, 10.0, 40.2, 900.0, 0.0)
        );
        let r = OutageReport {
            nodes: 100,
            sink: "remotewrite".into(),
            resolution_s: 15.0,
            points_made: 1000.0,
            sent_points: 1000.0,
            peak_spool_bytes: 3.0 * 1048576.0,
            spool_empty_after_s: Some(61.2),
            samples: vec![s],
            ..OutageReport::default()
        };
        let t = table(&r);
        for line in [
            "## Outage: 100 nodes, remotewrite sink, 15 s resolution",
            "| points dropped (all reasons) | 0 [] |",
            "| peak spool | 3.0 MiB |",
            "| spool empty after the restart | 61 s |",
            "| lag under one resolution after the restart | not within the drain timeout |",
            "| 0 | 0 | 1.0 MiB | 10 | 40 | 900 | 0 | 0.0 MiB |",
        ] {
            assert!(t.contains(line), "{line:?} in {t}");
        }
    }
}
