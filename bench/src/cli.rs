//! The command line of `workly-bench`: the developer's instruments, each a
//! subcommand with its flags. The engine's flags and the config file are
//! Workly's own ([`EngineSettings`]), so a benchmark runs the engine as
//! `workly chat` would.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use workly::cli::{EngineSettings, GlobalArgs, SamplingArgs};

/// Workly's developer benchmarks: against the original Python stack, under
/// load for minutes, and each part alone. (What a user runs to tune their
/// machine is `workly bench`.)
#[derive(Debug, Parser)]
#[command(name = "workly-bench", version, about, max_term_width = 100)]
pub struct Cli {
    /// Workly's data directory, logs.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Which benchmark.
    #[command(subcommand)]
    pub command: Command,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every benchmark of the engine, the avatar bridge and the emotion reader (with `workly bench`'s threads,
    /// llm and gpu), written to a folder as JSON, Markdown and SVG charts.
    All(BenchAllArgs),
    /// Workly against the original Python stack (llama-cpp-python), side by side: one table of ratios.
    Compare(BenchCompareArgs),
    /// Workly in front of another engine: the served conversation through `workly serve --backend` beside the
    /// same client talking to the engine (llama-cpp-python's server) directly.
    Remote(BenchRemoteArgs),
    /// One model spread over loopback `workly worker` processes (llama.cpp RPC) beside the same model run
    /// locally: load, TTFT, prefill and decode.
    Rpc(BenchRpcArgs),
    /// A real server under concurrent conversations for minutes: errors, TTFT and memory over time.
    Soak(BenchSoakArgs),
    /// Prefill speed by batch size and prompt length: would a batch following the prompt length pay?
    Batch(BenchBatchArgs),
    /// Resident memory over a long conversation.
    Memory(BenchMemoryArgs),
    /// Emotion reading: the lexicon on the labelled set, the model's use of tags.
    Emotion(BenchEmotionArgs),
    /// Time to store an exchange, and memory over many of them.
    Store(BenchStoreArgs),
    /// Long-term memory: extraction precision, recall@5 of planted facts after unrelated turns, recall's cost at
    /// 10 to 100,000 memories, and replies that use what was recalled.
    Recall(BenchRecallArgs),
    /// Perplexity of the model on a built-in English and French text (lower is better).
    Perplexity(BenchPerplexityArgs),
    /// Avatar commands to a Unity-like peer: burst latency, throughput, CPU, batched and not.
    Ipc(BenchIpcArgs),
    /// What Kira says: 84 everyday messages in English and French through the chat turn, scored (recitals of
    /// the persona, language, length, emotion, real words, TTFT).
    Persona(BenchPersonaArgs),
}

/// `workly-bench persona`
#[derive(Debug, Clone, Args)]
pub struct BenchPersonaArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineSettings,
    /// Who Kira is: a persona file, as `workly chat --persona` takes (default: the config
    /// file's `[persona]`, else Kira).
    #[arg(long, value_name = "FILE")]
    pub persona: Option<PathBuf>,
    /// Reply shaping, as `workly chat` takes it (its defaults; the seed is 1 unless
    /// given, so that a run can be repeated).
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Only the first N messages of each language.
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub limit: Option<usize>,
    /// Without the recital guard: what the model and persona do on their own.
    #[arg(long)]
    pub no_guard: bool,
    /// Print JSON (every reply with its scores).
    #[arg(long)]
    pub json: bool,
}

/// `workly-bench soak`
#[derive(Debug, Clone, Args)]
pub struct BenchSoakArgs {
    /// Engine choice and tuning, passed on to the server.
    #[command(flatten)]
    pub engine: EngineSettings,
    /// How long to run, in minutes (fractions allowed: 0.5 is 30 seconds).
    #[arg(long, default_value_t = 10.0, value_parser = positive_number)]
    pub minutes: f64,
    /// Concurrent API clients (a WebSocket client chats beside them); with it,
    /// they stay within the server's default queue bound of 16.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=15))]
    pub clients: u16,
    /// Most tokens in each reply.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,
    /// Seconds per row of the report (a minute unless a quick check wants shorter rows).
    #[arg(long, default_value_t = 60.0, value_parser = positive_number, hide = true)]
    pub interval_seconds: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A finite number above 0.
fn positive_number(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        Ok(_) => Err("must be above 0".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

/// `workly-bench ipc`
#[derive(Debug, Clone, Args)]
pub struct BenchIpcArgs {
    /// Bursts of 10 commands timed per mode (after 100 discarded).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1000..))]
    pub bursts: u32,
    /// Seconds of sustained sending per mode.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly-bench all`
#[derive(Debug, Clone, Args)]
pub struct BenchAllArgs {
    /// Engine choice and tuning (thread flags are ignored by the thread sweep).
    #[command(flatten)]
    pub engine: EngineSettings,
    /// Folder the report is written to (`report.json`, `REPORT.md`, charts); created if missing.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Measured runs per figure (after one discarded run).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Turns of the conversation whose memory is sampled (every 50 turns, and the last).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    pub turns: u32,
    /// Print the whole report as JSON (it is also written to the folder).
    #[arg(long)]
    pub json: bool,
}

/// `workly-bench compare`
#[derive(Debug, Clone, Args)]
pub struct BenchCompareArgs {
    /// Folder the comparison is written to (`compare.json`, `COMPARE.md`); created if missing.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The model, threads and context of both stacks, and the Python one's venv.
    #[command(flatten)]
    pub stack: StackArgs,
    /// Rounds, each running every part for both stacks, in alternating order.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Measured runs per speed figure inside each process (after one discarded run).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// One-shot chats per stack and round, timed to their first byte.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub cold_runs: u32,
    /// Turns of the served conversation.
    #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=20))]
    pub turns: usize,
    /// Exchanges of history the original client sends with each turn.
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// Most tokens per served reply.
    #[arg(long, default_value_t = 48, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,
    /// Untimed seconds before each served turn (a person reading and typing).
    #[arg(long, default_value_t = 0.5)]
    pub pause: f64,
    /// Avatar commands the original client sends per round.
    #[arg(long, default_value_t = 100_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub ipc_commands: usize,
    /// Print the whole report as JSON (it is also written to the folder).
    #[arg(long)]
    pub json: bool,
}

/// The engine of a comparison with llama-cpp-python: the model, threads and
/// context every engine of the run gets, and the Python that runs it.
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// GGUF model every engine runs (default: Workly's default model).
    #[arg(long, short, env = workly::config::env::MODEL, value_name = "PATH|URL")]
    pub model: Option<String>,
    /// Threads of every engine (default: the count Workly picks).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Context size in tokens, of every engine.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(256..))]
    pub context_size: u32,
    /// Python with llama-cpp-python (default: the venv bench/baseline/setup.sh makes).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
}

/// `workly-bench remote`
#[derive(Debug, Clone, Args)]
pub struct BenchRemoteArgs {
    /// The engine's model, threads and context, and the venv of llama-cpp-python's server.
    #[command(flatten)]
    pub stack: StackArgs,
    /// Conversations played each way, in alternating order.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Turns of the served conversation.
    #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(2..=20))]
    pub turns: usize,
    /// Most tokens per served reply.
    #[arg(long, default_value_t = 48, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,
    /// Untimed seconds before each served turn (a person reading and typing).
    #[arg(long, default_value_t = 0.5)]
    pub pause: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly-bench rpc`
#[derive(Debug, Clone, Args)]
pub struct BenchRpcArgs {
    /// GGUF model (default: Workly's default model).
    #[arg(long, short, env = workly::config::env::MODEL, value_name = "PATH|URL")]
    pub model: Option<String>,
    /// Threads of the local engine and of each worker (default: the count Workly picks).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Workers the layers are spread over.
    #[arg(long, default_value_t = 2, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=8))]
    pub workers: usize,
    /// Rounds, each running both ways in alternating order.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Measured runs per figure inside each `workly bench llm`.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly-bench batch`
#[derive(Debug, Clone, Args)]
pub struct BenchBatchArgs {
    /// Engine choice (the batch size flag is ignored: every size listed is tried).
    #[command(flatten)]
    pub engine: EngineSettings,
    /// Batch sizes to compare (Workly's fixed one is always added).
    #[arg(long, value_delimiter = ',', default_values_t = [32, 64, 128, 256, 512, 1024, 2048], value_parser = clap::value_parser!(u32).range(1..=8192))]
    pub batch_sizes: Vec<u32>,
    /// Prompt lengths, in tokens.
    #[arg(long, value_delimiter = ',', default_values_t = [16, 64, 256, 1024, 2048], value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=32768))]
    pub prompt_tokens: Vec<usize>,
    /// Measured runs per figure (after one discarded run).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly-bench memory`
#[derive(Debug, Clone, Args)]
pub struct BenchMemoryArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineSettings,
    /// Conversation length in turns.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub turns: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly-bench emotion`
#[derive(Debug, Clone, Args)]
pub struct BenchEmotionArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineSettings,
    /// Turns of the scripted conversation whose replies are checked for tags.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub turns: u32,
    /// Only score the lexicon analyzer; load no model.
    #[arg(long)]
    pub no_model: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly-bench perplexity`
#[derive(Debug, Clone, Args)]
pub struct BenchPerplexityArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineSettings,
    /// A UTF-8 text file to score instead of the built-in text.
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly-bench recall`
#[derive(Debug, Clone, Args)]
pub struct BenchRecallArgs {
    /// Engine choice and tuning, for the replies.
    #[command(flatten)]
    pub engine: EngineSettings,
    /// Unrelated turns between the planted facts and the questions.
    #[arg(long, default_value_t = 200)]
    pub unrelated_turns: u32,
    /// Numbers of memories kept at which recall is timed.
    #[arg(long, value_delimiter = ',', default_value = "10,1000,100000")]
    pub sizes: Vec<u32>,
    /// No model: leave out the replies.
    #[arg(long)]
    pub no_model: bool,
    /// Only the first N questions of each language get a reply (all by default).
    #[arg(long, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub questions: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly-bench store`
#[derive(Debug, Clone, Args)]
pub struct BenchStoreArgs {
    /// Exchanges written (each timed).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub exchanges: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
