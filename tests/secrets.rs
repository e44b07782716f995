//! Secrets never leak. The real `heapster` binary runs at debug level against the simulator
//! with a bearer token (service-account token file), a client key (kubeconfig) and InfluxDB
//! passwords and tokens (one sink answering 401, one unreachable); then its logs, `/metrics`,
//! API error bodies, a refused command line's message and the `Debug` of a parsed config are
//! searched for every secret, raw and base64-encoded.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use heapster_rs::config::{Parsed, parse};
use heapster_rs::sim::{SimAuth, SimCluster, SimOptions};

const TOKEN: &str = "tok-Zq8xSECRETbearer41";
const PASSWORD: &str = "pw-Vy3SECRETinflux77";
const INFLUX_TOKEN: &str = "tok2-Kx5SECRETinfluxv2";

/// Everything that must never be printed: each secret, its base64, and the basic-auth header
/// value it would travel in; for the client key, 32-character pieces of its base64 body and of
/// the kubeconfig's `client-key-data`.
fn forbidden(client_key_pem: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in [TOKEN, PASSWORD, INFLUX_TOKEN] {
        out.push(s.to_string());
        out.push(STANDARD.encode(s));
        out.push(STANDARD.encode(format!("heapster:{s}")));
    }
    let body: String = client_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let data = STANDARD.encode(client_key_pem);
    for text in [&body, &data] {
        for start in (0..text.len().saturating_sub(32)).step_by(32) {
            out.push(text[start..start + 32].to_string());
        }
    }
    out
}

fn assert_clean(what: &str, text: &str, forbidden: &[String]) {
    for f in forbidden {
        assert!(!text.contains(f.as_str()), "{what} leaks {f:?}:\n{text}");
    }
}

/// A fake InfluxDB with authentication on: `/ping` answers, everything else is refused with
/// 401. It counts the requests it received, and those that carried the password (proof that
/// the secret was in use).
async fn influx_401() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (seen, with_password) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let basic = format!("Basic {}", STANDARD.encode(format!("heapster:{PASSWORD}")));
    let (s, p) = (Arc::clone(&seen), Arc::clone(&with_password));
    let ping = || async {
        (
            http::StatusCode::NO_CONTENT,
            [("x-influxdb-version", "1.8.10")],
        )
    };
    let app = axum::Router::new()
        .route("/ping", axum::routing::get(ping).head(ping))
        .fallback(move |headers: http::HeaderMap| {
            let (s, p, basic) = (Arc::clone(&s), Arc::clone(&p), basic.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                if headers
                    .get(http::header::AUTHORIZATION)
                    .is_some_and(|v| v.as_bytes() == basic.as_bytes())
                {
                    p.fetch_add(1, Ordering::SeqCst);
                }
                (
                    http::StatusCode::UNAUTHORIZED,
                    r#"{"error":"authorization failed"}"#,
                )
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen, with_password)
}

/// Polls `check` every 100 ms until it holds (at most 60 s; a deadline, not a timed assertion);
/// `log` is shown if it never does.
async fn until(what: &str, logs: [&Path; 2], mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}{}",
            read(logs[0]),
            read(logs[1])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A log file without its ANSI colours.
fn read(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    out.push_str(rest);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_logs_metrics_errors_or_debug_output() {
    common::init();
    let cluster = SimCluster::start(SimOptions {
        nodes: 2,
        pods_per_node: 2,
        containers_per_pod: 1,
        https: true,
        auth: SimAuth::ClientCert,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts");
    let key_pem = cluster.client_key_pem().expect("client key").to_string();
    let forbidden = forbidden(&key_pem);

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).expect("kubeconfig");
    assert!(read(&kubeconfig).contains(&STANDARD.encode(&key_pem)));
    let sa = dir.path().join("sa");
    std::fs::create_dir_all(&sa).expect("sa dir");
    std::fs::write(sa.join("token"), TOKEN).expect("token file");
    let source = format!(
        "--source=kubernetes:{}?inClusterConfig=false&auth={}&useServiceAccount=true&serviceAccountDir={}",
        cluster.api_url(),
        kubeconfig.display(),
        sa.display()
    );
    let (influx, influx_seen, influx_with_password) = influx_401().await;
    let unreachable = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };

    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_heapster"))
        .args([
            source.as_str(),
            &format!("--sink=influxdb:{influx}?user=heapster&pw=$INFLUX_PW&version=1"),
            &format!("--sink=influxdb:{unreachable}?version=2&token=$INFLUX_TOKEN&org=o"),
            // The same secrets through the other network sinks: remote write answered 401 and
            // unreachable, Kafka (SASL PLAIN) with no broker.
            &format!("--sink=remotewrite:{influx}/api/v1/write?user=heapster&pw=$INFLUX_PW"),
            &format!("--sink=remotewrite:{unreachable}/api/v1/write?token=$INFLUX_TOKEN"),
            &format!(
                "--sink=kafka:?brokers={}&user=heapster&password=$INFLUX_PW",
                unreachable.trim_start_matches("http://")
            ),
            "--metric_resolution=5s",
            "--heapster-port=0",
            "--listen_ip=127.0.0.1",
            "--log-level=debug",
        ])
        .env("INFLUX_PW", PASSWORD)
        .env("INFLUX_TOKEN", INFLUX_TOKEN)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("heapster starts");

    // The address it serves on, from its log line `serving ... addr=127.0.0.1:PORT`.
    let mut base = String::new();
    until("the serving address in the log", [&out, &err], async || {
        let log = read(&out) + &read(&err);
        if let Ok(Some(status)) = child.try_wait() {
            panic!("heapster exited ({status}):\n{log}");
        }
        let found = log
            .lines()
            .filter(|l| l.contains("serving /healthz"))
            .find_map(|l| l.split("addr=").nth(1))
            .and_then(|a| a.split_whitespace().next());
        if let Some(addr) = found {
            base = format!("http://{addr}");
        }
        !base.is_empty()
    })
    .await;
    let http = reqwest::Client::new();
    until(
        "a batch, and InfluxDB refusing a write",
        [&out, &err],
        async || {
            let healthy = http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            healthy && influx_seen.load(Ordering::SeqCst) >= 3
        },
    )
    .await;

    // The secrets were in use: the token reached the kubelets, the password InfluxDB.
    assert_eq!(
        cluster.kubelet_stats(0).last_authorization,
        Some(format!("Bearer {TOKEN}"))
    );
    assert!(influx_with_password.load(Ordering::SeqCst) > 0);

    let mut bodies = String::new();
    for path in [
        "/metrics",
        "/healthz",
        "/api/v1/model/nodes/nope/metrics/cpu/usage_rate",
        "/api/v1/model/nodes/sim-node-0000/metrics/cpu/usage_rate?start=yesterday",
        "/api/v1/model/namespaces/x/pod-list/a,,b/metrics/cpu-usage",
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=a%20in%20(",
        "/apis/metrics.k8s.io/v1beta1/nodes/nope",
        "/apis/metrics.k8s.io/v1beta1/nodes?watch=true",
        "/no/such/route",
    ] {
        let res = http.get(format!("{base}{path}")).send().await.expect(path);
        bodies.push_str(&format!("{path}: {}\n", res.text().await.expect("body")));
    }
    assert!(bodies.contains("heapster_influxdb_requests"), "{bodies}");
    assert_clean("API answers and /metrics", &bodies, &forbidden);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    child.wait().expect("heapster exits");
    let logs = read(&out) + &read(&err);
    assert!(logs.contains("DEBUG"), "debug logging on:\n{logs}");
    assert_clean("the debug log", &logs, &forbidden);
    cluster.shutdown().await;

    // A refused command line: secrets in options, repeated, misplaced and out of range.
    let refused = Command::new(env!("CARGO_BIN_EXE_heapster"))
        .args([
            &format!("--sink=influxdb:http://127.0.0.1:1?pw={PASSWORD}&pw={PASSWORD}x"),
            &format!("--sink=influxdb:http://127.0.0.1:1?pw=a&{PASSWORD}&retention=$INFLUX_PW"),
            &format!("--sink=influxdb:http://heapster:{PASSWORD}@127.0.0.1:1"),
            "--sink=influxdb:http://127.0.0.1:1?token=$INFLUX_TOKEN&concurrency=$INFLUX_TOKEN",
            "--source=kubernetes:https://127.0.0.1:1?kubeletPort=$INFLUX_PW&bogus=$INFLUX_PW",
        ])
        .env("INFLUX_PW", PASSWORD)
        .env("INFLUX_TOKEN", INFLUX_TOKEN)
        .output()
        .expect("heapster runs");
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr).into_owned()
        + &String::from_utf8_lossy(&refused.stdout);
    assert!(message.contains("--sink"), "{message}");
    assert_clean("the refused command line", &message, &forbidden);

    // What a panic would print: the Debug of the parsed configuration.
    let env = |name: &str| match name {
        "PW" => Some(PASSWORD.to_string()),
        "TOKEN" => Some(INFLUX_TOKEN.to_string()),
        _ => None,
    };
    let parsed = parse(
        [
            "heapster",
            "--sink=influxdb:http://127.0.0.1:1?pw=$PW&token=$TOKEN",
            &format!("--event_sink=influxdb:http://127.0.0.1:1?pw={PASSWORD}"),
        ],
        &env,
    );
    let config = match parsed {
        Parsed::Run(config) => config,
        Parsed::Exit { code, message } => panic!("refused ({code}): {message}"),
    };
    assert_clean(
        "the Debug of the config",
        &format!("{config:?} {config:#?}"),
        &forbidden,
    );
}
