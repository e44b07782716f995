//! The InfluxDB sink against real servers: schema, retention, outages, the 2.x API, and a
//! round-trip property test of the encoder against the `influxdb_line_protocol` parser.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use heapster_rs::model::{Batch, Metric, MetricSet, SetKey, SetType, Value, ValueType};
use heapster_rs::sink::Sink;
use serde_json::Value as Json;
use support::influx_data::{
    cluster_batch, config, count_at, eventually, init, recent, rows, sample_batch, sink,
};
use support::influxd::{Influxd, VictoriaMetrics, free_port};

type Tags = BTreeMap<String, String>;

/// The tags Heapster writes for a set, computed independently of the encoder.
fn expected_tags(set: &MetricSet, cluster: &str) -> Tags {
    let mut t = Tags::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            t.insert(k.to_owned(), v.to_owned());
        }
    };
    let ty = set.set_type();
    put("type", Some(ty.as_str()));
    put("cluster_name", Some(cluster));
    if !matches!(ty, SetType::Namespace | SetType::Cluster) {
        put("nodename", set.node.as_deref());
    }
    put("namespace_name", set.key.namespace().map(|s| &**s));
    put("pod_name", set.key.pod().map(|s| &**s));
    put("container_name", set.key.container().map(|s| &**s));
    if matches!(ty, SetType::Node | SetType::Pod | SetType::PodContainer) {
        put("labels", set.labels.as_deref());
    }
    if ty == SetType::PodContainer {
        put("container_base_image", set.image.as_deref());
    }
    if ty == SetType::Node {
        put(
            "schedulable",
            set.schedulable.map(|s| if s { "true" } else { "false" }),
        );
    }
    t
}

/// Every point of a batch in the default schema: (measurement, tags, time) → value.
fn expected_points(batch: &Batch, cluster: &str) -> BTreeMap<(String, Tags, i64), Value> {
    let mut out = BTreeMap::new();
    for set in &batch.sets {
        let tags = expected_tags(set, cluster);
        for (m, v) in &set.values {
            out.insert((m.name().to_owned(), tags.clone(), batch.timestamp), v);
        }
        for lv in &set.labeled {
            let mut t = tags.clone();
            t.insert("resource_id".into(), lv.resource_id.to_string());
            out.insert((lv.metric.name().to_owned(), t, batch.timestamp), lv.value);
        }
    }
    out
}

fn first_column(json: &Json) -> Vec<String> {
    rows(json)
        .into_iter()
        .filter_map(|(_, r)| {
            r.values()
                .next()
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn default_schema_reads_back_exactly() {
    init();
    let Some(server) = Influxd::start() else {
        return;
    };
    let mut cfg = config(server.url(), "schema");
    cfg.retention = Some(Duration::from_secs(720 * 3600));
    let mut sink = sink(&cfg);
    let batch = sample_batch(recent(1));
    let want = expected_points(&batch, "test-cluster");
    sink.export(Arc::new(batch)).await;
    sink.flush(Duration::from_secs(20)).await;
    assert_eq!(
        sink.stats().points_written,
        want.len() as u64,
        "{}",
        server.log()
    );

    let json = server.query("schema", "SELECT * FROM /.*/").await;
    let mut got = BTreeMap::new();
    for (name, mut row) in rows(&json) {
        let time = row.remove("time").and_then(|t| t.as_i64()).expect("time");
        let value = row.remove("value").expect("value");
        let tags: Tags = row
            .into_iter()
            .map(|(k, v)| (k, v.as_str().expect("tag").to_owned()))
            .collect();
        got.insert((name, tags, time), value);
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (key, v) in &want {
        match v {
            Value::Int(i) => assert_eq!(got[key].as_i64(), Some(*i), "{key:?}"),
            Value::Float(f) => assert_eq!(got[key].as_f64(), Some(*f), "{key:?}"),
        }
    }

    let measurements = first_column(&server.query("schema", "SHOW MEASUREMENTS").await);
    let mut names: Vec<String> = want.keys().map(|(m, _, _)| m.clone()).collect();
    names.dedup();
    names.sort();
    assert_eq!(measurements, names);

    let keys = first_column(
        &server
            .query("schema", "SHOW TAG KEYS FROM \"cpu/usage_rate\"")
            .await,
    );
    let all = [
        "cluster_name",
        "container_base_image",
        "container_name",
        "labels",
        "namespace_name",
        "nodename",
        "pod_name",
        "schedulable",
        "type",
    ];
    assert_eq!(keys, all);
    let tag_keys = first_column(&server.query("schema", "SHOW TAG KEYS").await);
    for banned in ["hostname", "host_id", "pod_id", "namespace_id"] {
        assert!(!tag_keys.iter().any(|k| k == banned), "{banned} written");
    }
    let per_type = [
        (
            "node",
            &["cluster_name", "labels", "nodename", "schedulable", "type"][..],
        ),
        (
            "sys_container",
            &["cluster_name", "container_name", "nodename", "type"],
        ),
        (
            "pod",
            &[
                "cluster_name",
                "labels",
                "namespace_name",
                "nodename",
                "pod_name",
                "type",
            ],
        ),
        (
            "pod_container",
            &[
                "cluster_name",
                "container_base_image",
                "container_name",
                "labels",
                "namespace_name",
                "nodename",
                "pod_name",
                "type",
            ],
        ),
        ("ns", &["cluster_name", "namespace_name", "type"]),
        ("cluster", &["cluster_name", "type"]),
    ];
    for (ty, tags) in per_type {
        let q = format!("SELECT * FROM \"cpu/usage_rate\" WHERE \"type\" = '{ty}'");
        let found = rows(&server.query("schema", &q).await);
        assert!(!found.is_empty(), "no {ty} rows");
        for (_, row) in found {
            let keys: Vec<&str> = row
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "time" && *k != "value")
                .collect();
            assert_eq!(keys, tags, "tags of {ty}");
            assert_eq!(row["cluster_name"], "test-cluster");
        }
    }

    for (name, row) in rows(&server.query("schema", "SHOW FIELD KEYS").await) {
        let metric = Metric::from_name(&name).expect("known metric");
        let want = match metric.value_type() {
            ValueType::Int => "integer",
            ValueType::Float => "float",
        };
        assert_eq!(
            (row["fieldKey"].as_str(), row["fieldType"].as_str()),
            (Some("value"), Some(want)),
            "{name}"
        );
    }

    let rps = rows(
        &server
            .query("schema", "SHOW RETENTION POLICIES ON \"schema\"")
            .await,
    );
    let default = rps
        .iter()
        .find(|(_, r)| r["name"] == "default")
        .expect("policy `default`");
    assert_eq!(default.1["duration"], "720h0m0s");
    assert_eq!(default.1["default"], true);
}

#[tokio::test]
async fn with_fields_schema() {
    init();
    let Some(server) = Influxd::start() else {
        return;
    };
    let mut cfg = config(server.url(), "fields");
    cfg.with_fields = true;
    let mut sink = sink(&cfg);
    let batch = sample_batch(recent(1));
    let node0 = batch.sets[0].clone();
    sink.export(Arc::new(batch)).await;
    sink.flush(Duration::from_secs(20)).await;

    let measurements = first_column(&server.query("fields", "SHOW MEASUREMENTS").await);
    assert_eq!(
        measurements,
        [
            "cpu",
            "ephemeral_storage",
            "filesystem",
            "memory",
            "network",
            "restart_count",
            "uptime"
        ]
    );
    let q = "SELECT * FROM \"cpu\" WHERE \"type\" = 'node' AND \"nodename\" = 'node-0'";
    let found = rows(&server.query("fields", q).await);
    assert_eq!(found.len(), 1, "one merged line");
    let row = &found[0].1;
    assert_eq!(
        row["usage_rate"].as_i64(),
        node0.get(Metric::CpuUsageRate).map(|v| v.as_i64())
    );
    assert_eq!(
        row["usage"].as_i64(),
        node0.get(Metric::CpuUsage).map(|v| v.as_i64())
    );
    assert_eq!(
        row["node_utilization"].as_f64(),
        node0.get(Metric::CpuNodeUtilization).map(|v| v.as_f64())
    );
    let q = "SELECT * FROM \"uptime\" WHERE \"type\" = 'node' AND \"nodename\" = 'node-0'";
    let found = rows(&server.query("fields", q).await);
    assert_eq!(
        found[0].1["value"].as_i64(),
        node0.get(Metric::Uptime).map(|v| v.as_i64())
    );
    let q = "SELECT \"usage\" FROM \"filesystem\" WHERE \"type\" = 'pod_container' AND \"resource_id\" = 'logs'";
    assert_eq!(rows(&server.query("fields", q).await).len(), 8);
}

#[tokio::test]
async fn outage_loses_nothing() {
    init();
    let Some(mut server) = Influxd::start() else {
        return;
    };
    let cfg = config(server.url(), "outage");
    let mut sink = sink(&cfg);
    let batches: Vec<Batch> = (0..5).map(|i| sample_batch(recent(10 - i))).collect();
    let per_batch = batches[0].point_count() as u64;

    sink.export(Arc::new(batches[0].clone())).await;
    eventually(20, "first batch written", async || {
        sink.stats().points_written == per_batch
    })
    .await;
    server.kill();
    for b in &batches[1..] {
        sink.export(Arc::new(b.clone())).await;
    }
    eventually(20, "failed attempts", async || sink.stats().retries >= 3).await;
    assert_eq!(sink.stats().points_written, per_batch);
    server.restart();
    eventually(30, "everything written", async || {
        sink.stats().points_written == 5 * per_batch
    })
    .await;
    let stats = sink.stats();
    assert_eq!((stats.buffered_points, stats.dropped_buffer_full), (0, 0));
    for b in &batches {
        assert_eq!(
            count_at(&server, "outage", b.timestamp).await,
            per_batch,
            "batch at {}",
            b.timestamp
        );
    }
}

#[tokio::test]
async fn down_at_start_and_small_buffer_drops_only_the_oldest() {
    init();
    let port = free_port();
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
    let batches: Vec<Batch> = (0..6).map(|i| sample_batch(recent(20 - i))).collect();
    let per_batch = batches[0].point_count();
    let mut cfg = config(url, "small");
    cfg.batch_size = 25;
    cfg.buffer_points = per_batch * 5 / 2;
    cfg.concurrency = 1;
    // Nothing listens yet: construction must succeed and exports must not block.
    let mut sink = sink(&cfg);
    for b in &batches {
        sink.export(Arc::new(b.clone())).await;
    }
    let Some(server) = Influxd::start_on(port) else {
        return;
    };
    eventually(30, "buffer drained", async || {
        sink.stats().buffered_points == 0
    })
    .await;
    let stats = sink.stats();
    let total = (6 * per_batch) as u64;
    assert!(stats.dropped_buffer_full > 0);
    assert_eq!(stats.points_written + stats.dropped_buffer_full, total);
    let mut counts = Vec::new();
    for b in &batches {
        counts.push(count_at(&server, "small", b.timestamp).await);
    }
    assert_eq!(
        counts.iter().sum::<u64>(),
        stats.points_written,
        "{counts:?}"
    );
    // Only the oldest went: counts never decrease, and the newest two batches are whole.
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!(
        &counts[4..],
        &[per_batch as u64, per_batch as u64],
        "{counts:?}"
    );
    assert_eq!(counts[0], 0, "{counts:?}");
}

#[tokio::test]
async fn v2_api_against_victoria_metrics() {
    init();
    let Some(vm) = VictoriaMetrics::start() else {
        return;
    };
    let mut cfg = config(vm.url(), "unused");
    cfg.token = Some("s3cr3t-token".into());
    cfg.org = Some("my-org".into());
    cfg.bucket = Some("my-bucket".into());
    let mut sink = sink(&cfg);
    let batch = sample_batch(recent(1));
    let want = expected_points(&batch, "test-cluster");
    sink.export(Arc::new(batch)).await;
    sink.flush(Duration::from_secs(20)).await;
    assert_eq!(sink.stats().points_written, want.len() as u64);

    let series = vm.export().await;
    assert_eq!(series.len(), want.len());
    for s in &series {
        let metric = s["metric"].as_object().expect("labels");
        let name = metric["__name__"].as_str().expect("name");
        let tags: Tags = metric
            .iter()
            .filter(|(k, _)| *k != "__name__")
            .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_owned()))
            .collect();
        let ts = s["timestamps"][0].as_i64().expect("ts") * 1_000_000;
        let measurement = name.strip_suffix("_value").expect("field suffix");
        let v = want
            .get(&(measurement.to_owned(), tags, ts))
            .unwrap_or_else(|| panic!("unexpected {s}"));
        // VictoriaMetrics keeps about 12 significant digits.
        let got = s["values"][0].as_f64().expect("value");
        assert!(
            (got - v.as_f64()).abs() <= 1e-9 * v.as_f64().abs(),
            "{s} vs {v:?}"
        );
    }
}

mod round_trip {
    use heapster_rs::sink::influxdb::encode::{FieldValue, Line, normalized, write_line};
    use heapster_rs::sink::influxdb::schema::{BatchEncoder, SchemaOptions};
    use influxdb_line_protocol::{FieldValue as Parsed, parse_lines};
    use proptest::prelude::*;

    use super::*;

    const ODD: &str = "[a-zA-Z0-9 ,=\"'\\\\/:._\\-\té☃\u{1F600}\n]{1,12}";

    fn field_value() -> impl Strategy<Value = (i64, f64, String, u8)> {
        (
            any::<i64>(),
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            ODD,
            0u8..3,
        )
    }

    proptest! {
        #[test]
        fn every_line_parses_back(
            measurement in ODD.prop_filter("writable", |m| !m.starts_with('#') && !normalized(m).is_empty()),
            tags in proptest::collection::btree_map(ODD, ODD, 0..5),
            fields in proptest::collection::btree_map(ODD.prop_filter("writable", |k| !normalized(k).is_empty()), field_value(), 1..4),
            ts in any::<i64>(),
        ) {
            let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let fields: Vec<(&str, FieldValue<'_>)> = fields.iter().map(|(k, (i, f, s, which))| (k.as_str(), match which {
                0 => FieldValue::Int(*i),
                1 => FieldValue::Float(*f),
                _ => FieldValue::Str(s),
            })).collect();
            let mut buf = Vec::new();
            write_line(&mut buf, &Line { measurement: &measurement, tags: &tags, fields: &fields, timestamp: ts }).expect("writes");
            let text = String::from_utf8(buf).expect("utf8");
            let parsed: Vec<_> = parse_lines(&text).collect::<Result<_, _>>().map_err(|e| TestCaseError::fail(format!("{e}: {text:?}")))?;
            prop_assert_eq!(parsed.len(), 1, "{:?}", text);
            let line = &parsed[0];
            prop_assert_eq!(line.series.measurement.as_str(), normalized(&measurement));
            let mut got: Vec<(String, String)> = line.series.tag_set.iter().flatten().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let mut want: Vec<(String, String)> = tags.iter().map(|(k, v)| (normalized(k), normalized(v))).filter(|(k, v)| !k.is_empty() && !v.is_empty()).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
            prop_assert_eq!(line.field_set.len(), fields.len());
            for ((k, v), (pk, pv)) in fields.iter().zip(&line.field_set) {
                prop_assert_eq!(normalized(k), pk.to_string());
                match (v, pv) {
                    (FieldValue::Int(a), Parsed::I64(b)) => prop_assert_eq!(a, b),
                    (FieldValue::Float(a), Parsed::F64(b)) => prop_assert_eq!(a.to_bits(), b.to_bits()),
                    (FieldValue::Str(a), Parsed::String(b)) => prop_assert_eq!(*a, b.as_str()),
                    (a, b) => prop_assert!(false, "{:?} parsed as {:?}", a, b),
                }
            }
            prop_assert_eq!(line.timestamp, Some(ts));
        }

        #[test]
        fn batches_with_odd_names_parse_back(
            names in proptest::collection::vec(ODD, 6),
            with_fields in any::<bool>(),
        ) {
            let mut batch = sample_batch(1_700_000_000_000_000_000);
            for set in &mut batch.sets {
                set.key = match &set.key {
                    SetKey::PodContainer { .. } => SetKey::PodContainer { namespace: names[0].as_str().into(), pod: names[1].as_str().into(), container: names[2].as_str().into() },
                    k => k.clone(),
                };
                set.labels = set.labels.as_ref().map(|_| names[3].as_str().into());
                set.image = set.image.as_ref().map(|_| names[4].as_str().into());
                for lv in &mut set.labeled {
                    lv.resource_id = names[5].as_str().into();
                }
            }
            let mut chunks = Vec::new();
            let stats = BatchEncoder::new(SchemaOptions { cluster_name: names[0].clone(), with_fields, disable_counter_metrics: false, batch_size: 7, gzip: false, gzip_level: None }).encode(&batch, &mut chunks);
            let mut points = 0;
            let mut lines = 0;
            for c in &chunks {
                let text = std::str::from_utf8(&c.body).expect("utf8");
                for line in parse_lines(text) {
                    let line = line.map_err(|e| TestCaseError::fail(format!("{e}: {text:?}")))?;
                    prop_assert_eq!(line.timestamp, Some(batch.timestamp));
                    let tag = |k: &str| line.tag_value(k).map(|v| v.to_string());
                    let want = |i: usize| Some(normalized(&names[i])).filter(|n| !n.is_empty());
                    prop_assert_eq!(tag("cluster_name"), want(0));
                    if tag("type").as_deref() == Some("pod_container") {
                        prop_assert_eq!(tag("namespace_name"), want(0));
                        prop_assert_eq!(tag("pod_name"), want(1));
                        prop_assert_eq!(tag("container_name"), want(2));
                        prop_assert_eq!(tag("labels"), want(3));
                        prop_assert_eq!(tag("container_base_image"), want(4));
                    }
                    if line.series.measurement.contains("filesystem") {
                        prop_assert_eq!(tag("resource_id"), want(5));
                    }
                    points += line.field_set.len();
                    lines += 1;
                }
            }
            prop_assert_eq!(points, batch.point_count());
            prop_assert_eq!((points, lines), (stats.points, stats.lines));
        }
    }
}

use futures::StreamExt as _;

/// Write throughput against a real InfluxDB (run with `--release --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, not a check"]
async fn write_throughput() {
    init();
    let Some(server) = Influxd::start() else {
        return;
    };
    let mut cfg = config(server.url(), "throughput");
    cfg.concurrency = 4;
    let mut sink = sink(&cfg);
    let batches: Vec<Arc<Batch>> = (0..10)
        .map(|i| Arc::new(cluster_batch(recent(30 - i), 100, 30)))
        .collect();
    let total: u64 = batches.iter().map(|b| b.point_count() as u64).sum();
    let started = std::time::Instant::now();
    for b in &batches {
        sink.export(Arc::clone(b)).await;
    }
    let encoded = started.elapsed();
    eventually(300, "all written", async || {
        sink.stats().points_written == total
    })
    .await;
    let took = started.elapsed();
    let stats = sink.stats();
    let sink_rate = total as f64 / took.as_secs_f64();
    eprintln!(
        "sink: {total} points in {took:?} (encode {encoded:?}): {sink_rate:.0} points/s, {:.1} sent bytes/point",
        stats.bytes_sent as f64 / total as f64
    );

    // The same batches, encoded beforehand, sent by a plain client with the same concurrency:
    // the server's raw ingest rate, so the sink's overhead shows as a ratio.
    let mut encoder = heapster_rs::sink::influxdb::schema::BatchEncoder::new(
        heapster_rs::sink::influxdb::schema::SchemaOptions {
            cluster_name: "default".into(),
            with_fields: false,
            disable_counter_metrics: false,
            batch_size: cfg.batch_size,
            gzip: true,
            gzip_level: None,
        },
    );
    let mut chunks = Vec::new();
    for b in &batches {
        encoder.encode(b, &mut chunks);
    }
    let client = reqwest::Client::new();
    let base = server.url();
    client
        .post(base.join("query?q=CREATE%20DATABASE%20raw").expect("url"))
        .send()
        .await
        .expect("create raw");
    let write_url = base.join("write?db=raw&precision=ns").expect("url");
    let started = std::time::Instant::now();
    let sends = futures::stream::iter(chunks.into_iter().map(|c| {
        let req = client
            .post(write_url.clone())
            .header("Content-Encoding", "gzip")
            .body(c.body);
        async move { req.send().await.expect("raw write").status() }
    }))
    .buffer_unordered(cfg.concurrency);
    let statuses: Vec<_> = futures::StreamExt::collect(sends).await;
    assert!(statuses.iter().all(|s| s.is_success()), "{statuses:?}");
    let raw_rate = total as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "raw client: {raw_rate:.0} points/s; sink / raw = {:.2}",
        sink_rate / raw_rate
    );
}
