//! The command-line surface: argument types, the shared set-up of an engine
//! from flags, environment, config file and hardware, exit codes, and the
//! runners of the commands that are doors into Workly: [`chat`] (the
//! terminal), [`serve`], [`history`], [`emotion`] and [`avatar`].
//!
//! `main.rs` parses [`Cli`] and calls one `run` per subcommand; the library
//! below takes plain configuration. Exit codes: 0 success,
//! 1 a failure at run time, 2 bad input (usage, a bad model or config file, a
//! prompt that cannot fit, a damaged or newer database, an unknown
//! conversation), 130 interrupted.

use crate::chat::Persona;
use crate::choice::Choice;
use crate::config::{self, Dirs, FileConfig};
use crate::hardware::{
    GpuBackend, GpuSelection, Hardware, ModelFootprint, SplitMode, ThreadMeasurements, ThreadSource, Tuning,
    TuningRequest, place_gpu_layers,
};
use crate::llm::{EngineConfig, FlashAttention, KvCacheType, LlmError, Message, SamplingParams};
use crate::model::{self, ModelInfo, ModelMode};
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

pub mod avatar;
pub mod chat;
pub mod emotion;
pub mod history;
pub mod serve;

/// Exit code for a failure at run time.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad input: usage, model file, config file, prompt too long.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code when the user interrupted Workly.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Parses a [`Choice`] by its name, offering every name as a possible value.
fn choice<T: Choice>() -> impl clap::builder::TypedValueParser<Value = T> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(T::ALL.iter().map(|value| value.name()))
        .try_map(|name: String| T::named(&name).ok_or_else(|| format!("unknown value `{name}`")))
}

/// Workly: a local-first AI companion. Chat with Kira on your own machine.
#[derive(Debug, Parser)]
#[command(name = "workly", version, about, max_term_width = 100)]
pub struct Cli {
    /// Where models and conversations live.
    #[arg(long, global = true, env = config::env::DATA_DIR, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Show Workly's and llama.cpp's logs on stderr.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Whether llama.cpp's own log goes to `tracing` (and so to stderr):
    /// with `--verbose`, or when `RUST_LOG` asks for logs.
    pub fn llama_logs(&self) -> bool {
        self.verbose || std::env::var_os("RUST_LOG").is_some()
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Chat with Kira in the terminal (or answer once with -p).
    Chat(ChatArgs),
    /// Inspect or download GGUF models.
    Model {
        /// What to do with models.
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Report the hardware and the settings Workly picks for it.
    Doctor(DoctorArgs),
    /// Serve Kira locally: an OpenAI-compatible API (and Kira's page).
    Serve(ServeArgs),
    /// Browse, search, export or delete stored conversations.
    History {
        /// What to do with the history.
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Control the avatar by hand, or run a reference receiver.
    Avatar {
        /// What to do.
        #[command(subcommand)]
        command: AvatarCommand,
    },
    /// Measure performance.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Show the emotion Workly reads in a text, and why (no model needed).
    Emotion(EmotionArgs),
}

/// `workly model ...`
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Print a GGUF file's metadata.
    Info {
        /// The GGUF file.
        path: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Download a GGUF over HTTP(S), resuming a partial download.
    Pull {
        /// The URL of the GGUF file.
        url: String,
        /// File or directory to write to (default: the models directory).
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Expected SHA-256 of the file, in hex.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// No progress bar.
        #[arg(long)]
        no_progress: bool,
    },
    /// Write a model at another quantization, with llama.cpp's quantizer.
    Quantize(ModelQuantizeArgs),
}

/// `workly model quantize`
#[derive(Debug, Clone, Args)]
pub struct ModelQuantizeArgs {
    /// The source GGUF file (best from F16 or F32; an already quantized one works, at its quality).
    pub input: PathBuf,
    /// The file to write (e.g. `X.Q4_0.gguf` beside `X.Q4_1.gguf`, for `--mode`).
    pub output: PathBuf,
    /// The quantization to write.
    #[arg(long = "type", value_parser = choice::<model::QuantType>(), value_name = "TYPE")]
    pub quant_type: model::QuantType,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `workly history ...`
#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Every conversation, most recently used first.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a conversation.
    Show {
        /// The conversation.
        name: String,
    },
    /// Find messages containing every word given (quotes and operators are plain text).
    Search {
        /// Words to find.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// Search only this conversation.
        #[arg(long, value_name = "NAME")]
        conversation: Option<String>,
        /// Most results shown.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a conversation to stdout.
    Export {
        /// The conversation.
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
    },
    /// Delete a conversation and everything said in it.
    Delete {
        /// The conversation.
        name: String,
    },
}

/// How `workly history export` writes a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON object: the conversation and its messages with every stored field.
    Json,
    /// A readable transcript.
    Markdown,
}

/// Flags that choose and tune the engine.
#[derive(Debug, Clone, Default, Args)]
pub struct EngineArgs {
    /// GGUF model: a path or an http(s) URL (default: SmolLM2-135M-Instruct).
    #[arg(long, short, env = config::env::MODEL, value_name = "PATH|URL")]
    pub model: Option<String>,
    /// Context size in tokens (default: picked from the model and free memory).
    #[arg(long, value_parser = clap::value_parser!(u32).range(64..))]
    pub context_size: Option<u32>,
    /// Threads for decode and prefill (default: measured or physical cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Layers to offload to the GPU; 999 offloads all (default: as many as fit in free
    /// VRAM with CUDA, none with Vulkan, which cannot read free VRAM).
    #[arg(long)]
    pub gpu_layers: Option<u32>,
    /// How the model is spread over several GPUs (default: layer).
    #[arg(long, value_parser = choice::<SplitMode>())]
    pub split_mode: Option<SplitMode>,
    /// GPUs to use, by the index `workly doctor` shows, e.g. 0,1 (default: all).
    #[arg(long, value_delimiter = ',', value_name = "INDEX,...")]
    pub devices: Vec<u32>,
    /// The GPU of --split-mode none (default: the first one used).
    #[arg(long, value_name = "INDEX")]
    pub main_gpu: Option<u32>,
    /// Share of the layers per GPU used, e.g. 3,1 (default: by free VRAM). A CUDA
    /// build takes it in `workly doctor` only: this llama.cpp binding cannot pass it on yet.
    #[arg(long, value_delimiter = ',', value_parser = proportion, value_name = "N,...")]
    pub tensor_split: Vec<f64>,
    /// Prefill batch size in tokens.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Option<u32>,
    /// Chat template: a Jinja file, inline Jinja, or a built-in name: chatml, gemma
    /// (default: the model's own).
    #[arg(long, value_name = "FILE|JINJA|NAME")]
    pub chat_template: Option<String>,
    /// KV cache cells: f16, or q8_0 for half the memory (default: f16).
    #[arg(long, value_parser = choice::<KvCacheType>())]
    pub kv_cache_type: Option<KvCacheType>,
    /// llama.cpp's flash-attention kernels (default: auto).
    #[arg(long, value_parser = choice::<FlashAttention>())]
    pub flash_attn: Option<FlashAttention>,
    /// Among quantizations of the model in its folder (`X.Q4_0.gguf`, `X.Q8_0.gguf`...):
    /// fast runs the smallest, quality the largest (default: the model as given; config key `mode`).
    #[arg(long, value_parser = choice::<ModelMode>())]
    pub mode: Option<ModelMode>,
}

/// Flags that shape a reply.
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    /// Most tokens in a reply.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,
    /// Temperature (0: greedy, deterministic).
    #[arg(long, default_value_t = SamplingParams::default().temperature)]
    pub temperature: f32,
    /// Nucleus sampling threshold.
    #[arg(long, default_value_t = SamplingParams::default().top_p)]
    pub top_p: f32,
    /// Keep the k most likely tokens (0: off).
    #[arg(long, default_value_t = SamplingParams::default().top_k)]
    pub top_k: i32,
    /// Minimum probability relative to the best token.
    #[arg(long, default_value_t = SamplingParams::default().min_p)]
    pub min_p: f32,
    /// Penalty on recently repeated tokens (1: off).
    #[arg(long, default_value_t = SamplingParams::default().repeat_penalty)]
    pub repeat_penalty: f32,
    /// Random seed, for reproducible replies.
    #[arg(long)]
    pub seed: Option<u32>,
    /// A string that ends the reply (repeatable).
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    /// The engine's sampling settings.
    pub fn params(&self) -> SamplingParams {
        SamplingParams {
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            ..SamplingParams::default()
        }
    }
}

/// `workly chat`
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Reply shaping.
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Answer this once and exit; only the reply goes to stdout.
    #[arg(long, short)]
    pub prompt: Option<String>,
    /// One JSON object per turn on stdout (text and measurements).
    #[arg(long)]
    pub json: bool,
    /// Who Kira is: a TOML file with `name`, `personality`, `style`,
    /// `emotion_tags` or a whole `system_prompt` (default: the config file's
    /// `[persona]` table, else Kira).
    #[arg(long, value_name = "FILE")]
    pub persona: Option<PathBuf>,
    /// Continue this conversation, or start it under this name. Without it, a
    /// chat continues the most recent conversation (or starts `chat-1`), and
    /// `-p` answers without reading or storing history. Every exchange is saved
    /// in the data directory; /reset starts a new conversation, keeping the old.
    #[arg(long, value_name = "NAME")]
    pub conversation: Option<String>,
    /// Where Kira's face is shown.
    #[command(flatten)]
    pub avatar: AvatarArgs,
}

/// `workly serve`
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Address to listen on; anything but loopback needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Key API clients must send as `Authorization: Bearer KEY`.
    #[arg(long, env = "WORKLY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests running or waiting at once; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_queue: u16,
    /// Who Kira is (see `workly chat --help`).
    #[arg(long, value_name = "FILE")]
    pub persona: Option<PathBuf>,
    /// The stored conversation the page continues (default: the most recent).
    #[arg(long, value_name = "NAME")]
    pub conversation: Option<String>,
    /// Where Kira's face is shown.
    #[command(flatten)]
    pub avatar: AvatarArgs,
}

/// `workly doctor`
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Engine choice and tuning (the model decides GPU layers and context).
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `workly emotion`
#[derive(Debug, Clone, Args)]
pub struct EmotionArgs {
    /// The text to read (default: one text per line of stdin, one answer per line).
    pub text: Option<String>,
    /// Print JSON: one object per text.
    #[arg(long)]
    pub json: bool,
}

/// `workly bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Every benchmark below but the store and soak ones, written to a folder as JSON, Markdown and SVG charts.
    All(BenchAllArgs),
    /// GPU layers from 0 to all: speeds and VRAM at each, and Workly's own pick against the best (CUDA builds).
    Gpu(BenchGpuArgs),
    /// Workly against the original Python stack (llama-cpp-python), side by side: one table of ratios.
    Compare(BenchCompareArgs),
    /// Load, warm-up, time to first token, prefill and decode speed, a 20-turn conversation.
    Llm(BenchLlmArgs),
    /// Prefill and decode speed for every thread count; saves the best for later runs.
    Threads(BenchThreadsArgs),
    /// Prefill speed by batch size and prompt length: would a batch following the prompt length pay?
    Batch(BenchBatchArgs),
    /// Resident memory over a long conversation.
    Memory(BenchMemoryArgs),
    /// Emotion reading: the lexicon on the labelled set, the model's use of tags.
    Emotion(BenchEmotionArgs),
    /// Time to store an exchange, and memory over many of them.
    Store(BenchStoreArgs),
    /// Perplexity of the model on a built-in English and French text (lower is better).
    Perplexity(BenchPerplexityArgs),
    /// Avatar commands to a Unity-like peer: burst latency, throughput, CPU, batched and not.
    Ipc(BenchIpcArgs),
    /// A real server under concurrent conversations for minutes: errors, TTFT and memory over time.
    Soak(BenchSoakArgs),
}

/// `workly bench soak`
#[derive(Debug, Clone, Args)]
pub struct BenchSoakArgs {
    /// Engine choice and tuning, passed on to the server.
    #[command(flatten)]
    pub engine: EngineArgs,
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

/// A finite number of 0 or more.
fn proportion(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        Ok(_) => Err("must be a proportion of 0 or more".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

/// A finite number above 0.
fn positive_number(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        Ok(_) => Err("must be above 0".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

/// `workly bench ipc`
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

/// Where the avatar is shown: the Unity app and/or VMC receivers.
#[derive(Debug, Clone, Args)]
pub struct AvatarArgs {
    /// The Unity avatar app's bridge; Workly connects to it, retrying while it is absent.
    #[arg(long, value_name = "HOST:PORT", default_value = crate::avatar::unity::DEFAULT_ADDRESS)]
    pub unity: String,
    /// Do not connect to the Unity app.
    #[arg(long)]
    pub no_unity: bool,
    /// Also send to a VMC receiver (repeatable; the port defaults to 39539).
    #[arg(long, value_name = "HOST[:PORT]")]
    pub vmc: Vec<String>,
    /// At most N avatar writes or frames per second (default: commands leave at once,
    /// VMC frames at 60 per second while something moves).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub avatar_fps: Option<u32>,
}

/// `workly avatar ...`
#[derive(Debug, Subcommand)]
pub enum AvatarCommand {
    /// Send one command, e.g. `set_expression joy 0.8`, and exit once it is written.
    Send(AvatarSendArgs),
    /// Listen like the Unity app and print each command applied.
    Peer(AvatarPeerArgs),
}

/// `workly avatar send`
#[derive(Debug, Clone, Args)]
pub struct AvatarSendArgs {
    /// Where to send.
    #[command(flatten)]
    pub avatar: AvatarArgs,
    /// The command and its arguments: load_model PATH | unload_model | set_expression NAME VALUE |
    /// reset_expressions | set_transition_speed SPEED | set_auto_blink BOOL |
    /// set_auto_head_movement BOOL [MIN_S MAX_S ANGLE] | set_head_pose YAW PITCH.
    /// Flags may come before or after it (`set_expression joy 0.8 --unity HOST:PORT`); a
    /// negative number is a value, not a flag.
    #[arg(required = true, num_args = 1.., allow_negative_numbers = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `workly avatar peer`
#[derive(Debug, Clone, Args)]
pub struct AvatarPeerArgs {
    /// Port to listen on (0: any free port; the address is printed on stderr).
    #[arg(long, default_value_t = 5555)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
}

/// `workly bench all`
#[derive(Debug, Clone, Args)]
pub struct BenchAllArgs {
    /// Engine choice and tuning (thread flags are ignored by the thread sweep).
    #[command(flatten)]
    pub engine: EngineArgs,
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

/// `workly bench gpu`
#[derive(Debug, Clone, Args)]
pub struct BenchGpuArgs {
    /// Engine choice and tuning (the sweep sets the GPU layers itself).
    #[command(flatten)]
    pub engine: EngineArgs,
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

/// `workly bench compare`
#[derive(Debug, Clone, Args)]
pub struct BenchCompareArgs {
    /// Folder the comparison is written to (`compare.json`, `COMPARE.md`); created if missing.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// GGUF model both stacks run (default: SmolLM2-135M-Instruct).
    #[arg(long, short, env = config::env::MODEL, value_name = "PATH|URL")]
    pub model: Option<String>,
    /// Threads for both stacks (default: the count Workly picks).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Context size in tokens, for both stacks.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(256..))]
    pub context_size: u32,
    /// Python with llama-cpp-python (default: the venv bench/baseline/setup.sh makes).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
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

/// `workly bench llm`
#[derive(Debug, Clone, Args)]
pub struct BenchLlmArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Measured runs per figure (after one discarded run).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
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
    pub engine: EngineArgs,
    /// Measured runs per thread count (after one discarded run).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly bench batch`
#[derive(Debug, Clone, Args)]
pub struct BenchBatchArgs {
    /// Engine choice (the batch size flag is ignored: every size listed is tried).
    #[command(flatten)]
    pub engine: EngineArgs,
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

/// `workly bench memory`
#[derive(Debug, Clone, Args)]
pub struct BenchMemoryArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Conversation length in turns.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub turns: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly bench emotion`
#[derive(Debug, Clone, Args)]
pub struct BenchEmotionArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineArgs,
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

/// `workly bench perplexity`
#[derive(Debug, Clone, Args)]
pub struct BenchPerplexityArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineArgs,
    /// A UTF-8 text file to score instead of the built-in text.
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `workly bench store`
#[derive(Debug, Clone, Args)]
pub struct BenchStoreArgs {
    /// Exchanges written (each timed).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub exchanges: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// What every subcommand shares: directories, the config file, verbosity.
#[derive(Debug, Clone)]
pub struct Context {
    /// Workly's directories.
    pub dirs: Dirs,
    /// The config file's settings.
    pub file: FileConfig,
    /// Whether llama.cpp's log goes to tracing.
    pub llama_logs: bool,
}

impl Context {
    /// Resolves directories and reads the config file.
    pub fn resolve(cli: &Cli) -> anyhow::Result<Self> {
        let dirs = Dirs::resolve(cli.data_dir.as_deref())?;
        let file = FileConfig::load(&dirs.config_file)?;
        Ok(Self { dirs, file, llama_logs: cli.llama_logs() })
    }

    /// The persona: `--persona FILE`, else the config file's `[persona]`, else Kira.
    pub fn persona(&self, file: Option<&Path>) -> anyhow::Result<Persona> {
        match file {
            Some(path) => {
                let config = config::PersonaConfig::load(path)?;
                Persona::from_config(&config).with_context(|| format!("persona file `{}`", path.display()))
            }
            None => Ok(Persona::from_config(&self.file.persona.clone().unwrap_or_default())
                .with_context(|| format!("config file `{}`", self.dirs.config_file.display()))?),
        }
    }
}

/// An engine configuration with the facts it was chosen from.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Ready for [`crate::llm::Engine::load`].
    pub engine: EngineConfig,
    /// The machine.
    pub hardware: Hardware,
    /// The chosen settings and where each came from.
    pub tuning: Tuning,
}

impl EngineArgs {
    /// The flags that set these tuning choices again, for a child `workly`
    /// (the model is left out: the caller passes the file it resolved).
    pub fn tuning_flags(&self) -> Vec<String> {
        fn name(value: &impl Choice) -> String {
            value.name().to_owned()
        }
        fn join(values: &[impl ToString]) -> String {
            values.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        }
        let mut flags = Vec::new();
        let mut flag = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                flags.extend([flag.to_owned(), value]);
            }
        };
        flag("--context-size", self.context_size.map(|value| value.to_string()));
        flag("--threads", self.threads.map(|value| value.to_string()));
        flag("--gpu-layers", self.gpu_layers.map(|value| value.to_string()));
        flag("--split-mode", self.split_mode.as_ref().map(name));
        flag("--devices", (!self.devices.is_empty()).then(|| join(&self.devices)));
        flag("--main-gpu", self.main_gpu.map(|value| value.to_string()));
        flag("--tensor-split", (!self.tensor_split.is_empty()).then(|| join(&self.tensor_split)));
        flag("--batch-size", self.batch_size.map(|value| value.to_string()));
        flag("--chat-template", self.chat_template.clone());
        flag("--kv-cache-type", self.kv_cache_type.as_ref().map(name));
        flag("--flash-attn", self.flash_attn.as_ref().map(name));
        flags
    }

    /// The model file these flags (or the config file, or the default) name,
    /// validated and described; with `--mode`, the quantization of it that the
    /// mode picks, said in one line on stderr.
    pub fn model_info(&self, context: &Context) -> anyhow::Result<ModelInfo> {
        let choice = self.model.as_deref().or(context.file.model.as_deref());
        let path = model::locate::resolve(choice, &context.dirs.models())?;
        let info = ModelInfo::read(&path)?;
        let Some(mode) = self.mode.or(context.file.mode) else { return Ok(info) };
        let choice = model::variants::choose(info, mode);
        eprintln!("workly: {}", choice.note());
        Ok(choice.model)
    }

    /// The multi-GPU flags, each falling back to the config file.
    pub fn gpu_selection(&self, file: &FileConfig) -> GpuSelection {
        // A list flag given on the command line replaces the file's list.
        fn or_file<T: Clone>(flag: &[T], file: Option<&Vec<T>>) -> Vec<T> {
            if flag.is_empty() { file.cloned().unwrap_or_default() } else { flag.to_vec() }
        }
        GpuSelection {
            split_mode: self.split_mode.or(file.split_mode).unwrap_or_default(),
            devices: or_file(&self.devices, file.devices.as_ref()),
            main_gpu: self.main_gpu.or(file.main_gpu),
            tensor_split: or_file(&self.tensor_split, file.tensor_split.as_ref()),
        }
    }

    /// Resolves the model and tunes the engine for this machine: flags win over
    /// the config file, which wins over what the hardware policy picks.
    ///
    /// The GPU selection is checked against the detected GPUs (a bad one is
    /// bad input); without a GPU backend it is accepted with one warning, as
    /// `--gpu-layers` is, since the same flags may serve a CUDA build later.
    pub fn prepare(&self, context: &Context, warmup: Vec<Vec<Message>>) -> anyhow::Result<Prepared> {
        let model = self.model_info(context)?;
        let hardware = Hardware::detect();
        let gpus = self.gpu_selection(&context.file);
        gpus.check(&hardware.gpus)?;
        let gpu_layers = self.gpu_layers.or(context.file.gpu_layers);
        if GpuBackend::BUILT == GpuBackend::Cpu && (gpus.is_set() || gpu_layers.is_some_and(|layers| layers > 0)) {
            warn_no_gpu_backend();
        }
        let measured = match ThreadMeasurements::load(&context.dirs.thread_measurements()) {
            Ok(measured) => measured.filter(|m| m.matches(&hardware.cpu)),
            Err(error) => {
                tracing::warn!("ignoring saved thread measurements: {error}");
                None
            }
        };
        let request = TuningRequest {
            context_size: self.context_size.or(context.file.context_size),
            gpus: gpus.clone(),
            backend: GpuBackend::BUILT,
        };
        let footprint = footprint(&model);
        let mut tuning = Tuning::choose(&hardware, &footprint, measured.as_ref(), &request);
        if let Some(threads) = self.threads.map(usize::from).or(context.file.threads) {
            tuning.threads_decode = threads;
            tuning.threads_prefill = threads;
            tuning.thread_source = ThreadSource::Configured;
        }
        if let Some(layers) = gpu_layers {
            tuning.gpu_layers = layers;
            tuning.gpu_reason = "set by --gpu-layers or the config file".to_owned();
            if GpuBackend::BUILT == GpuBackend::Cuda {
                tuning.gpu_split = place_gpu_layers(&footprint, &hardware.gpus, &gpus, tuning.context_size, layers);
            }
        }
        if let Some(batch) = self.batch_size.or(context.file.batch_size) {
            tuning.batch_size = batch;
        }
        let kv_cache_type = self.kv_cache_type.or(context.file.kv_cache_type).unwrap_or_default();
        let mut flash_attention = self.flash_attn.or(context.file.flash_attention).unwrap_or_default();
        if kv_cache_type != KvCacheType::F16 {
            // llama.cpp stores a quantized V cache only with flash attention.
            flash_attention = match flash_attention {
                FlashAttention::Off => {
                    return Err(config::ConfigError::Conflict(
                        "a q8_0 KV cache needs flash attention: drop --flash-attn off or use --kv-cache-type f16"
                            .to_owned(),
                    )
                    .into());
                }
                _ => FlashAttention::On,
            };
        }
        let engine = EngineConfig {
            model,
            threads_decode: tuning.threads_decode,
            threads_prefill: tuning.threads_prefill,
            gpu_layers: tuning.gpu_layers,
            gpus,
            context_size: tuning.context_size,
            batch_size: tuning.batch_size,
            chat_template: self.chat_template.clone().or_else(|| context.file.chat_template.clone()),
            warmup,
            llama_logs: context.llama_logs,
            prompt_cache: Some(context.dirs.prompt_cache()),
            kv_cache_type,
            flash_attention,
        };
        Ok(Prepared { engine, hardware, tuning })
    }
}

/// Says once per process that the GPU flags do nothing in this build.
fn warn_no_gpu_backend() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            "--gpu-layers, --split-mode, --devices, --main-gpu and --tensor-split have no effect: \
             this build has no GPU backend (rebuild with --features cuda or --features vulkan)"
        );
    });
}

/// What the hardware policies need to know about a model.
pub fn footprint(model: &ModelInfo) -> ModelFootprint {
    ModelFootprint {
        layers: model.layers,
        layer_bytes: model.layer_bytes.clone(),
        output_bytes: model.output_bytes,
        kv_bytes_per_token: model.kv_bytes_per_token(),
        context_length_train: model.context_length,
    }
}

/// The exit code for an error: bad input is told apart from failures by the
/// error types found in its chain.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(avatar) = cause.downcast_ref::<crate::avatar::AvatarError>() {
            return if avatar.is_bad_input() { EXIT_BAD_INPUT } else { EXIT_FAILURE };
        }
        if let Some(quantize) = cause.downcast_ref::<model::QuantizeError>() {
            return if quantize.is_bad_input() { EXIT_BAD_INPUT } else { EXIT_FAILURE };
        }
        if let Some(llm) = cause.downcast_ref::<LlmError>() {
            return match llm {
                LlmError::Model(_)
                | LlmError::Template(_)
                | LlmError::Sampling(_)
                | LlmError::PromptTooLong { .. }
                | LlmError::Gpu(_)
                | LlmError::EmptyPrompt => EXIT_BAD_INPUT,
                _ => EXIT_FAILURE,
            };
        }
        if cause.is::<model::GgufError>()
            || cause.is::<crate::error::BadInput>()
            || cause.is::<model::locate::LocateError>()
            || cause.is::<config::ConfigError>()
            || cause.is::<crate::hardware::GpuSelectionError>()
            || cause.is::<crate::llm::template::TemplateError>()
            || cause.is::<crate::server::security::ExposedWithoutKey>()
            || cause.is::<emotion::NotUtf8>()
        {
            return EXIT_BAD_INPUT;
        }
        if let Some(store) = cause.downcast_ref::<crate::store::StoreError>() {
            return if store.is_bad_input() { EXIT_BAD_INPUT } else { EXIT_FAILURE };
        }
    }
    EXIT_FAILURE
}

/// Writes to stdout, treating a closed pipe (`workly chat -p hi | head -c1`) as
/// the reader having had enough rather than as an error.
pub fn write_stdout(text: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(error).context("cannot write to stdout"),
    }
}

/// `workly model info PATH`
pub fn run_model_info(path: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let info = ModelInfo::read(path)?;
    let text = if json { serde_json::to_string_pretty(&info)? + "\n" } else { info.render_text() };
    write_stdout(&text)?;
    Ok(())
}

/// `workly model pull URL`
pub fn run_model_pull(
    dirs: &Dirs,
    url: &str,
    out: Option<&std::path::Path>,
    sha256: Option<String>,
    progress: bool,
) -> anyhow::Result<()> {
    let dest = match out {
        Some(out) => out.to_path_buf(),
        None => {
            let models = dirs.models();
            std::fs::create_dir_all(&models).with_context(|| format!("cannot create {}", models.display()))?;
            models
        }
    };
    let path = model::pull::pull(url, &dest, &model::pull::PullOptions { sha256, progress })?;
    write_stdout(&format!("{}\n", path.display()))?;
    Ok(())
}

/// `workly model quantize IN OUT --type TYPE`: progress on stderr, the new
/// file's path on stdout.
pub fn run_model_quantize(args: &ModelQuantizeArgs, llama_logs: bool) -> anyhow::Result<()> {
    let options = model::QuantizeOptions { quant_type: args.quant_type, force: args.force, llama_logs };
    model::quantize(&args.input, &args.output, &options)?;
    write_stdout(&format!("{}\n", args.output.display()))?;
    Ok(())
}

/// `workly doctor`
pub fn run_doctor(context: &Context, args: &DoctorArgs) -> anyhow::Result<()> {
    let prepared = args.engine.prepare(context, Vec::new())?;
    let report = crate::hardware::DoctorReport::new(
        prepared.hardware,
        GpuBackend::BUILT,
        Some(prepared.tuning),
        Some(prepared.engine.model.path.display().to_string()),
    );
    let text = if args.json { serde_json::to_string_pretty(&report)? + "\n" } else { report.render_text() };
    write_stdout(&text)?;
    Ok(())
}
