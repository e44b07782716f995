//! One tick's collector-side work, stage by stage, on the simulator's payloads (30 pods × 2
//! containers per node, shaped like the 1.34/1.35 captures) for 200 nodes: Summary decoding,
//! processing (rates, enrichment from the pods the apiserver lists, aggregation), store ingest
//! and line-protocol encoding (plain and gzipped; with `TICK_ONCE=1`, also the plain chunks
//! gzipped by flate2 at levels 1 and 6, for comparison). Criterion reports each stage per node
//! (`Throughput::Elements`).
//!
//! The simulator runs in-process only while the payloads are fetched (twice, a second apart, so
//! rates exist); the timed loops do no I/O. Run: `cargo bench --bench tick`.
//!
//! Instruction counts, repeatable on a busy machine: `TICK_ONCE=1` runs every stage once
//! outside criterion, each in a `stage_*` function, so
//! `TICK_ONCE=1 valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*stage_*'
//! target/release/deps/tick-HASH` counts exactly the stages (`callgrind_annotate` splits them).
//! There, `stage_influx_sink` also sends the gzipped tick through the InfluxDB sink (its memory
//! queue, delivery loop and HTTP client, on one thread) to a local Python endpoint that keeps
//! nothing: less `stage_influx_encode_gzip`, what delivering a tick costs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use heapster_rs::config::{Parsed, SinkConfig};
use heapster_rs::model::Batch;
use heapster_rs::model::cluster::{ClusterState, Interner};
use heapster_rs::model::labels::LabelPolicy;
use heapster_rs::model::sample::NodeSample;
use heapster_rs::model::time::NANOS_PER_SEC;
use heapster_rs::process::Processor;
use heapster_rs::sim::{SimCluster, SimOptions};
use heapster_rs::sink::Sink;
use heapster_rs::sink::influxdb::InfluxSink;
use heapster_rs::sink::influxdb::schema::{BatchEncoder, Chunk, SchemaOptions};
use heapster_rs::source::decode::{NodeNames, ResourceIds, decode_summary_with};
use heapster_rs::source::summary;
use heapster_rs::source::watch::pod_info;
use heapster_rs::store::{Store, StoreOptions};
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Pod;

const NODES: usize = 200;

struct Payloads {
    names: Vec<Arc<str>>,
    first: Vec<Vec<u8>>,
    second: Vec<Vec<u8>>,
    cluster: ClusterState,
}

async fn fetch_all(client: &reqwest::Client, urls: &[String]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        let body = client
            .get(url)
            .send()
            .await
            .expect("GET summary")
            .bytes()
            .await
            .expect("body");
        out.push(body.to_vec());
    }
    out
}

fn payloads() -> Payloads {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let sim = SimCluster::start(SimOptions {
            nodes: NODES,
            pods_per_node: 30,
            containers_per_pod: 2,
            ..SimOptions::default()
        })
        .await
        .expect("simulator starts");
        let client = reqwest::Client::new();
        let nodes = sim.nodes();
        let urls: Vec<String> = nodes
            .iter()
            .map(|n| format!("http://{}:{}/stats/summary", n.ip, sim.kubelet_port()))
            .collect();
        let first = fetch_all(&client, &urls).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let second = fetch_all(&client, &urls).await;
        let body = client
            .get(sim.api_url().join("api/v1/pods").expect("url"))
            .send()
            .await
            .expect("GET pods")
            .bytes()
            .await
            .expect("pod list");
        let pods: List<Pod> = serde_json::from_slice(&body).expect("pod list decodes");
        let policy = LabelPolicy::new(",", &[], &[]);
        let mut cluster = ClusterState::default();
        let mut strings = Interner::default();
        for pod in &pods.items {
            if let Some(info) = pod_info(pod, &policy, &mut strings) {
                cluster.insert_pod(Arc::new(info));
            }
        }
        let names = nodes.iter().map(|n| Arc::from(n.name.as_str())).collect();
        sim.shutdown().await;
        Payloads {
            names,
            first,
            second,
            cluster,
        }
    })
}

/// What decoding keeps: the resource ids, and each node's names from its last answer (as the
/// scraper keeps them).
#[derive(Default)]
struct Decoder {
    ids: ResourceIds,
    kept: std::cell::RefCell<Vec<NodeNames>>,
}

fn decode_all(bodies: &[Vec<u8>], names: &[Arc<str>], d: &Decoder) -> Vec<NodeSample> {
    let mut kept = d.kept.borrow_mut();
    kept.resize_with(bodies.len(), NodeNames::default);
    bodies
        .iter()
        .zip(names)
        .zip(kept.iter_mut())
        .map(|((body, node), kept)| {
            let s = summary::decode(body).expect("decodes");
            decode_summary_with(&s, node, 0, &d.ids, kept)
        })
        .collect()
}

fn store() -> Store {
    Store::new(
        StoreOptions {
            history: 15 * 60 * NANOS_PER_SEC,
            resolution: 15 * NANOS_PER_SEC,
            limit: heapster_rs::store::SeriesLimit::Series(1_000_000),
            history_metrics: heapster_rs::store::HistoryMetrics::default(),
        },
        &mut prometheus_client::registry::Registry::default(),
    )
}

#[inline(never)]
fn stage_decode(p: &Payloads, d: &Decoder) -> Vec<NodeSample> {
    decode_all(&p.second, &p.names, d)
}

#[inline(never)]
fn stage_process(pr: &mut Processor, samples: Vec<NodeSample>, cluster: &ClusterState) -> Batch {
    pr.process(samples, cluster, 30 * NANOS_PER_SEC, i64::MAX)
}

#[inline(never)]
fn stage_store_push(s: &Store, batch: &Batch) {
    s.push(batch);
}

#[inline(never)]
fn stage_influx_encode(enc: &mut BatchEncoder, batch: &Batch) -> usize {
    assert!(!enc.gzip());
    let mut out = Vec::new();
    enc.encode(batch, &mut out);
    out.iter().map(|c| c.body.len()).sum()
}

/// The same with gzip on: a function of its own so that callgrind counts it apart.
#[inline(never)]
fn stage_influx_encode_gzip(enc: &mut BatchEncoder, batch: &Batch) -> usize {
    assert!(enc.gzip());
    let mut out = Vec::new();
    enc.encode(batch, &mut out);
    out.iter().map(|c| c.body.len()).sum()
}

/// The plain chunks gzipped by flate2 at `level`, each on its own as a request body would be:
/// the general-purpose deflater the built-in line compressor is weighed against.
fn flate2_gzip(chunks: &[Chunk], level: u32) -> usize {
    use std::io::Write;
    chunks
        .iter()
        .map(|c| {
            let mut z = flate2::write::GzEncoder::new(
                Vec::with_capacity(c.body.len() / 8),
                flate2::Compression::new(level),
            );
            z.write_all(&c.body).expect("gzip");
            z.finish().expect("gzip").len()
        })
        .sum()
}

#[inline(never)]
fn stage_flate2_fast(chunks: &[Chunk]) -> usize {
    flate2_gzip(chunks, 1)
}

#[inline(never)]
fn stage_flate2_default(chunks: &[Chunk]) -> usize {
    flate2_gzip(chunks, 6)
}

/// An InfluxDB 1.x stand-in that answers `/ping`, `/query` and `/write` and keeps nothing, in
/// a process of its own so that callgrind does not count it; its port.
struct Endpoint {
    child: std::process::Child,
    port: u16,
}

const ENDPOINT: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        while n > 0:
            n -= len(self.rfile.read(min(n, 1 << 20)))
        body = b'{"results":[{"statement_id":0}]}' if self.path.startswith("/query") else b""
        self.send_response(200 if body else 204)
        self.send_header("X-Influxdb-Version", "1.8.10")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = answer
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

impl Endpoint {
    fn start() -> Endpoint {
        let mut child = std::process::Command::new("python3")
            .args(["-c", ENDPOINT])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 starts");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("port");
        let port = line.trim().parse().expect("port number");
        Endpoint { child, port }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The InfluxDB sink with its defaults, writing to `port`.
fn influx_sink(port: u16) -> InfluxSink {
    let flag = format!("--sink=influxdb:http://127.0.0.1:{port}?db=k8s");
    let Parsed::Run(config) = heapster_rs::config::parse(["heapster", &flag], &|_| None) else {
        panic!("sink config");
    };
    let cfg = config
        .sinks
        .into_iter()
        .find_map(|s| match s {
            SinkConfig::InfluxDb(cfg) => Some(cfg),
            _ => None,
        })
        .expect("an InfluxDB sink");
    InfluxSink::new(&cfg, &mut prometheus_client::registry::Registry::default()).expect("sink")
}

/// Exports `batch` and waits until the memory queue is empty: encoding, queueing, delivery,
/// all on the calling thread. Returns the points written so far.
fn deliver(rt: &tokio::runtime::Runtime, sink: &mut InfluxSink, batch: &Arc<Batch>) -> u64 {
    rt.block_on(async {
        sink.export(Arc::clone(batch)).await;
        while sink.stats().buffered_points > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    sink.stats().points_written
}

#[inline(never)]
fn stage_influx_sink(
    rt: &tokio::runtime::Runtime,
    sink: &mut InfluxSink,
    batch: &Arc<Batch>,
) -> u64 {
    deliver(rt, sink, batch)
}

/// The sink's defaults: 5,000 lines per request, Heapster's default schema.
fn encoder(gzip: bool) -> BatchEncoder {
    BatchEncoder::new(SchemaOptions {
        cluster_name: "default".into(),
        with_fields: false,
        disable_counter_metrics: false,
        batch_size: 5_000,
        gzip,
        gzip_level: None,
    })
}

/// `TICK_ONCE=1`: each stage once, for callgrind.
fn once(p: &Payloads) {
    let dec = Decoder::default();
    let mut pr = Processor::new();
    let first = pr.process(
        decode_all(&p.first, &p.names, &dec),
        &p.cluster,
        15 * NANOS_PER_SEC,
        i64::MAX,
    );
    let s = store();
    s.push(&first);
    let samples = stage_decode(p, &dec);
    let batch = stage_process(&mut pr, samples, &p.cluster);
    stage_store_push(&s, &batch);
    let bytes = stage_influx_encode(&mut encoder(false), &batch);
    let gzipped = stage_influx_encode_gzip(&mut encoder(true), &batch);
    {
        let endpoint = Endpoint::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let batch = Arc::new(batch.clone());
        // The first tick outside the stage: the API detected, the connection opened.
        let mut sink = rt.block_on(async { influx_sink(endpoint.port) });
        let first = deliver(&rt, &mut sink, &batch);
        let both = stage_influx_sink(&rt, &mut sink, &batch);
        assert_eq!(both, 2 * first, "every point written");
        eprintln!("{first} points written a tick through the InfluxDB sink");
    }
    // Outside the stages: the gunzipped lines must equal the plain ones (CRC-32 printed).
    let lines = |gzip: bool| {
        let mut out = Vec::new();
        encoder(gzip).encode(&batch, &mut out);
        unzipped(&out)
    };
    let plain = lines(false);
    assert!(
        plain == lines(true),
        "gzipped lines differ from the plain ones"
    );
    let mut crc = flate2::Crc::new();
    crc.update(&plain);
    eprintln!(
        "{} points, {bytes} bytes of line protocol, {gzipped} gzipped, lines crc32 {:08x}",
        batch.point_count(),
        crc.sum(),
    );
    let mut chunks = Vec::new();
    encoder(false).encode(&batch, &mut chunks);
    let fast = stage_flate2_fast(&chunks);
    let default = stage_flate2_default(&chunks);
    eprintln!("flate2: {fast} bytes at level 1, {default} at level 6");
}

/// The lines of chunks, gunzipped where they are gzipped.
fn unzipped(chunks: &[Chunk]) -> Vec<u8> {
    let mut lines = Vec::new();
    for c in chunks {
        if c.gzipped {
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&c.body[..]), &mut lines)
                .expect("gunzip");
        } else {
            lines.extend_from_slice(&c.body);
        }
    }
    lines
}

fn tick(c: &mut Criterion) {
    let p = payloads();
    if std::env::var_os("TICK_ONCE").is_some() {
        once(&p);
        std::process::exit(0);
    }
    let dec = Decoder::default();
    let bytes: usize = p.second.iter().map(Vec::len).sum();
    eprintln!(
        "{NODES} nodes, {} pods known, {} KiB of Summary per node",
        p.cluster.pod_count(),
        bytes / NODES / 1024
    );
    let t1 = 15 * NANOS_PER_SEC;
    let t2 = 30 * NANOS_PER_SEC;
    let first: Batch = Processor::new().process(
        decode_all(&p.first, &p.names, &dec),
        &p.cluster,
        t1,
        i64::MAX,
    );
    let second_samples = decode_all(&p.second, &p.names, &dec);
    let second = {
        let mut p2 = Processor::new();
        p2.process(
            decode_all(&p.first, &p.names, &dec),
            &p.cluster,
            t1,
            i64::MAX,
        );
        p2.process(second_samples.clone(), &p.cluster, t2, i64::MAX)
    };
    eprintln!(
        "{} sets, {} points per tick ({} per node)",
        second.sets.len(),
        second.point_count(),
        second.point_count() / NODES
    );

    let mut shapes: std::collections::BTreeMap<&str, (usize, usize, usize, usize)> =
        Default::default();
    for set in &second.sets {
        let e = shapes
            .entry(set.set_type().as_str())
            .or_insert((0, usize::MAX, 0, 0));
        e.0 += 1;
        e.1 = e.1.min(set.values.len());
        e.2 = e.2.max(set.values.len());
        e.3 = e.3.max(set.labeled.len());
    }
    for (t, (n, lo, hi, labeled)) in shapes {
        eprintln!("{t}: {n} sets, {lo}-{hi} values, up to {labeled} labeled");
    }

    let mut g = c.benchmark_group("tick");
    g.throughput(Throughput::Elements(NODES as u64));
    g.sample_size(20);
    g.bench_function("decode", |b| {
        b.iter(|| black_box(decode_all(black_box(&p.second), &p.names, &dec)))
    });
    g.bench_function("process", |b| {
        b.iter_batched(
            || {
                let mut pr = Processor::new();
                pr.process(
                    decode_all(&p.first, &p.names, &dec),
                    &p.cluster,
                    t1,
                    i64::MAX,
                );
                (pr, second_samples.clone())
            },
            |(mut pr, samples)| black_box(pr.process(samples, &p.cluster, t2, i64::MAX)),
            criterion::BatchSize::LargeInput,
        )
    });
    let s = store();
    s.push(&first);
    let mut t = t2;
    g.bench_function("store_push", |b| {
        b.iter_batched(
            || {
                t += 15 * NANOS_PER_SEC;
                let mut batch = second.clone();
                batch.timestamp = t;
                batch
            },
            |batch| s.push(black_box(&batch)),
            criterion::BatchSize::LargeInput,
        )
    });
    // The sink's defaults: 5,000 lines per request; gzip on ("influx_encode_gzip") and off.
    for (name, gzip) in [("influx_encode", false), ("influx_encode_gzip", true)] {
        let mut enc = encoder(gzip);
        let mut out = Vec::new();
        let stats = enc.encode(&second, &mut out);
        let sent: usize = out.iter().map(|c| c.body.len()).sum();
        // CRC-32 of the lines (gunzipped), to check that a change keeps the output identical.
        let mut crc = flate2::Crc::new();
        crc.update(&unzipped(&out));
        eprintln!(
            "{name}: {} lines per node, {} KiB per node, {:.1} bytes per line, sent {} KiB per node (ratio {:.1}), lines crc32 {:08x}",
            stats.lines / NODES,
            stats.bytes / NODES / 1024,
            stats.bytes as f64 / stats.lines as f64,
            sent / NODES / 1024,
            stats.bytes as f64 / sent as f64,
            crc.sum(),
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                black_box(enc.encode(black_box(&second), &mut out));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
