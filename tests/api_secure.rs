//! The secure port over real TLS on 127.0.0.1: front-proxy client certificates, bearer tokens
//! checked by a fake [`Authorizer`], 401 / 403 (on `metrics.k8s.io` and the model API), and a
//! client certificate from another CA refused at the handshake; another replica's requests
//! (its token over https, this certificate verified against its CA).

mod api_support;

use std::sync::Arc;

use futures::future::BoxFuture;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, SanType,
};
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use heapster_rs::api::secure::auth::{Attributes, Authorizer, ReviewFailed, UserInfo};
use heapster_rs::config::SecureServing;
use heapster_rs::model::replica::Peer;
use heapster_rs::shard::peer::{PeerClient, PeerError, PeerMetrics, PeerOptions};
use heapster_rs::source::credentials::{Secret, TokenSource};
use prometheus_client::registry::Registry;

/// `good` → alice (allowed everything), `reader` → bob (denied everything); the front proxy
/// may vouch for anyone, who is judged the same way.
struct FakeAuthorizer;

impl Authorizer for FakeAuthorizer {
    fn review_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<UserInfo>, ReviewFailed>> {
        Box::pin(async move {
            Ok(match token {
                "good" => Some(UserInfo {
                    name: "alice".into(),
                    ..Default::default()
                }),
                "reader" => Some(UserInfo {
                    name: "bob".into(),
                    ..Default::default()
                }),
                "broken" => return Err(ReviewFailed("apiserver unreachable".into())),
                _ => None,
            })
        })
    }

    fn review_access<'a>(
        &'a self,
        user: &'a UserInfo,
        attrs: &'a Attributes,
    ) -> BoxFuture<'a, Result<bool, ReviewFailed>> {
        Box::pin(async move {
            let groups_ok = user.groups.iter().any(|g| g == "system:masters");
            let hpa_nodes = user.name == "hpa"
                && matches!(
                    attrs,
                    Attributes::Resource {
                        resource: "pods",
                        ..
                    }
                );
            Ok(user.name == "alice" || groups_ok || hpa_nodes)
        })
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("ca");
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

fn leaf(ca: &Ca, cn: &str, server: bool) -> (String, String) {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    if server {
        p.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, &ca.issuer).expect("leaf");
    (cert.pem(), key.serialize_pem())
}

fn der_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

fn client(server_ca: &str, identity: Option<&(String, String)>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for c in der_certs(server_ca) {
        roots.add(c).expect("root");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots);
    let mut tls = match identity {
        Some((cert, key)) => {
            let key = rustls_pemfile::private_key(&mut key.as_bytes())
                .ok()
                .flatten()
                .expect("key");
            builder
                .with_client_auth_cert(der_certs(cert), key)
                .expect("client cert")
        }
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .expect("client")
}

#[tokio::test]
async fn secure_port_authenticates_and_authorizes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (server_ca, front_ca, other_ca) = (ca("serving-ca"), ca("front-proxy-ca"), ca("evil-ca"));
    let (cert, key) = leaf(&server_ca, "heapster", true);
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let cfg = SecureServing {
        port: 0,
        cert_file: Some(write("tls.crt", &cert)),
        key_file: Some(write("tls.key", &key)),
        client_ca_file: Some(write("front-ca.crt", &front_ca.pem)),
        allowed_names: vec!["front-proxy-client".into()],
    };
    let stop = CancellationToken::new();
    let addr = heapster_rs::api::secure::serve(
        "127.0.0.1:0".parse().expect("addr"),
        &cfg,
        api_support::state(&[api_support::T0, api_support::T1]),
        Arc::new(FakeAuthorizer),
        stop.clone(),
    )
    .await
    .expect("serve");
    let url = |p: &str| format!("https://127.0.0.1:{}{p}", addr.port());
    let nodes = url("/apis/metrics.k8s.io/v1beta1/nodes");

    let plain = client(&server_ca.pem, None);
    let proxy = client(
        &server_ca.pem,
        Some(&leaf(&front_ca, "front-proxy-client", false)),
    );
    let intruder = client(&server_ca.pem, Some(&leaf(&front_ca, "intruder", false)));
    let evil = client(
        &server_ca.pem,
        Some(&leaf(&other_ca, "front-proxy-client", false)),
    );

    let status = |r: reqwest::Response| r.status().as_u16();
    let send = |req: reqwest::RequestBuilder| async move { req.send().await.map(status) };

    // Probes need nothing.
    assert_eq!(send(plain.get(url("/healthz"))).await.ok(), Some(200));
    // No credentials, bad token, failing review: 401 with a Status.
    let res = plain.get(&nodes).send().await.expect("sent");
    assert_eq!(res.status().as_u16(), 401);
    let body: serde_json::Value =
        serde_json::from_slice(&res.bytes().await.expect("body")).expect("json");
    assert_eq!(body["kind"], "Status");
    assert_eq!(
        send(plain.get(&nodes).bearer_auth("nope")).await.ok(),
        Some(401)
    );
    assert_eq!(
        send(plain.get(&nodes).bearer_auth("broken")).await.ok(),
        Some(401)
    );
    // Valid tokens: allowed, or 403.
    assert_eq!(
        send(plain.get(&nodes).bearer_auth("good")).await.ok(),
        Some(200)
    );
    let res = plain
        .get(&nodes)
        .bearer_auth("reader")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 403);
    let body: serde_json::Value =
        serde_json::from_slice(&res.bytes().await.expect("body")).expect("json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot list resource \"nodes\"")),
        "{body}"
    );
    // X-Remote-User without a proxy certificate is not trusted.
    assert_eq!(
        send(plain.get(&nodes).header("X-Remote-User", "alice"))
            .await
            .ok(),
        Some(401)
    );
    // The front proxy vouches for users and groups.
    let as_user = |user: &str| proxy.get(&nodes).header("X-Remote-User", user);
    assert_eq!(send(as_user("alice")).await.ok(), Some(200));
    assert_eq!(send(as_user("carol")).await.ok(), Some(403));
    assert_eq!(
        send(as_user("carol").header("X-Remote-Group", "system:masters"))
            .await
            .ok(),
        Some(200)
    );
    let pods = url("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods");
    assert_eq!(
        send(proxy.get(&pods).header("X-Remote-User", "hpa"))
            .await
            .ok(),
        Some(200)
    );
    assert_eq!(send(as_user("hpa")).await.ok(), Some(403));
    // A proxy certificate whose CN is not allowed: its headers are ignored.
    assert_eq!(
        send(intruder.get(&nodes).header("X-Remote-User", "alice"))
            .await
            .ok(),
        Some(401)
    );
    // A certificate from another CA: the handshake fails.
    let refused = evil
        .get(&nodes)
        .header("X-Remote-User", "alice")
        .send()
        .await;
    assert!(refused.is_err(), "wrong CA accepted: {refused:?}");
    // Discovery is behind auth too, and so is the model API.
    assert_eq!(
        send(plain.get(url("/apis")).bearer_auth("good")).await.ok(),
        Some(200)
    );
    assert_eq!(
        send(plain.get(url("/api/v1/model/nodes")).bearer_auth("good"))
            .await
            .ok(),
        Some(200)
    );
    assert_eq!(
        send(plain.get(url("/api/v1/model/nodes")).bearer_auth("reader"))
            .await
            .ok(),
        Some(403)
    );
    assert_eq!(
        send(plain.get(url("/api/v1/model/nodes"))).await.ok(),
        Some(401)
    );
    // The replica-local routes other replicas ask: the same authentication, and the same
    // review as the path without the prefix (hpa may list pods, not nodes).
    let local = |p: &str| url(&format!("/internal/shard/local{p}"));
    let local_nodes = local("/apis/metrics.k8s.io/v1beta1/nodes");
    let local_pods = local("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods");
    assert_eq!(send(plain.get(&local_nodes)).await.ok(), Some(401));
    assert_eq!(
        send(plain.get(&local_nodes).bearer_auth("reader"))
            .await
            .ok(),
        Some(403)
    );
    assert_eq!(
        send(plain.get(&local_nodes).bearer_auth("good")).await.ok(),
        Some(200)
    );
    let as_hpa = |u: &str| proxy.get(u).header("X-Remote-User", "hpa");
    assert_eq!(send(as_hpa(&local_pods)).await.ok(), Some(200));
    assert_eq!(send(as_hpa(&local_nodes)).await.ok(), Some(403));
    assert_eq!(
        send(plain.get(local("/api/v1/model/nodes")).bearer_auth("good"))
            .await
            .ok(),
        Some(200)
    );

    // A replica asking this one: its token as Bearer, this certificate verified against
    // --peer_ca_file.
    let peer = Peer {
        identity: "secure".into(),
        url: url("").into(),
    };
    let ask = |token: &str, ca: &str| {
        let opts = PeerOptions {
            ca_file: Some(write(&format!("peer-ca-{token}.crt"), ca)),
            token: Some(TokenSource::Static(Secret::new(token))),
            ..PeerOptions::new(std::time::Duration::from_secs(5))
        };
        PeerClient::new(opts, PeerMetrics::register(&mut Registry::default())).expect("client")
    };
    let path = "/internal/shard/local/apis/metrics.k8s.io/v1beta1/nodes";
    let outcome = |got: Vec<(Peer, Result<bytes::Bytes, PeerError>)>| {
        got.into_iter()
            .map(|(_, r)| r.map_or_else(|e| e.outcome(), |_| "ok"))
            .collect::<Vec<_>>()
    };
    let trusted = ask("good", &server_ca.pem);
    assert_eq!(
        outcome(trusted.get_all(std::slice::from_ref(&peer), path).await),
        ["ok"]
    );
    let denied = ask("reader", &server_ca.pem);
    assert_eq!(
        outcome(denied.get_all(std::slice::from_ref(&peer), path).await),
        ["denied"]
    );
    let wrong_ca = ask("good", &other_ca.pem);
    assert_eq!(
        outcome(wrong_ca.get_all(std::slice::from_ref(&peer), path).await),
        ["unreachable"]
    );
    stop.cancel();
}

#[tokio::test]
async fn self_signed_without_client_ca() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let stop = CancellationToken::new();
    let addr = heapster_rs::api::secure::serve(
        "127.0.0.1:0".parse().expect("addr"),
        &SecureServing::default(),
        api_support::state(&[api_support::T0, api_support::T1]),
        Arc::new(FakeAuthorizer),
        stop.clone(),
    )
    .await
    .expect("serve");
    let insecure = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .no_proxy()
        .build()
        .expect("client");
    let url = format!(
        "https://127.0.0.1:{}/apis/metrics.k8s.io/v1beta1/nodes/n1",
        addr.port()
    );
    let res = insecure
        .get(&url)
        .bearer_auth("good")
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&res.bytes().await.expect("body")).expect("json");
    assert_eq!(body["usage"]["cpu"], "800m");
    let res = insecure.get(&url).send().await.expect("sent");
    assert_eq!(res.status().as_u16(), 401);
    stop.cancel();
}
