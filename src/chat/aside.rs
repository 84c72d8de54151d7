//! Work a conversation does aside, after a turn, while the person reads and
//! types: the chat model looks for a fact the rules missed in the person's
//! message ([`crate::memory::extract::found_by_model`]), and writes the
//! recap of the turns that left the context window
//! ([`crate::memory::recap`]).
//!
//! An [`Aside`] owns one thread. The engine runs its generations aside
//! (they leave the conversation's KV cache as they found it); the thread
//! keeps what they give in the store, if what it came from is still there
//! as it was (a forgotten sentence keeps nothing), and after a new recap has
//! the engine evaluate the next turn's opening with it, so the next turn
//! prefills only its message. The engine does all this only while nothing
//! else waits, and the person's next message stops it at once
//! ([`Aside::stop`]): a recap stopped is written again after that turn,
//! with more in it.

use super::Conversation;
use super::history::{Exchange, History, RecapDue};
use super::turn::reserve;
use crate::llm::embed::Embedder;
use crate::llm::{CancelToken, Engine, FinishReason, Generation, GenerationRequest, Message, Prompt, SamplingParams};
use crate::memory::{extract, recap, vectors};
use crate::store::recaps::{Recap, Unrecapped};
use crate::store::{ConversationRef, Store};
use std::path::PathBuf;
use std::thread::JoinHandle;

/// Most tokens of the model's answer when it looks for a fact: the words
/// of one clause.
const FACT_MAX_TOKENS: u32 = 48;

/// The work done aside after one turn, and the thread that keeps it.
#[derive(Debug)]
pub struct Aside {
    cancel: CancelToken,
    thread: Option<JoinHandle<()>>,
}

/// What the thread needs, moved into it.
struct Job {
    learning: Option<Learning>,
    recapping: Option<Recapping>,
    /// Where to keep what it finds.
    database: PathBuf,
    conversation: ConversationRef,
    engine: Engine,
    cancel: CancelToken,
}

/// The model looking for a fact in the person's message.
struct Learning {
    generation: Generation,
    said: String,
    said_at_ms: i64,
    embedder: Option<Embedder>,
}

/// The model writing the recap.
struct Recapping {
    generation: Generation,
    /// The recap it extends and the messages it sums up.
    previous: Option<Recap>,
    folded: Vec<Unrecapped>,
    /// The conversation as the next turn will find it, but for the recap.
    next: Conversation,
    max_tokens: u32,
}

impl Aside {
    /// Starts the work due after `exchange` of `conversation` (kept in
    /// `history`) with `engine`: with memory on, the model looks for a fact
    /// in the person's message where the rules find none, and writes the recap when enough turns have left the window
    /// (its `in_window` newest messages; replies take up to `max_tokens`).
    /// `None` when nothing is due. A failure costs only that work, so it is
    /// logged.
    pub fn start(
        engine: &Engine,
        history: &History,
        conversation: &Conversation,
        exchange: &Exchange,
        in_window: usize,
        max_tokens: u32,
    ) -> Option<Self> {
        if !history.remembers() {
            return None;
        }
        let cancel = CancelToken::new();
        // Each generation has its own switch (it fires when the generation is
        // dropped, done or not), under the one that stops the whole job.
        let aside = |messages: Vec<Message>, max_tokens: u32| {
            let request = GenerationRequest {
                prompt: Prompt::Messages(messages),
                sampling: SamplingParams::greedy(),
                max_tokens,
                stop: Vec::new(),
                ignore_eos: false,
                grammar: None,
            };
            engine
                .generate_aside(request, cancel.child())
                .inspect_err(|error| tracing::warn!("cannot start work aside: {error}"))
                .ok()
        };
        let (said, at_ms) = (exchange.user(), exchange.sent_at_ms());
        let learning = (extract::facts(said, at_ms).is_empty() && extract::worth_asking(said))
            .then(|| aside(extract::model_request(said), FACT_MAX_TOKENS))
            .flatten()
            .map(|generation| Learning {
                generation,
                said: said.to_owned(),
                said_at_ms: at_ms,
                embedder: history.embedder().cloned(),
            });
        let due = history
            .recap_due(in_window)
            .inspect_err(|error| tracing::warn!("cannot read what the recap would fold in: {error}"))
            .ok()
            .flatten();
        let recapping = due.and_then(|RecapDue { previous, waiting }| {
            let folded = recap::batch(&waiting).to_vec();
            let french = conversation.language() == Some(super::Language::French);
            let generation = aside(recap::request(&conversation.persona().name, french, &folded)?, recap::MAX_TOKENS)?;
            Some(Recapping { generation, previous, folded, next: conversation.clone(), max_tokens })
        });
        if learning.is_none() && recapping.is_none() {
            return None;
        }
        let (database, conversation) = history.target();
        let job = Job { learning, recapping, database, conversation, engine: engine.clone(), cancel: cancel.clone() };
        match std::thread::Builder::new().name("workly-aside".into()).spawn(move || job.run()) {
            Ok(thread) => Some(Self { cancel, thread: Some(thread) }),
            Err(error) => {
                tracing::warn!("cannot start the thread for work aside: {error}");
                None
            }
        }
    }

    /// Waits until the work is done and kept (or failed): the time a person
    /// takes to read and type, given whole.
    pub fn wait(mut self) {
        self.join();
    }

    /// Stops the work where it is, for a turn that cannot wait: the engine
    /// drops it within one small batch.
    pub fn stop(self) {}

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            // A panic there has been reported by the hook; only that work is lost.
            let _ = thread.join();
        }
    }
}

impl Drop for Aside {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.join();
    }
}

impl Job {
    fn run(self) {
        let Self { learning, recapping, database, conversation, engine, cancel } = self;
        let store = || Store::open(&database);
        if let Some(learning) = learning
            && let Err(error) = learning.keep(store, &conversation)
        {
            tracing::warn!("what the model found was not kept: {error}");
        }
        if let Some(recapping) = recapping
            && let Err(error) = recapping.keep(store, &conversation, &engine, cancel)
        {
            tracing::warn!("the recap was not kept: {error}");
        }
    }
}

/// The generation's text, if it ended on its own (`true` when it stopped
/// before its limit).
fn finished(generation: Generation) -> crate::error::Result<Option<(String, bool)>> {
    let (text, stats) = generation.collect_blocking()?;
    Ok(match stats.finish_reason {
        FinishReason::Stop => Some((text, true)),
        FinishReason::Length => Some((text, false)),
        FinishReason::Cancelled => None,
    })
}

impl Learning {
    fn keep(
        self,
        store: impl Fn() -> Result<Store, crate::store::StoreError>,
        conversation: &ConversationRef,
    ) -> crate::error::Result<()> {
        let Some((answer, _)) = finished(self.generation)? else { return Ok(()) };
        let Some(fact) = extract::found_by_model(&self.said, &answer, self.said_at_ms) else { return Ok(()) };
        let mut found = [fact];
        vectors::give(self.embedder.as_ref(), &mut found);
        store()?.remember_in_newest(conversation, &self.said, &found)?;
        Ok(())
    }
}

impl Recapping {
    fn keep(
        mut self,
        store: impl Fn() -> Result<Store, crate::store::StoreError>,
        conversation: &ConversationRef,
        engine: &Engine,
        cancel: CancelToken,
    ) -> crate::error::Result<()> {
        let Some((text, whole)) = finished(self.generation)? else { return Ok(()) };
        let (Some(part), Some(last)) = (recap::cleaned(&text, whole), self.folded.last()) else { return Ok(()) };
        let content = recap::extended(self.previous.as_ref().map(|recap| recap.content.as_str()), &part);
        let recap = Recap { content: content.clone(), through: last.id };
        if cancel.is_cancelled() || !store()?.set_recap(conversation, self.previous.as_ref(), &self.folded, &recap)? {
            return Ok(());
        }
        // The next turn opens on the new recap: evaluate that opening now.
        let mut standing = self.next.standing().clone();
        standing.recap = Some(content);
        self.next.set_standing(standing);
        let context_size = engine.info().context_size as usize;
        let count = |messages: &[Message]| engine.count_tokens(Prompt::Messages(messages.to_vec()));
        let mut opening = self.next.prompt_for("", context_size, reserve(context_size, self.max_tokens), count)?;
        // What comes before the next message.
        opening.pop();
        engine.prepare(opening, cancel)?;
        Ok(())
    }
}
