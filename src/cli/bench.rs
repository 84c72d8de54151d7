//! `workly bench`: what a user runs to tune Workly to their own machine:
//! the thread sweep (whose result later runs read), the GPU layer sweep, and
//! what a chat feels like end to end. The developer's instruments (the
//! comparison with the original stack, soak, IPC, memory, ...) are the
//! `workly-bench` binary's, beside this one.

use super::{Context, EngineSettings, write_stdout};
use crate::bench::{gpu, llm, threads};
use crate::chat::{Conversation, Persona};
use crate::llm::Engine;
use clap::{Args, Subcommand};
use serde::Serialize;

/// `workly bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load, warm-up, time to first token, prefill and decode speed, a 20-turn conversation.
    Llm(BenchLlmArgs),
    /// Kira's voice: speech synthesis and recognition speed, round-trip word error rate, and
    /// the stages of spoken turns from the end of speech to her first sound, in English and French.
    Voice(BenchVoiceArgs),
    /// Prefill and decode speed for every thread count; saves the best for later runs.
    Threads(BenchThreadsArgs),
    /// GPU layers from 0 to all: speeds and VRAM at each, and Workly's own pick against the best (CUDA builds).
    Gpu(BenchGpuArgs),
}

/// `workly bench llm`
#[derive(Debug, Clone, Args)]
pub struct BenchLlmArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineSettings,
    /// Measured runs per figure (after one discarded run).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly bench voice`
#[derive(Debug, Clone, Args)]
pub struct BenchVoiceArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineSettings,
    /// Measured runs of each spoken turn (after one discarded run).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly bench threads`
#[derive(Debug, Clone, Args)]
pub struct BenchThreadsArgs {
    /// Engine choice (thread flags are ignored: every count is tried).
    #[command(flatten)]
    pub engine: EngineSettings,
    /// Measured runs per thread count (after one discarded run).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly bench gpu`
#[derive(Debug, Clone, Args)]
pub struct BenchGpuArgs {
    /// Engine choice and tuning (the sweep sets the GPU layers itself).
    #[command(flatten)]
    pub engine: EngineSettings,
    /// Measured runs per figure (after one discarded run).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Layers between counts measured (default: every count up to 40 layers, else about 20 counts).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub step: Option<u32>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs one `workly bench` command.
pub fn run(context: &Context, command: &BenchCommand) -> crate::error::Result<()> {
    match command {
        BenchCommand::Llm(args) => print(&llm_report(context, &args.engine, args.runs)?, args.json, llm::render),
        BenchCommand::Voice(args) => {
            let persona = Persona::default();
            let prepared = args.engine.prepare(context, Conversation::new(persona).openings())?;
            let engine = Engine::load(prepared.engine)?;
            let files = crate::voice::VoiceFiles::new(&context.dirs.models());
            let report = crate::bench::voice::measure_voice(&engine, &files, crate::voice::threads(), args.runs)?;
            print(&report, args.json, crate::bench::voice::render)
        }
        BenchCommand::Threads(args) => {
            let prepared = args.engine.prepare(context, Vec::new())?;
            let report = threads::report(&prepared, args.runs, &context.dirs.thread_measurements())?;
            print(&report, args.json, threads::render)
        }
        BenchCommand::Gpu(args) => {
            let report = gpu::report(&args.engine.prepare(context, Vec::new())?, args.runs, args.step)?;
            print(&report, args.json, gpu::render)
        }
    }
}

/// Loads the engine as `workly chat` would, warmed for Kira, and measures it.
pub fn llm_report(context: &Context, settings: &EngineSettings, runs: u32) -> crate::error::Result<llm::LlmReport> {
    let persona = Persona::default();
    let prepared = settings.prepare(context, Conversation::new(persona.clone()).openings())?;
    let engine = Engine::load(prepared.engine)?;
    Ok(llm::measure_llm(&engine, &persona, runs)?)
}

/// Prints a report as JSON or as its text rendering.
pub fn print<T: Serialize>(report: &T, json: bool, render: impl FnOnce(&T) -> String) -> crate::error::Result<()> {
    let text = if json { serde_json::to_string(report)? + "\n" } else { render(report) };
    write_stdout(&text)?;
    Ok(())
}
