//! What the machine has (CPU, RAM, the GPUs llama.cpp can use) and the settings that follow from it.
//!
//! This module owns hardware detection ([`Hardware::detect`]), the policies
//! that turn a machine and a model into llama.cpp settings ([`Tuning`] and the
//! `choose_*`/`plan_*` functions, all pure and fed by data), the saved thread
//! benchmark ([`ThreadMeasurements`]), the GPUs a model may use ([`GpuSelection`])
//! and the `workly doctor` report
//! ([`DoctorReport`]). Detection never fails: what cannot be read is reported
//! as unknown, because a CPU-only answer is always a usable one.

mod cpu;
mod gpu;
mod policy;
mod ram;
mod report;
mod shaders;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sysinfo::System;

pub use cpu::CpuInfo;
pub use gpu::GpuInfo;
pub(crate) use gpu::{backend_gpus, route_llama_logs};
pub use policy::{
    GpuPlan, GpuSelection, GpuSelectionError, GpuShare, ModelFootprint, SplitMode, ThreadChoice, ThreadMeasurements,
    ThreadRow, ThreadSource, Tuning, TuningRequest, choose_batch_size, choose_context_size, choose_threads,
    gpu_budget_bytes, place_gpu_layers, plan_gpu_layers,
};
pub use ram::{MemoryInfo, peak_rss_bytes, process_rss_bytes, rss_bytes_of};
pub use report::DoctorReport;
pub use shaders::{ShaderPath, VulkanShaders};

/// The GPU backend this binary's llama.cpp was built with (the `cuda` or
/// `vulkan` feature); without one no layer can be offloaded, whatever GPU is present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuBackend {
    /// Neither feature: llama.cpp runs on the CPU only.
    #[default]
    Cpu,
    /// NVIDIA GPUs.
    Cuda,
    /// AMD and Intel GPUs (NVIDIA too).
    Vulkan,
}

impl GpuBackend {
    /// This binary's backend. Built with both features, CUDA is reported
    /// (llama.cpp lists the GPUs of both).
    pub const BUILT: Self = if cfg!(feature = "cuda") {
        Self::Cuda
    } else if cfg!(feature = "vulkan") {
        Self::Vulkan
    } else {
        Self::Cpu
    };

    /// The backend's name for people: `CPU only`, `CUDA` or `Vulkan`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Cpu => "CPU only",
            Self::Cuda => "CUDA",
            Self::Vulkan => "Vulkan",
        }
    }
}

/// Errors of the hardware subsystem (only the thread-benchmark cache can fail).
#[derive(Debug, thiserror::Error)]
pub enum HardwareError {
    /// The cache file exists but could not be read.
    #[error("cannot read thread measurements from {path}")]
    Read {
        /// File that was read.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The cache file is not valid measurements JSON (corrupt or from an older Workly).
    #[error("thread measurements in {path} are not valid")]
    Parse {
        /// File that was parsed.
        path: PathBuf,
        /// Underlying JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The cache file (or its directory) could not be written.
    #[error("cannot write thread measurements to {path}")]
    Write {
        /// File that was written.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The measurements could not be encoded as JSON.
    #[error("cannot encode thread measurements as JSON")]
    Encode(#[source] serde_json::Error),
}

crate::classed!(Failure: HardwareError);

/// Everything detected about this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hardware {
    /// The CPU.
    pub cpu: CpuInfo,
    /// System RAM.
    pub memory: MemoryInfo,
    /// The GPUs llama.cpp can use, possibly none.
    pub gpus: Vec<GpuInfo>,
    /// Why `gpus` is empty, e.g. "this build has no GPU backend".
    pub gpu_note: Option<String>,
}

impl Hardware {
    /// Detects this machine; never fails and never panics.
    ///
    /// Only the CPU list and RAM are refreshed (no processes, disks or CPU
    /// usage sampling), so this costs a few file reads plus starting
    /// llama.cpp's GPU backend where the build has one. Anything unreadable
    /// comes back as unknown: "unknown CPU", 0 bytes of RAM, or an empty GPU
    /// list with a note. `llama_logs` says where llama.cpp's log goes (see
    /// [`route_llama_logs`]).
    pub fn detect(llama_logs: bool) -> Self {
        let mut system = match System::new() {
            Ok(system) => Some(system),
            Err(error) => {
                tracing::warn!(%error, "sysinfo unavailable; CPU and RAM reported as unknown");
                None
            }
        };
        let cpu = CpuInfo::detect(system.as_mut());
        let memory = MemoryInfo::detect(system.as_mut());
        let gpus = gpu::GpuScan::detect(llama_logs);
        Self { cpu, memory, gpus: gpus.gpus, gpu_note: gpus.note }
    }
}

/// Free memory summed over the GPUs llama.cpp lists now (0 without any):
/// the GPUs alone, without the CPU and RAM detection of [`Hardware::detect`].
pub fn free_vram_bytes() -> u64 {
    backend_gpus(false).iter().map(|(_, gpu)| gpu.free_bytes).sum()
}

/// Bytes per GiB, for display.
const GIB: f64 = (1u64 << 30) as f64;

/// `bytes` as GiB with one decimal, e.g. "5.6 GiB".
fn format_gib(bytes: u64) -> String {
    // Display only: f64 is exact far beyond any memory size we will print.
    let gib = bytes as f64 / GIB;
    format!("{gib:.1} GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_this_machine() {
        let hardware = Hardware::detect(false);
        assert!(hardware.cpu.logical_cores >= 1);
        assert!(hardware.cpu.physical_cores >= 1);
        assert!(hardware.memory.total_bytes > 0);
        assert!(hardware.memory.available_bytes <= hardware.memory.total_bytes);
        // No GPU is a normal answer: an empty list, explained.
        if hardware.gpus.is_empty() {
            assert!(hardware.gpu_note.is_some());
        }
    }

    #[test]
    fn formats_gib_with_one_decimal() {
        assert_eq!(format_gib(0), "0.0 GiB");
        assert_eq!(format_gib(6 << 30), "6.0 GiB");
        assert_eq!(format_gib(5_905_580_032), "5.5 GiB");
    }

    #[test]
    fn errors_name_the_file() {
        let error = HardwareError::Read {
            path: PathBuf::from("/tmp/threads.json"),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(error.to_string().contains("/tmp/threads.json"));
    }
}
