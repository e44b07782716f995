//! Simulator → collector → a real InfluxDB 1.6, checked through Heapster's own Grafana
//! dashboards (`../shared/fixtures/heapster-grafana`): every query and template-variable query
//! returns data, in both schemas. Also the schema itself and a rate checked by hand.

mod common;
mod support;

use std::time::{Duration, Instant};

use heapster_rs::sim;
use heapster_rs::testing::fixtures_dir;
use serde_json::Value as Json;
use support::influxd::Influxd;

/// Every `query` string in a dashboard (panel targets and template variables).
fn queries(doc: &Json, out: &mut Vec<String>) {
    match doc {
        Json::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("query", Json::String(q)) => out.push(q.clone()),
                    _ => queries(v, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// Grafana's substitutions: macros and the template variables' current values.
fn substitute(q: &str) -> String {
    q.replace("$timeFilter", "time > now() - 1h")
        .replace("$interval", "10s")
        .replace("$nodename", "sim-node-0000")
        .replace("$namespace", sim::pod_namespace(0))
        .replace("$podname", &sim::pod_name(0, 0))
}

/// The series of an answer, or an error message.
fn series(answer: &Json) -> Result<&Vec<Json>, String> {
    let result = &answer["results"][0];
    if let Some(e) = result["error"].as_str() {
        return Err(e.to_string());
    }
    result["series"]
        .as_array()
        .ok_or_else(|| "no series".to_string())
}

/// Whether any row of any series has a non-null value after the first (time or key) column.
fn has_data(answer: &Json) -> bool {
    series(answer).is_ok_and(|s| {
        s.iter().any(|serie| {
            serie["values"].as_array().into_iter().flatten().any(|row| {
                row.as_array()
                    .is_some_and(|r| r.iter().skip(1).any(|v| !v.is_null()))
            })
        })
    })
}

async fn wait_for(influx: &Influxd, db: &str, q: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !has_data(&influx.query(db, q).await) {
        assert!(Instant::now() < deadline, "no data for {q} in {db}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heapster_dashboards_return_data_from_what_the_sink_wrote() {
    let Some(fixtures) = fixtures_dir() else {
        return;
    };
    let Some(influx) = Influxd::start() else {
        return;
    };
    let base = influx.url();
    let sinks = [
        format!("--sink=influxdb:{base}?db=k8s&retention=720h&cluster_name=e2e"),
        format!("--sink=influxdb:{base}?db=k8s_wf&withfields=true&cluster_name=e2e"),
    ];
    let mut extra: Vec<&str> = sinks.iter().map(String::as_str).collect();
    extra.push("--store_label=app");
    let app = common::start(
        "simulated:?nodes=3&podsPerNode=6&containersPerPod=2",
        &extra,
    )
    .await;
    // Two ticks give rates; wait for them to reach both databases.
    common::batches(&app, 2, |_| true).await;
    wait_for(
        &influx,
        "k8s",
        r#"SELECT "value" FROM "cpu/usage_rate" WHERE "type" = 'node'"#,
    )
    .await;
    wait_for(
        &influx,
        "k8s_wf",
        r#"SELECT "usage_rate" FROM "cpu" WHERE "type" = 'node'"#,
    )
    .await;
    wait_for(
        &influx,
        "k8s",
        r#"SELECT "value" FROM "cpu/usage_rate" WHERE "type" = 'cluster'"#,
    )
    .await;

    // A node's cpu/usage_rate equals the simulator's configured rate (millicores).
    let answer = influx
        .query("k8s", r#"SELECT last("value") FROM "cpu/usage_rate" WHERE "type" = 'node' AND "nodename" = 'sim-node-0001'"#)
        .await;
    let got = series(&answer).expect("series")[0]["values"][0][1]
        .as_i64()
        .expect("integer value");
    assert_eq!(got as u64, sim::node_cpu_nanocores(1, 6, 2) / 1_000_000);

    // Tags per type, as Heapster wrote them; blacklisted tags never.
    let tag_keys = |answer: &Json| -> Vec<String> {
        series(answer).expect("series")[0]["values"]
            .as_array()
            .expect("values")
            .iter()
            .filter_map(|r| r[0].as_str().map(String::from))
            .collect()
    };
    let keys = tag_keys(
        &influx
            .query("k8s", r#"SHOW TAG KEYS FROM "cpu/usage_rate""#)
            .await,
    );
    for k in [
        "cluster_name",
        "container_base_image",
        "container_name",
        "labels",
        "namespace_name",
        "nodename",
        "pod_name",
        "type",
    ] {
        assert!(keys.contains(&k.to_string()), "tag {k} missing: {keys:?}");
    }
    assert!(
        keys.contains(&"app".to_string()),
        "--store_label=app: {keys:?}"
    );
    for k in ["hostname", "host_id", "pod_id", "namespace_id"] {
        assert!(
            !keys.contains(&k.to_string()),
            "tag {k} must not be written"
        );
    }
    let fs_keys = tag_keys(
        &influx
            .query("k8s", r#"SHOW TAG KEYS FROM "filesystem/usage""#)
            .await,
    );
    assert!(fs_keys.contains(&"resource_id".to_string()));
    // Value types: integers stay integers, rates of bytes are floats.
    for (m, ty) in [
        ("cpu/usage_rate", "integer"),
        ("memory/working_set", "integer"),
        ("network/rx_rate", "float"),
        ("cpu/node_utilization", "float"),
    ] {
        let answer = influx
            .query("k8s", &format!(r#"SHOW FIELD KEYS FROM "{m}""#))
            .await;
        assert_eq!(
            series(&answer).expect("series")[0]["values"][0],
            serde_json::json!(["value", ty]),
            "{m}"
        );
    }
    let rps = influx.query("k8s", "SHOW RETENTION POLICIES").await;
    let rows = &series(&rps).expect("series")[0]["values"];
    assert!(
        rows.as_array()
            .expect("rows")
            .iter()
            .any(|r| r[0] == "default" && r[1] == "720h0m0s" && r[4] == true),
        "retention policy: {rows}"
    );

    // Heapster's dashboards, each against the schema it was made for.
    let dashboards = [
        ("cluster.json", "k8s"),
        ("pods.json", "k8s"),
        ("withfields-cluster.json", "k8s_wf"),
        ("withfields-pods.json", "k8s_wf"),
    ];
    let mut checked = 0;
    for (file, db) in dashboards {
        let text = std::fs::read_to_string(fixtures.join("heapster-grafana").join(file))
            .expect("dashboard");
        let doc: Json = serde_json::from_str(&text).expect("dashboard JSON");
        let mut qs = Vec::new();
        queries(&doc, &mut qs);
        qs.sort();
        qs.dedup();
        assert!(!qs.is_empty(), "{file}: no queries");
        for q in qs {
            let q = substitute(&q);
            let answer = influx.query(db, &q).await;
            if q.contains(r#"sum("limite")"#) {
                // Heapster's own typo: this panel never had data.
                assert!(!has_data(&answer), "{file}: {q}");
                continue;
            }
            assert!(has_data(&answer), "{file}: no data for\n{q}\n{answer}");
            checked += 1;
        }
    }
    assert!(checked > 80, "checked only {checked} queries");
    app.stop().await;
}
