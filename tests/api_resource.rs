//! `metrics.k8s.io` through the router, without sockets: values, shapes, selectors,
//! discovery, the old v1alpha1 paths and errors.

mod api_support;

use api_support::{T0, app, get, state};
use heapster_rs::api::router;
use http::StatusCode;
use serde_json::{Value, json};

const V: &str = "/apis/metrics.k8s.io/v1beta1";

fn names(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn node_metrics() {
    let app = app();
    let (status, body) = get(&app, &format!("{V}/nodes")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["kind"], "NodeMetricsList");
    assert_eq!(body["apiVersion"], "metrics.k8s.io/v1beta1");
    assert_eq!(body["metadata"], json!({}));
    assert_eq!(names(&body), ["n1", "n2"]);
    let (status, n1) = get(&app, &format!("{V}/nodes/n1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(n1["kind"], "NodeMetrics");
    assert_eq!(n1["usage"], json!({"cpu": "800m", "memory": "4Gi"}));
    assert_eq!(n1["window"], "10s");
    assert_eq!(n1["timestamp"], "2026-01-01T00:00:10Z");
    assert_eq!(
        n1["metadata"]["labels"],
        json!({"zone": "a", "kubernetes.io/os": "linux"})
    );
    assert!(n1["metadata"]["creationTimestamp"].is_string());
    let (status, body) = get(&app, &format!("{V}/nodes/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "NotFound");
    assert_eq!(body["code"], 404);
}

#[tokio::test]
async fn pod_metrics() {
    let app = app();
    let (_, body) = get(&app, &format!("{V}/pods")).await;
    assert_eq!(body["kind"], "PodMetricsList");
    assert_eq!(names(&body), ["p1", "p2", "dns"]);
    let (status, p1) = get(&app, &format!("{V}/namespaces/default/pods/p1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p1["kind"], "PodMetrics");
    assert_eq!(p1["metadata"]["namespace"], "default");
    assert_eq!(p1["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        p1["containers"],
        json!([
            {"name": "app", "usage": {"cpu": "250m", "memory": "128Mi"}},
            {"name": "side", "usage": {"cpu": "50m", "memory": "64Mi"}},
        ])
    );
    let (_, body) = get(&app, &format!("{V}/namespaces/kube-system/pods")).await;
    assert_eq!(names(&body), ["dns"]);
    let (_, body) = get(&app, &format!("{V}/namespaces/nothing/pods")).await;
    assert_eq!(names(&body), Vec::<String>::new());
    let (status, _) = get(&app, &format!("{V}/namespaces/default/pods/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn selectors() {
    let app = app();
    let cases: &[(&str, &[&str])] = &[
        ("/nodes?labelSelector=zone%3Da", &["n1"]),
        ("/nodes?labelSelector=zone%21%3Da", &["n2"]),
        ("/nodes?labelSelector=zone+in+(a,b)", &["n1", "n2"]),
        ("/nodes?labelSelector=zone+notin+(a)", &["n2"]),
        ("/nodes?labelSelector=zone", &["n1", "n2"]),
        ("/nodes?labelSelector=%21zone", &[]),
        ("/nodes?labelSelector=", &["n1", "n2"]),
        ("/nodes?fieldSelector=metadata.name%3Dn2", &["n2"]),
        ("/pods?labelSelector=app%3Dweb", &["p1"]),
        ("/pods?labelSelector=app+in+(db,dns)", &["p2", "dns"]),
        (
            "/pods?fieldSelector=metadata.namespace%3Ddefault",
            &["p1", "p2"],
        ),
        ("/pods?fieldSelector=metadata.name%21%3Dp1", &["p2", "dns"]),
        (
            "/namespaces/default/pods?labelSelector=app%21%3Dweb",
            &["p2"],
        ),
    ];
    for (q, want) in cases {
        let (status, body) = get(&app, &format!("{V}{q}")).await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
        assert_eq!(names(&body), *want, "{q}");
    }
    let long = format!("/nodes?labelSelector={}", "a".repeat(5000));
    for q in [
        "/nodes?labelSelector=zone+in+a",
        "/nodes?labelSelector=%3D%3D",
        "/pods?fieldSelector=spec.nodeName%3Dn1",
        "/pods?watch=true",
        &long,
    ] {
        let (status, body) = get(&app, &format!("{V}{q}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert_eq!(body["kind"], "Status");
    }
}

#[tokio::test]
async fn discovery() {
    let app = app();
    let (_, body) = get(&app, "/apis").await;
    assert_eq!(body["kind"], "APIGroupList");
    assert_eq!(body["groups"][0]["name"], "metrics.k8s.io");
    assert_eq!(
        body["groups"][0]["preferredVersion"]["groupVersion"],
        "metrics.k8s.io/v1beta1"
    );
    let (_, body) = get(&app, "/apis/metrics.k8s.io").await;
    assert_eq!(body["kind"], "APIGroup");
    let (_, body) = get(&app, V).await;
    assert_eq!(body["kind"], "APIResourceList");
    let kinds: Vec<_> = body["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| (r["name"].clone(), r["kind"].clone(), r["verbs"].clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (json!("nodes"), json!("NodeMetrics"), json!(["get", "list"])),
            (json!("pods"), json!("PodMetrics"), json!(["get", "list"])),
        ]
    );
}

#[tokio::test]
async fn old_v1alpha1_paths() {
    let app = app();
    let (status, body) = get(&app, "/apis/metrics/v1alpha1/nodes").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["apiVersion"], "metrics/v1alpha1");
    assert_eq!(names(&body), ["n1", "n2"]);
    let (status, body) = get(&app, "/apis/metrics/v1alpha1/namespaces/default/pods/p2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["containers"][0]["usage"]["cpu"], "50m");
}

#[tokio::test]
async fn no_rate_yet_means_no_data() {
    // One batch: no cpu rate, so lists are empty and gets are 404 (never a zero).
    let app = router(state(&[T0]));
    let (status, body) = get(&app, &format!("{V}/nodes")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&body), Vec::<String>::new());
    let (status, _) = get(&app, &format!("{V}/nodes/n1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = get(&app, &format!("{V}/pods")).await;
    assert_eq!(names(&body), Vec::<String>::new());
}
