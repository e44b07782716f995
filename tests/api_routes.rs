//! Every route of the Heapster port through the router, without sockets: the model API,
//! `metrics.k8s.io` with discovery and selectors, and bad input.

mod api_support;

use api_support::{T0, T1, app, get, get_with};
use http::StatusCode;
use serde_json::{Value, json};

const T0S: &str = "2026-01-01T00:00:00Z";
const T1S: &str = "2026-01-01T00:00:10Z";

fn values(body: &Value) -> Vec<i64> {
    body["metrics"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["value"].as_i64()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn model_listings() {
    let app = app();
    let cases: &[(&str, Value)] = &[
        ("/api/v1/model/nodes", json!(["n1", "n2"])),
        ("/api/v1/model/nodes/", json!(["n1", "n2"])),
        (
            "/api/v1/model/namespaces/",
            json!(["default", "kube-system"]),
        ),
        (
            "/api/v1/model/namespaces/default/pods/",
            json!(["p1", "p2"]),
        ),
        (
            "/api/v1/model/namespaces/default/pods/p1/containers/",
            json!(["app", "side"]),
        ),
        (
            "/api/v1/model/nodes/n1/pods/",
            json!(["default/p1", "default/p2"]),
        ),
        ("/api/v1/model/nodes/n1/freecontainers/", json!(["kubelet"])),
        ("/api/v1/model/metrics/", json!(["cpu/usage_rate"])),
        ("/api/v1/model/cluster/metrics", json!(["cpu/usage_rate"])),
    ];
    for (uri, want) in cases {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert_eq!(&body, want, "{uri}");
    }
    let (status, body) = get(&app, "/api/v1/model/nodes/n1/metrics/").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body
        .as_array()
        .expect("array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for m in [
        "cpu/usage",
        "cpu/usage_rate",
        "memory/usage",
        "cpu/node_utilization",
        "filesystem/usage",
    ] {
        assert!(names.contains(&m), "{m} in {names:?}");
    }
    let (_, keys) = get(&app, "/api/v1/model/debug/allkeys").await;
    assert!(
        keys.as_array()
            .is_some_and(|k| k.contains(&json!("namespace:default/pod:p1/container:app")))
    );
}

#[tokio::test]
async fn model_metrics_of_every_entity() {
    let app = app();
    let cases: &[(&str, &[i64])] = &[
        ("/api/v1/model/nodes/n1/metrics/cpu/usage_rate", &[800, 800]),
        ("/api/v1/model/nodes/n1/metrics/cpu-usage", &[800, 800]),
        (
            "/api/v1/model/nodes/n1/metrics/memory/usage",
            &[(4 << 30) + 1024, (4 << 30) + 1024],
        ),
        // Not in the default history (`--history_metrics`, as Heapster's): the latest value.
        ("/api/v1/model/nodes/n1/metrics/memory-working/", &[4 << 30]),
        (
            "/api/v1/model/namespaces/default/metrics/cpu/usage_rate",
            &[350, 350],
        ),
        (
            "/api/v1/model/namespaces/default/pods/p1/metrics/cpu/usage_rate",
            &[300, 300],
        ),
        (
            "/api/v1/model/namespaces/default/pods/p1/containers/side/metrics/memory/working_set",
            &[64 << 20],
        ),
        (
            "/api/v1/model/nodes/n1/freecontainers/kubelet/metrics/cpu/usage_rate",
            &[20, 20],
        ),
        ("/api/v1/model/cluster/metrics/cpu/usage_rate", &[355, 355]),
        // Not kept in history: the latest value only.
        (
            "/api/v1/model/nodes/n1/metrics/cpu/usage",
            &[800_000_000 * 110],
        ),
        (
            "/api/v1/model/nodes/n1/metrics/filesystem/usage?labels=resource_id:/",
            &[123_456],
        ),
        ("/api/v1/model/nodes/n1/metrics/filesystem/usage", &[]),
        (
            "/api/v1/model/nodes/n1/metrics/cpu/usage_rate?start=2026-01-01T00:00:05Z",
            &[800],
        ),
        (
            "/api/v1/model/nodes/n1/metrics/cpu/usage_rate?start=2026-01-01T00:00:00Z&end=2026-01-01T00:00:05Z",
            &[800],
        ),
        (
            "/api/v1/model/nodes/n1/metrics/cpu/usage_rate?start=2026-01-01T01:00:00Z",
            &[],
        ),
        ("/api/v1/model/cluster/metrics/memory/limit", &[]),
    ];
    for (uri, want) in cases {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(values(&body), *want, "{uri}: {body}");
    }
    let (_, body) = get(&app, "/api/v1/model/nodes/n1/metrics/cpu/usage_rate").await;
    assert_eq!(
        body,
        json!({"metrics": [
            {"timestamp": T0S, "value": 800, "floatValue": 800.0},
            {"timestamp": T1S, "value": 800, "floatValue": 800.0},
        ], "latestTimestamp": T1S})
    );
    let (_, body) = get(&app, "/api/v1/model/nodes/n1/metrics/cpu/node_utilization").await;
    assert_eq!(
        body["metrics"][0],
        json!({"timestamp": T1S, "value": 0, "floatValue": 0.2})
    );
    let (_, body) = get(&app, "/api/v1/model/cluster/metrics/memory/limit").await;
    assert_eq!(body["latestTimestamp"], json!("0001-01-01T00:00:00Z"));
    let _ = (T0, T1);
}

#[tokio::test]
async fn dashboard_pod_list_in_request_order() {
    let app = app();
    let (status, body) = get(
        &app,
        "/api/v1/model/namespaces/default/pod-list/p2,missing,p1/metrics/cpu/usage_rate",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(values(&items[0]), [50, 50]);
    assert_eq!(values(&items[1]), Vec::<i64>::new());
    assert_eq!(values(&items[2]), [300, 300]);
    assert_eq!(items[2]["latestTimestamp"], json!(T1S));
}

#[tokio::test]
async fn model_bad_input() {
    let app = app();
    let long = format!("/api/v1/model/nodes/{}/metrics", "x".repeat(5000));
    let cases: &[(&str, StatusCode)] = &[
        (
            "/api/v1/model/nodes/nope/metrics/cpu/usage_rate",
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/model/nodes/nope/metrics", StatusCode::NOT_FOUND),
        (
            "/api/v1/model/nodes/nope/freecontainers",
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/model/namespaces/nope/pods", StatusCode::NOT_FOUND),
        (
            "/api/v1/model/namespaces/default/pods/nope/containers",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/model/namespaces/default/pods/p1/containers/nope/metrics/cpu/usage_rate",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/model/nodes/n1/metrics/no/such/metric",
            StatusCode::NOT_FOUND,
        ),
        ("/api/v1/model/nodes/n1/whatever", StatusCode::NOT_FOUND),
        ("/api/v1/model/", StatusCode::NOT_FOUND),
        (
            "/api/v1/model/nodes/n1/metrics/cpu/usage_rate?start=yesterday",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/model/nodes/n1/metrics/cpu/usage_rate?end=2026-13-01T00:00:00Z",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/model/nodes/n1/metrics/cpu/usage_rate?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/model/nodes/n1/metrics/filesystem/usage?labels=resource_id",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/model/nodes/n1/metrics/filesystem/usage?labels=zone:a",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/v1/model/namespaces/default/pod-list/a,,b/metrics/cpu/usage_rate",
            StatusCode::BAD_REQUEST,
        ),
        (&long, StatusCode::BAD_REQUEST),
    ];
    for (uri, want) in cases {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, *want, "{uri}: {body}");
        assert!(body["error"].is_string(), "JSON error for {uri}: {body}");
    }
}

#[tokio::test]
async fn gzip_when_asked() {
    let app = app();
    let uri = "/api/v1/model/nodes/n2/freecontainers";
    let (status, enc, body) = get_with(&app, uri, &[("accept-encoding", "gzip, deflate")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(enc.as_deref(), Some("gzip"));
    assert_eq!(body.as_array().map(Vec::len), Some(60));
    let (_, enc, _) = get_with(&app, uri, &[]).await;
    assert_eq!(enc, None);
    let (_, enc, _) = get_with(&app, uri, &[("accept-encoding", "gzip;q=0")]).await;
    assert_eq!(enc, None);
}

#[tokio::test]
async fn probes_still_served() {
    let app = app();
    let (status, _) = get(&app, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get(&app, "/healthz").await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "no batch marked done yet"
    );
}

/// Bounds met before any handler runs (`api::limits`): the request target's length, a request
/// body (never read: a 1 GiB upload is refused without polling it once) and the length of
/// names in paths.
#[tokio::test]
async fn oversized_requests_are_refused_before_any_handler() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use heapster_rs::api::limits::{MAX_NAME, MAX_URI};
    use tower::ServiceExt;

    let app = app();
    let pad = "x".repeat(MAX_URI);
    let name = "n".repeat(MAX_NAME + 1);
    let cases: &[(String, StatusCode, &str)] = &[
        (
            format!("/api/v1/model/nodes/n1/metrics/cpu/usage_rate?pad={pad}"),
            StatusCode::URI_TOO_LONG,
            "error",
        ),
        (
            format!("/apis/metrics.k8s.io/v1beta1/nodes?labelSelector={pad}"),
            StatusCode::URI_TOO_LONG,
            "message",
        ),
        (
            format!("/apis/metrics.k8s.io/v1beta1/nodes/{name}"),
            StatusCode::BAD_REQUEST,
            "message",
        ),
        (
            format!("/apis/metrics.k8s.io/v1beta1/namespaces/{name}/pods"),
            StatusCode::BAD_REQUEST,
            "message",
        ),
        (
            format!("/api/v1/model/namespaces/default/pods/{name}/metrics"),
            StatusCode::BAD_REQUEST,
            "error",
        ),
    ];
    for (uri, want, field) in cases {
        let (status, body) = get(&app, uri).await;
        assert_eq!(status, *want, "{}: {body}", &uri[..60]);
        assert!(body[field].is_string(), "{body}");
        assert!(
            body.to_string().len() < 1024,
            "the answer does not echo the input"
        );
    }

    // A body that never ends, declared as 1 GiB: refused, and never polled.
    let polled = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&polled);
    let endless = futures::stream::repeat_with(move || {
        p.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(&[0u8; 65536]))
    });
    let req = http::Request::builder()
        .uri("/api/v1/model/nodes")
        .header("content-length", "1073741824")
        .body(axum::body::Body::from_stream(endless))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(polled.load(Ordering::SeqCst), 0);
}
