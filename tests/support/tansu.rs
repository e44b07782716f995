//! A real Kafka-protocol broker for tests: `tansu` (Apache-Kafka-compatible, in Rust) on
//! 127.0.0.1 with in-memory storage, killed on drop; and a consumer reading topics back with
//! `rskafka`'s fetch API.
//!
//! Missing `tansu` skips the test with a message, unless `HEAPSTER_REQUIRE_SERVERS=1` (CI).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rskafka::client::ClientBuilder;
use rskafka::client::partition::UnknownTopicHandling;
use tempfile::TempDir;

use super::influxd::free_port;

pub struct Tansu {
    child: Option<Child>,
    dir: TempDir,
    pub port: u16,
}

impl Tansu {
    /// Starts a broker; `None` when `tansu` is not installed (test skipped).
    pub fn start() -> Option<Tansu> {
        let on_path = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("tansu").is_file()));
        if !on_path {
            if std::env::var("HEAPSTER_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("tansu is not installed and HEAPSTER_REQUIRE_SERVERS=1");
            }
            eprintln!("skipped: tansu not installed (cargo install tansu --features dynostore)");
            return None;
        }
        let mut t = Tansu {
            child: None,
            dir: tempfile::tempdir().expect("tempdir"),
            port: free_port(),
        };
        t.restart();
        Some(t)
    }

    /// `127.0.0.1:PORT`, as the sink's `brokers=` takes it.
    pub fn broker(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tansu.log")).unwrap_or_default()
    }

    /// Kills the broker (an outage; its in-memory topics are gone with it).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("tansu.log"))
            .expect("log file");
        let child = Command::new("tansu")
            .arg("broker")
            .args(["--listener-url", &self.url()])
            .args(["--advertised-listener-url", &self.url()])
            .args(["--storage-engine", "memory://tansu/"])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(
            &([127, 0, 0, 1], self.port).into(),
            Duration::from_millis(200),
        )
        .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "tansu not listening:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `tansu topic create NAME --partitions N`.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let out = Command::new("tansu")
            .args(["topic", "create", name, "--broker", &self.url()])
            .args(["--partitions", &partitions.to_string()])
            .output()
            .expect("run tansu topic create");
        assert!(
            out.status.success(),
            "tansu topic create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message read back.
#[derive(Clone, Debug)]
pub struct Read {
    pub partition: i32,
    pub key: Option<String>,
    pub value: serde_json::Value,
    pub timestamp_ms: i64,
}

/// A consumer of one topic that remembers where it stopped in each partition.
#[derive(Default)]
pub struct Reader {
    offsets: BTreeMap<i32, i64>,
}

impl Reader {
    /// Forgets the offsets (the broker restarted with empty storage).
    pub fn reset(&mut self) {
        self.offsets.clear();
    }

    /// Everything new in `topic` since the last call.
    pub async fn read(&mut self, broker: &str, topic: &str) -> Vec<Read> {
        let client = ClientBuilder::new(vec![broker.to_string()])
            .build()
            .await
            .expect("consumer connects");
        let topics = client.list_topics().await.expect("topics");
        let Some(t) = topics.iter().find(|t| t.name == topic) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for &p in &t.partitions {
            let pc = client
                .partition_client(topic.to_string(), p, UnknownTopicHandling::Retry)
                .await
                .expect("partition client");
            loop {
                let offset = *self.offsets.get(&p).unwrap_or(&0);
                let (records, high) = pc
                    .fetch_records(offset, 1..10_000_000, 100)
                    .await
                    .expect("fetch");
                for r in &records {
                    if r.offset < offset {
                        continue;
                    }
                    let value = r.record.value.as_deref().unwrap_or_default();
                    out.push(Read {
                        partition: p,
                        key: (r.record.key.as_deref())
                            .map(|k| String::from_utf8_lossy(k).into_owned()),
                        value: serde_json::from_slice(value).expect("a JSON message"),
                        timestamp_ms: r.record.timestamp.timestamp_millis(),
                    });
                    self.offsets.insert(p, r.offset + 1);
                }
                if records.is_empty() || *self.offsets.get(&p).unwrap_or(&0) >= high {
                    break;
                }
            }
        }
        out
    }
}
