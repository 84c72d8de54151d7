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

use super::{ChatArgs, Context, EXIT_INTERRUPTED, write_stdout};
use crate::avatar::AvatarBridge;
use crate::chat::Conversation;
use crate::chat::history::History;
use crate::chat::turn::{Chat, Outcome, ReplyOptions, Saved, Sink, Turn, TurnError};
use crate::emotion::Emotion;
use crate::error::Context as _;
use crate::error::{Class, Error};
use crate::llm::{Backend, CancelToken, Engine, EngineInfo, LlmError};
use crate::store::Store;
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
    /// Memories of the person recalled into the prompt.
    pub recalled_memories: usize,
    /// New memories learnt from the person's message.
    pub learned_memories: usize,
    /// The reply's emotion (stored with it, shown by the avatar).
    pub emotion: Emotion,
    /// How strongly, 0 to 1.
    pub intensity: f32,
    /// Whether the exchange is in the conversation store (not with `-p`
    /// alone, nor when saving it failed).
    pub stored: bool,
    /// What the recital guard did, if it caught the reply reciting the persona.
    pub guarded: Option<crate::chat::turn::Guarded>,
    /// How the message was heard and the reply spoken (`workly talk`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<super::voice::SpokenReport>,
}

impl<'a> TurnReport<'a> {
    fn new(outcome: &'a Outcome, info: &EngineInfo, stored: bool) -> Self {
        let stats = &outcome.stats;
        Self {
            text: &outcome.text,
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
            recalled_messages: outcome.recalled_messages,
            recalled_memories: outcome.recalled_memories,
            learned_memories: outcome.learned_memories,
            emotion: outcome.feeling.emotion,
            intensity: outcome.feeling.intensity,
            stored,
            guarded: outcome.guarded,
            voice: None,
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
pub(crate) struct Turning {
    /// A turn is under way.
    busy: bool,
    /// Cuts the turn's reply: at once if it is being generated, as soon as it
    /// starts if the prompt is still being fitted, not at all once it is
    /// complete (the turn is then being saved).
    cut: CancelToken,
    /// SIGTERM came during the turn: end the chat after it.
    ending: bool,
}

/// The chat's [`Turning`], shared with the signal thread.
pub(crate) type Current = Arc<Mutex<Turning>>;

/// Starts the thread that handles Ctrl-C and SIGTERM for `current`.
pub(crate) fn handle_signals(current: &Current) -> crate::error::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("cannot handle signals")?;
    let current = Arc::clone(current);
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            let Ok(mut turning) = current.lock() else { std::process::exit(i32::from(EXIT_INTERRUPTED)) };
            if !turning.busy {
                std::process::exit(if signal == SIGTERM { 0 } else { i32::from(EXIT_INTERRUPTED) });
            }
            turning.cut.cancel();
            turning.ending |= signal == SIGTERM;
        }
    })?;
    Ok(())
}

/// Cuts the reply of the turn under way, if one is (the person spoke over her).
pub(crate) fn cut_current(current: &Current) {
    if let Ok(turning) = current.lock()
        && turning.busy
    {
        turning.cut.cancel();
    }
}

/// Runs one turn with `current` marking it under way, handing it the switch
/// that cuts its reply; whether SIGTERM asked the chat to end meanwhile.
pub(crate) fn guarded(
    current: &Current,
    turn: impl FnOnce(CancelToken) -> crate::error::Result<()>,
) -> crate::error::Result<bool> {
    let lock = || current.lock().map_err(|_| Error::failure(anyhow::anyhow!("the signal state is poisoned")));
    let cut = CancelToken::new();
    *lock()? = Turning { busy: true, cut: cut.clone(), ending: false };
    let outcome = turn(cut);
    let mut turning = lock()?;
    turning.busy = false;
    outcome.map(|()| turning.ending)
}

/// A chat, open: the engine, the avatar, the conversation and how replies
/// are shaped, for the terminal's doors (`chat`, `talk`).
pub(crate) struct Session {
    /// The model.
    pub engine: Engine,
    /// Kira's face, if shown.
    pub avatar: Option<AvatarBridge>,
    /// The conversation and where it is kept.
    pub chat: Mutex<Chat>,
    /// How replies are shaped (from the sampling flags).
    pub options: ReplyOptions,
    /// Earlier messages resumed from the store.
    pub resumed: usize,
}

/// Opens the chat `args` ask for: the stored conversation, the engine, the
/// avatar, the memory.
pub(crate) fn open(context: &Context, args: &ChatArgs) -> crate::error::Result<Session> {
    let mut conversation = Conversation::new(context.persona(args.persona.as_deref())?);
    // Opened before the model loads, so a damaged database is reported at once.
    let mut history = match (&args.prompt, &args.conversation) {
        (Some(_), None) => None,
        (_, name) => {
            let mut history = History::open(Store::open(&context.dirs.database())?, name.as_deref())?;
            history.set_memory(context.memory(args.no_memory));
            Some(history)
        }
    };
    let (engine, avatar, resumed) = match start(context, args, &mut conversation, history.as_ref()) {
        Ok(started) => started,
        Err(error) => {
            if let Some(history) = history.as_mut() {
                history.abandon();
            }
            return Err(error);
        }
    };
    if let Some(notice) = history
        .as_mut()
        .and_then(|history| super::memory::attach_embedder(&context.dirs, history, engine.info().threads_prefill))
    {
        eprintln!("{notice}");
    }
    let options = ReplyOptions {
        sampling: args.sampling.params(),
        max_tokens: args.sampling.max_tokens,
        stop: args.sampling.stop.clone(),
        unguarded: false,
    };
    Ok(Session { engine, avatar, chat: Mutex::new(Chat::new(conversation, history)), options, resumed })
}

/// Runs `workly chat`.
pub fn run(context: &Context, args: &ChatArgs) -> crate::error::Result<()> {
    let Session { engine, avatar, chat, options, resumed } = open(context, args)?;
    let door = Door {
        engine: &engine,
        avatar: avatar.as_ref(),
        options: &options,
        chat: &chat,
        args,
        out: &write_stdout,
        voice: None,
    };
    let current: Current = Arc::default();
    handle_signals(&current)?;

    if let Some(prompt) = &args.prompt {
        guarded(&current, |cancel| door.turn(prompt, cancel))?;
        // Let the face reach the renderer before the process ends (not waiting
        // for a renderer that is not there).
        if let Some(avatar) = avatar.as_ref().filter(|a| a.stats().iter().any(|transport| transport.connected)) {
            let _ = avatar.flush(std::time::Duration::from_millis(500));
        }
        return Ok(());
    }
    let locked = || chat.lock().map_err(|_| Error::from(TurnError::Unavailable));
    let name = locked()?.conversation().persona().name.clone();
    eprintln!("{name} is here ({}). /reset starts over, /exit leaves, Ctrl-C stops a reply.", engine.info().describe());
    if let Some(history) = locked()?.history() {
        eprintln!("Conversation `{}` ({resumed} earlier messages loaded).", history.name());
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
                let mut chat = locked()?;
                chat.start_new()?;
                // An interactive chat is always kept; only `-p` may go without.
                if let Some(history) = chat.history() {
                    eprintln!("(new conversation `{}`)", history.name());
                }
                continue;
            }
            message => {
                if !args.json {
                    eprint!("{name}> ");
                }
                match guarded(&current, |cancel| door.turn(message, cancel)) {
                    Ok(false) => {}
                    // SIGTERM: the turn is saved, the chat ends.
                    Ok(true) => break,
                    // A message that cannot fit is reported and the chat goes on.
                    Err(error) if error.class() == Class::BadInput => eprintln!("workly: {error:#}"),
                    Err(error) => return Err(error),
                }
            }
        }
    }
    Ok(())
}

/// Loads the engine for `conversation` (resumed from `history` first) and
/// starts the avatar bridge; returns them and how many messages were resumed.
fn start(
    context: &Context,
    args: &ChatArgs,
    conversation: &mut Conversation,
    history: Option<&History>,
) -> crate::error::Result<(Engine, Option<AvatarBridge>, usize)> {
    let mut backend = match args.engine.remote(context)? {
        Some(server) => Backend::Remote(server),
        None => {
            let mut prepared = args.engine.prepare(context, Vec::new())?;
            let context_chosen = context.settings(&args.engine).context_size.is_some();
            // A small context suits a lone question, not one that continues a history.
            if let (Some(prompt), false, None) = (&args.prompt, context_chosen, history) {
                prepared.engine.context_size =
                    prepared.engine.context_size.min(one_shot_context(conversation, prompt, args.sampling.max_tokens));
            }
            Backend::Local(prepared.engine)
        }
    };
    let resumed = match history {
        Some(history) => history.resume(conversation, backend.context_size() as usize)?,
        None => 0,
    };
    // A one-shot message needs only the persona in its own language; a
    // session warms every language, the resumed history's first.
    backend.set_warmup(match args.prompt.as_deref() {
        Some(prompt) => vec![conversation.opening_for(prompt)],
        None => conversation.openings(),
    });
    let engine = Engine::start(backend)?;
    // Started after the model so a bad address is reported first; Unity may
    // be absent, the bridge then retries in the background.
    let avatar = super::avatar::start_bridge(&args.avatar, None)?;
    Ok((engine, avatar, resumed))
}

/// Context a one-shot answer can need: a token is at least one byte of text,
/// so the persona's and the message's bytes bound their tokens, plus the
/// template's own tokens and the reply. A smaller context starts faster
/// (llama.cpp allocates and clears the whole KV cache up front).
fn one_shot_context(conversation: &Conversation, prompt: &str, max_tokens: u32) -> u32 {
    const TEMPLATE_TOKENS: usize = 64;
    let opening: usize = conversation.opening_for(prompt).iter().map(|message| message.content.len()).sum();
    let bound = opening + prompt.len() + TEMPLATE_TOKENS + max_tokens as usize;
    u32::try_from(bound.next_multiple_of(256)).unwrap_or(u32::MAX)
}

/// The terminal as a door into the chat turn.
pub(crate) struct Door<'a> {
    /// The model.
    pub engine: &'a Engine,
    /// Kira's face, if shown.
    pub avatar: Option<&'a AvatarBridge>,
    /// How replies are shaped (from the sampling flags).
    pub options: &'a ReplyOptions,
    /// The conversation and where it is kept.
    pub chat: &'a Mutex<Chat>,
    /// `--json` and `-p` decide what is printed and what a failed save means.
    pub args: &'a ChatArgs,
    /// Where the reply goes: stdout ([`write_stdout`]; `false` once it is
    /// closed), or what a test reads.
    pub out: &'a dyn Fn(&str) -> crate::error::Result<bool>,
    /// Kira's voice, when she speaks her replies.
    pub voice: Option<&'a super::voice::VoiceOut>,
}

impl Door<'_> {
    /// One exchange through the chat turn, the reply streamed to stdout (or,
    /// with `--json`, reported once saved); `cancel` cuts it.
    pub fn turn(&self, user: &str, cancel: CancelToken) -> crate::error::Result<()> {
        self.turn_heard(user, cancel, None)
    }

    /// [`Door::turn`] on a message that was spoken, `heard` in `transcript`
    /// (ready at the instant given); with a voice, the reply is spoken too.
    pub fn turn_heard(
        &self,
        user: &str,
        cancel: CancelToken,
        heard: Option<(&crate::voice::Transcript, std::time::Instant)>,
    ) -> crate::error::Result<()> {
        let message_at = heard.map_or_else(std::time::Instant::now, |(_, at)| at);
        let turn = Turn { engine: self.engine, avatar: self.avatar, options: self.options, cancel: cancel.clone() };
        let mut printer =
            Printer { out: self.out, print: !self.args.json, shown: false, reader_gone: false, failed: None };
        let (result, mut spoken) = match self.voice {
            Some(voice) => {
                let (result, spoken) =
                    voice.speak(user, self.avatar, &cancel, &mut printer, |sink| turn.chat(self.chat, user, sink));
                (result, Some(spoken))
            }
            None => (turn.chat(self.chat, user, &mut printer), None),
        };
        // The person spoke over her: the history keeps only what she said.
        let cut = spoken.as_mut().and_then(|spoken| spoken.cut.take());
        let kept = match (&result, cut) {
            (Ok(outcome), Some(said)) if !matches!(outcome.saved, Saved::Failed(_)) => {
                let count = |text: &str| self.engine.count_tokens(crate::llm::Prompt::Text(text.to_owned()));
                let mut chat = self.chat.lock().map_err(|_| TurnError::Unavailable)?;
                chat.interrupted(&said, count)?
            }
            _ => None,
        };
        let spoken = spoken
            .map(|spoken| spoken.report(heard.map(|(transcript, _)| transcript), message_at, kept.clone()))
            .transpose()?;
        let mut outcome = match result {
            Ok(outcome) => outcome,
            // A remote back-end's failure ends the turn, not the chat: the
            // next message may find the server back. Nothing was saved, so
            // the conversation goes on from its last saved exchange.
            Err(TurnError::Llm(LlmError::Remote(error))) if self.args.prompt.is_none() => {
                if printer.shown {
                    (self.out)("\n")?;
                }
                eprintln!("workly: {error}");
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(error) = printer.failed {
            return Err(error).context("cannot write to stdout");
        }
        let stored = match std::mem::replace(&mut outcome.saved, Saved::NotKept) {
            Saved::Kept => true,
            Saved::NotKept => false,
            // A one-shot answer that was to be stored fails without it.
            Saved::Failed(error) if self.args.prompt.is_some() => {
                return Err(error).context("the exchange could not be saved");
            }
            // The chat goes on from the last saved exchange, as a restart would.
            Saved::Failed(error) => {
                eprintln!(
                    "workly: this exchange could not be saved ({error}); the conversation goes on from the last saved one"
                );
                false
            }
        };
        if printer.reader_gone {
            return Ok(());
        }
        if self.args.json {
            let info = self.engine.info();
            let mut report = TurnReport::new(&outcome, info, stored);
            report.voice = spoken;
            let line = serde_json::to_string(&report)?;
            (self.out)(&(line + "\n"))?;
        } else {
            (self.out)("\n")?;
            if let Some(kept) = &kept {
                eprintln!("(interrupted; she said: {kept})");
            } else if outcome.stats.finish_reason == crate::llm::FinishReason::Cancelled {
                eprintln!("(stopped)");
            }
        }
        Ok(())
    }
}

/// Prints the reply as it comes (emotion tags are for the avatar: the person
/// reads the text without them).
struct Printer<'a> {
    /// Where the text goes.
    out: &'a dyn Fn(&str) -> crate::error::Result<bool>,
    /// Whether the text goes out (not with `--json`).
    print: bool,
    /// Whether some text went out.
    shown: bool,
    /// stdout was closed: nobody reads the reply, so it stops.
    reader_gone: bool,
    /// stdout failed otherwise.
    failed: Option<Error>,
}

impl Sink for Printer<'_> {
    fn text(&mut self, piece: &str) -> bool {
        if !self.print || self.reader_gone || self.failed.is_some() {
            return !self.reader_gone && self.failed.is_none();
        }
        match (self.out)(piece) {
            Ok(true) => {
                self.shown = true;
                true
            }
            Ok(false) => {
                self.reader_gone = true;
                false
            }
            Err(error) => {
                self.failed = Some(error);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::chat::turn::{Chat, ReplyOptions};
    use crate::chat::{Conversation, Persona};
    use crate::llm::scripted::Script;
    use crate::llm::{CancelToken, Engine};
    use crate::server::tests::{FEELINGS, Seen, bridge, feeling, shown, through_the_api, through_the_page, unity_peer};

    /// The terminal's door on a scripted engine, `--json`, its output kept.
    async fn through_the_terminal() -> Seen {
        let (address, peer) = unity_peer().await;
        let avatar = bridge(address);
        let engine = Engine::scripted(Script::replies([FEELINGS])).unwrap();
        let chat = Mutex::new(Chat::new(Conversation::new(Persona::default()), None));
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(["workly", "chat", "--json"]).unwrap();
        let crate::cli::Command::Chat(args) = cli.command else { unreachable!("a chat command was parsed") };
        let options = ReplyOptions { max_tokens: 256, ..Default::default() };
        let printed = Mutex::new(String::new());
        let out = |text: &str| {
            printed.lock().unwrap().push_str(text);
            Ok(true)
        };
        let door = Door {
            engine: &engine,
            avatar: Some(&avatar),
            options: &options,
            chat: &chat,
            args: &args,
            out: &out,
            voice: None,
        };
        tokio::task::block_in_place(|| door.turn("Guess what!", CancelToken::new())).unwrap();
        let report: serde_json::Value = serde_json::from_str(printed.lock().unwrap().trim()).unwrap();
        let (emotion, intensity) = feeling(&report["emotion"], &report["intensity"]);
        (emotion, intensity, shown(&avatar, &peer).await)
    }

    /// The one turn, through three doors: the terminal's, the page's and the API's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_door_gives_a_reply_the_same_emotion_and_the_avatar_the_same_face() {
        let terminal = through_the_terminal().await;
        let page = through_the_page().await;
        let api = through_the_api().await;
        // The reply ends sad: the turn's emotion, and the face the avatar holds.
        assert_eq!(terminal.0, "sorrow");
        let sorrow = crate::avatar::Expression::Sorrow;
        assert!(terminal.2.expressions[sorrow.index()].is_some_and(|weight| weight.get() > 0.0), "{:?}", terminal.2);
        assert_eq!(page, terminal, "the page's turn differs from the terminal's");
        assert_eq!(api, terminal, "the API's turn differs from the terminal's");
    }

    #[test]
    fn one_shot_context_bounds_persona_message_and_reply() {
        let conversation = Conversation::new(crate::chat::Persona::default());
        let persona_bytes = conversation.opening_for("Bonjour")[0].content.len();
        let context = one_shot_context(&conversation, "Bonjour", 256) as usize;
        assert!(context.is_multiple_of(256));
        assert!(context >= persona_bytes + "Bonjour".len() + 256 + 64);
        assert!(context < persona_bytes + 256 + 64 + 512);
    }
}
