//! `workly-bench remote`: Workly in front of another engine. The served
//! conversation (the scripted turns, each sent with the whole history,
//! streamed and greedy) is played by the same client against a
//! llama-cpp-python server directly, and through `workly serve --backend`
//! in front of an identical server. Each run gets a freshly started server,
//! so neither finds the other's conversation in the server's prompt cache;
//! the order alternates from round to round. What Workly adds is its hop,
//! its token counts for fitting the history and its own stream: turns 11–20,
//! where the history is long and the server's cache does the work, must not
//! be slower through it.

use super::process::in_home;
use super::serving::{Script, ServedTurn, Server};
use crate::cli::BenchRemoteArgs;
use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use workly::bench::median;
use workly::cli::Context;

/// The first turn of the late ones, counted from 1 (the turns 11–20).
const LATE_FROM: usize = 11;

/// What `workly-bench remote` measured.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteBenchReport {
    /// The model the server runs.
    pub model: String,
    /// llama-cpp-python's version.
    pub llama_cpp_python: String,
    /// The server's threads.
    pub threads: usize,
    /// The server's context, which Workly fits the history to.
    pub context_size: u32,
    /// Conversations played each way.
    pub rounds: u32,
    /// Turns per conversation.
    pub turns: usize,
    /// Most tokens per reply.
    pub max_tokens: u32,
    /// Each turn's time to first token, direct: the median over rounds.
    pub direct_ttft_ms: Vec<f64>,
    /// The same through Workly.
    pub workly_ttft_ms: Vec<f64>,
    /// Median time to first token of the late turns, direct.
    pub late_direct_ttft_ms: f64,
    /// The same through Workly.
    pub late_workly_ttft_ms: f64,
    /// Through Workly over direct, for the late turns (at most 1 plus noise is the target).
    pub late_ratio: f64,
    /// Median tokens per second the client received after the first, direct.
    pub direct_received_tokens_per_s: f64,
    /// The same through Workly.
    pub workly_received_tokens_per_s: f64,
}

/// How the client reaches the engine.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Way {
    Direct,
    ThroughWorkly,
}

/// Runs `workly-bench remote`.
pub fn run(context: &Context, args: &BenchRemoteArgs) -> workly::error::Result<()> {
    let (home, baseline, prepared) = super::set_up(context, &args.stack)?;
    let threads = args.stack.threads.map_or(prepared.tuning.threads_decode, usize::from);
    let model = prepared.engine.model.path;
    let workly = crate::workly_binary()?;
    let script = Script {
        turns: args.turns,
        window: None,
        max_tokens: args.max_tokens,
        pause: Duration::from_secs_f64(args.pause),
    };
    let mut played: [Vec<Vec<ServedTurn>>; 2] = [Vec::new(), Vec::new()];
    for round in 0..args.rounds {
        let order = if round % 2 == 0 { [Way::Direct, Way::ThroughWorkly] } else { [Way::ThroughWorkly, Way::Direct] };
        for way in order {
            let mut engine = Server::start("llama_cpp.server", "/v1/models", |port| {
                baseline.server(&python_server_args(&model, port, threads, args.stack.context_size))
            })?;
            let turns = match way {
                Way::Direct => engine.conversation(script)?,
                Way::ThroughWorkly => {
                    let mut front = Server::start("workly serve --backend", "/health", |port| {
                        front_command(&workly, home.path(), port, engine.api(), args.stack.context_size)
                    })?;
                    front.conversation(script)?
                }
            };
            played[usize::from(way == Way::ThroughWorkly)].push(turns);
        }
    }
    let [direct, through] = played;
    let report = summarize(&direct, &through, args, &model, threads, baseline.version.clone());
    let text = if args.json { serde_json::to_string(&report)? + "\n" } else { markdown(&report) };
    workly::cli::write_stdout(&text)?;
    Ok(())
}

/// llama-cpp-python's server on `model`, as a user starts it.
fn python_server_args(model: &Path, port: u16, threads: usize, context_size: u32) -> Vec<String> {
    let threads = threads.to_string();
    [
        "--model",
        &model.display().to_string(),
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--n_threads",
        &threads,
        "--n_threads_batch",
        &threads,
        "--n_ctx",
        &context_size.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `workly serve` in front of the engine at `api`, its files under `home`.
fn front_command(workly: &Path, home: &Path, port: u16, api: &str, context_size: u32) -> Command {
    let mut command = in_home(workly, home);
    command.args(["serve", "--host", "127.0.0.1", "--port", &port.to_string(), "--no-unity", "--no-memory"]).args([
        "--backend",
        api,
        "--context-size",
        &context_size.to_string(),
    ]);
    command
}

/// Each turn's median over the rounds of `figure`.
fn per_turn(rounds: &[Vec<ServedTurn>], figure: impl Fn(&ServedTurn) -> Option<f64>) -> Vec<f64> {
    let turns = rounds.iter().map(Vec::len).min().unwrap_or(0);
    (0..turns).map(|turn| median(&rounds.iter().filter_map(|round| figure(&round[turn])).collect::<Vec<_>>())).collect()
}

fn summarize(
    direct: &[Vec<ServedTurn>],
    through: &[Vec<ServedTurn>],
    args: &BenchRemoteArgs,
    model: &Path,
    threads: usize,
    llama_cpp_python: String,
) -> RemoteBenchReport {
    let ttft = |turn: &ServedTurn| Some(turn.ttft_ms);
    let received = |rounds: &[Vec<ServedTurn>]| {
        median(&rounds.iter().flatten().filter_map(|turn| turn.received_tokens_per_s).collect::<Vec<_>>())
    };
    let (direct_ttft_ms, workly_ttft_ms) = (per_turn(direct, ttft), per_turn(through, ttft));
    let late = |turns: &[f64]| median(turns.get(LATE_FROM - 1..).unwrap_or_default());
    let (late_direct_ttft_ms, late_workly_ttft_ms) = (late(&direct_ttft_ms), late(&workly_ttft_ms));
    RemoteBenchReport {
        model: model.display().to_string(),
        llama_cpp_python,
        threads,
        context_size: args.stack.context_size,
        rounds: args.rounds,
        turns: args.turns,
        max_tokens: args.max_tokens,
        late_ratio: late_workly_ttft_ms / late_direct_ttft_ms,
        direct_ttft_ms,
        workly_ttft_ms,
        late_direct_ttft_ms,
        late_workly_ttft_ms,
        direct_received_tokens_per_s: received(direct),
        workly_received_tokens_per_s: received(through),
    }
}

/// The report as Markdown: the late turns' figures, then every turn.
pub fn markdown(report: &RemoteBenchReport) -> String {
    let mut out = format!(
        "# Workly in front of llama-cpp-python {}\n\n{} · {} threads · context {} · {} turns of at most {} tokens · {} rounds\n\n",
        report.llama_cpp_python,
        report.model,
        report.threads,
        report.context_size,
        report.turns,
        report.max_tokens,
        report.rounds
    );
    out.push_str(&format!(
        "Turns {LATE_FROM}–{}: time to first token {:.1} ms direct, {:.1} ms through Workly (× {:.2}); received {:.1} and {:.1} tokens/s.\n\n",
        report.turns,
        report.late_direct_ttft_ms,
        report.late_workly_ttft_ms,
        report.late_ratio,
        report.direct_received_tokens_per_s,
        report.workly_received_tokens_per_s
    ));
    out.push_str("| turn | direct TTFT (ms) | through Workly (ms) |\n| ---: | ---: | ---: |\n");
    for (turn, (direct, workly)) in report.direct_ttft_ms.iter().zip(&report.workly_ttft_ms).enumerate() {
        out.push_str(&format!("| {} | {direct:.1} | {workly:.1} |\n", turn + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(ttft_ms: f64) -> ServedTurn {
        ServedTurn { ttft_ms, received_tokens_per_s: Some(50.0), engine_decode_tokens_per_s: None, cached_tokens: None }
    }

    #[test]
    fn the_late_turns_are_compared_by_their_medians() {
        let direct: Vec<Vec<ServedTurn>> =
            (0..3).map(|round| (1..=20).map(|t| turn(f64::from(t) * 10.0 + f64::from(round))).collect()).collect();
        let through: Vec<Vec<ServedTurn>> =
            (0..3).map(|round| (1..=20).map(|t| turn(f64::from(t) * 11.0 + f64::from(round))).collect()).collect();
        let args = <crate::cli::Cli as clap::Parser>::try_parse_from(["workly-bench", "remote"]).unwrap();
        let crate::cli::Command::Remote(args) = args.command else { unreachable!("a remote command was parsed") };
        let report = summarize(&direct, &through, &args, Path::new("m.gguf"), 2, "0.3".into());
        assert_eq!(report.direct_ttft_ms.len(), 20);
        assert_eq!(report.direct_ttft_ms[0], 11.0, "the middle round");
        // Turns 11..20 at 10 ms a turn plus 1: the median is between 15 and 16.
        assert_eq!(report.late_direct_ttft_ms, 156.0);
        assert_eq!(report.late_workly_ttft_ms, 171.5);
        assert!((report.late_ratio - 171.5 / 156.0).abs() < 1e-12);
        assert!(markdown(&report).contains("| 20 | 201.0 | 221.0 |"));
    }
}
