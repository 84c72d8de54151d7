//! `workly-bench batch`: does a prefill batch size that follows the prompt
//! length beat Workly's fixed one?
//!
//! The original companion listed "dynamic batch size" as future work. In
//! llama.cpp the batch size (`n_batch`, and `n_ubatch`, which Workly sets
//! equal) is fixed when the context is created: a prompt of up to that many
//! tokens is evaluated as one matrix product per weight, a longer one in
//! several. A dynamic size would mean one context per size, or recreating the
//! context, so it must earn its keep. This benchmark loads one engine per batch
//! size and measures prefill speed for each prompt length, the engines taking
//! turns within each round so a change in the machine's load hits them alike.

use crate::cli::BenchBatchArgs;
use serde::Serialize;
use workly::bench::{median, prefill_once, text_of_tokens};
use workly::cli::Context;
use workly::hardware::choose_batch_size;
use workly::llm::Engine;

/// Gain over the fixed batch size below which a dynamic one is not worth it:
/// about the spread of repeated runs on a quiet machine.
const WORTHWHILE_GAIN_PERCENT: f64 = 5.0;

/// The report of `workly-bench batch`.
#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    /// The model measured.
    pub model: String,
    /// Prefill threads.
    pub threads_prefill: usize,
    /// Measured runs per figure.
    pub runs: u32,
    /// The batch size Workly uses for every prompt (for this context size).
    pub fixed_batch_size: u32,
    /// Batch sizes measured.
    pub batch_sizes: Vec<u32>,
    /// One row per prompt length.
    pub rows: Vec<BatchRow>,
    /// The largest gain of the best batch size over the fixed one, in percent.
    pub best_gain_percent: f64,
    /// The largest noise of any row: how far apart runs doing the same work
    /// came out on this machine during this benchmark, in percent.
    pub noise_percent: f64,
    /// Whether some gain reaches [`WORTHWHILE_GAIN_PERCENT`] and exceeds
    /// that noise.
    pub dynamic_helps: bool,
}

/// Prefill speed of one prompt length at every batch size.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRow {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Median prefill tokens/s, in the order of `batch_sizes`.
    pub tokens_per_s: Vec<f64>,
    /// The fastest batch size among those that split this prompt otherwise
    /// than the fixed one does (the fixed one when none is faster).
    pub best_batch_size: u32,
    /// Its speed over the fixed batch size's, minus one, in percent.
    pub gain_percent: f64,
    /// How far apart the sizes that do exactly the fixed one's work came out
    /// (every size at or above the prompt length evaluates it in one batch):
    /// the machine's noise, in percent of the slowest.
    pub noise_percent: f64,
}

/// Runs `workly-bench batch`.
pub fn run(context: &Context, args: &BenchBatchArgs) -> workly::error::Result<()> {
    let report = measure_batches(context, args)?;
    workly::cli::bench::print(&report, args.json, render)
}

fn measure_batches(context: &Context, args: &BenchBatchArgs) -> workly::error::Result<BatchReport> {
    let mut batch_sizes = args.batch_sizes.clone();
    let mut lengths = args.prompt_tokens.clone();
    batch_sizes.sort_unstable();
    batch_sizes.dedup();
    lengths.sort_unstable();
    lengths.dedup();
    let longest = lengths.last().copied().unwrap_or(1);
    let prepared = args.engine.prepare(context, Vec::new())?;
    // Room for the longest prompt and its one generated token; the KV cache's
    // size does not change the cost of a prefill from an empty cache.
    let context_size = u32::try_from(longest + 16).unwrap_or(u32::MAX).max(prepared.engine.context_size);
    let fixed_batch_size = choose_batch_size(prepared.engine.context_size);
    if !batch_sizes.contains(&fixed_batch_size) {
        batch_sizes.push(fixed_batch_size);
        batch_sizes.sort_unstable();
    }
    let engines = batch_sizes
        .iter()
        .map(|&batch_size| {
            let mut config = prepared.engine.clone();
            config.batch_size = batch_size;
            config.context_size = context_size;
            Engine::load(config)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let prompts = lengths.iter().map(|&tokens| text_of_tokens(&engines[0], tokens)).collect::<Result<Vec<_>, _>>()?;

    // One discarded pass (pages the weights in, sizes the buffers), then
    // rounds in which every engine measures every prompt once.
    let mut speeds = vec![vec![Vec::with_capacity(args.runs as usize); engines.len()]; lengths.len()];
    for round in 0..=args.runs {
        tracing::info!(round, "batch round");
        for (prompt, by_engine) in prompts.iter().zip(&mut speeds) {
            for (engine, values) in engines.iter().zip(by_engine.iter_mut()) {
                let speed = prefill_once(engine, prompt)?.prefill_tokens_per_s;
                if round > 0 {
                    values.push(speed);
                }
            }
        }
    }
    let rows: Vec<BatchRow> = lengths
        .iter()
        .zip(&speeds)
        .map(|(&prompt_tokens, by_engine)| {
            let tokens_per_s: Vec<f64> = by_engine.iter().map(|values| median(values)).collect();
            row(prompt_tokens, &batch_sizes, fixed_batch_size, tokens_per_s)
        })
        .collect();
    let best_gain_percent = rows.iter().map(|row| row.gain_percent).fold(0.0, f64::max);
    // Noise is the machine's, not a row's: long prompts have no second size
    // doing the same work to show it, so every row is judged against the worst.
    let noise_percent = rows.iter().map(|row| row.noise_percent).fold(0.0, f64::max);
    let dynamic_helps = best_gain_percent >= WORTHWHILE_GAIN_PERCENT && best_gain_percent > noise_percent;
    Ok(BatchReport {
        model: engines[0].info().model_name.clone(),
        threads_prefill: engines[0].info().threads_prefill,
        runs: args.runs,
        fixed_batch_size,
        batch_sizes,
        rows,
        best_gain_percent,
        noise_percent,
        dynamic_helps,
    })
}

/// One prompt length's row. A batch size changes the work only when it splits
/// the prompt otherwise than the fixed size: sizes at or above the prompt
/// length all evaluate it in one batch, exactly as the fixed one does when it
/// is also that large, so their differences are noise, not gains.
fn row(prompt_tokens: usize, batch_sizes: &[u32], fixed_batch_size: u32, tokens_per_s: Vec<f64>) -> BatchRow {
    let split = |size: u32| (size as usize).min(prompt_tokens);
    let fixed = batch_sizes.iter().position(|&size| size == fixed_batch_size).unwrap_or(0);
    let same_work: Vec<f64> = batch_sizes
        .iter()
        .zip(&tokens_per_s)
        .filter(|(size, _)| split(**size) == split(fixed_batch_size))
        .map(|(_, speed)| *speed)
        .collect();
    let slowest = same_work.iter().copied().fold(f64::INFINITY, f64::min);
    let fastest = same_work.iter().copied().fold(0.0, f64::max);
    let (best, best_speed) = batch_sizes
        .iter()
        .zip(&tokens_per_s)
        .filter(|(size, speed)| split(**size) != split(fixed_batch_size) && **speed > tokens_per_s[fixed])
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or((fixed_batch_size, tokens_per_s[fixed]), |(size, speed)| (*size, *speed));
    BatchRow {
        prompt_tokens,
        gain_percent: gain(best_speed, tokens_per_s[fixed]),
        noise_percent: gain(fastest, slowest),
        tokens_per_s,
        best_batch_size: best,
    }
}

/// `better` over `base`, minus one, in percent (0 when `base` is 0).
fn gain(better: f64, base: f64) -> f64 {
    if base > 0.0 { (better / base - 1.0) * 100.0 } else { 0.0 }
}

fn render(report: &BatchReport) -> String {
    let mut text = format!(
        "model {} ({} prefill threads), prefill tokens/s, medians of {} runs; Workly's fixed batch: {}\n",
        report.model, report.threads_prefill, report.runs, report.fixed_batch_size
    );
    text.push_str("prompt  ");
    for size in &report.batch_sizes {
        text.push_str(&format!("{:>9}", format!("b={size}")));
    }
    text.push_str("   best    gain   noise\n");
    for row in &report.rows {
        text.push_str(&format!("{:>6}  ", row.prompt_tokens));
        for speed in &row.tokens_per_s {
            text.push_str(&format!("{speed:>9.1}"));
        }
        text.push_str(&format!(
            "  {:>5}  {:>+5.1}%  {:>5.1}%\n",
            row.best_batch_size, row.gain_percent, row.noise_percent
        ));
    }
    text.push_str(&if report.dynamic_helps {
        format!(
            "choosing the batch size by prompt length would gain up to {:.1}% here\n",
            report.best_gain_percent
        )
    } else {
        format!(
            "no batch size beats the fixed one by {WORTHWHILE_GAIN_PERCENT}% and the noise of {:.1}% (best: {:+.1}%): a dynamic batch size does not pay here\n",
            report.noise_percent, report.best_gain_percent
        )
    });
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gain_is_relative_to_the_fixed_size() {
        assert_eq!(gain(110.0, 100.0).round(), 10.0);
        assert_eq!(gain(100.0, 100.0), 0.0);
        assert_eq!(gain(5.0, 0.0), 0.0);
    }

    #[test]
    fn only_sizes_that_split_the_prompt_otherwise_can_gain() {
        let sizes = [32, 64, 512, 1024];
        // 16 tokens: every size evaluates them in one batch; the spread is noise.
        let short = row(16, &sizes, 512, vec![270.0, 245.0, 248.0, 274.0]);
        assert_eq!((short.best_batch_size, short.gain_percent), (512, 0.0));
        assert_eq!(short.noise_percent.round(), 12.0);
        // 64 tokens: only 32 splits them otherwise than 512 does, and it is slower.
        let medium = row(64, &sizes, 512, vec![282.0, 324.0, 284.0, 281.0]);
        assert_eq!((medium.best_batch_size, medium.gain_percent), (512, 0.0));
        // 2048 tokens: 1024 splits them otherwise and here it is faster.
        let long = row(2048, &sizes, 512, vec![145.0, 178.0, 220.0, 242.0]);
        assert_eq!(long.best_batch_size, 1024);
        assert_eq!(long.gain_percent.round(), 10.0);
        assert_eq!(long.noise_percent, 0.0, "no other size does the fixed one's work");
    }

    #[test]
    fn the_table_names_the_best_size_and_the_verdict() {
        let report = BatchReport {
            model: "m".to_owned(),
            threads_prefill: 2,
            runs: 3,
            fixed_batch_size: 512,
            batch_sizes: vec![64, 512],
            rows: vec![BatchRow {
                prompt_tokens: 1024,
                tokens_per_s: vec![250.0, 270.0],
                best_batch_size: 512,
                gain_percent: 0.0,
                noise_percent: 0.0,
            }],
            best_gain_percent: 0.0,
            noise_percent: 0.0,
            dynamic_helps: false,
        };
        let text = render(&report);
        assert!(text.contains("     b=64    b=512"), "{text}");
        assert!(text.contains("  1024      250.0    270.0    512   +0.0%    0.0%"), "{text}");
        assert!(text.contains("does not pay here"), "{text}");
    }
}
