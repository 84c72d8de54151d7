//! The `workly` binary: parse the command line, run one subcommand, map its
//! error to an exit code. Everything else lives in the library.

use clap::Parser;
use std::process::ExitCode;
use workly::cli::{self, AvatarCommand, BenchCommand, Cli, Command, ModelCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("workly: {error:#}");
            ExitCode::from(cli::exit_code(&error))
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    // `model` commands need no config: a broken config file must not stop a
    // user from inspecting, fetching or converting a model.
    if let Command::Model { command } = &cli.command {
        return match command {
            ModelCommand::Info { path, json } => cli::run_model_info(path, *json),
            ModelCommand::Pull { url, out, sha256, no_progress } => {
                let dirs = workly::config::Dirs::resolve(cli.data_dir.as_deref())?;
                cli::run_model_pull(&dirs, url, out.as_deref(), sha256.clone(), !no_progress)
            }
            ModelCommand::Quantize(args) => cli::run_model_quantize(args, cli.llama_logs()),
        };
    }
    // `emotion` reads text only: no model, no config.
    if let Command::Emotion(args) = &cli.command {
        return cli::emotion::run(args);
    }
    // Avatar control needs no config either.
    if let Command::Avatar { command } = &cli.command {
        return match command {
            AvatarCommand::Send(args) => cli::avatar::run_send(args),
            AvatarCommand::Peer(args) => cli::avatar::run_peer(args),
        };
    }
    let context = cli::Context::resolve(cli)?;
    match &cli.command {
        Command::Chat(args) => cli::chat::run(&context, args),
        Command::Doctor(args) => cli::run_doctor(&context, args),
        Command::Serve(args) => cli::serve::run(&context, args),
        Command::History { command } => cli::history::run(&context.dirs, command),
        Command::Bench { command } => match command {
            BenchCommand::All(args) => workly::bench::all::run(&context, args),
            BenchCommand::Gpu(args) => workly::bench::gpu::run(&context, args),
            BenchCommand::Compare(args) => workly::bench::compare::run(&context, args),
            BenchCommand::Llm(args) => workly::bench::llm::run(&context, args),
            BenchCommand::Threads(args) => workly::bench::threads::run(&context, args),
            BenchCommand::Batch(args) => workly::bench::batch::run(&context, args),
            BenchCommand::Memory(args) => workly::bench::memory::run(&context, args),
            BenchCommand::Emotion(args) => workly::bench::emotion::run(&context, args),
            BenchCommand::Store(args) => workly::bench::store::run(&context, args),
            BenchCommand::Perplexity(args) => workly::bench::perplexity::run(&context, args),
            BenchCommand::Ipc(args) => workly::bench::ipc::run(args),
            BenchCommand::Soak(args) => workly::bench::soak::run(&context, args),
        },
        Command::Model { .. } | Command::Emotion(_) | Command::Avatar { .. } => unreachable!("handled above"),
    }
}

/// Logs go to stderr, quiet by default: warnings only, unless `--verbose` or
/// `RUST_LOG` asks for more.
fn init_tracing(verbose: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if verbose { "info" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
