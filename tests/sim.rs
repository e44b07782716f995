//! The simulator over real loopback sockets: kubelet payloads and counters, apiserver lists,
//! watches, auth, faults, scale, Leases, a `kube` client against it, and a cluster split
//! over `heapster-sim` processes.

mod common;

use std::time::{Duration, Instant};

use heapster_rs::model::time::parse_rfc3339;
use heapster_rs::sim::{self, KubeletFault, SimAuth, SimCluster, SimOptions};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use serde_json::Value;

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client(cluster: &SimCluster) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    match cluster.ca_pem() {
        Some(ca) => {
            let ca = reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca");
            builder.tls_certs_only([ca])
        }
        None => builder,
    }
}

fn kubelet_url(cluster: &SimCluster, node: usize, path: &str) -> String {
    let scheme = cluster.api_url().scheme().to_owned();
    let ip = cluster.nodes()[node].ip;
    format!("{scheme}://{ip}:{}{path}", cluster.kubelet_port())
}

fn api_url(cluster: &SimCluster, path: &str) -> String {
    format!("{}{path}", cluster.api_url().as_str().trim_end_matches('/'))
}

/// A `kube` client of the cluster, from its kubeconfig.
async fn kube_client(cluster: &SimCluster) -> kube::Client {
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(config).expect("client")
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    let resp = client.get(url).send().await.expect("request");
    assert_eq!(resp.status(), 200, "{url}");
    serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json")
}

fn secs_between(from: &Value, to: &Value) -> i64 {
    let from = parse_rfc3339(from.as_str().expect("time")).expect("rfc3339");
    let to = parse_rfc3339(to.as_str().expect("time")).expect("rfc3339");
    (to - from) / 1_000_000_000
}

fn u(v: &Value) -> i64 {
    v.as_i64().expect("integer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_summary_counters_follow_the_formulas() {
    init();
    let cluster = SimCluster::start(SimOptions::default())
        .await
        .expect("start");
    let http = client(&cluster).build().expect("client");
    let url = kubelet_url(&cluster, 1, "/stats/summary");
    let first = get_json(&http, &url).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = get_json(&http, &url).await;

    assert_eq!(first["node"]["nodeName"], "sim-node-0001");
    let pods = second["pods"].as_array().expect("pods");
    assert_eq!(pods.len(), 4);
    let pod = &second["pods"][2];
    assert_eq!(pod["podRef"]["name"], sim::pod_name(1, 2));
    assert_eq!(pod["podRef"]["namespace"], sim::pod_namespace(2));
    let c = &pod["containers"][1];
    assert_eq!(c["name"], "sidecar");
    let rate = sim::container_cpu_nanocores(1, 2, 1);
    assert_eq!(u(&c["cpu"]["usageNanoCores"]) as u64, rate);
    let elapsed = secs_between(&c["startTime"], &c["cpu"]["time"]);
    assert_eq!(u(&c["cpu"]["usageCoreNanoSeconds"]), rate as i64 * elapsed);
    assert_eq!(
        u(&c["memory"]["workingSetBytes"]) as u64,
        sim::container_working_set_bytes(1, 2, 1)
    );

    // Between the two samples the counter grew by exactly rate × Δt.
    let c1 = &first["pods"][2]["containers"][1];
    let dt = secs_between(&c1["cpu"]["time"], &c["cpu"]["time"]);
    assert!(dt >= 1, "samples {dt} s apart");
    let delta = u(&c["cpu"]["usageCoreNanoSeconds"]) - u(&c1["cpu"]["usageCoreNanoSeconds"]);
    assert_eq!(delta, rate as i64 * dt);
    let rx = u(&pod["network"]["rxBytes"]) - u(&first["pods"][2]["network"]["rxBytes"]);
    assert_eq!(rx, sim::pod_network_rx_bytes_per_sec(1, 2) as i64 * dt);

    // Sums: pod = its containers, node = pods + system containers.
    assert_eq!(
        u(&pod["cpu"]["usageNanoCores"]) as u64,
        sim::pod_cpu_nanocores(1, 2, 2)
    );
    assert_eq!(
        u(&second["node"]["cpu"]["usageNanoCores"]) as u64,
        sim::node_cpu_nanocores(1, 4, 2)
    );
    assert_eq!(
        u(&second["node"]["memory"]["workingSetBytes"]) as u64,
        sim::node_working_set_bytes(1, 4, 2)
    );
    let sys: Vec<_> = second["node"]["systemContainers"]
        .as_array()
        .expect("sys")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect();
    assert_eq!(sys, ["kubelet", "runtime", "misc", "pods"]);

    let stats = cluster.kubelet_stats(1);
    assert_eq!(stats.requests, 2);
    assert_eq!(stats.last_authorization, None);
    let health = http
        .get(kubelet_url(&cluster, 0, "/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.text().await.expect("body"), "ok");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resets_counters_and_bumps_restart_count() {
    init();
    let cluster = SimCluster::start(SimOptions::default())
        .await
        .expect("start");
    let http = client(&cluster).build().expect("client");
    cluster.restart_container(0, 1, 0);
    let summary = get_json(&http, &kubelet_url(&cluster, 0, "/stats/summary")).await;
    let c = &summary["pods"][1]["containers"][0];
    let other = &summary["pods"][1]["containers"][1];
    assert!(
        parse_rfc3339(c["startTime"].as_str().expect("t"))
            > parse_rfc3339(other["startTime"].as_str().expect("t"))
    );
    let elapsed = secs_between(&c["startTime"], &c["cpu"]["time"]).max(0);
    assert_eq!(
        u(&c["cpu"]["usageCoreNanoSeconds"]),
        sim::container_cpu_nanocores(0, 1, 0) as i64 * elapsed
    );
    let pod = get_json(
        &http,
        &api_url(
            &cluster,
            &format!(
                "/api/v1/namespaces/{}/pods/{}",
                sim::pod_namespace(1),
                sim::pod_name(0, 1)
            ),
        ),
    )
    .await;
    assert_eq!(pod["status"]["containerStatuses"][0]["restartCount"], 1);
    assert_eq!(pod["status"]["containerStatuses"][1]["restartCount"], 0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_lists_nodes_pods_and_namespaces() {
    init();
    let opts = SimOptions {
        not_ready: vec![2],
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await.expect("start");
    let http = client(&cluster).build().expect("client");
    let version = get_json(&http, &api_url(&cluster, "/version")).await;
    assert_eq!(version["minor"], "33");
    assert_eq!(
        get_json(&http, &api_url(&cluster, "/api")).await["versions"][0],
        "v1"
    );
    assert_eq!(
        get_json(&http, &api_url(&cluster, "/apis")).await["kind"],
        "APIGroupList"
    );
    assert_eq!(
        get_json(&http, &api_url(&cluster, "/api/v1")).await["kind"],
        "APIResourceList"
    );

    let nodes = get_json(&http, &api_url(&cluster, "/api/v1/nodes")).await;
    assert_eq!(nodes["kind"], "NodeList");
    assert!(nodes["metadata"]["resourceVersion"].is_string());
    let items = nodes["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    let n2 = &items[2];
    assert_eq!(n2["status"]["addresses"][0]["type"], "InternalIP");
    assert_eq!(
        n2["status"]["addresses"][0]["address"],
        cluster.nodes()[2].ip.to_string()
    );
    assert_eq!(
        n2["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
        cluster.kubelet_port()
    );
    let ready = n2["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("ready")
        .clone();
    assert_eq!(ready["status"], "False");

    let pods = get_json(&http, &api_url(&cluster, "/api/v1/pods")).await;
    assert_eq!(pods["items"].as_array().expect("items").len(), 12);
    let pod = &pods["items"][0];
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "registry.k8s.io/app:1.0"
    );
    assert_eq!(pod["status"]["phase"], "Running");
    let on_node = get_json(
        &http,
        &api_url(
            &cluster,
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dsim-node-0001",
        ),
    )
    .await;
    assert_eq!(on_node["items"].as_array().expect("items").len(), 4);
    let in_ns = get_json(&http, &api_url(&cluster, "/api/v1/namespaces/default/pods")).await;
    assert!(
        in_ns["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|p| p["metadata"]["namespace"] == "default")
    );
    let namespaces = get_json(&http, &api_url(&cluster, "/api/v1/namespaces")).await;
    assert_eq!(namespaces["items"].as_array().expect("items").len(), 5);

    // Pagination: limit 5 over 12 pods.
    let mut names = Vec::new();
    let mut cont = String::new();
    loop {
        let page = get_json(
            &http,
            &api_url(&cluster, &format!("/api/v1/pods?limit=5&continue={cont}")),
        )
        .await;
        names.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|p| p["metadata"]["name"].clone()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(c) => cont = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(names.len(), 12);

    let proxied = get_json(
        &http,
        &api_url(&cluster, "/api/v1/nodes/sim-node-0000/proxy/stats/summary"),
    )
    .await;
    assert_eq!(proxied["node"]["nodeName"], "sim-node-0000");
    let missing = http
        .get(api_url(&cluster, "/api/v1/nodes/nope"))
        .send()
        .await
        .expect("get");
    assert_eq!(missing.status(), 404);
    cluster.shutdown().await;
}

/// Newline-delimited JSON from a streaming response.
struct Lines {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Lines {
    async fn next(&mut self) -> Value {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return serde_json::from_slice(&line).expect("watch line");
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.resp.chunk())
                .await
                .expect("watch event in time")
                .expect("chunk")
                .expect("stream open");
            self.buf.extend_from_slice(&chunk);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_added_modified_and_deleted() {
    init();
    let cluster = SimCluster::start(SimOptions::default())
        .await
        .expect("start");
    let http = client(&cluster).build().expect("client");
    let rv =
        get_json(&http, &api_url(&cluster, "/api/v1/nodes")).await["metadata"]["resourceVersion"]
            .as_str()
            .expect("rv")
            .to_owned();
    let url = api_url(
        &cluster,
        &format!(
            "/api/v1/nodes?watch=true&resourceVersion={rv}&timeoutSeconds=30&allowWatchBookmarks=true"
        ),
    );
    let resp = http.get(url).send().await.expect("watch");
    assert_eq!(resp.status(), 200);
    let mut lines = Lines {
        resp,
        buf: Vec::new(),
    };

    let added = cluster.add_node();
    assert_eq!(added, 3);
    let ev = lines.next().await;
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "sim-node-0003");
    cluster.set_ready(3, false);
    let ev = lines.next().await;
    assert_eq!(ev["type"], "MODIFIED");
    let removed_ip = cluster.nodes()[0].ip;
    cluster.remove_node(0);
    let ev = lines.next().await;
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["metadata"]["name"], "sim-node-0000");
    assert_eq!(cluster.nodes().len(), 3);

    // The new node's kubelet serves; the removed one's no longer accepts.
    let gone = format!("http://{removed_ip}:{}/healthz", cluster.kubelet_port());
    assert!(
        http.get(gone)
            .send()
            .await
            .expect_err("refused")
            .is_connect()
    );
    let summary = get_json(&http, &kubelet_url(&cluster, 2, "/stats/summary")).await;
    assert_eq!(summary["node"]["nodeName"], "sim-node-0003");
    assert_eq!(summary["pods"].as_array().expect("pods").len(), 4);

    // Without a resource version a watch starts with ADDED for every current object.
    let url = api_url(&cluster, "/api/v1/nodes?watch=true&timeoutSeconds=5");
    let resp = http.get(url).send().await.expect("watch");
    let mut lines = Lines {
        resp,
        buf: Vec::new(),
    };
    for name in ["sim-node-0001", "sim-node-0002", "sim-node-0003"] {
        let ev = lines.next().await;
        assert_eq!(
            (
                ev["type"].as_str(),
                ev["object"]["metadata"]["name"].as_str()
            ),
            (Some("ADDED"), Some(name))
        );
    }

    // A pod watch resuming from the old version replays the pod events.
    let url = api_url(
        &cluster,
        &format!("/api/v1/pods?watch=true&resourceVersion={rv}&timeoutSeconds=5"),
    );
    let resp = http.get(url).send().await.expect("watch");
    let mut lines = Lines {
        resp,
        buf: Vec::new(),
    };
    let ev = lines.next().await;
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["spec"]["nodeName"], "sim-node-0003");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_token_auth_and_rotation() {
    init();
    let opts = SimOptions {
        https: true,
        auth: SimAuth::Token("secret-1".into()),
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await.expect("start");
    assert_eq!(cluster.api_url().scheme(), "https");
    let http = client(&cluster).build().expect("client");
    let nodes = api_url(&cluster, "/api/v1/nodes");
    let summary = kubelet_url(&cluster, 0, "/stats/summary");
    for url in [&nodes, &summary] {
        assert_eq!(
            http.get(url).send().await.expect("get").status(),
            401,
            "{url}"
        );
        let ok = http
            .get(url)
            .bearer_auth("secret-1")
            .send()
            .await
            .expect("get");
        assert_eq!(ok.status(), 200, "{url}");
    }
    assert_eq!(
        cluster.kubelet_stats(0).last_authorization.as_deref(),
        Some("Bearer secret-1")
    );
    cluster.set_token("secret-2");
    assert_eq!(cluster.token().as_deref(), Some("secret-2"));
    for url in [&nodes, &summary] {
        assert_eq!(
            http.get(url)
                .bearer_auth("secret-1")
                .send()
                .await
                .expect("get")
                .status(),
            401
        );
        assert_eq!(
            http.get(url)
                .bearer_auth("secret-2")
                .send()
                .await
                .expect("get")
                .status(),
            200
        );
    }
    let yaml = cluster.kubeconfig_yaml();
    assert!(yaml.contains("token: \"secret-2\"") && yaml.contains("certificate-authority-data:"));
    let dir = tempfile::tempdir().expect("tempdir");
    cluster
        .write_service_account_dir(dir.path())
        .expect("sa dir");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("token")).expect("token"),
        "secret-2"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("namespace")).expect("ns"),
        "kube-system"
    );
    assert!(
        std::fs::read_to_string(dir.path().join("ca.crt"))
            .expect("ca")
            .contains("BEGIN CERTIFICATE")
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_client_cert_auth() {
    init();
    let opts = SimOptions {
        https: true,
        auth: SimAuth::ClientCert,
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await.expect("start");
    let anonymous = client(&cluster).build().expect("client");
    let nodes = api_url(&cluster, "/api/v1/nodes");
    let summary = kubelet_url(&cluster, 1, "/stats/summary");
    for url in [&nodes, &summary] {
        assert!(
            anonymous.get(url).send().await.is_err(),
            "no client cert must fail: {url}"
        );
    }
    let pem = format!(
        "{}{}",
        cluster.client_cert_pem().expect("cert"),
        cluster.client_key_pem().expect("key")
    );
    let identity = reqwest::Identity::from_pem(pem.as_bytes()).expect("identity");
    let http = client(&cluster).identity(identity).build().expect("client");
    for url in [&nodes, &summary] {
        assert_eq!(
            http.get(url).send().await.expect("get").status(),
            200,
            "{url}"
        );
    }
    assert!(cluster.kubeconfig_yaml().contains("client-key-data:"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_certs_without_ip_san_fail_verification_by_ip() {
    init();
    let opts = SimOptions {
        https: true,
        kubelet_cert_ip_san: false,
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await.expect("start");
    let url = kubelet_url(&cluster, 0, "/stats/summary");
    let strict = client(&cluster).build().expect("client");
    assert!(strict.get(&url).send().await.is_err());
    let lax = client(&cluster)
        .tls_danger_accept_invalid_hostnames(true)
        .build()
        .expect("client");
    assert_eq!(lax.get(&url).send().await.expect("get").status(), 200);
    // The apiserver's certificate does carry 127.0.0.1.
    assert_eq!(
        strict
            .get(api_url(&cluster, "/version"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_faults_behave_as_described() {
    init();
    let huge = 10 << 20;
    let faults = vec![
        (0, KubeletFault::Hang),
        (1, KubeletFault::Status500),
        (2, KubeletFault::Garbage),
        (3, KubeletFault::TruncatedJson),
        (4, KubeletFault::HugeBody(huge)),
        (5, KubeletFault::SlowTrickle),
        (6, KubeletFault::RefuseConnections),
    ];
    let opts = SimOptions {
        nodes: 8,
        faults,
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await.expect("start");
    let http = client(&cluster)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let url = |n| kubelet_url(&cluster, n, "/stats/summary");

    let hang = http.get(url(0)).send().await.expect_err("hang times out");
    assert!(hang.is_timeout());
    assert_eq!(http.get(url(1)).send().await.expect("500").status(), 500);
    let garbage = http.get(url(2)).send().await.expect("garbage");
    assert_eq!(
        garbage.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert!(serde_json::from_slice::<Value>(&garbage.bytes().await.expect("body")).is_err());
    let truncated = http
        .get(url(3))
        .send()
        .await
        .expect("truncated")
        .bytes()
        .await
        .expect("body");
    assert!(truncated.starts_with(b"{\"node\":{"));
    assert!(serde_json::from_slice::<Value>(&truncated).is_err());
    let big = http.get(url(4)).send().await.expect("huge");
    assert_eq!(big.content_length(), Some(huge));
    assert_eq!(big.bytes().await.expect("body").len() as u64, huge);
    let mut slow = http.get(url(5)).send().await.expect("slow headers");
    let mut got = 0;
    let started = Instant::now();
    while let Ok(Some(chunk)) = slow.chunk().await {
        got += chunk.len();
    }
    assert!(got <= 4, "trickled {got} bytes in {:?}", started.elapsed());
    assert!(
        http.get(url(6))
            .send()
            .await
            .expect_err("refused")
            .is_connect()
    );
    assert_eq!(
        http.get(url(7)).send().await.expect("healthy").status(),
        200
    );

    let proxy = |n: usize| {
        api_url(
            &cluster,
            &format!("/api/v1/nodes/{}/proxy/stats/summary", sim::node_name(n)),
        )
    };
    assert_eq!(
        http.get(proxy(1)).send().await.expect("proxy 500").status(),
        500
    );
    assert_eq!(
        http.get(proxy(6))
            .send()
            .await
            .expect("proxy refused")
            .status(),
        503
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_lists_and_watches() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::runtime::watcher;

    init();
    let opts = SimOptions {
        https: true,
        auth: SimAuth::Token("kube-token".into()),
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await.expect("start");
    let client = kube_client(&cluster).await;
    let pods: kube::Api<Pod> = kube::Api::all(client.clone());
    let list = pods
        .list(&kube::api::ListParams::default().limit(5))
        .await
        .expect("list pods");
    assert_eq!(list.items.len(), 5);
    let nodes: kube::Api<Node> = kube::Api::all(client);
    let mut events = watcher(nodes, watcher::Config::default()).boxed();
    let mut seen_init = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("event")
        {
            Some(Ok(watcher::Event::InitApply(_))) => seen_init += 1,
            Some(Ok(watcher::Event::InitDone)) => break,
            other => assert!(matches!(other, Some(Ok(watcher::Event::Init))), "{other:?}"),
        }
    }
    assert_eq!(seen_init, 3);
    cluster.add_node();
    match tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("event")
    {
        Some(Ok(watcher::Event::Apply(node))) => {
            assert_eq!(node.metadata.name.as_deref(), Some("sim-node-0003"))
        }
        other => panic!("unexpected {other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_node_cluster_starts() {
    init();
    let started = Instant::now();
    let opts = SimOptions {
        nodes: 1000,
        https: true,
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await.expect("start");
    println!(
        "1,000-node https cluster started in {:?}",
        started.elapsed()
    );
    let http = client(&cluster).build().expect("client");
    let summary = get_json(&http, &kubelet_url(&cluster, 999, "/stats/summary")).await;
    assert_eq!(summary["node"]["nodeName"], "sim-node-0999");
    let nodes = get_json(&http, &api_url(&cluster, "/api/v1/nodes")).await;
    assert_eq!(nodes["items"].as_array().expect("items").len(), 1000);
    cluster.shutdown().await;
}

/// A `heapster-sim` child process and its stdout lines; killed on drop.
struct SimProcess {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl SimProcess {
    fn start(args: &[String]) -> SimProcess {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_heapster-sim"))
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn heapster-sim");
        let stdout = child.stdout.take().expect("stdout");
        let lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        SimProcess { child, lines }
    }

    fn line(&mut self) -> String {
        self.lines
            .next()
            .expect("a line on stdout")
            .expect("readable stdout")
    }

    /// The value of the next line, which must be `key=VALUE`.
    fn value(&mut self, key: &str) -> String {
        let line = self.line();
        let value = line.strip_prefix(key).and_then(|v| v.strip_prefix('='));
        value
            .unwrap_or_else(|| panic!("{key}=... expected, got {line:?}"))
            .to_owned()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The real binary as an apiserver alone and two processes serving kubelet ranges, agreeing on
/// the layout the first kubelet process picked: the collector finds every node through the
/// apiserver and scrapes each at its kubelet, whichever process serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_processes_serve_every_node_to_the_collector() {
    let mut first = SimProcess::start(&strings(&[
        "--serve=kubelets",
        "--nodes=5",
        "--node-range=0..2",
    ]));
    let port = first.value("kubelet_port");
    let layout = [
        format!("--block={}", first.value("block")),
        format!("--kubelet-port={port}"),
        format!("--start-unix={}", first.value("start_unix")),
    ];
    let mut args = strings(&["--serve=kubelets", "--nodes=5", "--node-range=2..5"]);
    args.extend_from_slice(&layout);
    let mut second = SimProcess::start(&args);
    let mut args = strings(&["--serve=apiserver", "--nodes=5"]);
    args.extend_from_slice(&layout);
    let mut api = SimProcess::start(&args);
    let url = api.line();
    assert_eq!(api.value("kubelet_port"), port);
    assert_eq!(
        second.value("kubelet_port"),
        port,
        "second kubelet process ready"
    );

    let source =
        format!("kubernetes:{url}?inClusterConfig=false&kubeletPort={port}&kubeletHttps=false");
    let app = common::start(&source, &[]).await;
    let batches = common::batches(&app, 1, |b| common::node_names(b).len() == 5).await;
    let newest = batches.last().expect("a batch");
    let names: Vec<String> = (0..5).map(sim::node_name).collect();
    assert_eq!(common::node_names(newest), names);
    let pods = newest
        .sets
        .iter()
        .filter(|s| matches!(s.key, heapster_rs::model::SetKey::Pod { .. }))
        .count();
    assert_eq!(
        pods,
        5 * 4,
        "every pod of every node, from both kubelet processes"
    );
}

#[test]
fn split_processes_refuse_flags_that_do_not_fit() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_heapster-sim"))
            .args(args)
            .output()
            .expect("run heapster-sim")
    };
    for (args, flag) in [
        (&["--serve=apiserver"][..], "--block"),
        (&["--node-range=0..2"][..], "--node-range"),
        (
            &["--serve=kubelets", "--node-range=0..9"][..],
            "--node-range",
        ),
        (&["--serve=kubelets", "--https"][..], "--https"),
    ] {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------
// coordination.k8s.io/v1 Leases, through a kube client: the semantics leader election and the
// sharding membership rely on.

fn lease(name: &str, role: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("heapster.k8s.io/role".to_owned(), role.to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(5),
            ..LeaseSpec::default()
        }),
    }
}

fn api_code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_have_the_apiservers_semantics() {
    init();
    let opts = SimOptions {
        https: true,
        auth: SimAuth::Token("lease-token".into()),
        nodes: 1,
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await.expect("start");
    let client = kube_client(&cluster).await;
    let api: kube::Api<Lease> = kube::Api::namespaced(client.clone(), "ns1");
    let pp = PostParams::default();

    let created = api
        .create(&pp, &lease("one", "replica"))
        .await
        .expect("create");
    let rv1 = created.metadata.resource_version.clone().expect("rv");
    assert_eq!(created.metadata.namespace.as_deref(), Some("ns1"));
    assert_eq!(
        api_code(
            api.create(&pp, &lease("one", "replica"))
                .await
                .expect_err("exists")
        ),
        409
    );
    api.create(&pp, &lease("two", "aggregator"))
        .await
        .expect("create two");
    let other: kube::Api<Lease> = kube::Api::namespaced(client, "ns2");
    other
        .create(&pp, &lease("one", "replica"))
        .await
        .expect("same name elsewhere");

    // Label selectors and namespaces.
    let replicas = api
        .list(&ListParams::default().labels("heapster.k8s.io/role=replica"))
        .await
        .expect("list");
    let names: Vec<_> = replicas
        .iter()
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    assert_eq!(names, ["one"]);
    assert_eq!(
        api.list(&ListParams::default())
            .await
            .expect("all")
            .items
            .len(),
        2
    );

    // Update with the current resourceVersion bumps it; a stale one is a conflict.
    let mut renewed = created.clone();
    renewed.spec.as_mut().expect("spec").holder_identity = Some("b".into());
    let updated = api.replace("one", &pp, &renewed).await.expect("update");
    let rv2 = updated.metadata.resource_version.clone().expect("rv");
    assert!(rv2.parse::<u64>().expect("n") > rv1.parse::<u64>().expect("n"));
    assert_eq!(
        updated.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("b")
    );
    assert_eq!(
        api_code(api.replace("one", &pp, &renewed).await.expect_err("stale")),
        409
    );
    let got = api.get("one").await.expect("get");
    assert_eq!(got.metadata.resource_version, Some(rv2));
    assert_eq!(got.metadata.uid, created.metadata.uid);

    // Absent: 404 on get, update and delete.
    let mut ghost = lease("ghost", "replica");
    ghost.metadata.resource_version = Some("1".into());
    assert_eq!(api_code(api.get("ghost").await.expect_err("absent")), 404);
    assert_eq!(
        api_code(api.replace("ghost", &pp, &ghost).await.expect_err("absent")),
        404
    );
    api.delete("one", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(api_code(api.get("one").await.expect_err("deleted")), 404);
    assert_eq!(
        api_code(
            api.delete("one", &DeleteParams::default())
                .await
                .expect_err("gone")
        ),
        404
    );
    cluster.shutdown().await;
}
