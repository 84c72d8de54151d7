//! Recorded machines, model footprints and thread benchmarks shared by the
//! policy tests of several files (`mod.rs`, `threads.rs`, `gpu_plan.rs`).
//! The machines themselves are JSON files in `src/hardware/machines/`.

use super::{GpuSelection, ModelFootprint, SplitMode, ThreadMeasurements, ThreadRow};
use crate::hardware::{CpuInfo, GpuInfo, Hardware};

pub(super) const MIB: u64 = 1 << 20;
pub(super) const GIB: u64 = 1 << 30;

/// A 7B Q4_K_M-like model: 32 layers of 120 MiB, a 280 MiB output layer.
/// `kv_heads` 32 is Llama-2-style attention (512 KiB of f16 KV per token),
/// 8 is grouped-query attention as in Mistral or Llama 3 (128 KiB).
pub(super) fn seven_b(kv_heads: u64, context_length_train: u32) -> ModelFootprint {
    ModelFootprint {
        layers: 32,
        layer_bytes: vec![120 * MIB; 32],
        output_bytes: 280 * MIB,
        // K and V, 32 layers, 128 dims per head, 2 bytes (f16).
        kv_bytes_per_token: 2 * 32 * kv_heads * 128 * 2,
        context_length_train,
    }
}

/// A 70B Q4_K_M-like model: 80 layers of 500 MiB, grouped-query attention.
pub(super) fn seventy_b() -> ModelFootprint {
    ModelFootprint {
        layers: 80,
        layer_bytes: vec![500 * MIB; 80],
        output_bytes: 800 * MIB,
        kv_bytes_per_token: 2 * 80 * 8 * 128 * 2,
        context_length_train: 8192,
    }
}

/// RTX 4050 Laptop GPU: 6 GiB, 5.6 GiB free with a desktop running.
pub(super) fn rtx_4050() -> GpuInfo {
    GpuInfo {
        index: 0,
        name: "NVIDIA GeForce RTX 4050 Laptop GPU".into(),
        backend: "CUDA".into(),
        total_bytes: 6 * GIB,
        free_bytes: 6_012_954_214,
    }
}

/// A machine recorded as JSON in `src/hardware/machines/` (the shape of [`Hardware`]).
pub(super) fn machine(name: &str) -> Hardware {
    let json = match name {
        "two-rtx-3090" => include_str!("../machines/two-rtx-3090.json"),
        "rtx-4090-rtx-3060" => include_str!("../machines/rtx-4090-rtx-3060.json"),
        "four-a100-80gb" => include_str!("../machines/four-a100-80gb.json"),
        other => panic!("no recorded machine {other}"),
    };
    serde_json::from_str(json).unwrap()
}

pub(super) fn cpu(model: &str, physical_cores: usize, logical_cores: usize) -> CpuInfo {
    CpuInfo { model: model.into(), physical_cores, logical_cores, simd: vec!["avx2".into()] }
}

pub(super) fn row(threads: usize, prefill_tokens_per_s: f64, decode_tokens_per_s: f64) -> ThreadRow {
    ThreadRow { threads, prefill_tokens_per_s, decode_tokens_per_s }
}

/// A benchmark on an 8-core/16-thread laptop: decode peaks at 6 threads
/// (memory bound), prefill keeps scaling to 16.
pub(super) fn laptop_measurements() -> ThreadMeasurements {
    ThreadMeasurements {
        cpu_model: "AMD Ryzen 7 7840HS w/ Radeon 780M Graphics".into(),
        logical_cores: 16,
        model_file: "mistral-7b-instruct-v0.2.Q4_K_M.gguf".into(),
        rows: vec![
            row(1, 9.0, 4.1),
            row(2, 17.5, 7.6),
            row(4, 33.0, 11.8),
            row(6, 46.0, 13.2),
            row(8, 58.0, 13.0),
            row(12, 71.0, 12.1),
            row(16, 80.0, 10.4),
        ],
    }
}

/// The multi-GPU flags, as parsed from the command line.
pub(super) fn selection(
    split_mode: SplitMode,
    devices: &[u32],
    main_gpu: Option<u32>,
    tensor_split: &[f64],
) -> GpuSelection {
    GpuSelection { split_mode, devices: devices.to_vec(), main_gpu, tensor_split: tensor_split.to_vec() }
}
