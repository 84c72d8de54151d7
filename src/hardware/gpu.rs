//! The GPUs llama.cpp can use, as its own backends list them (CUDA, Vulkan,
//! whichever this binary was built with), with their free memory.
//!
//! Asking llama.cpp rather than a vendor library means one list for every
//! backend, numbered as llama.cpp numbers the devices a model uses, with free
//! memory from the backend itself (`cudaMemGetInfo` for CUDA, the memory
//! budget extension for Vulkan). Most machines have none; that is a normal
//! answer (an empty list and a one-line note for `workly doctor`), never an
//! error, so the CPU path works everywhere.

use std::sync::Once;

use llama_cpp_2::{LlamaBackendDevice, LlamaBackendDeviceType};
use serde::{Deserialize, Serialize};

use super::GpuBackend;

/// One GPU and its memory, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Its number among the GPUs llama.cpp uses: what `--devices` and `--main-gpu` take.
    pub index: u32,
    /// Product name, e.g. "NVIDIA GeForce RTX 4050 Laptop GPU".
    pub name: String,
    /// The llama.cpp backend that drives it: "CUDA" or "Vulkan".
    pub backend: String,
    /// Its memory.
    pub total_bytes: u64,
    /// Memory nobody had allocated when it was read.
    pub free_bytes: u64,
}

/// GPUs found, plus a note explaining an empty list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GpuScan {
    /// Every GPU a model may use.
    pub(crate) gpus: Vec<GpuInfo>,
    /// Why `gpus` is empty; `None` when it is not.
    pub(crate) note: Option<String>,
}

impl GpuScan {
    /// Asks llama.cpp for its GPU devices; never fails.
    pub(crate) fn detect(llama_logs: bool) -> Self {
        let gpus: Vec<GpuInfo> = backend_gpus(llama_logs).into_iter().map(|(_, gpu)| gpu).collect();
        let note = gpus.is_empty().then(|| match GpuBackend::BUILT {
            GpuBackend::Cpu => {
                "this build has no GPU backend; scripts/setup.sh --cuda or --vulkan makes one".to_owned()
            }
            backend => format!("llama.cpp's {} backend found no GPU (--verbose shows what it said)", backend.label()),
        });
        Self { gpus, note }
    }
}

/// llama.cpp's GPU devices in the order a model uses them, each with its
/// index among all of llama.cpp's devices (the CPU is one of them too).
///
/// As llama.cpp chooses a model's devices when none are named: the GPUs of
/// every backend but RPC (remote workers are Workly's `--rpc`, not this
/// machine's), or where there is none, the integrated GPUs of the first
/// backend that lists one.
pub(crate) fn backend_gpus(llama_logs: bool) -> Vec<(usize, GpuInfo)> {
    route_llama_logs(llama_logs);
    let devices = llama_cpp_2::list_llama_ggml_backend_devices();
    let discrete: Vec<&LlamaBackendDevice> = devices
        .iter()
        .filter(|device| device.device_type == LlamaBackendDeviceType::Gpu && device.backend != "RPC")
        .collect();
    let chosen = if discrete.is_empty() {
        let integrated = devices.iter().filter(|device| device.device_type == LlamaBackendDeviceType::IntegratedGpu);
        let first = integrated.clone().next().map(|device| device.backend.clone());
        integrated.filter(|device| Some(&device.backend) == first.as_ref()).collect()
    } else {
        discrete
    };
    chosen
        .into_iter()
        .zip(0..)
        .map(|(device, index)| {
            let name = if device.description.is_empty() { device.name.clone() } else { device.description.clone() };
            let gpu = GpuInfo {
                index,
                name,
                backend: device.backend.clone(),
                total_bytes: device.memory_total as u64,
                free_bytes: device.memory_free as u64,
            };
            (device.index, gpu)
        })
        .collect()
}

/// Sends llama.cpp's log to `tracing` (where it is silent unless `--verbose`
/// or `RUST_LOG` asks for it) when `llama_logs`, or nowhere; llama.cpp would
/// otherwise print to stderr, as its GPU backends do when they start. The
/// first caller in a process decides: llama.cpp keeps one log hook.
pub(crate) fn route_llama_logs(llama_logs: bool) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(llama_logs));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_never_fails_and_explains_an_empty_list() {
        let scan = GpuScan::detect(false);
        if scan.gpus.is_empty() {
            let note = scan.note.expect("an empty GPU list always comes with a note");
            assert!(!note.is_empty());
        }
        for (position, gpu) in scan.gpus.iter().enumerate() {
            assert_eq!(gpu.index as usize, position);
            assert!(gpu.free_bytes <= gpu.total_bytes);
        }
    }

    #[test]
    fn a_cpu_build_lists_no_gpu_and_says_why() {
        if GpuBackend::BUILT != GpuBackend::Cpu {
            return;
        }
        let scan = GpuScan::detect(false);
        assert!(scan.gpus.is_empty());
        assert!(scan.note.unwrap().contains("no GPU backend"));
        // llama.cpp still lists its CPU device: the GPUs are picked out of a real list.
        assert!(
            llama_cpp_2::list_llama_ggml_backend_devices().iter().any(|d| d.device_type == LlamaBackendDeviceType::Cpu)
        );
    }
}
