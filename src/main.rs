//! The `workly` binary: parse the command line, run one subcommand, map its
//! error to an exit code. Everything else lives in the library.

use clap::Parser;
use std::process::ExitCode;
use workly::cli::{self, AvatarCommand, Cli, Command, ModelCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing(cli.global.verbose);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("workly: {error:#}");
            ExitCode::from(cli::exit_code(&error))
        }
    }
}

fn run(cli: &Cli) -> workly::error::Result<()> {
    // `model` commands need no config: a broken config file must not stop a
    // user from inspecting, fetching or converting a model.
    if let Command::Model { command } = &cli.command {
        return match command {
            ModelCommand::Info { path, json } => cli::run_model_info(path, *json),
            ModelCommand::Pull { url, out, sha256, no_progress } => {
                let dirs = workly::config::Dirs::resolve(cli.global.data_dir.as_deref())?;
                cli::run_model_pull(&dirs, url, out.as_deref(), sha256.clone(), !no_progress)
            }
            ModelCommand::Quantize(args) => cli::run_model_quantize(args, cli.global.llama_logs()),
            ModelCommand::Recommend { json } => {
                let dirs = workly::config::Dirs::resolve(cli.global.data_dir.as_deref())?;
                cli::run_model_recommend(&dirs, *json, cli.global.llama_logs())
            }
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
    let context = cli.global.context()?;
    match &cli.command {
        Command::Chat(args) => cli::chat::run(&context, args),
        Command::Doctor(args) => cli::run_doctor(&context, args),
        Command::Serve(args) => cli::serve::run(&context, args),
        Command::Worker(args) => cli::run_worker(&context, args),
        Command::History { command } => cli::history::run(&context.dirs, command),
        Command::Memory { command } => cli::memory::run(&context.dirs, command),
        Command::Bench { command } => cli::bench::run(&context, command),
        Command::Say(args) => cli::voice::run_say(&context, args),
        Command::Talk(args) => cli::voice::run_talk(&context, args),
        Command::Listen(args) => cli::voice::run_listen(&context.dirs, args),
        Command::Model { .. } | Command::Emotion(_) | Command::Avatar { .. } => unreachable!("handled above"),
    }
}
