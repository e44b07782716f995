//! The shared delivery layer's disk spool and answer handling, against a real `influxd`
//! behind the fault proxy. The memory queue is smaller than a tick, so the spool carries
//! every outage: nothing is lost, across a `kill -9` too; a torn segment loses only its torn
//! record; the cap drops the oldest segments, counted; 413 splits, 429 waits for its
//! `Retry-After`, 400 is dropped at once and counted.

mod common;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use heapster_rs::config::InfluxConfig;
use heapster_rs::model::Batch;
use heapster_rs::sink::Sink;
use heapster_rs::sink::delivery::SpoolConfig;
use support::heapster::Heapster;
use support::influx_data::{
    all_written, batches, cluster_batch, config, count_at, eventually, export_all, proxied, recent,
    sink,
};
use support::proxy::Fault;

/// A sink whose memory queue holds a third of a tick, spooling to `dir` up to `cap` bytes.
fn spooling(url: url::Url, db: &str, dir: &Path, cap: u64, per_batch: usize) -> InfluxConfig {
    let mut cfg = config(url, db);
    cfg.batch_size = 25;
    cfg.buffer_points = per_batch / 3;
    cfg.concurrency = 2;
    cfg.spool = SpoolConfig {
        dir: Some(dir.to_owned()),
        bytes: cap,
    };
    cfg
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("spool dir")
        .map(|e| e.expect("entry").metadata().expect("meta").len())
        .sum()
}

#[tokio::test]
async fn an_outage_longer_than_the_memory_queue_loses_nothing_and_sends_each_point_once() {
    let Some((server, proxy)) = proxied().await else {
        return;
    };
    let spool = tempfile::tempdir().expect("dir");
    proxy.set(Fault::Status(503));
    let batches = batches(6);
    let per_batch = batches[0].point_count();
    let total = (6 * per_batch) as u64;
    let cfg = spooling(proxy.url(), "outage", spool.path(), 1 << 30, per_batch);
    let mut sink = sink(&cfg);
    export_all(&mut sink, &batches).await;
    eventually(30, "the outage seen and the ticks spooled", async || {
        let s = sink.stats();
        s.retries > 0 && s.spooled_bytes > 0
    })
    .await;
    let stats = sink.stats();
    // Six ticks in a queue of a third of one: the spool holds them, nothing is dropped.
    assert!(stats.buffered_points < per_batch as i64, "{stats:?}");
    proxy.set(Fault::Pass);
    eventually(60, "the spool drained", async || {
        let s = sink.stats();
        s.points_written == total && s.spooled_bytes == 0 && s.buffered_points == 0
    })
    .await;
    let stats = sink.stats();
    assert_eq!(stats.spool_segments, 0, "{stats:?}");
    let dropped =
        stats.dropped_buffer_full + stats.dropped_spool_full + stats.dropped_spool_corrupt;
    assert_eq!(dropped, 0, "{stats:?}");
    // Sent exactly once each: the accepted points add up to what was exported.
    assert_eq!(stats.points_written, total, "{stats:?}");
    all_written(&server, "outage", &batches).await;
    assert_eq!(std::fs::read_dir(spool.path()).expect("ls").count(), 0);
}

#[tokio::test]
async fn a_torn_segment_delivers_its_valid_prefix_and_counts_the_rest() {
    let Some((server, proxy)) = proxied().await else {
        return;
    };
    let spool = tempfile::tempdir().expect("dir");
    proxy.set(Fault::Status(503));
    let batches = batches(3);
    let per_batch = batches[0].point_count();
    let total = (3 * per_batch) as u64;
    let mut cfg = spooling(proxy.url(), "torn", spool.path(), 1 << 30, per_batch);
    cfg.gzip = false;
    {
        let mut sink = sink(&cfg);
        export_all(&mut sink, &batches).await;
        eventually(30, "everything spooled", async || {
            let s = sink.stats();
            s.buffered_points == 0 && s.spooled_bytes > 0
        })
        .await;
        // Dropped without a flush, as by a crash.
    }
    // The crash tore the last record of the newest segment.
    let mut segments: Vec<_> = std::fs::read_dir(spool.path())
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .collect();
    segments.sort();
    let last = segments.last().expect("a segment");
    let len = std::fs::metadata(last).expect("meta").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(last)
        .expect("open")
        .set_len(len - 7)
        .expect("tear");

    proxy.set(Fault::Pass);
    let sink = sink(&cfg);
    eventually(60, "the valid prefix delivered", async || {
        let s = sink.stats();
        s.spooled_bytes == 0 && s.points_written + s.dropped_spool_corrupt == total
    })
    .await;
    let stats = sink.stats();
    // One record of 25 lines, one value each, torn.
    assert_eq!(stats.dropped_spool_corrupt, 25, "{stats:?}");
    let mut in_db = 0;
    for b in &batches {
        in_db += count_at(&server, "torn", b.timestamp).await;
    }
    assert_eq!(in_db, stats.points_written, "{stats:?}");
    // Only the newest tick lost anything.
    all_written(&server, "torn", &batches[..2]).await;
}

#[tokio::test]
async fn at_the_cap_the_oldest_segments_go_counted_and_the_directory_stays_within_a_segment() {
    let Some((server, proxy)) = proxied().await else {
        return;
    };
    let spool = tempfile::tempdir().expect("dir");
    proxy.set(Fault::Status(503));
    // Uncompressed ticks of about 10 KiB against a cap of 128 KiB (segments of 64 KiB).
    let batches: Vec<Batch> = (0..24)
        .map(|i| cluster_batch(recent(30 - i), 4, 4))
        .collect();
    let per_batch = batches[0].point_count();
    let total = (24 * per_batch) as u64;
    let cap = 128 << 10;
    let mut cfg = spooling(proxy.url(), "capped", spool.path(), cap, per_batch);
    cfg.gzip = false;
    let mut sink = sink(&cfg);
    // The first failure moves the memory queue to the spool; then every tick goes there.
    export_all(&mut sink, &batches[..1]).await;
    eventually(30, "the outage seen", async || {
        sink.stats().spooled_bytes > 0
    })
    .await;
    let mut largest = 0;
    for b in &batches[1..] {
        export_all(&mut sink, std::slice::from_ref(b)).await;
        largest = largest.max(dir_bytes(spool.path()));
    }
    // Segments go whole, the one being written never: at most one segment (and a record)
    // over the cap.
    assert!(largest <= cap + (64 << 10) + 16_000, "{largest}");
    let stats = sink.stats();
    assert!(stats.dropped_spool_full > 0, "{stats:?}");
    proxy.set(Fault::Pass);
    eventually(60, "the spool drained", async || {
        let s = sink.stats();
        s.spooled_bytes == 0 && s.buffered_points == 0
    })
    .await;
    let stats = sink.stats();
    assert_eq!(
        stats.points_written + stats.dropped_spool_full,
        total,
        "{stats:?}"
    );
    let mut counts = Vec::new();
    for b in &batches {
        counts.push(count_at(&server, "capped", b.timestamp).await);
    }
    assert_eq!(counts.iter().sum::<u64>(), stats.points_written);
    // The oldest went first; the newest tick is whole.
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!((counts[0], counts[23]), (0, per_batch as u64), "{counts:?}");
}

#[tokio::test]
async fn a_413_splits_the_body_and_every_point_arrives() {
    let Some((server, proxy)) = proxied().await else {
        return;
    };
    proxy.script([Fault::Status(413), Fault::Status(413)]);
    let batches = batches(1);
    let per_batch = batches[0].point_count() as u64;
    let mut sink = sink(&config(proxy.url(), "split"));
    export_all(&mut sink, &batches).await;
    eventually(30, "everything written", async || {
        sink.stats().points_written == per_batch
    })
    .await;
    let stats = sink.stats();
    assert_eq!(stats.requests_too_large, 2, "{stats:?}");
    // One body, then its two halves, then one half split again: four requests that passed.
    assert_eq!(proxy.writes(), (5, 2));
    assert_eq!(
        stats.dropped_too_large + stats.dropped_rejected,
        0,
        "{stats:?}"
    );
    all_written(&server, "split", &batches).await;
}

#[tokio::test]
async fn a_429_with_retry_after_waits_that_long() {
    let Some((server, proxy)) = proxied().await else {
        return;
    };
    // The proxy's 429 says `Retry-After: 1`; the backoff alone would wait 20 ms.
    proxy.script([Fault::Status(429)]);
    let batches = batches(1);
    let per_batch = batches[0].point_count() as u64;
    let mut sink = sink(&config(proxy.url(), "retry-after"));
    let started = Instant::now();
    export_all(&mut sink, &batches).await;
    eventually(30, "everything written", async || {
        sink.stats().points_written == per_batch
    })
    .await;
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(1), "retried after {took:?}");
    assert!(took < Duration::from_secs(5), "retried after {took:?}");
    assert_eq!(proxy.writes(), (2, 1));
    all_written(&server, "retry-after", &batches).await;
}

#[tokio::test]
async fn a_400_is_dropped_counted_and_not_retried() {
    let Some((_server, proxy)) = proxied().await else {
        return;
    };
    proxy.script([Fault::Status(400)]);
    let batches = batches(1);
    let per_batch = batches[0].point_count() as u64;
    let mut sink = sink(&config(proxy.url(), "refused"));
    export_all(&mut sink, &batches).await;
    eventually(30, "the refusal counted", async || {
        sink.stats().dropped_rejected == per_batch
    })
    .await;
    // Time for a retry, if there were one (the backoff is 20 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = sink.stats();
    assert_eq!(proxy.writes(), (1, 1));
    assert_eq!((stats.retries, stats.points_written), (0, 0), "{stats:?}");
    assert_eq!(stats.requests_rejected, 1, "{stats:?}");
}

/// The `window_end` of every tick in a log, in nanoseconds.
fn ticks(log: &str) -> Vec<i64> {
    log.lines()
        .filter(|l| l.contains("app::tick: tick window_end="))
        .filter_map(|l| {
            let at = l.find("window_end=")? + "window_end=".len();
            let end = l[at..].find(' ').map_or(l.len(), |e| at + e);
            let ts: jiff::Timestamp = l[at..end].parse().ok()?;
            i64::try_from(ts.as_nanosecond()).ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_an_outage_and_restarted_the_collector_delivers_what_it_spooled() {
    let Some((server, proxy)) = proxied().await else {
        return;
    };
    let spool = tempfile::tempdir().expect("dir");
    proxy.set(Fault::Status(503));
    let args = [
        "--source=simulated:?nodes=2&podsPerNode=2".to_string(),
        "--metric_resolution=5s".into(),
        format!(
            "--sink=influxdb:{}?db=killed&buffer_points=20&batch_size=20&spool_dir={}",
            proxy.url(),
            spool.path().display()
        ),
    ];
    let spooled = "heapster_sink_spool_bytes{sink=\"influxdb\"}";
    let mut first = Heapster::start(&args);
    first
        .metrics_until(60, "three ticks spooled", |p| {
            common::sample(p, "heapster_ticks_total").unwrap_or(0.0) >= 3.0
                && common::sample(p, spooled).unwrap_or(0.0) > 0.0
        })
        .await;
    first.kill();
    let before = ticks(&first.log());
    assert!(before.len() >= 3, "{}", first.log());

    proxy.set(Fault::Pass);
    let mut second = Heapster::start(&args);
    let sent = "heapster_sink_sent_points_total{sink=\"influxdb\"}";
    second
        .metrics_until(60, "the spool delivered", |p| {
            common::sample(p, spooled) == Some(0.0) && common::sample(p, sent).unwrap_or(0.0) > 0.0
        })
        .await;
    // Every tick of the killed run but the last (it may have been cut short by the kill)
    // arrived.
    for ts in &before[..before.len() - 1] {
        assert!(
            count_at(&server, "killed", *ts).await > 0,
            "tick at {ts} missing:\n{}",
            second.log()
        );
    }
    assert!(
        second
            .log()
            .contains("delivering what the spool kept from a previous run"),
        "{}",
        second.log()
    );
}

#[tokio::test]
async fn shutdown_during_an_outage_leaves_the_rest_in_the_spool_for_the_next_start() {
    let Some((server, proxy)) = proxied().await else {
        return;
    };
    let spool = tempfile::tempdir().expect("dir");
    // Writes hang: nothing is delivered within the flush budget, and the requests in flight
    // are cut short by it.
    proxy.set(Fault::Hang);
    let batches = batches(3);
    let per_batch = batches[0].point_count();
    let total = (3 * per_batch) as u64;
    let cfg = spooling(proxy.url(), "sigterm", spool.path(), 1 << 30, per_batch);
    let mut sink = sink(&cfg);
    for b in &batches {
        // Whatever does not fit waits for room until the deadline (5 s) at most.
        let _ = tokio::time::timeout(Duration::from_millis(300), sink.export(Arc::new(b.clone())))
            .await;
    }
    sink.flush(Duration::from_millis(500)).await;
    let stats = sink.stats();
    assert_eq!(stats.dropped_shutdown, 0, "{stats:?}");
    assert!(stats.spooled_bytes > 0, "{stats:?}");
    drop(sink);

    proxy.set(Fault::Pass);
    let sink = support::influx_data::sink(&cfg);
    eventually(60, "the spool drained", async || {
        sink.stats().spooled_bytes == 0
    })
    .await;
    let mut in_db = 0;
    for b in &batches {
        in_db += count_at(&server, "sigterm", b.timestamp).await;
    }
    // What reached the sink before the shutdown is all there; each export was cut short at
    // 300 ms, so not every point was handed over.
    assert_eq!(in_db, sink.stats().points_written);
    assert!(in_db > 0 && in_db <= total, "{in_db}");
}
