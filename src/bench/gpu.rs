//! `workly bench gpu`: the data behind the GPU layer count. It sweeps
//! llama.cpp's `n_gpu_layers` from 0 (CPU only) to every layer and the
//! output one, loading the model at each count and recording prefill and
//! decode tokens/s and the VRAM the load took (the GPUs' free memory before
//! and after, as llama.cpp's backend reports it). Then it checks the count Workly picks by
//! itself: its decode speed must be within 5 % of the best count whose VRAM
//! fits the budget Workly keeps to (free VRAM less the headroom).
//!
//! It needs a GPU build (CUDA or Vulkan) and a GPU: without them it says so
//! and exits 2, since the layer count means nothing to a CPU-only llama.cpp.

use super::{decode_once, measure, prefill_once, text_of_tokens};
use crate::config::Prepared;
use crate::hardware::{GpuBackend, GpuInfo, free_vram_bytes, gpu_budget_bytes};
use crate::llm::{Engine, LlmError};
use serde::Serialize;

/// How close the picked count's decode speed must come to the best.
pub const WITHIN: f64 = 0.95;

/// The report of `workly bench gpu`.
#[derive(Debug, Clone, Serialize)]
pub struct GpuBenchReport {
    /// The model file.
    pub model: String,
    /// Its repeating layers (`n_gpu_layers` goes one higher: the output layer).
    pub layers: u32,
    /// The GPUs, as found before the sweep.
    pub gpus: Vec<GpuInfo>,
    /// What the layers may use: free VRAM less headroom, over the GPUs.
    pub budget_bytes: u64,
    /// Runs per figure (after a discarded one).
    pub runs: u32,
    /// One row per layer count measured.
    pub rows: Vec<GpuRow>,
    /// How the count Workly picks compares with the best.
    pub verdict: GpuVerdict,
}

/// One layer count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GpuRow {
    /// llama.cpp's `n_gpu_layers`.
    pub gpu_layers: u32,
    /// 512-token prompt, tokens/s.
    pub prefill_tokens_per_s: f64,
    /// 128 tokens, tokens/s.
    pub decode_tokens_per_s: f64,
    /// VRAM the loaded model and its context took.
    pub vram_used_bytes: u64,
}

/// The count Workly picks against the best that fits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuVerdict {
    /// The count Workly picks by itself, and why.
    pub picked_layers: u32,
    /// Its reason, as `workly doctor` gives it.
    pub picked_reason: String,
    /// The fastest decode among counts within the budget.
    pub best_layers: u32,
    /// Decode at the picked count over decode at the best.
    pub picked_over_best: f64,
    /// Whether that is at least [`WITHIN`].
    pub within_5_percent: bool,
}

/// Why the sweep cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum GpuBenchError {
    /// The binary has no GPU backend.
    #[error("workly bench gpu needs a GPU build (scripts/setup.sh --cuda or --vulkan); this one is {0}")]
    NoGpuBackend(&'static str),
    /// llama.cpp found no GPU.
    #[error("workly bench gpu found no GPU: {0}")]
    NoGpu(String),
}

crate::classed!(BadInput: GpuBenchError);

/// Sweeps the layer counts on this machine's GPUs, from the engine `picked`
/// describes (with the count Workly picks by itself).
pub fn report(picked: &Prepared, runs: u32, step: Option<u32>) -> crate::error::Result<GpuBenchReport> {
    if GpuBackend::BUILT == GpuBackend::Cpu {
        return Err(GpuBenchError::NoGpuBackend(GpuBackend::BUILT.label()).into());
    }
    let hardware = &picked.hardware;
    if hardware.gpus.is_empty() {
        let note = hardware.gpu_note.clone().unwrap_or_else(|| "none listed".to_owned());
        return Err(GpuBenchError::NoGpu(note).into());
    }
    let layers = picked.engine.model.layers;
    let budget_bytes = hardware.gpus.iter().map(gpu_budget_bytes).sum();
    let mut rows = Vec::new();
    for gpu_layers in sweep(layers, step, picked.tuning.gpu_layers) {
        tracing::info!("{gpu_layers} GPU layers");
        let free_before = free_vram_bytes();
        let mut config = picked.engine.clone();
        config.gpu_layers = gpu_layers;
        let engine = Engine::load(config)?;
        let vram_used_bytes = free_before.saturating_sub(free_vram_bytes());
        let prompt = text_of_tokens(&engine, super::llm::PREFILL_TOKENS)?;
        let prefill_tokens_per_s =
            measure(runs, || Ok::<_, LlmError>(prefill_once(&engine, &prompt)?.prefill_tokens_per_s))?;
        let decode_tokens_per_s =
            measure(runs, || Ok::<_, LlmError>(decode_once(&engine, super::llm::DECODE_TOKENS)?.decode_tokens_per_s))?;
        rows.push(GpuRow { gpu_layers, prefill_tokens_per_s, decode_tokens_per_s, vram_used_bytes });
    }
    let verdict = judge(&rows, picked.tuning.gpu_layers, picked.tuning.gpu_reason.clone(), budget_bytes)
        .ok_or_else(|| LlmError::Gpu("no layer count measured fits the VRAM budget".to_owned()))?;
    Ok(GpuBenchReport {
        model: picked.engine.model.path.display().to_string(),
        layers,
        gpus: hardware.gpus.clone(),
        budget_bytes,
        runs,
        rows,
        verdict,
    })
}

/// The layer counts to measure: 0 to `layers + 1` (the output layer too) by
/// `step` (default: every count up to 40 layers, else about 20 counts), the
/// last one and Workly's own pick always among them.
pub fn sweep(layers: u32, step: Option<u32>, picked: u32) -> Vec<u32> {
    let all = layers + 1;
    let step = step.unwrap_or(if all <= 40 { 1 } else { all.div_ceil(20) }).max(1);
    let mut counts: Vec<u32> = (0..=all).step_by(step as usize).collect();
    counts.extend([all, picked.min(all)]);
    counts.sort_unstable();
    counts.dedup();
    counts
}

/// Compares the picked count with the fastest decode among the rows within
/// `budget_bytes`; `None` if no row fits.
pub fn judge(rows: &[GpuRow], picked: u32, reason: String, budget_bytes: u64) -> Option<GpuVerdict> {
    let best = rows
        .iter()
        .filter(|row| row.vram_used_bytes <= budget_bytes)
        .max_by(|a, b| a.decode_tokens_per_s.total_cmp(&b.decode_tokens_per_s))?;
    // Counts above the model's layers all mean "everything": the last row stands for them.
    let at = picked.min(rows.last()?.gpu_layers);
    let at_pick = rows.iter().find(|row| row.gpu_layers == at)?;
    let picked_over_best =
        if best.decode_tokens_per_s > 0.0 { at_pick.decode_tokens_per_s / best.decode_tokens_per_s } else { 0.0 };
    Some(GpuVerdict {
        picked_layers: picked,
        picked_reason: reason,
        best_layers: best.gpu_layers,
        picked_over_best,
        within_5_percent: picked_over_best >= WITHIN,
    })
}

/// The report as a table and a verdict.
pub fn render(report: &GpuBenchReport) -> String {
    let gib = |bytes: u64| bytes as f64 / 1073741824.0;
    let names: Vec<&str> = report.gpus.iter().map(|gpu| gpu.name.as_str()).collect();
    let mut text = format!(
        "{} ({} layers) on {}, budget {:.2} GiB, medians of {} runs\n\
         {:>10} {:>16} {:>16} {:>10}\n",
        report.model,
        report.layers,
        names.join(" + "),
        gib(report.budget_bytes),
        report.runs,
        "GPU layers",
        "prefill tok/s",
        "decode tok/s",
        "VRAM GiB",
    );
    for row in &report.rows {
        text.push_str(&format!(
            "{:>10} {:>16.1} {:>16.1} {:>10.2}\n",
            row.gpu_layers,
            row.prefill_tokens_per_s,
            row.decode_tokens_per_s,
            gib(row.vram_used_bytes)
        ));
    }
    let verdict = &report.verdict;
    text.push_str(&format!(
        "Workly picks {} ({}): {:.3} of the best decode, at {} layers ({})\n",
        verdict.picked_layers,
        verdict.picked_reason,
        verdict.picked_over_best,
        verdict.best_layers,
        if verdict.within_5_percent { "within 5 %" } else { "NOT within 5 %" }
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(gpu_layers: u32, decode: f64, vram_gib: f64) -> GpuRow {
        GpuRow {
            gpu_layers,
            prefill_tokens_per_s: decode * 10.0,
            decode_tokens_per_s: decode,
            vram_used_bytes: (vram_gib * 1073741824.0) as u64,
        }
    }

    #[test]
    fn the_sweep_covers_every_count_of_a_small_model() {
        assert_eq!(sweep(30, None, 31), (0..=31).collect::<Vec<_>>());
        assert_eq!(sweep(3, Some(2), 1), [0, 1, 2, 4]);
    }

    #[test]
    fn a_large_model_is_swept_in_about_twenty_steps_with_the_pick_and_the_end() {
        let counts = sweep(80, None, 37);
        assert!(counts.len() <= 23, "{counts:?}");
        assert!(counts.contains(&0) && counts.contains(&81) && counts.contains(&37), "{counts:?}");
        assert!(counts.windows(2).all(|pair| pair[0] < pair[1]), "{counts:?}");
    }

    /// A hand-written sweep of a 32-layer model on an 8 GiB card (not a
    /// measurement: it checks the arithmetic).
    fn sweep_8gib() -> Vec<GpuRow> {
        vec![row(0, 10.0, 0.3), row(16, 18.0, 2.4), row(28, 30.0, 4.9), row(30, 31.0, 5.3), row(33, 40.0, 6.6)]
    }

    #[test]
    fn the_best_is_the_fastest_that_fits_the_budget() {
        let budget = (5.5 * 1073741824.0) as u64;
        let verdict = judge(&sweep_8gib(), 30, "fits".to_owned(), budget).unwrap();
        assert_eq!(verdict.best_layers, 30, "33 layers are faster but over the budget");
        assert_eq!((verdict.picked_over_best, verdict.within_5_percent), (1.0, true));
        let verdict = judge(&sweep_8gib(), 28, "fits".to_owned(), budget).unwrap();
        assert!((verdict.picked_over_best - 30.0 / 31.0).abs() < 1e-12);
        assert!(verdict.within_5_percent, "30/31 = 0.968");
        let verdict = judge(&sweep_8gib(), 16, "fits".to_owned(), budget).unwrap();
        assert!(!verdict.within_5_percent);
    }

    #[test]
    fn a_pick_past_the_last_count_reads_the_last_row_and_nothing_fitting_is_no_verdict() {
        let verdict = judge(&sweep_8gib(), 999, "all".to_owned(), u64::MAX).unwrap();
        assert_eq!((verdict.best_layers, verdict.picked_over_best), (33, 1.0));
        assert_eq!(judge(&sweep_8gib(), 0, "none".to_owned(), 1), None);
    }
}
