//! Kubelet and apiserver serving certificates the collector does not trust, against the real
//! `heapster` binary: the seed article's kubeconfig command line scrapes kubelets with
//! self-signed certificates on the first tick, and every refusal is logged once, counted by
//! its reason, and names its fix.

mod common;
mod support;

use common::{kubeconfig_without_ca, sample};
use heapster_rs::sim::{KubeletFault, SimAuth, SimCluster, SimOptions};
use support::heapster::Heapster;

const TOKEN: &str = "tls-test-token";

async fn cluster(faults: Vec<(usize, KubeletFault)>, nodes: usize) -> SimCluster {
    common::init();
    SimCluster::start(SimOptions {
        nodes,
        pods_per_node: 2,
        containers_per_pod: 1,
        https: true,
        auth: SimAuth::Token(TOKEN.into()),
        faults,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

/// `--source` of the seed article: kubeconfig, `insecure=true`, plus `extra` options.
fn seed_source(cluster: &SimCluster, kubeconfig: &std::path::Path, extra: &str) -> String {
    format!(
        "--source=kubernetes:{}?inClusterConfig=false&insecure=true&auth={}{extra}",
        cluster.api_url(),
        kubeconfig.display()
    )
}

fn requests(page: &str, outcome: &str) -> f64 {
    let series = format!(r#"heapster_kubelet_requests_total{{outcome="{outcome}"}}"#);
    sample(page, &series).unwrap_or(0.0)
}

async fn after_ticks(heapster: &mut Heapster, ticks: f64) -> String {
    heapster
        .metrics_until(90, "ticks", |p| {
            sample(p, "heapster_ticks_total").unwrap_or(0.0) >= ticks
        })
        .await
}

/// Self-signed kubelets (CA:TRUE) and leaves of a CA nobody distributes, on nodes 0..4.
fn untrusted_kubelets() -> Vec<(usize, KubeletFault)> {
    vec![
        (0, KubeletFault::SelfSignedCert),
        (1, KubeletFault::UnknownCaCert),
        (2, KubeletFault::SelfSignedCert),
        (3, KubeletFault::UnknownCaCert),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_command_line_scrapes_self_signed_kubelets_on_the_first_tick() {
    let cluster = cluster(untrusted_kubelets(), 4).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kubeconfig_without_ca(&cluster, dir.path());
    let mut heapster = Heapster::start(&[
        seed_source(&cluster, &kubeconfig, ""),
        "--metric_resolution=5s".into(),
        "--scrape_timeout=2s".into(),
    ]);
    let page = after_ticks(&mut heapster, 1.0).await;
    let ticks = sample(&page, "heapster_ticks_total").unwrap_or(0.0);
    // Every node of every tick, the first included, and no failure of any kind.
    assert_eq!(requests(&page, "success"), 4.0 * ticks, "{page}");
    let failures: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("heapster_kubelet_requests_total{"))
        .filter(|l| !l.contains(r#"outcome="success""#))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    let log = heapster.log();
    assert_eq!(
        log.matches("kubelet serving certificates are not verified either")
            .count(),
        1,
        "{log}"
    );
    assert!(log.contains("kubeletInsecure=false"), "{log}");
    assert!(!log.contains(TOKEN), "the token was logged:\n{log}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubelet_insecure_false_keeps_refusing_self_signed_kubelets_and_says_why() {
    let cluster = cluster(untrusted_kubelets(), 4).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kubeconfig_without_ca(&cluster, dir.path());
    let mut heapster = Heapster::start(&[
        seed_source(&cluster, &kubeconfig, "&kubeletInsecure=false"),
        "--metric_resolution=5s".into(),
        "--scrape_timeout=2s".into(),
    ]);
    let page = after_ticks(&mut heapster, 2.0).await;
    let ticks = sample(&page, "heapster_ticks_total").unwrap_or(0.0);
    assert!(
        requests(&page, "certificate_untrusted") >= 4.0 * (ticks - 1.0),
        "{page}"
    );
    assert_eq!(requests(&page, "success"), 0.0, "{page}");
    let log = heapster.log();
    assert!(!log.contains("are not verified either"), "{log}");
    for (node, kind) in [
        ("sim-node-0000", "a self-signed certificate"),
        ("sim-node-0001", "a certificate"),
    ] {
        let want = format!(
            "kubelet {node} serves {kind} not signed by the cluster CA (kubelets sign their own \
             unless serving-certificate bootstrap is on): set kubeletInsecure=true, or enable \
             serverTLSBootstrap and approve the CSRs"
        );
        assert_eq!(log.matches(&want).count(), 1, "{want}\n{log}");
    }
    assert!(!log.contains(TOKEN), "the token was logged:\n{log}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kubelet_certificate_problem_is_counted_and_names_its_cause_and_fix() {
    let faults = vec![
        (0, KubeletFault::SelfSignedCert),
        (1, KubeletFault::WrongHostCert),
        (2, KubeletFault::ExpiredCert),
        (3, KubeletFault::NotYetValidCert),
    ];
    let cluster = cluster(faults, 5).await;
    // In-cluster: the cluster CA is known, so the healthy node (4) verifies.
    let sa = tempfile::tempdir().expect("tempdir");
    cluster
        .write_service_account_dir(sa.path())
        .expect("sa dir");
    let mut heapster = Heapster::start(&[
        format!(
            "--source=kubernetes:{}?serviceAccountDir={}",
            cluster.api_url(),
            sa.path().display()
        ),
        "--metric_resolution=5s".into(),
        "--scrape_timeout=2s".into(),
    ]);
    let page = after_ticks(&mut heapster, 2.0).await;
    let ticks = sample(&page, "heapster_ticks_total").unwrap_or(0.0);
    for outcome in [
        "success",
        "certificate_untrusted",
        "certificate_name",
        "certificate_expired",
        "certificate_not_yet_valid",
    ] {
        assert!(requests(&page, outcome) >= ticks - 1.0, "{outcome}\n{page}");
    }
    let log = heapster.log();
    let ip = |i: usize| cluster.nodes()[i].ip.to_string();
    let wants = [
        "kubelet sim-node-0000 serves a self-signed certificate not signed by the cluster CA"
            .to_string(),
        format!(
            "kubelet sim-node-0001: the address tried, {}, is not in its serving certificate \
             (which holds wrong-host.invalid): set addressTypes=Hostname to connect by a name it \
             holds, or kubeletInsecure=true",
            ip(1)
        ),
        "kubelet sim-node-0002 serves a certificate that expired at 2021-01-01T00:00:00Z (now "
            .to_string(),
        "kubelet sim-node-0003 serves a certificate that is not valid before \
         2090-01-01T00:00:00Z (now "
            .to_string(),
    ];
    for want in &wants {
        assert_eq!(log.matches(want.as_str()).count(), 1, "{want}\n{log}");
    }
    assert!(
        log.matches("renew it on the node (or fix the clock), or set kubeletInsecure=true")
            .count()
            == 2,
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the token was logged:\n{log}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_apiserver_ca_names_insecure_true_or_the_kubeconfig_ca() {
    let cluster = cluster(Vec::new(), 1).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kubeconfig_without_ca(&cluster, dir.path());
    // The seed command line without insecure=true: the apiserver's CA is unknown.
    let heapster = Heapster::start(&[
        format!(
            "--source=kubernetes:{}?inClusterConfig=false&auth={}",
            cluster.api_url(),
            kubeconfig.display()
        ),
        "--metric_resolution=5s".into(),
    ]);
    let want = "the apiserver's certificate is not signed by a CA this collector knows: put the \
                cluster CA in the kubeconfig (certificate-authority-data) or the service-account \
                ca.crt, or set insecure=true in --source";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !heapster.log().contains(want) {
        assert!(
            std::time::Instant::now() < deadline,
            "{want}\n{}",
            heapster.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(!heapster.log().contains(TOKEN), "the token was logged");
    cluster.shutdown().await;
}
