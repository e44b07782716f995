//! Resource use of a process from `/proc`: CPU time (utime + stime), resident memory and open
//! descriptors.

use std::sync::OnceLock;

/// CPU seconds and memory of one process at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// utime + stime, in seconds.
    pub cpu_seconds: f64,
    /// Current resident set (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident set so far (VmHWM), KiB.
    pub hwm_kib: u64,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: u64,
}

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`, 100 when unknown).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// utime + stime in clock ticks, from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces; fields after its closing paren are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Name:   1234 kB` value of `/proc/PID/status`, in KiB.
pub fn parse_status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Current usage of `pid`, or None once it has exited.
pub fn sample(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Usage {
        cpu_seconds: parse_stat_ticks(&stat)? as f64 / clock_ticks(),
        rss_kib: parse_status_kib(&status, "VmRSS").unwrap_or(0),
        hwm_kib: parse_status_kib(&status, "VmHWM").unwrap_or(0),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64),
    })
}

/// The 1-minute load average and the whole `/proc/loadavg` line.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_the_name() {
        let stat = "4242 (heap ster) S 1 4242 4242 0 -1 4194304 1000 0 0 0 150 25 0 0 20 0 9 0 \
                    100 2000000 3000 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(175));
    }

    #[test]
    fn status_values() {
        let status = "Name:\theapster\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(20480));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn own_process() {
        let me = sample(std::process::id()).expect("own /proc entry");
        assert!(me.rss_kib > 0 && me.hwm_kib >= me.rss_kib);
        assert!(me.fds >= 3, "stdin, stdout, stderr at least");
    }
}
