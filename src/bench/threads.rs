//! `workly bench threads`: prefill and decode speed for every thread count,
//! and the counts Workly will use from now on.
//!
//! Decode is memory-bound and prefill compute-bound, so their best thread
//! counts differ from machine to machine; rules of thumb ("leave two cores
//! free") are guesses. This benchmark measures, saves the result to Workly's
//! cache, and later runs read it ([`crate::hardware::ThreadMeasurements`]).

use super::{decode_once, measure, prefill_once, text_of_tokens};
use crate::config::Prepared;
use crate::hardware::{ThreadChoice, ThreadMeasurements, ThreadRow};
use crate::llm::{Engine, LlmError};
use serde::Serialize;
use std::path::Path;

/// Prompt length of each prefill measurement.
const PREFILL_TOKENS: usize = 256;
/// Generated length of each decode measurement.
const DECODE_TOKENS: u32 = 64;

/// The report of `workly bench threads`.
#[derive(Debug, Clone, Serialize)]
pub struct ThreadsReport {
    /// What was measured, as saved to the cache.
    pub measurements: ThreadMeasurements,
    /// The counts Workly picks from them.
    pub chosen: ThreadChoice,
    /// Where the measurements were saved.
    pub saved_to: String,
}

/// Measures every thread count with the engine `prepared` describes and
/// saves the measurements to `save_to`, for later runs.
pub fn report(prepared: &Prepared, runs: u32, save_to: &Path) -> crate::error::Result<ThreadsReport> {
    let logical = prepared.hardware.cpu.logical_cores.max(1);
    let mut rows = Vec::with_capacity(logical);
    for threads in 1..=logical {
        let mut config = prepared.engine.clone();
        config.threads_decode = threads;
        config.threads_prefill = threads;
        let engine = Engine::load(config)?;
        let prompt = text_of_tokens(&engine, PREFILL_TOKENS)?;
        let prefill_tokens_per_s =
            measure(runs, || Ok::<_, LlmError>(prefill_once(&engine, &prompt)?.prefill_tokens_per_s))?;
        let decode_tokens_per_s =
            measure(runs, || Ok::<_, LlmError>(decode_once(&engine, DECODE_TOKENS)?.decode_tokens_per_s))?;
        tracing::info!(threads, prefill_tokens_per_s, decode_tokens_per_s, "measured");
        rows.push(ThreadRow { threads, prefill_tokens_per_s, decode_tokens_per_s });
    }
    let measurements = ThreadMeasurements {
        cpu_model: prepared.hardware.cpu.model.clone(),
        logical_cores: logical,
        model_file: prepared.engine.model.file_name.clone(),
        rows,
    };
    measurements.save(save_to)?;
    Ok(ThreadsReport { chosen: measurements.pick(), measurements, saved_to: save_to.display().to_string() })
}

/// The report as a table.
pub fn render(report: &ThreadsReport) -> String {
    let mut text = format!(
        "{} ({} logical cores), model {}\nthreads   prefill tokens/s   decode tokens/s\n",
        report.measurements.cpu_model, report.measurements.logical_cores, report.measurements.model_file
    );
    for row in &report.measurements.rows {
        text.push_str(&format!(
            "{:>7}   {:>16.1}   {:>15.1}\n",
            row.threads, row.prefill_tokens_per_s, row.decode_tokens_per_s
        ));
    }
    text.push_str(&format!(
        "chosen: {} threads for decode, {} for prefill (saved to {})\n",
        report.chosen.decode, report.chosen.prefill, report.saved_to
    ));
    text
}
