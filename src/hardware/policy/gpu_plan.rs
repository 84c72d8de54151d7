//! GPU offloading: which GPUs a model may use ([`GpuSelection`], [`SplitMode`]),
//! the VRAM each may take (free VRAM less headroom, [`gpu_budget_bytes`]), and
//! how many layers go where ([`plan_gpu_layers`], [`place_gpu_layers`]),
//! placed as llama.cpp places them.

use serde::{Deserialize, Serialize};

use super::ModelFootprint;
use crate::hardware::{GpuBackend, GpuInfo, format_gib};

/// How llama.cpp spreads a model over several GPUs (`--split-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMode {
    /// One GPU only: the main GPU (`--main-gpu`, else the first one used).
    None,
    /// Whole layers, with their KV cache, on each GPU: llama.cpp's default.
    #[default]
    Layer,
    /// Each weight matrix split by rows over the GPUs; the KV cache stays with its layer.
    Row,
}

impl crate::choice::Choice for SplitMode {
    const ALL: &'static [Self] = &[Self::None, Self::Layer, Self::Row];
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Layer => "layer",
            Self::Row => "row",
        }
    }
}

/// Which GPUs a model may use and in what proportions: the multi-GPU flags,
/// as given (GPU indices are the ones `workly doctor` shows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuSelection {
    /// How the model is spread over the GPUs used.
    pub split_mode: SplitMode,
    /// GPUs to use, in this order; empty uses every detected GPU.
    pub devices: Vec<u32>,
    /// The GPU of [`SplitMode::None`] (and of row mode's small tensors); `None` is the first one used.
    pub main_gpu: Option<u32>,
    /// Share of the layers per GPU used, in the same order; empty splits by free VRAM.
    pub tensor_split: Vec<f64>,
}

/// A GPU selection this machine cannot follow, in one line for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GpuSelectionError(String);

crate::classed!(BadInput: GpuSelectionError);

impl GpuSelection {
    /// Whether any multi-GPU flag was given (all of them do nothing without a GPU backend).
    pub fn is_set(&self) -> bool {
        *self != Self::default()
    }

    /// Checks the selection against the detected `gpus`.
    ///
    /// Proportions must be finite, not negative and not all zero, one per GPU
    /// used; the main GPU must be among `devices` when those are given.
    /// Indices are checked only where GPUs were detected: in a build without
    /// a GPU backend there is nothing to check them against.
    pub fn check(&self, gpus: &[GpuInfo]) -> Result<(), GpuSelectionError> {
        let fail = |message: String| Err(GpuSelectionError(message));
        if self.tensor_split.iter().any(|share| !share.is_finite() || *share < 0.0) {
            return fail("--tensor-split takes proportions of 0 or more, e.g. 3,1".to_owned());
        }
        if !self.tensor_split.is_empty() && self.tensor_split.iter().all(|&share| share == 0.0) {
            return fail("--tensor-split gives every GPU 0: at least one proportion must be above 0".to_owned());
        }
        if let Some(index) = self
            .devices
            .iter()
            .enumerate()
            .find_map(|(position, index)| self.devices[..position].contains(index).then_some(index))
        {
            return fail(format!("--devices names GPU {index} twice"));
        }
        if let Some(main) = self.main_gpu.filter(|main| !self.devices.is_empty() && !self.devices.contains(main)) {
            return fail(format!("--main-gpu {main} is not among --devices {}", join(&self.devices, ",")));
        }
        // The GPUs used: those named, else those detected (unknown without a GPU backend).
        let used = if self.devices.is_empty() { gpus.len() } else { self.devices.len() };
        if used > 0 && !self.tensor_split.is_empty() && self.tensor_split.len() != used {
            return fail(format!(
                "--tensor-split gives {} proportions for {used} GPUs: give one per GPU used",
                self.tensor_split.len()
            ));
        }
        if gpus.is_empty() {
            return Ok(());
        }
        let known = join(&gpus.iter().map(|gpu| gpu.index).collect::<Vec<_>>(), ", ");
        if let Some(index) = self.devices.iter().find(|&&index| !gpus.iter().any(|gpu| gpu.index == index)) {
            return fail(format!("--devices names GPU {index}, but this machine has GPU {known}"));
        }
        if let Some(main) = self.main_gpu.filter(|&main| !gpus.iter().any(|gpu| gpu.index == main)) {
            return fail(format!("--main-gpu {main} is not a GPU of this machine (it has GPU {known})"));
        }
        Ok(())
    }

    /// The GPUs llama.cpp will use, in its order, each with its weight in the
    /// split (its proportion, or its free bytes when none are given).
    ///
    /// Unknown indices are skipped and missing proportions count as 0, as
    /// llama.cpp does; [`check`](Self::check) is what refuses them.
    fn used<'a>(&self, gpus: &'a [GpuInfo]) -> Vec<(&'a GpuInfo, f32)> {
        let listed: Vec<&GpuInfo> = if self.devices.is_empty() {
            gpus.iter().collect()
        } else {
            self.devices.iter().filter_map(|&index| gpus.iter().find(|gpu| gpu.index == index)).collect()
        };
        if self.split_mode == SplitMode::None {
            let main = self.main_gpu.and_then(|main| listed.iter().find(|gpu| gpu.index == main));
            return main.or(listed.first()).map(|&gpu| vec![(gpu, 1.0)]).unwrap_or_default();
        }
        // llama.cpp keeps its split points in f32, so the plan does too: the
        // same free bytes then round to the same layer boundaries.
        let proportions = self.tensor_split.iter().any(|&share| share > 0.0);
        listed
            .into_iter()
            .enumerate()
            .map(|(position, gpu)| {
                let weight = if proportions {
                    self.tensor_split.get(position).copied().unwrap_or(0.0) as f32
                } else {
                    gpu.free_bytes as f32
                };
                (gpu, weight)
            })
            .collect()
    }
}

/// `values` joined by `separator`, e.g. "0,1".
fn join(values: &[impl ToString], separator: &str) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(separator)
}

/// One GPU's part of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuShare {
    /// The GPU's index (as llama.cpp and `workly doctor` number them).
    pub index: u32,
    /// Layers llama.cpp puts on it, counted as `n_gpu_layers` counts them (the output layer is one).
    pub layers: u32,
    /// Weights and KV cache of those layers.
    pub used_bytes: u64,
    /// Free VRAM less the headroom kept back: what the plan may use on it.
    pub budget_bytes: u64,
}

/// How many layers to hand to the GPUs, where each goes, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuPlan {
    /// llama.cpp's `n_gpu_layers`: the output layer and the last `gpu_layers - 1` repeating layers.
    pub gpu_layers: u32,
    /// One sentence for `workly doctor` and the logs.
    pub reason: String,
    /// The layers of each GPU used, in llama.cpp's order; empty when no GPU is used.
    pub split: Vec<GpuShare>,
}

/// VRAM always left free, whatever the card: the CUDA context, the driver and
/// llama.cpp's compute buffer need at least this much.
const MIN_HEADROOM_BYTES: u64 = 512 * 1024 * 1024;

/// VRAM left free as a fraction of the card (the desktop and other apps grow with it).
const HEADROOM_DIVISOR: u64 = 10;

/// VRAM withheld from the model on a card with `total_bytes`.
fn headroom_bytes(total_bytes: u64) -> u64 {
    MIN_HEADROOM_BYTES.max(total_bytes / HEADROOM_DIVISOR)
}

/// What a plan may put on `gpu`: its free VRAM less its headroom.
pub fn gpu_budget_bytes(gpu: &GpuInfo) -> u64 {
    gpu.free_bytes.saturating_sub(headroom_bytes(gpu.total_bytes))
}

/// The per-layer share of the KV cache at `context_size` tokens, rounded up.
fn kv_bytes_per_layer(footprint: &ModelFootprint, context_size: u32) -> u64 {
    let total = u128::from(footprint.kv_bytes_per_token) * u128::from(context_size);
    let share = total.div_ceil(u128::from(footprint.layers.max(1)));
    u64::try_from(share).unwrap_or(u64::MAX)
}

/// Where llama.cpp puts `gpu_layers` layers over `used` GPUs, as `llama_model::load_tensors` does.
///
/// llama.cpp offloads from the end: the output layer (counted as layer
/// `layers`) and the `gpu_layers - 1` repeating layers before it. The k-th
/// offloaded layer of n goes to the first GPU whose cumulative share of the
/// weights exceeds k/n (`std::upper_bound` over the normalised running sums),
/// so the output layer lands on the last GPU. A layer's KV cache lives on its
/// GPU; the output layer has none.
fn place(footprint: &ModelFootprint, used: &[(&GpuInfo, f32)], kv_per_layer: u64, gpu_layers: u32) -> Vec<GpuShare> {
    let mut shares: Vec<GpuShare> = used
        .iter()
        .map(|(gpu, _)| GpuShare { index: gpu.index, layers: 0, used_bytes: 0, budget_bytes: gpu_budget_bytes(gpu) })
        .collect();
    let Some(last) = shares.len().checked_sub(1) else {
        return shares;
    };
    let mut running = 0.0f32;
    let mut points: Vec<f32> = used
        .iter()
        .map(|&(_, weight)| {
            running += weight;
            running
        })
        .collect();
    for point in &mut points {
        *point /= running;
    }
    let offloaded = gpu_layers.min(footprint.layers.saturating_add(1));
    let first = footprint.layers.saturating_add(1) - offloaded;
    for layer in first..=footprint.layers {
        let position = (layer - first) as f32 / offloaded as f32;
        // The count of points at or below `position` is upper_bound's index;
        // capped so that a NaN from all-zero weights cannot index past the end.
        let gpu = points.iter().filter(|&&point| point <= position).count().min(last);
        let bytes = match footprint.layer_bytes.get(layer as usize) {
            Some(&weights) => weights.saturating_add(kv_per_layer),
            None => footprint.output_bytes,
        };
        let share = &mut shares[gpu];
        share.layers += 1;
        share.used_bytes = share.used_bytes.saturating_add(bytes);
    }
    shares
}

/// Where `gpu_layers` layers of `footprint` go on `gpus` under `selection`:
/// the split of a layer count set by hand, shown as a plan's would be.
pub fn place_gpu_layers(
    footprint: &ModelFootprint,
    gpus: &[GpuInfo],
    selection: &GpuSelection,
    context_size: u32,
    gpu_layers: u32,
) -> Vec<GpuShare> {
    let kv_per_layer = kv_bytes_per_layer(footprint, context_size);
    place(footprint, &selection.used(gpus), kv_per_layer, gpu_layers)
}

/// Plans `n_gpu_layers` for `footprint` at `context_size` tokens on the GPUs `selection` uses.
///
/// Each GPU's budget is its free VRAM minus headroom (the larger of 512 MiB
/// and a tenth of the card, which also covers the compute buffers). The plan
/// is the most layers whose placement (see [`place`]: by free VRAM or by
/// `--tensor-split`, as llama.cpp rounds it) keeps every GPU within its
/// budget, counting each layer's weights and its share of the KV cache.
/// Nothing is offloaded when llama.cpp was built without a GPU backend, when
/// there is no GPU, or when the footprint is inconsistent. CUDA and Vulkan
/// builds plan alike: llama.cpp's own backend reads each GPU's free memory.
/// (A Vulkan driver without the memory budget extension reports the whole
/// heap as free; the headroom is then all that is kept back.)
pub fn plan_gpu_layers(
    footprint: &ModelFootprint,
    gpus: &[GpuInfo],
    selection: &GpuSelection,
    context_size: u32,
    backend: GpuBackend,
) -> GpuPlan {
    let none = |reason: String| GpuPlan { gpu_layers: 0, reason, split: Vec::new() };
    match backend {
        GpuBackend::Cpu => {
            return none("CPU only: this build has no GPU backend".into());
        }
        GpuBackend::Cuda | GpuBackend::Vulkan => {}
    }
    let used = selection.used(gpus);
    if used.is_empty() {
        return none("CPU only: no GPU found".into());
    }
    if footprint.layers == 0 || footprint.layer_bytes.len() != footprint.layers as usize {
        return none(format!(
            "CPU only: the model describes {} layers but {} layer sizes",
            footprint.layers,
            footprint.layer_bytes.len()
        ));
    }

    let kv_per_layer = kv_bytes_per_layer(footprint, context_size);
    let fits = |shares: &[GpuShare]| shares.iter().all(|share| share.used_bytes <= share.budget_bytes);
    // Placement is not monotonic in the layer count over several GPUs, so
    // every count is tried from the top; a few hundred sums at most.
    let (gpu_layers, split) = (1..=footprint.layers + 1)
        .rev()
        .map(|gpu_layers| (gpu_layers, place(footprint, &used, kv_per_layer, gpu_layers)))
        .find(|(_, shares)| fits(shares))
        .unwrap_or_else(|| (0, place(footprint, &used, kv_per_layer, 0)));

    let total = |bytes: fn(&GpuShare) -> u64| split.iter().map(bytes).fold(0u64, u64::saturating_add);
    let fill = format!(
        "{} of a {} budget",
        format_gib(total(|share| share.used_bytes)),
        format_gib(total(|share| share.budget_bytes))
    );
    let on = where_planned(&used, selection);
    let reason = if gpu_layers == footprint.layers + 1 {
        format!("all {} layers and the output layer fit ({fill}) on {on}", footprint.layers)
    } else if gpu_layers > 1 {
        format!("the output layer and the last {} of {} layers fit ({fill}) on {on}", gpu_layers - 1, footprint.layers)
    } else if gpu_layers == 1 {
        format!("only the {} output layer fits ({fill}) on {on}", format_gib(footprint.output_bytes))
    } else {
        format!(
            "CPU only: not even the {} output layer, which llama.cpp offloads first, fits ({fill}) on {on}",
            format_gib(footprint.output_bytes)
        )
    };
    GpuPlan { gpu_layers, reason, split }
}

/// The GPUs a plan is for, in words: one GPU's memory, or how several share the layers.
fn where_planned(used: &[(&GpuInfo, f32)], selection: &GpuSelection) -> String {
    match used {
        [(gpu, _)] => format!(
            "GPU {} ({}): {} free of {}, {} kept back",
            gpu.index,
            gpu.name,
            format_gib(gpu.free_bytes),
            format_gib(gpu.total_bytes),
            format_gib(headroom_bytes(gpu.total_bytes))
        ),
        _ => {
            let indices: Vec<u32> = used.iter().map(|(gpu, _)| gpu.index).collect();
            let by = if selection.tensor_split.iter().any(|&share| share > 0.0) {
                format!("{} by --tensor-split", join(&selection.tensor_split, ":"))
            } else {
                "by free VRAM".to_owned()
            };
            format!("{} GPUs ({}), split {by}", used.len(), join(&indices, ", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::hardware::policy::recorded::{GIB, MIB, machine, rtx_4050, selection, seven_b, seventy_b};

    /// H100 80 GB as CUDA sees it on an idle server.
    fn h100() -> GpuInfo {
        GpuInfo {
            index: 0,
            name: "NVIDIA H100 80GB HBM3".into(),
            backend: "CUDA".into(),
            total_bytes: 81_559 * MIB,
            free_bytes: 81_000 * MIB,
        }
    }

    /// A 2 GiB entry-level card (MX450 class).
    fn two_gib_card() -> GpuInfo {
        GpuInfo {
            index: 0,
            name: "NVIDIA GeForce MX450".into(),
            backend: "CUDA".into(),
            total_bytes: 2 * GIB,
            free_bytes: 1843 * MIB,
        }
    }

    /// The plan on every GPU given, split by free VRAM (no multi-GPU flag given).
    fn plan_on(footprint: &ModelFootprint, gpus: &[GpuInfo], context_size: u32) -> GpuPlan {
        plan_gpu_layers(footprint, gpus, &GpuSelection::default(), context_size, GpuBackend::Cuda)
    }

    /// (GPU index, layers) of each share of a plan.
    fn layers_per_gpu(plan: &GpuPlan) -> Vec<(u32, u32)> {
        plan.split.iter().map(|share| (share.index, share.layers)).collect()
    }

    // --- GPU layers ---

    #[test]
    fn laptop_4050_takes_most_of_a_7b_with_full_attention() {
        // Budget: 5.6 GiB free - 0.6 GiB headroom = 5 GiB. llama.cpp offloads
        // the 280 MiB output layer first, then layers of 120 MiB of weights +
        // 64 MiB of KV at 4096 tokens: 280 + 26 x 184 = 5064 MiB fit.
        let plan = plan_on(&seven_b(32, 4096), &[rtx_4050()], 4096);
        assert_eq!(plan.gpu_layers, 27, "{}", plan.reason);
        assert!(plan.reason.starts_with("the output layer and the last 26 of 32 layers fit"), "{}", plan.reason);
        assert_eq!(layers_per_gpu(&plan), [(0, 27)]);
    }

    #[test]
    fn laptop_4050_takes_all_of_a_7b_with_grouped_query_attention() {
        // 32 x (120 + 16) MiB + 280 MiB = 4632 MiB <= 5120 MiB.
        let plan = plan_on(&seven_b(8, 32768), &[rtx_4050()], 4096);
        assert_eq!(plan.gpu_layers, 33, "{}", plan.reason);
        // At 8192 tokens, 32 x 152 MiB + 280 MiB = 5144 MiB is 24 MiB too
        // many: the first repeating layer stays on the CPU.
        let plan = plan_on(&seven_b(8, 32768), &[rtx_4050()], 8192);
        assert_eq!(plan.gpu_layers, 32, "{}", plan.reason);
        assert!(plan.reason.starts_with("the output layer and the last 31 of 32 layers"), "{}", plan.reason);
    }

    #[test]
    fn h100_takes_everything() {
        let plan = plan_on(&seven_b(32, 4096), &[h100()], 4096);
        assert_eq!(plan.gpu_layers, 33, "{}", plan.reason);
        let plan = plan_on(&seventy_b(), &[h100()], 8192);
        assert_eq!(plan.gpu_layers, 81, "{}", plan.reason);
        assert!(plan.reason.starts_with("all 80 layers and the output layer fit"));
        assert!(plan.reason.contains("NVIDIA H100 80GB HBM3"));
    }

    #[test]
    fn two_gib_card_takes_a_few_layers() {
        // 1843 MiB free - 512 MiB headroom = 1331 MiB: the 280 MiB output layer
        // and 7 layers of (120 + 16) MiB. (Counting the output layer last, as
        // plans once did, gave 9: 1368 MiB once llama.cpp placed it.)
        let plan = plan_on(&seven_b(8, 32768), &[two_gib_card()], 4096);
        assert_eq!(plan.gpu_layers, 8, "{}", plan.reason);
    }

    #[test]
    fn a_70b_on_a_laptop_takes_what_fits() {
        // 5 GiB budget: the 800 MiB output layer and 8 layers of (500 + 32) MiB at 8192 tokens.
        let plan = plan_on(&seventy_b(), &[rtx_4050()], 8192);
        assert_eq!(plan.gpu_layers, 9, "{}", plan.reason);
    }

    #[test]
    fn nothing_without_a_gpu_or_cuda() {
        let plan = plan_on(&seven_b(8, 4096), &[], 4096);
        assert_eq!(plan.gpu_layers, 0);
        assert!(plan.reason.contains("no GPU found"), "{}", plan.reason);
        let plan = plan_gpu_layers(&seven_b(8, 4096), &[h100()], &GpuSelection::default(), 4096, GpuBackend::Cpu);
        assert_eq!(plan.gpu_layers, 0);
        assert!(plan.reason.contains("no GPU backend"), "{}", plan.reason);
    }

    #[test]
    fn a_vulkan_build_plans_as_a_cuda_one() {
        // The same free memory, as llama.cpp's Vulkan backend reads it, gives the same plan.
        let radeon = GpuInfo {
            index: 0,
            name: "AMD Radeon RX 7600 (RADV NAVI33)".into(),
            backend: "Vulkan".into(),
            total_bytes: 8 * GIB,
            free_bytes: 7 * GIB,
        };
        let cuda = plan_gpu_layers(
            &seven_b(8, 4096),
            std::slice::from_ref(&radeon),
            &GpuSelection::default(),
            4096,
            GpuBackend::Cuda,
        );
        let vulkan = plan_gpu_layers(&seven_b(8, 4096), &[radeon], &GpuSelection::default(), 4096, GpuBackend::Vulkan);
        assert_eq!(vulkan, cuda);
        assert_eq!(vulkan.gpu_layers, 33, "{}", vulkan.reason);
    }

    #[test]
    fn nothing_when_not_one_layer_fits() {
        let busy = GpuInfo { free_bytes: 600 * MIB, ..rtx_4050() };
        let plan = plan_on(&seven_b(8, 4096), &[busy], 4096);
        assert_eq!(plan.gpu_layers, 0);
        assert!(plan.reason.contains("not even the 0.3 GiB output layer"), "{}", plan.reason);
        // The budget is still shown, with nothing placed.
        assert_eq!(layers_per_gpu(&plan), [(0, 0)]);
    }

    #[test]
    fn a_small_second_gpu_takes_its_share_of_free_vram() {
        // 1843 MiB against 5734 MiB free: the first 24.3% of the 33 layers
        // (9 of them, 1224 MiB of its 1331 MiB budget) go to the MX450.
        let gpus = [two_gib_card(), GpuInfo { index: 1, ..rtx_4050() }];
        let plan = plan_on(&seven_b(8, 4096), &gpus, 4096);
        assert_eq!(plan.gpu_layers, 33, "{}", plan.reason);
        assert_eq!(layers_per_gpu(&plan), [(0, 9), (1, 24)]);
        assert!(plan.reason.ends_with("on 2 GPUs (0, 1), split by free VRAM"), "{}", plan.reason);
    }

    #[test]
    fn an_inconsistent_footprint_stays_on_the_cpu() {
        let footprint = ModelFootprint { layer_bytes: vec![120 * MIB; 30], ..seven_b(8, 4096) };
        assert_eq!(plan_on(&footprint, &[h100()], 4096).gpu_layers, 0);
    }

    // --- several GPUs (recorded machines in machines/*.json) ---

    /// The plan for `footprint` at 8192 tokens on `machine` under `selection`.
    fn plan_with(machine_name: &str, footprint: &ModelFootprint, selection: &GpuSelection) -> GpuPlan {
        selection.check(&machine(machine_name).gpus).unwrap();
        plan_gpu_layers(footprint, &machine(machine_name).gpus, selection, 8192, GpuBackend::Cuda)
    }

    /// Every share within its budget, and the layers adding up to the plan.
    fn assert_consistent(plan: &GpuPlan) {
        assert_eq!(plan.split.iter().map(|share| share.layers).sum::<u32>(), plan.gpu_layers, "{plan:?}");
        for share in &plan.split {
            assert!(share.used_bytes <= share.budget_bytes, "{plan:?}");
        }
    }

    #[test]
    fn two_3090s_split_a_7b_by_free_vram() {
        // 22528 and 24000 MiB free: the first 48.4% of the 33 layers (16) on GPU 0.
        let plan = plan_with("two-rtx-3090", &seven_b(8, 32768), &GpuSelection::default());
        assert_eq!(plan.gpu_layers, 33, "{}", plan.reason);
        assert_eq!(layers_per_gpu(&plan), [(0, 16), (1, 17)]);
        assert_consistent(&plan);
        assert!(plan.reason.starts_with("all 32 layers and the output layer fit"), "{}", plan.reason);
        assert!(plan.reason.ends_with("on 2 GPUs (0, 1), split by free VRAM"), "{}", plan.reason);
    }

    #[test]
    fn two_3090s_take_most_of_a_70b() {
        // Budgets 20070 and 21542 MiB; 532 MiB a layer, 800 MiB of output on GPU 1.
        // At 77 layers GPU 0's 48.4% would be 38 layers (20216 MiB): too many.
        let plan = plan_with("two-rtx-3090", &seventy_b(), &GpuSelection::default());
        assert_eq!(plan.gpu_layers, 76, "{}", plan.reason);
        assert_eq!(layers_per_gpu(&plan), [(0, 37), (1, 39)]);
        assert_consistent(&plan);
        assert!(plan.reason.starts_with("the output layer and the last 75 of 80 layers fit"), "{}", plan.reason);
        // Row mode splits the same layers over the same GPUs.
        let row = plan_with("two-rtx-3090", &seventy_b(), &selection(SplitMode::Row, &[], None, &[]));
        assert_eq!(layers_per_gpu(&row), layers_per_gpu(&plan));
    }

    #[test]
    fn a_4090_and_a_3060_share_by_free_vram() {
        // 23000 and 11900 MiB free: 65.9% of the layers on the 4090.
        let plan = plan_with("rtx-4090-rtx-3060", &seven_b(8, 32768), &GpuSelection::default());
        assert_eq!(layers_per_gpu(&plan), [(0, 22), (1, 11)]);
        assert_consistent(&plan);
        // A 70B is limited by the 3060: 10671 MiB hold the output layer and 18 more.
        let plan = plan_with("rtx-4090-rtx-3060", &seventy_b(), &GpuSelection::default());
        assert_eq!(plan.gpu_layers, 57, "{}", plan.reason);
        assert_eq!(layers_per_gpu(&plan), [(0, 38), (1, 19)]);
        assert_consistent(&plan);
    }

    #[test]
    fn four_a100s_take_a_70b_in_quarters() {
        let plan = plan_with("four-a100-80gb", &seventy_b(), &GpuSelection::default());
        assert_eq!(plan.gpu_layers, 81, "{}", plan.reason);
        assert_eq!(layers_per_gpu(&plan), [(0, 21), (1, 20), (2, 20), (3, 20)]);
        assert_consistent(&plan);
        assert!(plan.reason.ends_with("on 4 GPUs (0, 1, 2, 3), split by free VRAM"), "{}", plan.reason);
        let plan = plan_with("four-a100-80gb", &seven_b(32, 4096), &GpuSelection::default());
        assert_eq!(layers_per_gpu(&plan), [(0, 9), (1, 8), (2, 8), (3, 8)]);
    }

    #[test]
    fn devices_restrict_the_plan_to_a_subset() {
        let plan = plan_with("four-a100-80gb", &seventy_b(), &selection(SplitMode::Layer, &[2, 3], None, &[]));
        assert_eq!(plan.gpu_layers, 81, "{}", plan.reason);
        assert_eq!(layers_per_gpu(&plan), [(2, 41), (3, 40)]);
        // In the order given, as llama.cpp takes them: GPU 1 now holds the first
        // 51.6% (18 of 33 layers), GPU 0 the rest and the output layer.
        let plan = plan_with("two-rtx-3090", &seven_b(8, 32768), &selection(SplitMode::Layer, &[1, 0], None, &[]));
        assert_eq!(layers_per_gpu(&plan), [(1, 18), (0, 15)]);
        // One device is a one-GPU plan.
        let plan = plan_with("two-rtx-3090", &seventy_b(), &selection(SplitMode::Layer, &[1], None, &[]));
        assert_eq!(layers_per_gpu(&plan), [(1, 39)]);
        assert!(plan.reason.contains("GPU 1 (NVIDIA GeForce RTX 3090)"), "{}", plan.reason);
    }

    #[test]
    fn split_mode_none_uses_the_main_gpu_only() {
        // GPU 0 by default: 20070 MiB hold the output layer and 36 layers.
        let plan = plan_with("two-rtx-3090", &seventy_b(), &selection(SplitMode::None, &[], None, &[]));
        assert_eq!(layers_per_gpu(&plan), [(0, 37)]);
        let plan = plan_with("two-rtx-3090", &seventy_b(), &selection(SplitMode::None, &[], Some(1), &[]));
        assert_eq!(layers_per_gpu(&plan), [(1, 39)]);
        assert!(plan.reason.contains("on GPU 1 (NVIDIA GeForce RTX 3090): 23.4 GiB free"), "{}", plan.reason);
        // The first of --devices when no main GPU is named.
        let plan = plan_with("four-a100-80gb", &seventy_b(), &selection(SplitMode::None, &[3, 1], None, &[]));
        assert_eq!(layers_per_gpu(&plan), [(3, 81)]);
    }

    #[test]
    fn tensor_split_weights_the_plan() {
        let plan = plan_with("two-rtx-3090", &seven_b(8, 32768), &selection(SplitMode::Layer, &[], None, &[3.0, 1.0]));
        assert_eq!(layers_per_gpu(&plan), [(0, 25), (1, 8)]);
        assert!(plan.reason.ends_with("split 3:1 by --tensor-split"), "{}", plan.reason);
        // Giving most to the 3060 costs layers: it fills up first.
        let plan = plan_with("rtx-4090-rtx-3060", &seventy_b(), &selection(SplitMode::Layer, &[], None, &[1.0, 3.0]));
        assert_eq!(plan.gpu_layers, 26, "{}", plan.reason);
        assert_eq!(layers_per_gpu(&plan), [(0, 7), (1, 19)]);
        assert_consistent(&plan);
        // A zero keeps a GPU out of the split.
        let plan =
            plan_with("four-a100-80gb", &seventy_b(), &selection(SplitMode::Layer, &[], None, &[1.0, 0.0, 1.0, 0.0]));
        assert_eq!(layers_per_gpu(&plan), [(0, 41), (1, 0), (2, 40), (3, 0)]);
    }

    #[test]
    fn a_layer_count_set_by_hand_is_placed_like_a_plan() {
        let gpus = machine("two-rtx-3090").gpus;
        let shares = place_gpu_layers(&seventy_b(), &gpus, &GpuSelection::default(), 8192, 20);
        assert_eq!(shares.iter().map(|share| (share.index, share.layers)).collect::<Vec<_>>(), [(0, 10), (1, 10)]);
        // Ten repeating layers on GPU 0; nine and the output layer on GPU 1.
        assert_eq!(shares[0].used_bytes, 10 * 532 * MIB);
        assert_eq!(shares[1].used_bytes, 9 * 532 * MIB + 800 * MIB);
    }

    #[test]
    fn selections_are_checked_against_the_gpus() {
        let gpus = machine("two-rtx-3090").gpus;
        let error = |selection: GpuSelection| selection.check(&gpus).unwrap_err().to_string();
        assert_eq!(
            error(selection(SplitMode::Layer, &[0, 2], None, &[])),
            "--devices names GPU 2, but this machine has GPU 0, 1"
        );
        assert_eq!(error(selection(SplitMode::Layer, &[1, 1], None, &[])), "--devices names GPU 1 twice");
        assert!(error(selection(SplitMode::None, &[], Some(4), &[])).starts_with("--main-gpu 4 is not a GPU"));
        assert_eq!(error(selection(SplitMode::None, &[1], Some(0), &[])), "--main-gpu 0 is not among --devices 1");
        assert_eq!(
            error(selection(SplitMode::Layer, &[], None, &[1.0, 1.0, 1.0])),
            "--tensor-split gives 3 proportions for 2 GPUs: give one per GPU used"
        );
        assert!(error(selection(SplitMode::Layer, &[1], None, &[1.0, 1.0])).contains("2 proportions for 1 GPUs"));
        assert!(error(selection(SplitMode::Layer, &[], None, &[0.0, 0.0])).contains("at least one proportion"));
        assert!(error(selection(SplitMode::Layer, &[], None, &[-1.0, 2.0])).contains("0 or more"));
        assert!(error(selection(SplitMode::Layer, &[], None, &[f64::NAN, 2.0])).contains("0 or more"));

        let fine = selection(SplitMode::Row, &[1, 0], Some(1), &[3.0, 1.0]);
        assert!(fine.check(&gpus).is_ok());
        assert!(fine.is_set() && !GpuSelection::default().is_set());
        // Without detected GPUs there is nothing to check indices against,
        // but the flags must still agree with each other.
        assert!(selection(SplitMode::Layer, &[], Some(3), &[1.0, 2.0, 3.0]).check(&[]).is_ok());
        assert!(selection(SplitMode::Layer, &[3], None, &[1.0, 2.0]).check(&[]).is_err());
        assert!(selection(SplitMode::None, &[3], Some(2), &[]).check(&[]).is_err());
    }

    proptest! {
        #[test]
        fn multi_gpu_plans_fit_every_gpu_in_proportion(
            layer_bytes in prop::collection::vec(0u64..(2 * GIB), 1..100),
            output_bytes in 0u64..(4 * GIB),
            kv_bytes_per_token in 0u64..(4 * MIB),
            context_size in 1u32..65_536,
            memories in prop::collection::vec(
                (0u64..(100 * GIB)).prop_flat_map(|total| (Just(total), 0..=total)),
                1..5,
            ),
        ) {
            let footprint = ModelFootprint {
                layers: u32::try_from(layer_bytes.len()).unwrap(),
                layer_bytes,
                output_bytes,
                kv_bytes_per_token,
                context_length_train: 0,
            };
            let gpus: Vec<GpuInfo> = memories
                .iter()
                .zip(0..)
                .map(|(&(total_bytes, free_bytes), index)| GpuInfo { index, name: "any".into(), backend: "CUDA".into(), total_bytes, free_bytes })
                .collect();
            let plan = plan_on(&footprint, &gpus, context_size);
            prop_assert!(plan.gpu_layers <= footprint.layers + 1);
            prop_assert_eq!(plan.split.len(), gpus.len());
            prop_assert_eq!(plan.split.iter().map(|share| share.layers).sum::<u32>(), plan.gpu_layers);
            // Whatever the split, the bytes placed are those of the layers offloaded.
            let used: u128 = plan.split.iter().map(|share| u128::from(share.used_bytes)).sum();
            prop_assert_eq!(used, planned_bytes(&footprint, plan.gpu_layers, context_size));
            let free_total: f64 = gpus.iter().map(|gpu| gpu.free_bytes as f64).sum();
            for (share, gpu) in plan.split.iter().zip(&gpus) {
                let budget = gpu.free_bytes.saturating_sub((512 * MIB).max(gpu.total_bytes / 10));
                prop_assert_eq!(share.budget_bytes, budget);
                prop_assert!(share.used_bytes <= budget);
                // Cumulative cuts give each GPU its share of the layers, give or take one.
                if free_total > 0.0 {
                    let expected = f64::from(plan.gpu_layers) * gpu.free_bytes as f64 / free_total;
                    prop_assert!((f64::from(share.layers) - expected).abs() <= 1.001, "{:?}", plan.split);
                }
            }
        }
    }

    /// Bytes a plan puts on one GPU, recomputed independently of the planner:
    /// the output layer, then the last `gpu_layers - 1` layers with their KV.
    fn planned_bytes(footprint: &ModelFootprint, gpu_layers: u32, context_size: u32) -> u128 {
        let kv_total = u128::from(footprint.kv_bytes_per_token) * u128::from(context_size);
        let kv_per_layer = kv_total.div_ceil(u128::from(footprint.layers.max(1)));
        let layers = gpu_layers.saturating_sub(1).min(footprint.layers) as usize;
        let last = &footprint.layer_bytes[footprint.layer_bytes.len() - layers..];
        let weights: u128 = last.iter().map(|&bytes| u128::from(bytes)).sum();
        let output = if gpu_layers > 0 { u128::from(footprint.output_bytes) } else { 0 };
        weights + kv_per_layer * layers as u128 + output
    }

    proptest! {
        #[test]
        fn plans_never_exceed_the_budget(
            layer_bytes in prop::collection::vec(0u64..(2 * GIB), 1..100),
            output_bytes in 0u64..(4 * GIB),
            kv_bytes_per_token in 0u64..(4 * MIB),
            context_size in 1u32..131_072,
            (total_bytes, free_bytes) in (0u64..(200 * GIB))
                .prop_flat_map(|total| (Just(total), 0..=total)),
        ) {
            let footprint = ModelFootprint {
                layers: u32::try_from(layer_bytes.len()).unwrap(),
                layer_bytes,
                output_bytes,
                kv_bytes_per_token,
                context_length_train: 0,
            };
            let gpu = GpuInfo { index: 0, name: "any".into(), backend: "CUDA".into(), total_bytes, free_bytes };
            let plan = plan_on(&footprint, std::slice::from_ref(&gpu), context_size);

            let budget = free_bytes.saturating_sub((512 * MIB).max(total_bytes / 10));
            prop_assert!(plan.gpu_layers <= footprint.layers + 1);
            prop_assert!(planned_bytes(&footprint, plan.gpu_layers, context_size) <= u128::from(budget));
            // And the plan is greedy: one more layer (or the output layer) would not fit.
            if plan.gpu_layers <= footprint.layers {
                prop_assert!(
                    planned_bytes(&footprint, plan.gpu_layers + 1, context_size) > u128::from(budget)
                );
            }
        }
    }
}
