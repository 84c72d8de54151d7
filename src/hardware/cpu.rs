//! CPU detection: the model name, physical and logical core counts and the SIMD
//! extensions llama.cpp's CPU kernels can use.
//!
//! The SIMD list is informational (shown by `workly doctor` and saved with
//! benchmarks): llama.cpp picks its kernels itself, but a missing AVX2 or NEON
//! dot-product explains a slow machine better than any number.

use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, System};

/// What the CPU is and what it can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// Marketing name as reported by the OS, e.g. "AMD Ryzen 7 7840HS".
    pub model: String,
    /// Physical cores (what decode threads should be sized on).
    pub physical_cores: usize,
    /// Logical cores, hyper-threads included, usable by this process.
    pub logical_cores: usize,
    /// SIMD extensions detected at run time, in a fixed order, e.g. `["avx", "avx2", "fma"]`.
    pub simd: Vec<String>,
}

/// Name used when the OS does not report a CPU brand.
const UNKNOWN_MODEL: &str = "unknown CPU";

impl CpuInfo {
    /// Detects the CPU of this machine from an existing (possibly empty) `System`.
    ///
    /// Only the CPU list is refreshed, without frequencies or usage, which keeps
    /// this to a couple of small `/proc` reads on Linux.
    pub(crate) fn detect(system: Option<&mut System>) -> Self {
        let (model, listed_cores) = match system {
            Some(system) => {
                system.refresh_cpu_list(CpuRefreshKind::nothing());
                let cpus = system.cpus();
                let model = cpus
                    .first()
                    .map(|cpu| cpu.brand().trim().to_owned())
                    .filter(|brand| !brand.is_empty())
                    .unwrap_or_else(|| UNKNOWN_MODEL.to_owned());
                (model, cpus.len())
            }
            None => (UNKNOWN_MODEL.to_owned(), 0),
        };
        // The OS lists every CPU of the machine, but an affinity mask or a
        // container quota can leave this process fewer; threads beyond those
        // only queue behind each other.
        let usable = std::thread::available_parallelism().map_or(0, usize::from);
        let logical_cores = match (listed_cores, usable) {
            (0, 0) => 1,
            (0, n) | (n, 0) => n,
            (listed, usable) => listed.min(usable),
        };
        let physical_cores =
            System::physical_core_count().ok().filter(|&n| n > 0).unwrap_or(logical_cores).min(logical_cores);
        Self { model, physical_cores, logical_cores, simd: detect_simd() }
    }
}

/// SIMD extensions that matter to llama.cpp's x86 kernels, in the order shown.
#[cfg(target_arch = "x86_64")]
fn detect_simd() -> Vec<String> {
    let checks = [
        ("sse4.2", std::arch::is_x86_feature_detected!("sse4.2")),
        ("avx", std::arch::is_x86_feature_detected!("avx")),
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ("fma", std::arch::is_x86_feature_detected!("fma")),
        ("f16c", std::arch::is_x86_feature_detected!("f16c")),
        ("avxvnni", std::arch::is_x86_feature_detected!("avxvnni")),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        ("avx512bw", std::arch::is_x86_feature_detected!("avx512bw")),
        ("avx512vl", std::arch::is_x86_feature_detected!("avx512vl")),
        ("avx512vbmi", std::arch::is_x86_feature_detected!("avx512vbmi")),
        ("avx512vnni", std::arch::is_x86_feature_detected!("avx512vnni")),
        ("avx512bf16", std::arch::is_x86_feature_detected!("avx512bf16")),
        ("avx512fp16", std::arch::is_x86_feature_detected!("avx512fp16")),
    ];
    present(&checks)
}

/// SIMD extensions that matter to llama.cpp's Arm kernels, in the order shown.
#[cfg(target_arch = "aarch64")]
fn detect_simd() -> Vec<String> {
    let checks = [
        ("neon", std::arch::is_aarch64_feature_detected!("neon")),
        ("fp16", std::arch::is_aarch64_feature_detected!("fp16")),
        ("dotprod", std::arch::is_aarch64_feature_detected!("dotprod")),
        ("i8mm", std::arch::is_aarch64_feature_detected!("i8mm")),
        ("bf16", std::arch::is_aarch64_feature_detected!("bf16")),
        ("sve", std::arch::is_aarch64_feature_detected!("sve")),
        ("sve2", std::arch::is_aarch64_feature_detected!("sve2")),
    ];
    present(&checks)
}

/// Other architectures: nothing we know how to detect, which is an honest empty list.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect_simd() -> Vec<String> {
    Vec::new()
}

/// Names of the checks that passed, in their original order.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn present(checks: &[(&str, bool)]) -> Vec<String> {
    checks.iter().filter(|(_, detected)| *detected).map(|(name, _)| (*name).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_this_cpu_without_a_system() {
        let cpu = CpuInfo::detect(None);
        assert_eq!(cpu.model, UNKNOWN_MODEL);
        assert!(cpu.logical_cores >= 1);
        assert!(cpu.physical_cores >= 1);
        assert!(cpu.physical_cores <= cpu.logical_cores);
    }

    #[test]
    fn detects_this_cpu() {
        let mut system = System::new().ok();
        let cpu = CpuInfo::detect(system.as_mut());
        assert!(!cpu.model.is_empty());
        assert!(cpu.logical_cores >= 1);
        assert!((1..=cpu.logical_cores).contains(&cpu.physical_cores));
        // The SIMD list keeps a fixed order and no duplicates, so reports diff cleanly.
        let mut sorted = cpu.simd.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), cpu.simd.len());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn simd_list_follows_the_runtime_checks() {
        let simd = detect_simd();
        assert_eq!(simd.iter().any(|s| s == "avx2"), std::arch::is_x86_feature_detected!("avx2"));
        assert_eq!(simd.iter().any(|s| s == "avx512f"), std::arch::is_x86_feature_detected!("avx512f"));
    }
}
