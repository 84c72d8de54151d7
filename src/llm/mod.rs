//! The LLM engine: llama.cpp behind a cheap, cloneable handle.
//!
//! llama.cpp's model and context are not `Send`, so one dedicated OS thread
//! owns them ([`llama`]); the rest of Workly holds an [`Engine`] handle
//! ([`engine`]; what it speaks is in [`generation`]) and talks to that thread over a bounded channel, getting
//! tokens back on a per-request channel. The thread serves the handle through
//! a small seam ([`worker`]), where a scripted worker ([`scripted`]) can stand
//! in for the model in tests. The thread keeps the conversation's KV cache between
//! requests and evaluates only what it has not seen ([`cache`]), renders chat
//! templates ([`template`]), keeps the persona's KV state on disk between runs
//! ([`prompt_cache`]), samples ([`sampling`]) and turns token bytes into
//! displayable text that stops cleanly at stop strings ([`stream`]).
//!
//! The same handle can stand in front of a server on another machine
//! ([`remote`]): an OpenAI-compatible engine answers through the same seam.
//! A local model can also be spread over other machines' workers with
//! llama.cpp's RPC backend ([`rpc`]).
//!
//! This module does not know about personas, history or storage: it takes
//! messages and returns text and measurements.

pub mod cache;
pub mod embed;
pub mod engine;
pub mod generation;
mod llama;
pub mod prompt_cache;
pub mod remote;
pub mod rpc;
pub mod sampling;
pub mod scripted;
pub mod stream;
pub mod template;
mod worker;

pub(crate) use llama::backend as llama_backend;

pub use engine::{Backend, Engine, Generation};
pub use generation::{
    CancelToken, EngineConfig, EngineInfo, FinishReason, FlashAttention, GenerationEvent, GenerationRequest,
    GenerationStats, KvCacheType, PerplexityReport, Prompt,
};
pub use sampling::SamplingParams;
pub use template::{Message, Role};

/// Everything that can go wrong in the engine, one line each.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The GGUF file failed validation before llama.cpp saw it.
    #[error(transparent)]
    Model(#[from] crate::model::GgufError),
    /// llama.cpp could not load a file that looked valid.
    #[error(
        "llama.cpp could not load model `{path}` (corrupt tensors, an unsupported architecture, or not enough memory)"
    )]
    Load {
        /// The model file.
        path: String,
    },
    /// llama.cpp could not create a context with these settings.
    #[error("llama.cpp could not create a context of {context_size} tokens for `{path}` (not enough memory?)")]
    Context {
        /// The model file.
        path: String,
        /// The context size asked for.
        context_size: u32,
    },
    /// The chat template is missing or failed.
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    /// Sampling settings out of range.
    #[error(transparent)]
    Sampling(#[from] sampling::SamplingError),
    /// The prompt alone does not fit the context.
    #[error(
        "the prompt is {prompt_tokens} tokens but the context holds {context_size}: shorten the message or raise --context-size"
    )]
    PromptTooLong {
        /// Tokens in the prompt.
        prompt_tokens: usize,
        /// Tokens the context holds.
        context_size: usize,
    },
    /// The prompt rendered to no tokens.
    #[error("the prompt is empty")]
    EmptyPrompt,
    /// A GPU choice llama.cpp (or this binding of it) cannot follow.
    #[error("{0}")]
    Gpu(String),
    /// llama.cpp failed while evaluating tokens.
    #[error("llama.cpp failed to evaluate the prompt: {0}")]
    Decode(String),
    /// The engine thread is gone (it panicked or was shut down).
    #[error("the engine thread has stopped")]
    Stopped,
    /// The remote back-end failed or refused.
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
    /// An RPC worker could not be used.
    #[error(transparent)]
    Rpc(#[from] rpc::RpcError),
    /// Something only the local engine does was asked of a remote back-end.
    #[error("{0} needs a local model: a remote back-end cannot do it")]
    LocalOnly(&'static str),
}

impl crate::error::Classify for LlmError {
    /// Bad input when the model, its template, the settings or the prompt
    /// are; a failure when llama.cpp fails on good input.
    fn class(&self) -> crate::error::Class {
        use crate::error::Class;
        match self {
            LlmError::Model(_)
            | LlmError::Template(_)
            | LlmError::Sampling(_)
            | LlmError::PromptTooLong { .. }
            | LlmError::Gpu(_)
            | LlmError::EmptyPrompt
            | LlmError::LocalOnly(_) => Class::BadInput,
            LlmError::Remote(error) => error.class(),
            LlmError::Rpc(error) => error.class(),
            LlmError::Load { .. } | LlmError::Context { .. } | LlmError::Decode(_) | LlmError::Stopped => {
                Class::Failure
            }
        }
    }
}
