//! `workly bench llm`: what a user feels, measured end to end through the engine.
//!
//! Load and warm-up time; the first request after warm-up (as a user meets it)
//! against later ones; prefill speed on a 512-token prompt and decode speed
//! over 128 tokens; a scripted 20-turn conversation showing that the cache
//! keeps later turns as fast as the first although the prompt grows; memory.

use super::{decode_once, measure, prefill_once, text_of_tokens};
use crate::chat::turn::{Chat, Outcome, ReplyOptions, Turn, TurnError};
use crate::chat::{Conversation, Persona};
use crate::hardware::{peak_rss_bytes, process_rss_bytes};
use crate::llm::{CancelToken, Engine, FlashAttention, LlmError, SamplingParams};
use serde::Serialize;
use std::sync::Mutex;

/// Prompt length of the prefill measurement.
pub const PREFILL_TOKENS: usize = 512;
/// Generated length of the decode measurement.
pub const DECODE_TOKENS: u32 = 128;
/// Turns of the scripted conversation.
pub const TURNS: usize = 20;

/// One turn of the scripted conversation.
#[derive(Debug, Clone, Serialize)]
pub struct TurnTiming {
    /// 1-based turn number.
    pub turn: usize,
    /// Time to first token.
    pub ttft_ms: f64,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Of those, reused from the cache.
    pub cached_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// The report of `workly bench llm`.
#[derive(Debug, Clone, Serialize)]
pub struct LlmReport {
    /// The model measured.
    pub model: String,
    /// Decode threads.
    pub threads_decode: usize,
    /// Prefill threads.
    pub threads_prefill: usize,
    /// Layers on the GPU.
    pub gpu_layers: u32,
    /// Flash attention as asked of llama.cpp.
    pub flash_attention: FlashAttention,
    /// Measured runs behind each median.
    pub runs: u32,
    /// Loading the model and creating the context.
    pub load_ms: f64,
    /// Warming up (persona prefill and one decode step).
    pub warmup_ms: f64,
    /// The first chat request after load and warm-up.
    pub first_ttft_ms: f64,
    /// Median of later chat requests of the same shape (new conversation, same persona).
    pub warm_ttft_ms: f64,
    /// `first_ttft_ms / warm_ttft_ms`.
    pub first_to_warm_ratio: f64,
    /// Median prefill speed on a 512-token prompt.
    pub prefill_tokens_per_s: f64,
    /// Median decode speed over 128 tokens.
    pub decode_tokens_per_s: f64,
    /// The scripted conversation, each turn's TTFT a median over `runs` conversations.
    pub multi_turn: Vec<TurnTiming>,
    /// `ttft_ms` of the last turn over the first.
    pub multi_turn_last_to_first_ratio: f64,
    /// Resident memory at the end.
    pub rss_bytes: u64,
    /// Highest resident memory of the process.
    pub peak_rss_bytes: u64,
}

/// First messages of new conversations, one per warm TTFT run.
const OPENERS: &[&str] = &[
    "Bonjour Kira ! Comment vas-tu ?",
    "Hi Kira, what are you up to today?",
    "Salut ! Tu peux me conseiller un livre ?",
    "Hello! I just finished work, I'm tired.",
    "Coucou Kira, il pleut encore ici.",
    "Hey, do you like music?",
    "Bonsoir ! Raconte-moi quelque chose de drôle.",
    "Good morning! Any idea for breakfast?",
];

/// The user's side of the scripted conversation.
pub const SCRIPT: &[&str] = &[
    "Hi Kira! I'm Sam.",
    "I work as a nurse, long shifts this week.",
    "What should I cook tonight? Something quick.",
    "I have eggs, spinach and some cheese.",
    "Good idea. Do you like cooking?",
    "Tell me a fun fact about octopuses.",
    "Wow. And about lighthouses?",
    "Je parle aussi français, tu sais.",
    "Quel temps fait-il chez toi ?",
    "Haha, d'accord. Tu aimes la pluie ?",
    "Let's switch back to English.",
    "I want to learn the guitar. Where do I start?",
    "How long should I practise each day?",
    "My fingers hurt after ten minutes!",
    "Any song that is easy for beginners?",
    "Thanks. What did I say my job was?",
    "Right. Any tip to sleep after a night shift?",
    "I'll try the blackout curtains.",
    "You're a good friend, Kira.",
    "Good night, see you tomorrow!",
];

/// Time to first token of a new conversation's first message, through the
/// chat turn every door runs, once the engine is idle, as it is after the
/// seconds a person takes to type.
fn opener_ttft(engine: &Engine, persona: &Persona, opener: &str) -> Result<f64, TurnError> {
    let chat = Mutex::new(Chat::new(Conversation::new(persona.clone()), None));
    Ok(chat_turn(engine, &chat, opener, 1)?.stats.ttft_ms)
}

/// Measures a loaded, warmed engine (nothing may have run on it yet).
pub fn measure_llm(engine: &Engine, persona: &Persona, runs: u32) -> Result<LlmReport, TurnError> {
    let info = engine.info().clone();
    // First: exactly what a user's first message meets after start-up.
    let first_ttft_ms = opener_ttft(engine, persona, OPENERS[0])?;
    let mut openers = OPENERS[1..].iter().cycle();
    let warm_ttft_ms = measure(runs, || opener_ttft(engine, persona, openers.next().unwrap_or(&OPENERS[0])))?;

    // The conversation runs while the persona is still cached, as after start-up;
    // the speed measurements below clear the cache.
    let multi_turn = scripted_conversation(engine, persona, runs)?;

    let prompt = text_of_tokens(engine, PREFILL_TOKENS)?;
    let prefill_tokens_per_s =
        measure(runs, || Ok::<_, LlmError>(prefill_once(engine, &prompt)?.prefill_tokens_per_s))?;
    let decode_tokens_per_s =
        measure(runs, || Ok::<_, LlmError>(decode_once(engine, DECODE_TOKENS)?.decode_tokens_per_s))?;
    let ratio = match (multi_turn.first(), multi_turn.last()) {
        (Some(first), Some(last)) if first.ttft_ms > 0.0 => last.ttft_ms / first.ttft_ms,
        _ => 0.0,
    };
    Ok(LlmReport {
        model: info.model_name,
        threads_decode: info.threads_decode,
        threads_prefill: info.threads_prefill,
        gpu_layers: info.gpu_layers,
        flash_attention: info.flash_attention,
        runs,
        load_ms: info.load_ms,
        warmup_ms: info.warmup_ms,
        first_ttft_ms,
        warm_ttft_ms,
        first_to_warm_ratio: if warm_ttft_ms > 0.0 { first_ttft_ms / warm_ttft_ms } else { 0.0 },
        prefill_tokens_per_s,
        decode_tokens_per_s,
        multi_turn,
        multi_turn_last_to_first_ratio: ratio,
        rss_bytes: process_rss_bytes().unwrap_or(0),
        peak_rss_bytes: peak_rss_bytes().unwrap_or(0),
    })
}

/// Plays [`SCRIPT`] as one conversation with short greedy replies, `runs`
/// times after a discarded one; each turn reports the median TTFT over the runs.
/// Every conversation starts as a user's would: the persona is cached, nothing
/// else of it.
pub fn scripted_conversation(engine: &Engine, persona: &Persona, runs: u32) -> Result<Vec<TurnTiming>, TurnError> {
    let mut timings: Vec<TurnTiming> = Vec::with_capacity(TURNS);
    let mut ttfts: Vec<Vec<f64>> = vec![Vec::new(); TURNS];
    for run in 0..=runs {
        // Back to the state after start-up: only the persona is cached (a short
        // opener leaves persona and turn header), not the previous run's turns.
        engine.clear_cache()?;
        opener_ttft(engine, persona, OPENERS[run as usize % OPENERS.len()])?;
        let chat = Mutex::new(Chat::new(Conversation::new(persona.clone()), None));
        for (index, user) in SCRIPT.iter().take(TURNS).enumerate() {
            let stats = chat_turn(engine, &chat, user, REPLY_TOKENS)?.stats;
            if run == 0 {
                continue;
            }
            ttfts[index].push(stats.ttft_ms);
            // Greedy replies are the same every run, and so are the token counts.
            if run == 1 {
                timings.push(TurnTiming {
                    turn: index + 1,
                    ttft_ms: 0.0,
                    prompt_tokens: stats.prompt_tokens,
                    cached_tokens: stats.cached_tokens,
                    completion_tokens: stats.completion_tokens,
                });
            }
        }
    }
    for (timing, values) in timings.iter_mut().zip(&ttfts) {
        timing.ttft_ms = super::median(values);
    }
    Ok(timings)
}

/// Reply length of scripted turns: a companion's short answer.
pub const REPLY_TOKENS: u32 = 48;

/// One turn of `chat` through the chat turn every door runs (fitted to the
/// context, read for emotion, added to the history), with a greedy reply of
/// at most `max_tokens`, sent once the engine is idle (a person reads the
/// last reply and types before sending: the engine's work in that time is
/// not theirs to wait for).
pub fn chat_turn(engine: &Engine, chat: &Mutex<Chat>, user: &str, max_tokens: u32) -> Result<Outcome, TurnError> {
    engine.wait_idle()?;
    let options = ReplyOptions { sampling: SamplingParams::greedy(), max_tokens, stop: Vec::new(), unguarded: false };
    let turn = Turn { engine, avatar: None, options: &options, cancel: CancelToken::new() };
    turn.chat(chat, user, &mut ())
}

/// The report as a table.
pub fn render(report: &LlmReport) -> String {
    let mut text = format!(
        "model {} ({} decode / {} prefill threads, {} GPU layers, flash attention {}), medians of {} runs\n\
         load            {:>9.1} ms\n\
         warm-up         {:>9.1} ms\n\
         first TTFT      {:>9.1} ms\n\
         warm TTFT       {:>9.1} ms   (first/warm {:.2})\n\
         prefill         {:>9.1} tokens/s ({} tokens)\n\
         decode          {:>9.1} tokens/s ({} tokens)\n\
         RSS             {:>9.1} MiB (peak {:.1} MiB)\n\
         20-turn conversation (turn 20 / turn 1 TTFT: {:.2}):\n",
        report.model,
        report.threads_decode,
        report.threads_prefill,
        report.gpu_layers,
        report.flash_attention.describe(),
        report.runs,
        report.load_ms,
        report.warmup_ms,
        report.first_ttft_ms,
        report.warm_ttft_ms,
        report.first_to_warm_ratio,
        report.prefill_tokens_per_s,
        PREFILL_TOKENS,
        report.decode_tokens_per_s,
        DECODE_TOKENS,
        report.rss_bytes as f64 / 1048576.0,
        report.peak_rss_bytes as f64 / 1048576.0,
        report.multi_turn_last_to_first_ratio,
    );
    for turn in &report.multi_turn {
        text.push_str(&format!(
            "  turn {:>2}  ttft {:>7.1} ms  prompt {:>5}  cached {:>5}  reply {:>3}\n",
            turn.turn, turn.ttft_ms, turn.prompt_tokens, turn.cached_tokens, turn.completion_tokens
        ));
    }
    text
}
