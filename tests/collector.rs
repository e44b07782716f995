//! The collector end to end over real HTTP(S) against the simulator: the three ways to
//! authenticate, credentials reaching kubelets only where they should, TLS options, and
//! kubelets that misbehave.

mod common;

use std::sync::Arc;

use common::{batches, kubeconfig_without_ca, metrics, node_names, sample, start};
use heapster_rs::model::{Metric, SetKey, Value};
use heapster_rs::sim::{self, KubeletFault, SimAuth, SimCluster, SimOptions};
use heapster_rs::source::kubelet::{KubeletClient, KubeletClientOptions};

async fn sim(opts: SimOptions) -> SimCluster {
    common::init();
    SimCluster::start(opts).await.expect("simulator starts")
}

fn https(auth: SimAuth) -> SimOptions {
    SimOptions {
        nodes: 3,
        pods_per_node: 3,
        containers_per_pod: 2,
        https: true,
        auth,
        ..SimOptions::default()
    }
}

fn all_nodes(n: usize) -> impl Fn(&heapster_rs::model::Batch) -> bool {
    move |b| node_names(b).len() == n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_mode_sends_the_apiserver_token_to_kubelets() {
    let cluster = sim(https(SimAuth::Token("in-cluster-token-1".into()))).await;
    // Seed line 1, `kubernetes:https://kubernetes.default`, with the simulator's address and
    // the service-account directory it wrote.
    let (_dir, source) = common::in_cluster_source(&cluster);
    let app = start(&source, &[]).await;
    let got = batches(&app, 1, all_nodes(3)).await;
    assert_eq!(
        node_names(got.last().expect("batch")),
        vec!["sim-node-0000", "sim-node-0001", "sim-node-0002"]
    );
    for i in 0..3 {
        let stats = cluster.kubelet_stats(i);
        assert_eq!(
            stats.last_authorization.as_deref(),
            Some("Bearer in-cluster-token-1"),
            "node {i}"
        );
    }
    app.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_mode_with_client_certificate() {
    let cluster = sim(https(SimAuth::ClientCert)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("config");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).expect("kubeconfig");
    // Seed line 3 without `insecure`: the kubeconfig's CA verifies the apiserver and kubelets.
    let source = format!(
        "kubernetes:{}?inClusterConfig=false&auth={}",
        cluster.api_url(),
        kubeconfig.display()
    );
    let app = start(&source, &[]).await;
    batches(&app, 1, all_nodes(3)).await;
    // The kubelets authenticated the client certificate; no token was sent.
    assert!(cluster.kubelet_stats(0).requests > 0);
    assert_eq!(cluster.kubelet_stats(0).last_authorization, None);
    app.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_mode_with_token_and_empty_url_uses_the_kubeconfig_server() {
    let cluster = sim(https(SimAuth::Token("kubeconfig-token-2".into()))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("config");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml()).expect("kubeconfig");
    let source = format!(
        "kubernetes:?inClusterConfig=false&auth={}",
        kubeconfig.display()
    );
    let app = start(&source, &[]).await;
    batches(&app, 1, all_nodes(3)).await;
    assert_eq!(
        cluster.kubelet_stats(1).last_authorization.as_deref(),
        Some("Bearer kubeconfig-token-2")
    );
    app.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_http_mode_sends_no_credentials_and_rates_match_the_counters() {
    let cluster = sim(SimOptions {
        nodes: 3,
        pods_per_node: 4,
        containers_per_pod: 2,
        not_ready: vec![2],
        ..SimOptions::default()
    })
    .await;
    let url = cluster.api_url();
    // Seed line 2: `kubernetes:http://HOST:8080?inClusterConfig=false`, kubelets on plain http.
    let source = format!(
        "kubernetes:http://{}:{}?inClusterConfig=false&kubeletPort={}&kubeletHttps=false",
        url.host_str().expect("host"),
        url.port().expect("port"),
        cluster.kubelet_port()
    );
    let app = start(&source, &[]).await;
    let got = batches(&app, 2, |b| {
        b.find(&SetKey::Node {
            node: Arc::from("sim-node-0000"),
        })
        .is_some_and(|s| s.get(Metric::CpuUsageRate).is_some())
    })
    .await;
    let batch = got.last().expect("batch");
    // The node that is not Ready is not scraped.
    assert_eq!(node_names(batch), vec!["sim-node-0000", "sim-node-0001"]);
    for i in 0..2 {
        assert_eq!(
            cluster.kubelet_stats(i).last_authorization,
            None,
            "node {i}: no credentials over http"
        );
    }
    assert_eq!(cluster.kubelet_stats(2).requests, 0);
    // Rates equal the simulator's configured rates: millicores = nanocores / 1e6.
    let node = batch
        .find(&SetKey::Node {
            node: Arc::from("sim-node-0000"),
        })
        .expect("node set");
    let expected = sim::node_cpu_nanocores(0, 4, 2) / 1_000_000;
    assert_eq!(
        node.get(Metric::CpuUsageRate),
        Some(Value::Int(expected as i64))
    );
    let c = SetKey::PodContainer {
        namespace: Arc::from(sim::pod_namespace(1)),
        pod: Arc::from(sim::pod_name(0, 1).as_str()),
        container: Arc::from(sim::container_name(0).as_str()),
    };
    let cset = batch.find(&c).expect("container set");
    assert_eq!(
        cset.get(Metric::CpuUsageRate),
        Some(Value::Int(
            (sim::container_cpu_nanocores(0, 1, 0) / 1_000_000) as i64
        ))
    );
    assert_eq!(
        cset.get(Metric::MemoryWorkingSet),
        Some(Value::Int(sim::container_working_set_bytes(0, 1, 0) as i64))
    );
    // Enriched from the pod spec: image, labels, requests.
    assert_eq!(cset.image.as_deref(), Some("registry.k8s.io/app:1.0"));
    assert!(
        cset.labels.as_deref().is_some_and(|l| l.contains("app:")),
        "{:?}",
        cset.labels
    );
    assert!(cset.get(Metric::CpuRequest).is_some());
    let pod = SetKey::Pod {
        namespace: Arc::from(sim::pod_namespace(1)),
        pod: Arc::from(sim::pod_name(0, 1).as_str()),
    };
    let rx = batch
        .find(&pod)
        .and_then(|s| s.get(Metric::NetworkRxRate))
        .expect("rx rate");
    assert_eq!(
        rx,
        Value::Float(sim::pod_network_rx_bytes_per_sec(0, 1) as f64)
    );
    assert!(batch.find(&SetKey::Cluster).is_some());
    app.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_skips_kubelet_verification_too_unless_kubelet_insecure_is_false() {
    let cluster = sim(https(SimAuth::Token("insecure-token-3".into()))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A kubeconfig without the CA: neither the apiserver nor the kubelets can be verified.
    let kubeconfig = kubeconfig_without_ca(&cluster, dir.path());
    let base = format!(
        "kubernetes:{}?inClusterConfig=false&auth={}",
        cluster.api_url(),
        kubeconfig.display()
    );

    // insecure=true&kubeletInsecure=false: the apiserver is accepted, kubelets are verified
    // (and fail, counted by the reason).
    let app = start(&format!("{base}&insecure=true&kubeletInsecure=false"), &[]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let page = metrics(&app).await;
        if sample(
            &page,
            r#"heapster_kubelet_requests_total{outcome="certificate_untrusted"}"#,
        )
        .unwrap_or(0.0)
            >= 3.0
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kubelet TLS failures not counted:\n{page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(app.cluster.read().nodes.len(), 3, "apiserver reached");
    app.stop().await;

    // insecure=true alone: both accepted, as in Heapster.
    let app = start(&format!("{base}&insecure=true"), &[]).await;
    batches(&app, 1, all_nodes(3)).await;
    app.stop().await;
    cluster.shutdown().await;
}

/// A self-signed HTTPS server on 127.0.0.1 (the secure port's generated certificate, whose
/// names include 127.0.0.1) answering every request with `{}`: a kubelet nobody vouches for.
async fn self_signed_kubelet() -> url::Url {
    let cfg = heapster_rs::api::secure::tls::server_config(&Default::default()).expect("tls");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return; // the client refused the certificate
                };
                let (mut buf, mut got) = (vec![0u8; 4096], Vec::new());
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    url::Url::parse(&format!("https://{addr}/stats/summary")).expect("url")
}

/// The apiserver client and the kubelet client the collector builds for `--source=SOURCE`.
async fn clients(source: &str) -> (kube::Client, KubeletClient) {
    let cfg = common::config(&["heapster".to_string(), format!("--source={source}")]);
    let heapster_rs::config::SourceConfig::Kubernetes(src) = cfg.source else {
        panic!("a kubernetes source");
    };
    let clients = heapster_rs::source::apiserver::connect(&src, &|_| None)
        .await
        .expect("clients");
    let kubelet = KubeletClient::new(
        Arc::clone(&clients.kubelet),
        KubeletClientOptions {
            timeout: std::time::Duration::from_secs(10),
            max_response_bytes: 1 << 20,
            insecure: src.kubelet_insecure(),
            keep_alive: src.kubelet_keep_alive,
        },
    )
    .expect("kubelet client");
    (clients.client, kubelet)
}

async fn list_nodes(client: kube::Client) -> Result<usize, String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    api.list(&Default::default())
        .await
        .map(|l| l.items.len())
        .map_err(|e| {
            // The whole chain: the TLS reason is a few sources down.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        })
}

/// Complements `insecure_skips_kubelet_verification_too_unless_kubelet_insecure_is_false`
/// (whole collector): with no option a self-signed apiserver and a self-signed kubelet are both
/// refused, `kubeletInsecure=true` leaves the apiserver verified, and
/// `insecure=true&kubeletInsecure=false` leaves kubelets verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verification_is_on_unless_an_option_names_it() {
    let cluster = sim(https(SimAuth::Token("tls-default-token-5".into()))).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let with_ca = dir.path().join("with-ca");
    std::fs::write(&with_ca, cluster.kubeconfig_yaml()).expect("kubeconfig");
    // Without the CA the simulator's apiserver is as good as self-signed.
    let without_ca = kubeconfig_without_ca(&cluster, dir.path());
    let source = |kubeconfig: &std::path::Path, options: &str| {
        format!(
            "kubernetes:{}?inClusterConfig=false&auth={}{options}",
            cluster.api_url(),
            kubeconfig.display()
        )
    };
    let rogue = self_signed_kubelet().await;
    let node = &cluster.nodes()[0];
    let good = url::Url::parse(&format!(
        "https://{}:{}/stats/summary",
        node.ip,
        cluster.kubelet_port()
    ))
    .expect("url");

    // The apiserver: refused unless insecure=true.
    for (options, accepted) in [
        ("", false),
        ("&kubeletInsecure=true", false),
        ("&insecure=true", true),
    ] {
        let (client, _) = clients(&source(&without_ca, options)).await;
        match list_nodes(client).await {
            Ok(n) => assert!(accepted && n == 3, "{options:?}: accepted, {n} nodes"),
            Err(e) => assert!(
                !accepted && e.to_lowercase().contains("certificate"),
                "{options:?}: {e}"
            ),
        }
    }

    // Kubelets: the cluster CA's kubelet is accepted; the self-signed one is refused unless
    // kubeletInsecure=true.
    for (options, accepted) in [
        ("", false),
        ("&insecure=true&kubeletInsecure=false", false),
        ("&kubeletInsecure=true", true),
        ("&insecure=true", true),
    ] {
        let (client, kubelet) = clients(&source(&with_ca, options)).await;
        assert_eq!(list_nodes(client).await, Ok(3), "{options:?}");
        assert!(kubelet.fetch(&good).await.is_ok(), "{options:?}");
        match kubelet.fetch(&rogue).await {
            Ok(body) => assert!(accepted && &body[..] == b"{}", "{options:?}"),
            Err(e) => assert!(
                !accepted && e.reason() == "certificate_untrusted",
                "{options:?}: {e}"
            ),
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_insecure_accepts_serving_certs_without_ip_sans() {
    let mut opts = https(SimAuth::Token("san-token-4".into()));
    opts.kubelet_cert_ip_san = false;
    let cluster = sim(opts).await;
    let (_dir, base) = common::in_cluster_source(&cluster);
    let app = start(&base, &[]).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while sample(
        &metrics(&app).await,
        r#"heapster_kubelet_requests_total{outcome="certificate_name"}"#,
    )
    .unwrap_or(0.0)
        < 3.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "expected certificate failures"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    app.stop().await;
    let app = start(&format!("{base}&kubeletInsecure=true"), &[]).await;
    batches(&app, 1, all_nodes(3)).await;
    // The token still goes to the kubelets.
    assert_eq!(
        cluster.kubelet_stats(0).last_authorization.as_deref(),
        Some("Bearer san-token-4")
    );
    app.stop().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_kubelets_are_counted_and_skipped() {
    let cluster = sim(SimOptions {
        nodes: 8,
        pods_per_node: 2,
        containers_per_pod: 1,
        faults: vec![
            (0, KubeletFault::Hang),
            (1, KubeletFault::Status500),
            (2, KubeletFault::Garbage),
            (3, KubeletFault::HugeBody(100 << 20)),
            (4, KubeletFault::TruncatedJson),
            (5, KubeletFault::RefuseConnections),
        ],
        ..SimOptions::default()
    })
    .await;
    let source = format!(
        "kubernetes:{}?inClusterConfig=false&kubeletPort={}&kubeletHttps=false",
        cluster.api_url(),
        cluster.kubelet_port()
    );
    let app = start(&source, &["--max_response_bytes=8388608"]).await;
    let got = batches(&app, 1, |_| true).await;
    // The first batch holds exactly the healthy nodes: the others did not hold it back.
    assert_eq!(
        node_names(got.last().expect("batch")),
        vec!["sim-node-0006", "sim-node-0007"]
    );
    let page = metrics(&app).await;
    for (outcome, at_least) in [
        ("timeout", 1.0),
        ("http_status", 1.0),
        ("decode", 2.0),
        ("too_large", 1.0),
        ("connect", 1.0),
        ("success", 2.0),
    ] {
        let v = sample(
            &page,
            &format!(r#"heapster_kubelet_requests_total{{outcome="{outcome}"}}"#),
        )
        .unwrap_or(0.0);
        assert!(v >= at_least, "{outcome}: {v} < {at_least}\n{page}");
    }
    assert_eq!(sample(&page, "heapster_tick_nodes_failed"), Some(6.0));
    app.stop().await;
    cluster.shutdown().await;
}
