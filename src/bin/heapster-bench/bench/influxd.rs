//! A private InfluxDB 1.x (`influxd`) on loopback with its own config and data directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;
use super::child::{Guarded, free_port, http_get};

pub struct Influxd {
    pub process: Guarded,
    pub port: u16,
    dir: PathBuf,
}

impl Influxd {
    /// Starts `influxd` with data under `dir`; waits for `/ping`.
    pub fn start(dir: &Path) -> Result<Influxd, BenchError> {
        Influxd::start_on(dir, free_port()?)
    }

    /// Stops `influxd` (SIGTERM) and starts it again on the same port and data; waits for
    /// `/ping` (the soak benchmark's outages).
    pub fn restart(&mut self) -> Result<(), BenchError> {
        self.process.stop(Duration::from_secs(30));
        *self = Influxd::start_on(&self.dir, self.port)?;
        Ok(())
    }

    fn start_on(dir: &Path, port: u16) -> Result<Influxd, BenchError> {
        let data: PathBuf = dir.join("influxdb");
        std::fs::create_dir_all(&data).map_err(BenchError::Io)?;
        let d = data.display();
        let config = format!(
            r#"reporting-enabled = false
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  # Heapster's schema makes about one series per point of a tick: ~2.7 M series at
  # 1,000 nodes x 30 pods, past the default limit of 1 M.
  max-series-per-database = 0
  max-values-per-tag = 0
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
            rpc = free_port()?
        );
        let config_path = data.join("influxdb.conf");
        std::fs::write(&config_path, config).map_err(BenchError::Io)?;
        let mut cmd = Command::new("influxd");
        cmd.arg("run").arg("-config").arg(&config_path);
        // Reopening a database of millions of series (the soak's restarts at 1,000 nodes)
        // takes minutes.
        let ready = (port, "/ping", 204, Duration::from_secs(300));
        let process = start_logged("influxd", &mut cmd, &data.join("influxd.log"), ready)?;
        Ok(Influxd {
            process,
            port,
            dir: dir.to_path_buf(),
        })
    }
}

/// Starts `name` with its output appended to `log`, and waits until `GET path` on `port`
/// answers `status` (at most `within`).
fn start_logged(
    name: &str,
    cmd: &mut Command,
    log: &Path,
    (port, path, status, within): (u16, &str, u16, Duration),
) -> Result<Guarded, BenchError> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(BenchError::Io)?;
    let err = out.try_clone().map_err(BenchError::Io)?;
    let mut process = Guarded::spawn(name, cmd.stdin(Stdio::null()).stdout(out).stderr(err))?;
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if http_get(port, path, Duration::from_millis(500)).is_some_and(|(s, _)| s == status) {
            return Ok(process);
        }
        if !process.running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(BenchError::NotReady {
        what: name.into(),
        detail: format!("no {path} answer on port {port}; log in {}", log.display()),
    })
}

/// A private VictoriaMetrics on loopback: it takes InfluxDB's line protocol on `/write` (the
/// sink's 1.x API; `db` becomes a label) and keeps up with far more points a second than
/// `influxd` 1.6 on the same cores, so the sink can be measured writing every point.
pub struct VictoriaMetrics {
    pub process: Guarded,
    pub port: u16,
    dir: PathBuf,
}

impl VictoriaMetrics {
    /// Starts `victoria-metrics` with data under `dir`; waits for `/health`.
    pub fn start(dir: &Path) -> Result<VictoriaMetrics, BenchError> {
        VictoriaMetrics::start_on(dir, free_port()?)
    }

    /// SIGKILL: the database is gone at once, with whatever it had not flushed (the outage
    /// benchmark).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again on the same port and data after [`VictoriaMetrics::kill`]; waits for
    /// `/health`.
    pub fn start_again(&mut self) -> Result<(), BenchError> {
        self.process.kill();
        *self = VictoriaMetrics::start_on(&self.dir, self.port)?;
        Ok(())
    }

    fn start_on(dir: &Path, port: u16) -> Result<VictoriaMetrics, BenchError> {
        let data: PathBuf = dir.join("victoria-metrics");
        std::fs::create_dir_all(&data).map_err(BenchError::Io)?;
        let mut cmd = Command::new("victoria-metrics");
        cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", data.join("data").display()))
            .arg("-retentionPeriod=100y")
            .arg("-loggerLevel=WARN");
        let log = data.join("victoria-metrics.log");
        let ready = (port, "/health", 200, Duration::from_secs(60));
        let process = start_logged("victoria-metrics", &mut cmd, &log, ready)?;
        Ok(VictoriaMetrics {
            process,
            port,
            dir: dir.to_path_buf(),
        })
    }
}
