//! Sharded collection with real `heapster` processes against one simulated cluster: each node
//! scraped by exactly one replica per tick, aggregates equal to one replica's, a `kill -9`
//! healed within two resolutions, and with replication 2 every tick written once to InfluxDB
//! across the kill.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use heapster_rs::sim::{SimCluster, SimOptions};
use support::heapster::Heapster;
use support::influxd::{Influxd, free_port};
use support::proxy::FaultProxy;

const RES_SECS: i64 = 5;
const SEC: i64 = 1_000_000_000;
const RES: i64 = RES_SECS * SEC;

fn now() -> i64 {
    heapster_rs::model::time::now()
}

/// Sleeps until `offset` nanoseconds into the next window (ticks start at window starts).
async fn until_next_window_plus(offset: i64) -> i64 {
    let next = (now() / RES + 1) * RES;
    tokio::time::sleep(Duration::from_nanos((next + offset - now()).max(0) as u64)).await;
    next
}

fn source(cluster: &SimCluster) -> String {
    format!(
        "--source=kubernetes:{}?inClusterConfig=false&kubeletPort={}&kubeletHttps=false",
        cluster.api_url().as_str().trim_end_matches('/'),
        cluster.kubelet_port()
    )
}

fn replica(cluster: &SimCluster, name: &str, extra: &[String]) -> Heapster {
    let port = free_port();
    let mut args = vec![
        source(cluster),
        format!("--metric_resolution={RES_SECS}s"),
        "--sharding=true".into(),
        "--sharding_namespace=monitoring".into(),
        format!("--sharding_identity={name}"),
        format!("--sharding_address=http://127.0.0.1:{port}"),
    ];
    args.extend_from_slice(extra);
    Heapster::start_on(&args, port)
}

/// A self-metric's value (first sample of that name, no labels).
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until every replica sees `n` replicas and has ticked since.
async fn steady(replicas: &mut [&mut Heapster], n: usize) {
    for r in replicas.iter_mut() {
        r.metrics_until(40, "the membership", |p| {
            metric(p, "heapster_shard_replicas") == Some(n as f64)
        })
        .await;
    }
    until_next_window_plus(RES / 2).await;
    until_next_window_plus(RES / 2).await;
}

fn requests(cluster: &SimCluster) -> Vec<u64> {
    (0..cluster.nodes().len())
        .map(|i| cluster.kubelet_stats(i).requests)
        .collect()
}

fn deltas(before: &[u64], after: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// `(timestamp, value)` of a model API metric.
async fn model(h: &Heapster, path: &str) -> BTreeMap<i64, f64> {
    let Some((200, body)) = h.get(path).await else {
        return BTreeMap::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    v["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let t = heapster_rs::model::time::parse_rfc3339(p["timestamp"].as_str()?)?;
            Some((t, p["value"].as_f64()?))
        })
        .collect()
}

/// Asserts that `h` has, for `path`, the same value as `single` at every window from `from`
/// on that both hold (at least `min` of them).
async fn same_as_single(h: &Heapster, single: &Heapster, path: &str, from: i64, min: usize) {
    let (ours, theirs) = (model(h, path).await, model(single, path).await);
    let common: Vec<_> = ours
        .iter()
        .filter(|(t, _)| **t >= from)
        .filter_map(|(t, v)| theirs.get(t).map(|w| (*t, *v, *w)))
        .collect();
    assert!(
        common.len() >= min,
        "{path}: {} windows in common from {from}: {ours:?} vs {theirs:?}",
        common.len()
    );
    for (t, ours, theirs) in common {
        assert_eq!(ours, theirs, "{path} at {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_split_the_nodes_sum_like_one_and_heal_a_kill() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let opts = SimOptions {
        nodes: 7,
        pods_per_node: 3,
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await.expect("sim");
    let mut single =
        Heapster::start(&[source(&cluster), format!("--metric_resolution={RES_SECS}s")]);
    let mut r0 = replica(&cluster, "r0", &[]);
    let mut r1 = replica(&cluster, "r1", &[]);
    let mut r2 = replica(&cluster, "r2", &[]);
    steady(&mut [&mut r0, &mut r1, &mut r2], 3).await;
    let started = now();

    // Two windows: every node scraped twice by the single replica and twice by the shards.
    let before = requests(&cluster);
    until_next_window_plus(RES / 2).await;
    until_next_window_plus(RES / 2).await;
    assert_eq!(deltas(&before, &requests(&cluster)), vec![4; 7]);
    let mut assigned = 0.0;
    for r in [&r0, &r1, &r2] {
        let page = r.get("/metrics").await.expect("metrics").1;
        assigned += metric(&page, "heapster_shard_nodes_assigned").expect("assigned");
    }
    assert_eq!(assigned, 7.0);
    single
        .metrics_until(5, "ticks", |p| p.contains("heapster_ticks_total"))
        .await;

    // The namespaces and the cluster on every replica: the single replica's sums.
    for r in [&r0, &r1, &r2] {
        for path in [
            "/api/v1/model/cluster/metrics/memory/usage",
            "/api/v1/model/cluster/metrics/cpu/usage_rate",
            "/api/v1/model/namespaces/kube-system/metrics/memory/usage",
        ] {
            same_as_single(r, &single, path, started, 2).await;
        }
    }

    // kill -9: its Lease stays until it expires; its nodes are scraped again within two
    // resolutions, and the aggregates are complete again.
    r0.kill();
    let killed = now();
    let window = until_next_window_plus(RES / 2).await;
    assert!(window - killed <= RES);
    tokio::time::sleep(Duration::from_secs(RES_SECS as u64)).await;
    let before = requests(&cluster);
    until_next_window_plus(RES / 2).await;
    assert!(now() - killed < 3 * RES);
    assert_eq!(deltas(&before, &requests(&cluster)), vec![2; 7]);
    let healed = killed + 2 * RES;
    until_next_window_plus(RES / 2).await;
    for r in [&r1, &r2] {
        same_as_single(
            r,
            &single,
            "/api/v1/model/cluster/metrics/memory/usage",
            healed,
            1,
        )
        .await;
    }
    let page = r1.get("/metrics").await.expect("metrics").1;
    assert_eq!(metric(&page, "heapster_shard_replicas"), Some(2.0));

    // A clean stop deletes the replica's Lease (the others take its nodes at once); the
    // killed one's stays, expired.
    assert_eq!(
        lease_names(&cluster).await,
        [
            "heapster-aggregator",
            "heapster-replica-r0",
            "heapster-replica-r1",
            "heapster-replica-r2"
        ]
    );
    r2.terminate();
    assert!(
        r2.wait_exit(Duration::from_secs(15))
            .is_some_and(|s| s.success())
    );
    let left = lease_names(&cluster).await;
    assert!(
        !left.contains(&"heapster-replica-r2".to_owned()),
        "{left:?}"
    );
    cluster.shutdown().await;
}

/// The Leases in the sharding namespace.
async fn lease_names(cluster: &SimCluster) -> Vec<String> {
    let url = format!(
        "{}/apis/coordination.k8s.io/v1/namespaces/monitoring/leases",
        cluster.api_url().as_str().trim_end_matches('/')
    );
    let body = reqwest::get(url)
        .await
        .expect("list leases")
        .bytes()
        .await
        .expect("body");
    let list: serde_json::Value = serde_json::from_slice(&body).expect("json");
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// The series key and timestamp of a line-protocol line (the fields left out).
fn series_and_time(line: &str) -> (String, i64) {
    let mut escaped = false;
    let mut first_space = None;
    for (i, c) in line.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ' ' if !escaped => {
                first_space = Some(i);
                break;
            }
            _ => escaped = false,
        }
    }
    let series = &line[..first_space.unwrap_or(line.len())];
    let time = line
        .rsplit(' ')
        .next()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    (series.to_owned(), time)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_two_writes_every_tick_once_across_a_kill() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(influx) = Influxd::start() else {
        return;
    };
    let proxy = FaultProxy::start(influx.url()).await;
    let cluster = SimCluster::start(SimOptions {
        nodes: 6,
        pods_per_node: 2,
        ..SimOptions::default()
    })
    .await
    .expect("sim");
    let sink = format!(
        "--sink=influxdb:{}?db=shard&gzip=false",
        proxy.url().as_str().trim_end_matches('/')
    );
    let extra = [sink, "--replication=2".to_owned()];
    let mut r0 = replica(&cluster, "r0", &extra);
    let mut r1 = replica(&cluster, "r1", &extra);
    let mut r2 = replica(&cluster, "r2", &extra);
    steady(&mut [&mut r0, &mut r1, &mut r2], 3).await;
    let from = (now() / RES) * RES;
    until_next_window_plus(RES / 2).await;
    let page = r0.get("/metrics").await.expect("metrics").1;
    let r0_wrote = metric(&page, "heapster_shard_nodes_writing").expect("writing");
    r0.kill();
    for _ in 0..4 {
        until_next_window_plus(RES / 2).await;
    }
    let to = (now() / RES) * RES;
    // Let the sinks deliver.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The standbys wrote r0's nodes' ticks between its last write and their takeover.
    let mut replayed = 0.0;
    for r in [&r1, &r2] {
        let page = r.get("/metrics").await.expect("metrics").1;
        replayed += metric(&page, "heapster_shard_ticks_replayed_total").expect("replayed");
    }
    assert_eq!(
        replayed > 0.0,
        r0_wrote > 0.0,
        "{replayed} ticks replayed, r0 wrote {r0_wrote} nodes"
    );

    let lines = proxy.written_lines();
    let mut count: BTreeMap<(String, i64), usize> = BTreeMap::new();
    for line in &lines {
        *count.entry(series_and_time(line)).or_default() += 1;
    }
    // Before `from` the replicas were still joining: each wrote what it saw as its own.
    let twice: Vec<_> = count
        .iter()
        .filter(|((_, t), n)| *t >= from && **n > 1)
        .map(|((s, t), n)| format!("{n} x {t} {s}"))
        .collect();
    assert!(
        twice.is_empty(),
        "{} points written more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(3)]
    );

    // Every node's memory/usage at every window from `from` to `to`, the ones after the
    // kill included; and the cluster's at every window but the one or two the membership
    // change left incomplete.
    let windows: BTreeSet<i64> = (from / RES..=to / RES).map(|w| w * RES).collect();
    let node_series: BTreeSet<&String> = count
        .keys()
        .map(|(s, _)| s)
        .filter(|s| s.starts_with("memory/usage,") && s.contains("type=node"))
        .collect();
    assert_eq!(node_series.len(), 6, "{node_series:?}");
    for series in node_series {
        let have: BTreeSet<i64> = count
            .keys()
            .filter(|(s, t)| s == series && windows.contains(t))
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(have, windows, "{series}: ticks missing");
    }
    let cluster_windows = count
        .keys()
        .filter(|(s, t)| {
            s.starts_with("memory/usage,") && s.contains("type=cluster") && windows.contains(t)
        })
        .count();
    assert!(
        cluster_windows + 2 >= windows.len(),
        "{cluster_windows} of {}",
        windows.len()
    );
    drop(influx);
    cluster.shutdown().await;
}
