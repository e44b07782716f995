//! Who may read what on each port: the plain port with and without `--plain_port_apis`, and
//! the secure port's model API authorized by the simulator's apiserver (TokenReview and
//! SubjectAccessReview over real HTTPS), per namespace.

mod api_support;
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use heapster_rs::sim::{self, SimAuth, SimCluster, SimOptions, SimRule, SimSubject};

/// A free port on 127.0.0.1 (the secure port takes a number; 0 means off).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The status and body of a GET.
async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("sent");
    let code = res.status().as_u16();
    (code, res.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_plain_apis_only_the_secure_port_answers_them_to_authorized_readers() {
    common::init();
    let cluster = SimCluster::start(SimOptions {
        nodes: 2,
        pods_per_node: 5,
        https: true,
        auth: SimAuth::Token("collector-token".into()),
        ..SimOptions::default()
    })
    .await
    .expect("simulator");
    let metrics = "metrics.k8s.io";
    // A cluster-wide reader (like `view` bound cluster-wide), a reader of team-a only (`view`
    // bound in team-a), and an authenticated user with no grant.
    cluster.add_user("admin-token", "grafana", &[]);
    cluster.add_user("team-token", "alice", &["team-a-devs"]);
    cluster.add_user("nobody-token", "mallory", &[]);
    let reader = SimSubject::User("grafana".into());
    cluster.allow(SimRule::resources(
        reader,
        metrics,
        &["pods", "nodes"],
        &["get", "list"],
    ));
    let team = SimSubject::Group("team-a-devs".into());
    cluster.allow(
        SimRule::resources(team, metrics, &["pods"], &["get", "list"]).in_namespace("team-a"),
    );

    let (_dir, source) = common::in_cluster_source(&cluster);
    let secure_port = format!("--secure_port={}", free_port());
    let app = common::start(&source, &[&secure_port, "--plain_port_apis=false"]).await;
    common::batches(&app, 1, |b| common::node_names(b).len() == 2).await;

    // The plain port: health and self-metrics only.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let p = |path: &str| format!("http://{}{path}", app.addr);
    assert_eq!(get(&plain, &p("/healthz"), None).await.0, 200);
    let (code, page) = get(&plain, &p("/metrics"), None).await;
    assert_eq!(code, 200);
    assert!(page.contains("heapster_"), "{page}");
    for path in [
        "/api/v1/model/nodes",
        "/api/v1/model/namespaces/team-a/pods",
        "/apis/metrics.k8s.io/v1beta1/nodes",
        "/apis/metrics.k8s.io/v1beta1/namespaces/team-a/pods",
        "/apis/metrics/v1alpha1/nodes",
    ] {
        let (code, body) = get(&plain, &p(path), None).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert!(body.contains("--plain_port_apis=false"), "{path}: {body}");
        assert!(!body.contains("sim-node"), "{path}: {body}");
    }

    // The secure port: 401 without credentials or with an unknown token, 403 without a grant,
    // 200 for what the grant covers.
    let secure = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
        .expect("client");
    let addr = app.secure_addr.expect("secure port");
    let s = |path: &str| format!("https://{addr}{path}");
    let node = sim::node_name(0);
    let team_pod = (0..5)
        .find(|p| sim::pod_namespace(*p) == "team-a")
        .map(|p| sim::pod_name(0, p))
        .expect("a team-a pod");
    let model_nodes = s("/api/v1/model/nodes");
    let node_cpu = s(&format!(
        "/api/v1/model/nodes/{node}/metrics/cpu/usage_rate"
    ));
    let team_pods = s("/api/v1/model/namespaces/team-a/pods");
    let team_pod_cpu = s(&format!(
        "/api/v1/model/namespaces/team-a/pods/{team_pod}/metrics/cpu/usage_rate"
    ));
    let system_pods = s("/api/v1/model/namespaces/kube-system/pods");
    let all_namespaces = s("/api/v1/model/namespaces");
    let top_team = s("/apis/metrics.k8s.io/v1beta1/namespaces/team-a/pods");
    let top_nodes = s("/apis/metrics.k8s.io/v1beta1/nodes");

    assert_eq!(get(&secure, &model_nodes, None).await.0, 401);
    assert_eq!(get(&secure, &model_nodes, Some("wrong")).await.0, 401);
    for url in [&model_nodes, &team_pods, &top_nodes] {
        let (code, body) = get(&secure, url, Some("nobody-token")).await;
        assert_eq!(code, 403, "{url}: {body}");
        assert!(body.contains("user \\\"mallory\\\" cannot"), "{body}");
    }

    let (code, body) = get(&secure, &model_nodes, Some("admin-token")).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&node), "{body}");
    let (code, body) = get(&secure, &node_cpu, Some("admin-token")).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"metrics\""), "{body}");
    for url in [&system_pods, &all_namespaces, &top_nodes] {
        assert_eq!(get(&secure, url, Some("admin-token")).await.0, 200, "{url}");
    }

    // The team reader: its namespace, on both APIs, and nothing else.
    let (code, body) = get(&secure, &team_pods, Some("team-token")).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(&team_pod), "{body}");
    assert_eq!(get(&secure, &team_pod_cpu, Some("team-token")).await.0, 200);
    assert_eq!(get(&secure, &top_team, Some("team-token")).await.0, 200);
    for url in [
        &system_pods,
        &all_namespaces,
        &model_nodes,
        &node_cpu,
        &top_nodes,
    ] {
        let (code, body) = get(&secure, url, Some("team-token")).await;
        assert_eq!(code, 403, "{url}: {body}");
    }
    // A path that decodes into another namespace is reviewed as that namespace.
    let sneaky = s("/api/v1/model/namespace%73/kube-system/pods");
    assert_eq!(get(&secure, &sneaky, Some("team-token")).await.0, 403);

    app.stop().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn plain_port_routes_follow_the_option() {
    let on = api_support::app();
    let off = heapster_rs::api::plain_router(
        api_support::state(&[api_support::T0, api_support::T1]),
        false,
    );
    for path in [
        "/api/v1/model/nodes",
        "/api/v1/model/namespaces/default/pods/p1/metrics/cpu/usage_rate",
        "/apis/metrics.k8s.io/v1beta1/nodes",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
        "/apis",
    ] {
        let (code, _) = api_support::get(&on, path).await;
        assert_eq!(code.as_u16(), 200, "on: {path}");
        let (code, body) = api_support::get(&off, path).await;
        assert_eq!(code.as_u16(), 404, "off: {path}");
        assert_eq!(body["reason"], "NotFound", "{body}");
    }
    for router in [&on, &off] {
        let (code, _) = api_support::get(router, "/metrics").await;
        assert_eq!(code.as_u16(), 200);
        // Routed either way (these batches are old, so the answer is 500, not 404).
        let (code, _) = api_support::get(router, "/healthz").await;
        assert_ne!(code.as_u16(), 404);
    }
    let (code, body) = api_support::get(&off, "/nope").await;
    assert_eq!(code.as_u16(), 404);
    assert!(
        !body.to_string().contains("plain_port_apis"),
        "an unknown path is just unknown: {body}"
    );
}

/// The log output of `f`, as the text format writes it.
fn logs(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let out = buf.0.lock().expect("lock").clone();
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn the_default_serves_the_apis_and_warns_once_when_they_are_reachable_from_outside() {
    let cfg = common::config(&["heapster".into(), "--source=kubernetes:".into()]);
    assert!(
        cfg.plain_port_apis,
        "Heapster's clients keep working by default"
    );
    assert_eq!(cfg.listen_ip.to_string(), "0.0.0.0");
    let cfg = common::config(&["heapster".into(), "--plain-port-apis=false".into()]);
    assert!(!cfg.plain_port_apis);
    let cfg = common::config(&["heapster".into(), "-plain_port_apis".into()]);
    assert!(cfg.plain_port_apis);

    let bad = ["heapster", "--plain_port_apis=maybe"].map(String::from);
    match heapster_rs::config::parse(bad, &|_| None) {
        heapster_rs::config::Parsed::Exit { code, message } => {
            assert_eq!(code, 2);
            assert!(message.contains("--plain_port_apis"), "{message}");
        }
        heapster_rs::config::Parsed::Run(_) => panic!("a bad boolean is refused"),
    }

    use heapster_rs::api::warn_if_plain_apis_exposed as warn;
    let out = logs(|| assert!(warn("0.0.0.0:8082".parse().expect("addr"), true)));
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("WARN"), "{out}");
    assert!(out.contains("without authentication"), "{out}");
    assert!(out.contains("--plain_port_apis=false"), "{out}");
    let out = logs(|| assert!(warn("[::]:8082".parse().expect("addr"), true)));
    assert!(out.contains("WARN"), "{out}");
    for (addr, apis) in [
        ("127.0.0.1:8082", true),
        ("[::1]:8082", true),
        ("0.0.0.0:8082", false),
    ] {
        let out = logs(|| assert!(!warn(addr.parse().expect("addr"), apis)));
        assert!(out.is_empty(), "{addr} {apis}: {out}");
    }
}

#[tokio::test]
async fn simulator_reviews_answer_as_the_apiserver_does() {
    common::init();
    let cluster = SimCluster::start(SimOptions::default())
        .await
        .expect("simulator");
    cluster.add_user("t1", "alice", &["devs"]);
    let devs = SimSubject::Group("devs".into());
    cluster
        .allow(SimRule::resources(devs, "metrics.k8s.io", &["pods"], &["list"]).in_namespace("a"));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let post = |path: &'static str, body: serde_json::Value| {
        let url = format!("{}{path}", cluster.api_url().as_str().trim_end_matches('/'));
        let req = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        async move {
            let res = req.send().await.expect("sent");
            let code = res.status().as_u16();
            let bytes = res.bytes().await.expect("body");
            let json: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            (code, json)
        }
    };
    let tr = "/apis/authentication.k8s.io/v1/tokenreviews";
    let review = |token: &str| serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let (code, body) = post(tr, review("t1")).await;
    assert_eq!(code, 201);
    assert_eq!(body["status"]["authenticated"], true);
    assert_eq!(body["status"]["user"]["username"], "alice");
    assert_eq!(body["status"]["user"]["groups"][0], "devs");
    let (code, body) = post(tr, review("t2")).await;
    assert_eq!(
        (code, &body["status"]["authenticated"]),
        (201, &serde_json::json!(false))
    );

    let sar = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let access = |spec: serde_json::Value| serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});
    let pods = |ns: &str| serde_json::json!({"verb": "list", "group": "metrics.k8s.io", "resource": "pods", "namespace": ns});
    let (code, body) = post(sar, access(serde_json::json!({"user": "alice", "groups": ["devs"], "resourceAttributes": pods("a")}))).await;
    assert_eq!(
        (code, &body["status"]["allowed"]),
        (201, &serde_json::json!(true)),
        "{body}"
    );
    let (code, body) = post(sar, access(serde_json::json!({"user": "alice", "groups": ["devs"], "resourceAttributes": pods("b")}))).await;
    assert_eq!(
        (code, &body["status"]["allowed"]),
        (201, &serde_json::json!(false)),
        "{body}"
    );
    let (code, body) = post(sar, access(serde_json::json!({"user": "root", "groups": ["system:masters"], "nonResourceAttributes": {"path": "/x", "verb": "get"}}))).await;
    assert_eq!(
        (code, &body["status"]["allowed"]),
        (201, &serde_json::json!(true)),
        "{body}"
    );
    for spec in [
        serde_json::json!({"resourceAttributes": pods("a")}),
        serde_json::json!({"user": "alice"}),
        serde_json::json!({"user": "alice", "resourceAttributes": pods("a"), "nonResourceAttributes": {"path": "/x", "verb": "get"}}),
    ] {
        let (code, body) = post(sar, access(spec)).await;
        assert_eq!(
            (code, &body["reason"]),
            (422, &serde_json::json!("Invalid")),
            "{body}"
        );
    }
    cluster.shutdown().await;
}
