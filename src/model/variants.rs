//! Choosing among quantizations of one model kept side by side (`--mode`).
//!
//! Files such as `X.Q4_0.gguf` and `X.Q8_0.gguf` in one folder are taken for
//! the same model at different quantizations when their names differ only in
//! the quantization suffix and their metadata agree on the architecture and
//! the parameter count. `fast` picks the smallest (less memory to read per
//! token, so faster decode), `quality` the largest (fewer bits lost). The file
//! names are only a hint; the metadata decides. Writing new quantizations is
//! [`super::quantize`]'s job.

use std::fmt;
use std::path::Path;

use super::info::{FILE_TYPE_NAMES, ModelInfo, format_mb};

/// Which quantization of a model to run, when several sit side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelMode {
    /// The smallest file: fastest decode, least memory.
    Fast,
    /// The largest file: the least quantization loss.
    Quality,
}

impl crate::choice::Choice for ModelMode {
    const ALL: &'static [Self] = &[Self::Fast, Self::Quality];
    fn name(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Quality => "quality",
        }
    }
}

impl fmt::Display for ModelMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(crate::choice::Choice::name(*self))
    }
}

/// The model a mode chose and what it chose among.
#[derive(Debug, Clone)]
pub struct ModeChoice {
    /// The mode asked for.
    pub mode: ModelMode,
    /// The chosen file.
    pub model: ModelInfo,
    /// Quantizations of the model found, the one asked for included.
    pub candidates: usize,
    /// The model's name without its quantization suffix.
    pub base_name: String,
}

impl ModeChoice {
    /// One line for stderr saying what was chosen and why.
    pub fn note(&self) -> String {
        let model = &self.model;
        if self.candidates <= 1 {
            return format!(
                "--mode {}: no other quantization of {} beside it; using {} as is",
                self.mode, self.base_name, model.file_name
            );
        }
        let extreme = match self.mode {
            ModelMode::Fast => "smallest",
            ModelMode::Quality => "largest",
        };
        format!(
            "--mode {}: using {} ({}, {}), the {extreme} of {} quantizations of {}",
            self.mode,
            model.file_name,
            model.quantization,
            format_mb(model.file_size_bytes),
            self.candidates,
            self.base_name
        )
    }
}

/// Extra suffixes seen in file names that are not `general.file_type` names.
const EXTRA_SUFFIXES: [&str; 4] = ["Q3_K", "Q4_K", "Q5_K", "Q8_K"];

/// Splits a GGUF file name into the model's base name and its quantization
/// suffix: `X.Q4_1.gguf` and `x-q4_k_m.gguf` give `X`/`Q4_1` and `x`/`q4_k_m`.
/// `None` when the name carries no known quantization.
pub fn split_quantization(file_name: &str) -> Option<(&str, &str)> {
    let stem = file_name.len().checked_sub(".gguf".len()).and_then(|cut| {
        let (stem, extension) = file_name.split_at_checked(cut)?;
        extension.eq_ignore_ascii_case(".gguf").then_some(stem)
    })?;
    let separator = stem.rfind(['.', '-'])?;
    let (base, suffix) = (&stem[..separator], &stem[separator + 1..]);
    let known = FILE_TYPE_NAMES.iter().map(|(_, name)| *name).chain(EXTRA_SUFFIXES);
    let is_quantization = known.into_iter().any(|name| name.eq_ignore_ascii_case(suffix));
    (is_quantization && !base.is_empty()).then_some((base, suffix))
}

/// Picks the quantization of `model` that `mode` asks for among the GGUF
/// files in its folder. Siblings that do not read as the same model are
/// skipped (logged); on a tie the model asked for is kept.
pub fn choose(model: ModelInfo, mode: ModelMode) -> ModeChoice {
    let Some((base, _)) = split_quantization(&model.file_name) else {
        let base_name = model.file_name.clone();
        return ModeChoice { mode, model, candidates: 1, base_name };
    };
    let base_name = base.to_owned();
    let siblings = siblings(&model, &base_name);
    let candidates = 1 + siblings.len();
    let mut chosen = model;
    for sibling in siblings {
        let better = match mode {
            ModelMode::Fast => sibling.file_size_bytes < chosen.file_size_bytes,
            ModelMode::Quality => sibling.file_size_bytes > chosen.file_size_bytes,
        };
        if better {
            chosen = sibling;
        }
    }
    ModeChoice { mode, model: chosen, candidates, base_name }
}

/// The other files in `model`'s folder named `base` plus a quantization
/// suffix whose metadata describe the same model.
fn siblings(model: &ModelInfo, base: &str) -> Vec<ModelInfo> {
    let dir = model.path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "cannot list the model's folder");
            return Vec::new();
        }
    };
    let mut found: Vec<ModelInfo> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            let name = path.file_name().and_then(|name| name.to_str());
            name.and_then(split_quantization).is_some_and(|(other, _)| other == base)
                && name != Some(model.file_name.as_str())
                && path.is_file()
        })
        .filter_map(|path| match ModelInfo::read(&path) {
            Ok(info) if info.architecture == model.architecture && info.parameters == model.parameters => Some(info),
            Ok(info) => {
                tracing::warn!(path = %path.display(), architecture = info.architecture, parameters = info.parameters,
                    "skipping a file named like another quantization of the model but describing another model");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "skipping an unreadable file named like another quantization of the model");
                None
            }
        })
        .collect();
    // Directory order is arbitrary; sorting makes ties resolve the same way every time.
    found.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gguf::test_writer as writer;
    use crate::model::gguf::{GgmlType, MetadataValue};

    #[test]
    fn names_split_into_base_and_quantization() {
        assert_eq!(split_quantization("SmolLM2-135M-Instruct.Q4_1.gguf"), Some(("SmolLM2-135M-Instruct", "Q4_1")));
        assert_eq!(split_quantization("qwen2.5-0.5b-instruct-q4_k_m.gguf"), Some(("qwen2.5-0.5b-instruct", "q4_k_m")));
        assert_eq!(split_quantization("gemma-3-270m-Q8_0.GGUF"), Some(("gemma-3-270m", "Q8_0")));
        assert_eq!(split_quantization("model.F16.gguf"), Some(("model", "F16")));
        assert_eq!(split_quantization("model.Q4_K.gguf"), Some(("model", "Q4_K")));
        assert_eq!(split_quantization("SmolLM2-135M-Instruct.gguf"), None);
        assert_eq!(split_quantization("Q4_0.gguf"), None);
        assert_eq!(split_quantization(".Q4_0.gguf"), None);
        assert_eq!(split_quantization("model.Q4_0.bin"), None);
        assert_eq!(split_quantization("gguf"), None);
    }

    /// Writes a tiny model whose weights are all of `weights` type.
    fn write_model(dir: &Path, name: &str, architecture: &str, weights: GgmlType, width: u64) {
        let kvs = [
            ("general.architecture", MetadataValue::String(architecture.into())),
            (if architecture == "llama" { "llama.block_count" } else { "other.block_count" }, MetadataValue::U32(1)),
        ];
        let tensors =
            [("token_embd.weight", &[width, 32][..], weights), ("blk.0.attn_q.weight", &[width, width], weights)];
        std::fs::write(dir.join(name), writer::file(&kvs, &tensors)).expect("write model");
    }

    fn pick(dir: &Path, name: &str, mode: ModelMode) -> ModeChoice {
        choose(ModelInfo::read(dir.join(name)).expect("valid model"), mode)
    }

    #[test]
    fn fast_takes_the_smallest_and_quality_the_largest_sibling() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path();
        write_model(path, "X.Q4_1.gguf", "llama", GgmlType::Q4_1, 64);
        write_model(path, "X.Q4_0.gguf", "llama", GgmlType::Q4_0, 64);
        write_model(path, "X.Q8_0.gguf", "llama", GgmlType::Q8_0, 64);
        // Named like siblings but another model: other architecture, other size, not a model.
        write_model(path, "X.Q2_K.gguf", "other", GgmlType::Q4_0, 64);
        write_model(path, "X.Q3_K_M.gguf", "llama", GgmlType::Q4_0, 32);
        std::fs::write(path.join("X.Q6_K.gguf"), b"GGUF broken").expect("write");
        // Same model, not named as a sibling.
        write_model(path, "Y.Q4_0.gguf", "llama", GgmlType::Q4_0, 64);
        write_model(path, "X.gguf", "llama", GgmlType::Q4_0, 64);

        let fast = pick(path, "X.Q4_1.gguf", ModelMode::Fast);
        assert_eq!(fast.model.file_name, "X.Q4_0.gguf");
        assert_eq!(fast.candidates, 3);
        assert!(fast.note().contains("the smallest of 3 quantizations of X"), "{}", fast.note());

        let quality = pick(path, "X.Q4_1.gguf", ModelMode::Quality);
        assert_eq!(quality.model.file_name, "X.Q8_0.gguf");
        assert_eq!(pick(path, "X.Q8_0.gguf", ModelMode::Quality).model.file_name, "X.Q8_0.gguf");
        assert_eq!(pick(path, "X.Q8_0.gguf", ModelMode::Fast).model.file_name, "X.Q4_0.gguf");
    }

    #[test]
    fn a_lone_model_is_used_as_is_with_a_note() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_model(dir.path(), "X.Q4_1.gguf", "llama", GgmlType::Q4_1, 64);
        write_model(dir.path(), "plain.gguf", "llama", GgmlType::Q4_1, 64);
        for name in ["X.Q4_1.gguf", "plain.gguf"] {
            let choice = pick(dir.path(), name, ModelMode::Fast);
            assert_eq!(choice.model.file_name, name);
            assert_eq!(choice.candidates, 1);
            assert!(choice.note().ends_with("as is"), "{}", choice.note());
        }
    }
}
