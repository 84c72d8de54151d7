//! `workly::model` on the real test models: the GGUF reader must accept them and
//! describe them the way llama.cpp sees them.

mod common;

use workly::model::{self, GgmlType, GgufError, GgufFile, ModelInfo};

#[test]
fn every_known_model_is_the_file_the_set_up_fetched() {
    for known in model::known::KNOWN {
        let path = common::data_dir().join("models").join(known.file);
        let info = ModelInfo::read(&path).unwrap_or_else(|error| panic!("{}: {error}", known.name));
        assert_eq!(info.file_size_bytes, known.file_bytes, "{}", known.name);
        // The figures of a chat model are of one that answers with a template.
        assert_eq!(info.chat_template.is_some(), known.chats, "{}", known.name);
    }
    let default = ModelInfo::read(common::default_model()).expect("the default model is valid");
    assert_eq!((default.architecture.as_str(), default.quantization.as_str()), ("qwen2", "Q4_K_M"));
}

#[test]
fn the_small_model_is_described_correctly() {
    let path = common::small_model();
    let info = ModelInfo::read(&path).expect("the small model is valid");
    assert_eq!(info.file_name, "SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(info.file_size_bytes, 98_362_432);
    assert_eq!(info.architecture, "llama");
    assert_eq!(info.layers, 30);
    assert_eq!(info.layer_bytes.len(), 30);
    assert_eq!(info.quantization, "Q4_1");
    assert!(info.chat_template.as_deref().is_some_and(|t| t.contains("<|im_start|>")));
    assert_eq!(info.context_length, 8192);
    assert_eq!((info.embedding_length, info.head_count, info.head_count_kv), (576, 9, 3));
    assert_eq!((info.key_length, info.value_length), (64, 64));
    assert_eq!(info.sliding_window, None);
    // llama.cpp reports 134.52 M parameters for this model.
    assert_eq!(info.parameters, 134_515_008);
    assert_eq!(info.kv_bytes_per_token(), 2 * 30 * 3 * (64 + 64));
    // All tensor bytes are accounted for, and they fit in the file.
    let tensor_bytes = info.layer_bytes.iter().sum::<u64>() + info.output_bytes;
    assert!(tensor_bytes < info.file_size_bytes && tensor_bytes > info.file_size_bytes * 9 / 10);

    let json = serde_json::to_value(&info).expect("json");
    assert_eq!(json["has_chat_template"], true);
    assert!(json.get("chat_template").is_none(), "the template text is not in the report");
    assert_eq!(json["quantization"], "Q4_1");

    let text = info.render_text();
    assert!(text.contains("134.5 M"), "{text}");
    assert!(text.contains("98.4 MB"), "{text}");
}

#[test]
fn gemma_has_a_sliding_window_and_q4_k_m() {
    let info = ModelInfo::read(common::gemma_model()).expect("gemma is valid");
    assert_eq!(info.architecture, "gemma3");
    assert_eq!(info.quantization, "Q4_K_M");
    assert_eq!(info.sliding_window, Some(512));
    assert_eq!(info.layers, 18);
    assert_eq!(info.layer_bytes.len(), 18);
    assert_eq!((info.key_length, info.value_length), (256, 256));
    assert_eq!(info.head_count_kv, 1);
    assert!(info.render_text().contains("sliding window  512 tokens"));
}

#[test]
fn tensors_lie_inside_the_file_and_are_aligned() {
    let file = GgufFile::open(common::small_model()).expect("valid");
    assert_eq!(file.version(), 3);
    assert_eq!(file.get_str("general.architecture"), Some("llama"));
    assert_eq!(file.get_u64("llama.block_count"), Some(30));
    let tensors = file.tensors();
    assert!(tensors.iter().any(|t| t.name() == "blk.0.attn_q.weight" && t.ggml_type() == GgmlType::Q4_1));
    for tensor in tensors {
        assert_eq!(tensor.offset_bytes() % file.alignment_bytes(), 0);
        assert!(file.data_offset_bytes() + tensor.offset_bytes() + tensor.size_bytes() <= file.file_size_bytes());
    }
}

#[test]
fn a_truncated_copy_of_a_real_model_is_refused() {
    let bytes = std::fs::read(common::small_model()).expect("read");
    let dir = tempfile::tempdir().expect("temp dir");
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let error = GgufFile::open(&cut).expect_err("truncated");
    assert!(matches!(error, GgufError::Truncated { end_byte, .. } if end_byte == bytes.len() as u64), "{error}");
    assert!(error.to_string().contains("tensor data ends at byte 98362432"), "{error}");

    std::fs::write(&cut, &bytes[..100_000]).expect("write");
    let error = GgufFile::open(&cut).expect_err("truncated in the metadata");
    assert!(error.to_string().contains("truncated: the metadata"), "{error}");

    assert!(model::validate(&common::small_model()).is_ok());
    assert!(model::validate(&cut).is_err());
}
