//! `workly-bench rpc`: what spreading a model over llama.cpp RPC workers
//! costs. `workly bench llm` runs the same model twice per round, once on
//! this machine alone and once with every layer on loopback `workly worker`
//! processes (`--rpc`), in alternating order; figures are medians over the
//! rounds and ratios of the split run over the local one. On one machine the
//! workers add no compute, so what is measured is the protocol's price: the
//! weights sent at load, and each step's activations and graph over TCP.

use super::process::{Spawned, free_port, in_home, json_of};
use crate::cli::BenchRpcArgs;
use serde::{Deserialize, Serialize};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};
use workly::bench::median;
use workly::cli::{Context, EngineSettings};
use workly::error::Context as _;

/// Longest wait for a worker to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// What `workly bench llm --json` reports that is compared here.
#[derive(Debug, Clone, Deserialize)]
struct Speeds {
    load_ms: f64,
    warm_ttft_ms: f64,
    prefill_tokens_per_s: f64,
    decode_tokens_per_s: f64,
}

/// One figure, local and split.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    /// The median with the model on this machine alone.
    pub local: f64,
    /// The median with every layer on the workers.
    pub split: f64,
    /// `split / local`.
    pub ratio: f64,
}

impl Compared {
    fn of(local: &[f64], split: &[f64]) -> Self {
        let (local, split) = (median(local), median(split));
        Self { local, split, ratio: split / local }
    }
}

/// What `workly-bench rpc` measured.
#[derive(Debug, Clone, Serialize)]
pub struct RpcBenchReport {
    /// The model.
    pub model: String,
    /// Workers the layers were spread over (all on loopback).
    pub workers: usize,
    /// Threads of the local engine and of each worker.
    pub threads: usize,
    /// Rounds, each running both ways.
    pub rounds: u32,
    /// Loading the model (the split run sends the weights to the workers).
    pub load_ms: Compared,
    /// Time to the first token of a new conversation, warm.
    pub warm_ttft_ms: Compared,
    /// Prefill speed on a 512-token prompt.
    pub prefill_tokens_per_s: Compared,
    /// Decode speed over 128 tokens.
    pub decode_tokens_per_s: Compared,
}

/// Runs `workly-bench rpc`.
pub fn run(context: &Context, args: &BenchRpcArgs) -> workly::error::Result<()> {
    let engine = EngineSettings { model: args.model.clone(), ..EngineSettings::default() };
    let prepared = engine.prepare(context, Vec::new())?;
    let threads = args.threads.map_or(prepared.tuning.threads_decode, usize::from);
    let model = prepared.engine.model.path;
    let workly = crate::workly_binary()?;
    let home = tempfile::tempdir().context("cannot create a folder for the run")?;
    let mut workers = Vec::with_capacity(args.workers);
    let mut endpoints = Vec::with_capacity(args.workers);
    for _ in 0..args.workers {
        let port = free_port()?;
        let mut command = in_home(&workly, home.path());
        command.args(["worker", "--port", &port.to_string(), "--threads", &threads.to_string()]);
        let mut worker = Spawned::start(&mut command, "workly worker", Stdio::null())?;
        listening(&mut worker, port)?;
        workers.push(worker);
        endpoints.push(format!("127.0.0.1:{port}"));
    }
    let rpc = endpoints.join(",");
    let (mut local, mut split) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        for spread in if round % 2 == 0 { [false, true] } else { [true, false] } {
            let mut command = in_home(&workly, home.path());
            command.args(["bench", "llm", "--json", "--runs", &args.runs.to_string()]);
            command.arg("--model").arg(&model).args(["--threads", &threads.to_string()]);
            if spread {
                command.args(["--rpc", &rpc]);
            }
            let what = if spread { "workly bench llm --rpc" } else { "workly bench llm" };
            let speeds: Speeds = json_of(&mut command, what)?;
            if spread { &mut split } else { &mut local }.push(speeds);
        }
    }
    let figure = |runs: &[Speeds], pick: fn(&Speeds) -> f64| runs.iter().map(pick).collect::<Vec<_>>();
    let compared = |pick: fn(&Speeds) -> f64| Compared::of(&figure(&local, pick), &figure(&split, pick));
    let report = RpcBenchReport {
        model: model.display().to_string(),
        workers: args.workers,
        threads,
        rounds: args.rounds,
        load_ms: compared(|speeds| speeds.load_ms),
        warm_ttft_ms: compared(|speeds| speeds.warm_ttft_ms),
        prefill_tokens_per_s: compared(|speeds| speeds.prefill_tokens_per_s),
        decode_tokens_per_s: compared(|speeds| speeds.decode_tokens_per_s),
    };
    drop(workers);
    let text = if args.json { serde_json::to_string(&report)? + "\n" } else { markdown(&report) };
    workly::cli::write_stdout(&text)?;
    Ok(())
}

/// Waits until the worker accepts connections on `port`.
fn listening(worker: &mut Spawned, port: u16) -> workly::error::Result<()> {
    let started = Instant::now();
    while started.elapsed() < LISTEN_TIMEOUT {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(worker.failure(&format!("did not listen on port {port} in {} s", LISTEN_TIMEOUT.as_secs())))
}

/// The report as a Markdown table.
pub fn markdown(report: &RpcBenchReport) -> String {
    let mut out = format!(
        "# One model over {} loopback RPC workers\n\n{} · {} threads each · {} rounds\n\n| figure | local | split | split / local |\n| --- | ---: | ---: | ---: |\n",
        report.workers, report.model, report.threads, report.rounds
    );
    for (name, figure) in [
        ("load (ms)", &report.load_ms),
        ("warm TTFT (ms)", &report.warm_ttft_ms),
        ("prefill (tokens/s)", &report.prefill_tokens_per_s),
        ("decode (tokens/s)", &report.decode_tokens_per_s),
    ] {
        out.push_str(&format!("| {name} | {:.1} | {:.1} | {:.2} |\n", figure.local, figure.split, figure.ratio));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_medians_and_ratios_split_over_local() {
        let compared = Compared::of(&[100.0, 120.0, 110.0], &[50.0, 60.0, 55.0]);
        assert_eq!((compared.local, compared.split, compared.ratio), (110.0, 55.0, 0.5));
        let report = RpcBenchReport {
            model: "m.gguf".into(),
            workers: 2,
            threads: 2,
            rounds: 3,
            load_ms: compared.clone(),
            warm_ttft_ms: compared.clone(),
            prefill_tokens_per_s: compared.clone(),
            decode_tokens_per_s: compared,
        };
        assert!(markdown(&report).contains("| decode (tokens/s) | 110.0 | 55.0 | 0.50 |"));
    }
}
