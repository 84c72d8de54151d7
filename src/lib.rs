//! Workly: a local-first AI desktop companion.
//!
//! A person chats with "Kira"; a local GGUF model run by llama.cpp answers as a
//! stream of tokens. The library holds everything testable; `main.rs` only parses
//! the command line and maps errors to exit codes.
//!
//! # Layout
//! - [`choice`]: settings with a fixed set of named values.
//! - [`config`]: what settings resolve to and the directories Workly reads
//!   and writes.
//! - [`hardware`]: what the machine has and the policies that follow from it
//!   (threads, GPU layers, context and batch sizes).
//! - [`model`]: finding, fetching, validating and describing GGUF files.
//! - [`llm`]: the engine thread that owns llama.cpp, generation, sampling,
//!   streaming, cancellation and KV-cache reuse.
//! - [`emotion`]: the six emotions, reading them from a reply's tags and words,
//!   smoothed over the turn, and their avatar expressions.
//! - [`avatar`]: the avatar bridge: director, batcher, Unity and VMC transports.
//! - [`chat`]: the persona, the conversation fitted to the context, and the
//!   one chat turn every door runs.
//! - [`memory`]: Kira's long-term memory of the person: facts found in what
//!   they say, recalled into the prompt when a new message touches them.
//! - [`server`]: `workly serve`, the OpenAI-compatible API and its protections.
//! - [`store`]: conversations and memories in SQLite, full-text search.
//! - [`voice`]: Kira's voice: text to speech (Kokoro), speech to text
//!   (Whisper), voice activity, audio files.
//! - [`vrm`]: the default avatar Workly generates (VRM 1.0, glTF binary).
//! - [`bench`]: the benchmarks a user tunes Workly with (threads, GPU layers,
//!   a chat end to end), returning serde reports; the developer's
//!   instruments that build on them are the `workly-bench` binary's.
//! - [`error`]: every error's class (bad input or a failure) and the error a
//!   command ends with, which keeps it; the exit code is made from it.
//! - [`cli`]: the command-line surface, the resolution of settings, exit
//!   codes, and one runner per command.

pub mod avatar;
pub mod bench;
pub mod chat;
pub mod choice;
pub mod cli;
pub mod config;
pub mod emotion;
pub mod error;
pub mod hardware;
pub mod llm;
pub mod memory;
pub mod model;
pub mod server;
pub mod store;
pub mod voice;
pub mod vrm;

/// The version of this Workly library (and of the `workly` binary built with it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
