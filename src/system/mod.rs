//! What the device is doing: CPU, memory, load, temperatures, uptime and disk usage,
//! sampled in the background so a request never waits for a measurement and the owner
//! can see the last hour as a graph.

pub mod notify;
pub mod privacy;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sysinfo::{Components, Disks, System};

/// Time between samples.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// One hour of samples.
const HISTORY: usize = 360;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Sample {
    /// Unix seconds.
    pub at: u64,
    /// Percent of all cores, 0–100.
    pub cpu_percent: f32,
    pub memory_used_bytes: u64,
    /// The hottest sensor, where the machine has any.
    pub temperature_celsius: Option<f32>,
    /// Used and total bytes over every mounted filesystem (each mount point once).
    pub disk_used_bytes: u64,
    pub disk_total_bytes: u64,
}

/// The sample ring for graphs: what `GET /api/v1/system/history` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct History {
    /// Seconds between samples.
    pub interval_secs: u64,
    /// Most samples kept (one hour).
    pub capacity: usize,
    pub memory_total_bytes: u64,
    /// Oldest first.
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiskUsage {
    pub mount_point: String,
    pub filesystem: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Temperature {
    pub label: String,
    pub celsius: f32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SystemStatus {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub cpu_count: usize,
    pub cpu_percent: f32,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    pub uptime_secs: u64,
    /// Seconds since this `hearth serve` started.
    pub service_uptime_secs: u64,
    /// Resident memory of `hearth serve` itself.
    pub service_rss_bytes: u64,
    pub temperatures: Vec<Temperature>,
    pub disks: Vec<DiskUsage>,
    /// The last hour, oldest first.
    pub history: Vec<Sample>,
}

/// Background sampler; cheap to clone.
#[derive(Clone)]
pub struct SystemMonitor {
    inner: Arc<Mutex<Inner>>,
    started: std::time::Instant,
}

struct Inner {
    system: System,
    history: VecDeque<Sample>,
}

impl Default for SystemMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemMonitor {
    pub fn new() -> Self {
        let mut system = System::new();
        system.refresh_cpu_usage();
        system.refresh_memory();
        SystemMonitor {
            inner: Arc::new(Mutex::new(Inner {
                system,
                history: VecDeque::with_capacity(HISTORY),
            })),
            started: std::time::Instant::now(),
        }
    }

    /// Takes one sample into the history. Blocking (reads /proc); call off the runtime.
    pub fn sample(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.system.refresh_cpu_usage();
        inner.system.refresh_memory();
        let (disk_used_bytes, disk_total_bytes) = disk_totals(&disk_usage());
        let s = Sample {
            at: crate::model::clock::now_secs(),
            cpu_percent: inner.system.global_cpu_usage(),
            memory_used_bytes: inner.system.used_memory(),
            temperature_celsius: temperatures().iter().map(|t| t.celsius).reduce(f32::max),
            disk_used_bytes,
            disk_total_bytes,
        };
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(s);
    }

    /// Samples every [`SAMPLE_EVERY`] until the returned task is dropped or aborted.
    pub fn spawn_sampler(&self) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                let m = me.clone();
                if tokio::task::spawn_blocking(move || m.sample())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        })
    }

    /// The last hour of samples, oldest first. Cheap: no measurement is taken.
    pub fn history(&self) -> History {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        History {
            interval_secs: SAMPLE_EVERY.as_secs(),
            capacity: HISTORY,
            memory_total_bytes: inner.system.total_memory(),
            samples: inner.history.iter().cloned().collect(),
        }
    }

    /// A full status report. Blocking; call off the runtime.
    pub fn status(&self) -> SystemStatus {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.system.refresh_cpu_usage();
        inner.system.refresh_memory();
        let load = System::load_average();
        let disks = disk_usage();
        let temperatures = temperatures();
        SystemStatus {
            hostname: System::host_name().unwrap_or_default(),
            os: System::long_os_version().unwrap_or_default(),
            kernel: System::kernel_version().unwrap_or_default(),
            cpu_count: inner.system.cpus().len(),
            cpu_percent: inner.system.global_cpu_usage(),
            memory_total_bytes: inner.system.total_memory(),
            memory_used_bytes: inner.system.used_memory(),
            load: [load.one, load.five, load.fifteen],
            uptime_secs: System::uptime(),
            service_uptime_secs: self.started.elapsed().as_secs(),
            service_rss_bytes: current_rss().unwrap_or(0),
            temperatures,
            disks,
            history: inner.history.iter().cloned().collect(),
        }
    }
}

fn disk_usage() -> Vec<DiskUsage> {
    Disks::new_with_refreshed_list()
        .iter()
        .filter(|d| d.total_space() > 0)
        .map(|d| DiskUsage {
            mount_point: d.mount_point().display().to_string(),
            filesystem: d.file_system().to_string_lossy().into_owned(),
            total_bytes: d.total_space(),
            available_bytes: d.available_space(),
        })
        .collect()
}

/// Used and total bytes, counting each mount point once (bind mounts repeat them).
fn disk_totals(disks: &[DiskUsage]) -> (u64, u64) {
    let mut seen = std::collections::BTreeSet::new();
    disks
        .iter()
        .filter(|d| seen.insert(d.mount_point.as_str()))
        .fold((0, 0), |(used, total), d| {
            (
                used + d.total_bytes.saturating_sub(d.available_bytes),
                total + d.total_bytes,
            )
        })
}

fn temperatures() -> Vec<Temperature> {
    Components::new_with_refreshed_list()
        .iter()
        .filter_map(|c| {
            c.temperature()
                .filter(|t| t.is_finite())
                .map(|t| Temperature {
                    label: c.label().to_owned(),
                    celsius: t,
                })
        })
        .collect()
}

/// Resident set size of this process, from /proc/self/statm.
pub fn current_rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    Some(pages * page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_this_machine() {
        let m = SystemMonitor::new();
        m.sample();
        let s = m.status();
        assert!(s.cpu_count >= 1);
        assert!(s.memory_total_bytes > s.memory_used_bytes);
        assert!(s.service_rss_bytes > 0);
        assert_eq!(s.history.len(), 1);
        assert!(s.uptime_secs > 0);
        let h = m.history();
        assert_eq!(h.samples.len(), 1);
        assert_eq!(h.interval_secs, 10);
        assert!(h.samples[0].disk_total_bytes >= h.samples[0].disk_used_bytes);
    }

    #[test]
    fn disk_totals_count_each_mount_once() {
        let d = |m: &str, total, avail| DiskUsage {
            mount_point: m.into(),
            filesystem: "ext4".into(),
            total_bytes: total,
            available_bytes: avail,
        };
        let disks = [d("/", 100, 40), d("/data", 50, 50), d("/", 100, 40)];
        assert_eq!(disk_totals(&disks), (60, 150));
    }

    #[test]
    fn history_keeps_one_hour() {
        let m = SystemMonitor::new();
        for _ in 0..HISTORY + 5 {
            m.sample();
        }
        assert_eq!(m.history().samples.len(), HISTORY);
    }
}
