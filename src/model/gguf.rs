//! A pure-Rust reader and validator for GGUF files.
//!
//! llama.cpp aborts the whole process on some corrupt files, so every model goes
//! through this reader before llama.cpp sees it. It owns the GGUF container
//! format: the header, the metadata key/values (every value type, nested arrays
//! included), the tensor info table, the ggml tensor type table and the check that
//! every tensor's data lies inside the file. It never reads tensor data itself.
//!
//! The input is treated as hostile: every count and length is bounded by the bytes
//! left in the file before anything is allocated, every loop consumes input, array
//! nesting is capped, and arithmetic on sizes is checked.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The four bytes every GGUF file starts with.
const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Alignment of tensor data when `general.alignment` is absent (ggml's default).
const DEFAULT_ALIGNMENT_BYTES: u64 = 32;

/// Metadata key that overrides the tensor data alignment.
const ALIGNMENT_KEY: &str = "general.alignment";

/// ggml tensors have at most four dimensions (`GGML_MAX_DIMS`).
const MAX_TENSOR_DIMS: u32 = 4;

/// ggml stores tensor names in 64-byte buffers including the terminating NUL
/// (`GGML_MAX_NAME`); llama.cpp rejects longer names, so do we.
const MAX_TENSOR_NAME_BYTES: u64 = 63;

/// The GGUF specification limits keys to 65535 bytes.
const MAX_KEY_BYTES: u64 = 65_535;

/// llama.cpp refuses strings longer than this (`GGUF_MAX_STRING_LENGTH`).
const MAX_STRING_BYTES: u64 = 1 << 30;

/// Arrays of arrays deeper than this are rejected: the reader recurses once per
/// level and a hostile file could otherwise exhaust the stack.
const MAX_ARRAY_DEPTH: u32 = 8;

/// Vectors read from the file start no larger than this many elements and grow
/// only as elements are actually read, so a lying count costs nothing.
const MAX_INITIAL_CAPACITY: usize = 1 << 16;

/// Size of the read buffer: metadata holds large tokenizer arrays.
const READ_BUFFER_BYTES: usize = 1 << 20;

/// Everything that can be wrong with a GGUF file; each message is one line that
/// names the file.
#[derive(Debug, Error)]
pub enum GgufError {
    /// The file does not exist.
    #[error("model file {} not found", .path.display())]
    NotFound {
        /// The file that was asked for.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read model file {}: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The file has no bytes at all.
    #[error("model file {} is empty", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file does not start with the GGUF magic.
    #[error("{} is not a GGUF file (it starts with {found:?}, expected \"GGUF\")", .path.display())]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// The first bytes of the file, non-printable ones shown as `.`.
        found: String,
    },
    /// The GGUF version is not one this reader (and llama.cpp) understands.
    #[error(
        "{} is GGUF version {version}, but only versions 2 and 3 are supported{}",
        .path.display(),
        version_note(*.version)
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version number in the header.
        version: u32,
    },
    /// The file ends before a part of it that the header promises.
    #[error(
        "{} is truncated: {section} ends at byte {end_byte} but the file has only {file_size_bytes} bytes",
        .path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Which part of the file is cut off.
        section: GgufSection,
        /// Where that part ends (or, for a count that cannot fit, at least ends).
        end_byte: u64,
        /// The actual size of the file.
        file_size_bytes: u64,
    },
    /// The file is structurally broken (bad key, unknown type, absurd shape...).
    #[error("{} is not a valid GGUF file: {reason}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, in one line.
        reason: String,
    },
}

crate::classed!(BadInput: GgufError);

/// A hint for versions that look like a byte-swapped header.
fn version_note(version: u32) -> &'static str {
    if version != 0 && version & 0xFFFF == 0 {
        " (the file looks big-endian; only little-endian files are supported)"
    } else {
        ""
    }
}

/// The parts of a GGUF file, in file order; used to say where a file is cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgufSection {
    /// Magic, version and the two counts.
    Header,
    /// The metadata key/value pairs.
    Metadata,
    /// The table of tensor names, shapes, types and offsets.
    TensorInfos,
    /// The tensor data itself.
    TensorData,
}

impl fmt::Display for GgufSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Header => "the header",
            Self::Metadata => "the metadata",
            Self::TensorInfos => "the tensor infos",
            Self::TensorData => "the tensor data",
        })
    }
}

/// A ggml tensor element type, with the block layout that gives its byte size.
///
/// Ids and sizes follow `type_traits` in ggml's `ggml.c`; the ids ggml has retired
/// (4, 5, 31-33, 36-38) are unknown here, as they are to llama.cpp.
#[allow(missing_docs, non_camel_case_types)] // the variants are ggml's own type names
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
    IQ2_XXS,
    IQ2_XS,
    IQ3_XXS,
    IQ1_S,
    IQ4_NL,
    IQ3_S,
    IQ2_S,
    IQ4_XS,
    I8,
    I16,
    I32,
    I64,
    F64,
    IQ1_M,
    BF16,
    TQ1_0,
    TQ2_0,
    MXFP4,
    NVFP4,
    Q1_0,
    Q2_0,
}

/// `(type, ggml id, name, elements per block, bytes per block)` for every type.
const GGML_TYPES: [(GgmlType, u32, &str, u64, u64); 35] = [
    (GgmlType::F32, 0, "F32", 1, 4),
    (GgmlType::F16, 1, "F16", 1, 2),
    (GgmlType::Q4_0, 2, "Q4_0", 32, 18),
    (GgmlType::Q4_1, 3, "Q4_1", 32, 20),
    (GgmlType::Q5_0, 6, "Q5_0", 32, 22),
    (GgmlType::Q5_1, 7, "Q5_1", 32, 24),
    (GgmlType::Q8_0, 8, "Q8_0", 32, 34),
    (GgmlType::Q8_1, 9, "Q8_1", 32, 36),
    (GgmlType::Q2_K, 10, "Q2_K", 256, 84),
    (GgmlType::Q3_K, 11, "Q3_K", 256, 110),
    (GgmlType::Q4_K, 12, "Q4_K", 256, 144),
    (GgmlType::Q5_K, 13, "Q5_K", 256, 176),
    (GgmlType::Q6_K, 14, "Q6_K", 256, 210),
    (GgmlType::Q8_K, 15, "Q8_K", 256, 292),
    (GgmlType::IQ2_XXS, 16, "IQ2_XXS", 256, 66),
    (GgmlType::IQ2_XS, 17, "IQ2_XS", 256, 74),
    (GgmlType::IQ3_XXS, 18, "IQ3_XXS", 256, 98),
    (GgmlType::IQ1_S, 19, "IQ1_S", 256, 50),
    (GgmlType::IQ4_NL, 20, "IQ4_NL", 32, 18),
    (GgmlType::IQ3_S, 21, "IQ3_S", 256, 110),
    (GgmlType::IQ2_S, 22, "IQ2_S", 256, 82),
    (GgmlType::IQ4_XS, 23, "IQ4_XS", 256, 136),
    (GgmlType::I8, 24, "I8", 1, 1),
    (GgmlType::I16, 25, "I16", 1, 2),
    (GgmlType::I32, 26, "I32", 1, 4),
    (GgmlType::I64, 27, "I64", 1, 8),
    (GgmlType::F64, 28, "F64", 1, 8),
    (GgmlType::IQ1_M, 29, "IQ1_M", 256, 56),
    (GgmlType::BF16, 30, "BF16", 1, 2),
    (GgmlType::TQ1_0, 34, "TQ1_0", 256, 54),
    (GgmlType::TQ2_0, 35, "TQ2_0", 256, 66),
    (GgmlType::MXFP4, 39, "MXFP4", 32, 17),
    (GgmlType::NVFP4, 40, "NVFP4", 64, 36),
    (GgmlType::Q1_0, 41, "Q1_0", 128, 18),
    (GgmlType::Q2_0, 42, "Q2_0", 64, 18),
];

impl GgmlType {
    /// The type with ggml id `id`, if ggml (still) defines one.
    pub fn from_id(id: u32) -> Option<Self> {
        GGML_TYPES.iter().find(|entry| entry.1 == id).map(|entry| entry.0)
    }

    /// The row of the type table for this type.
    fn entry(self) -> &'static (GgmlType, u32, &'static str, u64, u64) {
        // The table lists every variant in declaration order, so the
        // discriminant is the index; the fallback can only be reached if the
        // table and the enum drift apart, which the unit tests catch.
        GGML_TYPES.get(self as usize).unwrap_or(&GGML_TYPES[0])
    }

    /// ggml's numeric id, as stored in GGUF tensor infos.
    pub fn id(self) -> u32 {
        self.entry().1
    }

    /// ggml's name for the type, upper case as llama.cpp prints it (`Q4_K`).
    pub fn name(self) -> &'static str {
        self.entry().2
    }

    /// Number of elements in one block (1 for plain types like F32).
    pub fn block_size(self) -> u64 {
        self.entry().3
    }

    /// Bytes one block occupies.
    pub fn block_size_bytes(self) -> u64 {
        self.entry().4
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// GGUF type 0.
    U8(u8),
    /// GGUF type 1.
    I8(i8),
    /// GGUF type 2.
    U16(u16),
    /// GGUF type 3.
    I16(i16),
    /// GGUF type 4.
    U32(u32),
    /// GGUF type 5.
    I32(i32),
    /// GGUF type 6.
    F32(f32),
    /// GGUF type 7 (any non-zero byte is true).
    Bool(bool),
    /// GGUF type 8; invalid UTF-8 is replaced rather than rejected, because
    /// llama.cpp accepts such strings (token texts sometimes are not UTF-8).
    String(String),
    /// GGUF type 9.
    Array(MetadataArray),
    /// GGUF type 10.
    U64(u64),
    /// GGUF type 11.
    I64(i64),
    /// GGUF type 12.
    F64(f64),
}

impl MetadataValue {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(value) => Some(value),
            _ => None,
        }
    }

    /// The value as an unsigned integer, if it is an integer that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(value) => Some(value.into()),
            Self::U16(value) => Some(value.into()),
            Self::U32(value) => Some(value.into()),
            Self::U64(value) => Some(value),
            Self::I8(value) => u64::try_from(value).ok(),
            Self::I16(value) => u64::try_from(value).ok(),
            Self::I32(value) => u64::try_from(value).ok(),
            Self::I64(value) => u64::try_from(value).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is any number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(value) => Some(value.into()),
            Self::F64(value) => Some(value),
            // Precision loss above 2^53 is acceptable for a float view.
            Self::U64(value) => Some(value as f64),
            Self::I64(value) => Some(value as f64),
            _ => self.as_small_int(),
        }
    }

    /// The value as a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(value) => Some(value),
            _ => None,
        }
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<&MetadataArray> {
        match self {
            Self::Array(array) => Some(array),
            _ => None,
        }
    }

    /// Integers of at most 32 bits, which convert to f64 losslessly.
    fn as_small_int(&self) -> Option<f64> {
        match *self {
            Self::U8(value) => Some(value.into()),
            Self::I8(value) => Some(value.into()),
            Self::U16(value) => Some(value.into()),
            Self::I16(value) => Some(value.into()),
            Self::U32(value) => Some(value.into()),
            Self::I32(value) => Some(value.into()),
            _ => None,
        }
    }

    /// GGUF's name for the value's type (`u32`, `str`, `arr`...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "u8",
            Self::I8(_) => "i8",
            Self::U16(_) => "u16",
            Self::I16(_) => "i16",
            Self::U32(_) => "u32",
            Self::I32(_) => "i32",
            Self::F32(_) => "f32",
            Self::Bool(_) => "bool",
            Self::String(_) => "str",
            Self::Array(_) => "arr",
            Self::U64(_) => "u64",
            Self::I64(_) => "i64",
            Self::F64(_) => "f64",
        }
    }
}

/// A metadata array: all elements share one type, stored compactly.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataArray {
    /// Array of u8.
    U8(Vec<u8>),
    /// Array of i8.
    I8(Vec<i8>),
    /// Array of u16.
    U16(Vec<u16>),
    /// Array of i16.
    I16(Vec<i16>),
    /// Array of u32.
    U32(Vec<u32>),
    /// Array of i32.
    I32(Vec<i32>),
    /// Array of f32.
    F32(Vec<f32>),
    /// Array of bools.
    Bool(Vec<bool>),
    /// Array of strings.
    String(Vec<String>),
    /// Array of arrays (each inner array has its own element type).
    Array(Vec<MetadataArray>),
    /// Array of u64.
    U64(Vec<u64>),
    /// Array of i64.
    I64(Vec<i64>),
    /// Array of f64.
    F64(Vec<f64>),
}

impl MetadataArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::U8(values) => values.len(),
            Self::I8(values) => values.len(),
            Self::U16(values) => values.len(),
            Self::I16(values) => values.len(),
            Self::U32(values) => values.len(),
            Self::I32(values) => values.len(),
            Self::F32(values) => values.len(),
            Self::Bool(values) => values.len(),
            Self::String(values) => values.len(),
            Self::Array(values) => values.len(),
            Self::U64(values) => values.len(),
            Self::I64(values) => values.len(),
            Self::F64(values) => values.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as unsigned integers, if the array holds integers that all fit.
    pub fn to_u64s(&self) -> Option<Vec<u64>> {
        fn convert<T: Copy>(values: &[T], f: impl Fn(T) -> Option<u64>) -> Option<Vec<u64>> {
            values.iter().map(|value| f(*value)).collect()
        }
        match self {
            Self::U8(values) => convert(values, |v| Some(v.into())),
            Self::U16(values) => convert(values, |v| Some(v.into())),
            Self::U32(values) => convert(values, |v| Some(v.into())),
            Self::U64(values) => Some(values.clone()),
            Self::I8(values) => convert(values, |v| u64::try_from(v).ok()),
            Self::I16(values) => convert(values, |v| u64::try_from(v).ok()),
            Self::I32(values) => convert(values, |v| u64::try_from(v).ok()),
            Self::I64(values) => convert(values, |v| u64::try_from(v).ok()),
            _ => None,
        }
    }
}

/// One tensor's entry in the tensor info table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    name: String,
    dims: Vec<u64>,
    ggml_type: GgmlType,
    offset_bytes: u64,
    element_count: u64,
    size_bytes: u64,
}

impl TensorInfo {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shape, innermost (row) dimension first, as GGUF stores it.
    pub fn dims(&self) -> &[u64] {
        &self.dims
    }

    /// The element type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// Offset of the data from the start of the file's data section.
    pub fn offset_bytes(&self) -> u64 {
        self.offset_bytes
    }

    /// Number of elements (the product of the dimensions).
    pub fn element_count(&self) -> u64 {
        self.element_count
    }

    /// Bytes the data occupies, from the ggml type table.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
}

/// A parsed and validated GGUF file: header, metadata and tensor infos.
#[derive(Debug, Clone)]
pub struct GgufFile {
    path: PathBuf,
    file_size_bytes: u64,
    version: u32,
    alignment_bytes: u64,
    data_offset_bytes: u64,
    metadata: Vec<(String, MetadataValue)>,
    tensors: Vec<TensorInfo>,
}

impl GgufFile {
    /// Reads and validates the GGUF file at `path`.
    ///
    /// Only the header, metadata and tensor infos are read; tensor data is
    /// checked to lie inside the file, not read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        let unreadable = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                GgufError::NotFound { path: path.to_path_buf() }
            } else {
                GgufError::Unreadable { path: path.to_path_buf(), source }
            }
        };
        let file = File::open(path).map_err(unreadable)?;
        let metadata = file.metadata().map_err(unreadable)?;
        if metadata.is_dir() {
            return Err(unreadable(io::Error::new(io::ErrorKind::IsADirectory, "it is a directory")));
        }
        let reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        Self::from_reader(reader, metadata.len(), path)
    }

    /// Reads and validates a GGUF stream of `file_size_bytes` bytes; `path`
    /// only names the source in errors. [`GgufFile::open`] calls this on a
    /// file; it also takes bytes already in memory (`&[u8]` is a reader).
    pub fn from_reader(reader: impl Read, file_size_bytes: u64, path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref();
        if file_size_bytes == 0 {
            return Err(GgufError::Empty { path: path.to_path_buf() });
        }
        let mut reader = Reader { inner: reader, position_bytes: 0, file_size_bytes, section: GgufSection::Header };
        parse_sections(&mut reader, path).map_err(|fault| fault.into_error(path, file_size_bytes))
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size of the whole file.
    pub fn file_size_bytes(&self) -> u64 {
        self.file_size_bytes
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Alignment of tensor data (`general.alignment`, default 32).
    pub fn alignment_bytes(&self) -> u64 {
        self.alignment_bytes
    }

    /// Where the data section starts in the file.
    pub fn data_offset_bytes(&self) -> u64 {
        self.data_offset_bytes
    }

    /// All metadata key/values, in file order.
    pub fn metadata(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.metadata.iter().map(|(key, value)| (key.as_str(), value))
    }

    /// The value of metadata key `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.iter().find(|(candidate, _)| candidate == key).map(|(_, value)| value)
    }

    /// The value of `key` if it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(MetadataValue::as_str)
    }

    /// The value of `key` if it is a non-negative integer.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(MetadataValue::as_u64)
    }

    /// The value of `key` if it is a number.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(MetadataValue::as_f64)
    }

    /// The value of `key` if it is a bool.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(MetadataValue::as_bool)
    }

    /// The tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
}

/// A parse failure before the file path is attached.
#[derive(Debug)]
enum Fault {
    NotGguf(String),
    UnsupportedVersion(u32),
    Truncated { section: GgufSection, end_byte: u64 },
    Invalid(String),
    Io(io::Error),
}

impl Fault {
    fn into_error(self, path: &Path, file_size_bytes: u64) -> GgufError {
        let path = path.to_path_buf();
        match self {
            Self::NotGguf(found) => GgufError::NotGguf { path, found },
            Self::UnsupportedVersion(version) => GgufError::UnsupportedVersion { path, version },
            Self::Truncated { section, end_byte } => GgufError::Truncated { path, section, end_byte, file_size_bytes },
            Self::Invalid(reason) => GgufError::Invalid { path, reason },
            Self::Io(source) => GgufError::Unreadable { path, source },
        }
    }
}

/// A little-endian scalar that can be decoded from its bytes.
trait Scalar: Sized {
    /// Bytes in the file.
    const SIZE_BYTES: u64;
    /// Decodes from exactly `SIZE_BYTES` bytes.
    fn decode(bytes: &[u8]) -> Self;
}

/// Copies a slice known to be `N` bytes long into an array.
fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut array = [0; N];
    let len = N.min(bytes.len());
    array[..len].copy_from_slice(&bytes[..len]);
    array
}

macro_rules! impl_scalar {
    ($($ty:ty),*) => {$(
        impl Scalar for $ty {
            const SIZE_BYTES: u64 = size_of::<$ty>() as u64;
            fn decode(bytes: &[u8]) -> Self {
                <$ty>::from_le_bytes(fixed(bytes))
            }
        }
    )*};
}

impl_scalar!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

impl Scalar for bool {
    const SIZE_BYTES: u64 = 1;
    fn decode(bytes: &[u8]) -> Self {
        bytes.first().is_some_and(|byte| *byte != 0)
    }
}

/// The largest scalar in a GGUF file (u64, i64, f64).
const MAX_SCALAR_BYTES: usize = 8;

/// GGUF value type ids.
const TYPE_U8: u32 = 0;
const TYPE_I8: u32 = 1;
const TYPE_U16: u32 = 2;
const TYPE_I16: u32 = 3;
const TYPE_U32: u32 = 4;
const TYPE_I32: u32 = 5;
const TYPE_F32: u32 = 6;
const TYPE_BOOL: u32 = 7;
const TYPE_STRING: u32 = 8;
const TYPE_ARRAY: u32 = 9;
const TYPE_U64: u32 = 10;
const TYPE_I64: u32 = 11;
const TYPE_F64: u32 = 12;

/// Smallest encoding of one string: its u64 length.
const MIN_STRING_BYTES: u64 = 8;
/// Smallest encoding of one array: element type (u32) and count (u64).
const MIN_ARRAY_BYTES: u64 = 12;
/// Smallest metadata pair: empty key, type, one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Smallest tensor info: empty name, zero dims, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// Reads the file front to back, tracking the position and the section.
struct Reader<R> {
    inner: R,
    position_bytes: u64,
    file_size_bytes: u64,
    section: GgufSection,
}

impl<R: Read> Reader<R> {
    fn remaining_bytes(&self) -> u64 {
        self.file_size_bytes.saturating_sub(self.position_bytes)
    }

    /// Fails unless `count` items of at least `item_bytes` each can still fit.
    fn ensure_room(&self, count: u64, item_bytes: u64) -> Result<(), Fault> {
        let needed_bytes = count.saturating_mul(item_bytes);
        if needed_bytes > self.remaining_bytes() {
            return Err(Fault::Truncated {
                section: self.section,
                end_byte: self.position_bytes.saturating_add(needed_bytes),
            });
        }
        Ok(())
    }

    /// Reads exactly `len_bytes` bytes, after checking the file has them.
    fn read_bytes(&mut self, len_bytes: u64) -> Result<Vec<u8>, Fault> {
        self.ensure_room(len_bytes, 1)?;
        // ensure_room bounds len_bytes by the file size, so this allocation is
        // never larger than what the file holds.
        let len = usize::try_from(len_bytes)
            .map_err(|_| Fault::Invalid(format!("{len_bytes} bytes do not fit in memory")))?;
        let mut buffer = vec![0; len];
        self.fill(&mut buffer)?;
        Ok(buffer)
    }

    /// Fills `buffer` from the file; the caller has checked the bytes exist.
    fn fill(&mut self, buffer: &mut [u8]) -> Result<(), Fault> {
        let len_bytes = buffer.len() as u64;
        self.inner.read_exact(buffer).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                // The file shrank while being read.
                Fault::Truncated { section: self.section, end_byte: self.position_bytes.saturating_add(len_bytes) }
            } else {
                Fault::Io(error)
            }
        })?;
        self.position_bytes += len_bytes;
        Ok(())
    }

    /// Reads one scalar through a stack buffer (no allocation: metadata holds
    /// hundreds of thousands of them).
    fn read<T: Scalar>(&mut self) -> Result<T, Fault> {
        self.ensure_room(1, T::SIZE_BYTES)?;
        let mut buffer = [0; MAX_SCALAR_BYTES];
        let len = usize::try_from(T::SIZE_BYTES).unwrap_or(MAX_SCALAR_BYTES).min(MAX_SCALAR_BYTES);
        self.fill(&mut buffer[..len])?;
        Ok(T::decode(&buffer[..len]))
    }

    fn read_vec<T: Scalar>(&mut self, count: u64) -> Result<Vec<T>, Fault> {
        self.ensure_room(count, T::SIZE_BYTES)?;
        let bytes = self.read_bytes(count * T::SIZE_BYTES)?;
        let item_len = usize::try_from(T::SIZE_BYTES).unwrap_or(1);
        Ok(bytes.chunks_exact(item_len).map(T::decode).collect())
    }

    /// Reads a length-prefixed string's raw bytes, refusing lengths over `max_bytes`.
    fn read_string_bytes(&mut self, what: &str, max_bytes: u64) -> Result<Vec<u8>, Fault> {
        let len_bytes: u64 = self.read()?;
        if len_bytes > max_bytes {
            // A length larger than the rest of the file is a cut-off file;
            // one that would fit but breaks the format's limit is invalid.
            self.ensure_room(len_bytes, 1)?;
            return Err(Fault::Invalid(format!("{what} is {len_bytes} bytes long (the limit is {max_bytes})")));
        }
        self.read_bytes(len_bytes)
    }

    fn read_lossy_string(&mut self) -> Result<String, Fault> {
        let bytes = self.read_string_bytes("a string value", MAX_STRING_BYTES)?;
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        })
    }

    fn read_value(&mut self, value_type: u32, key: &str) -> Result<MetadataValue, Fault> {
        Ok(match value_type {
            TYPE_U8 => MetadataValue::U8(self.read()?),
            TYPE_I8 => MetadataValue::I8(self.read()?),
            TYPE_U16 => MetadataValue::U16(self.read()?),
            TYPE_I16 => MetadataValue::I16(self.read()?),
            TYPE_U32 => MetadataValue::U32(self.read()?),
            TYPE_I32 => MetadataValue::I32(self.read()?),
            TYPE_F32 => MetadataValue::F32(self.read()?),
            TYPE_BOOL => MetadataValue::Bool(self.read()?),
            TYPE_STRING => MetadataValue::String(self.read_lossy_string()?),
            TYPE_ARRAY => MetadataValue::Array(self.read_array(key, 1)?),
            TYPE_U64 => MetadataValue::U64(self.read()?),
            TYPE_I64 => MetadataValue::I64(self.read()?),
            TYPE_F64 => MetadataValue::F64(self.read()?),
            other => {
                return Err(Fault::Invalid(format!("metadata key '{key}' has unknown value type {other}")));
            }
        })
    }

    /// Reads an array's element type, count and elements; `depth` is 1 for a
    /// top-level array.
    fn read_array(&mut self, key: &str, depth: u32) -> Result<MetadataArray, Fault> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(Fault::Invalid(format!(
                "metadata key '{key}' nests arrays deeper than {MAX_ARRAY_DEPTH} levels"
            )));
        }
        let element_type: u32 = self.read()?;
        let count: u64 = self.read()?;
        Ok(match element_type {
            TYPE_U8 => MetadataArray::U8(self.read_vec(count)?),
            TYPE_I8 => MetadataArray::I8(self.read_vec(count)?),
            TYPE_U16 => MetadataArray::U16(self.read_vec(count)?),
            TYPE_I16 => MetadataArray::I16(self.read_vec(count)?),
            TYPE_U32 => MetadataArray::U32(self.read_vec(count)?),
            TYPE_I32 => MetadataArray::I32(self.read_vec(count)?),
            TYPE_F32 => MetadataArray::F32(self.read_vec(count)?),
            TYPE_BOOL => MetadataArray::Bool(self.read_vec(count)?),
            TYPE_U64 => MetadataArray::U64(self.read_vec(count)?),
            TYPE_I64 => MetadataArray::I64(self.read_vec(count)?),
            TYPE_F64 => MetadataArray::F64(self.read_vec(count)?),
            TYPE_STRING => {
                self.ensure_room(count, MIN_STRING_BYTES)?;
                let mut values = Vec::with_capacity(initial_capacity(count));
                for _ in 0..count {
                    values.push(self.read_lossy_string()?);
                }
                MetadataArray::String(values)
            }
            TYPE_ARRAY => {
                self.ensure_room(count, MIN_ARRAY_BYTES)?;
                let mut values = Vec::with_capacity(initial_capacity(count));
                for _ in 0..count {
                    values.push(self.read_array(key, depth + 1)?);
                }
                MetadataArray::Array(values)
            }
            other => {
                return Err(Fault::Invalid(format!("metadata key '{key}' is an array of unknown value type {other}")));
            }
        })
    }

    fn read_tensor_info(&mut self, index: u64) -> Result<TensorInfo, Fault> {
        let name_bytes = self.read_string_bytes("a tensor name", MAX_TENSOR_NAME_BYTES)?;
        let name = String::from_utf8(name_bytes)
            .map_err(|_| Fault::Invalid(format!("tensor {index} has a name that is not UTF-8")))?;
        let dim_count: u32 = self.read()?;
        if dim_count > MAX_TENSOR_DIMS {
            return Err(Fault::Invalid(format!(
                "tensor '{name}' has {dim_count} dimensions (at most {MAX_TENSOR_DIMS} are allowed)"
            )));
        }
        let dims: Vec<u64> = self.read_vec(dim_count.into())?;
        let type_id: u32 = self.read()?;
        let offset_bytes: u64 = self.read()?;
        let ggml_type = GgmlType::from_id(type_id)
            .ok_or_else(|| Fault::Invalid(format!("tensor '{name}' has unknown ggml type {type_id}")))?;
        let absurd = || Fault::Invalid(format!("tensor '{name}' has absurd dimensions {dims:?}"));
        // ggml stores dimensions as int64_t, so anything above i64::MAX elements is absurd.
        let element_count = dims
            .iter()
            .try_fold(1_u64, |product, dim| product.checked_mul(*dim))
            .filter(|count| i64::try_from(*count).is_ok())
            .ok_or_else(absurd)?;
        let row_len = dims.first().copied().unwrap_or(1);
        if row_len % ggml_type.block_size() != 0 {
            return Err(Fault::Invalid(format!(
                "tensor '{name}' of type {ggml_type} has rows of {row_len} elements, \
                 not a multiple of the block size {}",
                ggml_type.block_size()
            )));
        }
        let size_bytes =
            (element_count / ggml_type.block_size()).checked_mul(ggml_type.block_size_bytes()).ok_or_else(absurd)?;
        Ok(TensorInfo { name, dims, ggml_type, offset_bytes, element_count, size_bytes })
    }
}

/// Initial capacity for a vector of `count` elements read from the file.
fn initial_capacity(count: u64) -> usize {
    usize::try_from(count).unwrap_or(MAX_INITIAL_CAPACITY).min(MAX_INITIAL_CAPACITY)
}

/// Shows the first bytes of a file, with non-printable bytes as `.`.
fn printable(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| if byte.is_ascii_graphic() || *byte == b' ' { char::from(*byte) } else { '.' }).collect()
}

fn parse_sections<R: Read>(reader: &mut Reader<R>, path: &Path) -> Result<GgufFile, Fault> {
    let magic_len_bytes = GGUF_MAGIC.len() as u64;
    let magic = reader.read_bytes(reader.file_size_bytes.min(magic_len_bytes))?;
    if !GGUF_MAGIC.starts_with(&magic) {
        return Err(Fault::NotGguf(printable(&magic)));
    }
    if magic.len() < GGUF_MAGIC.len() {
        // Shorter than the magic but matching it so far: a cut-off GGUF file.
        return Err(Fault::Truncated { section: GgufSection::Header, end_byte: magic_len_bytes });
    }
    let version: u32 = reader.read()?;
    if !(2..=3).contains(&version) {
        return Err(Fault::UnsupportedVersion(version));
    }
    let tensor_count: u64 = reader.read()?;
    let kv_count: u64 = reader.read()?;

    reader.section = GgufSection::Metadata;
    reader.ensure_room(kv_count, MIN_KV_BYTES)?;
    let mut metadata = Vec::with_capacity(initial_capacity(kv_count));
    let mut seen_keys = HashSet::new();
    for index in 0..kv_count {
        let key_bytes = reader.read_string_bytes("a metadata key", MAX_KEY_BYTES)?;
        let key = String::from_utf8(key_bytes)
            .map_err(|_| Fault::Invalid(format!("metadata key {index} is not valid UTF-8")))?;
        if key.is_empty() {
            return Err(Fault::Invalid(format!("metadata key {index} is empty")));
        }
        if !seen_keys.insert(key.clone()) {
            return Err(Fault::Invalid(format!("metadata key '{key}' appears twice")));
        }
        let value_type: u32 = reader.read()?;
        let value = reader.read_value(value_type, &key)?;
        metadata.push((key, value));
    }
    let alignment_bytes = alignment(&metadata)?;

    reader.section = GgufSection::TensorInfos;
    reader.ensure_room(tensor_count, MIN_TENSOR_INFO_BYTES)?;
    let mut tensors = Vec::with_capacity(initial_capacity(tensor_count));
    let mut seen_names = HashSet::new();
    for index in 0..tensor_count {
        let tensor = reader.read_tensor_info(index)?;
        if !seen_names.insert(tensor.name.clone()) {
            return Err(Fault::Invalid(format!("tensor name '{}' appears twice", tensor.name)));
        }
        tensors.push(tensor);
    }

    let data_offset_bytes = reader
        .position_bytes
        .checked_next_multiple_of(alignment_bytes)
        .ok_or_else(|| Fault::Invalid("the data section starts beyond 2^64 bytes".to_owned()))?;
    check_tensor_data(&tensors, data_offset_bytes, alignment_bytes, reader.file_size_bytes)?;

    Ok(GgufFile {
        path: path.to_path_buf(),
        file_size_bytes: reader.file_size_bytes,
        version,
        alignment_bytes,
        data_offset_bytes,
        metadata,
        tensors,
    })
}

/// `general.alignment`, which must be a u32 power of two when present.
fn alignment(metadata: &[(String, MetadataValue)]) -> Result<u64, Fault> {
    let Some((_, value)) = metadata.iter().find(|(key, _)| key == ALIGNMENT_KEY) else {
        return Ok(DEFAULT_ALIGNMENT_BYTES);
    };
    match *value {
        MetadataValue::U32(alignment) if alignment.is_power_of_two() => Ok(alignment.into()),
        MetadataValue::U32(alignment) => {
            Err(Fault::Invalid(format!("{ALIGNMENT_KEY} is {alignment}, not a power of two")))
        }
        _ => Err(Fault::Invalid(format!("{ALIGNMENT_KEY} must be a u32 but is a {}", value.type_name()))),
    }
}

/// Checks that tensor data is aligned, inside the file and not overlapping.
fn check_tensor_data(
    tensors: &[TensorInfo],
    data_offset_bytes: u64,
    alignment_bytes: u64,
    file_size_bytes: u64,
) -> Result<(), Fault> {
    // Without tensors there is no data section to check (llama.cpp does not
    // even seek to it).
    let mut data_end_byte = 0;
    for tensor in tensors {
        if tensor.offset_bytes % alignment_bytes != 0 {
            return Err(Fault::Invalid(format!(
                "tensor '{}' has offset {}, not a multiple of the alignment {alignment_bytes}",
                tensor.name, tensor.offset_bytes
            )));
        }
        let end_byte = data_offset_bytes
            .checked_add(tensor.offset_bytes)
            .and_then(|start| start.checked_add(tensor.size_bytes))
            .ok_or_else(|| Fault::Invalid(format!("tensor '{}' ends beyond 2^64 bytes", tensor.name)))?;
        data_end_byte = data_end_byte.max(end_byte);
    }
    if data_end_byte > file_size_bytes {
        return Err(Fault::Truncated { section: GgufSection::TensorData, end_byte: data_end_byte });
    }
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|tensor| tensor.offset_bytes);
    for pair in by_offset.windows(2) {
        if let [first, second] = pair
            && first.offset_bytes + first.size_bytes > second.offset_bytes
        {
            return Err(Fault::Invalid(format!("the data of tensors '{}' and '{}' overlap", first.name, second.name)));
        }
    }
    Ok(())
}

/// A tiny GGUF writer: the inverse of the reader, for building test files.
#[cfg(test)]
pub(crate) mod test_writer {
    use super::*;

    pub(crate) fn string(out: &mut Vec<u8>, text: &[u8]) {
        out.extend_from_slice(&(text.len() as u64).to_le_bytes());
        out.extend_from_slice(text);
    }

    fn array_type_id(array: &MetadataArray) -> u32 {
        match array {
            MetadataArray::U8(_) => TYPE_U8,
            MetadataArray::I8(_) => TYPE_I8,
            MetadataArray::U16(_) => TYPE_U16,
            MetadataArray::I16(_) => TYPE_I16,
            MetadataArray::U32(_) => TYPE_U32,
            MetadataArray::I32(_) => TYPE_I32,
            MetadataArray::F32(_) => TYPE_F32,
            MetadataArray::Bool(_) => TYPE_BOOL,
            MetadataArray::String(_) => TYPE_STRING,
            MetadataArray::Array(_) => TYPE_ARRAY,
            MetadataArray::U64(_) => TYPE_U64,
            MetadataArray::I64(_) => TYPE_I64,
            MetadataArray::F64(_) => TYPE_F64,
        }
    }

    pub(crate) fn array(out: &mut Vec<u8>, array: &MetadataArray) {
        out.extend_from_slice(&array_type_id(array).to_le_bytes());
        out.extend_from_slice(&(array.len() as u64).to_le_bytes());
        match array {
            MetadataArray::U8(values) => values.iter().for_each(|v| out.push(*v)),
            MetadataArray::I8(values) => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
            MetadataArray::U16(values) => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
            MetadataArray::I16(values) => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
            MetadataArray::U32(values) => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
            MetadataArray::I32(values) => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
            MetadataArray::F32(values) => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
            MetadataArray::Bool(values) => values.iter().for_each(|v| out.push(u8::from(*v))),
            MetadataArray::String(values) => values.iter().for_each(|v| string(out, v.as_bytes())),
            MetadataArray::Array(values) => values.iter().for_each(|v| self::array(out, v)),
            MetadataArray::U64(values) => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
            MetadataArray::I64(values) => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
            MetadataArray::F64(values) => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
        }
    }

    /// Type id and payload of one value.
    pub(crate) fn value(out: &mut Vec<u8>, value: &MetadataValue) {
        let (type_id, payload): (u32, Vec<u8>) = match value {
            MetadataValue::U8(v) => (TYPE_U8, v.to_le_bytes().to_vec()),
            MetadataValue::I8(v) => (TYPE_I8, v.to_le_bytes().to_vec()),
            MetadataValue::U16(v) => (TYPE_U16, v.to_le_bytes().to_vec()),
            MetadataValue::I16(v) => (TYPE_I16, v.to_le_bytes().to_vec()),
            MetadataValue::U32(v) => (TYPE_U32, v.to_le_bytes().to_vec()),
            MetadataValue::I32(v) => (TYPE_I32, v.to_le_bytes().to_vec()),
            MetadataValue::F32(v) => (TYPE_F32, v.to_le_bytes().to_vec()),
            MetadataValue::Bool(v) => (TYPE_BOOL, vec![u8::from(*v)]),
            MetadataValue::String(v) => {
                let mut payload = Vec::new();
                string(&mut payload, v.as_bytes());
                (TYPE_STRING, payload)
            }
            MetadataValue::Array(v) => {
                let mut payload = Vec::new();
                array(&mut payload, v);
                (TYPE_ARRAY, payload)
            }
            MetadataValue::U64(v) => (TYPE_U64, v.to_le_bytes().to_vec()),
            MetadataValue::I64(v) => (TYPE_I64, v.to_le_bytes().to_vec()),
            MetadataValue::F64(v) => (TYPE_F64, v.to_le_bytes().to_vec()),
        };
        out.extend_from_slice(&type_id.to_le_bytes());
        out.extend_from_slice(&payload);
    }

    /// The header: magic, version and counts.
    pub(crate) fn header(version: u32, tensor_count: u64, kv_count: u64) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(&tensor_count.to_le_bytes());
        out.extend_from_slice(&kv_count.to_le_bytes());
        out
    }

    /// One tensor info with an explicit type id and offset.
    pub(crate) fn tensor_info(out: &mut Vec<u8>, name: &str, dims: &[u64], type_id: u32, offset: u64) {
        string(out, name.as_bytes());
        out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for dim in dims {
            out.extend_from_slice(&dim.to_le_bytes());
        }
        out.extend_from_slice(&type_id.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
    }

    /// A whole, valid file: tensors laid out back to back, each aligned.
    pub(crate) fn file(kvs: &[(&str, MetadataValue)], tensors: &[(&str, &[u64], GgmlType)]) -> Vec<u8> {
        let alignment = kvs
            .iter()
            .find(|(key, _)| *key == ALIGNMENT_KEY)
            .and_then(|(_, value)| value.as_u64())
            .filter(|alignment| alignment.is_power_of_two())
            .unwrap_or(DEFAULT_ALIGNMENT_BYTES);
        let mut out = header(3, tensors.len() as u64, kvs.len() as u64);
        for (key, val) in kvs {
            string(&mut out, key.as_bytes());
            value(&mut out, val);
        }
        let mut offset = 0;
        let mut data_len = 0;
        for (name, dims, ggml_type) in tensors {
            tensor_info(&mut out, name, dims, ggml_type.id(), offset);
            let elements: u64 = dims.iter().product();
            let size = elements / ggml_type.block_size() * ggml_type.block_size_bytes();
            data_len = offset + size;
            offset = data_len.next_multiple_of(alignment);
        }
        if !tensors.is_empty() {
            // No padding after the last tensor, so any cut loses data.
            let data_start = (out.len() as u64).next_multiple_of(alignment);
            out.resize((data_start + data_len) as usize, 0xAB);
        }
        out
    }
}

#[cfg(test)]
mod tests;
