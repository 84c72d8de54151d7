//! Finding, fetching, validating and describing GGUF model files.
//!
//! Every model goes through [`GgufFile::open`] before llama.cpp sees it, because
//! llama.cpp aborts the process on some corrupt files. [`ModelInfo`] describes a
//! model for reports and for the hardware policies (layer sizes, KV-cache bytes),
//! [`pull`] downloads one, and [`resolve`] turns what the user typed into a path.

pub mod gguf;
pub mod info;
pub mod locate;
pub mod pull;

pub use gguf::{GgmlType, GgufError, GgufFile, GgufSection, MetadataArray, MetadataValue, TensorInfo};
pub use info::ModelInfo;
pub use locate::{DEFAULT_MODEL_FILE, LocateError, resolve, validate};
pub use pull::{PullError, PullOptions, pull};
