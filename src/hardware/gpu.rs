//! NVIDIA GPU detection through NVML (`libnvidia-ml`, loaded at run time).
//!
//! Most machines Workly runs on have no NVIDIA driver at all; that is a normal
//! answer (an empty list and a one-line note for `workly doctor`), never an
//! error, so the CPU path works everywhere.

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use serde::{Deserialize, Serialize};

/// One NVIDIA GPU and its memory, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// NVML device index (the CUDA order may differ unless `CUDA_DEVICE_ORDER=PCI_BUS_ID`).
    pub index: u32,
    /// Product name, e.g. "NVIDIA GeForce RTX 4050 Laptop GPU".
    pub name: String,
    /// Installed video memory.
    pub total_bytes: u64,
    /// Video memory not allocated by anyone at detection time.
    pub free_bytes: u64,
}

/// GPUs found, plus a note explaining an empty or partial list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GpuScan {
    /// Every GPU whose name and memory could be read.
    pub(crate) gpus: Vec<GpuInfo>,
    /// Why the list is empty or shorter than the device count; `None` when complete.
    pub(crate) note: Option<String>,
}

impl GpuScan {
    /// Asks NVML for every device; never fails.
    pub(crate) fn detect() -> Self {
        let nvml = match Nvml::init() {
            Ok(nvml) => nvml,
            Err(error) => return Self::none(init_failure_note(&error)),
        };
        let count = match nvml.device_count() {
            Ok(count) => count,
            Err(error) => return Self::none(format!("NVML could not count GPUs: {error}")),
        };
        if count == 0 {
            return Self::none("NVIDIA driver loaded, but no GPU found".to_owned());
        }
        let mut gpus = Vec::new();
        let mut skipped = Vec::new();
        for index in 0..count {
            match read_device(&nvml, index) {
                Ok(gpu) => gpus.push(gpu),
                Err(error) => {
                    tracing::warn!(index, %error, "skipping a GPU NVML could not describe");
                    skipped.push(format!("GPU {index} unreadable: {error}"));
                }
            }
        }
        Self { gpus, note: (!skipped.is_empty()).then(|| skipped.join("; ")) }
    }

    /// An empty scan with its explanation.
    fn none(note: String) -> Self {
        tracing::debug!(%note, "no NVIDIA GPU usable");
        Self { gpus: Vec::new(), note: Some(note) }
    }
}

/// Name and memory of device `index`.
fn read_device(nvml: &Nvml, index: u32) -> Result<GpuInfo, NvmlError> {
    let device = nvml.device_by_index(index)?;
    let memory = device.memory_info()?;
    Ok(GpuInfo { index, name: device.name()?, total_bytes: memory.total, free_bytes: memory.free })
}

/// A short, human sentence for why NVML could not start.
fn init_failure_note(error: &NvmlError) -> String {
    match error {
        // The library itself is missing: no NVIDIA driver installed (or not an NVIDIA machine).
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound => "no NVIDIA driver found".to_owned(),
        NvmlError::DriverNotLoaded => "NVIDIA driver installed but not loaded".to_owned(),
        NvmlError::NoPermission => "no permission to query the NVIDIA driver".to_owned(),
        other => format!("NVIDIA driver unusable: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_never_fails_and_explains_an_empty_list() {
        let scan = GpuScan::detect();
        if scan.gpus.is_empty() {
            let note = scan.note.expect("an empty GPU list always comes with a note");
            assert!(!note.is_empty());
        }
        for gpu in &scan.gpus {
            assert!(gpu.free_bytes <= gpu.total_bytes);
        }
    }

    #[test]
    fn missing_library_reads_as_no_driver() {
        assert_eq!(init_failure_note(&NvmlError::LibraryNotFound), "no NVIDIA driver found");
        assert_eq!(init_failure_note(&NvmlError::DriverNotLoaded), "NVIDIA driver installed but not loaded");
    }
}
