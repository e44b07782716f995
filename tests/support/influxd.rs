//! Starts real InfluxDB 1.x (`influxd`), VictoriaMetrics and Prometheus servers on loopback for
//! tests.
//!
//! Each server gets free ports on 127.0.0.1 and a temporary directory; it is killed on drop.
//! A missing binary skips the test with a message, unless `HEAPSTER_REQUIRE_SERVERS=1` (CI),
//! where it fails.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
}

/// Whether `bin` can run here; panics under `HEAPSTER_REQUIRE_SERVERS=1` when it cannot.
pub fn available(bin: &str) -> bool {
    if on_path(bin) {
        return true;
    }
    if std::env::var("HEAPSTER_REQUIRE_SERVERS").as_deref() == Ok("1") {
        panic!("{bin} is not installed and HEAPSTER_REQUIRE_SERVERS=1");
    }
    eprintln!(
        "skipped: {bin} not installed (apt-get install -y influxdb victoria-metrics prometheus)"
    );
    false
}

/// Status code of `GET path`, or None when nothing answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn wait_ready(port: u16, path: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if matches!(http_status(port, path), Some(200 | 204)) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("server exited with {status}:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on port {port} not ready after 30s");
}

fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let err = out.try_clone().expect("log file");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn server")
}

/// A real `influxd` (1.x) with its own config, data and ports.
pub struct Influxd {
    child: Option<Child>,
    dir: TempDir,
    pub port: u16,
}

impl Influxd {
    /// Starts a server; `None` when `influxd` is not installed (test skipped).
    pub fn start() -> Option<Influxd> {
        Influxd::start_on(free_port())
    }

    /// Starts a server on a given HTTP port.
    pub fn start_on(port: u16) -> Option<Influxd> {
        if !available("influxd") {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let config = format!(
            r#"reporting-enabled = false
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
[continuous_queries]
  enabled = false
"#,
            rpc = free_port()
        );
        std::fs::write(dir.path().join("influxdb.conf"), config).expect("write config");
        let mut server = Influxd {
            child: None,
            dir,
            port,
        };
        server.restart();
        Some(server)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("influxdb.conf")
    }

    /// The server's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("influxd.log")).unwrap_or_default()
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}", self.port)).expect("url")
    }

    /// Kills the server (SIGKILL: an outage, not a shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data directory (kills it first if running).
    pub fn restart(&mut self) {
        self.kill();
        let log = self.dir.path().join("influxd.log");
        let config = self.config();
        let mut child = spawn(
            Command::new("influxd")
                .arg("run")
                .arg("-config")
                .arg(&config),
            &log,
        );
        wait_ready(self.port, "/ping", &mut child, &log);
        self.child = Some(child);
    }

    /// `GET /query?db=..&q=..&epoch=ns`, the JSON answer.
    pub async fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let mut url = self.url().join("query").expect("url");
        url.query_pairs_mut()
            .append_pair("db", db)
            .append_pair("q", q)
            .append_pair("epoch", "ns");
        let resp = reqwest::get(url).await.expect("query InfluxDB");
        let text = resp.text().await.expect("query body");
        serde_json::from_str(&text).expect("JSON answer")
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real VictoriaMetrics single-node server.
pub struct VictoriaMetrics {
    child: Child,
    _dir: TempDir,
    pub port: u16,
}

impl VictoriaMetrics {
    pub fn start() -> Option<VictoriaMetrics> {
        if !available("victoria-metrics") {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = dir.path().join("vm.log");
        let mut child = spawn(
            Command::new("victoria-metrics")
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .arg(format!(
                    "-storageDataPath={}",
                    dir.path().join("data").display()
                ))
                .arg("-retentionPeriod=100y")
                // Queries see the newest samples at once (PromQL checks right after a write).
                .arg("-search.latencyOffset=0s")
                .arg("-loggerLevel=ERROR"),
            &log,
        );
        wait_ready(port, "/ping", &mut child, &log);
        Some(VictoriaMetrics {
            child,
            _dir: dir,
            port,
        })
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}", self.port)).expect("url")
    }

    /// Every stored series (`/api/v1/export` after `/internal/force_flush`), one JSON per line.
    pub async fn export(&self) -> Vec<serde_json::Value> {
        let base = self.url();
        reqwest::get(base.join("internal/force_flush").expect("url"))
            .await
            .expect("force_flush");
        let mut url = base.join("api/v1/export").expect("url");
        url.query_pairs_mut()
            .append_pair("match[]", r#"{__name__=~".+"}"#);
        let text = reqwest::get(url)
            .await
            .expect("export")
            .text()
            .await
            .expect("body");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("export line is JSON"))
            .collect()
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus server taking remote write, with no scrape targets.
pub struct Prometheus {
    child: Child,
    _dir: TempDir,
    pub port: u16,
}

impl Prometheus {
    pub fn start() -> Option<Prometheus> {
        if !available("prometheus") {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let mut child = spawn(
            Command::new("prometheus")
                .arg("--web.enable-remote-write-receiver")
                .arg("--config.file=/dev/null")
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn"),
            &log,
        );
        wait_ready(port, "/-/ready", &mut child, &log);
        Some(Prometheus {
            child,
            _dir: dir,
            port,
        })
    }

    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}", self.port)).expect("url")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An instant PromQL query (`/api/v1/query`, Prometheus or VictoriaMetrics): each series'
/// labels and value.
pub async fn promql(base: &url::Url, q: &str) -> Vec<(serde_json::Value, f64)> {
    let mut url = base.join("api/v1/query").expect("url");
    url.query_pairs_mut().append_pair("query", q);
    let text = reqwest::get(url)
        .await
        .expect("query")
        .text()
        .await
        .expect("body");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON answer");
    assert_eq!(json["status"], "success", "{q}: {json}");
    json["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let v = r["value"][1].as_str().and_then(|v| v.parse().ok());
            (r["metric"].clone(), v.unwrap_or(f64::NAN))
        })
        .collect()
}
