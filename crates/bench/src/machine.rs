//! What machine the run is on, and how long its disk takes to make a write durable.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::load::{Latency, histogram};

/// Cores, memory and kernel, for the report.
pub fn describe() -> Value {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZeroUsize::get);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    json!({
        "cores": cores,
        "memory_gib": (memory_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": kernel,
        "cpu": cpu,
        "load_average_at_start": load,
    })
}

/// Times `write(4 KiB) + fdatasync` on a file in `dir` for about `duration`: the floor under
/// every durable commit (SQLite's WAL sync, PostgreSQL's WAL flush, if on the same disk).
pub fn fsync_latency(dir: &Path, duration: Duration) -> std::io::Result<Latency> {
    let path = dir.join("fsync-probe");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = [0x5a_u8; 4096];
    let mut h = histogram();
    let start = Instant::now();
    while start.elapsed() < duration || h.len() < 20 {
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        let _ = h.record((t.elapsed().as_micros() as u64).max(1));
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(Latency::of(&h))
}

/// Resident memory of a process, from `/proc/<pid>/status`, in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The whole machine's CPU time so far, from `/proc/stat` (Linux only): read it before and after
/// a measurement to tell a saturated machine from a slow path.
#[derive(Clone, Copy, Debug)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    /// Now, or `None` where `/proc/stat` cannot be read.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|n| n.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        let [user, nice, system, idle, iowait, irq, softirq, steal] = ticks[..] else {
            return None;
        };
        let busy = user + nice + system + irq + softirq + steal;
        Some(Self {
            busy,
            total: busy + idle + iowait,
        })
    }

    /// The share of all cores busy since `self` (0 to 1).
    pub fn busy_since(self) -> Option<f64> {
        let now = Self::now()?;
        let total = now.total.checked_sub(self.total).filter(|t| *t > 0)?;
        Some(now.busy.saturating_sub(self.busy) as f64 / total as f64)
    }
}

/// A machine-wide CPU share for the console, `busy 87%`, or `unknown`.
pub fn busy_text(busy: Option<f64>) -> String {
    busy.map_or_else(
        || "unknown".to_owned(),
        |b| format!("busy {:.0}%", b * 100.0),
    )
}
