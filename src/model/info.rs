//! What a GGUF model is: architecture, size, shape and quantization.
//!
//! [`ModelInfo`] is read from a validated [`GgufFile`]'s metadata and tensor
//! table. It feeds `workly model info` (as text or JSON) and the hardware
//! policies, which need the per-layer weight bytes to decide GPU offload and the
//! KV-cache bytes per token to size the context.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::gguf::{GgufError, GgufFile, MetadataValue};

/// Bytes in a (decimal) megabyte, the unit sizes are shown in.
const BYTES_PER_MB: f64 = 1_000_000.0;

/// Bytes per element of an f16 KV cache.
const F16_BYTES: u64 = 2;

/// llama.cpp's names for `general.file_type` values (`enum llama_ftype`), in the
/// spelling of its `llama-quantize` tool.
pub(crate) const FILE_TYPE_NAMES: [(u64, &str); 37] = [
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (4, "Q4_1_SOME_F16"),
    (7, "Q8_0"),
    (8, "Q5_0"),
    (9, "Q5_1"),
    (10, "Q2_K"),
    (11, "Q3_K_S"),
    (12, "Q3_K_M"),
    (13, "Q3_K_L"),
    (14, "Q4_K_S"),
    (15, "Q4_K_M"),
    (16, "Q5_K_S"),
    (17, "Q5_K_M"),
    (18, "Q6_K"),
    (19, "IQ2_XXS"),
    (20, "IQ2_XS"),
    (21, "Q2_K_S"),
    (22, "IQ3_XS"),
    (23, "IQ3_XXS"),
    (24, "IQ1_S"),
    (25, "IQ4_NL"),
    (26, "IQ3_S"),
    (27, "IQ3_M"),
    (28, "IQ2_S"),
    (29, "IQ2_M"),
    (30, "IQ4_XS"),
    (31, "IQ1_M"),
    (32, "BF16"),
    (36, "TQ1_0"),
    (37, "TQ2_0"),
    (38, "MXFP4_MOE"),
    (39, "NVFP4"),
    (40, "Q1_0"),
    (41, "Q2_0"),
];

/// llama.cpp marks a file type it had to guess with this bit; it is not part of the name.
const FILE_TYPE_GUESSED_FLAG: u64 = 1024;

/// A description of one GGUF model.
///
/// Hyperparameters the file does not state are 0 (llama.cpp requires them for
/// every architecture it runs, so this only happens for unusual files).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Where the file is.
    #[serde(serialize_with = "serialize_path")]
    pub path: PathBuf,
    /// The file's name without its directory.
    pub file_name: String,
    /// Size of the whole file.
    pub file_size_bytes: u64,
    /// GGUF format version (2 or 3).
    pub gguf_version: u32,
    /// `general.architecture`, e.g. `llama` or `gemma3`.
    pub architecture: String,
    /// `general.name`, the model's display name, if the file has one.
    pub name: Option<String>,
    /// Number of weights: the sum of all tensors' element counts.
    pub parameters: u64,
    /// Transformer blocks (`{arch}.block_count`).
    pub layers: u32,
    /// Context length the model was trained for (`{arch}.context_length`), in tokens.
    pub context_length: u32,
    /// Hidden size (`{arch}.embedding_length`).
    pub embedding_length: u32,
    /// Attention (query) heads (`{arch}.attention.head_count`; the largest, if per layer).
    pub head_count: u32,
    /// Key/value heads (`{arch}.attention.head_count_kv`, else `head_count`).
    pub head_count_kv: u32,
    /// Elements per key head (`{arch}.attention.key_length`, else embedding/heads).
    pub key_length: u32,
    /// Elements per value head (`{arch}.attention.value_length`, else embedding/heads).
    pub value_length: u32,
    /// Sliding-window attention span in tokens (`{arch}.attention.sliding_window`), if any.
    pub sliding_window: Option<u32>,
    /// Quantization, in llama.cpp's naming (`Q4_1`, `Q4_K_M`...).
    pub quantization: String,
    /// The Jinja chat template (`tokenizer.chat_template`); JSON reports only say
    /// whether there is one.
    #[serde(rename = "has_chat_template", serialize_with = "serialize_is_some")]
    pub chat_template: Option<String>,
    /// Bytes of the tensors of each transformer block (`blk.N.*`), indexed by N.
    pub layer_bytes: Vec<u64>,
    /// Bytes of every tensor outside the blocks (embeddings, output, norms).
    pub output_bytes: u64,
}

fn serialize_path<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    // Lossy, so that a non-UTF-8 path still produces a report.
    serializer.serialize_str(&path.to_string_lossy())
}

fn serialize_is_some<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bool(value.is_some())
}

impl ModelInfo {
    /// Reads and validates the GGUF file at `path` and describes it.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        Self::from_gguf(&GgufFile::open(path)?)
    }

    /// Describes an already parsed file; fails only if it names no architecture,
    /// without which it is not a model llama.cpp can run.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, GgufError> {
        let architecture = file
            .get_str("general.architecture")
            .ok_or_else(|| GgufError::Invalid {
                path: file.path().to_path_buf(),
                reason: "it names no model architecture (general.architecture is missing)".to_owned(),
            })?
            .to_owned();
        // Hyperparameters are u32 in GGUF; a value beyond that is treated as absent.
        let arch_u32 =
            |key: &str| file.get_u64(&format!("{architecture}.{key}")).and_then(|value| u32::try_from(value).ok());
        let arch_max = |key: &str| {
            file.get(&format!("{architecture}.{key}"))
                .and_then(largest_integer)
                .and_then(|value| u32::try_from(value).ok())
        };

        let block_count = arch_u32("block_count");
        let (layer_bytes, output_bytes) = split_tensor_bytes(file, block_count.unwrap_or(0));
        let layers = block_count.unwrap_or_else(|| u32::try_from(layer_bytes.len()).unwrap_or(u32::MAX));
        let embedding_length = arch_u32("embedding_length").unwrap_or(0);
        let head_count = arch_max("attention.head_count").unwrap_or(0);
        let head_count_kv = arch_max("attention.head_count_kv").unwrap_or(head_count);
        let head_length = embedding_length.checked_div(head_count).unwrap_or(0);

        Ok(Self {
            path: file.path().to_path_buf(),
            file_name: file.path().file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default(),
            file_size_bytes: file.file_size_bytes(),
            gguf_version: file.version(),
            name: file.get_str("general.name").map(str::to_owned),
            parameters: file.tensors().iter().fold(0_u64, |sum, tensor| sum.saturating_add(tensor.element_count())),
            layers,
            context_length: arch_u32("context_length").unwrap_or(0),
            embedding_length,
            head_count,
            head_count_kv,
            key_length: arch_u32("attention.key_length").unwrap_or(head_length),
            value_length: arch_u32("attention.value_length").unwrap_or(head_length),
            sliding_window: arch_u32("attention.sliding_window"),
            quantization: quantization(file),
            chat_template: file.get_str("tokenizer.chat_template").map(str::to_owned),
            layer_bytes,
            output_bytes,
            architecture,
        })
    }

    /// Bytes one token occupies in an f16 KV cache across all layers:
    /// `2 * layers * head_count_kv * (key_length + value_length)`.
    pub fn kv_bytes_per_token(&self) -> u64 {
        let per_head_elements = u64::from(self.key_length) + u64::from(self.value_length);
        F16_BYTES
            .saturating_mul(self.layers.into())
            .saturating_mul(self.head_count_kv.into())
            .saturating_mul(per_head_elements)
    }

    /// A human-readable report for `workly model info`.
    pub fn render_text(&self) -> String {
        let mut text = String::new();
        let title = self.name.as_deref().unwrap_or(&self.file_name);
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{title} ({}, {})", self.architecture, self.quantization);
        let mut line = |label: &str, value: String| {
            let _ = writeln!(text, "  {label:<16}{value}");
        };
        line("file", self.path.display().to_string());
        line("size", format_mb(self.file_size_bytes));
        line("GGUF version", self.gguf_version.to_string());
        line("parameters", format_count(self.parameters));
        line("layers", self.layers.to_string());
        line("context length", format!("{} tokens", self.context_length));
        line("embedding", self.embedding_length.to_string());
        line(
            "attention heads",
            format!(
                "{} ({} key/value), head length {}/{}",
                self.head_count, self.head_count_kv, self.key_length, self.value_length
            ),
        );
        line(
            "sliding window",
            self.sliding_window.map_or_else(|| "none".to_owned(), |window| format!("{window} tokens")),
        );
        line("KV cache (f16)", format!("{:.1} KB per token", self.kv_bytes_per_token() as f64 / 1000.0));
        let layer_total_bytes = self.layer_bytes.iter().sum::<u64>();
        let largest_layer_bytes = self.layer_bytes.iter().copied().max().unwrap_or(0);
        line(
            "weights",
            format!(
                "{} in layers (largest {}), {} outside them",
                format_mb(layer_total_bytes),
                format_mb(largest_layer_bytes),
                format_mb(self.output_bytes)
            ),
        );
        line("chat template", if self.chat_template.is_some() { "yes" } else { "no" }.to_owned());
        text
    }
}

/// An integer value, or the largest element of an integer array (per-layer
/// head counts are stored as arrays by some architectures).
fn largest_integer(value: &MetadataValue) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_array().and_then(|array| array.to_u64s()).and_then(|values| values.into_iter().max()))
}

/// Splits tensor bytes into per-block totals (at least `block_count` of them,
/// so that blocks without tensors still have an entry) and the rest.
fn split_tensor_bytes(file: &GgufFile, block_count: u32) -> (Vec<u64>, u64) {
    // A layer index can be at most the tensor count (each layer has a tensor);
    // larger ones come from a broken file and must not size an allocation.
    let max_layers = file.tensors().len() as u64;
    let mut per_layer: BTreeMap<u64, u64> = BTreeMap::new();
    let mut output_bytes = 0_u64;
    for tensor in file.tensors() {
        match layer_index(tensor.name()) {
            Some(layer) if layer < max_layers => {
                let bytes = per_layer.entry(layer).or_default();
                *bytes = bytes.saturating_add(tensor.size_bytes());
            }
            _ => output_bytes = output_bytes.saturating_add(tensor.size_bytes()),
        }
    }
    let layer_count =
        per_layer.keys().next_back().map_or(0, |last| last + 1).max(u64::from(block_count).min(max_layers));
    let layer_bytes = (0..layer_count).map(|layer| per_layer.get(&layer).copied().unwrap_or(0)).collect();
    (layer_bytes, output_bytes)
}

/// N for a tensor named `blk.N.something`.
fn layer_index(tensor_name: &str) -> Option<u64> {
    let rest = tensor_name.strip_prefix("blk.")?;
    let (index, _) = rest.split_once('.')?;
    index.parse().ok()
}

/// The quantization name: from `general.file_type`, else the tensor type that
/// holds the most bytes.
fn quantization(file: &GgufFile) -> String {
    let named = file.get_u64("general.file_type").and_then(|file_type| {
        let file_type = file_type & !FILE_TYPE_GUESSED_FLAG;
        FILE_TYPE_NAMES.iter().find(|(id, _)| *id == file_type).map(|(_, name)| (*name).to_owned())
    });
    named.unwrap_or_else(|| {
        let mut bytes_by_type = BTreeMap::new();
        for tensor in file.tensors() {
            let bytes: &mut u64 = bytes_by_type.entry(tensor.ggml_type()).or_default();
            *bytes = bytes.saturating_add(tensor.size_bytes());
        }
        bytes_by_type
            .into_iter()
            .max_by_key(|(_, bytes)| *bytes)
            .map_or_else(|| "unknown".to_owned(), |(ggml_type, _)| ggml_type.name().to_owned())
    })
}

/// `98.4 MB`.
pub fn format_mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / BYTES_PER_MB)
}

/// `134.5 M`, `1.2 B`, `512`.
fn format_count(count: u64) -> String {
    let count_f64 = count as f64;
    match count {
        0..1_000 => count.to_string(),
        1_000..1_000_000 => format!("{:.1} K", count_f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} M", count_f64 / 1e6),
        _ => format!("{:.1} B", count_f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::gguf::test_writer as writer;
    use crate::model::gguf::{GgmlType, MetadataArray};

    /// Writes a small model file and describes it.
    fn describe(kvs: &[(&str, MetadataValue)], tensors: &[(&str, &[u64], GgmlType)]) -> ModelInfo {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tiny.gguf");
        std::fs::write(&path, writer::file(kvs, tensors)).expect("write");
        ModelInfo::read(&path).expect("valid model")
    }

    fn tiny_tensors() -> Vec<(&'static str, &'static [u64], GgmlType)> {
        vec![
            ("token_embd.weight", &[64, 10], GgmlType::Q8_0),
            ("blk.0.attn_q.weight", &[64, 64], GgmlType::Q4_1),
            ("blk.0.attn_norm.weight", &[64], GgmlType::F32),
            ("blk.1.attn_q.weight", &[64, 64], GgmlType::Q4_1),
            ("output_norm.weight", &[64], GgmlType::F32),
        ]
    }

    #[test]
    fn describes_a_llama_style_model() {
        let kvs = [
            ("general.architecture", MetadataValue::String("llama".into())),
            ("general.name", MetadataValue::String("Tiny".into())),
            ("general.file_type", MetadataValue::U32(15)),
            ("llama.block_count", MetadataValue::U32(2)),
            ("llama.context_length", MetadataValue::U32(2048)),
            ("llama.embedding_length", MetadataValue::U32(64)),
            ("llama.attention.head_count", MetadataValue::U32(4)),
            ("llama.attention.head_count_kv", MetadataValue::U32(2)),
            ("tokenizer.chat_template", MetadataValue::String("{{ x }}".into())),
        ];
        let info = describe(&kvs, &tiny_tensors());
        assert_eq!(info.file_name, "tiny.gguf");
        assert_eq!(info.architecture, "llama");
        assert_eq!(info.name.as_deref(), Some("Tiny"));
        assert_eq!(info.quantization, "Q4_K_M");
        assert_eq!(info.parameters, 640 + 4096 + 64 + 4096 + 64);
        assert_eq!((info.layers, info.context_length), (2, 2048));
        assert_eq!((info.head_count, info.head_count_kv), (4, 2));
        assert_eq!((info.key_length, info.value_length), (16, 16));
        assert_eq!(info.sliding_window, None);
        assert_eq!(info.layer_bytes, vec![128 * 20 + 256, 128 * 20]);
        assert_eq!(info.output_bytes, 20 * 34 + 256);
        assert_eq!(info.kv_bytes_per_token(), 2 * 2 * 2 * (16 + 16));

        let json = serde_json::to_value(&info).expect("json");
        assert_eq!(json["has_chat_template"], serde_json::Value::Bool(true));
        assert!(json.get("chat_template").is_none());
        assert_eq!(json["layers"], 2);

        let text = info.render_text();
        assert!(text.starts_with("Tiny (llama, Q4_K_M)\n"), "{text}");
        assert!(text.contains("chat template   yes"), "{text}");
    }

    #[test]
    fn falls_back_when_metadata_is_sparse() {
        let kvs = [
            ("general.architecture", MetadataValue::String("gemma3".into())),
            ("gemma3.embedding_length", MetadataValue::U32(64)),
            ("gemma3.attention.head_count", MetadataValue::Array(MetadataArray::I32(vec![2, 8, 4]))),
            ("gemma3.attention.key_length", MetadataValue::U32(32)),
            ("gemma3.attention.sliding_window", MetadataValue::U32(512)),
        ];
        let info = describe(&kvs, &tiny_tensors());
        // No file type: the type holding the most bytes names the quantization.
        assert_eq!(info.quantization, "Q4_1");
        assert_eq!(info.layers, 2, "counted from the blk.N tensors");
        assert_eq!(info.context_length, 0);
        assert_eq!((info.head_count, info.head_count_kv), (8, 8));
        assert_eq!((info.key_length, info.value_length), (32, 8));
        assert_eq!(info.sliding_window, Some(512));
        assert_eq!(info.chat_template, None);
        assert!(info.render_text().starts_with("tiny.gguf (gemma3, Q4_1)"));
    }

    #[test]
    fn a_file_without_architecture_is_not_a_model() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("vocab.gguf");
        std::fs::write(&path, writer::file(&[], &tiny_tensors())).expect("write");
        let error = ModelInfo::read(&path).expect_err("no architecture");
        assert!(error.to_string().contains("general.architecture"), "{error}");
    }

    #[test]
    fn absurd_layer_indices_do_not_size_allocations() {
        let kvs = [
            ("general.architecture", MetadataValue::String("llama".into())),
            ("llama.block_count", MetadataValue::U32(u32::MAX)),
        ];
        let tensors: [(&str, &[u64], GgmlType); 2] =
            [("blk.0.a", &[4], GgmlType::F32), ("blk.4000000000.a", &[4], GgmlType::F32)];
        let info = describe(&kvs, &tensors);
        assert_eq!(info.layer_bytes.len(), 2);
        assert_eq!(info.output_bytes, 16);
        assert_eq!(info.layers, u32::MAX);
    }

    #[test]
    fn counts_and_sizes_are_formatted_for_people() {
        assert_eq!(format_count(512), "512");
        assert_eq!(format_count(12_345), "12.3 K");
        assert_eq!(format_count(134_515_008), "134.5 M");
        assert_eq!(format_count(7_241_732_096), "7.2 B");
        assert_eq!(format_mb(98_362_432), "98.4 MB");
    }

    #[test]
    fn layer_indices_come_from_block_names() {
        assert_eq!(layer_index("blk.0.attn_q.weight"), Some(0));
        assert_eq!(layer_index("blk.29.ffn_down.weight"), Some(29));
        assert_eq!(layer_index("token_embd.weight"), None);
        assert_eq!(layer_index("blk.x.attn_q.weight"), None);
        assert_eq!(layer_index("blk.3"), None);
    }

    #[test]
    fn file_type_names_are_unique() {
        let mut ids: Vec<u64> = FILE_TYPE_NAMES.iter().map(|(id, _)| *id).collect();
        ids.dedup();
        assert_eq!(ids.len(), FILE_TYPE_NAMES.len());
        assert!(FILE_TYPE_NAMES.contains(&(15, "Q4_K_M")));
    }
}
