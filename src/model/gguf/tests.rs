//! Unit tests of the GGUF reader: valid files, every error it reports, and hostile bytes that never panic.

use proptest::prelude::*;

use super::test_writer as writer;
use super::*;

const TEST_PATH: &str = "/models/test.gguf";

fn parse_bytes(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    GgufFile::from_reader(bytes, bytes.len() as u64, TEST_PATH)
}

fn sample_kvs() -> Vec<(&'static str, MetadataValue)> {
    vec![
        ("general.architecture", MetadataValue::String("llama".into())),
        ("general.name", MetadataValue::String("Tiny Test".into())),
        ("llama.block_count", MetadataValue::U32(2)),
        ("test.u8", MetadataValue::U8(200)),
        ("test.i8", MetadataValue::I8(-5)),
        ("test.u16", MetadataValue::U16(65_000)),
        ("test.i16", MetadataValue::I16(-300)),
        ("test.i32", MetadataValue::I32(-70_000)),
        ("test.f32", MetadataValue::F32(0.5)),
        ("test.bool", MetadataValue::Bool(true)),
        ("test.u64", MetadataValue::U64(1 << 40)),
        ("test.i64", MetadataValue::I64(-(1 << 40))),
        ("test.f64", MetadataValue::F64(-2.25)),
        ("test.strings", MetadataValue::Array(MetadataArray::String(vec!["a".into(), "<|im_end|>".into()]))),
        (
            "test.nested",
            MetadataValue::Array(MetadataArray::Array(vec![
                MetadataArray::I32(vec![1, -2, 3]),
                MetadataArray::Bool(vec![true, false]),
                MetadataArray::Array(vec![MetadataArray::F64(vec![1.5])]),
            ])),
        ),
        ("test.empty", MetadataValue::Array(MetadataArray::U8(Vec::new()))),
    ]
}

fn sample_tensors() -> Vec<(&'static str, &'static [u64], GgmlType)> {
    vec![
        ("token_embd.weight", &[256, 4], GgmlType::Q4_K),
        ("blk.0.attn_norm.weight", &[8], GgmlType::F32),
        ("blk.1.ffn_up.weight", &[64, 2], GgmlType::Q8_0),
    ]
}

fn sample_file() -> Vec<u8> {
    writer::file(&sample_kvs(), &sample_tensors())
}

/// Replaces the little-endian u64 at `at`.
fn patch_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

fn invalid_reason(bytes: &[u8]) -> String {
    match parse_bytes(bytes) {
        Err(GgufError::Invalid { reason, .. }) => reason,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn type_table_matches_the_enum() {
    let mut ids = HashSet::new();
    for (index, entry) in GGML_TYPES.iter().enumerate() {
        assert_eq!(entry.0 as usize, index, "{} is out of order", entry.2);
        assert_eq!(GgmlType::from_id(entry.1), Some(entry.0));
        assert_eq!(entry.0.name(), entry.2);
        assert!(ids.insert(entry.1), "duplicate id {}", entry.1);
    }
    for retired in [4, 5, 31, 32, 33, 36, 37, 38, 43] {
        assert_eq!(GgmlType::from_id(retired), None);
    }
    assert_eq!(GgmlType::Q4_K.block_size(), 256);
    assert_eq!(GgmlType::Q4_K.block_size_bytes(), 144);
    assert_eq!(GgmlType::Q4_1.block_size_bytes(), 20);
    assert_eq!(GgmlType::BF16.id(), 30);
}

#[test]
fn parses_a_valid_file() {
    let bytes = sample_file();
    let file = parse_bytes(&bytes).expect("valid file");
    assert_eq!(file.version(), 3);
    assert_eq!(file.file_size_bytes(), bytes.len() as u64);
    assert_eq!(file.alignment_bytes(), 32);
    assert_eq!(file.data_offset_bytes() % 32, 0);
    for (key, value) in sample_kvs() {
        assert_eq!(file.get(key), Some(&value), "{key}");
    }
    assert_eq!(file.metadata().count(), sample_kvs().len());
    assert_eq!(file.get_str("general.architecture"), Some("llama"));
    assert_eq!(file.get_u64("llama.block_count"), Some(2));
    assert_eq!(file.get_u64("test.i8"), None);
    assert_eq!(file.get_f64("test.i16"), Some(-300.0));
    assert_eq!(file.get_bool("test.bool"), Some(true));
    assert_eq!(file.get("missing"), None);

    let tensors = file.tensors();
    assert_eq!(tensors.len(), 3);
    assert_eq!(tensors[0].name(), "token_embd.weight");
    assert_eq!(tensors[0].dims(), &[256, 4]);
    assert_eq!(tensors[0].ggml_type(), GgmlType::Q4_K);
    assert_eq!(tensors[0].element_count(), 1024);
    assert_eq!(tensors[0].size_bytes(), 4 * 144);
    assert_eq!(tensors[0].offset_bytes(), 0);
    assert_eq!(tensors[1].size_bytes(), 32);
    assert_eq!(tensors[1].offset_bytes(), 576);
    assert_eq!(tensors[2].size_bytes(), 4 * 34);
    assert_eq!(tensors[2].offset_bytes(), 608);
}

#[test]
fn accepts_version_2_and_files_without_tensors() {
    let mut bytes = writer::file(&sample_kvs(), &[]);
    bytes[4..8].copy_from_slice(&2_u32.to_le_bytes());
    let file = parse_bytes(&bytes).expect("version 2");
    assert_eq!(file.version(), 2);
    assert!(file.tensors().is_empty());
}

#[test]
fn honours_general_alignment() {
    let kvs = [(ALIGNMENT_KEY, MetadataValue::U32(64))];
    let tensors: [(&str, &[u64], GgmlType); 2] = [("a", &[3], GgmlType::F32), ("b", &[5], GgmlType::F16)];
    let file = parse_bytes(&writer::file(&kvs, &tensors)).expect("aligned file");
    assert_eq!(file.alignment_bytes(), 64);
    assert_eq!(file.data_offset_bytes() % 64, 0);
    assert_eq!(file.tensors()[1].offset_bytes(), 64);

    let mut bad = writer::header(3, 1, 1);
    writer::string(&mut bad, ALIGNMENT_KEY.as_bytes());
    writer::value(&mut bad, &MetadataValue::U32(64));
    writer::tensor_info(&mut bad, "a", &[3], GgmlType::F32.id(), 32);
    bad.resize(256, 0);
    assert!(invalid_reason(&bad).contains("not a multiple of the alignment 64"));
}

#[test]
fn rejects_bad_alignment_values() {
    for (value, expected) in [
        (MetadataValue::U32(48), "not a power of two"),
        (MetadataValue::U32(0), "not a power of two"),
        (MetadataValue::U64(32), "must be a u32"),
    ] {
        let bytes = writer::file(&[(ALIGNMENT_KEY, value)], &[]);
        assert!(invalid_reason(&bytes).contains(expected), "{expected}");
    }
}

#[test]
fn missing_empty_and_directory_paths() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.gguf");
    let error = GgufFile::open(&missing).expect_err("missing file");
    assert!(matches!(error, GgufError::NotFound { .. }), "{error}");
    assert!(error.to_string().contains("nope.gguf"));

    let error = GgufFile::open(dir.path()).expect_err("directory");
    assert!(matches!(error, GgufError::Unreadable { .. }), "{error}");

    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").expect("write");
    let error = GgufFile::open(&empty).expect_err("empty file");
    assert!(matches!(error, GgufError::Empty { .. }), "{error}");

    let good = dir.path().join("good.gguf");
    std::fs::write(&good, sample_file()).expect("write");
    let file = GgufFile::open(&good).expect("valid file on disk");
    assert_eq!(file.path(), good);
    assert_eq!(file.tensors().len(), 3);
}

#[test]
fn rejects_other_formats() {
    let error = parse_bytes(b"<!DOCTYPE html><html>").expect_err("html");
    assert!(matches!(&error, GgufError::NotGguf { found, .. } if found == "<!DO"), "{error}");
    let error = parse_bytes(&[0x7f, b'E', b'L', b'F', 2, 1]).expect_err("elf");
    assert!(matches!(&error, GgufError::NotGguf { found, .. } if found == ".ELF"), "{error}");
    let error = parse_bytes(b"GX").expect_err("short");
    assert!(matches!(error, GgufError::NotGguf { .. }), "{error}");
    let error = parse_bytes(b"GG").expect_err("short prefix of the magic");
    assert!(matches!(error, GgufError::Truncated { section: GgufSection::Header, end_byte: 4, .. }), "{error}");
}

#[test]
fn rejects_unsupported_versions() {
    for version in [0, 1, 4, 0x0300_0000] {
        let mut bytes = sample_file();
        bytes[4..8].copy_from_slice(&u32::to_le_bytes(version));
        let error = parse_bytes(&bytes).expect_err("bad version");
        assert!(matches!(error, GgufError::UnsupportedVersion { version: found, .. } if found == version), "{error}");
    }
    let mut bytes = sample_file();
    bytes[4..8].copy_from_slice(&0x0300_0000_u32.to_le_bytes());
    let message = parse_bytes(&bytes).expect_err("big-endian").to_string();
    assert!(message.contains("big-endian"), "{message}");
}

#[test]
fn every_truncation_is_reported_with_its_section() {
    let bytes = sample_file();
    let file = parse_bytes(&bytes).expect("valid file");
    let data_start = file.data_offset_bytes() as usize;
    let mut seen = HashSet::new();
    for cut in 1..bytes.len() {
        match parse_bytes(&bytes[..cut]) {
            Err(GgufError::Truncated { section, end_byte, file_size_bytes, .. }) => {
                assert_eq!(file_size_bytes, cut as u64);
                assert!(end_byte > cut as u64, "cut {cut}: end {end_byte}");
                if cut < 24 {
                    assert_eq!(section, GgufSection::Header, "cut {cut}");
                }
                if cut >= data_start {
                    assert_eq!(section, GgufSection::TensorData, "cut {cut}");
                    assert_eq!(end_byte, bytes.len() as u64);
                }
                seen.insert(section);
            }
            other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
        }
    }
    assert_eq!(seen.len(), 4, "all four sections were hit: {seen:?}");

    let message = parse_bytes(&bytes[..bytes.len() - 1]).expect_err("cut").to_string();
    assert_eq!(
        message,
        format!(
            "{TEST_PATH} is truncated: the tensor data ends at byte {} but the file has only {} bytes",
            bytes.len(),
            bytes.len() - 1
        )
    );
}

#[test]
fn hostile_counts_and_lengths_are_bounded_by_the_file() {
    // Tensor and key/value counts far beyond the file.
    for (at, expected) in [(8, GgufSection::TensorInfos), (16, GgufSection::Metadata)] {
        let mut bytes = sample_file();
        patch_u64(&mut bytes, at, u64::MAX / 2);
        let error = parse_bytes(&bytes).expect_err("huge count");
        assert!(matches!(error, GgufError::Truncated { section, .. } if section == expected), "{error}");
    }
    // A string length of 2^62 in the first key.
    let mut bytes = sample_file();
    patch_u64(&mut bytes, 24, 1 << 62);
    let error = parse_bytes(&bytes).expect_err("huge key");
    assert!(matches!(error, GgufError::Truncated { section: GgufSection::Metadata, .. }), "{error}");
    // An array claiming 2^60 u64 elements.
    let mut bytes = writer::header(3, 0, 1);
    writer::string(&mut bytes, b"k");
    bytes.extend_from_slice(&TYPE_ARRAY.to_le_bytes());
    bytes.extend_from_slice(&TYPE_U64.to_le_bytes());
    bytes.extend_from_slice(&(1_u64 << 60).to_le_bytes());
    let error = parse_bytes(&bytes).expect_err("huge array");
    assert!(matches!(error, GgufError::Truncated { .. }), "{error}");
    // An over-long key that would fit in the file is invalid, not truncated.
    let mut bytes = writer::header(3, 0, 1);
    writer::string(&mut bytes, &vec![b'k'; 70_000]);
    writer::value(&mut bytes, &MetadataValue::U8(1));
    assert!(invalid_reason(&bytes).contains("limit is 65535"));
}

#[test]
fn deep_array_nesting_is_refused() {
    let mut array = MetadataArray::U8(vec![1]);
    for _ in 0..MAX_ARRAY_DEPTH {
        array = MetadataArray::Array(vec![array]);
    }
    let bytes = writer::file(&[("deep", MetadataValue::Array(array))], &[]);
    assert!(invalid_reason(&bytes).contains("deeper than"));
}

#[test]
fn rejects_bad_keys_and_value_types() {
    let mut bytes = writer::header(3, 0, 1);
    writer::string(&mut bytes, &[b'a', 0xFF, b'b']);
    writer::value(&mut bytes, &MetadataValue::U8(1));
    assert!(invalid_reason(&bytes).contains("not valid UTF-8"));

    let mut bytes = writer::header(3, 0, 1);
    writer::string(&mut bytes, b"");
    writer::value(&mut bytes, &MetadataValue::U8(1));
    assert!(invalid_reason(&bytes).contains("is empty"));

    let mut bytes = writer::header(3, 0, 1);
    writer::string(&mut bytes, b"weird");
    bytes.extend_from_slice(&13_u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 16]);
    assert!(invalid_reason(&bytes).contains("unknown value type 13"));

    let mut bytes = writer::header(3, 0, 1);
    writer::string(&mut bytes, b"weird");
    bytes.extend_from_slice(&TYPE_ARRAY.to_le_bytes());
    bytes.extend_from_slice(&99_u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 16]);
    assert!(invalid_reason(&bytes).contains("array of unknown value type 99"));

    let kvs = [("dup", MetadataValue::U8(1)), ("dup", MetadataValue::U8(2))];
    assert!(invalid_reason(&writer::file(&kvs, &[])).contains("appears twice"));
}

#[test]
fn string_values_tolerate_bad_utf8() {
    let mut bytes = writer::header(3, 0, 1);
    writer::string(&mut bytes, b"token");
    bytes.extend_from_slice(&TYPE_STRING.to_le_bytes());
    writer::string(&mut bytes, &[b'x', 0xC3]);
    let file = parse_bytes(&bytes).expect("lossy string");
    assert_eq!(file.get_str("token"), Some("x\u{FFFD}"));
}

/// A file with one tensor info written by hand.
fn one_tensor(name: &str, dims: &[u64], type_id: u32, offset: u64) -> Vec<u8> {
    let mut bytes = writer::header(3, 1, 0);
    writer::tensor_info(&mut bytes, name, dims, type_id, offset);
    bytes.resize(4096, 0);
    bytes
}

#[test]
fn rejects_bad_tensor_infos() {
    assert!(invalid_reason(&one_tensor("t", &[32], 4, 0)).contains("unknown ggml type 4"));
    assert!(invalid_reason(&one_tensor("t", &[32], 99, 0)).contains("unknown ggml type 99"));
    assert!(invalid_reason(&one_tensor("t", &[1, 1, 1, 1, 1], 0, 0)).contains("5 dimensions"));
    assert!(invalid_reason(&one_tensor("t", &[1 << 40, 1 << 40], 0, 0)).contains("absurd dimensions"));
    assert!(invalid_reason(&one_tensor("t", &[u64::MAX], 0, 0)).contains("absurd dimensions"));
    assert!(
        invalid_reason(&one_tensor("t", &[100], GgmlType::Q4_K.id(), 0))
            .contains("not a multiple of the block size 256")
    );
    assert!(invalid_reason(&one_tensor("t", &[4], 0, 8)).contains("not a multiple of the alignment"));
    assert!(invalid_reason(&one_tensor(&"n".repeat(64), &[4], 0, 0)).contains("limit is 63"));

    let mut bytes = writer::header(3, 1, 0);
    writer::string(&mut bytes, &[0xFF]);
    bytes.extend_from_slice(&1_u32.to_le_bytes());
    bytes.extend_from_slice(&4_u64.to_le_bytes());
    bytes.extend_from_slice(&0_u32.to_le_bytes());
    bytes.extend_from_slice(&0_u64.to_le_bytes());
    bytes.resize(4096, 0);
    assert!(invalid_reason(&bytes).contains("not UTF-8"));

    // Huge but representable: the data runs far past the end of the file.
    let error = parse_bytes(&one_tensor("t", &[1 << 30, 1 << 10], 0, 0)).expect_err("huge");
    assert!(matches!(error, GgufError::Truncated { section: GgufSection::TensorData, .. }), "{error}");
}

#[test]
fn rejects_duplicate_and_overlapping_tensors() {
    let mut bytes = writer::header(3, 2, 0);
    writer::tensor_info(&mut bytes, "a", &[16], 0, 0);
    writer::tensor_info(&mut bytes, "a", &[16], 0, 64);
    bytes.resize(4096, 0);
    assert!(invalid_reason(&bytes).contains("appears twice"));

    let mut bytes = writer::header(3, 2, 0);
    writer::tensor_info(&mut bytes, "a", &[16], 0, 0);
    writer::tensor_info(&mut bytes, "b", &[16], 0, 32);
    bytes.resize(4096, 0);
    assert!(invalid_reason(&bytes).contains("overlap"));
}

#[test]
fn error_messages_are_one_line_and_name_the_file() {
    let mut cases = vec![
        parse_bytes(b""),
        parse_bytes(b"nope"),
        parse_bytes(&sample_file()[..100]),
        parse_bytes(&one_tensor("t", &[32], 4, 0)),
    ];
    let mut version = sample_file();
    version[4] = 9;
    cases.push(parse_bytes(&version));
    for result in cases {
        let message = result.expect_err("error case").to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(message.contains(TEST_PATH), "{message}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_bytes(&tail);
        let mut with_header = writer::header(3, 2, 3);
        with_header.extend_from_slice(&tail);
        let _ = parse_bytes(&with_header);
    }

    #[test]
    fn mutated_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = sample_file();
        for (index, byte) in edits {
            let at = index.index(bytes.len());
            bytes[at] = byte;
        }
        let cut = cut.index(bytes.len() + 1);
        if let Ok(file) = parse_bytes(&bytes[..cut]) {
            for tensor in file.tensors() {
                prop_assert!(
                    file.data_offset_bytes() + tensor.offset_bytes() + tensor.size_bytes()
                        <= file.file_size_bytes()
                );
            }
        }
    }

    #[test]
    fn mutated_counts_never_panic(at in 8_usize..24, value in any::<u64>()) {
        let mut bytes = sample_file();
        let aligned = 8 + (at - 8) / 8 * 8;
        patch_u64(&mut bytes, aligned, value);
        let _ = parse_bytes(&bytes);
    }
}
