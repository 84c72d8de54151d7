//! `workly-bench memory`: resident memory over a long conversation.
//!
//! A companion runs for hours; its memory must stay flat however long the
//! conversation gets. The history is fitted to the context, the KV cache is
//! fixed-size and shifted in place, so after the first turns nothing should
//! grow. This benchmark plays a long scripted conversation and samples the
//! process's resident set every 50 turns.

use crate::cli::BenchMemoryArgs;
use serde::Serialize;
use workly::bench::llm::{REPLY_TOKENS, SCRIPT, chat_turn};
use workly::chat::turn::Chat;
use workly::chat::{Conversation, Persona};
use workly::cli::{Context, EngineSettings};
use workly::hardware::{peak_rss_bytes, process_rss_bytes};
use workly::llm::Engine;

/// Turns between two memory samples.
pub const SAMPLE_EVERY: u32 = 50;

/// One memory sample.
#[derive(Debug, Clone, Serialize)]
pub struct MemorySample {
    /// Turns completed.
    pub turn: u32,
    /// Resident memory then.
    pub rss_bytes: u64,
    /// Tokens in that turn's prompt (the history as fitted to the context).
    pub prompt_tokens: usize,
}

/// The report of `workly-bench memory`.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// The model.
    pub model: String,
    /// Context size in tokens.
    pub context_size: u32,
    /// Turns played.
    pub turns: u32,
    /// A sample every 50 turns (and after the last).
    pub samples: Vec<MemorySample>,
    /// Last sample over the first, as a percentage change.
    pub growth_percent: f64,
    /// Highest resident memory of the process.
    pub peak_rss_bytes: u64,
}

/// Runs `workly-bench memory`.
pub fn run(context: &Context, args: &BenchMemoryArgs) -> workly::error::Result<()> {
    workly::cli::bench::print(&report(context, &args.engine, args.turns)?, args.json, render)
}

/// Plays a conversation of `turns` turns and samples the resident memory.
pub fn report(context: &Context, engine: &EngineSettings, turns: u32) -> workly::error::Result<MemoryReport> {
    let persona = Persona::default();
    let prepared = engine.prepare(context, Conversation::new(persona.clone()).openings())?;
    let engine = Engine::load(prepared.engine)?;
    let chat = std::sync::Mutex::new(Chat::new(Conversation::new(persona), None));
    let mut samples = Vec::new();
    for turn in 1..=turns {
        let user = SCRIPT[(turn as usize - 1) % SCRIPT.len()];
        let stats = chat_turn(&engine, &chat, user, REPLY_TOKENS)?.stats;
        if turn % SAMPLE_EVERY == 0 || turn == turns {
            let rss_bytes = process_rss_bytes().unwrap_or(0);
            tracing::info!(turn, rss_bytes, "memory sample");
            samples.push(MemorySample { turn, rss_bytes, prompt_tokens: stats.prompt_tokens });
        }
    }
    let growth_percent = match (samples.first(), samples.last()) {
        (Some(first), Some(last)) if first.rss_bytes > 0 => {
            (last.rss_bytes as f64 - first.rss_bytes as f64) / first.rss_bytes as f64 * 100.0
        }
        _ => 0.0,
    };
    Ok(MemoryReport {
        model: engine.info().model_name.clone(),
        context_size: engine.info().context_size,
        turns,
        samples,
        growth_percent,
        peak_rss_bytes: peak_rss_bytes().unwrap_or(0),
    })
}

pub(super) fn render(report: &MemoryReport) -> String {
    let mut text = format!(
        "model {}, context {} tokens, {} turns\n turn    RSS MiB   prompt tokens\n",
        report.model, report.context_size, report.turns
    );
    for sample in &report.samples {
        text.push_str(&format!(
            "{:>5}   {:>8.1}   {:>13}\n",
            sample.turn,
            sample.rss_bytes as f64 / 1048576.0,
            sample.prompt_tokens
        ));
    }
    text.push_str(&format!(
        "growth from first to last sample: {:+.2}% (peak {:.1} MiB)\n",
        report.growth_percent,
        report.peak_rss_bytes as f64 / 1048576.0
    ));
    text
}
