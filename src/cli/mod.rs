//! The command-line surface: argument types, the engine's [`settings`] from
//! flags, environment, config file and hardware, exit codes, and one runner
//! per command: [`chat`] (the terminal), [`serve`], [`history`], [`emotion`],
//! [`avatar`], [`bench`], and below, `model` and `doctor`.
//!
//! `main.rs` parses [`Cli`] and calls one `run` per subcommand; the library
//! below takes plain configuration. Exit codes: 0 success,
//! 1 a failure at run time, 2 bad input (usage, a bad model or config file, a
//! prompt that cannot fit, a damaged or newer database, an unknown
//! conversation), 130 interrupted.

use crate::choice::Choice;
use crate::config::{self, Dirs};
use crate::error::Context as _;
use crate::error::{Class, Error};
use crate::hardware::GpuBackend;
use crate::llm::SamplingParams;
use crate::model::{self, ModelInfo};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub mod avatar;
pub mod bench;
pub mod chat;
pub mod emotion;
pub mod history;
pub mod memory;
pub mod serve;
pub mod settings;
pub mod voice;

pub use bench::BenchCommand;
pub use settings::{Context, EngineSettings, FileConfig};

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
    /// Where Workly's files are, what it logs.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The flags every command takes, before or after its name (Workly's
/// benchmarks take them too).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Where models and conversations live.
    #[arg(long, global = true, env = config::env::DATA_DIR, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Show Workly's and llama.cpp's logs on stderr.
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

impl GlobalArgs {
    /// Whether llama.cpp's own log goes to `tracing` (and so to stderr):
    /// with `--verbose`, or when `RUST_LOG` asks for logs.
    pub fn llama_logs(&self) -> bool {
        self.verbose || std::env::var_os("RUST_LOG").is_some()
    }

    /// The directories and the config file, for a command that needs them.
    pub fn context(&self) -> Result<Context, Error> {
        Context::resolve(self.data_dir.as_deref(), self.llama_logs())
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
    /// Lend this machine to engines elsewhere: a llama.cpp RPC worker that holds and computes
    /// the layers an engine started with `--rpc HOST:PORT` gives it. Trusted networks only.
    Worker(WorkerArgs),
    /// Browse, search, export or delete stored conversations.
    History {
        /// What to do with the history.
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// See, search, correct, export or forget what Kira remembers about you.
    Memory {
        /// What to do with memories.
        #[command(subcommand)]
        command: MemoryCommand,
    },
    /// Control the avatar by hand, or run a reference receiver.
    Avatar {
        /// What to do.
        #[command(subcommand)]
        command: AvatarCommand,
    },
    /// Measure Workly on this machine (the developer's benchmarks are `workly-bench`'s).
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Show the emotion Workly reads in a text, and why (no model needed).
    Emotion(EmotionArgs),
    /// Say a text in Kira's voice, into a WAV file.
    Say(SayArgs),
    /// Talk with Kira: each recording is one message, heard and answered aloud.
    Talk(TalkArgs),
    /// Transcribe what is said in a WAV file.
    Listen(ListenArgs),
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
    /// Name the best known model for this machine (RAM, VRAM, cores) and how to get it.
    Recommend {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
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

/// `workly memory ...`
#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Everything Kira remembers about you, the most recent first.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Memories sharing a word with the text (in any of its forms), best first.
    Search {
        /// Words to look for.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// Most memories shown.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Tell Kira something to remember, in your words ("I am allergic to peanuts").
    Add {
        /// The fact.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Correct a memory: its new words replace the old ones.
    Edit {
        /// The memory's number (see `workly memory list`).
        id: i64,
        /// Its new words.
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Forget memories for good: they leave the database, its indexes, and the
    /// sentence they were said in leaves the history.
    Forget {
        /// The memories' numbers (see `workly memory list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<i64>,
        /// Forget every memory.
        #[arg(long)]
        all: bool,
    },
    /// Write every memory to stdout.
    Export {
        /// The format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
    },
}

/// How `workly history export` writes a conversation, and `workly memory
/// export` the memories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// JSON with every stored field.
    Json,
    /// A readable document.
    Markdown,
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
    pub engine: EngineSettings,
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
    /// Neither learn from this chat nor recall what was learnt (what is kept
    /// stays kept; `[memory] enabled = false` in the config file does the same).
    #[arg(long)]
    pub no_memory: bool,
    /// Where Kira's face is shown.
    #[command(flatten)]
    pub avatar: AvatarArgs,
}

/// `workly worker`
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Address to listen on. The RPC protocol has no authentication: anything but loopback
    /// needs --allow-remote, and then only a trusted network should reach it.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to listen on.
    #[arg(long, default_value_t = crate::llm::rpc::DEFAULT_PORT)]
    pub port: u16,
    /// Listen on an address other machines reach (see --host).
    #[arg(long)]
    pub allow_remote: bool,
    /// Threads for the layers this worker computes (default: physical cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
}

/// `workly serve`
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Engine choice and tuning.
    #[command(flatten)]
    pub engine: EngineSettings,
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
    /// Neither learn from this chat nor recall what was learnt (what is kept
    /// stays kept; `[memory] enabled = false` in the config file does the same).
    #[arg(long)]
    pub no_memory: bool,
    /// Where Kira's face is shown.
    #[command(flatten)]
    pub avatar: AvatarArgs,
    /// Kira's voice on the page (the page may change it for itself).
    #[command(flatten)]
    pub voice: VoiceArgs,
}

/// `workly doctor`
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Engine choice and tuning (the model decides GPU layers and context).
    #[command(flatten)]
    pub engine: EngineSettings,
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

/// `workly say`
#[derive(Debug, Clone, Args)]
pub struct SayArgs {
    /// What Kira says (`-`: standard input). Emotion tags and markup are not read aloud.
    pub text: String,
    /// The WAV file to write (16-bit, 24 kHz, mono); without one, the speaker.
    #[arg(long, short, value_name = "FILE.wav")]
    pub out: Option<PathBuf>,
    /// The voice and its speed.
    #[command(flatten)]
    pub voice: VoiceArgs,
    /// The language of the text, `en` or `fr` (default: guessed from the text).
    #[arg(long, value_name = "CODE")]
    pub language: Option<String>,
    /// Print a JSON report (the sentences, their timings) instead of nothing.
    #[arg(long)]
    pub json: bool,
}

/// Kira's voice: which, how fast, how loud (each over the config file's `[voice]`).
#[derive(Debug, Clone, Default, Args)]
pub struct VoiceArgs {
    /// The voice: heart or michael (American English), emma (British English), siwis
    /// (French). Default: Kira's voice in the language of the text.
    #[arg(long, value_name = "NAME")]
    pub voice: Option<String>,
    /// How fast Kira speaks: 0.5 (slow) to 2.0 (fast); default 1.
    #[arg(long)]
    pub speed: Option<f32>,
    /// How loud: 0 (silent) to 1 (as made, the default).
    #[arg(long)]
    pub volume: Option<f32>,
}

/// `workly talk`
#[derive(Debug, Clone, Args)]
pub struct TalkArgs {
    /// The chat: engine, persona, conversation, avatar, `--json` (one object per turn).
    #[command(flatten)]
    pub chat: ChatArgs,
    /// Recordings, one spoken message each, in order (WAV, at most a minute
    /// each), instead of the microphone.
    #[arg(long = "in", value_name = "FILE.wav", num_args = 1.., conflicts_with = "mic")]
    pub inputs: Vec<PathBuf>,
    /// A recording played as the microphone, in real time (speech in it
    /// while Kira speaks interrupts her, as a person would).
    #[arg(long, value_name = "FILE.wav")]
    pub mic: Option<PathBuf>,
    /// The language spoken, `en` or `fr`.
    #[arg(long, default_value = "en", value_name = "CODE")]
    pub language: String,
    /// Write Kira's spoken replies here (reply-1.wav, reply-2.wav…) instead
    /// of playing them on the speaker; needed with `--in`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Her voice and its speed.
    #[command(flatten)]
    pub voice: VoiceArgs,
}

/// `workly listen`
#[derive(Debug, Clone, Args)]
pub struct ListenArgs {
    /// The WAV file (PCM or float, mono or stereo, 8 to 48 kHz, at most 10 minutes);
    /// without one, the microphone, until the first pause.
    pub file: Option<PathBuf>,
    /// The language spoken, `en` or `fr`.
    #[arg(long, default_value = "en", value_name = "CODE")]
    pub language: String,
    /// Print JSON, with the timings, instead of the text.
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

/// Logs go to stderr, quiet by default: warnings only, unless `--verbose` or
/// `RUST_LOG` asks for more.
pub fn init_tracing(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if verbose { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}

/// The exit code for an error: its class says it.
pub fn exit_code(error: &Error) -> u8 {
    match error.class() {
        Class::BadInput => EXIT_BAD_INPUT,
        Class::Failure => EXIT_FAILURE,
    }
}

/// Writes to stdout, treating a closed pipe (`workly chat -p hi | head -c1`) as
/// the reader having had enough rather than as an error.
pub fn write_stdout(text: &str) -> crate::error::Result<bool> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(error).context("cannot write to stdout"),
    }
}

/// `workly model info PATH`
pub fn run_model_info(path: &std::path::Path, json: bool) -> crate::error::Result<()> {
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
) -> crate::error::Result<()> {
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

/// `workly model recommend`
pub fn run_model_recommend(dirs: &Dirs, json: bool, llama_logs: bool) -> crate::error::Result<()> {
    let hardware = crate::hardware::Hardware::detect(llama_logs);
    let recommendation = model::known::recommend(&hardware);
    let models = dirs.models();
    let text = if json {
        serde_json::to_string_pretty(&recommendation)? + "\n"
    } else {
        recommendation.render_text(&hardware, |known| models.join(known.file).is_file())
    };
    write_stdout(&text)?;
    Ok(())
}

/// `workly model quantize IN OUT --type TYPE`: progress on stderr, the new
/// file's path on stdout.
pub fn run_model_quantize(args: &ModelQuantizeArgs, llama_logs: bool) -> crate::error::Result<()> {
    let options = model::QuantizeOptions { quant_type: args.quant_type, force: args.force, llama_logs };
    model::quantize(&args.input, &args.output, &options)?;
    write_stdout(&format!("{}\n", args.output.display()))?;
    Ok(())
}

/// `workly doctor`
pub fn run_doctor(context: &Context, args: &DoctorArgs) -> crate::error::Result<()> {
    let (_, report) = backend(context, &args.engine)?;
    let text = if args.json { serde_json::to_string_pretty(&report)? + "\n" } else { report.render_text() };
    write_stdout(&text)?;
    Ok(())
}

/// `workly worker`: serves this machine's CPU to engines elsewhere until
/// stopped; returns only when it cannot listen.
pub fn run_worker(context: &Context, args: &WorkerArgs) -> crate::error::Result<()> {
    if !args.host.is_loopback() && !args.allow_remote {
        return Err(config::ConfigError::Conflict(format!(
            "a worker on {} could be reached by other machines, and llama.cpp's RPC protocol has no \
             authentication: add --allow-remote if this network is trusted",
            args.host
        ))
        .into());
    }
    let address = std::net::SocketAddr::new(args.host, args.port);
    // Bound once here, so that a taken port is said before llama.cpp starts.
    drop(std::net::TcpListener::bind(address).with_context(|| format!("cannot listen on {address}"))?);
    let threads = args
        .threads
        .map_or_else(|| crate::hardware::Hardware::detect(context.llama_logs).cpu.physical_cores, usize::from);
    let plural = if threads == 1 { "" } else { "s" };
    eprintln!(
        "workly: worker on {address} with {threads} thread{plural}; engines use it with --rpc {address}{}",
        if args.host.is_loopback() { "" } else { " (trusted network only: anyone who reaches it can use it)" }
    );
    let cache = context.dirs.cache.join("rpc");
    crate::llm::rpc::serve(&address.to_string(), threads, Some(&cache), context.llama_logs)?;
    Ok(())
}

/// The engine `settings` name, with the report `doctor` gives of it: a
/// local model tuned to this machine, or a remote back-end as probed (an
/// unreachable one, a refused key or a missing model is the error).
pub fn backend(
    context: &Context,
    settings: &EngineSettings,
) -> crate::error::Result<(crate::llm::Backend, crate::hardware::DoctorReport)> {
    use crate::hardware::{DoctorReport, Hardware};
    use crate::llm::Backend;
    if let Some(server) = settings.remote(context)? {
        let report = DoctorReport::new(
            Hardware::detect(context.llama_logs),
            GpuBackend::BUILT,
            None,
            Some(server.report.model.clone()),
        )
        .with_remote(server.report.clone());
        return Ok((Backend::Remote(server), report));
    }
    let prepared = settings.prepare(context, Vec::new())?;
    let model = prepared.engine.model.path.display().to_string();
    let mut workers = crate::llm::rpc::memory(&prepared.engine.rpc)?;
    crate::llm::rpc::plan(&mut workers, prepared.engine.model.layers);
    let report =
        DoctorReport::new(prepared.hardware, GpuBackend::BUILT, Some(prepared.tuning), Some(model)).with_rpc(workers);
    Ok((Backend::Local(prepared.engine), report))
}
