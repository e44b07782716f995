//! JSON shapes of the model API.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::model::{Value, time};
use crate::store::Point;

/// Go's zero time, which Heapster sent as `latestTimestamp` when there was no point.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Serialize)]
struct JsonPoint {
    timestamp: String,
    value: i64,
    #[serde(rename = "floatValue")]
    float_value: f64,
}

#[derive(Serialize)]
pub struct MetricResult {
    metrics: Vec<JsonPoint>,
    #[serde(rename = "latestTimestamp")]
    latest_timestamp: String,
}

fn result(points: &[Point]) -> MetricResult {
    let metrics = points
        .iter()
        .map(|p| JsonPoint {
            timestamp: time::format_rfc3339(p.timestamp),
            value: p.value.as_i64(),
            float_value: match p.value {
                Value::Int(i) => i as f64,
                Value::Float(f) if f.is_finite() => f,
                Value::Float(_) => 0.0,
            },
        })
        .collect();
    let latest = points.iter().map(|p| p.timestamp).max();
    MetricResult {
        metrics,
        latest_timestamp: latest.map_or_else(|| GO_ZERO_TIME.to_string(), time::format_rfc3339),
    }
}

pub fn points(points: &[Point]) -> Response {
    Json(result(points)).into_response()
}

pub fn items(items: &[Vec<Point>]) -> Response {
    #[derive(Serialize)]
    struct Items {
        items: Vec<MetricResult>,
    }
    Json(Items {
        items: items.iter().map(|p| result(p)).collect(),
    })
    .into_response()
}

pub fn names(names: Vec<String>) -> Response {
    Json(names).into_response()
}

/// One pod-list item as JSON, to merge with other replicas' items.
pub fn item_json(points: &[Point]) -> serde_json::Value {
    serde_json::to_value(result(points)).unwrap_or_default()
}

/// A pod-list answer from items already in JSON.
pub fn items_json(items: Vec<serde_json::Value>) -> Response {
    Json(serde_json::json!({ "items": items })).into_response()
}
