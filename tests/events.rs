//! The eventer end to end on loopback: the simulator's apiserver streams core v1 Events over a
//! real watch (adds, updates with a rising `count`, a watch ended by 410 Gone) and a real
//! InfluxDB 1.x receives each update exactly once, in Heapster's two schemas; Heapster's
//! events dashboard answers; a burst into a small buffer stays bounded and is counted.

mod common;
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use heapster_rs::config::{EventerConfig, EventerParsed, parse_eventer};
use heapster_rs::events::{EventerApp, EventerOptions, metrics::reason};
use heapster_rs::sim::{SimCluster, SimEvent, SimOptions};
use serde_json::Value;
use support::influx_data;
use support::influxd::Influxd;

fn eventer_config(api: &url::Url, sinks: &[String]) -> EventerConfig {
    let mut args = vec![
        "eventer".to_string(),
        format!("--source=kubernetes:{api}?inClusterConfig=false"),
        "--healthz-port=0".into(),
        "--healthz-ip=127.0.0.1".into(),
    ];
    args.extend(sinks.iter().cloned());
    match parse_eventer(args, &|_| None) {
        EventerParsed::Run(cfg) => cfg,
        EventerParsed::Exit { code, message } => panic!("rejected ({code}): {message}"),
    }
}

fn fast(max_buffered_events: usize, frequency: Duration) -> Option<EventerOptions> {
    Some(EventerOptions {
        frequency,
        max_buffered_events,
        ..EventerOptions::default()
    })
}

fn event(i: usize, kind: &str) -> SimEvent {
    let namespaces = ["default", "kube-system"];
    SimEvent {
        namespace: namespaces[i % 2].into(),
        kind: kind.into(),
        object_name: format!("{}-{i}", kind.to_lowercase()),
        reason: if i.is_multiple_of(2) {
            "Started"
        } else {
            "BackOff"
        }
        .into(),
        message: format!("event {i}: \"quoted\", with, commas"),
        type_: if i.is_multiple_of(2) {
            "Normal"
        } else {
            "Warning"
        }
        .into(),
        component: "kubelet".into(),
        host: Some("sim-node-0000".into()),
    }
}

/// The single number of `SELECT count(..)`, 0 when there is no data.
async fn count(influx: &Influxd, db: &str, q: &str) -> u64 {
    let v = influx.query(db, q).await;
    v["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

async fn wait_count(influx: &Influxd, db: &str, q: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = count(influx, db, q).await;
        if got == want {
            return;
        }
        assert!(
            got < want && Instant::now() < deadline,
            "{db}: {q}: {got} points, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The rows of a query as JSON objects (column → value; a missing or null column reads as
/// `null`).
async fn rows(influx: &Influxd, db: &str, q: &str) -> Vec<Value> {
    influx_data::rows(&influx.query(db, q).await)
        .into_iter()
        .map(|(_, row)| Value::Object(row.into_iter().collect()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_influxdb_exactly_once_across_a_410() {
    common::init();
    let Some(influx) = Influxd::start() else {
        return;
    };
    let sim = SimCluster::start(SimOptions {
        nodes: 1,
        pods_per_node: 1,
        ..SimOptions::default()
    })
    .await
    .expect("simulator");
    // Present before start: never exported unless they change.
    let pre: Vec<String> = (0..3)
        .map(|i| sim.emit_event(event(100 + i, "Pod")))
        .collect();

    let url = influx.url();
    let cfg = eventer_config(
        &sim.api_url(),
        &[
            format!("--sink=influxdb:{url}?db=ev_default"),
            format!("--sink=influxdb:{url}?db=ev_fields&withfields=true&cluster_name=sim"),
        ],
    );
    let app = EventerApp::start(
        &cfg,
        Arc::new(|_: &str| None),
        fast(1000, Duration::from_millis(200)),
    )
    .await
    .expect("eventer starts");
    app.eventer.synced().await;

    let kinds = ["Pod", "Node", "Pod", "Deployment"];
    let new: Vec<String> = (0..4).map(|i| sim.emit_event(event(i, kinds[i]))).collect();
    // Two bumps in quick succession (likely the same second): both must survive.
    assert_eq!(sim.bump_event(&new[0]), Some(2));
    assert_eq!(sim.bump_event(&new[0]), Some(3));
    assert_eq!(sim.bump_event(&pre[0]), Some(2));
    let q_default = r#"SELECT count("value") FROM "log/events""#;
    wait_count(&influx, "ev_default", q_default, 7).await;

    // The watch ends with 410 Gone; changes made meanwhile arrive through the re-list.
    sim.expire_watches();
    let late: Vec<String> = (4..6).map(|i| sim.emit_event(event(i, "Pod"))).collect();
    assert_eq!(sim.bump_event(&new[1]), Some(2));
    wait_count(&influx, "ev_default", q_default, 10).await;
    // The re-list's counter is bumped when the list completes, which may be just after its
    // events reached InfluxDB: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let page = reqwest::get(format!("http://{}/metrics", app.addr))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        let expired = common::sample(&page, r#"eventer_watch_restarts_total{reason="expired"}"#);
        let relists = common::sample(&page, "eventer_relists_total");
        if expired >= Some(1.0) && relists >= Some(1.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no 410 restart and re-list counted:\n{page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // Nothing more arrives later (no duplicates from the re-list).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&influx, "ev_default", q_default).await, 10);

    // Default schema: every (uid, count) exactly once; the pre-start events only when bumped.
    let got = rows(&influx, "ev_default", r#"SELECT * FROM "log/events""#).await;
    let mut seen = BTreeSet::new();
    for row in &got {
        let value: Value =
            serde_json::from_str(row["value"].as_str().expect("value is a string")).expect("JSON");
        let uid = value["metadata"]["uid"].as_str().expect("uid").to_owned();
        assert_eq!(row["uid"].as_str(), Some(uid.as_str()));
        assert_eq!(row["hostname"].as_str(), Some("sim-node-0000"));
        assert_eq!(row["cluster_name"].as_str(), Some("default"));
        let is_pod = value["involvedObject"]["kind"] == "Pod";
        assert_eq!(row["pod_name"].is_string(), is_pod, "{row:?}");
        assert_eq!(
            row["pod_id"].as_str(),
            value["involvedObject"]["uid"].as_str().filter(|_| is_pod)
        );
        assert!(
            seen.insert((uid, value["count"].as_i64().expect("count"))),
            "duplicate {row:?}"
        );
    }
    let want: BTreeSet<(String, i64)> = [
        (&new[0], 1),
        (&new[0], 2),
        (&new[0], 3),
        (&new[1], 1),
        (&new[1], 2),
        (&new[2], 1),
        (&new[3], 1),
        (&pre[0], 2),
        (&late[0], 1),
        (&late[1], 1),
    ]
    .into_iter()
    .map(|(u, c)| (u.clone(), c))
    .collect();
    assert_eq!(seen, want);

    // withfields=true: measurement `events`, the same ten points, Heapster's tags.
    wait_count(
        &influx,
        "ev_fields",
        r#"SELECT count("message") FROM "events""#,
        10,
    )
    .await;
    let fields = rows(
        &influx,
        "ev_fields",
        r#"SELECT * FROM "events" WHERE "kind" = 'Node'"#,
    )
    .await;
    assert_eq!(fields.len(), 2, "created, then bumped after the 410");
    for row in &fields {
        for (tag, want) in [
            ("uid", new[1].as_str()),
            ("object_name", "node-1"),
            ("type", "Warning"),
            ("kind", "Node"),
            ("component", "kubelet"),
            ("reason", "BackOff"),
            ("namespace_name", "kube-system"),
            ("hostname", "sim-node-0000"),
            ("cluster_name", "sim"),
        ] {
            assert_eq!(row[tag].as_str(), Some(want), "tag {tag}: {row:?}");
        }
        assert_eq!(
            row["message"].as_str(),
            Some("event 1: \"quoted\", with, commas")
        );
    }

    dashboard_answers(&influx, "ev_fields").await;
    app.stop().await;
    sim.shutdown().await;
}

/// Every query of Heapster's events dashboard returns data (with `.*` and with real values).
async fn dashboard_answers(influx: &Influxd, db: &str) {
    let Some(dir) = heapster_rs::testing::fixtures_dir() else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("heapster-grafana/withfields-events.json"))
        .expect("dashboard fixture");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut queries = Vec::new();
    collect_queries(&dashboard, &mut queries);
    assert!(queries.len() >= 7, "{queries:?}");
    let bindings: [&[(&str, &str)]; 2] = [
        &[
            ("$namespace", ".*"),
            ("$kind", ".*"),
            ("$object_name", ".*"),
            ("$type", ".*"),
            ("$reason", ".*"),
        ],
        &[
            ("$namespace", "kube-system"),
            ("$kind", "Node"),
            ("$object_name", "node-1"),
            ("$type", "Warning"),
            ("$reason", "BackOff"),
        ],
    ];
    for vars in bindings {
        for q in &queries {
            let mut q = q.replace("$timeFilter", "time > now() - 1h");
            for (name, value) in vars {
                q = q.replace(name, value);
            }
            let answer = influx.query(db, &q).await;
            let values = &answer["results"][0]["series"][0]["values"];
            let has_data = values.as_array().is_some_and(|v| {
                v.iter().any(|row| {
                    row.as_array()
                        .is_some_and(|r| r.iter().skip(1).any(|x| !x.is_null() && x != 0))
                })
            });
            assert!(has_data, "no data for {q}: {answer}");
        }
    }
}

fn collect_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("query", Value::String(q)) if !q.is_empty() => out.push(q.clone()),
                    _ => collect_queries(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_queries(i, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_stays_within_the_buffer_and_drops_are_counted() {
    common::init();
    let sim = SimCluster::start(SimOptions {
        nodes: 1,
        pods_per_node: 1,
        ..SimOptions::default()
    })
    .await
    .expect("simulator");
    let cfg = eventer_config(&sim.api_url(), &["--sink=log".to_string()]);
    // No flush during the test: everything beyond the bound must be dropped, oldest first.
    let app = EventerApp::start(
        &cfg,
        Arc::new(|_: &str| None),
        fast(1000, Duration::from_secs(3600)),
    )
    .await
    .expect("eventer starts");
    app.eventer.synced().await;
    const BURST: usize = 50_000;
    let started = Instant::now();
    for i in 0..BURST {
        sim.emit_event(event(i, "Pod"));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut max_seen = 0;
    loop {
        let buffered = app.eventer.buffered();
        max_seen = max_seen.max(buffered);
        assert!(buffered <= 1000, "buffer grew to {buffered}");
        let tracked = app.metrics.tracked.get();
        if tracked == BURST as i64
            && app.metrics.dropped_count(reason::BUFFER_FULL) == (BURST - 1000) as u64
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tracked {tracked}, dropped {}",
            app.metrics.dropped_count(reason::BUFFER_FULL)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "{BURST} events through the watch in {:?} (max buffered {max_seen})",
        started.elapsed()
    );
    assert_eq!(app.eventer.buffered(), 1000);
    app.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heapster_event_sink_runs_the_eventer_in_process() {
    let app = common::start("simulated:?nodes=1&podsPerNode=1", &["--event_sink=log"]).await;
    let page = common::metrics(&app).await;
    for series in [
        "heapster_eventer_events_received_total",
        "heapster_eventer_relists_total",
    ] {
        assert!(common::sample(&page, series).is_some(), "{series}: {page}");
    }
    app.stop().await;
}

/// A sharded replica that is not the aggregator counts the events it would export as
/// `standby` and exports none; once the gate opens it exports again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_export_gate_counts_events_as_standby() {
    use std::sync::atomic::{AtomicBool, Ordering};
    common::init();
    let sim = SimCluster::start(SimOptions {
        nodes: 1,
        pods_per_node: 1,
        ..SimOptions::default()
    })
    .await
    .expect("simulator");
    let cfg = eventer_config(&sim.api_url(), &["--sink=log".to_string()]);
    let app = EventerApp::start(
        &cfg,
        Arc::new(|_: &str| None),
        fast(1000, Duration::from_millis(100)),
    )
    .await
    .expect("eventer starts");
    let open = Arc::new(AtomicBool::new(false));
    let gate = Arc::clone(&open);
    app.eventer
        .export_only_when(Arc::new(move || gate.load(Ordering::Relaxed)));
    app.eventer.synced().await;
    let exported = || {
        app.metrics
            .exported
            .get_or_create(&heapster_rs::events::metrics::SinkLabel { sink: "log" })
            .get()
    };
    let wait_for = |what: &'static str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    for i in 0..5 {
        sim.emit_event(event(i, "Pod"));
    }
    wait_for("5 standby drops", &|| {
        app.metrics.dropped_count(reason::STANDBY) == 5
    });
    assert_eq!(exported(), 0);
    open.store(true, Ordering::Relaxed);
    for i in 5..8 {
        sim.emit_event(event(i, "Pod"));
    }
    wait_for("3 exported", &|| exported() == 3);
    assert_eq!(app.metrics.dropped_count(reason::STANDBY), 5);
    app.stop().await;
}
