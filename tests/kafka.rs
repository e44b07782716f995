//! The `kafka` sink against a real Kafka-protocol broker (`tansu` on 127.0.0.1), read back by a
//! consumer: the simulator's known values in Heapster's JSON messages, events once each,
//! compressed record batches, an outage longer than the memory queue (every message once), and
//! bad options refused with exit 2.

mod common;
mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use heapster_rs::config::{KafkaCompression, KafkaConfig};
use heapster_rs::model::{Batch, Metric, SetKey, Value};
use heapster_rs::sim;
use heapster_rs::sink::Sink;
use heapster_rs::sink::delivery::SpoolConfig;
use heapster_rs::sink::kafka::KafkaSink;
use prometheus_client::registry::Registry;
use support::influx_data::{eventually, fast, recent, sample_batch};
use support::tansu::{Read, Reader, Tansu};

fn config(broker: &str, topic: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: vec![broker.to_string()],
        timeseries_topic: topic.to_string(),
        events_topic: "heapster-events".into(),
        compression: KafkaCompression::None,
        user: None,
        password: None,
        ca_cert: None,
        cert: None,
        key: None,
        insecure_ssl: false,
        batch_size: 50,
        concurrency: 2,
        buffer_points: 1_000_000,
        spool: SpoolConfig::default(),
    }
}

/// Reads `topic` until `done` holds for everything read (up to a minute).
async fn read_until(
    reader: &mut Reader,
    broker: &str,
    topic: &str,
    all: &mut Vec<Read>,
    done: impl Fn(&[Read]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        all.extend(reader.read(broker, topic).await);
        if done(all) {
            return;
        }
        assert!(Instant::now() < deadline, "read {} messages", all.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Name, tags and timestamp: what identifies a point.
fn identity(r: &Read) -> String {
    format!(
        "{} {} {}",
        r.value["MetricsName"], r.value["MetricsTags"], r.value["MetricsTimestamp"]
    )
}

fn rfc3339(ts: i64) -> String {
    heapster_rs::model::time::format_rfc3339(ts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_values_come_back_in_heapsters_json() {
    common::init();
    let Some(broker) = Tansu::start() else {
        return;
    };
    broker.create_topic("heapster-metrics", 3);
    let sink = format!("--sink=kafka:?brokers={}&compression=gzip", broker.broker());
    let app = common::start(
        "simulated:?nodes=3&podsPerNode=6&containersPerPod=2",
        &[sink.as_str()],
    )
    .await;
    // Two ticks give rates.
    let batches = common::batches(&app, 2, |_| true).await;
    let last = Arc::clone(batches.last().expect("a batch"));
    let ts = rfc3339(last.timestamp);
    let want = last.point_count();
    let mut reader = Reader::default();
    let mut all = Vec::new();
    read_until(
        &mut reader,
        &broker.broker(),
        "heapster-metrics",
        &mut all,
        |all| {
            all.iter()
                .filter(|r| r.value["MetricsTimestamp"] == *ts)
                .count()
                >= want
        },
    )
    .await;
    let tick: Vec<&Read> = all
        .iter()
        .filter(|r| r.value["MetricsTimestamp"] == *ts)
        .collect();
    // Every value of the tick once, as one message each.
    let mut seen = BTreeMap::new();
    for r in &tick {
        *seen.entry(identity(r)).or_insert(0) += 1;
    }
    assert_eq!(tick.len(), want);
    assert!(seen.values().all(|&n| n == 1), "duplicates");

    // Heapster's shape: four fields, the value under "value", the tick's time in UTC.
    for r in &tick {
        let obj = r.value.as_object().expect("an object");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "MetricsName",
                "MetricsTags",
                "MetricsTimestamp",
                "MetricsValue"
            ]
        );
        assert!(r.value["MetricsValue"]["value"].is_number(), "{}", r.value);
        assert_eq!(r.timestamp_ms, last.timestamp / 1_000_000);
        // Keyed by node: one node's points on one partition.
        if let Some(node) = r.value["MetricsTags"]["nodename"].as_str() {
            assert_eq!(r.key.as_deref(), Some(node));
        }
    }
    let find = |name: &str, tags: &[(&str, &str)]| -> &serde_json::Value {
        let hits: Vec<&&Read> = tick
            .iter()
            .filter(|r| {
                r.value["MetricsName"] == name
                    && tags
                        .iter()
                        .all(|(k, v)| r.value["MetricsTags"][*k].as_str() == Some(*v))
            })
            .collect();
        assert_eq!(hits.len(), 1, "{name} {tags:?}");
        &hits[0].value
    };
    // A node's CPU rate: the simulator's, in millicores.
    let millicores = sim::node_cpu_nanocores(1, 6, 2) / 1_000_000;
    let m = find(
        "cpu/usage_rate",
        &[("type", "node"), ("nodename", "sim-node-0001")],
    );
    assert_eq!(m["MetricsValue"]["value"], millicores);
    // A container's working set, with Heapster's tags.
    let (ns, pod, container) = (
        sim::pod_namespace(2),
        sim::pod_name(0, 2),
        sim::container_name(1),
    );
    let m = find(
        "memory/working_set",
        &[
            ("type", "pod_container"),
            ("namespace_name", ns),
            ("pod_name", &pod),
            ("container_name", &container),
        ],
    );
    assert_eq!(
        m["MetricsValue"]["value"],
        sim::container_working_set_bytes(0, 2, 1)
    );
    assert_eq!(m["MetricsTags"]["nodename"], "sim-node-0000");
    // A float Heapster computes: exactly what it computed.
    let rate = common::pod_float(&last, &pod, Metric::NetworkRxRate);
    let m = find("network/rx_rate", &[("type", "pod"), ("pod_name", &pod)]);
    assert_eq!(m["MetricsValue"]["value"].as_f64(), Some(rate));
    // A labeled value carries its resource_id.
    let fs = tick
        .iter()
        .find(|r| r.value["MetricsName"] == "filesystem/usage")
        .expect("a filesystem/usage message");
    assert!(
        fs.value["MetricsTags"]["resource_id"].is_string(),
        "{}",
        fs.value
    );
    app.stop().await;
}

#[tokio::test]
async fn compressed_batches_round_trip() {
    common::init();
    let Some(broker) = Tansu::start() else {
        return;
    };
    for (i, compression) in [
        KafkaCompression::Gzip,
        KafkaCompression::Snappy,
        KafkaCompression::Lz4,
    ]
    .into_iter()
    .enumerate()
    {
        let topic = format!("compressed-{i}");
        broker.create_topic(&topic, 2);
        let mut cfg = config(&broker.broker(), &topic);
        cfg.compression = compression;
        let mut sink = KafkaSink::new(&cfg, &mut Registry::default(), fast()).expect("sink");
        let batch = sample_batch(recent(1));
        sink.export(Arc::new(batch.clone())).await;
        let want = batch.point_count() as u64 - sink.stats().dropped_non_finite;
        eventually(30, "written", async || sink.stats().points_written == want).await;
        let mut all = Vec::new();
        read_until(
            &mut Reader::default(),
            &broker.broker(),
            &topic,
            &mut all,
            |a| a.len() as u64 >= want,
        )
        .await;
        assert_eq!(all.len() as u64, want, "{compression:?}");
        // The values are those of the batch.
        let cpu: Vec<_> = all
            .iter()
            .filter(|r| {
                r.value["MetricsName"] == "cpu/usage_rate"
                    && r.value["MetricsTags"]["type"] == "node"
                    && r.value["MetricsTags"]["nodename"] == "node-0"
            })
            .collect();
        let node0 = batch
            .sets
            .iter()
            .find(|s| matches!(&s.key, SetKey::Node { node } if &**node == "node-0"))
            .and_then(|s| s.values.get(Metric::CpuUsageRate));
        let Some(Value::Int(v)) = node0 else {
            panic!("{node0:?}")
        };
        assert_eq!(cpu.len(), 1);
        assert_eq!(cpu[0].value["MetricsValue"]["value"], v);
        sink.flush(Duration::from_secs(5)).await;
    }
}

fn export_count(batches: &[Batch]) -> usize {
    batches.iter().map(Batch::point_count).sum()
}

#[tokio::test]
async fn an_outage_longer_than_the_buffer_delivers_every_message_once() {
    common::init();
    let Some(mut broker) = Tansu::start() else {
        return;
    };
    let topic = "outage";
    broker.create_topic(topic, 2);
    let spool = tempfile::tempdir().expect("dir");
    let batches: Vec<Batch> = (0..5).map(|i| sample_batch(recent(10 - i))).collect();
    let per_batch = batches[0].point_count();
    let mut cfg = config(&broker.broker(), topic);
    cfg.buffer_points = per_batch / 3;
    cfg.batch_size = 10;
    cfg.spool = SpoolConfig {
        dir: Some(spool.path().to_owned()),
        bytes: 1 << 30,
    };
    let mut tuning = fast();
    tuning.request_timeout = Duration::from_secs(2);
    let mut sink = KafkaSink::new(&cfg, &mut Registry::default(), tuning).expect("sink");
    let mut reader = Reader::default();
    let mut all = Vec::new();

    // The first tick while the broker is up, read back before it goes.
    sink.export(Arc::new(batches[0].clone())).await;
    eventually(30, "the first tick written", async || {
        sink.stats().points_written > 0 && sink.stats().buffered_points == 0
    })
    .await;
    let first = sink.stats().points_written as usize;
    read_until(&mut reader, &broker.broker(), topic, &mut all, |a| {
        a.len() >= first
    })
    .await;

    // Down for longer than the memory queue lasts: the rest goes to the spool.
    broker.kill();
    for b in &batches[1..] {
        sink.export(Arc::new(b.clone())).await;
    }
    eventually(30, "the outage spooled", async || {
        let s = sink.stats();
        s.spooled_bytes > 0 && s.buffered_points == 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Back (empty: in-memory storage), the topic made again; the spool drains.
    broker.restart();
    broker.create_topic(topic, 2);
    reader.reset();
    eventually(90, "the spool drained", async || {
        let s = sink.stats();
        s.spooled_bytes == 0 && s.buffered_points == 0
    })
    .await;
    let stats = sink.stats();
    let total = export_count(&batches) - stats.dropped_non_finite as usize;
    assert_eq!(stats.points_written as usize, total, "{stats:?}");
    read_until(&mut reader, &broker.broker(), topic, &mut all, |a| {
        a.len() >= total
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    all.extend(reader.read(&broker.broker(), topic).await);
    let mut seen = BTreeMap::new();
    for r in &all {
        *seen.entry(identity(r)).or_insert(0usize) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(seen.len(), total);
    // Every tick is there, whole.
    for b in &batches {
        let ts = rfc3339(b.timestamp);
        let n = all
            .iter()
            .filter(|r| r.value["MetricsTimestamp"] == *ts)
            .count();
        assert!(n > 0 && n <= b.point_count(), "{ts}: {n}");
    }
}

#[tokio::test]
async fn events_arrive_once_each_in_heapsters_shape() {
    use heapster_rs::config::{EventerParsed, parse_eventer};
    use heapster_rs::events::{EventerApp, EventerOptions};
    use heapster_rs::sim::{SimCluster, SimEvent, SimOptions};

    common::init();
    let Some(broker) = Tansu::start() else {
        return;
    };
    broker.create_topic("heapster-events", 2);
    let sim = SimCluster::start(SimOptions {
        nodes: 1,
        pods_per_node: 1,
        ..SimOptions::default()
    })
    .await
    .expect("simulator");
    let args = vec![
        "eventer".to_string(),
        format!(
            "--source=kubernetes:{}?inClusterConfig=false",
            sim.api_url()
        ),
        "--healthz-port=0".into(),
        "--healthz-ip=127.0.0.1".into(),
        format!(
            "--sink=kafka:?brokers={}&compression=snappy",
            broker.broker()
        ),
    ];
    let cfg = match parse_eventer(args, &|_| None) {
        EventerParsed::Run(cfg) => cfg,
        EventerParsed::Exit { code, message } => panic!("rejected ({code}): {message}"),
    };
    let app = EventerApp::start(
        &cfg,
        Arc::new(|_: &str| None),
        Some(EventerOptions {
            frequency: Duration::from_millis(200),
            ..EventerOptions::default()
        }),
    )
    .await
    .expect("eventer starts");
    app.eventer.synced().await;
    let event = |i: usize, kind: &str| SimEvent {
        namespace: "default".into(),
        kind: kind.into(),
        object_name: format!("{}-{i}", kind.to_lowercase()),
        reason: "Started".into(),
        message: format!("event {i}: \"quoted\""),
        type_: "Normal".into(),
        component: "kubelet".into(),
        host: Some("sim-node-0000".into()),
    };
    let uids: Vec<String> = [(0, "Pod"), (1, "Node"), (2, "Pod")]
        .iter()
        .map(|(i, k)| sim.emit_event(event(*i, k)))
        .collect();
    assert_eq!(sim.bump_event(&uids[0]), Some(2));
    let mut all = Vec::new();
    read_until(
        &mut Reader::default(),
        &broker.broker(),
        "heapster-events",
        &mut all,
        |a| a.len() >= 4,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut seen = BTreeMap::new();
    for r in &all {
        let obj = r.value.as_object().expect("an object");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        assert_eq!(keys, ["EventTags", "EventTimestamp", "EventValue"]);
        let event: serde_json::Value =
            serde_json::from_str(r.value["EventValue"].as_str().expect("a string")).expect("JSON");
        let uid = event["metadata"]["uid"].as_str().expect("uid").to_owned();
        let tags = &r.value["EventTags"];
        assert_eq!(tags["eventID"], *uid);
        assert_eq!(tags["hostname"], "sim-node-0000");
        let is_pod = event["involvedObject"]["kind"] == "Pod";
        assert_eq!(tags["pod_name"].is_string(), is_pod, "{tags}");
        assert_eq!(
            tags["pod_id"],
            event["involvedObject"]["uid"]
                .clone()
                .as_str()
                .filter(|_| is_pod)
                .map_or(serde_json::Value::Null, Into::into)
        );
        assert!(
            r.value["EventTimestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        *seen.entry((uid, event["count"].as_i64())).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    assert_eq!(seen.get(&(uids[0].clone(), Some(2))), Some(&1));
    app.stop().await;
}

#[test]
fn bad_options_exit_2_naming_each() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_heapster"))
        .arg("--sink=kafka:?brokers=kafka&compresion=gzip&password=hunter2")
        .env_clear()
        .output()
        .expect("run heapster");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("option brokers"), "{stderr}");
    assert!(stderr.contains("unknown option \"compresion\""), "{stderr}");
    assert!(stderr.contains("option user"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eventer"))
        .args(["--source=kubernetes:https://k", "--sink=kafka:?brokers=k:x"])
        .env_clear()
        .output()
        .expect("run eventer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("option brokers"), "{stderr}");
}
