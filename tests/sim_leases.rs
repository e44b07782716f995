//! The simulator's `coordination.k8s.io/v1` Leases through a `kube` client: the apiserver's
//! semantics that leader election and the sharding membership rely on.

use heapster_rs::sim::{SimAuth, SimCluster, SimOptions};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};

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

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_have_the_apiservers_semantics() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let opts = SimOptions {
        https: true,
        auth: SimAuth::Token("lease-token".into()),
        nodes: 1,
        ..SimOptions::default()
    };
    let cluster = SimCluster::start(opts).await.expect("start");
    let kubeconfig =
        kube::config::Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let api: kube::Api<Lease> = kube::Api::namespaced(client.clone(), "ns1");
    let pp = PostParams::default();

    let created = api
        .create(&pp, &lease("one", "replica"))
        .await
        .expect("create");
    let rv1 = created.metadata.resource_version.clone().expect("rv");
    assert_eq!(created.metadata.namespace.as_deref(), Some("ns1"));
    assert_eq!(
        code(
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
        code(api.replace("one", &pp, &renewed).await.expect_err("stale")),
        409
    );
    let got = api.get("one").await.expect("get");
    assert_eq!(got.metadata.resource_version, Some(rv2));
    assert_eq!(got.metadata.uid, created.metadata.uid);

    // Absent: 404 on get, update and delete.
    let mut ghost = lease("ghost", "replica");
    ghost.metadata.resource_version = Some("1".into());
    assert_eq!(code(api.get("ghost").await.expect_err("absent")), 404);
    assert_eq!(
        code(api.replace("ghost", &pp, &ghost).await.expect_err("absent")),
        404
    );
    api.delete("one", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(code(api.get("one").await.expect_err("deleted")), 404);
    assert_eq!(
        code(
            api.delete("one", &DeleteParams::default())
                .await
                .expect_err("gone")
        ),
        404
    );
    cluster.shutdown().await;
}
