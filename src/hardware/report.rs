//! The `workly doctor` report: what was detected, what was chosen and why.
//!
//! The report is data (serialised as JSON for `--json` and for snapshot
//! tests, so its field names are part of the interface); the text rendering is
//! a separate function of that data.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::{CpuInfo, GpuBackend, GpuInfo, Hardware, MemoryInfo, SplitMode, Tuning, VulkanShaders, format_gib};

/// Everything `workly doctor` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// The CPU.
    pub cpu: CpuInfo,
    /// System RAM.
    pub memory: MemoryInfo,
    /// NVIDIA GPUs, possibly none.
    pub gpus: Vec<GpuInfo>,
    /// Why `gpus` is empty or incomplete.
    pub gpu_note: Option<String>,
    /// The GPU backend llama.cpp was built with: `cpu`, `cuda` or `vulkan`.
    pub gpu_backend: GpuBackend,
    /// Which of llama.cpp's faster Vulkan shader paths a Vulkan build has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vulkan_shaders: Option<VulkanShaders>,
    /// Settings chosen for `model`; `None` when no model was found.
    pub tuning: Option<Tuning>,
    /// The model the settings are for (file name or path), or the remote
    /// back-end's model.
    pub model: Option<String>,
    /// The remote back-end that answers instead of a local model, as probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<crate::llm::remote::RemoteReport>,
    /// The RPC workers the model's layers are spread over, with their share.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rpc: Vec<crate::llm::rpc::Worker>,
}

impl DoctorReport {
    /// A report on `hardware`, with the settings chosen for `model` if any.
    pub fn new(hardware: Hardware, gpu_backend: GpuBackend, tuning: Option<Tuning>, model: Option<String>) -> Self {
        Self {
            cpu: hardware.cpu,
            memory: hardware.memory,
            gpus: hardware.gpus,
            gpu_note: hardware.gpu_note,
            gpu_backend,
            vulkan_shaders: (gpu_backend == GpuBackend::BUILT).then(VulkanShaders::of_this_build).flatten(),
            tuning,
            model,
            backend: None,
            rpc: Vec::new(),
        }
    }

    /// The report of a model spread over `workers`.
    pub fn with_rpc(self, workers: Vec<crate::llm::rpc::Worker>) -> Self {
        Self { rpc: workers, ..self }
    }

    /// The report of a machine whose replies come from `remote`.
    pub fn with_remote(self, remote: crate::llm::remote::RemoteReport) -> Self {
        Self { backend: Some(remote), ..self }
    }

    /// The report as readable text, one fact per line, ending with a newline.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail, so the fmt::Results are ignored.
        let _ = writeln!(out, "CPU:      {}", self.cpu.model);
        let _ = writeln!(out, "Cores:    {} physical, {} logical", self.cpu.physical_cores, self.cpu.logical_cores);
        let simd = if self.cpu.simd.is_empty() { "none detected".to_owned() } else { self.cpu.simd.join(" ") };
        let _ = writeln!(out, "SIMD:     {simd}");
        let _ = writeln!(
            out,
            "RAM:      {} total, {} available",
            format_gib(self.memory.total_bytes),
            format_gib(self.memory.available_bytes)
        );
        if self.gpus.is_empty() {
            let note = self.gpu_note.as_deref().unwrap_or("none found");
            let _ = writeln!(out, "GPU:      none ({note})");
        } else {
            for gpu in &self.gpus {
                let _ = writeln!(
                    out,
                    "GPU {}:    {} ({}), {} total, {} free",
                    gpu.index,
                    gpu.name,
                    gpu.backend,
                    format_gib(gpu.total_bytes),
                    format_gib(gpu.free_bytes)
                );
            }
            if let Some(note) = &self.gpu_note {
                let _ = writeln!(out, "          ({note})");
            }
        }
        let _ = writeln!(out, "Backend:  {} (llama.cpp build)", self.gpu_backend.label());
        if let Some(shaders) = &self.vulkan_shaders {
            let _ = writeln!(out, "Shaders:  {}", shaders.render());
        }

        let _ = writeln!(out);
        if let Some(remote) = &self.backend {
            out.push_str(&remote.render_text());
            return out;
        }
        match (&self.model, &self.tuning) {
            (Some(model), Some(tuning)) => {
                let _ = writeln!(out, "Settings for {model}:");
                render_tuning(&mut out, tuning);
            }
            (None, Some(tuning)) => {
                let _ = writeln!(out, "Settings:");
                render_tuning(&mut out, tuning);
            }
            (Some(model), None) => {
                let _ = writeln!(out, "Model:    {model} (no settings could be chosen)");
            }
            (None, None) => {
                let _ = writeln!(out, "Model:    none found, so no settings chosen");
            }
        }
        if !self.rpc.is_empty() {
            let _ = writeln!(out, "RPC workers (trusted network only: the protocol has no authentication):");
            for worker in &self.rpc {
                let _ = writeln!(
                    out,
                    "  {}: {} layers, {} free of {}",
                    worker.endpoint,
                    worker.layers,
                    format_gib(worker.free_bytes),
                    format_gib(worker.total_bytes)
                );
            }
        }
        out
    }
}

/// The chosen settings, indented under their heading.
fn render_tuning(out: &mut String, tuning: &Tuning) {
    let source = tuning.thread_source.describe();
    let _ =
        writeln!(out, "  threads:    {} decode, {} prefill ({source})", tuning.threads_decode, tuning.threads_prefill);
    let _ = writeln!(out, "  GPU layers: {} ({})", tuning.gpu_layers, tuning.gpu_reason);
    if !tuning.gpu_split.is_empty() {
        let mode = match tuning.split_mode {
            SplitMode::None => "none, one GPU",
            SplitMode::Layer => "layer, whole layers per GPU",
            SplitMode::Row => "row, each matrix over the GPUs",
        };
        let _ = writeln!(out, "  split:      {mode}");
        for share in &tuning.gpu_split {
            let _ = writeln!(
                out,
                "    GPU {}:    {} layers, {} of a {} budget",
                share.index,
                share.layers,
                format_gib(share.used_bytes),
                format_gib(share.budget_bytes)
            );
        }
    }
    let _ = writeln!(out, "  context:    {} tokens ({})", tuning.context_size, tuning.context_reason);
    let _ = writeln!(out, "  batch:      {} tokens", tuning.batch_size);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::{ModelFootprint, ThreadSource, TuningRequest};

    /// This build machine: a 2-core EPYC VM without a GPU.
    fn epyc_vm() -> Hardware {
        Hardware {
            cpu: CpuInfo {
                model: "AMD EPYC".into(),
                physical_cores: 2,
                logical_cores: 2,
                simd: ["sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw"].map(String::from).to_vec(),
            },
            memory: MemoryInfo { total_bytes: 8 << 30, available_bytes: 6 << 30 },
            gpus: Vec::new(),
            gpu_note: Some("this build has no GPU backend; scripts/setup.sh --cuda or --vulkan makes one".into()),
        }
    }

    fn cpu_tuning() -> Tuning {
        Tuning {
            threads_decode: 2,
            threads_prefill: 2,
            thread_source: ThreadSource::Heuristic,
            gpu_layers: 0,
            gpu_reason: "CPU only: this build has no GPU backend".into(),
            split_mode: SplitMode::Layer,
            gpu_split: Vec::new(),
            context_size: 3072,
            context_reason:
                "lowered from 8192 so that its KV cache takes at most a quarter of the 3.4 GiB of RAM available".into(),
            batch_size: 512,
        }
    }

    fn laptop_report() -> DoctorReport {
        DoctorReport {
            cpu: CpuInfo {
                model: "AMD Ryzen 7 7840HS w/ Radeon 780M Graphics".into(),
                physical_cores: 8,
                logical_cores: 16,
                simd: ["avx", "avx2", "fma", "avx512f"].map(String::from).to_vec(),
            },
            memory: MemoryInfo { total_bytes: 16 << 30, available_bytes: 10 << 30 },
            gpus: vec![GpuInfo {
                index: 0,
                name: "NVIDIA GeForce RTX 4050 Laptop GPU".into(),
                backend: "CUDA".into(),
                total_bytes: 6 << 30,
                free_bytes: 6_012_954_214,
            }],
            gpu_note: None,
            vulkan_shaders: None,
            gpu_backend: GpuBackend::Cuda,
            tuning: Some(Tuning {
                threads_decode: 6,
                threads_prefill: 16,
                thread_source: ThreadSource::Measured,
                gpu_layers: 33,
                gpu_reason: "all 32 layers and the output layer fit".into(),
                split_mode: SplitMode::Layer,
                gpu_split: Vec::new(),
                context_size: 4096,
                context_reason: "as asked".into(),
                batch_size: 512,
            }),
            model: Some("mistral-7b-instruct-v0.2.Q4_K_M.gguf".into()),
            backend: None,
            rpc: Vec::new(),
        }
    }

    #[test]
    fn json_shape_is_stable() {
        let report = DoctorReport::new(
            epyc_vm(),
            GpuBackend::Cpu,
            Some(cpu_tuning()),
            Some("qwen2.5-0.5b-instruct-q4_k_m.gguf".into()),
        );
        insta::assert_json_snapshot!(report);
    }

    #[test]
    fn json_round_trips() {
        let report = laptop_report();
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<DoctorReport>(&json).unwrap(), report);
    }

    #[test]
    fn text_for_a_cpu_only_machine() {
        let report = DoctorReport::new(
            epyc_vm(),
            GpuBackend::Cpu,
            Some(cpu_tuning()),
            Some("qwen2.5-0.5b-instruct-q4_k_m.gguf".into()),
        );
        insta::assert_snapshot!(report.render_text());
    }

    #[test]
    fn text_for_a_remote_back_end() {
        use crate::llm::remote::{Counting, Dialect, RemoteReport};
        let remote = RemoteReport {
            url: "http://gpu-box:8080/v1".into(),
            dialect: Dialect::LlamaServer,
            model: "qwen2.5-7b-instruct".into(),
            models: vec!["qwen2.5-7b-instruct".into()],
            context_size: 8192,
            context_source: "the server's".into(),
            counting: Counting::Exact,
            latency_ms: 2.4,
        };
        let report =
            DoctorReport::new(epyc_vm(), GpuBackend::Cpu, None, Some(remote.model.clone())).with_remote(remote);
        insta::assert_snapshot!(report.render_text());
        let json = serde_json::to_string(&report).unwrap();
        assert_eq!(serde_json::from_str::<DoctorReport>(&json).unwrap(), report);
    }

    #[test]
    fn text_for_a_gpu_laptop() {
        insta::assert_snapshot!(laptop_report().render_text());
    }

    #[test]
    fn text_for_two_gpus() {
        // A recorded machine (two RTX 3090s) and a 70B Q4_K_M-like model, through the real policy.
        let hardware: Hardware = serde_json::from_str(include_str!("machines/two-rtx-3090.json")).unwrap();
        let footprint = ModelFootprint {
            layers: 80,
            layer_bytes: vec![500 << 20; 80],
            output_bytes: 800 << 20,
            kv_bytes_per_token: 2 * 80 * 8 * 128 * 2,
            context_length_train: 8192,
        };
        let request = TuningRequest { context_size: Some(8192), backend: GpuBackend::Cuda, ..TuningRequest::default() };
        let tuning = Tuning::choose(&hardware, &footprint, None, &request);
        let report = DoctorReport::new(hardware, GpuBackend::Cuda, Some(tuning), Some("llama-70b-q4_k_m.gguf".into()));
        insta::assert_snapshot!(report.render_text());
    }

    #[test]
    fn a_vulkan_build_is_named() {
        let report = DoctorReport::new(epyc_vm(), GpuBackend::Vulkan, None, None);
        assert!(report.render_text().contains("Backend:  Vulkan (llama.cpp build)\n"), "{}", report.render_text());
        assert_eq!(serde_json::to_value(&report).unwrap()["gpu_backend"], "vulkan");
    }

    #[test]
    fn text_without_a_model() {
        let report = DoctorReport::new(epyc_vm(), GpuBackend::Cpu, None, None);
        let text = report.render_text();
        assert!(text.contains("GPU:      none (this build has no GPU backend"), "{text}");
        assert!(text.ends_with("Model:    none found, so no settings chosen\n"), "{text}");
    }
}
