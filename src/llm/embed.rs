//! Sentence embeddings: a small embedding model (multilingual-e5-small by
//! default) run by llama.cpp on a thread of its own, for the memory's
//! semantic recall.
//!
//! llama.cpp's context is not `Send`, so one thread owns the model and its
//! context, as the chat engine's does, and [`Embedder`] is the cheap handle
//! that sends it texts. Each text is one sequence, pooled by the model's own
//! rule (mean for e5) and scaled to unit length, so a dot product is the
//! cosine similarity.
//!
//! e5 was trained with a `query: ` prefix on what is looked for and
//! `passage: ` on what is found. Workly gives every text the first, memories
//! and messages alike: a question asked in other words than its memory
//! ("what's my other half called?", "my husband Tomasz…") then lands nearer
//! it, most of all in French (`workly-bench recall`, docs/PERFORMANCE.md).

use super::LlmError;
use super::llama::backend;
use llama_cpp_2::context::params::{LlamaContextParams, LlamaPoolingType};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// The embedding model's file in the models folder, as the set-up makes it.
pub const DEFAULT_FILE: &str = "multilingual-e5-small-q4_0.gguf";

/// Most tokens of a text that count (e5 was trained on 512; a memory or a
/// question is far shorter).
const MAX_TOKENS: u32 = 512;

/// What e5 reads before every text (see the module's comment).
const PREFIX: &str = "query: ";

/// A request to the embedding thread.
type Request = (Vec<String>, mpsc::Sender<Result<Vec<Vec<f32>>, LlmError>>);

/// The handle of a loaded embedding model; clones share the thread.
#[derive(Debug, Clone)]
pub struct Embedder {
    requests: mpsc::Sender<Request>,
    dimensions: usize,
    path: PathBuf,
}

impl Embedder {
    /// Loads the embedding model at `path` on a thread of its own, which
    /// uses `threads` threads to evaluate; returns once it is loaded.
    pub fn load(path: &Path, threads: usize) -> Result<Self, LlmError> {
        let (requests, inbox) = mpsc::channel::<Request>();
        let (loaded, ready) = mpsc::channel();
        let owned = path.to_path_buf();
        std::thread::Builder::new()
            .name("embedder".into())
            .spawn(move || run(&owned, threads, inbox, loaded))
            .map_err(|error| LlmError::Decode(format!("cannot start the embedding thread: {error}")))?;
        let dimensions = ready.recv().map_err(|_| LlmError::Stopped)??;
        Ok(Self { requests, dimensions, path: path.to_path_buf() })
    }

    /// The length of every embedding.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// The model's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The unit-length embedding of each of `texts`.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, LlmError> {
        let (reply, answer) = mpsc::channel();
        let texts = texts.iter().map(|text| format!("{PREFIX}{text}")).collect();
        self.requests.send((texts, reply)).map_err(|_| LlmError::Stopped)?;
        answer.recv().map_err(|_| LlmError::Stopped)?
    }
}

/// The embedding thread: loads the model, says so on `loaded`, then answers
/// requests until every handle is gone.
fn run(path: &Path, threads: usize, inbox: mpsc::Receiver<Request>, loaded: mpsc::Sender<Result<usize, LlmError>>) {
    let display = path.display().to_string();
    let model = backend(false).and_then(|backend| {
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|_| LlmError::Load { path: display.clone() })?;
        Ok((backend, model))
    });
    let (backend, model) = match model {
        Ok(loaded) => loaded,
        Err(error) => {
            let _ = loaded.send(Err(error));
            return;
        }
    };
    let n_ctx = MAX_TOKENS.min(model.n_ctx_train().max(1));
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_ctx)
        .with_n_ubatch(n_ctx)
        .with_n_threads(threads.max(1) as i32)
        .with_n_threads_batch(threads.max(1) as i32)
        .with_embeddings(true)
        .with_pooling_type(LlamaPoolingType::Mean);
    let mut context = match model.new_context(backend, params) {
        Ok(context) => context,
        Err(_) => {
            let _ = loaded.send(Err(LlmError::Context { path: display, context_size: n_ctx }));
            return;
        }
    };
    let dimensions = usize::try_from(model.n_embd()).unwrap_or(0);
    if loaded.send(Ok(dimensions)).is_err() {
        return;
    }
    for (texts, reply) in inbox {
        let embeddings = texts
            .iter()
            .map(|text| {
                // With the model's own special tokens (e5's `<s>` and `</s>`),
                // and no special token read from the text.
                let mut tokens = model.vocab().tokenize(text.as_bytes(), true, false);
                if tokens.is_empty() {
                    return Err(LlmError::EmptyPrompt);
                }
                // Kept whole up to the limit: the end of a long text is dropped, its separator kept.
                if tokens.len() > n_ctx as usize {
                    let last = tokens[tokens.len() - 1];
                    tokens.truncate(n_ctx as usize - 1);
                    tokens.push(last);
                }
                let mut batch = LlamaBatch::new(tokens.len(), 1);
                for (position, &token) in tokens.iter().enumerate() {
                    batch
                        .add(token, position as i32, &[0], true)
                        .map_err(|error| LlmError::Decode(error.to_string()))?;
                }
                context.clear_kv_cache();
                context.decode(&mut batch).map_err(|error| LlmError::Decode(error.to_string()))?;
                let pooled = context.embeddings_seq_ith(0).map_err(|error| LlmError::Decode(error.to_string()))?;
                Ok(unit(pooled))
            })
            .collect();
        // The asker may have gone (a cancelled turn): nothing to do then.
        let _ = reply.send(embeddings);
    }
}

/// `vector` scaled to length 1 (left as it is when it is all zeros).
fn unit(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|value| value * value).sum::<f32>().sqrt();
    if norm == 0.0 { vector.to_vec() } else { vector.iter().map(|value| value / norm).collect() }
}
