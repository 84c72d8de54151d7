//! Writing a model again at another quantization, with llama.cpp's own quantizer.
//!
//! [`quantize`] validates the source with [`ModelInfo::read`] first (llama.cpp
//! aborts the process on some corrupt files), refuses to overwrite the source
//! or, unless forced, any existing file, and writes to a temporary name beside
//! the output that is renamed only once llama.cpp succeeded: a failed or
//! interrupted run never leaves a half-written model under the output's name.
//! It does not choose between quantizations; see [`super::variants`].
//!
//! This is the one module of the model layer that calls llama.cpp's C API
//! directly: `llama-cpp-2` does not wrap `llama_model_quantize`.

// `unsafe_code` is denied crate-wide; the quantizer is a single C call with no
// safe wrapper, so this module allows it and keeps each block small and argued.
#![allow(unsafe_code)]

use crate::error::{Class, Classify};
use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;

use super::gguf::GgufError;
use super::info::{ModelInfo, format_mb};
use crate::choice::Choice;

/// The quantizations `workly model quantize` writes, named as llama.cpp's
/// `llama-quantize` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantType {
    /// 4-bit blocks with one scale.
    Q4_0,
    /// 4-bit blocks with a scale and a minimum.
    Q4_1,
    /// 5-bit blocks with one scale.
    Q5_0,
    /// 5-bit blocks with a scale and a minimum.
    Q5_1,
    /// 8-bit blocks: close to the 16-bit source.
    Q8_0,
    /// 2-bit k-quants: the smallest, the most damaged.
    Q2K,
    /// 3-bit k-quants, medium mix.
    Q3KM,
    /// 4-bit k-quants, medium mix: the usual compromise.
    Q4KM,
    /// 5-bit k-quants, medium mix.
    Q5KM,
    /// 6-bit k-quants.
    Q6K,
}

impl crate::choice::Choice for QuantType {
    const ALL: &'static [Self] = &[
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
        Self::Q2K,
        Self::Q3KM,
        Self::Q4KM,
        Self::Q5KM,
        Self::Q6K,
    ];
    fn name(self) -> &'static str {
        match self {
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Q5_0 => "q5_0",
            Self::Q5_1 => "q5_1",
            Self::Q8_0 => "q8_0",
            Self::Q2K => "q2_k",
            Self::Q3KM => "q3_k_m",
            Self::Q4KM => "q4_k_m",
            Self::Q5KM => "q5_k_m",
            Self::Q6K => "q6_k",
        }
    }
}

impl QuantType {
    /// llama.cpp's `enum llama_ftype` value for this type.
    fn ftype(self) -> llama_cpp_sys_2::llama_ftype {
        use llama_cpp_sys_2 as sys;
        match self {
            Self::Q4_0 => sys::LLAMA_FTYPE_MOSTLY_Q4_0,
            Self::Q4_1 => sys::LLAMA_FTYPE_MOSTLY_Q4_1,
            Self::Q5_0 => sys::LLAMA_FTYPE_MOSTLY_Q5_0,
            Self::Q5_1 => sys::LLAMA_FTYPE_MOSTLY_Q5_1,
            Self::Q8_0 => sys::LLAMA_FTYPE_MOSTLY_Q8_0,
            Self::Q2K => sys::LLAMA_FTYPE_MOSTLY_Q2_K,
            Self::Q3KM => sys::LLAMA_FTYPE_MOSTLY_Q3_K_M,
            Self::Q4KM => sys::LLAMA_FTYPE_MOSTLY_Q4_K_M,
            Self::Q5KM => sys::LLAMA_FTYPE_MOSTLY_Q5_K_M,
            Self::Q6K => sys::LLAMA_FTYPE_MOSTLY_Q6_K,
        }
    }
}

/// How to quantize.
#[derive(Debug, Clone, Copy)]
pub struct QuantizeOptions {
    /// The quantization to write.
    pub quant_type: QuantType,
    /// Replace an existing output file.
    pub force: bool,
    /// Forward llama.cpp's own log (per-tensor progress) to `tracing`.
    pub llama_logs: bool,
}

/// What a quantization produced.
#[derive(Debug, Clone, Serialize)]
pub struct QuantizeReport {
    /// The new file, described from its own metadata.
    pub output: ModelInfo,
    /// The source's size.
    pub input_size_bytes: u64,
    /// The source's quantization.
    pub input_quantization: String,
    /// Whether the source was already quantized (so quality is bounded by it).
    pub requantized: bool,
    /// Time llama.cpp took.
    pub elapsed_ms: f64,
}

/// Why a quantization failed; each message is one line.
#[derive(Debug, Error)]
pub enum QuantizeError {
    /// The source is not a valid model file.
    #[error(transparent)]
    Source(#[from] GgufError),
    /// The output names the source itself.
    #[error("the output {} is the source model: choose another file name", .path.display())]
    SameFile {
        /// The path given as output.
        path: PathBuf,
    },
    /// The output exists and `--force` was not given.
    #[error("{} already exists: pass --force to replace it", .path.display())]
    OutputExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A path cannot be passed to llama.cpp (it holds a NUL byte or is not UTF-8).
    #[error("the path {} cannot be passed to llama.cpp", .path.display())]
    BadPath {
        /// The path.
        path: PathBuf,
    },
    /// The temporary output could not be created or renamed into place.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// llama.cpp's backend could not start.
    #[error("{0}")]
    Backend(String),
    /// llama.cpp refused or failed (its log, with --verbose, says why).
    #[error("llama.cpp could not quantize {} to {quant_type} (run with --verbose for its log)", .path.display())]
    Failed {
        /// The source model.
        path: PathBuf,
        /// The quantization asked for.
        quant_type: String,
    },
    /// llama.cpp wrote a file that does not read back as a model.
    #[error("llama.cpp wrote an unreadable model: {0}")]
    Output(GgufError),
}

impl Classify for QuantizeError {
    /// Bad input when the user can fix it by changing the command line or the source file.
    fn class(&self) -> Class {
        match self {
            Self::Source(_) | Self::SameFile { .. } | Self::OutputExists { .. } | Self::BadPath { .. } => {
                Class::BadInput
            }
            Self::Write { .. } | Self::Backend(_) | Self::Failed { .. } | Self::Output(_) => Class::Failure,
        }
    }
}

/// Writes `input` quantized as `options.quant_type` to `output`, telling
/// progress on stderr (a start and an end line; llama.cpp's per-tensor log
/// with `--verbose`).
pub fn quantize(input: &Path, output: &Path, options: &QuantizeOptions) -> Result<QuantizeReport, QuantizeError> {
    let source = ModelInfo::read(input)?;
    check_output(input, output, options.force)?;
    let requantized = !is_unquantized(&source.quantization);
    let quant_type = options.quant_type.name();
    eprintln!(
        "workly: quantizing {} ({}, {}) to {quant_type}",
        source.file_name,
        source.quantization,
        format_mb(source.file_size_bytes)
    );
    if requantized {
        eprintln!(
            "workly: note: the source is already {}; the result cannot be better than it (quantize from F16 or F32 for the best quality)",
            source.quantization
        );
    }

    let dir = output.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let write_error = |source| QuantizeError::Write { path: output.to_path_buf(), source };
    // The temporary file lives beside the output, so the final rename stays on
    // one file system; it is deleted on any early return.
    let temporary = tempfile::Builder::new()
        .prefix(".workly-quantize-")
        .suffix(".gguf.partial")
        .tempfile_in(dir)
        .map_err(write_error)?;
    // A temporary file is private to its owner; the model gets the source's permissions.
    let permissions = std::fs::metadata(input).map(|metadata| metadata.permissions());
    permissions.and_then(|permissions| temporary.as_file().set_permissions(permissions)).map_err(write_error)?;
    crate::llm::llama_backend(options.llama_logs).map_err(|error| QuantizeError::Backend(error.to_string()))?;

    let started = Instant::now();
    let input_c = c_path(input)?;
    let temporary_c = c_path(temporary.path())?;
    // SAFETY: the function takes no arguments and returns a plain struct by value.
    let mut params = unsafe { llama_cpp_sys_2::llama_model_quantize_default_params() };
    params.ftype = options.quant_type.ftype();
    // Without it llama.cpp refuses a source whose tensors are already quantized;
    // the note above says what that costs.
    params.allow_requantize = requantized;
    // SAFETY: both paths are NUL-terminated strings that outlive the call, and
    // `params` is a valid struct from llama.cpp's defaults whose pointer fields
    // (imatrix, overrides, pruned layers) are left null as the defaults set them.
    let status = unsafe { llama_cpp_sys_2::llama_model_quantize(input_c.as_ptr(), temporary_c.as_ptr(), &params) };
    if status != 0 {
        return Err(QuantizeError::Failed { path: input.to_path_buf(), quant_type: quant_type.to_owned() });
    }
    let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
    // Read back before the rename: a file that does not parse never takes the output's name.
    ModelInfo::read(temporary.path()).map_err(QuantizeError::Output)?;
    temporary.persist(output).map_err(|error| write_error(error.error))?;
    let written = ModelInfo::read(output).map_err(QuantizeError::Output)?;
    eprintln!(
        "workly: wrote {} ({}, {}) in {:.1} s",
        output.display(),
        written.quantization,
        format_mb(written.file_size_bytes),
        elapsed_ms / 1e3
    );
    Ok(QuantizeReport {
        output: written,
        input_size_bytes: source.file_size_bytes,
        input_quantization: source.quantization,
        requantized,
        elapsed_ms,
    })
}

/// Whether a quantization name is a float format (no quantization to lose).
fn is_unquantized(quantization: &str) -> bool {
    matches!(quantization, "F32" | "F16" | "BF16")
}

/// Refuses an output that is the input (even with `--force`: the quantizer
/// reads the source while it writes) or that exists without `force`.
fn check_output(input: &Path, output: &Path, force: bool) -> Result<(), QuantizeError> {
    if !output.exists() {
        return Ok(());
    }
    let same = match (input.canonicalize(), output.canonicalize()) {
        (Ok(input), Ok(output)) => input == output,
        _ => false,
    };
    if same {
        return Err(QuantizeError::SameFile { path: output.to_path_buf() });
    }
    if !force {
        return Err(QuantizeError::OutputExists { path: output.to_path_buf() });
    }
    Ok(())
}

fn c_path(path: &Path) -> Result<CString, QuantizeError> {
    path.to_str()
        .and_then(|text| CString::new(text).ok())
        .ok_or_else(|| QuantizeError::BadPath { path: path.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_maps_to_its_llama_cpp_file_type() {
        // The ids llama.cpp stores in `general.file_type`, which `ModelInfo` names.
        let expected = [
            (QuantType::Q4_0, 2),
            (QuantType::Q4_1, 3),
            (QuantType::Q8_0, 7),
            (QuantType::Q5_0, 8),
            (QuantType::Q5_1, 9),
            (QuantType::Q2K, 10),
            (QuantType::Q3KM, 12),
            (QuantType::Q4KM, 15),
            (QuantType::Q5KM, 17),
            (QuantType::Q6K, 18),
        ];
        for (quant_type, ftype) in expected {
            assert_eq!(quant_type.ftype(), ftype, "{quant_type:?}");
        }
        assert_eq!(QuantType::Q4KM.name(), "q4_k_m");
    }

    #[test]
    fn refuses_the_source_and_existing_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let input = dir.path().join("in.gguf");
        let other = dir.path().join("other.gguf");
        std::fs::write(&input, b"GGUF").expect("write");
        std::fs::write(&other, b"GGUF").expect("write");
        let aliased = dir.path().join(".").join("in.gguf");
        assert!(matches!(check_output(&input, &aliased, true), Err(QuantizeError::SameFile { .. })));
        assert!(matches!(check_output(&input, &other, false), Err(QuantizeError::OutputExists { .. })));
        assert!(check_output(&input, &other, true).is_ok());
        assert!(check_output(&input, &dir.path().join("new.gguf"), false).is_ok());
    }

    #[test]
    fn a_bad_source_is_refused_before_llama_cpp_sees_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let input = dir.path().join("broken.gguf");
        std::fs::write(&input, b"not a model").expect("write");
        let options = QuantizeOptions { quant_type: QuantType::Q4_0, force: false, llama_logs: false };
        let error = quantize(&input, &dir.path().join("out.gguf"), &options).expect_err("broken source");
        assert!(matches!(error, QuantizeError::Source(_)), "{error}");
        assert_eq!(error.class(), Class::BadInput);
        assert!(!dir.path().join("out.gguf").exists());
    }
}
