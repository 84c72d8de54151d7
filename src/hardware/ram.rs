//! Memory detection: how much RAM the machine has and how much is free for a
//! model, plus the resident and peak memory of this process (or another, such as
//! the server a soak benchmark runs) for benchmarks.
//!
//! A container's memory limit counts as the machine's size: loading a model
//! sized for the host into a 4 GiB cgroup ends with the OOM killer.

use serde::{Deserialize, Serialize};
use sysinfo::{MemoryRefreshKind, System};

/// System RAM, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// Installed RAM (or the container's limit, when lower).
    pub total_bytes: u64,
    /// RAM that can be allocated without swapping (free plus reclaimable caches).
    pub available_bytes: u64,
}

impl MemoryInfo {
    /// Reads RAM figures, refreshing only RAM (not swap) in `system`.
    ///
    /// Without a `System` (sysinfo unsupported here) both figures are 0, which
    /// the policies treat as "nothing to spare" and size everything minimally.
    pub(crate) fn detect(system: Option<&mut System>) -> Self {
        let Some(system) = system else {
            return Self { total_bytes: 0, available_bytes: 0 };
        };
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let mut info = Self { total_bytes: system.total_memory(), available_bytes: system.available_memory() };
        if let Some(limits) = system.cgroup_limits() {
            info.total_bytes = info.total_bytes.min(limits.total_memory);
            info.available_bytes = info.available_bytes.min(limits.free_memory);
        }
        info
    }
}

/// Resident memory of this process right now, in bytes; `None` where unknown.
///
/// On Linux this reads `VmRSS` from `/proc/self/status` rather than
/// `/proc/self/statm`: statm counts pages, and the page size needs `sysconf`,
/// which is out of reach without `unsafe`.
#[cfg(target_os = "linux")]
pub fn process_rss_bytes() -> Option<u64> {
    proc_status_kib("self", "VmRSS:").map(|kib| kib.saturating_mul(1024))
}

/// Resident memory of this process right now, in bytes; `None` where unknown.
#[cfg(not(target_os = "linux"))]
pub fn process_rss_bytes() -> Option<u64> {
    rss_bytes_of(sysinfo::get_current_pid().ok()?.as_u32())
}

/// Resident memory of process `pid` right now, in bytes; `None` where unknown
/// or once the process is gone.
#[cfg(target_os = "linux")]
pub fn rss_bytes_of(pid: u32) -> Option<u64> {
    proc_status_kib(&pid.to_string(), "VmRSS:").map(|kib| kib.saturating_mul(1024))
}

/// Resident memory of process `pid` right now, in bytes; `None` where unknown
/// or once the process is gone.
#[cfg(not(target_os = "linux"))]
pub fn rss_bytes_of(pid: u32) -> Option<u64> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate};
    let pid = sysinfo::Pid::from_u32(pid);
    let mut system = System::new().ok()?;
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_memory(),
    );
    system.process(pid).map(|process| process.memory())
}

/// Highest resident memory this process has reached, in bytes (`VmHWM`);
/// `None` where the OS does not keep it (everywhere but Linux).
#[cfg(target_os = "linux")]
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_kib("self", "VmHWM:").map(|kib| kib.saturating_mul(1024))
}

/// Highest resident memory this process has reached, in bytes; `None` where
/// the OS does not keep it (everywhere but Linux).
#[cfg(not(target_os = "linux"))]
pub fn peak_rss_bytes() -> Option<u64> {
    None
}

/// Value in KiB of the `/proc/<process>/status` line starting with `key`
/// (`process` is a pid or `self`).
#[cfg(target_os = "linux")]
fn proc_status_kib(process: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    parse_status_kib(&status, key)
}

/// Parses a line such as `VmHWM:     123456 kB` out of `/proc/<pid>/status` text.
#[cfg(target_os = "linux")]
fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    let mut fields = line[key.len()..].split_whitespace();
    let value = fields.next()?.parse().ok()?;
    // The kernel has only ever written kB here; anything else is not what we think it is.
    (fields.next() == Some("kB")).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_some_ram() {
        let mut system = System::new().ok();
        let memory = MemoryInfo::detect(system.as_mut());
        assert!(memory.total_bytes > 0);
        assert!(memory.available_bytes <= memory.total_bytes);
    }

    #[test]
    fn no_system_means_no_ram_to_spare() {
        let memory = MemoryInfo::detect(None);
        assert_eq!(memory.total_bytes, 0);
        assert_eq!(memory.available_bytes, 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_current_and_peak_rss() {
        let rss = process_rss_bytes().expect("Linux has /proc/self/status");
        let peak = peak_rss_bytes().expect("Linux has VmHWM");
        assert!(rss > 0);
        // VmHWM is the maximum of VmRSS over time, and it was read after VmRSS.
        assert!(peak >= rss, "peak {peak} below rss {rss}");
        // The same figure read by pid, as a soak reads its server's.
        let by_pid = rss_bytes_of(std::process::id()).expect("this process has a status");
        assert!(by_pid > 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn parses_status_lines() {
        let status = "Name:\tworkly\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(204_800));
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(102_400));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
        assert_eq!(parse_status_kib("VmRSS:\t12 pages\n", "VmRSS:"), None);
    }
}
