//! Unit tests: the exact lines each set type becomes (the schema), and the "buffer full" warnings.

use std::sync::Arc;

use super::schema::{BatchEncoder, Chunk, SchemaOptions};
use crate::model::{Batch, LabeledValue, Metric, MetricSet, SetKey, Value, Values};

const TS: i64 = 1_700_000_000_000_000_000;

fn opts(with_fields: bool) -> SchemaOptions {
    SchemaOptions {
        cluster_name: "prod".into(),
        with_fields,
        disable_counter_metrics: false,
        batch_size: 5000,
        gzip: false,
        gzip_level: None,
    }
}

fn lines(opts: SchemaOptions, batch: &Batch) -> Vec<String> {
    let mut out: Vec<Chunk> = Vec::new();
    BatchEncoder::new(opts).encode(batch, &mut out);
    out.iter()
        .flat_map(|c| {
            String::from_utf8(c.body.to_vec())
                .expect("utf8")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn node() -> MetricSet {
    let mut s = MetricSet::new(SetKey::Node { node: "n1".into() }, TS);
    s.node = Some("n1".into());
    s.labels = Some("kubernetes.io/os:linux,zone:a b".into());
    s.schedulable = Some(true);
    s.values = Values::from([
        (Metric::CpuUsageRate, Value::Int(250)),
        (Metric::CpuUsage, Value::Int(9_000)),
        (Metric::MemoryPageFaultsRate, Value::Float(1.5)),
    ]);
    s.labeled = vec![LabeledValue {
        metric: Metric::FilesystemUsage,
        pvc: None,
        resource_id: "/".into(),
        value: Value::Int(42),
    }];
    s
}

fn container() -> MetricSet {
    let mut s = MetricSet::new(
        SetKey::PodContainer {
            namespace: "kube-system".into(),
            pod: "dns-1".into(),
            container: "dns".into(),
        },
        TS,
    );
    s.node = Some("n1".into());
    s.image = Some("k8s.gcr.io/dns:1.0".into());
    s.labels = Some(String::new().into());
    s.pod_uid = Some("uid-1".into());
    s.values = Values::from([
        (Metric::Uptime, Value::Int(7)),
        (Metric::MemoryUsage, Value::Int(8)),
    ]);
    s
}

#[test]
fn default_schema_lines() {
    let mut ns = MetricSet::new(
        SetKey::Namespace {
            namespace: Arc::from("default"),
        },
        TS,
    );
    ns.values = Values::from([(Metric::MemoryUsage, Value::Int(1))]);
    let mut cluster = MetricSet::new(SetKey::Cluster, TS);
    cluster.values = Values::from([(Metric::CpuUsageRate, Value::Float(f64::NAN))]);
    let batch = Batch::new(TS, vec![node(), container(), ns, cluster]);
    // Within a set, lines follow the metric catalogue (`Values` keeps metric order).
    let want = [
        "cpu/usage,cluster_name=prod,labels=kubernetes.io/os:linux\\,zone:a\\ b,nodename=n1,schedulable=true,type=node value=9000i 1700000000000000000",
        "cpu/usage_rate,cluster_name=prod,labels=kubernetes.io/os:linux\\,zone:a\\ b,nodename=n1,schedulable=true,type=node value=250i 1700000000000000000",
        "memory/page_faults_rate,cluster_name=prod,labels=kubernetes.io/os:linux\\,zone:a\\ b,nodename=n1,schedulable=true,type=node value=1.5 1700000000000000000",
        "filesystem/usage,cluster_name=prod,labels=kubernetes.io/os:linux\\,zone:a\\ b,nodename=n1,resource_id=/,schedulable=true,type=node value=42i 1700000000000000000",
        "uptime,cluster_name=prod,container_base_image=k8s.gcr.io/dns:1.0,container_name=dns,namespace_name=kube-system,nodename=n1,pod_name=dns-1,type=pod_container value=7i 1700000000000000000",
        "memory/usage,cluster_name=prod,container_base_image=k8s.gcr.io/dns:1.0,container_name=dns,namespace_name=kube-system,nodename=n1,pod_name=dns-1,type=pod_container value=8i 1700000000000000000",
        "memory/usage,cluster_name=prod,namespace_name=default,type=ns value=1i 1700000000000000000",
    ];
    assert_eq!(lines(opts(false), &batch), want);
}

#[test]
fn with_fields_merges_by_measurement() {
    let batch = Batch::new(TS, vec![node()]);
    let tags = "cluster_name=prod,labels=kubernetes.io/os:linux\\,zone:a\\ b,nodename=n1";
    let want = [
        format!("cpu,{tags},schedulable=true,type=node usage=9000i,usage_rate=250i {TS}"),
        format!("memory,{tags},schedulable=true,type=node page_faults_rate=1.5 {TS}"),
        format!("filesystem,{tags},resource_id=/,schedulable=true,type=node usage=42i {TS}"),
    ];
    assert_eq!(lines(opts(true), &batch), want);
}

#[test]
fn counters_can_be_disabled_and_chunks_are_bounded() {
    let mut o = opts(false);
    o.disable_counter_metrics = true;
    o.batch_size = 2;
    o.gzip = true;
    let batch = Batch::new(TS, vec![node(), container()]);
    let mut out = Vec::new();
    let stats = BatchEncoder::new(o).encode(&batch, &mut out);
    assert_eq!(stats.points, 5, "cpu/usage dropped");
    assert_eq!(out.iter().map(|c| c.lines).collect::<Vec<_>>(), [2, 2, 1]);
    assert!(
        out.iter()
            .all(|c| c.gzipped && c.body.starts_with(&[0x1f, 0x8b]))
    );
}

#[test]
fn gzipped_chunks_hold_exactly_the_plain_lines() {
    use std::io::Read;
    let mut sets = Vec::new();
    let labels: Arc<str> = "app:web,tier:front end".into();
    for i in 0..40 {
        let mut n = node();
        n.set(Metric::CpuUsageRate, Value::Int(i));
        if i % 3 == 0 {
            // Non-finite values are skipped: lines dropped after their tags were written.
            n.set(Metric::MemoryPageFaultsRate, Value::Float(f64::NAN));
        }
        for rid in ["/", "/var/lib/docker", "logs", "/"] {
            n.labeled.push(LabeledValue {
                metric: Metric::FilesystemLimit,
                pvc: None,
                resource_id: rid.into(),
                value: Value::Int(i * 1000),
            });
        }
        sets.push(n);
        // Containers of one pod share their labels string; another has an equal copy.
        for c in 0..3 {
            let mut s = container();
            s.labels = Some(if c == 2 {
                String::from(&*labels).into()
            } else {
                Arc::clone(&labels)
            });
            s.set(Metric::CpuUsageRate, Value::Float(0.5 * f64::from(c)));
            if c == 1 {
                s.image = Some(format!("registry/img-{i}:v{c}").into());
            }
            sets.push(s);
        }
    }
    let batch = Batch::new(TS, sets);
    for with_fields in [false, true] {
        // The built-in line compressor, then flate2 at two levels (`gzip_level`).
        for (batch_size, level) in [1, 2, 3, 7, 5000]
            .into_iter()
            .flat_map(|b| [(b, None), (b, Some(1)), (b, Some(9))])
        {
            let mut o = opts(with_fields);
            o.batch_size = batch_size;
            let plain = lines(o.clone(), &batch).join("\n") + "\n";
            o.gzip = true;
            o.gzip_level = level;
            let mut out = Vec::new();
            // Twice through one encoder: the second batch reuses its buffers and hints (and
            // has another timestamp).
            let mut enc = BatchEncoder::new(o);
            let mut earlier = batch.clone();
            earlier.timestamp = TS - 15_000_000_000;
            enc.encode(&earlier, &mut out);
            out.clear();
            enc.encode(&batch, &mut out);
            let mut unzipped = Vec::new();
            for c in &out {
                assert!(c.gzipped);
                flate2::read::GzDecoder::new(&c.body[..])
                    .read_to_end(&mut unzipped)
                    .expect("valid gzip");
            }
            assert_eq!(
                String::from_utf8(unzipped).expect("utf8"),
                plain,
                "with_fields={with_fields} batch_size={batch_size} gzip_level={level:?}"
            );
        }
    }
}

/// The bodies of chunks, unzipped and joined.
fn unzip_all(chunks: &[Chunk]) -> String {
    use std::io::Read;
    let mut all = Vec::new();
    for c in chunks {
        if c.gzipped {
            flate2::read::GzDecoder::new(&c.body[..])
                .read_to_end(&mut all)
                .expect("valid gzip");
        } else {
            all.extend_from_slice(&c.body);
        }
    }
    String::from_utf8(all).expect("utf8")
}

#[test]
fn a_tick_in_pieces_makes_the_chunks_of_the_whole_tick() {
    let sets: Vec<MetricSet> = (0..30)
        .flat_map(|i| {
            let mut n = node();
            n.set(Metric::CpuUsageRate, Value::Int(i));
            [n, container()]
        })
        .collect();
    for gzip in [false, true] {
        let mut o = opts(false);
        o.gzip = gzip;
        o.batch_size = 7;
        let mut whole = Vec::new();
        BatchEncoder::new(o.clone()).encode(&Batch::new(TS, sets.clone()), &mut whole);
        // The same tick as pieces of 4 sets, the last piece ending it.
        let mut enc = BatchEncoder::new(o);
        let mut pieces = Vec::new();
        let parts: Vec<_> = sets.chunks(4).collect();
        for (i, part) in parts.iter().enumerate() {
            let b = if i + 1 < parts.len() {
                Batch::piece(TS, part.to_vec())
            } else {
                Batch::new(TS, part.to_vec())
            };
            enc.encode(&b, &mut pieces);
        }
        let sizes = |c: &[Chunk]| c.iter().map(|c| c.lines).collect::<Vec<_>>();
        assert_eq!(sizes(&pieces), sizes(&whole), "gzip={gzip}");
        assert!(pieces.iter().all(|c| c.timestamp == TS));
        assert_eq!(unzip_all(&pieces), unzip_all(&whole), "gzip={gzip}");
    }
}

#[test]
fn an_unfinished_tick_is_closed_by_the_next_one_or_by_finish() {
    let mut o = opts(false);
    o.gzip = true;
    let mut enc = BatchEncoder::new(o);
    let mut out = Vec::new();
    enc.encode(&Batch::piece(TS, vec![node()]), &mut out);
    assert!(out.is_empty(), "a piece leaves its chunk open");
    // The next tick's first piece closes the abandoned tick's chunk, under its own timestamp.
    enc.encode(&Batch::piece(TS + 1, vec![container()]), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].timestamp, TS);
    let first = unzip_all(&out);
    assert!(first.lines().all(|l| l.ends_with(" 1700000000000000000")));
    // At shutdown the open chunk is closed too.
    out.clear();
    let stats = enc.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].timestamp, TS + 1);
    assert_eq!(stats.lines, out[0].lines);
    assert!(
        unzip_all(&out)
            .lines()
            .all(|l| l.ends_with(" 1700000000000000001"))
    );
    out.clear();
    enc.finish(&mut out);
    assert!(out.is_empty(), "nothing left to close");
}

/// "Buffer full" warnings: the first drop at once, then at most one per interval with every
/// point dropped since, none when nothing was dropped.
#[test]
fn buffer_full_warnings_are_limited_and_lose_no_count() {
    use std::time::{Duration, Instant};

    use super::DropWarnings;

    let mut w = DropWarnings::default();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    assert_eq!(w.add(0, at(0)), None);
    assert_eq!(w.add(5_000, at(0)), Some(5_000));
    assert_eq!(w.add(5_000, at(1)), None);
    assert_eq!(w.add(5_000, at(9)), None);
    assert_eq!(w.add(0, at(10)), Some(10_000));
    assert_eq!(w.add(0, at(25)), None);
    assert_eq!(w.add(7, at(25)), Some(7));
    // A clock that goes back does not stop the warnings for ever.
    assert_eq!(w.add(1, at(3)), None);
    assert_eq!(w.add(1, at(35)), Some(2));
}
