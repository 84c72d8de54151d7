//! Finding, fetching, validating and describing GGUF model files.
//!
//! Every model goes through [`GgufFile::open`] before llama.cpp sees it, because
//! llama.cpp aborts the process on some corrupt files. [`ModelInfo`] describes a
//! model for reports and for the hardware policies (layer sizes, KV-cache bytes),
//! [`known`] holds the models Workly has measured (the default among them),
//! [`pull`] downloads one, [`resolve`] turns what the user typed into a path,
//! [`quantize`] writes a model at another quantization and [`variants`] picks
//! among quantizations of one model kept side by side (`--mode fast|quality`).

pub mod gguf;
pub mod info;
pub mod known;
pub mod locate;
pub mod pull;
pub mod quantize;
pub mod variants;

pub use gguf::{GgmlType, GgufError, GgufFile, GgufSection, MetadataArray, MetadataValue, TensorInfo};
pub use info::ModelInfo;
pub use locate::{DEFAULT_MODEL_FILE, LocateError, resolve, validate};
pub use pull::{PullError, PullOptions, pull};
pub use quantize::{QuantType, QuantizeError, QuantizeOptions, QuantizeReport, quantize};
pub use variants::{ModeChoice, ModelMode};
