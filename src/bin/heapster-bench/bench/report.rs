//! Turns raw measurements into the figures BENCHMARKS.md reports (per node, and at the margin
//! between cluster sizes) and prints them as a Markdown table or JSON.

use std::fmt::Write as _;

use super::procfs::Usage;
use super::prom::{bucket_delta, quantile};
use super::run::{Measured, Scenario};

/// CPU and memory of one process over the measured cycles.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Resources {
    pub name: String,
    pub cpu_seconds_per_cycle: f64,
    /// CPU seconds per cycle / resolution, in millicores (the cost if every tick ran on time).
    pub mcpu: f64,
    pub mcpu_per_node: f64,
    /// CPU over the wall-clock window (differs from `mcpu` when ticks overrun the resolution).
    pub mcpu_wall: f64,
    /// VmHWM at the end (includes start-up).
    pub peak_rss_kib: u64,
    pub peak_rss_kib_per_node: f64,
    pub end_rss_kib: u64,
    /// Most open descriptors at a tick of the window.
    pub fds_max: u64,
}

/// One collector of several (sharding replicas).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Replica {
    pub resources: Resources,
    /// Its ticks in the measured window.
    pub ticks: usize,
    pub ticks_over_resolution: usize,
    pub tick_ms_max: u64,
    /// Nodes it scraped per tick, least and most.
    pub nodes_min: u64,
    pub nodes_max: u64,
}

/// The result of one run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub nodes: usize,
    pub pods: usize,
    pub containers: usize,
    pub resolution_s: f64,
    pub sink: String,
    pub https: bool,
    pub measured_ticks: usize,
    /// Wall-clock seconds of the measured window (cycles × resolution unless ticks overran).
    pub window_s: f64,
    pub tick_ms_p50: u64,
    pub tick_ms_p99: u64,
    pub tick_ms_max: u64,
    /// Ticks that took longer than the resolution.
    pub ticks_over_resolution: usize,
    pub scrape_ms_p50: Option<f64>,
    pub scrape_ms_p99: Option<f64>,
    /// Nodes scraped per tick (summed over the replicas of one window), least and most: with
    /// sharding, every node once per tick is `nodes` both.
    pub nodes_scraped_min: u64,
    pub nodes_scraped_max: u64,
    /// Scrapes a tick when every node is scraped by as many replicas as `--replication` asks
    /// (once without it).
    pub scrapes_expected: u64,
    pub nodes_failed_max: u64,
    pub kubelet_requests: Vec<(String, f64)>,
    pub points_per_cycle: f64,
    /// The sink's figures (any sink: `heapster_sink_*`, or `heapster_influxdb_*` from a
    /// collector older than the shared delivery layer), under their first names.
    pub influxdb_points_written_per_cycle: f64,
    /// Points the sink dropped over the whole run (`heapster_sink_dropped_points_total`).
    pub influxdb_dropped_points: f64,
    /// Points the sink dropped in the measured window, per cycle.
    pub influxdb_dropped_per_cycle: f64,
    /// Points in the sink's buffer at the end of the window, not yet written.
    pub influxdb_buffered_at_end: f64,
    /// The collector, or the sum over the replicas (peak RSS: the sum of their peaks).
    pub collector: Resources,
    /// Each replica when more than one ran.
    pub replicas: Vec<Replica>,
    /// Steady-state resident set after the warm-up: lowest, highest, last sampled (KiB).
    pub rss_steady_min_kib: u64,
    pub rss_steady_max_kib: u64,
    /// The simulator, or the sum over its processes.
    pub simulator: Resources,
    /// Each simulator process when it was split (the apiserver's first).
    pub sim_processes: Vec<Resources>,
    pub peers: Vec<Resources>,
    pub load_start: String,
    pub load_end: String,
    pub sim_start_s: f64,
    pub wall_s: f64,
    pub incomplete: Option<String>,
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The resources of the processes at `indexes` of the usage samples, summed.
fn resources(
    name: &str,
    m: &Measured,
    indexes: std::ops::Range<usize>,
    res_s: f64,
    nodes: usize,
) -> Resources {
    Resources {
        name: name.to_string(),
        ..Resources::default()
    }
    .with_window(m, indexes, res_s, nodes)
}

/// The sum of the usage of the processes at `indexes`, None if one had exited.
fn usage_sum(usage: &[Option<Usage>], indexes: std::ops::Range<usize>) -> Option<Usage> {
    let mut sum = Usage::default();
    for i in indexes {
        let u = usage.get(i).copied().flatten()?;
        sum.cpu_seconds += u.cpu_seconds;
        sum.rss_kib += u.rss_kib;
        sum.hwm_kib += u.hwm_kib;
        sum.fds += u.fds;
    }
    Some(sum)
}

impl Resources {
    fn with_window(
        mut self,
        m: &Measured,
        indexes: std::ops::Range<usize>,
        res_s: f64,
        nodes: usize,
    ) -> Resources {
        let usage = |i: usize| {
            m.ticks
                .get(i)
                .and_then(|t| usage_sum(&t.usage, indexes.clone()))
        };
        let warm = m.warmup_index();
        let last = m.ticks.len() - 1;
        if let (Some(a), Some(b)) = (usage(warm), usage(last)) {
            let cycles = (last - warm).max(1) as f64;
            self.cpu_seconds_per_cycle = (b.cpu_seconds - a.cpu_seconds) / cycles;
            self.mcpu = self.cpu_seconds_per_cycle / res_s * 1000.0;
            self.mcpu_per_node = self.mcpu / nodes as f64;
            let window = m.window_s();
            if window > 0.0 {
                self.mcpu_wall = (b.cpu_seconds - a.cpu_seconds) / window * 1000.0;
            }
            self.peak_rss_kib = b.hwm_kib;
            self.peak_rss_kib_per_node = b.hwm_kib as f64 / nodes as f64;
            self.end_rss_kib = b.rss_kib;
        }
        self.fds_max = (warm..=last)
            .filter_map(|i| usage(i).map(|u| u.fds))
            .max()
            .unwrap_or(0);
        self
    }
}

impl Measured {
    /// Wall-clock seconds of the measured window (end of warm-up to the last tick).
    fn window_s(&self) -> f64 {
        match (self.ticks.get(self.warmup_index()), self.ticks.last()) {
            (Some(a), Some(b)) => b.at.duration_since(a.at).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Index of the tick the measured window starts at (the last warm-up tick).
    fn warmup_index(&self) -> usize {
        (self.warmup as usize)
            .saturating_sub(1)
            .min(self.ticks.len().saturating_sub(1))
    }
}

/// Computes the summary of one run.
pub fn summarize(s: &Scenario, m: &Measured) -> Summary {
    let res_s = s.resolution.as_secs_f64();
    let warm = m.warmup_index();
    let measured: Vec<_> = m.ticks.iter().skip(warm + 1).map(|t| t.line).collect();
    let mut durations: Vec<u64> = measured.iter().map(|t| t.duration_ms).collect();
    durations.sort_unstable();
    let name = "heapster_kubelet_request_duration_seconds";
    let scrape = bucket_delta(
        &m.metrics_before.buckets(name),
        &m.metrics_after.buckets(name),
    );
    let requests_before = m.metrics_before.labelled("heapster_kubelet_requests_total");
    let kubelet_requests = m
        .metrics_after
        .labelled("heapster_kubelet_requests_total")
        .into_iter()
        .map(|(label, v)| {
            let old = requests_before
                .iter()
                .find(|(l, _)| *l == label)
                .map_or(0.0, |(_, o)| *o);
            (label, v - old)
        })
        .collect();
    let delta = |n: &str| m.metrics_after.sum(n) - m.metrics_before.sum(n);
    // The delivery layer's `heapster_sink_*`, or the InfluxDB sink's older names (a collector
    // built before it).
    let sink_metric = |new: &'static str, old: &'static str| {
        if m.metrics_after.has(new) { new } else { old }
    };
    let written = sink_metric(
        "heapster_sink_sent_points_total",
        "heapster_influxdb_points_written_total",
    );
    let dropped = sink_metric(
        "heapster_sink_dropped_points_total",
        "heapster_influxdb_dropped_points_total",
    );
    let queued = sink_metric(
        "heapster_sink_queued_points",
        "heapster_influxdb_buffered_points",
    );
    let cycles = measured.len().max(1) as f64;
    let steady = &m.rss_timeline;
    let reps = m.replicas.max(1);
    let peers_at = reps + m.sim_processes;
    Summary {
        nodes: s.nodes,
        pods: s.nodes * s.pods_per_node,
        containers: s.nodes * s.pods_per_node * s.containers_per_pod,
        resolution_s: res_s,
        sink: s
            .sink
            .as_deref()
            .and_then(|k| k.split_once(':'))
            .map_or("none".into(), |(kind, _)| kind.to_string()),
        https: s.https,
        measured_ticks: measured.len(),
        window_s: m.window_s(),
        tick_ms_p50: percentile(&durations, 0.5),
        tick_ms_p99: percentile(&durations, 0.99),
        tick_ms_max: durations.last().copied().unwrap_or(0),
        ticks_over_resolution: durations
            .iter()
            .filter(|&&d| d as f64 > res_s * 1000.0)
            .count(),
        scrape_ms_p50: quantile(&scrape, 0.5).map(|v| v * 1000.0),
        scrape_ms_p99: quantile(&scrape, 0.99).map(|v| v * 1000.0),
        nodes_scraped_min: measured.iter().map(|t| t.nodes).min().unwrap_or(0),
        nodes_scraped_max: measured.iter().map(|t| t.nodes).max().unwrap_or(0),
        scrapes_expected: s.nodes as u64 * replication(&s.collector_args).min(reps) as u64,
        nodes_failed_max: measured.iter().map(|t| t.failed).max().unwrap_or(0),
        kubelet_requests,
        points_per_cycle: measured.iter().map(|t| t.points as f64).sum::<f64>() / cycles,
        influxdb_points_written_per_cycle: delta(written) / cycles,
        influxdb_dropped_points: m.metrics_after.sum(dropped),
        influxdb_dropped_per_cycle: delta(dropped) / cycles,
        influxdb_buffered_at_end: m.metrics_after.sum(queued),
        collector: resources("heapster-rs", m, 0..reps, res_s, s.nodes),
        replicas: if reps > 1 {
            (0..reps).map(|r| replica(m, r, res_s, s.nodes)).collect()
        } else {
            Vec::new()
        },
        rss_steady_min_kib: steady.iter().copied().min().unwrap_or(0),
        rss_steady_max_kib: steady.iter().copied().max().unwrap_or(0),
        simulator: resources("heapster-sim", m, reps..peers_at, res_s, s.nodes),
        sim_processes: if m.sim_processes > 1 {
            (reps..peers_at)
                .map(|i| {
                    let name = if i == reps {
                        "apiserver".to_string()
                    } else {
                        format!("kubelets {}", i - reps - 1)
                    };
                    resources(&name, m, i..i + 1, res_s, s.nodes)
                })
                .collect()
        } else {
            Vec::new()
        },
        peers: m
            .peer_names
            .iter()
            .enumerate()
            .map(|(i, n)| resources(n, m, peers_at + i..peers_at + i + 1, res_s, s.nodes))
            .collect(),
        load_start: m.load_start.clone(),
        load_end: m.load_end.clone(),
        sim_start_s: m.sim_start.as_secs_f64(),
        wall_s: m.wall.as_secs_f64(),
        incomplete: m.incomplete.clone(),
    }
}

/// The collector's `--replication` (1 when not given).
fn replication(collector_args: &[String]) -> usize {
    collector_args
        .iter()
        .filter_map(|a| a.strip_prefix("--replication="))
        .filter_map(|v| v.parse().ok())
        .next_back()
        .unwrap_or(1)
}

/// Replica `r`'s figures: its resources, and its own ticks after the warm-up.
fn replica(m: &Measured, r: usize, res_s: f64, nodes: usize) -> Replica {
    let lines = m.replica_ticks.get(r).map_or(&[][..], Vec::as_slice);
    // The replica's ticks in the measured window: those of the windows after the warm-up.
    let from = m
        .ticks
        .get(m.warmup_index())
        .map_or(i64::MAX, |t| t.line.window_end);
    let to = m.ticks.last().map_or(i64::MIN, |t| t.line.window_end);
    let measured: Vec<_> = lines
        .iter()
        .filter(|t| t.window_end > from && t.window_end <= to)
        .collect();
    Replica {
        resources: resources(&format!("r{r}"), m, r..r + 1, res_s, nodes),
        ticks: measured.len(),
        ticks_over_resolution: measured
            .iter()
            .filter(|t| t.duration_ms as f64 > res_s * 1000.0)
            .count(),
        tick_ms_max: measured.iter().map(|t| t.duration_ms).max().unwrap_or(0),
        nodes_min: measured.iter().map(|t| t.nodes).min().unwrap_or(0),
        nodes_max: measured.iter().map(|t| t.nodes).max().unwrap_or(0),
    }
}

/// Marginal cost per node between two runs of different sizes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Marginal {
    pub from_nodes: usize,
    pub to_nodes: usize,
    pub mcpu_per_node: f64,
    /// The collector's marginal CPU over the simulator's, which does the same work in every
    /// run (serving each node's Summary per tick): a measure of a build that this shared VM's
    /// speed, which moves both alike, hardly moves. `None` when the simulator's did not grow.
    pub mcpu_vs_sim: Option<f64>,
    pub peak_rss_kib_per_node: f64,
    pub steady_rss_kib_per_node: f64,
}

pub fn marginals(runs: &[Summary]) -> Vec<Marginal> {
    runs.windows(2)
        .filter(|w| w[1].nodes != w[0].nodes && w[1].sink == w[0].sink)
        .map(|w| {
            let dn = w[1].nodes as f64 - w[0].nodes as f64;
            let collector = w[1].collector.mcpu - w[0].collector.mcpu;
            let sim = w[1].simulator.mcpu - w[0].simulator.mcpu;
            Marginal {
                from_nodes: w[0].nodes,
                to_nodes: w[1].nodes,
                mcpu_per_node: collector / dn,
                mcpu_vs_sim: (sim > 0.0).then(|| collector / sim),
                peak_rss_kib_per_node: (w[1].collector.peak_rss_kib as f64
                    - w[0].collector.peak_rss_kib as f64)
                    / dn,
                steady_rss_kib_per_node: (w[1].rss_steady_max_kib as f64
                    - w[0].rss_steady_max_kib as f64)
                    / dn,
            }
        })
        .collect()
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

/// The results as Markdown tables.
pub fn table(runs: &[Summary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| nodes | pods | res | sink | ticks (window s) | tick p50/p99/max ms | over res | scrape p50/p99 ms | \
         failed | points/cycle | CPU s/cycle | mCPU | mCPU/node | mCPU (wall) | peak RSS MiB | KiB/node | \
         steady RSS MiB (min–max) | sim mCPU | load (start → end) |"
    );
    let _ = writeln!(out, "|{}", "---|".repeat(19));
    for r in runs {
        let c = &r.collector;
        let _ = writeln!(
            out,
            "| {} | {} | {}s | {} | {}{} ({:.0}) | {}/{}/{} | {} | {}/{} | {} | {:.0} | {:.3} | {:.1} | \
             {:.4} | {:.1} | {} | {:.1} | {}–{} | {:.0} | {} → {} |",
            r.nodes,
            r.pods,
            r.resolution_s,
            r.sink,
            r.measured_ticks,
            if r.incomplete.is_some() { "!" } else { "" },
            r.window_s,
            r.tick_ms_p50,
            r.tick_ms_p99,
            r.tick_ms_max,
            r.ticks_over_resolution,
            opt_ms(r.scrape_ms_p50),
            opt_ms(r.scrape_ms_p99),
            r.nodes_failed_max,
            r.points_per_cycle,
            c.cpu_seconds_per_cycle,
            c.mcpu,
            c.mcpu_per_node,
            c.mcpu_wall,
            mib(c.peak_rss_kib),
            c.peak_rss_kib_per_node,
            mib(r.rss_steady_min_kib),
            mib(r.rss_steady_max_kib),
            r.simulator.mcpu,
            load1(&r.load_start),
            load1(&r.load_end),
        );
    }
    let m = marginals(runs);
    if !m.is_empty() {
        let _ = writeln!(
            out,
            "\n| marginal | mCPU/node | × sim | peak RSS KiB/node | steady RSS KiB/node |\n|---|---|---|---|---|"
        );
        for m in m {
            let _ = writeln!(
                out,
                "| {} → {} nodes | {:.4} | {} | {:.1} | {:.1} |",
                m.from_nodes,
                m.to_nodes,
                m.mcpu_per_node,
                m.mcpu_vs_sim.map_or("-".into(), |r| format!("{r:.2}")),
                m.peak_rss_kib_per_node,
                m.steady_rss_kib_per_node
            );
        }
    }
    let sinks: Vec<_> = runs.iter().filter(|r| r.sink != "none").collect();
    if !sinks.is_empty() {
        // Without this table a sink that cannot keep up looks cheap: its CPU figure covers only
        // the points it wrote.
        let _ = writeln!(
            out,
            "\n| nodes | sink | points/cycle | written/cycle | dropped/cycle | buffered at end |\n\
             |---|---|---|---|---|---|"
        );
        for r in &sinks {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                r.nodes,
                r.sink,
                r.points_per_cycle,
                r.influxdb_points_written_per_cycle,
                r.influxdb_dropped_per_cycle,
                r.influxdb_buffered_at_end
            );
        }
        for r in sinks.iter().filter(|r| r.influxdb_dropped_per_cycle > 0.0) {
            let _ = writeln!(
                out,
                "\n! {} nodes: the sink dropped {:.0} points a cycle ({:.1} % of them): the \
                 database did not keep up, and the CPU figures leave out writing those points",
                r.nodes,
                r.influxdb_dropped_per_cycle,
                100.0 * r.influxdb_dropped_per_cycle / r.points_per_cycle.max(1.0)
            );
        }
    }
    let peers: Vec<_> = runs.iter().filter(|r| !r.peers.is_empty()).collect();
    if !peers.is_empty() {
        let _ = writeln!(
            out,
            "\n| nodes | collector | mCPU | mCPU/node | peak RSS MiB | end RSS MiB |\n|---|---|---|---|---|---|"
        );
        for r in peers {
            for p in std::iter::once(&r.collector).chain(&r.peers) {
                let _ = writeln!(
                    out,
                    "| {} | `{}` | {:.1} | {:.4} | {} | {} |",
                    r.nodes,
                    p.name,
                    p.mcpu,
                    p.mcpu_per_node,
                    mib(p.peak_rss_kib),
                    mib(p.end_rss_kib)
                );
            }
        }
    }
    let sharded: Vec<_> = runs.iter().filter(|r| !r.replicas.is_empty()).collect();
    if !sharded.is_empty() {
        let _ = writeln!(
            out,
            "\n| nodes | replica | mCPU | mCPU/node | peak RSS MiB | end RSS MiB | fds | ticks | over res | \
             tick max ms | nodes/tick |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in &sharded {
            let total = Replica {
                resources: Resources {
                    name: "total".into(),
                    ..r.collector.clone()
                },
                ticks: r.measured_ticks,
                ticks_over_resolution: r.ticks_over_resolution,
                tick_ms_max: r.tick_ms_max,
                nodes_min: r.nodes_scraped_min,
                nodes_max: r.nodes_scraped_max,
            };
            for p in r.replicas.iter().chain([&total]) {
                let c = &p.resources;
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} | {:.4} | {} | {} | {} | {} | {} | {} | {}–{} |",
                    r.nodes,
                    c.name,
                    c.mcpu,
                    c.mcpu_per_node,
                    mib(c.peak_rss_kib),
                    mib(c.end_rss_kib),
                    c.fds_max,
                    p.ticks,
                    p.ticks_over_resolution,
                    p.tick_ms_max,
                    p.nodes_min,
                    p.nodes_max
                );
            }
            if r.nodes_scraped_min != r.scrapes_expected
                || r.nodes_scraped_max != r.scrapes_expected
            {
                let _ = writeln!(
                    out,
                    "\n! {} nodes: the replicas scraped {}–{} nodes a tick between them, not \
                     the {} of each node scraped as often as asked",
                    r.nodes, r.nodes_scraped_min, r.nodes_scraped_max, r.scrapes_expected
                );
            }
        }
    }
    let split: Vec<_> = runs
        .iter()
        .filter(|r| !r.sim_processes.is_empty())
        .collect();
    if !split.is_empty() {
        let _ = writeln!(
            out,
            "\n| nodes | simulator process | mCPU | peak RSS MiB | end RSS MiB | fds |\n|---|---|---|---|---|---|"
        );
        for r in split {
            for p in r.sim_processes.iter().chain([&r.simulator]) {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} | {} | {} | {} |",
                    r.nodes,
                    p.name,
                    p.mcpu,
                    mib(p.peak_rss_kib),
                    mib(p.end_rss_kib),
                    p.fds_max
                );
            }
        }
    }
    for r in runs.iter().filter(|r| r.incomplete.is_some()) {
        let _ = writeln!(
            out,
            "\n! {} nodes: incomplete: {}",
            r.nodes,
            r.incomplete.as_deref().unwrap_or("")
        );
    }
    out
}

fn load1(loadavg: &str) -> &str {
    loadavg.split_whitespace().next().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v = [10, 20, 30, 40];
        assert_eq!(percentile(&v, 0.5), 20);
        assert_eq!(percentile(&v, 0.99), 40);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn marginal_between_sizes() {
        let run = |nodes, mcpu, kib, sim_mcpu| Summary {
            nodes,
            sink: "none".into(),
            collector: Resources {
                mcpu,
                peak_rss_kib: kib,
                ..Resources::default()
            },
            simulator: Resources {
                mcpu: sim_mcpu,
                ..Resources::default()
            },
            ..Summary::default()
        };
        let m = marginals(&[
            run(100, 10.0, 20_000, 4.0),
            run(1100, 30.0, 120_000, 20.0),
            run(2100, 50.0, 220_000, 20.0),
        ]);
        assert_eq!(m.len(), 2);
        assert!((m[0].mcpu_per_node - 0.02).abs() < 1e-12);
        assert!((m[0].peak_rss_kib_per_node - 100.0).abs() < 1e-9);
        // 20 mCPU more for the collector against 16 more for the simulator.
        assert!((m[0].mcpu_vs_sim.expect("the simulator's grew") - 1.25).abs() < 1e-12);
        // The simulator's did not grow: no ratio.
        assert_eq!(m[1].mcpu_vs_sim, None);
        assert!(!table(&[run(100, 10.0, 20_000, 4.0)]).contains("dropped"));
        let t = table(&[run(100, 10.0, 20_000, 4.0), run(1100, 30.0, 120_000, 20.0)]);
        assert!(
            t.contains("| 100 → 1100 nodes | 0.0200 | 1.25 | 100.0 | 0.0 |"),
            "{t}"
        );
    }

    #[test]
    fn replicas_are_reported_each_and_together() {
        let replica = |name: &str, mcpu, nodes| Replica {
            resources: Resources {
                name: name.into(),
                mcpu,
                ..Resources::default()
            },
            ticks: 3,
            nodes_min: nodes,
            nodes_max: nodes,
            ..Replica::default()
        };
        let run = |scraped_max| Summary {
            nodes: 30,
            sink: "none".into(),
            measured_ticks: 3,
            nodes_scraped_min: 30,
            nodes_scraped_max: scraped_max,
            scrapes_expected: 30,
            collector: Resources {
                mcpu: 3.0,
                ..Resources::default()
            },
            replicas: vec![replica("r0", 1.0, 10), replica("r1", 2.0, 20)],
            ..Summary::default()
        };
        let t = table(&[run(30)]);
        assert!(t.contains("| 30 | r1 | 2.0 |"), "{t}");
        assert!(t.contains("| 30 | total | 3.0 |"), "{t}");
        assert!(t.contains("| 3 | 0 | 0 | 30–30 |"), "{t}");
        assert_eq!(replication(&["--replication=2".to_string()]), 2);
        assert_eq!(replication(&[]), 1);
        assert!(!t.contains("scraped as often as asked"), "{t}");
        let t = table(&[run(35)]);
        assert!(
            t.contains("the replicas scraped 30–35 nodes a tick between them, not the 30 of"),
            "{t}"
        );
    }

    #[test]
    fn a_sink_that_drops_points_is_reported() {
        let run = |written, dropped| Summary {
            nodes: 1000,
            sink: "influxdb".into(),
            points_per_cycle: 2_000_000.0,
            influxdb_points_written_per_cycle: written,
            influxdb_dropped_per_cycle: dropped,
            influxdb_buffered_at_end: 5000.0,
            ..Summary::default()
        };
        let t = table(&[run(2_000_000.0, 0.0)]);
        assert!(
            t.contains("| 1000 | influxdb | 2000000 | 2000000 | 0 | 5000 |"),
            "{t}"
        );
        assert!(!t.contains("! 1000 nodes"), "{t}");
        let t = table(&[run(500_000.0, 1_500_000.0)]);
        assert!(
            t.contains("! 1000 nodes: the sink dropped 1500000 points a cycle (75.0 % of them)"),
            "{t}"
        );
    }
}
