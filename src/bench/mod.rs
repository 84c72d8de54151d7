//! The benchmarks a user runs to tune Workly to their machine (`workly bench
//! threads`, `gpu`, `llm`), and the measuring they share with the developer's
//! instruments of `workly-bench`: each measures the real engine on the real
//! model and returns a serde report, with a text rendering.
//!
//! Figures are medians over repeated runs after a discarded first run, so one
//! slow outlier (a page fault, a scheduler hiccup) does not move them.

pub mod gpu;
pub mod llm;
pub mod threads;
pub mod voice;

use crate::llm::{Engine, GenerationRequest, GenerationStats, LlmError, Prompt, SamplingParams};
use serde::Serialize;

/// Median of `values` (0 for none).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) { (sorted[middle - 1] + sorted[middle]) / 2.0 } else { sorted[middle] }
}

/// The median and 99th percentile of a set of measurements (their unit is in
/// the name of the field holding them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values`, sorting them in place (0 for none).
    pub fn of(values: &mut [f64]) -> Self {
        values.sort_by(f64::total_cmp);
        Self { p50: nearest_rank(values, 0.50), p99: nearest_rank(values, 0.99) }
    }
}

/// One point of a distribution: a share `q` of the measurements are at most
/// `value`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantile {
    /// The share, from 0 to 1.
    pub q: f64,
    /// The measurement at that rank.
    pub value: f64,
}

/// The shares a distribution is reported at: enough points to draw its shape.
const DISTRIBUTION_SHARES: [f64; 9] = [0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99];

/// Nearest-rank quantiles of `values` at [`DISTRIBUTION_SHARES`], sorting them
/// in place (empty for none).
pub fn distribution(values: &mut [f64]) -> Vec<Quantile> {
    if values.is_empty() {
        return Vec::new();
    }
    values.sort_by(f64::total_cmp);
    DISTRIBUTION_SHARES.iter().map(|&q| Quantile { q, value: nearest_rank(values, q) }).collect()
}

/// The value at share `p` of sorted `values` (0 for none).
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    sorted.get((p * (sorted.len() as f64 - 1.0)).round() as usize).copied().unwrap_or(0.0)
}

/// Plain prose the prefill benchmark feeds the model, repeated to length.
const PROSE: &str = "Kira watched the rain draw thin lines on the window while the kettle hummed. \
She liked these quiet evenings, when the city slowed down and the lamps came on one by one. \
Tomorrow there would be questions to answer and stories to tell, but tonight there was tea, \
an old book about lighthouses, and the soft blue glow of the screen. ";

/// A text that tokenizes to `tokens` tokens or just over, found by bisection
/// on the number of words with the engine's own tokenizer.
pub fn text_of_tokens(engine: &Engine, tokens: usize) -> Result<String, LlmError> {
    let words: Vec<&str> = PROSE.split_whitespace().cycle().take(tokens * 2 + 16).collect();
    let (mut low, mut high) = (1, words.len());
    while low < high {
        let middle = (low + high) / 2;
        if engine.count_tokens(Prompt::Text(words[..middle].join(" ")))? >= tokens {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    Ok(words[..low].join(" "))
}

/// Runs `request` to completion and returns its stats.
fn complete(engine: &Engine, request: GenerationRequest) -> Result<GenerationStats, LlmError> {
    Ok(engine.generate(request)?.collect_blocking()?.1)
}

/// Prefill speed: `prompt` evaluated from an empty cache, one token generated.
pub fn prefill_once(engine: &Engine, prompt: &str) -> Result<GenerationStats, LlmError> {
    engine.clear_cache()?;
    complete(
        engine,
        GenerationRequest {
            prompt: Prompt::Text(prompt.to_owned()),
            sampling: SamplingParams::greedy(),
            max_tokens: 1,
            stop: Vec::new(),
            ignore_eos: true,
            grammar: None,
        },
    )
}

/// Decode speed: exactly `tokens` tokens generated after a short prompt.
pub fn decode_once(engine: &Engine, tokens: u32) -> Result<GenerationStats, LlmError> {
    engine.clear_cache()?;
    complete(
        engine,
        GenerationRequest {
            prompt: Prompt::Text("Once upon a time, in a small village by the sea,".to_owned()),
            sampling: SamplingParams::greedy(),
            max_tokens: tokens,
            stop: Vec::new(),
            ignore_eos: true,
            grammar: None,
        },
    )
}

/// Medians of `runs` measurements after one discarded warm-up run.
pub fn measure<E>(runs: u32, mut once: impl FnMut() -> Result<f64, E>) -> Result<f64, E> {
    once()?;
    let values = (0..runs).map(|_| once()).collect::<Result<Vec<_>, _>>()?;
    Ok(median(&values))
}

#[cfg(test)]
mod tests {
    use super::{DISTRIBUTION_SHARES, Percentiles, distribution, median};

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn percentiles_pick_nearest_ranks() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        let percentiles = Percentiles::of(&mut values);
        assert_eq!((percentiles.p50, percentiles.p99), (51.0, 99.0));
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }

    #[test]
    fn a_distribution_climbs_through_its_shares() {
        let mut values: Vec<f64> = (1..=101).rev().map(f64::from).collect();
        let points = distribution(&mut values);
        let shares: Vec<f64> = points.iter().map(|point| point.q).collect();
        assert_eq!(shares, DISTRIBUTION_SHARES);
        let at: Vec<f64> = points.iter().map(|point| point.value).collect();
        assert_eq!(at, [2.0, 6.0, 11.0, 26.0, 51.0, 76.0, 91.0, 96.0, 100.0]);
        assert!(distribution(&mut []).is_empty());
    }
}
