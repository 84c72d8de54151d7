//! `workly chat`: Kira in the terminal.
//!
//! With `-p TEXT` it answers once, streaming only the reply to stdout so it
//! pipes cleanly; otherwise it reads lines from stdin until `/exit` or end of
//! input, with `/reset` to start over. Ctrl-C stops the reply being written,
//! not the program (at the prompt it exits); SIGTERM stops the reply too, and
//! the chat exits once the turn is saved. With `--json`, stdout carries one
//! JSON object per turn and nothing else (the reply as the model wrote it; the
//! terminal shows it without its emotion tags). A one-shot answer sizes its
//! context to what it can need unless a size is set, so it starts sooner.
//!
//! The chat continues a stored conversation (`--conversation NAME`, else the
//! most recent one) and saves every exchange before reporting the turn done;
//! `/reset` moves on to a new stored conversation. `-p` touches the store only
//! when `--conversation` names one, so a one-off question leaves no trace.

use super::Conversation;
use super::memory::{self, Exchange, Memory};
use crate::avatar::AvatarBridge;
use crate::cli::{self, ChatArgs, Context};
use crate::emotion::Emotion;
use crate::emotion::analyzer::{Analyzer, Update};
use crate::llm::{CancelToken, Engine, EngineInfo, GenerationEvent, GenerationRequest, GenerationStats, Prompt};
use crate::store::Store;
use anyhow::Context as _;
use serde::Serialize;
use std::io::BufRead;
use std::sync::{Arc, Mutex};

/// One turn as `--json` prints it.
#[derive(Debug, Serialize)]
pub struct TurnReport<'a> {
    /// The reply.
    pub text: &'a str,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Prompt tokens reused from the KV cache.
    pub cached_tokens: usize,
    /// Time to the first token.
    pub ttft_ms: f64,
    /// Prompt evaluation speed.
    pub prefill_tokens_per_s: f64,
    /// Generation speed.
    pub decode_tokens_per_s: f64,
    /// Decode threads.
    pub threads: usize,
    /// Prefill threads.
    pub threads_prefill: usize,
    /// Layers on the GPU.
    pub gpu_layers: u32,
    /// Why the reply ended.
    pub finish_reason: crate::llm::FinishReason,
    /// Earlier messages, out of the context window, recalled into the prompt.
    pub recalled_messages: usize,
    /// The reply's emotion (stored with it, shown by the avatar).
    pub emotion: Emotion,
    /// How strongly, 0 to 1.
    pub intensity: f32,
    /// Whether the exchange is in the conversation store (not with `-p`
    /// alone, nor when saving it failed).
    pub stored: bool,
}

impl<'a> TurnReport<'a> {
    fn new(
        text: &'a str,
        stats: &GenerationStats,
        info: &EngineInfo,
        recalled_messages: usize,
        (emotion, intensity): (Emotion, f32),
        stored: bool,
    ) -> Self {
        Self {
            text,
            prompt_tokens: stats.prompt_tokens,
            completion_tokens: stats.completion_tokens,
            cached_tokens: stats.cached_tokens,
            ttft_ms: stats.ttft_ms,
            prefill_tokens_per_s: stats.prefill_tokens_per_s,
            decode_tokens_per_s: stats.decode_tokens_per_s,
            threads: info.threads_decode,
            threads_prefill: info.threads_prefill,
            gpu_layers: info.gpu_layers,
            finish_reason: stats.finish_reason,
            recalled_messages,
            emotion,
            intensity,
            stored,
        }
    }
}

/// Where the chat is, which decides what Ctrl-C and SIGTERM do. At the
/// prompt nothing is under way, so either ends the chat at once (Ctrl-C with
/// the interrupted code, SIGTERM with 0). During a turn Ctrl-C cuts the reply
/// short and the chat goes on; SIGTERM cuts it too and ends the chat once the
/// turn is saved and reported. Once the reply is complete, neither can lose
/// the turn being saved.
#[derive(Debug, Default)]
struct Turning {
    /// A turn is under way.
    busy: bool,
    /// Stops the reply being generated, if one is.
    reply: Option<CancelToken>,
    /// A signal came before the reply started: cut it as soon as it does.
    cut: bool,
    /// SIGTERM came during the turn: end the chat after it.
    ending: bool,
}

impl Turning {
    /// The reply that `cancel` stops is being generated.
    fn generating(&mut self, cancel: CancelToken) {
        if self.cut {
            cancel.cancel();
        }
        self.reply = Some(cancel);
    }
}

/// The chat's [`Turning`], shared with the signal thread.
type Current = Arc<Mutex<Turning>>;

/// Starts the thread that handles Ctrl-C and SIGTERM for `current`.
fn handle_signals(current: &Current) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("cannot handle signals")?;
    let current = Arc::clone(current);
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            let Ok(mut turning) = current.lock() else { std::process::exit(i32::from(cli::EXIT_INTERRUPTED)) };
            if !turning.busy {
                std::process::exit(if signal == SIGTERM { 0 } else { i32::from(cli::EXIT_INTERRUPTED) });
            }
            match &turning.reply {
                Some(reply) => reply.cancel(),
                None => turning.cut = true,
            }
            turning.ending |= signal == SIGTERM;
        }
    })?;
    Ok(())
}

/// Runs one turn with `current` marking it under way; whether SIGTERM asked
/// the chat to end meanwhile.
fn guarded(current: &Current, turn: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<bool> {
    let lock = || current.lock().map_err(|_| anyhow::anyhow!("the signal state is poisoned"));
    *lock()? = Turning { busy: true, ..Turning::default() };
    let outcome = turn();
    let mut turning = lock()?;
    turning.busy = false;
    outcome.map(|()| turning.ending)
}

/// Runs `workly chat`.
pub fn run(context: &Context, args: &ChatArgs) -> anyhow::Result<()> {
    let mut conversation = Conversation::new(context.persona(args.persona.as_deref())?);
    // Opened before the model loads, so a damaged database is reported at once.
    let mut memory = match (&args.prompt, &args.conversation) {
        (Some(_), None) => None,
        (_, name) => Some(Memory::open(Store::open(&context.dirs.database())?, name.as_deref())?),
    };
    let (engine, avatar, resumed) = match start(context, args, &mut conversation, memory.as_ref()) {
        Ok(started) => started,
        Err(error) => {
            if let Some(memory) = memory.as_mut() {
                memory.abandon();
            }
            return Err(error);
        }
    };
    let current: Current = Arc::default();
    handle_signals(&current)?;

    if let Some(prompt) = &args.prompt {
        guarded(&current, || {
            turn(&engine, &mut conversation, memory.as_mut(), avatar.as_ref(), args, prompt, &current)
        })?;
        // Let the face reach the renderer before the process ends (not waiting
        // for a renderer that is not there).
        if let Some(avatar) = avatar.as_ref().filter(|a| a.stats().iter().any(|transport| transport.connected)) {
            let _ = avatar.flush(std::time::Duration::from_millis(500));
        }
        return Ok(());
    }
    let name = conversation.persona().name.clone();
    eprintln!(
        "{name} is here ({} on {} threads). /reset starts over, /exit leaves, Ctrl-C stops a reply.",
        engine.info().model_name,
        engine.info().threads_decode
    );
    if let Some(memory) = &memory {
        eprintln!("Conversation `{}` ({resumed} earlier messages loaded).", memory.name());
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("you> ");
        let Some(line) = lines.next() else { break };
        let line = line.context("cannot read stdin")?;
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                conversation.reset();
                // An interactive chat always has a memory; only `-p` may go without.
                if let Some(memory) = memory.as_mut() {
                    memory.start_new()?;
                    eprintln!("(new conversation `{}`)", memory.name());
                }
                continue;
            }
            message => {
                if !args.json {
                    eprint!("{name}> ");
                }
                let done = guarded(&current, || {
                    turn(&engine, &mut conversation, memory.as_mut(), avatar.as_ref(), args, message, &current)
                });
                match done {
                    Ok(false) => {}
                    // SIGTERM: the turn is saved, the chat ends.
                    Ok(true) => break,
                    // A message that cannot fit is reported and the chat goes on.
                    Err(error) if cli::exit_code(&error) == cli::EXIT_BAD_INPUT => eprintln!("workly: {error:#}"),
                    Err(error) => return Err(error),
                }
            }
        }
    }
    Ok(())
}

/// Loads the engine for `conversation` (resumed from `memory` first) and
/// starts the avatar bridge; returns them and how many messages were resumed.
fn start(
    context: &Context,
    args: &ChatArgs,
    conversation: &mut Conversation,
    memory: Option<&Memory>,
) -> anyhow::Result<(Engine, Option<AvatarBridge>, usize)> {
    let mut prepared = args.engine.prepare(context, Vec::new())?;
    let context_chosen = args.engine.context_size.is_some() || context.file.context_size.is_some();
    // A small context suits a lone question, not one that continues a history.
    if let (Some(prompt), false, None) = (&args.prompt, context_chosen, memory) {
        prepared.engine.context_size =
            prepared.engine.context_size.min(one_shot_context(conversation, prompt, args.sampling.max_tokens));
    }
    let resumed = match memory {
        Some(memory) => memory.resume(conversation, prepared.engine.context_size as usize)?,
        None => 0,
    };
    // A one-shot message needs only the persona in its own language; a
    // session warms every language, the resumed history's first.
    prepared.engine.warmup = match args.prompt.as_deref() {
        Some(prompt) => vec![vec![conversation.system_for(prompt)]],
        None => conversation.openings(),
    };
    let engine = Engine::load(prepared.engine)?;
    // Started after the model so a bad address is reported first; Unity may
    // be absent, the bridge then retries in the background.
    let avatar = AvatarBridge::start_if_wanted(&args.avatar, None)?;
    Ok((engine, avatar, resumed))
}

/// Context a one-shot answer can need: a token is at least one byte of text,
/// so the persona's and the message's bytes bound their tokens, plus the
/// template's own tokens and the reply. A smaller context starts faster
/// (llama.cpp allocates and clears the whole KV cache up front).
fn one_shot_context(conversation: &Conversation, prompt: &str, max_tokens: u32) -> u32 {
    const TEMPLATE_TOKENS: usize = 64;
    let bound = conversation.system_for(prompt).content.len() + prompt.len() + TEMPLATE_TOKENS + max_tokens as usize;
    u32::try_from(bound.next_multiple_of(256)).unwrap_or(u32::MAX)
}

/// One exchange: fit the history, recall what left it, stream the reply,
/// save and record it, then report it done.
fn turn(
    engine: &Engine,
    conversation: &mut Conversation,
    mut memory: Option<&mut Memory>,
    avatar: Option<&AvatarBridge>,
    args: &ChatArgs,
    user: &str,
    current: &Current,
) -> anyhow::Result<()> {
    let sent_at_ms = crate::store::now_ms();
    let info = engine.info();
    let recollect = |in_window| match memory.as_deref() {
        Some(memory) => Ok(memory.recollect(user, in_window)?),
        None => Ok(Vec::new()),
    };
    let (messages, recalled_messages) =
        memory::prompt(engine, conversation, user, args.sampling.max_tokens, recollect)?;
    let request = GenerationRequest {
        prompt: Prompt::Messages(messages),
        sampling: args.sampling.params(),
        max_tokens: args.sampling.max_tokens,
        stop: args.sampling.stop.clone(),
        ignore_eos: false,
    };
    let mut generation = engine.generate(request)?;
    current.lock().map_err(|_| anyhow::anyhow!("the signal state is poisoned"))?.generating(generation.cancel_token());
    let mut text = String::new();
    // Emotion tags are for the avatar: the person reads the text without them.
    let mut analyzer = Analyzer::new();
    let mut shown = String::new();
    let show = |update: &Update, shown: &mut String| {
        shown.push_str(&update.text);
        if let (Some(face), Some(avatar)) = (update.face, avatar) {
            avatar.emotion(face.emotion, face.intensity);
        }
    };
    if let Some(avatar) = avatar {
        avatar.reply_started();
    }
    let mut reader_gone = false;
    let outcome = loop {
        match generation.blocking_next() {
            Some(GenerationEvent::Text(piece)) => {
                text.push_str(&piece);
                let update = analyzer.push(&piece);
                show(&update, &mut shown);
                if !args.json && !reader_gone && !cli::write_stdout(&update.text)? {
                    // stdout was closed: stop generating, nobody reads it.
                    reader_gone = true;
                    generation.cancel_token().cancel();
                }
            }
            Some(GenerationEvent::Done(stats)) => break Ok(stats),
            Some(GenerationEvent::Failed(error)) => break Err(error),
            None => break Err(crate::llm::LlmError::Stopped),
        }
    };
    current.lock().map_err(|_| anyhow::anyhow!("the signal state is poisoned"))?.reply = None;
    let (rest, feeling) = analyzer.finish();
    let tail = rest.text.clone();
    show(&rest, &mut shown);
    if let Some(avatar) = avatar {
        avatar.reply_finished();
    }
    let stats = outcome?;
    let stored = match memory.as_mut() {
        None => false,
        Some(memory) => {
            let count = |text: &str| engine.count_tokens(Prompt::Text(text.to_owned()));
            match memory.save(&Exchange::count(user, sent_at_ms, &shown, feeling, count)?) {
                Ok(()) => true,
                // A one-shot answer that was to be stored fails without it.
                Err(error) if args.prompt.is_some() => return Err(error).context("the exchange could not be saved"),
                // The chat goes on from the last saved exchange, as a restart would.
                Err(error) => {
                    eprintln!(
                        "workly: this exchange could not be saved ({error}); the conversation goes on from the last saved one"
                    );
                    false
                }
            }
        }
    };
    if stored || memory.is_none() {
        conversation.push_exchange(user, &text);
    }
    if reader_gone {
        return Ok(());
    }
    if args.json {
        let feeling = (feeling.emotion, feeling.intensity);
        let line = serde_json::to_string(&TurnReport::new(&text, &stats, info, recalled_messages, feeling, stored))?;
        cli::write_stdout(&(line + "\n"))?;
    } else {
        cli::write_stdout(&(tail + "\n"))?;
        if stats.finish_reason == crate::llm::FinishReason::Cancelled {
            eprintln!("(stopped)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_context_bounds_persona_message_and_reply() {
        let conversation = Conversation::new(crate::chat::Persona::default());
        let persona_bytes = conversation.system_for("Bonjour").content.len();
        let context = one_shot_context(&conversation, "Bonjour", 256) as usize;
        assert!(context.is_multiple_of(256));
        assert!(context >= persona_bytes + "Bonjour".len() + 256 + 64);
        assert!(context < persona_bytes + 256 + 64 + 512);
    }
}
