//! Settings that follow from the hardware: thread counts, GPU layers, context
//! and batch sizes.
//!
//! Every policy here is a pure function of data (a
//! [`CpuInfo`](crate::hardware::CpuInfo), a list of
//! [`GpuInfo`](crate::hardware::GpuInfo), a [`ModelFootprint`]), so the
//! decisions are unit-tested on recorded machines instead of on whatever
//! machine runs the tests. Budgets are computed from the model's real sizes,
//! never looked up in a table.
//!
//! This file owns the model's [`ModelFootprint`], the context and batch sizes
//! ([`choose_context_size`], [`choose_batch_size`]) and the [`Tuning`] that
//! gathers every setting. Thread counts are chosen in `threads`, the GPU
//! layers and their split over the GPUs in `gpu_plan`; the recorded machines
//! the tests share are in `recorded`.

mod gpu_plan;
#[cfg(test)]
pub(super) mod recorded;
mod threads;

use serde::{Deserialize, Serialize};

pub use gpu_plan::{
    GpuPlan, GpuSelection, GpuSelectionError, GpuShare, SplitMode, gpu_budget_bytes, place_gpu_layers, plan_gpu_layers,
};
pub use threads::{ThreadChoice, ThreadMeasurements, ThreadRow, ThreadSource, choose_threads};

use super::{GpuBackend, Hardware, format_gib};

/// Memory a model needs, as read from its GGUF file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelFootprint {
    /// Number of repeating (transformer) layers, `block_count` in GGUF terms.
    pub layers: u32,
    /// Weight bytes of each repeating layer, in layer order (`layers` entries).
    pub layer_bytes: Vec<u64>,
    /// Weight bytes outside the repeating layers. llama.cpp offloads only the
    /// output norm and projection of these with the last "layer", but models with
    /// tied embeddings use the token embedding as that projection, so all of them
    /// are counted: the plan errs on the side of fitting.
    pub output_bytes: u64,
    /// KV-cache bytes per token of context, summed over all layers.
    pub kv_bytes_per_token: u64,
    /// Context length the model was trained with; 0 when the file does not say.
    pub context_length_train: u32,
}

/// Context chosen when none is requested, before the RAM check.
const DEFAULT_CONTEXT: u32 = 8192;

/// Smallest context chosen automatically: a persona prompt plus a few turns.
const MIN_CONTEXT: u32 = 512;

/// Automatic contexts are multiples of this (llama.cpp pads the KV cache to 256).
const CONTEXT_STEP: u32 = 256;

/// Share of available RAM the KV cache may take: the weights and the rest of the system need the remainder.
const KV_RAM_DIVISOR: u64 = 4;

/// Smallest context an automatic one is lowered to so that every layer fits
/// on the GPUs (as llama.cpp's own fit does): a few turns less of history
/// cost less than layers left on the CPU.
const MIN_GPU_CONTEXT: u32 = 4096;

/// A context size and why it is that size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextChoice {
    /// Tokens.
    pub size: u32,
    /// Why, for `workly doctor`: what was asked or chosen, and what lowered it.
    pub reason: String,
}

/// Context size in tokens, with its reason.
///
/// A requested size is honoured up to the training context (beyond it the
/// model degrades). Otherwise: the training context capped at 8192, lowered
/// until the KV cache takes at most a quarter of `available_ram_bytes`,
/// rounded down to a multiple of 256 and kept at 512 or more (but never above
/// the training context). A training context of 0 means unknown, no cap.
/// Whatever lowers a size says so in the reason: nothing is cut silently.
pub fn choose_context_size(
    footprint: &ModelFootprint,
    available_ram_bytes: u64,
    requested: Option<u32>,
) -> ContextChoice {
    let train = match footprint.context_length_train {
        0 => u32::MAX,
        known => known,
    };
    if let Some(requested) = requested {
        let size = requested.max(1).min(train);
        let reason = if size < requested {
            format!("{requested} asked, lowered to the {train} tokens the model was trained on")
        } else {
            "as asked".to_owned()
        };
        return ContextChoice { size, reason };
    }
    let target = train.min(DEFAULT_CONTEXT);
    let kv_budget_bytes = available_ram_bytes / KV_RAM_DIVISOR;
    let fits_in_ram = kv_budget_bytes
        .checked_div(footprint.kv_bytes_per_token)
        .map_or(u32::MAX, |tokens| u32::try_from(tokens).unwrap_or(u32::MAX));
    let chosen = target.min(fits_in_ram);
    let rounded = chosen - chosen % CONTEXT_STEP;
    let size = rounded.max(MIN_CONTEXT).min(train);
    let reason = if size < target {
        format!(
            "lowered from {target} so that its KV cache takes at most a quarter of the {} of RAM available",
            format_gib(available_ram_bytes)
        )
    } else if target == train {
        "the context the model was trained on".to_owned()
    } else {
        "the default".to_owned()
    };
    ContextChoice { size, reason }
}

/// Largest batch (tokens per `llama_decode` call during prompt processing).
const MAX_BATCH: u32 = 512;

/// Batch size for `context_size`: 512 (llama.cpp's default, where prompt
/// processing is already compute-bound), never more than the context.
pub fn choose_batch_size(context_size: u32) -> u32 {
    MAX_BATCH.min(context_size)
}

/// What the user asked of the tuning, and what this build can do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TuningRequest {
    /// Context size asked for (`--context-size` or the config file).
    pub context_size: Option<u32>,
    /// The GPUs to use and how to split the model over them.
    pub gpus: GpuSelection,
    /// The GPU backend llama.cpp was built with.
    pub backend: GpuBackend,
}

/// Every setting chosen for one model on one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuning {
    /// Threads for generation.
    pub threads_decode: usize,
    /// Threads for prompt processing.
    pub threads_prefill: usize,
    /// Whether the thread counts were measured or guessed.
    pub thread_source: ThreadSource,
    /// llama.cpp's `n_gpu_layers`.
    pub gpu_layers: u32,
    /// Why that many layers go to the GPU.
    pub gpu_reason: String,
    /// How the layers are spread over several GPUs.
    pub split_mode: SplitMode,
    /// Layers and memory on each GPU used; empty when none is.
    pub gpu_split: Vec<GpuShare>,
    /// Context size, tokens.
    pub context_size: u32,
    /// Why the context is that size.
    pub context_reason: String,
    /// Batch size, tokens.
    pub batch_size: u32,
}

impl Tuning {
    /// Chooses every setting for `footprint` on `hardware`.
    ///
    /// The context is sized first (it decides the KV cache), then the GPU
    /// layers at that context, then the batch. When the context was not
    /// asked for and some layers would stay on the CPU, the context is
    /// lowered (not under 4096 tokens) to the largest one at which every
    /// layer fits, if there is one, and the reason says so.
    pub fn choose(
        hardware: &Hardware,
        footprint: &ModelFootprint,
        measured: Option<&ThreadMeasurements>,
        request: &TuningRequest,
    ) -> Self {
        let threads = choose_threads(&hardware.cpu, measured);
        let context = choose_context_size(footprint, hardware.memory.available_bytes, request.context_size);
        let plan = |size: u32| plan_gpu_layers(footprint, &hardware.gpus, &request.gpus, size, request.backend);
        let all = footprint.layers + 1;
        let mut gpu = plan(context.size);
        let mut context_size = context.size;
        let mut context_reason = context.reason;
        if request.context_size.is_none() && gpu.gpu_layers > 0 && gpu.gpu_layers < all {
            let floor = MIN_GPU_CONTEXT.min(context.size);
            let smaller = (1..)
                .map(|steps| context.size.saturating_sub(steps * CONTEXT_STEP))
                .take_while(|&size| size >= floor && size > 0)
                .map(|size| (size, plan(size)))
                .find(|(_, plan)| plan.gpu_layers == all);
            if let Some((size, all_on_gpu)) = smaller {
                context_reason = format!(
                    "lowered from {context_size} so that every layer fits on the GPU (at {context_size}, {} of {all} \
                     would)",
                    gpu.gpu_layers
                );
                context_size = size;
                gpu = all_on_gpu;
            }
        }
        Self {
            threads_decode: threads.decode,
            threads_prefill: threads.prefill,
            thread_source: threads.source,
            gpu_layers: gpu.gpu_layers,
            gpu_reason: gpu.reason,
            split_mode: request.gpus.split_mode,
            gpu_split: gpu.split,
            context_size,
            context_reason,
            batch_size: choose_batch_size(context_size),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::recorded::{GIB, MIB, cpu, laptop_measurements, machine, rtx_4050, selection, seven_b, seventy_b};
    use super::*;
    use crate::hardware::MemoryInfo;

    // --- context and batch ---

    #[test]
    fn a_requested_context_is_capped_at_training() {
        let footprint = seven_b(8, 4096);
        assert_eq!(choose_context_size(&footprint, 64 * GIB, Some(2048)).size, 2048);
        assert_eq!(choose_context_size(&footprint, 64 * GIB, Some(32768)).size, 4096);
        // An explicit request wins over the RAM check: the user asked for it.
        assert_eq!(choose_context_size(&footprint, 0, Some(4000)).size, 4000);
        assert_eq!(choose_context_size(&footprint, 64 * GIB, Some(0)).size, 1);
    }

    #[test]
    fn the_default_context_is_8192_when_ram_allows() {
        assert_eq!(choose_context_size(&seven_b(8, 32768), 16 * GIB, None).size, 8192);
        assert_eq!(choose_context_size(&seven_b(8, 2048), 16 * GIB, None).size, 2048);
        // Unknown training context: no cap beyond the default.
        assert_eq!(choose_context_size(&seven_b(8, 0), 16 * GIB, None).size, 8192);
    }

    #[test]
    fn little_ram_shrinks_the_context() {
        // 512 KiB of KV per token; a quarter of 3 GiB is 768 MiB: 1536 tokens.
        assert_eq!(choose_context_size(&seven_b(32, 32768), 3 * GIB, None).size, 1536);
        // 3.3 GiB: 1689.6 tokens, rounded down to 1536.
        assert_eq!(choose_context_size(&seven_b(32, 32768), 3_543_348_019, None).size, 1536);
        // Never below 512, even with nothing free.
        assert_eq!(choose_context_size(&seven_b(32, 32768), 0, None).size, 512);
        // But never above the training context either.
        assert_eq!(choose_context_size(&seven_b(32, 300), 0, None).size, 300);
    }

    #[test]
    fn a_lowered_context_says_why() {
        let asked = choose_context_size(&seven_b(8, 4096), 64 * GIB, Some(32768));
        assert_eq!(asked.reason, "32768 asked, lowered to the 4096 tokens the model was trained on");
        assert_eq!(choose_context_size(&seven_b(8, 4096), 64 * GIB, Some(2048)).reason, "as asked");
        let small_ram = choose_context_size(&seven_b(32, 32768), 3 * GIB, None);
        assert_eq!(
            small_ram.reason,
            "lowered from 8192 so that its KV cache takes at most a quarter of the 3.0 GiB of RAM available"
        );
        assert_eq!(
            choose_context_size(&seven_b(8, 2048), 16 * GIB, None).reason,
            "the context the model was trained on"
        );
        assert_eq!(choose_context_size(&seven_b(8, 32768), 16 * GIB, None).reason, "the default");
    }

    #[test]
    fn a_model_without_kv_cache_size_gets_the_default() {
        let footprint = ModelFootprint { kv_bytes_per_token: 0, ..seven_b(8, 32768) };
        assert_eq!(choose_context_size(&footprint, 0, None).size, 8192);
    }

    proptest! {
        #[test]
        fn automatic_contexts_are_bounded_and_aligned(
            kv_bytes_per_token in 0u64..(8 * MIB),
            context_length_train in 0u32..1_048_576,
            available_ram_bytes in 0u64..(512 * GIB),
        ) {
            let footprint = ModelFootprint { kv_bytes_per_token, context_length_train, ..seven_b(8, 0) };
            let context = choose_context_size(&footprint, available_ram_bytes, None).size;
            let train = if context_length_train == 0 { u32::MAX } else { context_length_train };
            prop_assert!(context <= train.min(8192));
            prop_assert!(context >= train.min(512));
            prop_assert!(context.is_multiple_of(256) || context == train);
            let kv_bytes = u64::from(context) * kv_bytes_per_token;
            prop_assert!(context <= 512 || kv_bytes <= available_ram_bytes / 4);
        }
    }

    #[test]
    fn batch_is_512_or_the_context() {
        assert_eq!(choose_batch_size(8192), 512);
        assert_eq!(choose_batch_size(512), 512);
        assert_eq!(choose_batch_size(300), 300);
    }

    // --- everything together ---

    /// A CUDA build asked for `context_size` and nothing about GPUs.
    fn cuda(context_size: Option<u32>) -> TuningRequest {
        TuningRequest { context_size, backend: GpuBackend::Cuda, ..TuningRequest::default() }
    }

    #[test]
    fn tuning_for_a_gaming_laptop() {
        let hardware = Hardware {
            cpu: cpu("AMD Ryzen 7 7840HS w/ Radeon 780M Graphics", 8, 16),
            memory: MemoryInfo { total_bytes: 16 * GIB, available_bytes: 10 * GIB },
            gpus: vec![rtx_4050()],
            gpu_note: None,
        };
        let tuning = Tuning::choose(&hardware, &seven_b(8, 32768), None, &cuda(None));
        assert_eq!(tuning.threads_decode, 8);
        assert_eq!(tuning.threads_prefill, 8);
        assert_eq!(tuning.thread_source, ThreadSource::Heuristic);
        // At the default 8192 tokens 32 of the 33 layers fit; lowered to
        // 7936, every one does, and the reason says so.
        assert_eq!(tuning.context_size, 7936);
        assert_eq!(
            tuning.context_reason,
            "lowered from 8192 so that every layer fits on the GPU (at 8192, 32 of 33 would)"
        );
        assert_eq!(tuning.batch_size, 512);
        assert_eq!(tuning.gpu_layers, 33, "{}", tuning.gpu_reason);
        // A context asked for is kept: layers give way instead.
        let tuning = Tuning::choose(&hardware, &seven_b(8, 32768), None, &cuda(Some(8192)));
        assert_eq!((tuning.context_size, tuning.gpu_layers), (8192, 32));
        assert_eq!(tuning.context_reason, "as asked");
        // Not below 4096: a 70B stays split rather than keep a short context.
        let tuning = Tuning::choose(&hardware, &seventy_b(), None, &cuda(None));
        assert_eq!(tuning.context_size, 8192);
        assert_eq!(tuning.context_reason, "the context the model was trained on");

        let measured = laptop_measurements();
        let tuning = Tuning::choose(&hardware, &seven_b(8, 32768), Some(&measured), &cuda(Some(4096)));
        assert_eq!((tuning.threads_decode, tuning.threads_prefill), (6, 16));
        assert_eq!(tuning.thread_source, ThreadSource::Measured);
        assert_eq!(tuning.context_size, 4096);
        assert_eq!(tuning.gpu_layers, 33, "{}", tuning.gpu_reason);
    }

    #[test]
    fn tuning_for_this_cpu_only_server() {
        let hardware = Hardware {
            cpu: cpu("AMD EPYC", 2, 2),
            memory: MemoryInfo { total_bytes: 8 * GIB, available_bytes: 6 * GIB },
            gpus: Vec::new(),
            gpu_note: Some("this build has no GPU backend; scripts/setup.sh --cuda or --vulkan makes one".into()),
        };
        let tuning = Tuning::choose(&hardware, &seven_b(32, 4096), None, &TuningRequest::default());
        assert_eq!(
            tuning,
            Tuning {
                threads_decode: 2,
                threads_prefill: 2,
                thread_source: ThreadSource::Heuristic,
                gpu_layers: 0,
                gpu_reason: "CPU only: this build has no GPU backend".into(),
                split_mode: SplitMode::Layer,
                gpu_split: Vec::new(),
                // A quarter of 6 GiB holds 3072 tokens of 512 KiB.
                context_size: 3072,
                context_reason:
                    "lowered from 4096 so that its KV cache takes at most a quarter of the 6.0 GiB of RAM available"
                        .into(),
                batch_size: 512,
            }
        );
    }

    #[test]
    fn tuning_carries_the_split() {
        let hardware = machine("four-a100-80gb");
        let request = TuningRequest {
            context_size: Some(8192),
            gpus: selection(SplitMode::Row, &[0, 1], None, &[]),
            backend: GpuBackend::Cuda,
        };
        let tuning = Tuning::choose(&hardware, &seventy_b(), None, &request);
        assert_eq!(tuning.gpu_layers, 81, "{}", tuning.gpu_reason);
        assert_eq!(tuning.split_mode, SplitMode::Row);
        assert_eq!(tuning.gpu_split.iter().map(|share| share.layers).collect::<Vec<_>>(), [41, 40]);
        // No CUDA, no split, whatever was asked.
        let tuning =
            Tuning::choose(&hardware, &seventy_b(), None, &TuningRequest { backend: GpuBackend::Cpu, ..request });
        assert!(tuning.gpu_split.is_empty());
    }
}
