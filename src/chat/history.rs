//! A conversation's stored history: the link between a [`Conversation`] and
//! the durable [`Store`].
//!
//! [`History`] resumes a stored conversation (its newest turns, as many as a
//! context can hold), saves each completed exchange, and recalls: when the
//! person's new message shares telling words with turns that have left the
//! context window, a few short pieces of them come back as a note, "Things you
//! remember", placed with the new message ([`with_note`]). The note is bounded
//! in tokens and in pieces, so it costs little prefill and never crowds out
//! the recent turns. With memory on (the default), each saved exchange keeps
//! the facts the person told ([`crate::memory`]) and the note opens with the
//! ones the new message touches, "Things you know about me". What stands
//! before every turn ([`History::standing`]: the person's name, the
//! conversation's recap) goes in the opening instead, where it stays cached.

use super::{Conversation, Standing};
use crate::emotion::smoothing::TurnEmotion;
use crate::llm::embed::Embedder;
use crate::llm::{LlmError, Message, Role};
use crate::memory::dates::Day;
use crate::memory::vectors::{self, Index};
use crate::memory::{extract, recall, recap};
use crate::store::memories::{MemoryKind, StoredMemory};
use crate::store::recaps::{Recap, Unrecapped};

use crate::store::{ConversationRef, NewMessage, Recollection, Store, StoreError, StoredMessage};
use std::cell::RefCell;

/// Most earlier messages recalled for one turn.
pub const RECALL_MAX_MESSAGES: usize = 3;

/// Most tokens the recall note's quotes may take.
pub const RECALL_MAX_TOKENS: usize = 96;

/// Most tokens the recall note's memories may take (besides the quotes').
pub const MEMORY_MAX_TOKENS: usize = 96;

/// What opens the recall note's quotes.
const NOTE_HEADING: &str = "Things you remember from earlier in our conversation:";

/// What opens the recall note's memories.
const MEMORY_HEADING: &str = "Things you know about me:";

/// A recall note and what it brings back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The note's text.
    pub text: String,
    /// Messages it quotes.
    pub messages: usize,
    /// Memories it recalls.
    pub memories: usize,
}

/// What a turn may recall: memories of the person, and pieces of the
/// conversation that left the context window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recalled {
    /// Memories relevant to the new message, best first.
    pub memories: Vec<StoredMemory>,
    /// Earlier messages relevant to it, best first.
    pub quotes: Vec<Recollection>,
}

/// What a new recap is due to fold in: see [`History::recap_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecapDue {
    /// The recap the conversation has, if any.
    pub previous: Option<Recap>,
    /// The messages past it that left the window, oldest first.
    pub waiting: Vec<Unrecapped>,
}

/// One stored conversation, open for resuming, saving and recall.
#[derive(Debug)]
pub struct History {
    store: Store,
    conversation: ConversationRef,
    /// Whether opening it started it.
    started: bool,
    /// Whether exchanges teach memories and turns recall them.
    memory: bool,
    /// The embedding model, for recall by meaning (none: by words alone).
    embedder: Option<Embedder>,
    /// The memories' embeddings, kept in step with the store as turns recall.
    index: RefCell<Index>,
}

impl History {
    /// Opens `name` in `store` (starting it if new), or without a name the most
    /// recently used conversation, or a fresh one when there is none.
    pub fn open(mut store: Store, name: Option<&str>) -> Result<Self, StoreError> {
        let (conversation, started) = match name {
            Some(name) => match store.find(name)? {
                Some(found) => (found, false),
                None => (store.open_conversation(name)?, true),
            },
            None => match store.latest_conversation()? {
                Some(latest) => (latest, false),
                None => (store.new_conversation()?, true),
            },
        };
        Ok(Self { store, conversation, started, memory: true, embedder: None, index: RefCell::default() })
    }

    /// Turns long-term memory on or off for this conversation: off, nothing
    /// is learnt from its exchanges and nothing is recalled into its turns
    /// (what is already kept stays kept).
    pub fn set_memory(&mut self, on: bool) {
        self.memory = on;
    }

    /// Whether memory is on for this conversation.
    pub fn remembers(&self) -> bool {
        self.memory
    }

    /// Recalls memories by meaning too, with `embedder`: memories kept
    /// without an embedding (while the model was missing) get theirs now,
    /// and every embedding is loaded for the turns to search.
    /// `waiting` is told how many memories wait for theirs first, when any
    /// do: all of them once after an upgrade that changed how memories are
    /// embedded.
    pub fn set_embedder(&mut self, embedder: Embedder, waiting: impl FnOnce(usize)) -> Result<(), crate::error::Error> {
        let missing = self.store.memories_without_vectors()?;
        if !missing.is_empty() {
            waiting(missing.len());
        }
        for chunk in missing.chunks(64) {
            let texts: Vec<&str> = chunk.iter().map(|(_, content)| content.as_str()).collect();
            for ((id, _), vector) in chunk.iter().zip(vectors::of_memories(&embedder, &texts)?) {
                self.store.set_memory_vector(*id, &vector)?;
            }
        }
        let index = self.index.get_mut();
        index.set_background(&embedder.embed(vectors::BACKGROUND)?);
        index.refresh(&self.store)?;
        self.embedder = Some(embedder);
        Ok(())
    }

    /// For a start that failed (a model that does not load, say): removes the
    /// conversation if opening it started it and nothing was said in it, so
    /// a failed start leaves no empty conversation behind.
    pub fn abandon(&mut self) {
        if std::mem::take(&mut self.started)
            && let Err(error) = self.store.delete_if_empty(&self.conversation)
        {
            tracing::warn!("cannot remove the unused conversation `{}`: {error}", self.conversation.name);
        }
    }

    /// The conversation's name.
    pub fn name(&self) -> &str {
        &self.conversation.name
    }

    /// Loads the newest stored turns whose tokens add up to at most
    /// `max_tokens` (more could never fit the context) into `conversation`,
    /// and what Kira knows before them ([`History::standing`]); returns how
    /// many messages it loaded.
    pub fn resume(&self, conversation: &mut Conversation, max_tokens: usize) -> Result<usize, StoreError> {
        conversation.set_standing(self.standing()?);
        let messages = self.recent(max_tokens)?;
        for pair in messages.chunks_exact(2) {
            conversation.push_exchange(&pair[0].content, &pair[1].content);
        }
        Ok(messages.len() / 2 * 2)
    }

    /// The newest stored messages whose tokens add up to at most
    /// `max_tokens`, oldest first, starting with the person's.
    pub fn recent(&self, max_tokens: usize) -> Result<Vec<StoredMessage>, StoreError> {
        self.store.recent_messages(&self.conversation, max_tokens)
    }

    /// Saves a completed exchange, with the memories found in the person's
    /// message (in the same transaction); once this returns, it survives a
    /// crash or a power cut. Returns how many memories are new.
    pub fn save(&mut self, exchange: &Exchange) -> Result<usize, StoreError> {
        let user =
            NewMessage { created_at_ms: exchange.sent_at_ms, ..NewMessage::new(&exchange.user, exchange.user_tokens) };
        // The store keeps what the person read, with the emotion it showed.
        let reply = NewMessage {
            emotion: Some(exchange.feeling.emotion),
            intensity: Some(exchange.feeling.intensity),
            ..NewMessage::new(&exchange.reply, exchange.reply_tokens)
        };
        // Rules take microseconds: finding facts here costs the turn nothing
        // it would notice, and keeps them in the exchange's one transaction.
        let mut facts = if self.memory { extract::facts(&exchange.user, exchange.sent_at_ms) } else { Vec::new() };
        vectors::give(self.embedder.as_ref(), &mut facts);
        self.store.append_exchange_remembering(&self.conversation, &user, &reply, &facts)
    }

    /// Kira's last reply becomes `content`, of `token_count` tokens (see
    /// [`crate::chat::turn::Chat::interrupted`]); false when there is none.
    pub fn replace_last_reply(&mut self, content: &str, token_count: usize) -> Result<bool, StoreError> {
        self.store.replace_last_reply(&self.conversation, content, token_count)
    }

    /// Leaves this conversation for a new, empty one (the old one stays stored).
    pub fn start_new(&mut self) -> Result<(), StoreError> {
        self.conversation = self.store.new_conversation()?;
        self.started = true;
        Ok(())
    }

    /// What Kira knows before this conversation's turns: the person's name
    /// and the conversation's recap (nothing with memory off).
    pub fn standing(&self) -> Result<Standing, StoreError> {
        if !self.memory {
            return Ok(Standing::default());
        }
        let name = self.store.memories_of(MemoryKind::Name)?.into_iter().next().map(|memory| memory.content);
        let recap = self.store.recap(&self.conversation)?.map(|recap| recap.content);
        Ok(Standing { name, recap })
    }

    /// What is due to be folded into the conversation's recap, now that the
    /// model sees only its `in_window` newest messages: the recap it has and
    /// the messages past it that left the window, when there are at least
    /// [`recap::FOLD_AFTER`] (nothing with memory off).
    pub fn recap_due(&self, in_window: usize) -> Result<Option<RecapDue>, StoreError> {
        if !self.memory {
            return Ok(None);
        }
        let waiting =
            self.store.unrecapped(&self.conversation, in_window, recap::FOLD_AFTER.max(recap::MAX_MESSAGES))?;
        if waiting.len() < recap::FOLD_AFTER {
            return Ok(None);
        }
        Ok(Some(RecapDue { previous: self.store.recap(&self.conversation)?, waiting }))
    }

    /// Where this conversation is kept: the database's file (work done
    /// aside keeps what it finds from its own thread, on its own
    /// connection) and the conversation.
    pub fn target(&self) -> (std::path::PathBuf, ConversationRef) {
        (self.store.path().to_path_buf(), self.conversation.clone())
    }

    /// The embedding model, if recall has one.
    pub fn embedder(&self) -> Option<&Embedder> {
        self.embedder.as_ref()
    }

    /// Every memory kept, the most recently said first.
    pub fn memories(&self) -> Result<Vec<StoredMemory>, StoreError> {
        self.store.memories()
    }

    /// Rewrites memory `id` as `content`, with the embedding of its new
    /// words when the embedding model is there.
    pub fn edit_memory(&mut self, id: i64, content: &str) -> Result<(), StoreError> {
        let vector = self.embedder.as_ref().and_then(|embedder| match vectors::of_memories(embedder, &[content]) {
            Ok(mut vectors) => vectors.pop(),
            Err(error) => {
                tracing::warn!("cannot embed the edited memory: {error}");
                None
            }
        });
        self.store.edit_memory(id, content, vector.as_deref())?;
        self.index.get_mut().invalidate();
        Ok(())
    }

    /// Forgets memory `id` for good (see [`Store::forget_memories`]).
    pub fn forget_memory(&mut self, id: i64) -> Result<(), StoreError> {
        self.store.forget_memories(&[id]).map(|_| ())
    }

    /// What to recall for `user`, whose previous message was `before`: the
    /// memories relevant to it (see [`recall::relevant`]) when memory is on,
    /// and earlier messages relevant to it, leaving out the newest
    /// `in_window` (the model sees those anyway), at most
    /// [`RECALL_MAX_MESSAGES`]. Only the store and the embedding model are
    /// asked (a few milliseconds; never the chat engine, which may be busy),
    /// so a caller may hold a lock around this and count tokens after
    /// letting it go.
    pub fn recollect(&self, user: &str, before: Option<&str>, in_window: usize) -> Result<Recalled, StoreError> {
        let memories =
            if self.memory { recall::relevant(&self.store, user, before, &self.nearest(user)?)? } else { Vec::new() };
        let quotes = self.store.recall(&self.conversation, user, in_window, RECALL_MAX_MESSAGES)?;
        Ok(Recalled { memories, quotes })
    }

    /// The memories nearest `user` in meaning that stand out, or are the
    /// nearest few when it asks about the person, nearest first: none
    /// without an embedding model, or when it fails (recall by words goes on).
    fn nearest(&self, user: &str) -> Result<Vec<i64>, StoreError> {
        let Some(embedder) = &self.embedder else { return Ok(Vec::new()) };
        let mut index = self.index.borrow_mut();
        index.refresh(&self.store)?;
        if index.is_empty() {
            return Ok(Vec::new());
        }
        match embedder.embed(&[user]) {
            Ok(query) => Ok(index
                .nearest(&query[0], recall::CANDIDATES, recall::nearest_kept(user), recall::MIN_SPREAD)
                .into_iter()
                .map(|(id, _)| id)
                .collect()),
            Err(error) => {
                tracing::warn!("cannot embed the message to recall by meaning: {error}");
                Ok(Vec::new())
            }
        }
    }
}

/// A finished exchange, ready to save. Its tokens are counted up front
/// (counting waits on the engine, which may be busy with another reply), so
/// saving it holds nothing but the store.
#[derive(Debug, Clone)]
pub struct Exchange {
    user: String,
    user_tokens: usize,
    sent_at_ms: i64,
    reply: String,
    reply_tokens: usize,
    feeling: TurnEmotion,
}

impl Exchange {
    /// The person's message.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// When the person sent it (Unix milliseconds).
    pub fn sent_at_ms(&self) -> i64 {
        self.sent_at_ms
    }

    /// The person's `user` message, sent at `sent_at_ms`, and the `reply` they
    /// read with the emotion it showed; tokens counted by `count`.
    pub fn count(
        user: &str,
        sent_at_ms: i64,
        reply: &str,
        feeling: TurnEmotion,
        count: impl Fn(&str) -> Result<usize, LlmError>,
    ) -> Result<Self, LlmError> {
        Ok(Self {
            user: user.to_owned(),
            user_tokens: count(user)?,
            sent_at_ms,
            reply: reply.to_owned(),
            reply_tokens: count(reply)?,
            feeling,
        })
    }
}

/// The recall note for `recalled` on `today`: as many memories as fit in
/// [`MEMORY_MAX_TOKENS`], then as many quotes as fit in `max_tokens` more,
/// best first; `None` when nothing fits.
pub fn note(
    recalled: &Recalled,
    today: Day,
    max_tokens: usize,
    count: impl Fn(&str) -> Result<usize, LlmError>,
) -> Result<Option<Note>, LlmError> {
    let mut text = String::new();
    let mut memories = 0;
    // The model knows no date: an event's day means something beside today's.
    let dated = recalled.memories.iter().any(|memory| memory.event_date.is_some());
    let mut section =
        format!("{MEMORY_HEADING}{}", if dated { format!(" (today is {})", today.spelled()) } else { String::new() });
    for memory in &recalled.memories {
        let candidate = format!("{section}\n- {}", recall::line(memory));
        if count(&candidate)? > MEMORY_MAX_TOKENS {
            break;
        }
        section = candidate;
        memories += 1;
    }
    if memories > 0 {
        text = section;
    }
    let mut section = NOTE_HEADING.to_owned();
    let mut messages = 0;
    for recollection in &recalled.quotes {
        // The note opens the person's message, so it speaks in their voice.
        let who = if recollection.role == Role::User { "I said" } else { "You said" };
        let candidate = format!("{section}\n- {who}: \"{}\"", recollection.snippet);
        if count(&candidate)? > max_tokens {
            break;
        }
        section = candidate;
        messages += 1;
    }
    if messages > 0 {
        text = if text.is_empty() { section } else { format!("{text}\n{section}") };
    }
    Ok((!text.is_empty()).then_some(Note { text, messages, memories }))
}

/// The newest message with a recall note opening it, in parentheses.
///
/// Placement was measured over a 14-turn session with a 512-token context
/// (SmolLM2-135M, `chat --json`, recall on the last 5 turns): the note at the
/// end of the system message made those turns reuse about 85 cached tokens of
/// 450, since every turn after the changed persona is evaluated again; the note
/// late in the prompt kept about 340 of 420 cached, the same as a separate
/// system message before the new one. It goes inside the user's message rather
/// than in a system message of its own because many chat templates (Gemma's,
/// Mistral's) refuse a system message after the first.
pub fn with_note(note: &str, user: &str) -> Message {
    Message::user(format!("({note})\n\n{user}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recollection(role: Role, snippet: &str) -> Recollection {
        Recollection { role, snippet: snippet.to_owned() }
    }

    fn words(text: &str) -> Result<usize, LlmError> {
        Ok(text.split_whitespace().count())
    }

    fn today() -> Day {
        Day::from_civil(2026, 12, 5).unwrap()
    }

    fn quotes(quotes: Vec<Recollection>) -> Recalled {
        Recalled { memories: Vec::new(), quotes }
    }

    #[test]
    fn note_quotes_who_said_what_within_the_budget() {
        let recollections = vec![
            recollection(Role::User, "My cat is called Miso."),
            recollection(Role::Assistant, "Miso is a lovely name"),
            recollection(Role::User, "one two three four five six seven eight"),
        ];
        let heading_words = NOTE_HEADING.split_whitespace().count();
        let note = note(&quotes(recollections.clone()), today(), heading_words + 16, words).unwrap().unwrap();
        assert_eq!((note.messages, note.memories), (2, 0));
        assert_eq!(
            note.text,
            format!("{NOTE_HEADING}\n- I said: \"My cat is called Miso.\"\n- You said: \"Miso is a lovely name\"")
        );
        assert_eq!(super::note(&quotes(recollections), today(), heading_words + 3, words).unwrap(), None);
        assert_eq!(super::note(&Recalled::default(), today(), 1000, words).unwrap(), None);
    }

    fn memory(content: &str, event_date: Option<&str>) -> StoredMemory {
        StoredMemory {
            id: 1,
            kind: crate::store::memories::MemoryKind::Fact,
            content: content.to_owned(),
            event_date: event_date.map(str::to_owned),
            conversation: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn memories_open_the_note_with_their_days_and_today() {
        let recalled = Recalled {
            memories: vec![memory("My name is Sam.", None), memory("I have an exam tomorrow", Some("2026-12-04"))],
            quotes: vec![recollection(Role::User, "I revised all night")],
        };
        let note = note(&recalled, today(), 1000, words).unwrap().unwrap();
        assert_eq!((note.memories, note.messages), (2, 1));
        assert_eq!(
            note.text,
            format!(
                "{MEMORY_HEADING} (today is Saturday 5 December 2026)\n- My name is Sam.\n\
                 - I have an exam tomorrow (on Friday 4 December 2026)\n{NOTE_HEADING}\n- I said: \"I revised all night\""
            )
        );
        let undated = Recalled { memories: vec![memory("My name is Sam.", None)], quotes: Vec::new() };
        let note = super::note(&undated, today(), 1000, words).unwrap().unwrap();
        assert_eq!(note.text, format!("{MEMORY_HEADING}\n- My name is Sam."));
    }
}
