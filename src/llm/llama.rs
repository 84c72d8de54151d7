//! The llama.cpp worker: the engine thread's owner of the model, its context
//! and its KV cache.
//!
//! [`run`] loads the model, creates the context, warms both the prefill and
//! the decode path (so the first reply is as fast as the tenth) and then
//! serves the handle's commands ([`super::worker::serve`]).
//!
//! The worker keeps one sequence in the KV cache together with the list of
//! tokens it holds. Each request is planned against that list
//! ([`super::cache::plan_reuse`]): the common prefix is kept, later chunks are
//! shifted into place, and only new tokens are prefilled. Sliding-window models
//! (Gemma 3) get a full-size window cache so that trimming works, and a check
//! of the oldest cached position falls back to a full prefill if llama.cpp has
//! dropped cells the reuse would need.
//!
//! Idle time is used too: warm-up restores (or computes and saves) the
//! persona's KV state ([`super::prompt_cache`]), and after each chat reply the
//! worker evaluates the template's header of the next user turn, so a new
//! message only prefills its own tokens. The persona may open a conversation
//! in several ways (one system prompt per language): warm-up keeps each
//! opening's state in memory, and a request that starts with one the cache no
//! longer holds loads it back ([`super::cache::pick_snapshot`]) in a
//! millisecond instead of prefilling it again.

use super::LlmError;
use super::cache::{self, KvEdit};
use super::generation::{
    CancelToken, EngineConfig, EngineInfo, FinishReason, FlashAttention, GenerationEvent, GenerationStats, KvCacheType,
    PerplexityReport, Prompt,
};
use super::prompt_cache;
use super::sampling::Sampler;
use super::stream::TextStream;
use super::template::{ChatTemplate, Message, Role, TemplateError};
use super::worker::{self, Inbox, Job, Ready, Worker};
use crate::hardware::SplitMode;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{self as context_params, LlamaContextParams};
use llama_cpp_2::context::session::{LlamaStateSeqFlags, SeqState};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::{LlamaModelParams, LlamaSplitMode};
use llama_cpp_2::model::{LlamaModel, RopeType};
use llama_cpp_2::token::LlamaToken;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

/// Shortest cached run worth shifting into place instead of recomputing.
const MIN_REUSE_CHUNK: usize = 16;
/// The one sequence id the engine uses.
const SEQ: i32 = 0;
/// Longest a door's pause holds a reply between two tokens (a voice making
/// a first sentence takes well under a second).
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(3);

/// llama.cpp's backend is process-wide and may be initialised only once.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// llama.cpp's backend, initialised on first use (the engine and the
/// quantizer share it); `llama_logs` of the first caller decides whether
/// llama.cpp's log reaches `tracing`.
pub(crate) fn backend(llama_logs: bool) -> Result<&'static LlamaBackend, LlmError> {
    BACKEND
        .get_or_init(|| {
            // llama.cpp prints to stderr unless told otherwise; route it to tracing,
            // where it is silent unless --verbose or RUST_LOG asks for it.
            crate::hardware::route_llama_logs(llama_logs);
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LlmError::Decode(format!("backend initialisation failed: {e}")))
}

/// llama.cpp's model parameters for `config`: GPU layers and the multi-GPU split.
///
/// A build without a GPU backend has no GPU device: the multi-GPU flags,
/// warned about when they were read, are then left out. Otherwise a
/// `tensor_split` is refused rather than silently dropped: llama-cpp-2
/// 0.1.160 has no setter for it (only its automatic `fit_params` fills it).
/// Without one llama.cpp splits by each GPU's free memory, which is what
/// Workly's plan assumes. GPU n is the n-th of the GPUs llama.cpp uses, as
/// `workly doctor` numbers them.
fn model_params(config: &EngineConfig) -> Result<LlamaModelParams, LlmError> {
    let gpus = &config.gpus;
    let split_mode = match gpus.split_mode {
        SplitMode::None => LlamaSplitMode::None,
        SplitMode::Layer => LlamaSplitMode::Layer,
        SplitMode::Row => LlamaSplitMode::Row,
    };
    let mut params = LlamaModelParams::default().with_n_gpu_layers(config.gpu_layers).with_split_mode(split_mode);
    // ggml numbers every backend device, the CPU included; Workly numbers GPUs only.
    let backend_gpus: Vec<usize> =
        crate::hardware::backend_gpus(config.llama_logs).into_iter().map(|(device, _)| device).collect();
    if backend_gpus.is_empty() {
        return Ok(params);
    }
    if !gpus.tensor_split.is_empty() {
        return Err(LlmError::Gpu(
            "--tensor-split cannot be passed to llama.cpp yet (this binding has no setter for it); \
             `workly doctor` plans with it, and --devices picks the GPUs"
                .to_owned(),
        ));
    }
    let backend_index = |gpu: u32| {
        backend_gpus.get(gpu as usize).copied().ok_or_else(|| {
            LlmError::Gpu(format!("llama.cpp sees {} GPUs, so there is no GPU {gpu} to use", backend_gpus.len()))
        })
    };
    if !gpus.devices.is_empty() {
        let devices = gpus.devices.iter().map(|&gpu| backend_index(gpu)).collect::<Result<Vec<_>, _>>()?;
        params = params.with_devices(&devices).map_err(|error| LlmError::Gpu(error.to_string()))?;
    }
    if let Some(main) = gpus.main_gpu {
        backend_index(main)?;
        // llama.cpp's main_gpu is a position in the list of devices it uses.
        let position = match gpus.devices.as_slice() {
            [] => Some(main as usize),
            devices => devices.iter().position(|&gpu| gpu == main),
        };
        let position = position
            .and_then(|position| i32::try_from(position).ok())
            .ok_or_else(|| LlmError::Gpu(format!("--main-gpu {main} is not among the GPUs used")))?;
        params = params.with_main_gpu(position);
    }
    Ok(params)
}

/// The engine thread's life with llama.cpp: loads the model, creates the
/// context, warms it, says it is ready (or why not), then serves `inbox`.
pub(super) fn run(config: EngineConfig, inbox: Inbox, ready: Ready) {
    let started = Instant::now();
    let path = config.model.path.clone();
    let loaded = backend(config.llama_logs).and_then(|backend| {
        super::rpc::connect(&config.rpc)?;
        let params = model_params(&config)?;
        LlamaModel::load_from_file(backend, &path, &params)
            .map(|model| (backend, model))
            .map_err(|_| LlmError::Load { path: path.display().to_string() })
    });
    let (backend, model) = match loaded {
        Ok(pair) => pair,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let worker = LlamaWorker::new(&model, backend, &config, inbox);
    let mut worker = match worker {
        Ok(worker) => worker,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let warm_started = Instant::now();
    let (warm_tokens, warm_from_disk) = match worker.warm_up(&config.warmup, config.prompt_cache.as_deref()) {
        Ok(warm) => warm,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    let info = EngineInfo {
        model_path: path,
        model_name: config.model.name.clone().unwrap_or_else(|| config.model.file_name.clone()),
        context_size: worker.n_ctx as u32,
        threads_decode: config.threads_decode,
        threads_prefill: config.threads_prefill,
        gpu_layers: config.gpu_layers,
        batch_size: config.batch_size,
        flash_attention: config.flash_attention,
        can_shift: worker.can_shift,
        load_ms,
        warmup_ms: warm_started.elapsed().as_secs_f64() * 1e3,
        warm_tokens,
        warm_from_disk,
        remote: None,
    };
    if ready.send(Ok(info)).is_err() {
        return;
    }
    worker::serve(&mut worker);
}

fn kv_type(kind: KvCacheType) -> context_params::KvCacheType {
    match kind {
        KvCacheType::F16 => context_params::KvCacheType::F16,
        KvCacheType::Q8_0 => context_params::KvCacheType::Q8_0,
    }
}

/// The state owned by the engine thread.
struct LlamaWorker<'m> {
    model: &'m LlamaModel,
    model_path: &'m Path,
    ctx: LlamaContext<'m>,
    template: Option<ChatTemplate>,
    template_error: Option<String>,
    /// Tokens in the KV cache; position `i` holds `cached[i]`.
    cached: Vec<i32>,
    batch: LlamaBatch<'static>,
    n_ctx: usize,
    n_batch: usize,
    can_shift: bool,
    sliding_window: Option<usize>,
    /// What a saved KV state depends on besides the model and tokens.
    cache_layout: String,
    /// The engine's commands.
    inbox: Inbox,
    /// The warmed conversation openings, ready to be loaded back.
    snapshots: Vec<Snapshot>,
}

/// A sequence's KV state kept in memory, and the tokens it holds.
struct Snapshot {
    tokens: Vec<i32>,
    state: SeqState,
}

/// Prompt tokens per batch in an aside job: small, so that the person's next
/// message, which cancels it, waits for one batch at most (32 tokens of a
/// 0.5B model take about 0.1 s on two cores).
const ASIDE_BATCH: usize = 32;

/// Fewest tokens a snapshot must add to what the cache keeps to be loaded:
/// loading copies the whole state, which costs about as much as evaluating a
/// few tokens.
const MIN_SNAPSHOT_GAIN: usize = 8;

impl<'m> LlamaWorker<'m> {
    fn new(
        model: &'m LlamaModel,
        backend: &LlamaBackend,
        config: &'m EngineConfig,
        inbox: Inbox,
    ) -> Result<Self, LlmError> {
        let info = &config.model;
        let n_ctx = config.context_size.clamp(64, model.n_ctx_train().max(64));
        let n_batch = config.batch_size.clamp(1, n_ctx);
        let context_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch)
            .with_n_seq_max(1)
            .with_n_threads(config.threads_decode.max(1) as i32)
            .with_n_threads_batch(config.threads_prefill.max(1) as i32)
            // A full-size sliding-window cache can be trimmed like a plain one, which
            // cross-turn reuse needs; for the small models Workly targets it costs
            // little memory.
            .with_swa_full(info.sliding_window.is_some())
            .with_type_k(kv_type(config.kv_cache_type))
            .with_type_v(kv_type(config.kv_cache_type))
            .with_flash_attention_policy(match config.flash_attention {
                // llama.cpp's LLAMA_FLASH_ATTN_TYPE_{AUTO,ENABLED,DISABLED}
                FlashAttention::Auto => -1,
                FlashAttention::On => 1,
                FlashAttention::Off => 0,
            });
        let ctx = model
            .new_context(backend, context_params)
            .map_err(|_| LlmError::Context { path: info.path.display().to_string(), context_size: n_ctx })?;
        // K-shift re-rotates keys; it exists for plain RoPE only (not M-RoPE or recurrent state).
        let can_shift = !model.is_recurrent()
            && !model.is_hybrid()
            && matches!(model.rope_type(), Some(RopeType::Norm | RopeType::NeoX));
        // A bad override is a usage error, reported now; a model without a usable
        // template can still serve raw-text prompts, so that error waits for a chat.
        let (template, template_error) = match Self::build_template(model, config) {
            Ok(template) => (Some(template), None),
            Err(error) if config.chat_template.is_some() => return Err(error),
            Err(error) => (None, Some(error.to_string())),
        };
        Ok(Self {
            model,
            model_path: &config.model.path,
            ctx,
            template,
            template_error,
            cached: Vec::new(),
            batch: LlamaBatch::new(n_batch as usize, 1),
            n_ctx: n_ctx as usize,
            n_batch: n_batch as usize,
            can_shift,
            sliding_window: info.sliding_window.map(|w| w as usize),
            // The cell type, the window and the attention kernel (which decides
            // whether V is stored transposed) all change a state's bytes.
            cache_layout: format!(
                "swa_full={} kv={:?} flash_attention={:?}",
                info.sliding_window.is_some(),
                config.kv_cache_type,
                config.flash_attention
            ),
            inbox,
            snapshots: Vec::new(),
        })
    }

    fn build_template(model: &LlamaModel, config: &EngineConfig) -> Result<ChatTemplate, LlmError> {
        let source = ChatTemplate::resolve(
            config.chat_template.as_deref(),
            config.model.chat_template.as_deref(),
            &config.model.file_name,
        )?;
        let vocab = model.vocab();
        let piece = |token: LlamaToken| String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)).into_owned();
        Ok(ChatTemplate::new(&source, &piece(vocab.bos()), &piece(vocab.eos()))?)
    }

    fn tokenize(&self, text: &str, add_bos: bool) -> Vec<i32> {
        let vocab = self.model.vocab();
        let mut tokens: Vec<i32> = vocab.tokenize(text.as_bytes(), false, true).into_iter().map(|t| t.0).collect();
        // Templates that print `bos_token` themselves must not get a second one.
        if add_bos && vocab.should_add_bos() && tokens.first() != Some(&vocab.bos().0) {
            tokens.insert(0, vocab.bos().0);
        }
        tokens
    }

    /// Tokens of `prompt`, and how many leading tokens belong to the system
    /// prompt (kept when the context shifts).
    fn tokenize_prompt(&self, prompt: &Prompt) -> Result<(Vec<i32>, usize), LlmError> {
        match prompt {
            Prompt::Text(text) => Ok((self.tokenize(text, true), 0)),
            Prompt::Messages(messages) => {
                let template = self.template()?;
                let tokens = self.tokenize(&template.render(messages, true)?, true);
                let system: Vec<Message> = messages.iter().take_while(|m| m.role == Role::System).cloned().collect();
                let keep = if system.is_empty() {
                    0
                } else {
                    // Templates may refuse a system-only conversation; then keep nothing.
                    template
                        .render(&system, false)
                        .map(|text| cache::common_prefix(&self.tokenize(&text, true), &tokens))
                        .unwrap_or(0)
                };
                Ok((tokens, keep))
            }
        }
    }

    fn template(&self) -> Result<&ChatTemplate, LlmError> {
        self.template
            .as_ref()
            .ok_or_else(|| TemplateError::Unavailable(self.template_error.clone().unwrap_or_default()).into())
    }

    fn clear(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }

    /// Runs both graphs once (a prefill batch and a single-token decode) so the
    /// weights are paged in and the thread pool is up before the first request.
    /// Each opening's tokens (up to the next user message) are restored from
    /// disk or prefilled, and kept as a snapshot; the first opening stays
    /// cached, so the first reply prefills only the user's message.
    /// Returns the tokens left cached and whether every opening came from the
    /// prompt cache on disk.
    fn warm_up(&mut self, openings: &[Vec<Message>], prompt_cache: Option<&Path>) -> Result<(usize, bool), LlmError> {
        let mut prefixes: Vec<Vec<i32>> = Vec::new();
        for messages in openings.iter().filter(|messages| !messages.is_empty()) {
            let prefix = self.next_turn_prefix(messages).unwrap_or_default();
            if !prefix.is_empty() && prefix.len() + 2 <= self.n_ctx && !prefixes.contains(&prefix) {
                prefixes.push(prefix);
            }
        }
        // The first opening goes last, so it is the one left in the cache.
        let mut restored_all = !prefixes.is_empty();
        for prefix in prefixes.iter().rev() {
            self.clear();
            let saved =
                prompt_cache.map(|dir| prompt_cache::path_for(dir, self.model_path, prefix, &self.cache_layout));
            let restored = saved.as_deref().is_some_and(|path| self.restore(path, prefix));
            if !restored {
                self.prefill(prefix, self.n_batch, &CancelToken::new())?;
                if let Some(path) = &saved {
                    self.save(path);
                }
            }
            restored_all &= restored;
            match self.ctx.state_seq_get(SEQ, LlamaStateSeqFlags::empty()) {
                Ok(state) => self.snapshots.push(Snapshot { tokens: prefix.clone(), state }),
                Err(error) => tracing::warn!(%error, "cannot keep a snapshot of a conversation opening"),
            }
        }
        if prefixes.is_empty() {
            self.prefill(&[self.model.vocab().bos().0], self.n_batch, &CancelToken::new())?;
        }
        // One single-token step: the decode path has its own graph and thread
        // count, and it touches every weight, paging the model in.
        let kept = self.cached.len();
        self.decode_one(*self.cached.last().unwrap_or(&0))?;
        self.cached.pop();
        self.remove_from(kept)?;
        if prefixes.is_empty() {
            self.clear();
        }
        self.ctx.synchronize();
        Ok((self.cached.len(), restored_all))
    }

    /// Loads the snapshot that keeps more of `prompt` than the cache would,
    /// if there is one; the reuse plan then starts from it.
    /// `current`: the tokens the cache's own plan keeps. Returns whether the
    /// cache changed.
    fn load_snapshot_for(&mut self, prompt: &[i32], current: usize) -> bool {
        let candidates = self.snapshots.iter().map(|snapshot| snapshot.tokens.as_slice());
        let Some(index) = cache::pick_snapshot(candidates, prompt, current, MIN_SNAPSHOT_GAIN) else { return false };
        self.clear();
        let snapshot = &self.snapshots[index];
        match self.ctx.state_seq_set(&snapshot.state, SEQ) {
            Ok(()) => self.cached.clone_from(&snapshot.tokens),
            Err(error) => {
                tracing::warn!(%error, "cannot load a snapshot; dropping it");
                self.clear();
                self.snapshots.remove(index);
            }
        }
        true
    }

    /// Shortest run of cached tokens worth shifting into place (0: none, for
    /// caches that cannot shift).
    fn min_chunk(&self) -> usize {
        if self.can_shift { MIN_REUSE_CHUNK } else { 0 }
    }

    /// Loads a saved prompt state; true when it holds exactly `tokens`.
    fn restore(&mut self, path: &Path, tokens: &[i32]) -> bool {
        if !path.is_file() {
            return false;
        }
        match self.ctx.state_seq_load_file(path, SEQ, tokens.len()) {
            Ok((loaded, _)) if loaded.iter().map(|t| t.0).eq(tokens.iter().copied()) => {
                self.cached = tokens.to_vec();
                true
            }
            outcome => {
                tracing::warn!(path = %path.display(), ?outcome, "discarding an unusable saved prompt state");
                self.clear();
                let _ = std::fs::remove_file(path);
                false
            }
        }
    }

    /// Saves the cached prompt's state for the next start; failures only cost
    /// that start a prefill, so they are logged, not raised.
    fn save(&self, path: &Path) {
        let Some(dir) = path.parent() else { return };
        let temporary = prompt_cache::temporary_path(path);
        let tokens: Vec<LlamaToken> = self.cached.iter().map(|&t| LlamaToken(t)).collect();
        let saved = std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| self.ctx.state_seq_save_file(&temporary, SEQ, &tokens).map_err(|e| e.to_string()))
            .and_then(|_| std::fs::rename(&temporary, path).map_err(|e| e.to_string()));
        match saved {
            Ok(()) => prompt_cache::prune(dir),
            Err(error) => {
                let _ = std::fs::remove_file(&temporary);
                tracing::warn!(path = %path.display(), %error, "cannot save the prompt state");
            }
        }
    }

    fn remove_from(&mut self, start: usize) -> Result<(), LlmError> {
        self.ctx.kv_cache_seq_rm(SEQ, Some(start as u32), None).map_err(|e| LlmError::Decode(e.to_string()))
    }

    /// Evaluates `tokens` after what is cached, in batches of `batch`; logits
    /// only for the last.
    fn prefill(&mut self, tokens: &[i32], batch: usize, cancel: &CancelToken) -> Result<bool, LlmError> {
        for (index, chunk) in tokens.chunks(batch).enumerate() {
            self.answer_counts();
            if cancel.is_cancelled() {
                return Ok(false);
            }
            let last_chunk = (index + 1) * batch >= tokens.len();
            self.batch.clear();
            for (offset, &token) in chunk.iter().enumerate() {
                let position = (self.cached.len() + offset) as i32;
                let logits = last_chunk && offset + 1 == chunk.len();
                self.batch
                    .add(LlamaToken(token), position, &[SEQ], logits)
                    .map_err(|e| LlmError::Decode(e.to_string()))?;
            }
            self.ctx.decode(&mut self.batch).map_err(|e| LlmError::Decode(e.to_string()))?;
            self.cached.extend_from_slice(chunk);
        }
        Ok(true)
    }

    fn decode_one(&mut self, token: i32) -> Result<(), LlmError> {
        self.batch.clear();
        self.batch
            .add(LlamaToken(token), self.cached.len() as i32, &[SEQ], true)
            .map_err(|e| LlmError::Decode(e.to_string()))?;
        self.ctx.decode(&mut self.batch).map_err(|e| LlmError::Decode(e.to_string()))?;
        self.cached.push(token);
        Ok(())
    }

    fn apply(&mut self, edits: &[KvEdit]) -> Result<(), LlmError> {
        for edit in edits {
            match *edit {
                KvEdit::Remove { start, end } => {
                    let end = (end != usize::MAX).then_some(end as u32);
                    self.ctx
                        .kv_cache_seq_rm(SEQ, Some(start as u32), end)
                        .map_err(|e| LlmError::Decode(e.to_string()))?;
                }
                KvEdit::Shift { start, end, delta } => {
                    self.ctx
                        .kv_cache_seq_add(SEQ, Some(start as u32), Some(end as u32), delta as i32)
                        .map_err(|e| LlmError::Decode(e.to_string()))?;
                }
            }
        }
        cache::apply_edits(&mut self.cached, edits);
        Ok(())
    }

    /// Brings the cache to the longest reusable prefix of `prompt`; returns
    /// (tokens reused, tokens of those that were shifted).
    fn reuse(&mut self, prompt: &[i32]) -> (usize, usize) {
        let mut plan = cache::plan_reuse(&self.cached, prompt, self.min_chunk());
        if self.load_snapshot_for(prompt, plan.reused) {
            plan = cache::plan_reuse(&self.cached, prompt, self.min_chunk());
        }
        if self.apply(&plan.edits).is_err() {
            // Some memories cannot remove a middle range; start clean rather than guess.
            self.clear();
            return (0, 0);
        }
        // A sliding-window cache may have dropped cells that decoding after the
        // reused prefix still attends to; then only a full prefill is correct.
        if let Some(window) = self.sliding_window {
            let oldest = self.ctx.kv_cache_seq_pos_min(SEQ);
            if plan.reused > 0 && oldest > 0 && oldest as usize > plan.reused.saturating_sub(window) {
                tracing::debug!(oldest, reused = plan.reused, "sliding-window cache lacks old cells; full prefill");
                self.clear();
                return (0, 0);
            }
        }
        (plan.reused, plan.shifted)
    }

    /// Tokens every next user turn after `messages` starts with: the template's
    /// closing of the last message and the opening of a user message. Found by
    /// rendering a placeholder user message and cutting before it. The last
    /// token is kept although a message could merge with it (a leading newline
    /// after Gemma's `\n\n`, say): the reuse plan then keeps only the common
    /// prefix and trims that one cell, while keeping it spares nearly every
    /// message one token of prefill.
    fn next_turn_prefix(&self, messages: &[Message]) -> Option<Vec<i32>> {
        const PLACEHOLDER: &str = "\u{E000}";
        let mut probe = messages.to_vec();
        probe.push(Message::user(PLACEHOLDER));
        let text = self.template.as_ref()?.render(&probe, false).ok()?;
        let cut = text.find(PLACEHOLDER)?;
        Some(self.tokenize(&text[..cut], true))
    }

    /// Frees room at the end of a full context by dropping the oldest half of
    /// what follows the system prompt; returns how many tokens were dropped.
    fn shift_context(&mut self, keep: usize) -> Option<usize> {
        if !self.can_shift {
            return None;
        }
        let (edits, dropped) = cache::plan_context_shift(self.cached.len(), keep)?;
        self.apply(&edits).ok()?;
        Some(dropped)
    }

    /// One generation (see [`Worker::generate`]), its prompt evaluated in
    /// batches of `batch` tokens.
    fn reply(&mut self, job: &Job, batch: usize) -> Result<(GenerationStats, String), LlmError> {
        let request = &job.request;
        request.sampling.validate()?;
        let mut sampler = Sampler::new(&request.sampling, self.model, request.grammar.as_deref())?;
        let (prompt, keep) = self.tokenize_prompt(&request.prompt)?;
        if prompt.is_empty() {
            return Err(LlmError::EmptyPrompt);
        }
        if prompt.len() >= self.n_ctx {
            return Err(LlmError::PromptTooLong { prompt_tokens: prompt.len(), context_size: self.n_ctx });
        }
        let prefill_started = Instant::now();
        let (cached_tokens, shifted_tokens) = self.reuse(&prompt);
        let new_tokens = &prompt[cached_tokens..];
        let complete = self.prefill(new_tokens, batch, &job.cancel).inspect_err(|_| self.clear())?;
        let mut stats = GenerationStats {
            prompt_tokens: prompt.len(),
            completion_tokens: 0,
            cached_tokens,
            shifted_tokens,
            prefill_tokens: new_tokens.len(),
            ttft_ms: 0.0,
            prefill_tokens_per_s: 0.0,
            decode_tokens_per_s: 0.0,
            context_shifted_tokens: 0,
            finish_reason: FinishReason::Cancelled,
        };
        if !complete {
            return Ok((stats, String::new()));
        }
        let mut token = sampler.next(&self.ctx).0;
        let first_token_at = Instant::now();
        stats.ttft_ms = (first_token_at - job.submitted).as_secs_f64() * 1e3;
        stats.prefill_tokens_per_s = per_second(new_tokens.len(), first_token_at - prefill_started);
        let mut stream = TextStream::new(&request.stop);
        let mut reply = String::new();
        let vocab = self.model.vocab();
        stats.finish_reason = loop {
            if vocab.is_eog(LlamaToken(token)) && !request.ignore_eos {
                break FinishReason::Stop;
            }
            stats.completion_tokens += 1;
            let text = stream.push(&vocab.token_to_piece(LlamaToken(token), false, None));
            reply.push_str(&text);
            if !text.is_empty() && job.events.blocking_send(GenerationEvent::Text(text)).is_err() {
                break FinishReason::Cancelled;
            }
            if stream.stopped().is_some() {
                break FinishReason::Stop;
            }
            if stats.completion_tokens >= request.max_tokens as usize {
                break FinishReason::Length;
            }
            if job.cancel.is_cancelled() {
                break FinishReason::Cancelled;
            }
            if self.cached.len() + 1 >= self.n_ctx {
                match self.shift_context(keep) {
                    Some(dropped) => stats.context_shifted_tokens += dropped,
                    None => break FinishReason::Length,
                }
            }
            self.answer_counts();
            job.cancel.wait_while_paused(MAX_PAUSE);
            self.decode_one(token).inspect_err(|_| self.clear())?;
            token = sampler.next(&self.ctx).0;
        };
        let rest = stream.finish();
        if !rest.is_empty() {
            reply.push_str(&rest);
            let _ = job.events.blocking_send(GenerationEvent::Text(rest));
        }
        stats.decode_tokens_per_s = per_second(stats.completion_tokens.saturating_sub(1), first_token_at.elapsed());
        Ok((stats, reply))
    }
}

impl Worker for LlamaWorker<'_> {
    fn inbox(&mut self) -> &mut Inbox {
        &mut self.inbox
    }

    fn count(&self, prompt: &Prompt) -> Result<usize, LlmError> {
        self.tokenize_prompt(prompt).map(|(tokens, _)| tokens.len())
    }

    fn generate(&mut self, job: &Job) -> Result<(GenerationStats, String), LlmError> {
        if !job.aside {
            return self.reply(job, self.n_batch);
        }
        let kept = match self.ctx.state_seq_get(SEQ, LlamaStateSeqFlags::empty()) {
            Ok(state) => Some(Snapshot { tokens: self.cached.clone(), state }),
            Err(error) => {
                tracing::warn!(%error, "cannot keep the cache aside; the next turn prefills it again");
                None
            }
        };
        let outcome = self.reply(job, ASIDE_BATCH.min(self.n_batch));
        self.clear();
        if let Some(kept) = kept {
            match self.ctx.state_seq_set(&kept.state, SEQ) {
                Ok(()) => self.cached = kept.tokens,
                Err(error) => {
                    tracing::warn!(%error, "cannot put the cache back; the next turn prefills it again");
                    self.clear();
                }
            }
        }
        outcome
    }

    /// Brings the cache to hold the start of the next turn after `messages`.
    fn prepare_next_turn(&mut self, messages: &[Message], cancel: &CancelToken) {
        let Some(tokens) = self.next_turn_prefix(messages) else { return };
        if tokens.is_empty() || tokens.len() + 2 > self.n_ctx {
            return;
        }
        let (reused, _) = self.reuse(&tokens);
        // Batches as small as an aside job's: the person's next message may
        // come at any moment, and stops it within one.
        if let Err(error) = self.prefill(&tokens[reused..], ASIDE_BATCH.min(self.n_batch), cancel) {
            tracing::warn!(%error, "cannot prepare the next turn");
            self.clear();
        }
    }

    /// See [`super::Engine::perplexity`]. Chunks are evaluated from an empty cache so
    /// that every chunk sees the same amount of context however long the text.
    fn perplexity(&mut self, text: &str) -> Result<PerplexityReport, LlmError> {
        let tokens = self.tokenize(text, true);
        if tokens.len() < 2 {
            return Err(LlmError::EmptyPrompt);
        }
        let started = Instant::now();
        let mut total_nll = 0.0_f64;
        let mut tokens_scored = 0_usize;
        let chunks = tokens.chunks(self.n_ctx);
        let chunk_count = chunks.len();
        for chunk in chunks {
            self.clear();
            for (batch_index, batch) in chunk.chunks(self.n_batch).enumerate() {
                self.answer_counts();
                let start = batch_index * self.n_batch;
                self.batch.clear();
                for (offset, &token) in batch.iter().enumerate() {
                    self.batch
                        .add(LlamaToken(token), (start + offset) as i32, &[SEQ], true)
                        .map_err(|e| LlmError::Decode(e.to_string()))?;
                }
                self.ctx
                    .decode(&mut self.batch)
                    .inspect_err(|_| self.clear())
                    .map_err(|e| LlmError::Decode(e.to_string()))?;
                self.cached.extend_from_slice(batch);
                // The logits at position p predict the token at p + 1 (none for the chunk's last).
                for (offset, &next) in chunk[start + 1..].iter().take(batch.len()).enumerate() {
                    total_nll += negative_log_likelihood(self.ctx.get_logits_ith(offset as i32), next);
                    tokens_scored += 1;
                }
            }
        }
        self.clear();
        let mean_nll = total_nll / tokens_scored.max(1) as f64;
        Ok(PerplexityReport {
            text_tokens: tokens.len(),
            tokens_scored,
            chunks: chunk_count,
            context_size: self.n_ctx,
            mean_nll,
            perplexity: mean_nll.exp(),
            tokens_per_s: per_second(tokens.len(), started.elapsed()),
        })
    }

    fn clear_cache(&mut self) {
        self.clear();
        self.snapshots.clear();
    }
}

/// `-ln softmax(logits)[target]`, computed as `logsumexp(logits) - logits[target]`
/// with the largest logit taken out first so no exponential overflows, and
/// summed in f64 so 49k terms lose no precision. A target outside the
/// vocabulary (which the tokenizer never makes) counts as impossible.
fn negative_log_likelihood(logits: &[f32], target: i32) -> f64 {
    let Some(&target_logit) = usize::try_from(target).ok().and_then(|index| logits.get(index)) else {
        return f64::INFINITY;
    };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&logit| (logit as f64 - max).exp()).sum();
    max + sum.ln() - target_logit as f64
}

fn per_second(count: usize, elapsed: std::time::Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if count == 0 || seconds <= 0.0 { 0.0 } else { count as f64 / seconds }
}

#[cfg(test)]
mod tests {
    use super::negative_log_likelihood;

    #[test]
    fn negative_log_likelihood_is_a_stable_log_softmax() {
        // Uniform over four tokens: -ln(1/4).
        assert!((negative_log_likelihood(&[0.0; 4], 2) - 4.0_f64.ln()).abs() < 1e-12);
        // Shifting every logit changes nothing, even far beyond exp's range in f32.
        let shifted = negative_log_likelihood(&[1000.0, 1001.0, 1002.0], 2);
        let plain = negative_log_likelihood(&[0.0, 1.0, 2.0], 2);
        assert!((shifted - plain).abs() < 1e-9, "{shifted} vs {plain}");
        let expected = -(2.0_f64.exp() / (1.0 + 1.0_f64.exp() + 2.0_f64.exp())).ln();
        assert!((plain - expected).abs() < 1e-12);
        assert_eq!(negative_log_likelihood(&[0.0; 4], 4), f64::INFINITY);
        assert_eq!(negative_log_likelihood(&[0.0; 4], -1), f64::INFINITY);
    }
}
