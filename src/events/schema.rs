//! Heapster's eventer schema in InfluxDB (REFERENCE.md §3 "Events").
//!
//! Default: measurement `log/events`, field `value` = the core/v1 Event as JSON, tags `uid`,
//! `pod_id` and `pod_name` (when the involved object is a Pod), `hostname` (`source.host`, else
//! `reportingInstance`) and `cluster_name`. `withfields=true`: measurement `events`, field
//! `message`, tags `uid`, `object_name`, `type`, `kind`, `component`, `reason`,
//! `namespace_name`, `hostname`, `cluster_name` (and `pod_id` for Pod events, as Heapster did).
//! Empty tag values are left out (line protocol has no empty tags).

use k8s_openapi::api::core::v1::Event;

use super::Record;
use crate::model::Nanos;
pub use crate::model::event::hostname;
use crate::sink::influxdb::encode::{FieldValue, Line, LineError, write_line};

/// `log/events` in the default schema.
pub const MEASUREMENT: &str = "log/events";
/// `events` with `withfields=true`.
pub const MEASUREMENT_WITH_FIELDS: &str = "events";

fn nanos(t: &k8s_openapi::jiff::Timestamp) -> Option<Nanos> {
    i64::try_from(t.as_nanosecond()).ok()
}

/// The event's time: `lastTimestamp`, else `series.lastObservedTime`, `eventTime`,
/// `firstTimestamp`, `metadata.creationTimestamp`; `None` when it has none of them.
pub fn point_time(e: &Event) -> Option<Nanos> {
    e.last_timestamp
        .as_ref()
        .and_then(|t| nanos(&t.0))
        .or_else(|| {
            e.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref())
                .and_then(|t| nanos(&t.0))
        })
        .or_else(|| e.event_time.as_ref().and_then(|t| nanos(&t.0)))
        .or_else(|| e.first_timestamp.as_ref().and_then(|t| nanos(&t.0)))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| nanos(&t.0))
        })
}

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or_default()
}

/// Which schema and cluster name.
#[derive(Clone, Debug)]
pub struct EventSchema {
    pub cluster_name: String,
    pub with_fields: bool,
}

impl EventSchema {
    /// Appends one line for `record` to `buf`.
    pub fn write(&self, buf: &mut Vec<u8>, record: &Record) -> Result<(), LineError> {
        let e = &*record.event;
        let obj = &e.involved_object;
        let is_pod = obj.kind.as_deref() == Some("Pod");
        let uid = s(&e.metadata.uid);
        let pod_id = if is_pod { s(&obj.uid) } else { "" };
        let host = hostname(e);
        let cluster = self.cluster_name.as_str();
        if self.with_fields {
            let component = e.source.as_ref().map(|c| s(&c.component)).unwrap_or("");
            let tags = [
                ("uid", uid),
                ("pod_id", pod_id),
                ("object_name", s(&obj.name)),
                ("type", s(&e.type_)),
                ("kind", s(&obj.kind)),
                ("component", component),
                ("reason", s(&e.reason)),
                ("namespace_name", s(&e.metadata.namespace)),
                ("hostname", host),
                ("cluster_name", cluster),
            ];
            let fields = [("message", FieldValue::Str(s(&e.message)))];
            let line = Line {
                measurement: MEASUREMENT_WITH_FIELDS,
                tags: &tags,
                fields: &fields,
                timestamp: record.time,
            };
            write_line(buf, &line).map(|_| ())
        } else {
            let json = serde_json::to_string(e).unwrap_or_default();
            let pod_name = if is_pod { s(&obj.name) } else { "" };
            let tags = [
                ("uid", uid),
                ("pod_id", pod_id),
                ("pod_name", pod_name),
                ("hostname", host),
                ("cluster_name", cluster),
            ];
            let fields = [("value", FieldValue::Str(&json))];
            let line = Line {
                measurement: MEASUREMENT,
                tags: &tags,
                fields: &fields,
                timestamp: record.time,
            };
            write_line(buf, &line).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EventSource, ObjectReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
    use std::sync::Arc;

    fn ts(s: &str) -> k8s_openapi::jiff::Timestamp {
        s.parse().expect("timestamp")
    }

    fn pod_event() -> Event {
        Event {
            metadata: ObjectMeta {
                uid: Some("u-1".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web-1".into()),
                uid: Some("p-1".into()),
                ..Default::default()
            },
            reason: Some("Started".into()),
            message: Some("Started container \"web\"".into()),
            type_: Some("Normal".into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("node 1".into()),
            }),
            last_timestamp: Some(Time(ts("2026-01-02T03:04:05Z"))),
            ..Default::default()
        }
    }

    fn line(schema: &EventSchema, e: Event) -> String {
        let record = Record {
            time: point_time(&e).expect("time"),
            event: Arc::new(e),
        };
        let mut buf = Vec::new();
        schema.write(&mut buf, &record).expect("written");
        String::from_utf8(buf).expect("utf8")
    }

    #[test]
    fn with_fields_line() {
        let schema = EventSchema {
            cluster_name: "c".into(),
            with_fields: true,
        };
        assert_eq!(
            line(&schema, pod_event()),
            "events,cluster_name=c,component=kubelet,hostname=node\\ 1,kind=Pod,\
             namespace_name=default,object_name=web-1,pod_id=p-1,reason=Started,type=Normal,\
             uid=u-1 message=\"Started container \\\"web\\\"\" 1767323045000000000\n"
        );
    }

    #[test]
    fn default_line_carries_the_event_json() {
        let schema = EventSchema {
            cluster_name: "default".into(),
            with_fields: false,
        };
        let text = line(&schema, pod_event());
        assert!(text.starts_with(
            "log/events,cluster_name=default,hostname=node\\ 1,pod_id=p-1,pod_name=web-1,uid=u-1 value=\"{"
        ));
        assert!(text.ends_with("}\" 1767323045000000000\n"), "{text}");
    }

    #[test]
    fn time_fallbacks() {
        let mut e = pod_event();
        e.last_timestamp = None;
        e.event_time = Some(MicroTime(ts("2026-01-02T03:04:06.5Z")));
        e.first_timestamp = Some(Time(ts("2026-01-02T03:04:01Z")));
        assert_eq!(point_time(&e), Some(1_767_323_046_500_000_000));
        e.event_time = None;
        assert_eq!(point_time(&e), Some(1_767_323_041_000_000_000));
        e.first_timestamp = None;
        assert_eq!(point_time(&e), None);
        e.reporting_instance = Some("ri".into());
        e.source = None;
        assert_eq!(hostname(&e), "ri");
    }
}
