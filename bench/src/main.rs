//! `workly-bench`: the developer's instruments, beside the product. Each
//! measures the real `workly` library (or the real `workly` binary beside
//! this one) and writes a serde report; `docs/PERFORMANCE.md` is made of them.
//!
//! Nothing here ships in `workly`: the WebSocket client of the soak, the
//! Python stack of the comparison and the chart writer stay out of the
//! product binary and its dependencies.

use clap::Parser;
use cli::{Cli, Command};
use std::path::PathBuf;
use std::process::ExitCode;
use workly::error::Context as _;

mod all;
mod batch;
mod chart;
mod cli;
mod compare;
mod emotion;
mod ipc;
mod memory;
mod perplexity;
mod persona;
mod recall;
mod soak;
mod sse;
mod store;

fn main() -> ExitCode {
    let cli = Cli::parse();
    workly::cli::init_tracing(cli.global.verbose);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("workly-bench: {error:#}");
            ExitCode::from(workly::cli::exit_code(&error))
        }
    }
}

fn run(cli: &Cli) -> workly::error::Result<()> {
    // The avatar bridge alone: no model, no config.
    if let Command::Ipc(args) = &cli.command {
        return ipc::run(args);
    }
    let context = cli.global.context()?;
    match &cli.command {
        Command::All(args) => all::run(&context, args),
        Command::Compare(args) => compare::run(&context, args),
        Command::Remote(args) => compare::remote::run(&context, args),
        Command::Rpc(args) => compare::rpc::run(&context, args),
        Command::Soak(args) => soak::run(&context, args),
        Command::Batch(args) => batch::run(&context, args),
        Command::Memory(args) => memory::run(&context, args),
        Command::Emotion(args) => emotion::run(&context, args),
        Command::Store(args) => store::run(&context, args),
        Command::Recall(args) => recall::run(&context, args),
        Command::Perplexity(args) => perplexity::run(&context, args),
        Command::Persona(args) => persona::run(&context, args),
        Command::Ipc(_) => unreachable!("handled above"),
    }
}

/// A temporary folder named `prefix…` inside the data directory, removed
/// when dropped: benchmarks that time the store do it on the disk
/// `workly.db` really lives on (a RAM-backed `/tmp` would hide the sync).
fn scratch_dir(context: &workly::cli::Context, prefix: &str) -> workly::error::Result<tempfile::TempDir> {
    let data = &context.dirs.data;
    std::fs::create_dir_all(data).with_context(|| format!("cannot create {}", data.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(data)
        .with_context(|| format!("cannot create a temporary directory in {}", data.display()))
}

/// `part / whole`, 0 for nothing to divide.
fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// The `workly` binary the comparison and the soak run: the one built beside
/// this binary (`cargo build --release --workspace` builds both).
fn workly_binary() -> workly::error::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let workly = exe.with_file_name(format!("workly{}", std::env::consts::EXE_SUFFIX));
    if !workly.is_file() {
        workly::fail!("no workly binary beside {}: build both with `cargo build --release --workspace`", exe.display());
    }
    Ok(workly)
}
