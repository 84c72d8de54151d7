//! A conversation's stored history: the link between a [`Conversation`] and
//! the durable [`Store`].
//!
//! [`History`] resumes a stored conversation (its newest turns, as many as a
//! context can hold), saves each completed exchange, and recalls: when the
//! person's new message shares telling words with turns that have left the
//! context window, a few short pieces of them come back as a note, "Things you
//! remember", placed with the new message ([`with_note`]). The note is bounded
//! in tokens and in pieces, so it costs little prefill and never crowds out
//! the recent turns.

use super::Conversation;
use crate::emotion::smoothing::TurnEmotion;
use crate::llm::{LlmError, Message, Role};
use crate::store::{ConversationRef, NewMessage, Recollection, Store, StoreError, StoredMessage};

/// Most earlier messages recalled for one turn.
pub const RECALL_MAX_MESSAGES: usize = 3;

/// Most tokens the recall note may take.
pub const RECALL_MAX_TOKENS: usize = 96;

/// What opens the recall note.
const NOTE_HEADING: &str = "Things you remember from earlier in our conversation:";

/// A recall note and how many earlier messages it brings back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The note's text.
    pub text: String,
    /// Messages it quotes.
    pub messages: usize,
}

/// One stored conversation, open for resuming, saving and recall.
#[derive(Debug)]
pub struct History {
    store: Store,
    conversation: ConversationRef,
    /// Whether opening it started it.
    started: bool,
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
        Ok(Self { store, conversation, started })
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
    /// `max_tokens` (more could never fit the context) into `conversation`;
    /// returns how many messages it loaded.
    pub fn resume(&self, conversation: &mut Conversation, max_tokens: usize) -> Result<usize, StoreError> {
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

    /// Saves a completed exchange; once this returns, it survives a crash or a
    /// power cut.
    pub fn save(&mut self, exchange: &Exchange) -> Result<(), StoreError> {
        let user =
            NewMessage { created_at_ms: exchange.sent_at_ms, ..NewMessage::new(&exchange.user, exchange.user_tokens) };
        // The store keeps what the person read, with the emotion it showed.
        let reply = NewMessage {
            emotion: Some(exchange.feeling.emotion),
            intensity: Some(exchange.feeling.intensity),
            ..NewMessage::new(&exchange.reply, exchange.reply_tokens)
        };
        self.store.append_exchange(&self.conversation, &user, &reply)
    }

    /// Leaves this conversation for a new, empty one (the old one stays stored).
    pub fn start_new(&mut self) -> Result<(), StoreError> {
        self.conversation = self.store.new_conversation()?;
        self.started = true;
        Ok(())
    }

    /// Earlier messages relevant to `user`, best first, leaving out the newest
    /// `in_window` (the model sees those anyway): at most
    /// [`RECALL_MAX_MESSAGES`]. Only the store is asked, so a caller may hold
    /// a lock around this and count tokens after letting it go.
    pub fn recollect(&self, user: &str, in_window: usize) -> Result<Vec<Recollection>, StoreError> {
        self.store.recall(&self.conversation, user, in_window, RECALL_MAX_MESSAGES)
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

/// The recall note for `recollections`, best first, keeping as many as fit in
/// `max_tokens`; `None` when none fits.
pub fn note(
    recollections: &[Recollection],
    max_tokens: usize,
    count: impl Fn(&str) -> Result<usize, LlmError>,
) -> Result<Option<Note>, LlmError> {
    let mut text = NOTE_HEADING.to_owned();
    let mut messages = 0;
    for recollection in recollections {
        // The note opens the person's message, so it speaks in their voice.
        let who = if recollection.role == Role::User { "I said" } else { "You said" };
        let candidate = format!("{text}\n- {who}: \"{}\"", recollection.snippet);
        if count(&candidate)? > max_tokens {
            break;
        }
        text = candidate;
        messages += 1;
    }
    Ok((messages > 0).then_some(Note { text, messages }))
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

    #[test]
    fn note_quotes_who_said_what_within_the_budget() {
        let recollections = [
            recollection(Role::User, "My cat is called Miso."),
            recollection(Role::Assistant, "Miso is a lovely name"),
            recollection(Role::User, "one two three four five six seven eight"),
        ];
        let heading_words = NOTE_HEADING.split_whitespace().count();
        let note = note(&recollections, heading_words + 16, words).unwrap().unwrap();
        assert_eq!(note.messages, 2);
        assert_eq!(
            note.text,
            format!("{NOTE_HEADING}\n- I said: \"My cat is called Miso.\"\n- You said: \"Miso is a lovely name\"")
        );
        assert_eq!(super::note(&recollections, heading_words + 3, words).unwrap(), None);
        assert_eq!(super::note(&[], 1000, words).unwrap(), None);
    }
}
