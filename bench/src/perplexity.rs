//! `workly-bench perplexity`: how well a model predicts a fixed text, the
//! measure that tells quantizations of one model apart.
//!
//! The built-in text (`perplexity.txt`) was written for Workly: everyday
//! English and French prose of the kind Kira's conversations hold, about
//! 1,500 words, so a few thousand tokens that fit one context. Perplexity is
//! exact: every token is evaluated with logits at every position
//! ([`workly::llm::Engine::perplexity`]). Lower is better; the numbers only
//! compare models that share a tokenizer, on the same text and context size.

use crate::cli::BenchPerplexityArgs;
use serde::Serialize;
use workly::cli::{Context, EngineSettings};
use workly::llm::{Engine, PerplexityReport};

/// The built-in text.
pub const TEXT: &str = include_str!("perplexity.txt");

/// The report of `workly-bench perplexity`.
#[derive(Debug, Clone, Serialize)]
pub struct PerplexityBenchReport {
    /// The model file measured.
    pub model: String,
    /// Its quantization.
    pub quantization: String,
    /// Its size.
    pub file_size_bytes: u64,
    /// Where the text came from: `built-in` or the file given.
    pub text: String,
    /// The measurement.
    #[serde(flatten)]
    pub measure: PerplexityReport,
}

/// Runs `workly-bench perplexity`.
pub fn run(context: &Context, args: &BenchPerplexityArgs) -> workly::error::Result<()> {
    let (label, text) = match &args.text {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path).map_err(|error| {
                workly::error::Error::bad_input(anyhow::anyhow!("cannot read the text {}: {error}", path.display()))
            })?,
        ),
        None => ("built-in".to_owned(), TEXT.to_owned()),
    };
    workly::cli::bench::print(&report(context, &args.engine, label, &text)?, args.json, render)
}

/// Loads the engine (no persona: nothing to warm but the graphs) and scores `text`.
pub fn report(
    context: &Context,
    engine: &EngineSettings,
    label: String,
    text: &str,
) -> workly::error::Result<PerplexityBenchReport> {
    let prepared = engine.prepare(context, Vec::new())?;
    let model = prepared.engine.model.clone();
    let engine = Engine::load(prepared.engine)?;
    Ok(PerplexityBenchReport {
        model: model.path.display().to_string(),
        quantization: model.quantization,
        file_size_bytes: model.file_size_bytes,
        text: label,
        measure: engine.perplexity(text)?,
    })
}

fn render(report: &PerplexityBenchReport) -> String {
    let measure = &report.measure;
    format!(
        "model {} ({}, {:.1} MB), text {}\n\
         perplexity      {:>9.3}\n\
         mean NLL        {:>9.4} nats per token\n\
         tokens scored   {:>9} of {} ({} chunk(s) of at most {} tokens)\n\
         speed           {:>9.1} tokens/s\n",
        report.model,
        report.quantization,
        report.file_size_bytes as f64 / 1e6,
        report.text,
        measure.perplexity,
        measure.mean_nll,
        measure.tokens_scored,
        measure.text_tokens,
        measure.chunks,
        measure.context_size,
        measure.tokens_per_s,
    )
}
