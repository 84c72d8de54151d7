//! Work a conversation does aside, while the person reads and types: its
//! recap (see [`crate::memory::recap`]).
//!
//! A [`Recapping`] owns one thread. The thread waits for the recap the
//! engine writes aside, keeps it in the store (if what it was written from
//! is still there as it was), then has the engine evaluate the next turn's
//! opening with the new recap in it, so the next turn prefills only its
//! message. The engine does both only while nothing else waits, and the
//! person's next message stops either at once ([`Recapping::stop`]): a
//! recap stopped is written again after that turn, with more in it.

use super::Conversation;
use super::history::History;
use super::turn::reserve;
use crate::llm::{CancelToken, Engine, FinishReason, Generation, GenerationRequest, Message, Prompt, SamplingParams};
use crate::memory::recap;
use crate::store::recaps::{Recap, Unrecapped};
use crate::store::{ConversationRef, Store};
use std::path::PathBuf;
use std::thread::JoinHandle;

/// A recap being written aside, and the thread that keeps it.
#[derive(Debug)]
pub struct Recapping {
    cancel: CancelToken,
    thread: Option<JoinHandle<()>>,
}

/// What the thread needs, moved into it.
struct Job {
    generation: Generation,
    /// The recap it extends and the messages it sums up.
    previous: Option<Recap>,
    folded: Vec<Unrecapped>,
    /// Where to keep it.
    database: PathBuf,
    conversation: ConversationRef,
    /// The conversation as the next turn will find it, but for the recap.
    next: Conversation,
    engine: Engine,
    max_tokens: u32,
    cancel: CancelToken,
}

impl Recapping {
    /// Starts writing `history`'s recap aside with `engine`, if enough turns
    /// have left the window (which holds its `in_window` newest messages)
    /// of `conversation`, whose replies take up to `max_tokens`. A failure
    /// costs only the recap, so it is logged.
    pub fn start(
        engine: &Engine,
        history: &History,
        conversation: &Conversation,
        in_window: usize,
        max_tokens: u32,
    ) -> Option<Self> {
        let (previous, waiting) = match history.recap_due(in_window) {
            Ok(due) => due?,
            Err(error) => {
                tracing::warn!("cannot read what the recap would fold in: {error}");
                return None;
            }
        };
        let folded = recap::batch(&waiting).to_vec();
        let french = conversation.language() == Some(super::Language::French);
        let messages = recap::request(&conversation.persona().name, french, &folded)?;
        let request = GenerationRequest {
            prompt: Prompt::Messages(messages),
            sampling: SamplingParams::greedy(),
            max_tokens: recap::MAX_TOKENS,
            stop: Vec::new(),
            ignore_eos: false,
        };
        let cancel = CancelToken::new();
        // The generation's own switch (it fires when the generation is
        // dropped, done or not), under the one that stops the whole job.
        let generation = match engine.generate_aside(request, cancel.child()) {
            Ok(generation) => generation,
            Err(error) => {
                tracing::warn!("cannot start the recap: {error}");
                return None;
            }
        };
        let (database, conversation_ref) = history.recap_target();
        let job = Job {
            generation,
            previous,
            folded,
            database,
            conversation: conversation_ref,
            next: conversation.clone(),
            engine: engine.clone(),
            max_tokens,
            cancel: cancel.clone(),
        };
        match std::thread::Builder::new().name("workly-recap".into()).spawn(move || job.run()) {
            Ok(thread) => Some(Self { cancel, thread: Some(thread) }),
            Err(error) => {
                tracing::warn!("cannot start the recap's thread: {error}");
                None
            }
        }
    }

    /// Waits until the recap is kept and the next turn's opening evaluated
    /// (or either failed): the time a person takes to read and type, given
    /// whole.
    pub fn wait(mut self) {
        self.join();
    }

    /// Stops the recap where it is, for a turn that cannot wait: the engine
    /// drops it within one small batch.
    pub fn stop(self) {}

    fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            // A panic there has been reported by the hook; the recap is lost, nothing else.
            let _ = thread.join();
        }
    }
}

impl Drop for Recapping {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.join();
    }
}

impl Job {
    fn run(self) {
        if let Err(error) = self.keep() {
            tracing::warn!("the recap was not kept: {error}");
        }
    }

    fn keep(mut self) -> crate::error::Result<()> {
        let (text, stats) = self.generation.collect_blocking()?;
        let whole = match stats.finish_reason {
            FinishReason::Stop => true,
            FinishReason::Length => false,
            FinishReason::Cancelled => return Ok(()),
        };
        let (Some(part), Some(last)) = (recap::cleaned(&text, whole), self.folded.last()) else { return Ok(()) };
        let content = recap::extended(self.previous.as_ref().map(|recap| recap.content.as_str()), &part);
        let recap = Recap { content: content.clone(), through: last.id };
        let mut store = Store::open(&self.database)?;
        if self.cancel.is_cancelled()
            || !store.set_recap(&self.conversation, self.previous.as_ref(), &self.folded, &recap)?
        {
            return Ok(());
        }
        // The next turn opens on the new recap: evaluate that opening now.
        let mut standing = self.next.standing().clone();
        standing.recap = Some(content);
        self.next.set_standing(standing);
        let context_size = self.engine.info().context_size as usize;
        let count = |messages: &[Message]| self.engine.count_tokens(Prompt::Messages(messages.to_vec()));
        let mut opening = self.next.prompt_for("", context_size, reserve(context_size, self.max_tokens), count)?;
        // What comes before the next message.
        opening.pop();
        self.engine.prepare(opening, self.cancel)?;
        Ok(())
    }
}
