//! Unit tests: the series a batch becomes, the requests' size, and the 413 split.

use super::proto::TimeSeries;
use super::*;
use crate::model::{LabeledValue, Metric, MetricSet, SetKey, Value, Values};

const TS: i64 = 1_700_000_000_123_000_000;

fn batch(more: bool) -> Batch {
    let mut node = MetricSet::new(SetKey::Node { node: "n1".into() }, TS);
    node.node = Some("n1".into());
    node.values = Values::from([
        (Metric::CpuUsageRate, Value::Int(250)),
        (Metric::CpuUsage, Value::Int(9_000_000_000)),
        (Metric::MemoryPageFaultsRate, Value::Float(f64::NAN)),
    ]);
    node.labeled = vec![LabeledValue {
        metric: Metric::FilesystemUsage,
        resource_id: "/dev/sda1".into(),
        pvc: None,
        value: Value::Int(42),
    }];
    let mut c = MetricSet::new(
        SetKey::PodContainer {
            namespace: "kube-system".into(),
            pod: "dns-1".into(),
            container: "dns".into(),
        },
        TS,
    );
    c.node = Some("n1".into());
    c.labels = Some("app:dns".into());
    c.values = Values::from([(Metric::MemoryWorkingSet, Value::Int(1 << 20))]);
    let mut b = Batch::new(TS, vec![node, c]);
    b.more = more;
    b
}

fn decode(body: &Body) -> WriteRequest {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&body.bytes)
        .expect("snappy");
    WriteRequest::decode(&raw[..]).expect("protobuf")
}

fn render(ts: &TimeSeries) -> String {
    let labels: Vec<String> = ts
        .labels
        .iter()
        .map(|l| format!("{}={}", l.name, l.value))
        .collect();
    format!("{} {:?}", labels.join(","), ts.samples)
}

#[test]
fn series_carry_prometheus_names_base_units_and_sorted_labels() {
    let mut enc = Encoder::new("prod", &[("region".into(), "eu".into())], 100);
    let mut out = Vec::new();
    assert_eq!(enc.encode(&batch(false), &mut out), 1, "the NaN is skipped");
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].points, out[0].timestamp, out[0].compressed),
        (4, TS, true)
    );
    let got: Vec<String> = decode(&out[0]).timeseries.iter().map(render).collect();
    let ms = TS / 1_000_000;
    let want = [
        format!(
            "__name__=heapster_cpu_usage_seconds_total,cluster=prod,node=n1,region=eu,type=node [Sample {{ value: 9.0, timestamp: {ms} }}]"
        ),
        format!(
            "__name__=heapster_cpu_usage_cores,cluster=prod,node=n1,region=eu,type=node [Sample {{ value: 0.25, timestamp: {ms} }}]"
        ),
        format!(
            "__name__=heapster_filesystem_usage_bytes,cluster=prod,device=/dev/sda1,node=n1,region=eu,type=node [Sample {{ value: 42.0, timestamp: {ms} }}]"
        ),
        format!(
            "__name__=heapster_memory_working_set_bytes,cluster=prod,container=dns,namespace=kube-system,node=n1,pod=dns-1,region=eu,type=pod_container [Sample {{ value: 1048576.0, timestamp: {ms} }}]"
        ),
    ];
    assert_eq!(got, want);
}

#[test]
fn pieces_of_a_tick_fill_requests_of_at_most_the_configured_samples() {
    let mut enc = Encoder::new("c", &[], 3);
    let mut out = Vec::new();
    enc.encode(&batch(true), &mut out);
    // Three samples of the first piece made a request; one is open.
    assert_eq!(out.iter().map(|b| b.points).collect::<Vec<_>>(), [3]);
    enc.encode(&batch(false), &mut out);
    assert_eq!(out.iter().map(|b| b.points).collect::<Vec<_>>(), [3, 3, 2]);
    enc.finish(&mut out);
    assert_eq!(out.len(), 3);
}

#[test]
fn a_body_splits_in_halves_down_to_one_series() {
    let mut enc = Encoder::new("c", &[], 100);
    let mut out = Vec::new();
    enc.encode(&batch(false), &mut out);
    let (a, b) = split(&out[0]).expect("halves");
    assert_eq!((a.points, b.points), (2, 2));
    let all: Vec<_> = decode(&a)
        .timeseries
        .into_iter()
        .chain(decode(&b).timeseries)
        .collect();
    assert_eq!(all, decode(&out[0]).timeseries);
    let (one, _) = split(&a).expect("halves");
    assert!(split(&one).is_none());
}

#[test]
fn extra_labels_sort_around_the_name_and_device_slots() {
    let extra = [
        ("Zone".to_string(), "a".to_string()),
        ("app_tier".to_string(), "b".to_string()),
        ("env".to_string(), "c".to_string()),
    ];
    let mut enc = Encoder::new("prod", &extra, 100);
    let mut out = Vec::new();
    enc.encode(&batch(false), &mut out);
    for ts in decode(&out[0]).timeseries {
        let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert_eq!(names[..3], ["Zone", "__name__", "app_tier"]);
    }
}

#[test]
fn a_claims_volume_carries_the_claim_label_in_sorted_place() {
    let mut pod = MetricSet::new(
        SetKey::Pod {
            namespace: "db".into(),
            pod: "pg-0".into(),
        },
        TS,
    );
    pod.node = Some("n1".into());
    pod.labeled = vec![
        LabeledValue {
            metric: Metric::FilesystemUsage,
            resource_id: "Volume:data".into(),
            pvc: Some("data-pg-0".into()),
            value: Value::Int(7),
        },
        LabeledValue {
            metric: Metric::FilesystemUsage,
            resource_id: "Volume:tmp".into(),
            pvc: None,
            value: Value::Int(3),
        },
    ];
    let extra = [("owner".to_string(), "x".to_string())];
    let mut enc = Encoder::new("prod", &extra, 100);
    let mut out = Vec::new();
    enc.encode(&Batch::new(TS, vec![pod]), &mut out);
    let got: Vec<String> = decode(&out[0]).timeseries.iter().map(render).collect();
    let ms = TS / 1_000_000;
    let want = [
        format!(
            "__name__=heapster_filesystem_usage_bytes,cluster=prod,device=Volume:data,namespace=db,node=n1,owner=x,persistentvolumeclaim=data-pg-0,pod=pg-0,type=pod [Sample {{ value: 7.0, timestamp: {ms} }}]"
        ),
        format!(
            "__name__=heapster_filesystem_usage_bytes,cluster=prod,device=Volume:tmp,namespace=db,node=n1,owner=x,pod=pg-0,type=pod [Sample {{ value: 3.0, timestamp: {ms} }}]"
        ),
    ];
    assert_eq!(got, want);
}
