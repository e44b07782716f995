//! The real `heapster` binary as a child process: started with flags on a free loopback port,
//! probed over HTTP, measured (peak RSS), stopped with SIGTERM. Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::influxd::free_port;

pub struct Heapster {
    child: Child,
    dir: TempDir,
    pub port: u16,
}

impl Heapster {
    /// Runs `heapster ARGS --heapster-port=FREE --listen_ip=127.0.0.1`, logging to a file.
    pub fn start(args: &[String]) -> Heapster {
        Heapster::start_on(args, free_port())
    }

    /// [`Heapster::start`] on a given port (e.g. one already named in its flags).
    pub fn start_on(args: &[String], port: u16) -> Heapster {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("heapster.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_heapster"))
            .args(args)
            .arg(format!("--heapster-port={port}"))
            .arg("--listen_ip=127.0.0.1")
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("spawn heapster");
        Heapster { child, dir, port }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("heapster.log")
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `GET path` on its port: status and body, or None when nothing answers.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    }

    /// Waits (up to `secs`) until its `/metrics` page passes `ok`; returns that page.
    pub async fn metrics_until(
        &mut self,
        secs: u64,
        what: &str,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some((200, page)) = self.get("/metrics").await
                && ok(&page)
            {
                return page;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "heapster exited with {status} waiting for {what}:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Its peak resident memory (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
            * 1024
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Sends SIGKILL and reaps it: no flush, no cleanup.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `limit` for it to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Heapster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
