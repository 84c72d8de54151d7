//! `workly-bench compare`: Workly against the original Python stack
//! (llama-cpp-python, as the original companion used it), on the same model
//! file, thread count, context size and machine, written to a folder as
//! `compare.json` and `COMPARE.md`, one table of ratios.
//!
//! Each stack runs as a user runs it, in its own processes: Workly's binary
//! (this one) and `bench/baseline/original.py` in the venv
//! `bench/baseline/setup.sh` makes. The rows:
//!
//! * speeds and first replies: `workly bench llm` against `original.py
//!   speed` (the original's warm-up of two generated tokens, then the same
//!   first messages, prose and decode prompt);
//! * cold start: from spawning a one-shot chat to the first byte of its reply;
//! * serving: each stack's OpenAI server, from spawning to the first token,
//!   then the scripted conversation sent the original chat engine's way (the
//!   system prompt plus the last exchanges), timed by the same client;
//! * avatar commands: Workly's batcher against the original client's one
//!   `sendall` per command, both to the same in-process peer that parses
//!   every line as the Unity app does.
//!
//! Every round runs each part for both stacks, the order swapped from round
//! to round, so load from elsewhere falls on both alike; figures are medians
//! over rounds, with the lowest and highest. A `--mode` section adds each
//! quantization found beside the model, with its perplexity.

mod baseline;
mod process;
pub mod remote;
pub mod rpc;
mod serving;

pub use serving::ServedTurn;

use crate::cli::{BenchCompareArgs, StackArgs};
use crate::ipc::{PeerThread, unity_lines};
use baseline::Baseline;
use process::{first_byte_ms, json_of};
use serde::{Deserialize, Serialize};
use serving::{Script, Server};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use workly::cli::{Context, EngineSettings};
use workly::error::Context as _;
use workly::model::ModelInfo;
use workly::model::variants::{ModelMode, choose};

/// The message of the cold start, as the original's notes timed it.
const COLD_PROMPT: &str = "Bonjour";
/// Most tokens of the cold start's reply.
const COLD_MAX_TOKENS: &str = "32";
/// Seconds of Workly's batched avatar commands per round.
const IPC_SECONDS: f64 = 1.0;

/// Everything `workly-bench compare` measured.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// The Workly version that measured.
    pub workly_version: String,
    /// llama-cpp-python's version.
    pub llama_cpp_python: String,
    /// The CPU both ran on.
    pub cpu: String,
    /// What both stacks were given.
    pub settings: Settings,
    /// Thread counts each stack picks by itself on this machine.
    pub own_threads: OwnThreads,
    /// One row per figure both stacks measure doing the same work.
    pub rows: Vec<Row>,
    /// The served conversation, turn by turn.
    pub serving: ServingDetail,
    /// Each quantization of the model found beside it (`--mode`).
    pub modes: Vec<ModeRow>,
}

/// What both stacks were given.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// The model file.
    pub model: String,
    /// Its quantization.
    pub quantization: String,
    /// Threads for decode and prefill, both stacks.
    pub threads: usize,
    /// Context size, both stacks.
    pub context_size: u32,
    /// Rounds, each running every part for both stacks.
    pub rounds: u32,
    /// Measured runs per speed figure inside each process.
    pub runs: u32,
    /// One-shot chats per stack and round for cold start.
    pub cold_runs: u32,
    /// Turns of the served conversation.
    pub turns: usize,
    /// Exchanges of history the original client sends.
    pub window: usize,
    /// Most tokens per served reply.
    pub max_tokens: u32,
    /// Untimed pause before each served turn, in seconds.
    pub pause_s: f64,
    /// Avatar commands the original client sends per round.
    pub ipc_commands: usize,
}

/// Thread counts each stack picks by itself.
#[derive(Debug, Clone, Serialize)]
pub struct OwnThreads {
    /// Workly's decode threads, and where the count came from.
    pub workly: usize,
    /// Where Workly's count came from, in words.
    pub workly_source: String,
    /// The original's rule: one thread per physical core.
    pub original: usize,
}

/// The same figure for both stacks.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub figure: String,
    /// Its unit.
    pub unit: String,
    /// Whether more is better (speeds) or less (times).
    pub higher_is_better: bool,
    /// Workly's figures.
    pub workly: Spread,
    /// The Python stack's figures.
    pub python: Spread,
    /// How many times better Workly's median is: above 1, Workly is ahead.
    pub workly_advantage: f64,
}

/// A figure over rounds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
    /// Every round's figure, in order.
    pub values: Vec<f64>,
}

impl Spread {
    fn of(values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Self { median: workly::bench::median(&values), min, max, values }
    }
}

/// The served conversation, turn by turn (medians over rounds).
#[derive(Debug, Clone, Serialize)]
pub struct ServingDetail {
    /// Workly, the original client's window of history.
    pub workly_window_ttft_ms: Vec<f64>,
    /// Python, the original client's window of history.
    pub python_window_ttft_ms: Vec<f64>,
    /// Workly, the whole growing history.
    pub workly_full_ttft_ms: Vec<f64>,
    /// Workly's last turn over its first, whole history.
    pub workly_full_last_over_first: f64,
    /// Tokens a Workly client received per second over the engine's own
    /// decode speed (median over turns and rounds).
    pub workly_received_over_engine: Option<f64>,
    /// Every turn of every round, as measured.
    pub rounds: Vec<ServedRound>,
}

/// One round of served conversations.
#[derive(Debug, Clone, Serialize)]
pub struct ServedRound {
    /// Workly, window of history.
    pub workly_window: Vec<ServedTurn>,
    /// Workly, whole history.
    pub workly_full: Vec<ServedTurn>,
    /// Python, window of history.
    pub python_window: Vec<ServedTurn>,
}

/// One quantization of the model.
#[derive(Debug, Clone, Serialize)]
pub struct ModeRow {
    /// What runs it: `as given` (the model compared above), `fast`, `quality`.
    pub modes: Vec<String>,
    /// The file.
    pub model: String,
    /// Its quantization.
    pub quantization: String,
    /// Its size.
    pub file_size_bytes: u64,
    /// Perplexity on Workly's built-in text (lower is better).
    pub perplexity: f64,
    /// Workly's prefill and decode tokens/s.
    pub workly: Speeds,
    /// The Python stack's.
    pub python: Speeds,
}

/// Prefill and decode speed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Speeds {
    /// 512-token prompt, tokens/s.
    pub prefill_tokens_per_s: f64,
    /// 128 tokens, tokens/s.
    pub decode_tokens_per_s: f64,
}

/// The figures of `workly bench llm --json` and `original.py speed` that
/// both report.
#[derive(Debug, Clone, Deserialize)]
struct SpeedReport {
    first_ttft_ms: f64,
    warm_ttft_ms: f64,
    prefill_tokens_per_s: f64,
    decode_tokens_per_s: f64,
}

/// The figures, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Figure {
    FirstTtft,
    WarmTtft,
    Prefill,
    Decode,
    ColdStart,
    ServeStart,
    ServeLateTtft,
    Streaming,
    AvatarThroughput,
}

impl Figure {
    const ALL: [Self; 9] = [
        Self::FirstTtft,
        Self::WarmTtft,
        Self::Prefill,
        Self::Decode,
        Self::ColdStart,
        Self::ServeStart,
        Self::ServeLateTtft,
        Self::Streaming,
        Self::AvatarThroughput,
    ];

    /// Label, unit and whether more is better.
    fn describe(self, settings: &Settings) -> (String, &'static str, bool) {
        match self {
            Self::FirstTtft => ("first message after start-up, time to first token".to_owned(), "ms", false),
            Self::WarmTtft => ("later first messages, time to first token".to_owned(), "ms", false),
            Self::Prefill => ("prefill, 512-token prompt".to_owned(), "tokens/s", true),
            Self::Decode => ("decode, 128 tokens".to_owned(), "tokens/s", true),
            Self::ColdStart => (format!("cold start: `chat -p \"{COLD_PROMPT}\"` to its first byte"), "ms", false),
            Self::ServeStart => ("server start to its first streamed token".to_owned(), "ms", false),
            Self::ServeLateTtft => (
                format!(
                    "served turns {}-{}, last {} exchanges sent, time to first token",
                    settings.window + 1,
                    settings.turns,
                    settings.window
                ),
                "ms",
                false,
            ),
            Self::Streaming => ("served tokens a client receives".to_owned(), "tokens/s", true),
            Self::AvatarThroughput => {
                ("avatar commands the peer parsed, Workly batched".to_owned(), "commands/s", true)
            }
        }
    }
}

/// Figures gathered over rounds.
#[derive(Default)]
struct Samples {
    values: Vec<(Figure, Stack, f64)>,
}

impl Samples {
    fn push(&mut self, figure: Figure, stack: Stack, value: f64) {
        self.values.push((figure, stack, value));
    }

    fn of(&self, figure: Figure, stack: Stack) -> Vec<f64> {
        self.values.iter().filter(|(f, s, _)| *f == figure && *s == stack).map(|(_, _, value)| *value).collect()
    }

    fn rows(&self, settings: &Settings) -> Vec<Row> {
        Figure::ALL
            .into_iter()
            .map(|figure| {
                let (label, unit, higher_is_better) = figure.describe(settings);
                let (workly, python) =
                    (Spread::of(self.of(figure, Stack::Workly)), Spread::of(self.of(figure, Stack::Python)));
                Row {
                    figure: label,
                    unit: unit.to_owned(),
                    higher_is_better,
                    workly_advantage: advantage(workly.median, python.median, higher_is_better),
                    workly,
                    python,
                }
            })
            .collect()
    }
}

/// How many times better `workly` is than `python` (0 where either is missing).
fn advantage(workly: f64, python: f64, higher_is_better: bool) -> f64 {
    let (better, worse) = if higher_is_better { (workly, python) } else { (python, workly) };
    if better > 0.0 && worse > 0.0 { better / worse } else { 0.0 }
}

/// Which stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Workly,
    Python,
}

/// Both stacks and what they are given.
struct Stacks {
    /// The `workly` binary.
    workly: PathBuf,
    /// This binary, for its own benchmarks.
    bench: PathBuf,
    /// Workly's data, cache and config for the run: the user's are left alone.
    home: tempfile::TempDir,
    baseline: Baseline,
    settings: Settings,
    model: ModelInfo,
}

impl Stacks {
    /// Workly with `args` on `model`, the run's threads and context.
    fn workly(&self, args: &[&str], model: &Path) -> Command {
        self.run(&self.workly, args, model)
    }

    /// This binary's own benchmark with `args` on `model`, as [`Self::workly`] runs Workly.
    fn bench(&self, args: &[&str], model: &Path) -> Command {
        self.run(&self.bench, args, model)
    }

    /// `exe` with `args` on `model`, the run's threads, context and folders.
    fn run(&self, exe: &Path, args: &[&str], model: &Path) -> Command {
        let mut command = process::in_home(exe, self.home.path());
        command
            .args(args)
            .arg("--model")
            .arg(model)
            .args(["--threads", &self.settings.threads.to_string()])
            .args(["--context-size", &self.settings.context_size.to_string()]);
        command
    }

    /// `original.py` with `args` on `model`, the run's threads and context.
    fn python(&self, args: &[&str], model: &Path) -> Command {
        let mut command = self.baseline.command(args);
        command
            .arg("--model")
            .arg(model)
            .args(["--threads", &self.settings.threads.to_string()])
            .args(["--n-ctx", &self.settings.context_size.to_string()]);
        command
    }

    fn speeds(&self, stack: Stack, model: &Path) -> workly::error::Result<SpeedReport> {
        let runs = self.settings.runs.to_string();
        match stack {
            Stack::Workly => {
                json_of(&mut self.workly(&["bench", "llm", "--json", "--runs", &runs], model), "workly bench llm")
            }
            Stack::Python => json_of(&mut self.python(&["speed", "--runs", &runs], model), "original.py speed"),
        }
    }

    fn cold_start(&self, stack: Stack) -> workly::error::Result<f64> {
        match stack {
            Stack::Workly => first_byte_ms(
                &mut self.workly(
                    &["chat", "-p", COLD_PROMPT, "--temperature", "0", "--max-tokens", COLD_MAX_TOKENS],
                    &self.model.path,
                ),
                "workly chat -p",
            ),
            Stack::Python => first_byte_ms(
                &mut self.python(&["chat", "--max-tokens", COLD_MAX_TOKENS, COLD_PROMPT], &self.model.path),
                "original.py chat",
            ),
        }
    }

    fn server(&self, stack: Stack) -> workly::error::Result<Server> {
        match stack {
            Stack::Workly => Server::start("workly serve", "/health", |port| {
                self.workly(
                    &["serve", "--host", "127.0.0.1", "--port", &port.to_string(), "--no-unity"],
                    &self.model.path,
                )
            }),
            Stack::Python => Server::start("llama_cpp.server", "/v1/models", |port| {
                let threads = self.settings.threads.to_string();
                self.baseline.server(&[
                    "--model".to_owned(),
                    self.model.path.display().to_string(),
                    "--host".to_owned(),
                    "127.0.0.1".to_owned(),
                    "--port".to_owned(),
                    port.to_string(),
                    "--n_threads".to_owned(),
                    threads.clone(),
                    "--n_threads_batch".to_owned(),
                    threads,
                    "--n_ctx".to_owned(),
                    self.settings.context_size.to_string(),
                ])
            }),
        }
    }

    /// Commands per second the peer parsed from the original client.
    fn original_avatar_client(&self, peer: &PeerThread) -> workly::error::Result<f64> {
        let lines = unity_lines(self.settings.ipc_commands);
        let mut command = self.baseline.command(&["ipc", "--port", &peer.address.port().to_string()]);
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start original.py ipc")?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            workly::fail!("original.py ipc: pipes missing");
        };
        stdin.write_all(&lines)?;
        stdin.write_all(b"\n")?;
        stdin.flush()?;
        let mut stdout = BufReader::new(stdout);
        let mut ready = String::new();
        stdout.read_line(&mut ready)?;
        if ready.trim() != "ready" {
            workly::fail!("original.py ipc did not connect ({:?})", ready.trim());
        }
        let target = peer.applied() + self.settings.ipc_commands as u64;
        let go = Instant::now();
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
        let parsed = peer.wait_for(target)?;
        let status = child.wait()?;
        if !status.success() {
            workly::fail!("original.py ipc exited with {status}");
        }
        Ok(self.settings.ipc_commands as f64 / parsed.saturating_duration_since(go).as_secs_f64())
    }
}

/// A folder for the run's files, the Python stack, and Workly's engine
/// settings for `stack`'s model and context, tuned to this machine.
fn set_up(
    context: &Context,
    stack: &StackArgs,
) -> workly::error::Result<(tempfile::TempDir, Baseline, workly::config::Prepared)> {
    let home = tempfile::tempdir().context("cannot create a folder for the run")?;
    let baseline = Baseline::locate(stack.python.as_deref(), home.path())?;
    let engine = EngineSettings {
        model: stack.model.clone(),
        context_size: Some(stack.context_size),
        ..EngineSettings::default()
    };
    let prepared = engine.prepare(context, Vec::new())?;
    Ok((home, baseline, prepared))
}

/// Runs `workly-bench compare`.
pub fn run(context: &Context, args: &BenchCompareArgs) -> workly::error::Result<()> {
    if args.window >= args.turns {
        return Err(workly::config::ConfigError::Conflict(format!(
            "--window {} must be less than --turns {}: the late turns are those past the window",
            args.window, args.turns
        ))
        .into());
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    // Without --threads: what Workly picks by itself, which both stacks then get.
    let (home, baseline, prepared) = set_up(context, &args.stack)?;
    let tuning = &prepared.tuning;
    let own_threads = OwnThreads {
        workly: tuning.threads_decode,
        workly_source: tuning.thread_source.describe().to_owned(),
        original: baseline.own_threads()?,
    };
    let model = prepared.engine.model;
    let settings = Settings {
        model: model.path.display().to_string(),
        quantization: model.quantization.clone(),
        threads: args.stack.threads.map_or(tuning.threads_decode, usize::from),
        context_size: args.stack.context_size,
        rounds: args.rounds,
        runs: args.runs,
        cold_runs: args.cold_runs,
        turns: args.turns,
        window: args.window,
        max_tokens: args.max_tokens,
        pause_s: args.pause,
        ipc_commands: args.ipc_commands,
    };
    let stacks = Stacks {
        workly: crate::workly_binary()?,
        bench: std::env::current_exe().context("cannot find the workly-bench binary")?,
        home,
        baseline,
        settings,
        model,
    };
    let report = compare(&stacks, own_threads, prepared.hardware.cpu.model)?;
    write(&args.out, &report)?;
    let text = if args.json { serde_json::to_string(&report)? + "\n" } else { markdown(&report) };
    workly::cli::write_stdout(&text)?;
    Ok(())
}

/// Every part, every round, both stacks; then the quantizations.
fn compare(stacks: &Stacks, own_threads: OwnThreads, cpu: String) -> workly::error::Result<CompareReport> {
    let settings = &stacks.settings;
    let mut samples = Samples::default();
    let mut served = Vec::new();
    // One discarded start per stack: the model file is in the page cache for
    // both, and Workly has saved its persona's KV state, as after any first run.
    for stack in [Stack::Workly, Stack::Python] {
        stacks.cold_start(stack)?;
    }
    let script = |window| Script {
        turns: settings.turns,
        window,
        max_tokens: settings.max_tokens,
        pause: Duration::from_secs_f64(settings.pause_s),
    };
    for round in 0..settings.rounds {
        let order = if round % 2 == 0 { [Stack::Python, Stack::Workly] } else { [Stack::Workly, Stack::Python] };
        tracing::info!("round {} of {}: speeds", round + 1, settings.rounds);
        for stack in order {
            let speeds = stacks.speeds(stack, &stacks.model.path)?;
            samples.push(Figure::FirstTtft, stack, speeds.first_ttft_ms);
            samples.push(Figure::WarmTtft, stack, speeds.warm_ttft_ms);
            samples.push(Figure::Prefill, stack, speeds.prefill_tokens_per_s);
            samples.push(Figure::Decode, stack, speeds.decode_tokens_per_s);
        }
        tracing::info!("round {} of {}: cold starts", round + 1, settings.rounds);
        for _ in 0..settings.cold_runs {
            for stack in order {
                samples.push(Figure::ColdStart, stack, stacks.cold_start(stack)?);
            }
        }
        tracing::info!("round {} of {}: servers", round + 1, settings.rounds);
        let mut round_served =
            ServedRound { workly_window: Vec::new(), workly_full: Vec::new(), python_window: Vec::new() };
        for stack in order {
            let mut server = stacks.server(stack)?;
            let first_token_ms = server.first_token_ms()?;
            samples.push(Figure::ServeStart, stack, server.to_ready_ms + first_token_ms);
            let window = server.conversation(script(Some(settings.window)))?;
            let late: Vec<f64> = window[settings.window..].iter().map(|turn| turn.ttft_ms).collect();
            samples.push(Figure::ServeLateTtft, stack, workly::bench::median(&late));
            let received: Vec<f64> = window.iter().filter_map(|turn| turn.received_tokens_per_s).collect();
            samples.push(Figure::Streaming, stack, workly::bench::median(&received));
            match stack {
                Stack::Workly => {
                    round_served.workly_window = window;
                    round_served.workly_full = server.conversation(script(None))?;
                }
                Stack::Python => round_served.python_window = window,
            }
        }
        served.push(round_served);
        tracing::info!("round {} of {}: avatar commands", round + 1, settings.rounds);
        for stack in order {
            // A fresh peer each time: it serves one client at a time, as Unity
            // does, so no measurement waits behind the last one's connection.
            let peer = PeerThread::start()?;
            let rate = match stack {
                Stack::Workly => crate::ipc::batched_throughput(peer, Duration::from_secs_f64(IPC_SECONDS))?,
                Stack::Python => stacks.original_avatar_client(&peer)?,
            };
            samples.push(Figure::AvatarThroughput, stack, rate);
        }
    }
    let modes = modes(stacks, &samples)?;
    Ok(CompareReport {
        workly_version: env!("CARGO_PKG_VERSION").to_owned(),
        llama_cpp_python: stacks.baseline.version.clone(),
        cpu,
        settings: settings.clone(),
        own_threads,
        rows: samples.rows(settings),
        serving: serving_detail(served),
        modes,
    })
}

/// Per-turn medians over rounds.
fn serving_detail(rounds: Vec<ServedRound>) -> ServingDetail {
    let by_turn = |pick: fn(&ServedRound) -> &Vec<ServedTurn>| -> Vec<f64> {
        let turns = rounds.first().map_or(0, |round| pick(round).len());
        (0..turns)
            .map(|turn| {
                let values: Vec<f64> =
                    rounds.iter().filter_map(|round| pick(round).get(turn)).map(|t| t.ttft_ms).collect();
                workly::bench::median(&values)
            })
            .collect()
    };
    let workly_full_ttft_ms = by_turn(|round| &round.workly_full);
    let shares: Vec<f64> = rounds
        .iter()
        .flat_map(|round| round.workly_window.iter().chain(&round.workly_full))
        .filter_map(|turn| Some(turn.received_tokens_per_s? / turn.engine_decode_tokens_per_s?))
        .collect();
    ServingDetail {
        workly_window_ttft_ms: by_turn(|round| &round.workly_window),
        python_window_ttft_ms: by_turn(|round| &round.python_window),
        workly_full_last_over_first: match (workly_full_ttft_ms.first(), workly_full_ttft_ms.last()) {
            (Some(first), Some(last)) if *first > 0.0 => last / first,
            _ => 0.0,
        },
        workly_full_ttft_ms,
        workly_received_over_engine: (!shares.is_empty()).then(|| workly::bench::median(&shares)),
        rounds,
    }
}

/// The model compared and each quantization `--mode` finds beside it: its
/// perplexity, and both stacks' speeds (the model compared reuses its rows).
fn modes(stacks: &Stacks, samples: &Samples) -> workly::error::Result<Vec<ModeRow>> {
    #[derive(Deserialize)]
    struct Perplexity {
        perplexity: f64,
    }
    let mut chosen: Vec<(Vec<String>, ModelInfo)> = vec![(vec!["as given".to_owned()], stacks.model.clone())];
    for mode in [ModelMode::Fast, ModelMode::Quality] {
        let info = choose(stacks.model.clone(), mode).model;
        match chosen.iter_mut().find(|(_, known)| known.path == info.path) {
            Some((modes, _)) => modes.push(mode.to_string()),
            None => chosen.push((vec![mode.to_string()], info)),
        }
    }
    let median_of = |figure, stack| workly::bench::median(&samples.of(figure, stack));
    let mut modes = Vec::with_capacity(chosen.len());
    for (names, info) in chosen {
        tracing::info!("quantization {}", info.quantization);
        let perplexity: Perplexity =
            json_of(&mut stacks.bench(&["perplexity", "--json"], &info.path), "workly-bench perplexity")?;
        let (workly, python) = if info.path == stacks.model.path {
            let measured = |stack| Speeds {
                prefill_tokens_per_s: median_of(Figure::Prefill, stack),
                decode_tokens_per_s: median_of(Figure::Decode, stack),
            };
            (measured(Stack::Workly), measured(Stack::Python))
        } else {
            let speeds = |stack| -> workly::error::Result<Speeds> {
                let report = stacks.speeds(stack, &info.path)?;
                Ok(Speeds {
                    prefill_tokens_per_s: report.prefill_tokens_per_s,
                    decode_tokens_per_s: report.decode_tokens_per_s,
                })
            };
            (speeds(Stack::Workly)?, speeds(Stack::Python)?)
        };
        modes.push(ModeRow {
            modes: names,
            model: info.file_name.clone(),
            quantization: info.quantization.clone(),
            file_size_bytes: info.file_size_bytes,
            perplexity: perplexity.perplexity,
            workly,
            python,
        });
    }
    Ok(modes)
}

/// Writes `compare.json` and `COMPARE.md` into `out`.
fn write(out: &Path, report: &CompareReport) -> workly::error::Result<()> {
    let save = |name: &str, text: &str| {
        std::fs::write(out.join(name), text).with_context(|| format!("cannot write {}", out.join(name).display()))
    };
    save("compare.json", &(serde_json::to_string_pretty(report)? + "\n"))?;
    save("COMPARE.md", &markdown(report))
}

/// A figure at a precision that suits its size.
fn number(value: f64) -> String {
    if value >= 1000.0 { format!("{value:.0}") } else { format!("{value:.1}") }
}

/// A median with its spread.
fn spread(figure: &Spread) -> String {
    if figure.values.len() > 1 {
        format!("{} ({}-{})", number(figure.median), number(figure.min), number(figure.max))
    } else {
        number(figure.median)
    }
}

/// The report as Markdown: the table of ratios first.
pub fn markdown(report: &CompareReport) -> String {
    let settings = &report.settings;
    let model = Path::new(&settings.model)
        .file_name()
        .map_or(settings.model.clone(), |name| name.to_string_lossy().into_owned());
    let mut text = format!(
        "# Workly against the original Python stack\n\n\
         `workly-bench compare` on {}: model `{model}` ({}), {} threads and a {}-token context for both stacks; \
         Workly {}, llama-cpp-python {}. {} rounds, each running every part for both stacks, in alternating order; \
         each figure is the median over rounds (lowest-highest in brackets). Speeds and first messages are \
         themselves medians of {} runs inside each process.\n\n\
         | figure | Workly | original (Python) | Workly's advantage |\n| --- | --- | --- | --- |\n",
        report.cpu,
        settings.quantization,
        settings.threads,
        settings.context_size,
        report.workly_version,
        report.llama_cpp_python,
        settings.rounds,
        settings.runs,
    );
    for row in &report.rows {
        text.push_str(&format!(
            "| {} ({}) | {} | {} | {:.2}x |\n",
            row.figure,
            row.unit,
            spread(&row.workly),
            spread(&row.python),
            row.workly_advantage
        ));
    }
    let behind: Vec<String> = report
        .rows
        .iter()
        .filter(|row| row.workly_advantage < 1.0)
        .map(|row| format!("{} ({:.2}x)", row.figure, row.workly_advantage))
        .collect();
    text.push('\n');
    if behind.is_empty() {
        text.push_str("Workly is ahead on every row.\n");
    } else {
        text.push_str(&format!("Workly is not ahead yet on: {}.\n", behind.join("; ")));
    }
    let threads = &report.own_threads;
    text.push_str(&format!(
        "\nThreads each stack picks by itself here: Workly {} ({}), the original {} (one per physical core).\n",
        threads.workly, threads.workly_source, threads.original
    ));

    let serving = &report.serving;
    text.push_str(&format!(
        "\n## Served conversation: time to first token by turn (ms)\n\n\
         | turn | Workly, last {window} exchanges | Python, last {window} exchanges | Workly, whole history |\n\
         | --- | --- | --- | --- |\n",
        window = settings.window
    ));
    for (turn, workly) in serving.workly_window_ttft_ms.iter().enumerate() {
        let at = |values: &[f64]| values.get(turn).map_or("-".to_owned(), |value| number(*value));
        text.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            turn + 1,
            number(*workly),
            at(&serving.python_window_ttft_ms),
            at(&serving.workly_full_ttft_ms)
        ));
    }
    text.push_str(&format!(
        "\nWorkly with the whole history: turn {} over turn 1 is {:.2}x.",
        settings.turns, serving.workly_full_last_over_first
    ));
    if let Some(share) = serving.workly_received_over_engine {
        text.push_str(&format!(" A Workly client receives {share:.3} of the engine's own decode speed."));
    }
    text.push_str("\n\n## Quantizations (`--mode`)\n\n\
         | mode | file | quantization | size | perplexity | prefill tokens/s, Workly / Python | decode tokens/s, Workly / Python |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n");
    for mode in &report.modes {
        text.push_str(&format!(
            "| {} | `{}` | {} | {} | {:.3} | {} / {} | {} / {} |\n",
            mode.modes.join(", "),
            mode.model,
            mode.quantization,
            workly::model::info::format_mb(mode.file_size_bytes),
            mode.perplexity,
            number(mode.workly.prefill_tokens_per_s),
            number(mode.python.prefill_tokens_per_s),
            number(mode.workly.decode_tokens_per_s),
            number(mode.python.decode_tokens_per_s),
        ));
    }
    text.push_str(
        "\nPerplexity is Workly's, on its built-in text (`workly-bench perplexity`); lower is better. \
         Make another quantization with `workly model quantize`.\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantage_reads_above_one_when_workly_is_better() {
        assert_eq!(advantage(300.0, 200.0, true), 1.5);
        assert_eq!(advantage(50.0, 100.0, false), 2.0);
        assert_eq!(advantage(100.0, 50.0, false), 0.5);
        assert_eq!(advantage(0.0, 50.0, true), 0.0, "a missing figure is no ratio");
    }

    #[test]
    fn a_spread_keeps_median_extremes_and_values() {
        let spread = Spread::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((spread.median, spread.min, spread.max), (2.0, 1.0, 3.0));
        assert_eq!(spread.values, [3.0, 1.0, 2.0]);
        assert_eq!(Spread::of(Vec::new()).median, 0.0);
    }

    #[test]
    fn rows_follow_the_figures_and_say_where_workly_is_behind() {
        let settings = Settings {
            model: "m.gguf".to_owned(),
            quantization: "Q4_1".to_owned(),
            threads: 2,
            context_size: 4096,
            rounds: 2,
            runs: 1,
            cold_runs: 1,
            turns: 3,
            window: 1,
            max_tokens: 8,
            pause_s: 0.0,
            ipc_commands: 10,
        };
        let mut samples = Samples::default();
        for figure in Figure::ALL {
            for (workly, python) in [(2.0, 1.0), (4.0, 1.0)] {
                samples.push(figure, Stack::Workly, workly);
                samples.push(figure, Stack::Python, python);
            }
        }
        let rows = samples.rows(&settings);
        assert_eq!(rows.len(), Figure::ALL.len());
        let decode = &rows[3];
        assert!(decode.figure.starts_with("decode") && decode.higher_is_better);
        assert_eq!((decode.workly.median, decode.workly_advantage), (3.0, 3.0));
        let cold = &rows[4];
        assert!(cold.figure.starts_with("cold start") && !cold.higher_is_better);
        assert_eq!(cold.workly_advantage, 1.0 / 3.0);
        let report = CompareReport {
            workly_version: "0".to_owned(),
            llama_cpp_python: "0".to_owned(),
            cpu: "cpu".to_owned(),
            settings,
            own_threads: OwnThreads { workly: 2, workly_source: "measured".to_owned(), original: 2 },
            rows,
            serving: serving_detail(Vec::new()),
            modes: Vec::new(),
        };
        let text = markdown(&report);
        assert!(text.contains("| decode, 128 tokens (tokens/s) | 3.0 (2.0-4.0) | 1.0 (1.0-1.0) | 3.00x |"), "{text}");
        assert!(text.contains("Workly is not ahead yet on: first message after start-up"), "{text}");
    }
}
