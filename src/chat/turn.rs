//! One chat turn, the same for every door: the terminal, the page, the OpenAI
//! API and the benchmarks all run it, each with its own [`Sink`].
//!
//! A turn in a [`Chat`] fits the history to the context (the persona always
//! kept, the oldest exchanges leaving first), recalls earlier turns the new
//! message mentions, generates, takes the emotion tags out of the text, reads
//! the emotion and drives the avatar with it, then saves the exchange before
//! it returns, so a door that reports the turn done reports a saved one. A
//! turn on messages a client sent ([`Turn::reply`], the OpenAI API) keeps no
//! history: the client holds it.
//!
//! The turn blocks on the engine (token counts, generation): async doors run
//! it on a blocking thread. What it does not own it leaves to the door: how
//! the text is shown, how a failure is reported, when the turn may be cut
//! (the door holds the [`CancelToken`]).

use super::Conversation;
use super::history::{Exchange, History, RECALL_MAX_TOKENS, note};
use crate::avatar::AvatarBridge;
use crate::emotion::analyzer::{Analyzer, Update};
use crate::emotion::smoothing::{Face, TurnEmotion};
use crate::llm::{
    CancelToken, Engine, GenerationEvent, GenerationRequest, GenerationStats, LlmError, Message, Prompt, SamplingParams,
};
use crate::store::{Recollection, StoreError};
use std::sync::{Mutex, MutexGuard};

/// How a turn's reply is shaped.
#[derive(Debug, Clone, Default)]
pub struct ReplyOptions {
    /// How tokens are chosen.
    pub sampling: SamplingParams,
    /// Most tokens in the reply.
    pub max_tokens: u32,
    /// Strings that end the reply (not included in it).
    pub stop: Vec<String>,
}

/// A conversation with Kira and, when it is kept, where: what a turn fits to
/// the context and saves to. Doors share it behind a mutex, held only for
/// moments (never while the engine works).
#[derive(Debug)]
pub struct Chat {
    conversation: Conversation,
    history: Option<History>,
}

impl Chat {
    /// `conversation`, saved to `history` when there is one.
    pub fn new(conversation: Conversation, history: Option<History>) -> Self {
        Self { conversation, history }
    }

    /// The conversation so far.
    pub fn conversation(&self) -> &Conversation {
        &self.conversation
    }

    /// Where the conversation is kept, if it is.
    pub fn history(&self) -> Option<&History> {
        self.history.as_ref()
    }

    /// Starts over: a new stored conversation (the old one stays stored), or
    /// just an empty history when nothing is kept.
    pub fn start_new(&mut self) -> Result<(), StoreError> {
        if let Some(history) = self.history.as_mut() {
            history.start_new()?;
        }
        self.conversation.reset();
        Ok(())
    }

    /// For a start that failed: see [`History::abandon`].
    pub fn abandon(&mut self) {
        if let Some(history) = self.history.as_mut() {
            history.abandon();
        }
    }
}

/// What the door running a turn hears of it while it happens.
pub trait Sink {
    /// The reply is being generated.
    fn started(&mut self) {}
    /// The next piece of the reply as the person reads it (emotion tags taken
    /// out); `false` when nobody reads it any more, which stops the reply.
    fn text(&mut self, _piece: &str) -> bool {
        true
    }
    /// The face Kira shows changed (the avatar has already been told).
    fn face(&mut self, _face: Face) {}
}

/// Hears nothing: a benchmark times the turn, not a reader.
impl Sink for () {}

/// Whether a turn's exchange was saved.
#[derive(Debug)]
pub enum Saved {
    /// Nothing keeps this conversation (a one-off question, the API, a benchmark).
    NotKept,
    /// In the store: it survives a crash.
    Kept,
    /// The store refused it (a full disk, say): the conversation goes on from
    /// the last saved exchange, as a restart would.
    Failed(StoreError),
}

/// A finished turn.
#[derive(Debug)]
pub struct Outcome {
    /// The reply as the model wrote it, tags and all (what the history keeps,
    /// so the next prompt matches the cache).
    pub text: String,
    /// The reply as the person read it (what the store keeps).
    pub shown: String,
    /// The generation's measurements.
    pub stats: GenerationStats,
    /// The reply's emotion over the whole turn.
    pub feeling: TurnEmotion,
    /// Earlier messages, out of the context window, recalled into the prompt.
    pub recalled_messages: usize,
    /// Whether the exchange was saved.
    pub saved: Saved,
}

/// Why a turn failed.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The engine refused or failed (a message too long for the context, say).
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The store could not recall earlier turns.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another turn panicked while holding the conversation.
    #[error("the conversation is unavailable")]
    Unavailable,
}

impl crate::error::Classify for TurnError {
    /// The class of the engine's or the store's error.
    fn class(&self) -> crate::error::Class {
        match self {
            Self::Llm(error) => crate::error::Classify::class(error),
            Self::Store(error) => crate::error::Classify::class(error),
            Self::Unavailable => crate::error::Class::Failure,
        }
    }
}

/// One turn's engine, avatar, reply shape and cut switch.
#[derive(Debug, Clone)]
pub struct Turn<'a> {
    /// The model that answers.
    pub engine: &'a Engine,
    /// Where Kira's face is shown, if anywhere.
    pub avatar: Option<&'a AvatarBridge>,
    /// How the reply is shaped.
    pub options: &'a ReplyOptions,
    /// Stops the reply between two tokens (or before it starts) when fired.
    pub cancel: CancelToken,
}

impl Turn<'_> {
    /// The person's message `user` in `chat`: fitted, recalled, answered,
    /// read and saved. The exchange joins the conversation if it was saved,
    /// or if nothing keeps the conversation.
    pub fn chat(&self, chat: &Mutex<Chat>, user: &str, sink: &mut dyn Sink) -> Result<Outcome, TurnError> {
        let sent_at_ms = crate::store::now_ms();
        // A copy: fitting counts tokens, which waits on the engine, and the
        // conversation must not stay locked that long.
        let conversation = lock(chat)?.conversation.clone();
        let recollect = |in_window| match &lock(chat)?.history {
            Some(history) => Ok(history.recollect(user, in_window)?),
            None => Ok(Vec::new()),
        };
        let (messages, recalled_messages) =
            prompt(self.engine, &conversation, user, self.options.max_tokens, recollect)?;
        let mut outcome = self.reply(messages, sink)?;
        outcome.recalled_messages = recalled_messages;
        let kept = lock(chat)?.history.is_some();
        let exchange = if kept {
            // Counted before the lock is taken again: counting waits on the engine.
            let count = |text: &str| self.engine.count_tokens(Prompt::Text(text.to_owned()));
            Some(Exchange::count(user, sent_at_ms, &outcome.shown, outcome.feeling, count)?)
        } else {
            None
        };
        let mut chat = lock(chat)?;
        outcome.saved = match (exchange, chat.history.as_mut()) {
            (Some(exchange), Some(history)) => match history.save(&exchange) {
                Ok(()) => Saved::Kept,
                Err(error) => Saved::Failed(error),
            },
            _ => Saved::NotKept,
        };
        if !matches!(outcome.saved, Saved::Failed(_)) {
            chat.conversation.push_exchange(user, &outcome.text);
        }
        Ok(outcome)
    }

    /// A reply to `messages` as they are: generated, its tags taken out, its
    /// emotion read and shown. Nothing is saved.
    pub fn reply(&self, messages: Vec<Message>, sink: &mut dyn Sink) -> Result<Outcome, TurnError> {
        let request = GenerationRequest {
            prompt: Prompt::Messages(messages),
            sampling: self.options.sampling.clone(),
            max_tokens: self.options.max_tokens,
            stop: self.options.stop.clone(),
            ignore_eos: false,
        };
        let mut generation = self.engine.generate_until(request, self.cancel.clone())?;
        sink.started();
        let _performing = Performing::start(self.avatar);
        let mut analyzer = Analyzer::new();
        let mut text = String::new();
        let mut shown = String::new();
        let mut show = |update: Update, shown: &mut String| {
            if !update.text.is_empty() {
                shown.push_str(&update.text);
                if !sink.text(&update.text) {
                    self.cancel.cancel();
                }
            }
            if let Some(face) = update.face {
                if let Some(avatar) = self.avatar {
                    avatar.emotion(face.emotion, face.intensity);
                }
                sink.face(face);
            }
        };
        let stats = loop {
            match generation.blocking_next() {
                Some(GenerationEvent::Text(piece)) => {
                    text.push_str(&piece);
                    show(analyzer.push(&piece), &mut shown);
                }
                Some(GenerationEvent::Done(stats)) => break stats,
                Some(GenerationEvent::Failed(error)) => return Err(error.into()),
                None => return Err(LlmError::Stopped.into()),
            }
        };
        let (rest, feeling) = analyzer.finish();
        show(rest, &mut shown);
        Ok(Outcome { text, shown, stats, feeling, recalled_messages: 0, saved: Saved::NotKept })
    }
}

/// Kira is replying: the avatar hears of the reply's start, and of its end
/// once however the reply ends (finished, failed, or cut short).
struct Performing<'a>(Option<&'a AvatarBridge>);

impl<'a> Performing<'a> {
    fn start(avatar: Option<&'a AvatarBridge>) -> Self {
        if let Some(avatar) = avatar {
            avatar.reply_started();
        }
        Self(avatar)
    }
}

impl Drop for Performing<'_> {
    fn drop(&mut self) {
        if let Some(avatar) = self.0 {
            avatar.reply_finished();
        }
    }
}

fn lock(chat: &Mutex<Chat>) -> Result<MutexGuard<'_, Chat>, TurnError> {
    chat.lock().map_err(|_| TurnError::Unavailable)
}

/// The messages for answering `user` in `conversation` with `engine`, leaving
/// room for a `max_tokens` reply, and how many earlier messages recall brought
/// back into them. `recollect` is asked for the messages relevant to `user`
/// past the `in_window` newest ones (see [`History::recollect`]); a chat
/// without history passes one that finds nothing.
pub fn prompt(
    engine: &Engine,
    conversation: &Conversation,
    user: &str,
    max_tokens: u32,
    recollect: impl FnOnce(usize) -> Result<Vec<Recollection>, TurnError>,
) -> Result<(Vec<Message>, usize), TurnError> {
    let context_size = engine.info().context_size as usize;
    let reserve = (max_tokens as usize).min(context_size / 2);
    let count = |messages: &[Message]| engine.count_tokens(Prompt::Messages(messages.to_vec()));
    let messages = conversation.prompt_for(user, context_size, reserve, count)?;
    // Everything but the persona and the new message is history in the window.
    let recollections = recollect(messages.len() - 2)?;
    let count_text = |text: &str| engine.count_tokens(Prompt::Text(text.to_owned()));
    let Some(note) = note(&recollections, RECALL_MAX_TOKENS, count_text)? else {
        return Ok((messages, 0));
    };
    match conversation.prompt_recalling(user, Some(&note.text), context_size, reserve, count) {
        Ok(recalling) => Ok((recalling, note.messages)),
        // The note is a bonus: a message that only fits without it goes without it.
        Err(LlmError::PromptTooLong { .. }) => Ok((messages, 0)),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_error_has_the_class_of_its_cause() {
        use crate::error::{Class, Classify, Error};
        assert_eq!(TurnError::Llm(LlmError::EmptyPrompt).class(), Class::BadInput);
        assert_eq!(TurnError::Unavailable.class(), Class::Failure);
        let error = Error::from(TurnError::Llm(LlmError::EmptyPrompt));
        assert_eq!(error.class(), Class::BadInput);
        assert_eq!(error.to_string(), TurnError::Llm(LlmError::EmptyPrompt).to_string());
    }

    #[test]
    fn starting_over_without_a_store_empties_the_history() {
        let mut conversation = Conversation::new(crate::chat::Persona::default());
        conversation.push_exchange("Hi", "Hello!");
        let mut chat = Chat::new(conversation, None);
        chat.start_new().unwrap();
        assert!(chat.conversation().turns().is_empty());
    }
}
