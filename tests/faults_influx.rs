//! Fault injection on the InfluxDB side: a real `influxd` behind a fault-injecting proxy that
//! answers writes with 500 and 429, answers slowly, or not at all; and SIGTERM of the real
//! `heapster` binary while InfluxDB hangs. Buffered, retried, bounded, nothing lost within the
//! bound, every drop counted.
//!
//! InfluxDB SIGKILLed and restarted on the same port and data directory is
//! `outage_loses_nothing` in `tests/influxdb.rs`.

mod common;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use heapster_rs::model::Batch;
use heapster_rs::sink::influxdb::{DeliveryTuning, InfluxSink};
use heapster_rs::sink::{FanOut, FanOutMetrics};
use prometheus_client::registry::Registry;
use support::heapster::Heapster;
use support::influx_data::{
    all_written, batches, config, count_at, eventually, export_all, fast, init, proxied, sink,
};
use support::influxd::Influxd;
use support::proxy::Fault;

#[tokio::test]
async fn errors_500_and_429_are_retried_and_nothing_is_lost() {
    let Some((server, proxy)) = proxied().await else {
        return;
    };
    let injected = [500, 429, 500, 503, 429].map(Fault::Status);
    proxy.script(injected);
    let mut sink = sink(&config(proxy.url(), "errors"));
    let batches = batches(4);
    let total: u64 = batches.iter().map(|b| b.point_count() as u64).sum();
    export_all(&mut sink, &batches).await;
    eventually(60, "everything written", async || {
        sink.stats().points_written == total
    })
    .await;
    let stats = sink.stats();
    assert_eq!(proxy.writes().1, injected.len() as u64);
    assert!(stats.retries >= injected.len() as u64, "{stats:?}");
    assert_eq!(
        (
            stats.buffered_points,
            stats.dropped_buffer_full,
            stats.dropped_rejected
        ),
        (0, 0, 0)
    );
    all_written(&server, "errors", &batches).await;
}

#[tokio::test]
async fn a_slow_influxdb_times_out_is_retried_and_nothing_is_lost() {
    let Some((server, proxy)) = proxied().await else {
        return;
    };
    // Accepts, but answers after the client gave up.
    proxy.set(Fault::Delay(Duration::from_secs(3)));
    let tuning = DeliveryTuning {
        request_timeout: Duration::from_millis(800),
        ..fast()
    };
    let cfg = config(proxy.url(), "slow");
    let mut sink = InfluxSink::with_tuning(&cfg, &mut Registry::default(), tuning).expect("sink");
    let batches = batches(4);
    let total: u64 = batches.iter().map(|b| b.point_count() as u64).sum();
    export_all(&mut sink, &batches).await;
    eventually(30, "timed-out writes retried", async || {
        sink.stats().retries >= 3
    })
    .await;
    assert_eq!(sink.stats().buffered_points, total as i64);
    // Slow but within the timeout: everything goes through.
    proxy.set(Fault::Delay(Duration::from_millis(200)));
    eventually(60, "everything written", async || {
        sink.stats().buffered_points == 0
    })
    .await;
    let stats = sink.stats();
    assert_eq!(stats.points_written, total, "{stats:?}");
    assert_eq!(stats.dropped_buffer_full, 0);
    all_written(&server, "slow", &batches).await;
}

/// A burst of six ticks, more than a buffer of `buffer_ticks` ticks holds, to an InfluxDB that
/// takes every write, `delay` late. Returns (server, points a tick, ticks, sink) once every
/// point was written or dropped; None (test skipped) without `influxd`.
async fn burst(
    db: &str,
    delay: Duration,
    room_wait: Duration,
    buffer_ticks: f64,
) -> Option<(Influxd, usize, Vec<Batch>, InfluxSink)> {
    let (server, proxy) = proxied().await?;
    proxy.set(Fault::Delay(delay));
    let batches = batches(6);
    let per_batch = batches[0].point_count();
    let mut cfg = config(proxy.url(), db);
    cfg.batch_size = 25;
    cfg.buffer_points = (per_batch as f64 * buffer_ticks) as usize;
    cfg.concurrency = 2;
    let tuning = DeliveryTuning {
        room_wait,
        ..fast()
    };
    let mut sink = InfluxSink::with_tuning(&cfg, &mut Registry::default(), tuning).expect("sink");
    export_all(&mut sink, &batches).await;
    let total = (6 * per_batch) as u64;
    eventually(60, "every point written or dropped", async || {
        let stats = sink.stats();
        stats.buffered_points == 0 && stats.points_written + stats.dropped_buffer_full == total
    })
    .await;
    // The proxy goes with this function; the sink has nothing left to send.
    drop(proxy);
    Some((server, per_batch, batches, sink))
}

#[tokio::test]
async fn a_burst_larger_than_the_buffer_waits_for_room_and_loses_nothing() {
    // Each tick holds twice the buffer: exported at once, half of it would be dropped.
    // InfluxDB takes each write 20 ms late, so the writer makes room well within the wait
    // (counted from the ticks' times, minutes ago).
    let delay = Duration::from_millis(20);
    let Some((server, per_batch, batches, sink)) =
        burst("burst", delay, Duration::from_secs(3600), 0.5).await
    else {
        return;
    };
    let stats = sink.stats();
    assert_eq!(stats.dropped_buffer_full, 0, "{stats:?}");
    assert_eq!(stats.points_written, (6 * per_batch) as u64, "{stats:?}");
    assert!(stats.buffer_wait_ms > 0, "{stats:?}");
    all_written(&server, "burst", &batches).await;
}

#[tokio::test]
async fn a_sink_behind_by_more_than_the_wait_loses_the_oldest_points_only() {
    // 200 ms a write of 25 lines, two at a time: the six ticks take about three seconds, and
    // the ticks, minutes old, are past their wait for room in a buffer of two ticks: the
    // oldest go.
    let delay = Duration::from_millis(200);
    let Some((server, per_batch, batches, sink)) =
        burst("too-slow", delay, Duration::from_secs(1), 2.0).await
    else {
        return;
    };
    let stats = sink.stats();
    assert!(stats.dropped_buffer_full > 0, "{stats:?}");
    let mut counts = Vec::new();
    for b in &batches {
        counts.push(count_at(&server, "too-slow", b.timestamp).await);
    }
    assert_eq!(counts.iter().sum::<u64>(), stats.points_written);
    // The newest tick is whole.
    assert_eq!(counts[5], per_batch as u64, "{counts:?}");
}

#[tokio::test]
async fn shutdown_cuts_a_wait_for_room_short_and_the_flush_reports_the_rest() {
    let Some((_server, proxy)) = proxied().await else {
        return;
    };
    // Every write takes half a second, the buffer holds half a tick, and a tick may wait an
    // hour for room: the sink is still waiting when shutdown starts.
    proxy.set(Fault::Delay(Duration::from_millis(500)));
    let batches = batches(6);
    let per_batch = batches[0].point_count();
    let mut cfg = config(proxy.url(), "shutdown");
    cfg.batch_size = 25;
    cfg.buffer_points = per_batch / 2;
    cfg.concurrency = 1;
    let tuning = DeliveryTuning {
        room_wait: Duration::from_secs(3600),
        ..fast()
    };
    let mut registry = Registry::default();
    let sink = InfluxSink::with_tuning(&cfg, &mut registry, tuning).expect("sink");
    let mut fanout = FanOut::new(FanOutMetrics::default());
    fanout.add(sink, 8);
    for b in &batches {
        fanout.send(&Arc::new(b.clone()));
    }
    eventually(10, "a write under way", async || proxy.writes().0 >= 1).await;
    fanout.shutdown(Duration::from_secs(1)).await;
    // The flush ran within the budget and reported what it could not deliver; every point
    // is written or counted.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
    let sample = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    };
    let shutdown = sample("influxdb_dropped_points_total{reason=\"shutdown\"}");
    let full = sample("influxdb_dropped_points_total{reason=\"buffer_full\"}");
    let written = sample("influxdb_points_written_total");
    assert!(shutdown > 0, "{text}");
    assert_eq!(written + full + shutdown, (6 * per_batch) as u64, "{text}");
}

#[tokio::test]
async fn sustained_errors_stay_within_the_buffer_and_every_drop_is_counted() {
    let Some((server, proxy)) = proxied().await else {
        return;
    };
    proxy.set(Fault::Status(500));
    let batches = batches(6);
    let per_batch = batches[0].point_count();
    let mut cfg = config(proxy.url(), "bounded");
    cfg.batch_size = 25;
    cfg.buffer_points = per_batch * 5 / 2;
    cfg.concurrency = 1;
    let mut sink = sink(&cfg);
    // The gauge counts the chunks in flight too: at most `concurrency` of `batch_size` lines.
    let bound = cfg.buffer_points + cfg.concurrency * cfg.batch_size;
    for b in &batches {
        export_all(&mut sink, std::slice::from_ref(b)).await;
        let stats = sink.stats();
        assert!(
            stats.buffered_points as usize <= bound,
            "buffer over its bound: {stats:?}"
        );
    }
    eventually(30, "failed writes", async || proxy.writes().1 >= 3).await;
    let total = (6 * per_batch) as u64;
    // Every point is either still held or counted as dropped (the two are updated one after
    // the other, hence the wait).
    eventually(10, "held + dropped = exported", async || {
        let stats = sink.stats();
        stats.buffered_points as u64 + stats.dropped_buffer_full == total
    })
    .await;
    assert_eq!(sink.stats().points_written, 0);
    proxy.set(Fault::Pass);
    eventually(60, "buffer drained", async || {
        sink.stats().buffered_points == 0
    })
    .await;
    let stats = sink.stats();
    assert!(stats.dropped_buffer_full > 0);
    assert_eq!(stats.points_written + stats.dropped_buffer_full, total);
    let mut counts = Vec::new();
    for b in &batches {
        counts.push(count_at(&server, "bounded", b.timestamp).await);
    }
    assert_eq!(counts.iter().sum::<u64>(), stats.points_written);
    // The oldest went first; the newest batch is whole.
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!((counts[0], counts[5]), (0, per_batch as u64), "{counts:?}");
}

/// `points=N` of the shutdown report in a text log.
fn reported_undelivered(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .find(|l| l.contains("shut down with undelivered points"))?;
    let at = line.find("points=")? + "points=".len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_outage_exits_within_the_flush_deadline_and_reports_the_loss() {
    let Some((_server, proxy)) = proxied().await else {
        return;
    };
    // InfluxDB answers pings and queries but never a write: the worst outage for a flush.
    proxy.set(Fault::Hang);
    let shutdown_timeout = Duration::from_secs(2);
    let mut heapster = Heapster::start(&[
        "--source=simulated:?nodes=2&podsPerNode=2".into(),
        "--metric_resolution=5s".into(),
        format!("--shutdown_timeout={}s", shutdown_timeout.as_secs()),
        format!("--sink=influxdb:{}?db=sigterm", proxy.url()),
    ]);
    let page = heapster
        .metrics_until(60, "points buffered", |page| {
            common::sample(page, "heapster_influxdb_buffered_points").unwrap_or(0.0) > 0.0
        })
        .await;
    let buffered = common::sample(&page, "heapster_influxdb_buffered_points").unwrap_or(0.0);
    eventually(30, "a write in flight", async || proxy.writes().0 >= 1).await;

    let sent = Instant::now();
    heapster.terminate();
    // The request timeout (30 s) is far longer: only the flush deadline can end this.
    let status = heapster
        .wait_exit(shutdown_timeout + Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 12 s after SIGTERM:\n{}", heapster.log()));
    let took = sent.elapsed();
    let log = heapster.log();
    assert!(status.success(), "{status}:\n{log}");
    let lost = reported_undelivered(&log)
        .unwrap_or_else(|| panic!("no report of undelivered points:\n{log}"));
    // Nothing was written, so at least what was buffered before SIGTERM is reported.
    assert!(
        lost as f64 >= buffered,
        "reported {lost}, {buffered} were buffered"
    );
    eprintln!("exited {took:?} after SIGTERM, reporting {lost} undelivered points");
}

/// Sum of every `heapster_influxdb_dropped_points_total{reason=...}` sample.
fn dropped(page: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with("heapster_influxdb_dropped_points_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxd_sigkilled_mid_run_and_restarted_misses_no_tick() {
    init();
    let Some(mut server) = Influxd::start() else {
        return;
    };
    let mut heapster = Heapster::start(&[
        "--source=simulated:?nodes=2&podsPerNode=2".into(),
        "--metric_resolution=5s".into(),
        "--shutdown_timeout=20s".into(),
        format!("--sink=influxdb:{}?db=sigkill", server.url()),
    ]);
    let metric = |p: &str, name: &str| common::sample(p, name).unwrap_or(0.0);
    heapster
        .metrics_until(60, "first points written", |p| {
            metric(p, "heapster_influxdb_points_written_total") > 0.0
        })
        .await;
    server.kill();
    let page = heapster.get("/metrics").await.expect("metrics").1;
    let ticks_at_kill = metric(&page, "heapster_ticks_total");
    heapster
        .metrics_until(60, "two ticks during the outage", |p| {
            metric(p, "heapster_ticks_total") >= ticks_at_kill + 2.0
                && metric(p, "heapster_influxdb_retries_total") > 0.0
        })
        .await;
    server.restart();
    let page = heapster
        .metrics_until(60, "the buffer drained", |p| {
            metric(p, "heapster_influxdb_buffered_points") == 0.0
        })
        .await;
    assert_eq!(dropped(&page), 0.0, "{page}");

    heapster.terminate();
    let status = heapster.wait_exit(Duration::from_secs(30));
    let log = heapster.log();
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{log}");
    assert!(log.contains("InfluxDB is reachable again"), "{log}");
    assert!(log.contains("InfluxDB sink flushed"), "{log}");
    // Every tick, before, during and after the outage, is in InfluxDB.
    let ticks = log
        .lines()
        .filter(|l| l.contains("app::tick: tick window_end="))
        .count() as u64;
    let q = "SELECT count(\"value\") FROM \"uptime\" WHERE \"type\" = 'node' AND \"nodename\" = 'sim-node-0000'";
    let json = server.query("sigkill", q).await;
    let rows = support::influx_data::rows(&json);
    assert_eq!(rows.len(), 1, "{json}");
    assert_eq!(rows[0].1["count"].as_u64(), Some(ticks), "{json}");
}
