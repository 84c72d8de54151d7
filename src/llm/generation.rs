//! What the engine speaks: its settings and what it reports of itself, the
//! requests it takes, the events a generation streams back, its
//! measurements, and the switch that cuts a generation. The handle
//! ([`super::engine`]) and the workers behind it ([`super::worker`]) share
//! these, so they sit below both.

use super::LlmError;
use super::sampling::SamplingParams;
use super::template::Message;
use crate::hardware::GpuSelection;
use crate::model::ModelInfo;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the engine needs to start.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The validated model description (read before llama.cpp sees the file).
    pub model: ModelInfo,
    /// Threads for single-token decode steps (memory-bound).
    pub threads_decode: usize,
    /// Threads for prompt prefill (compute-bound).
    pub threads_prefill: usize,
    /// Layers offloaded to the GPU (0 on CPU-only builds).
    pub gpu_layers: u32,
    /// Which GPUs llama.cpp may use and how it splits the layers over them
    /// (a `tensor_split` is refused at load: see the llama.cpp worker).
    pub gpus: GpuSelection,
    /// Context size in tokens.
    pub context_size: u32,
    /// Tokens evaluated per llama.cpp batch during prefill.
    pub batch_size: u32,
    /// `--chat-template` override: a built-in name, inline Jinja, or a file.
    pub chat_template: Option<String>,
    /// Conversation openings prefilled during warm-up (the persona's system
    /// prompt, in each language it speaks), so a first request finds its own
    /// already evaluated. The first is left in the cache; each is also kept as
    /// an in-memory snapshot of its KV state for later conversations.
    pub warmup: Vec<Vec<Message>>,
    /// Forward llama.cpp's own log to `tracing`.
    pub llama_logs: bool,
    /// Directory of saved persona KV states (see [`super::prompt_cache`]); `None`
    /// prefills the persona at every start.
    pub prompt_cache: Option<PathBuf>,
    /// How the KV cache stores keys and values.
    pub kv_cache_type: KvCacheType,
    /// Whether llama.cpp uses its fused flash-attention kernels.
    pub flash_attention: FlashAttention,
    /// RPC workers (`host:port`) the offloaded layers are spread over
    /// ([`super::rpc`]); empty keeps the model on this machine.
    pub rpc: Vec<String>,
}

/// How the KV cache stores keys and values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvCacheType {
    /// 16-bit floats: llama.cpp's default.
    #[default]
    F16,
    /// 8-bit blocks: half the memory and memory traffic of F16, for a
    /// negligible loss (llama.cpp's `-ctk q8_0 -ctv q8_0`).
    #[serde(rename = "q8_0")]
    Q8_0,
}

impl crate::choice::Choice for KvCacheType {
    const ALL: &'static [Self] = &[Self::F16, Self::Q8_0];
    fn name(self) -> &'static str {
        match self {
            Self::F16 => "f16",
            Self::Q8_0 => "q8_0",
        }
    }
}

/// Whether llama.cpp uses its fused flash-attention kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashAttention {
    /// llama.cpp decides per backend and model.
    #[default]
    Auto,
    /// Always (a quantized V cache needs it).
    On,
    /// Never.
    Off,
}

impl crate::choice::Choice for FlashAttention {
    const ALL: &'static [Self] = &[Self::Auto, Self::On, Self::Off];
    fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        }
    }
}

impl FlashAttention {
    /// How reports say it, after "flash attention".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Auto => "as llama.cpp picks",
            Self::On => "on",
            Self::Off => "off",
        }
    }
}

/// What the running engine is, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct EngineInfo {
    /// The model file.
    pub model_path: PathBuf,
    /// The model's display name.
    pub model_name: String,
    /// Context size in tokens.
    pub context_size: u32,
    /// Threads for decode.
    pub threads_decode: usize,
    /// Threads for prefill.
    pub threads_prefill: usize,
    /// Layers on the GPU.
    pub gpu_layers: u32,
    /// Prefill batch size.
    pub batch_size: u32,
    /// Flash attention as asked of llama.cpp.
    pub flash_attention: FlashAttention,
    /// Whether old tokens can be shifted in the cache (RoPE models).
    pub can_shift: bool,
    /// Time to load the model and create the context.
    pub load_ms: f64,
    /// Time spent warming up.
    pub warmup_ms: f64,
    /// Tokens left in the cache by warm-up (the persona prefix).
    pub warm_tokens: usize,
    /// Whether those tokens were loaded from the prompt cache on disk.
    pub warm_from_disk: bool,
    /// The server that answers in place of a local model, if one does.
    pub remote: Option<super::remote::RemoteReport>,
}

impl EngineInfo {
    /// What runs the model and how long it took to be ready, for the
    /// "ready" lines: `smollm2 on 2 threads, 480 ms`.
    pub fn describe(&self) -> String {
        let ready_ms = self.load_ms + self.warmup_ms;
        match &self.remote {
            Some(remote) => format!("{} at {}, {ready_ms:.0} ms", self.model_name, remote.url),
            None => format!("{} on {} threads, {ready_ms:.0} ms", self.model_name, self.threads_decode),
        }
    }
}

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// A conversation, rendered with the chat template.
    Messages(Vec<Message>),
    /// Raw text, tokenized as is (benchmarks, completion-style use).
    Text(String),
}

/// One generation.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    /// The input.
    pub prompt: Prompt,
    /// How tokens are chosen.
    pub sampling: SamplingParams,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Strings that end the reply (not included in it).
    pub stop: Vec<String>,
    /// Keep generating past end-of-turn tokens (benchmarks need fixed lengths).
    pub ignore_eos: bool,
    /// A grammar (llama.cpp's GBNF, rule `root`) the reply must follow. A
    /// remote back-end is not sent it: OpenAI's API has no such field.
    pub grammar: Option<String>,
}

impl GenerationRequest {
    /// A chat request with default sampling.
    pub fn chat(messages: Vec<Message>, max_tokens: u32) -> Self {
        Self {
            prompt: Prompt::Messages(messages),
            sampling: SamplingParams::default(),
            max_tokens,
            stop: Vec::new(),
            ignore_eos: false,
            grammar: None,
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its turn or a stop string matched.
    Stop,
    /// `max_tokens` was reached, or the context was full and could not shift.
    Length,
    /// The caller cancelled or went away.
    Cancelled,
}

/// Measurements of one generation.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated (the end-of-turn token is not counted).
    pub completion_tokens: usize,
    /// Prompt tokens found in the KV cache (not evaluated again).
    pub cached_tokens: usize,
    /// Of those, tokens moved into place by a cache shift.
    pub shifted_tokens: usize,
    /// Prompt tokens evaluated.
    pub prefill_tokens: usize,
    /// From the request's submission to the first generated token.
    pub ttft_ms: f64,
    /// Prompt evaluation speed (evaluated tokens over prefill time).
    pub prefill_tokens_per_s: f64,
    /// Generation speed after the first token.
    pub decode_tokens_per_s: f64,
    /// Tokens dropped from the cache by context shifts during generation.
    pub context_shifted_tokens: usize,
    /// Why it ended.
    pub finish_reason: FinishReason,
}

/// How well a model predicts a text ([`super::Engine::perplexity`]).
#[derive(Debug, Clone, Serialize)]
pub struct PerplexityReport {
    /// Tokens the text makes (with the start-of-text token, if the model uses one).
    pub text_tokens: usize,
    /// Tokens whose probability was measured: all but the first of each chunk.
    pub tokens_scored: usize,
    /// Chunks of at most the context size, each evaluated from an empty cache.
    pub chunks: usize,
    /// The context size, the longest chunk.
    pub context_size: usize,
    /// Mean negative log-likelihood of a scored token, in nats.
    pub mean_nll: f64,
    /// `exp(mean_nll)`: the number of equally likely tokens the model's
    /// uncertainty amounts to (1 would be certainty).
    pub perplexity: f64,
    /// Tokens evaluated per second (all of them, with logits at every position).
    pub tokens_per_s: f64,
}

/// What a generation streams back.
#[derive(Debug)]
pub enum GenerationEvent {
    /// The next piece of reply text.
    Text(String),
    /// The reply is complete.
    Done(GenerationStats),
    /// The generation failed; nothing more follows.
    Failed(LlmError),
}

/// Stops a generation between two tokens when fired; holds it there while
/// paused.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<Switch>);

/// A token's state: its own switches, the token whose firing fires it too,
/// and the tasks waiting for it ([`CancelToken::cancelled`]).
#[derive(Debug, Default)]
struct Switch {
    fired: AtomicBool,
    paused: AtomicBool,
    parent: Option<CancelToken>,
    waiting: tokio::sync::Notify,
}

impl CancelToken {
    /// A fresh, unfired token.
    pub fn new() -> Self {
        Self::default()
    }
    /// A token fired when this one is, or on its own without firing this
    /// one: a turn stops one attempt at a reply and makes another, while the
    /// door's token still stops them all.
    pub fn child(&self) -> Self {
        Self(Arc::new(Switch { parent: Some(self.clone()), ..Switch::default() }))
    }
    /// Asks the generation to stop.
    pub fn cancel(&self) {
        self.0.fired.store(true, Ordering::Release);
        self.0.waiting.notify_waiters();
    }
    /// Whether it, or a token it is the child of, was fired.
    pub fn is_cancelled(&self) -> bool {
        self.0.fired.load(Ordering::Acquire) || self.0.parent.as_ref().is_some_and(CancelToken::is_cancelled)
    }
    /// Holds the generation before its next token until [`CancelToken::resume`]:
    /// a door that needs the cores for a moment (the voice making the
    /// reply's first sentence) pauses the reply it reads, which is ahead of
    /// the voice anyway.
    pub fn pause(&self) {
        self.0.paused.store(true, Ordering::Release);
    }
    /// Lets a paused generation go on.
    pub fn resume(&self) {
        self.0.paused.store(false, Ordering::Release);
    }
    /// Whether it, or a token it is the child of, is paused.
    pub fn is_paused(&self) -> bool {
        self.0.paused.load(Ordering::Acquire) || self.0.parent.as_ref().is_some_and(CancelToken::is_paused)
    }
    /// Blocks while paused and not fired, at most `limit` (a pause a door
    /// forgot never stops a reply for good). It looks every few
    /// milliseconds: a pause lasts a sentence's synthesis, and the engine's
    /// thread has nothing else to do meanwhile.
    pub fn wait_while_paused(&self, limit: std::time::Duration) {
        let started = std::time::Instant::now();
        while self.is_paused() && !self.is_cancelled() && started.elapsed() < limit {
            std::thread::sleep(std::time::Duration::from_millis(4));
        }
    }
    /// Returns once it, or a token it is the child of, is fired: what an
    /// async wait selects on, woken at once rather than by polling.
    pub async fn cancelled(&self) {
        let chain: Vec<&CancelToken> = std::iter::successors(Some(self), |token| token.0.parent.as_ref()).collect();
        loop {
            let mut waits: Vec<_> = chain.iter().map(|token| Box::pin(token.0.waiting.notified())).collect();
            // Registered before the check, so a firing in between is not missed.
            for wait in &mut waits {
                wait.as_mut().enable();
            }
            if self.is_cancelled() {
                return;
            }
            futures_util::future::select_all(waits).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_parent_holds_its_children_until_resumed_fired_or_too_long() {
        let door = CancelToken::new();
        let attempt = door.child();
        door.pause();
        assert!(attempt.is_paused());
        let started = std::time::Instant::now();
        attempt.wait_while_paused(std::time::Duration::from_millis(40));
        assert!(started.elapsed() >= std::time::Duration::from_millis(40), "held up to the limit");
        let waiting = std::thread::spawn({
            let attempt = attempt.clone();
            move || attempt.wait_while_paused(std::time::Duration::from_secs(60))
        });
        door.resume();
        waiting.join().unwrap();
        assert!(!attempt.is_paused());
        door.pause();
        door.cancel();
        attempt.wait_while_paused(std::time::Duration::from_secs(60));
    }

    #[tokio::test]
    async fn waiting_for_a_token_ends_when_it_or_its_parent_fires() {
        let door = CancelToken::new();
        let attempt = door.child();
        let waiting = tokio::spawn({
            let attempt = attempt.clone();
            async move { attempt.cancelled().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        door.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
        // Already fired: returns at once.
        attempt.cancelled().await;
        let alone = CancelToken::new();
        let waiting = tokio::spawn({
            let alone = alone.clone();
            async move { alone.cancelled().await }
        });
        alone.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
    }

    #[test]
    fn a_child_token_stops_alone_and_with_its_parent() {
        let door = CancelToken::new();
        let attempt = door.child();
        attempt.cancel();
        assert!(attempt.is_cancelled() && !door.is_cancelled());
        let next = door.child();
        door.cancel();
        assert!(next.is_cancelled());
    }
}
