//! The Grafana dashboards for a Prometheus data source (`grafana/dashboards/prometheus/`):
//! what `grafana/generate_prometheus.py` writes, uniform, and every query and template
//! variable returns data from a real Prometheus fed by the collector's remote write.

mod common;
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use heapster_rs::sim;
use serde_json::Value;
use support::influxd::{Prometheus, promql};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(file, dashboard)` for every JSON file.
fn dashboards() -> Vec<(String, Value)> {
    let dir = repo().join("grafana/dashboards/prometheus");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("dashboards dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read");
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).expect("dashboard JSON"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["cluster.json", "namespaces.json", "nodes.json", "pods.json"]
    );
    out
}

/// `(variable, query)` in declaration order.
fn variables(d: &Value) -> Vec<(String, String)> {
    d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| {
            let q = v["query"]["query"].as_str().expect("query").to_string();
            (v["name"].as_str().expect("name").to_string(), q)
        })
        .collect()
}

/// `(panel title, expr)` of every target.
fn targets(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let title = p["title"].as_str().expect("title").to_string();
            out.push((title, t["expr"].as_str().expect("expr").to_string()));
        }
    }
    out
}

#[test]
fn dashboards_are_what_the_generator_writes_and_use_the_provisioned_datasource() {
    if Command::new("python3").arg("--version").output().is_ok() {
        let out = Command::new("python3")
            .arg(repo().join("grafana/generate_prometheus.py"))
            .arg("--check")
            .output()
            .expect("run generate_prometheus.py");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (file, d) in dashboards() {
        assert_eq!(variables(&d)[0].0, "cluster", "{file}");
        for p in d["panels"].as_array().expect("panels") {
            if p["type"] != "row" {
                assert_eq!(p["datasource"]["uid"], "prometheus", "{file}");
            }
        }
        for (title, expr) in targets(&d) {
            assert!(
                expr.contains(r#"cluster="$cluster""#),
                "{file}: {title}: {expr}"
            );
        }
    }
    let ds =
        std::fs::read_to_string(repo().join("grafana/provisioning/datasources/prometheus.yaml"))
            .expect("datasource");
    assert!(ds.contains("uid: prometheus") && ds.contains("type: prometheus"));
}

/// Grafana's substitutions, longest names first.
fn substitute(q: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut names: Vec<&&str> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut q = q.to_string();
    for n in names {
        q = q.replace(&format!("${n}"), &vars[*n]);
    }
    q
}

/// `label_values(expr, label)` as PromQL: one series per value.
fn label_values(q: &str) -> String {
    let inner = q
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(')'))
        .expect("label_values(...)");
    let (expr, label) = inner.rsplit_once(',').expect("expr, label");
    format!("count by ({}) ({expr})", label.trim())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_and_variable_returns_data_from_what_remote_write_wrote() {
    let Some(prom) = Prometheus::start() else {
        return;
    };
    let base = prom.url();
    let sink = format!(
        "--sink=remotewrite:{}?cluster_name=e2e",
        base.join("api/v1/write").expect("url")
    );
    let app = common::start(
        "simulated:?nodes=3&podsPerNode=6&containersPerPod=2",
        &[sink.as_str()],
    )
    .await;
    common::batches(&app, 3, |_| true).await;
    let vars: BTreeMap<&str, String> = [
        ("cluster", "e2e".to_string()),
        ("node", sim::node_name(0)),
        ("namespace", sim::pod_namespace(0).to_string()),
        ("pod", sim::pod_name(0, 0)),
    ]
    .into();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut missing = Vec::new();
    for (file, d) in dashboards() {
        let queries = variables(&d)
            .into_iter()
            .map(|(n, q)| (format!("variable {n}"), label_values(&q)))
            .chain(targets(&d));
        for (what, q) in queries {
            let q = substitute(&q, &vars);
            loop {
                if !promql(&base, &q).await.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    missing.push(format!("{file}: {what}: {q}"));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
    app.stop().await;
    assert!(missing.is_empty(), "no data:\n{}", missing.join("\n"));
}
