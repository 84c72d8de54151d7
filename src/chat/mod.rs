//! Conversations with Kira: the persona, the history fitted to the context,
//! and the one chat turn every door runs ([`turn`]).
//!
//! A [`Conversation`] holds the persona and the turns so far, and builds the
//! messages for the next request so that they fit the context in tokens:
//! the oldest exchanges leave first, the persona always stays. Because the
//! engine shifts cached turns into place, dropping an old turn does not make
//! the next request re-evaluate the rest. [`history`] ties a conversation to
//! the durable store: it resumes one after a restart, saves each exchange
//! with the facts the person told ([`crate::memory`]), and recalls those
//! facts and older turns that left the context when they become relevant.
//! [`guard`] stops a reply that recites the persona.

pub mod aside;
pub mod guard;
pub mod history;
pub mod persona;
pub mod turn;

pub use persona::{Language, Persona};

use crate::llm::{LlmError, Message, Role};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The persona and the turns of one conversation.
#[derive(Debug, Clone)]
pub struct Conversation {
    persona: Persona,
    turns: Vec<Message>,
    /// Set by the first message: the persona's words follow the user's language.
    language: Option<Language>,
    /// Where the last fitted prompt's turns started.
    fitted_from: FitHint,
    /// What Kira knows before the turns, said in the opening.
    standing: Standing,
}

/// What Kira knows before a conversation's turns, said after the persona in
/// the system message: there it is evaluated once and stays cached with
/// the persona, where a note with the new message would be evaluated at
/// every turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// The person's name, as they said it ("My name is Sam").
    pub name: Option<String>,
    /// The recap of the turns that left the context window (see
    /// [`crate::memory::recap`]).
    pub recap: Option<String>,
}

impl Standing {
    /// How the opening says it in `language`, after the persona; empty when
    /// there is nothing to say.
    fn said_in(&self, language: Language) -> String {
        let (told, earlier) = match language {
            Language::English => (("The person once told you: \"", "\""), "Earlier in this conversation: "),
            Language::French => (("La personne t'a dit un jour : « ", " »"), "Plus tôt dans cette conversation : "),
        };
        let mut said = String::new();
        if let Some(name) = &self.name {
            said.push_str(&format!("\n\n{}{}{}", told.0, name.trim_end_matches(['.', '!']), told.1));
        }
        if let Some(recap) = &self.recap {
            said.push_str(&format!("\n\n{earlier}{recap}"));
        }
        said
    }
}

/// Where the next fit starts looking: where the last one ended up, which
/// moves by an exchange or so per turn. Starting from the oldest turn instead
/// counted hundreds of prompts per turn once a long conversation had
/// outgrown the context. Only a hint: the fit is the same from anywhere.
#[derive(Debug, Default)]
struct FitHint(AtomicUsize);

impl Clone for FitHint {
    fn clone(&self) -> Self {
        Self(AtomicUsize::new(self.0.load(Ordering::Relaxed)))
    }
}

impl Conversation {
    /// A new conversation with `persona`.
    pub fn new(persona: Persona) -> Self {
        Self {
            persona,
            turns: Vec::new(),
            language: None,
            fitted_from: FitHint::default(),
            standing: Standing::default(),
        }
    }

    /// Every way this conversation's requests can start: its opening (see
    /// [`Conversation::opening_for`]) in each language the persona speaks,
    /// the conversation's own first (what the engine warms up with;
    /// duplicates are dropped there).
    pub fn openings(&self) -> Vec<Vec<Message>> {
        let own = self.language.unwrap_or_default();
        let others = [Language::English, Language::French].into_iter().filter(|&language| language != own);
        std::iter::once(own).chain(others).map(|language| self.opening_in(language)).collect()
    }

    /// The messages a request answering `user` opens with: the persona's
    /// (see [`Persona::opening_in`]), what Kira knows before the turns
    /// ([`Standing`]) ending its system message.
    pub fn opening_for(&self, user: &str) -> Vec<Message> {
        self.opening_in(self.language_for(user))
    }

    fn opening_in(&self, language: Language) -> Vec<Message> {
        let mut opening = self.persona.opening_in(language);
        if let Some(system) = opening.first_mut().filter(|message| message.role == Role::System) {
            system.content.push_str(&self.standing.said_in(language));
        }
        opening
    }

    /// Sets what Kira knows before the turns.
    pub fn set_standing(&mut self, standing: Standing) {
        self.standing = standing;
    }

    /// What Kira knows before the turns.
    pub fn standing(&self) -> &Standing {
        &self.standing
    }

    /// What a reply to `user` must not recite (see [`Persona::script_in`]).
    pub fn script_for(&self, user: &str) -> String {
        self.persona.script_in(self.language_for(user))
    }

    /// The language a reply to `user` is in: the conversation's, or the
    /// message's own for a first message.
    pub fn language_for(&self, user: &str) -> Language {
        self.language.unwrap_or_else(|| Language::detect(user))
    }

    /// The persona.
    pub fn persona(&self) -> &Persona {
        &self.persona
    }

    /// Turns so far (user and assistant messages, oldest first).
    pub fn turns(&self) -> &[Message] {
        &self.turns
    }

    /// Records a completed exchange.
    pub fn push_exchange(&mut self, user: &str, assistant: &str) {
        self.language = Some(self.language_for(user));
        self.turns.push(Message::user(user));
        self.turns.push(Message::assistant(assistant));
    }

    /// Kira's last reply becomes `content` (she was interrupted); false
    /// when the last turn is not hers.
    pub fn replace_last_reply(&mut self, content: &str) -> bool {
        match self.turns.last_mut() {
            Some(last) if last.role == crate::llm::Role::Assistant => {
                last.content = content.to_owned();
                true
            }
            _ => false,
        }
    }

    /// Forgets every turn and what stood before them (the persona stays).
    pub fn reset(&mut self) {
        self.turns.clear();
        self.language = None;
        self.fitted_from = FitHint::default();
        self.standing = Standing::default();
    }

    /// The language the conversation speaks, once its first message set it.
    pub fn language(&self) -> Option<Language> {
        self.language
    }

    /// Messages for a request answering `user`: persona, as many recent turns as
    /// fit in `context_size - reserve` tokens (counted exactly by `count`), then
    /// the new message. Fails when the persona and the message alone do not fit.
    pub fn prompt_for(
        &self,
        user: &str,
        context_size: usize,
        reserve: usize,
        count: impl Fn(&[Message]) -> Result<usize, LlmError>,
    ) -> Result<Vec<Message>, LlmError> {
        self.prompt_recalling(user, None, context_size, reserve, count)
    }

    /// Like [`Conversation::prompt_for`], with `recalled` (a note of older turns
    /// brought back, see [`history`]) placed with the new message. The note
    /// goes late in the prompt, not into the system message: the persona and
    /// the history after it are the prefix the engine keeps cached, and a note
    /// that changes every turn must not come before them.
    pub fn prompt_recalling(
        &self,
        user: &str,
        recalled: Option<&str>,
        context_size: usize,
        reserve: usize,
        count: impl Fn(&[Message]) -> Result<usize, LlmError>,
    ) -> Result<Vec<Message>, LlmError> {
        let budget = context_size.saturating_sub(reserve);
        let newest = match recalled {
            Some(note) => history::with_note(note, user),
            None => Message::user(user),
        };
        // Drop whole exchanges (user + assistant) so roles keep alternating:
        // the prompt keeps the turns from `first` on, the smallest such start
        // (an even index, or every turn dropped) whose prompt fits.
        let len = self.turns.len();
        let opening = self.opening_for(user);
        let build = |first: usize| {
            let mut messages = Vec::with_capacity(opening.len() + len - first + 1);
            messages.extend_from_slice(&opening);
            messages.extend_from_slice(&self.turns[first..]);
            messages.push(newest.clone());
            messages
        };
        let fits = |first: usize| -> Result<(bool, usize), LlmError> {
            let tokens = count(&build(first))?;
            Ok((tokens <= budget, tokens))
        };
        let hint = self.fitted_from.0.load(Ordering::Relaxed);
        let mut first = if hint >= len { len } else { hint - hint % 2 };
        let (fit, mut tokens) = fits(first)?;
        if fit {
            // Fewer turns dropped may fit too (a shorter message this time).
            while first > 0 {
                // Every drop is a whole exchange, but an odd tail (all turns dropped) steps back by one.
                let lower = first + first % 2 - 2;
                if !fits(lower)?.0 {
                    break;
                }
                first = lower;
            }
        } else {
            while first < len {
                first = (first + 2).min(len);
                let (fit, counted) = fits(first)?;
                tokens = counted;
                if fit {
                    break;
                }
            }
            if tokens > budget {
                return Err(LlmError::PromptTooLong { prompt_tokens: tokens + reserve, context_size });
            }
        }
        self.fitted_from.0.store(first, Ordering::Relaxed);
        Ok(build(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts one token per character: enough to test the fitting rule.
    fn chars(messages: &[Message]) -> Result<usize, LlmError> {
        Ok(messages.iter().map(|m| m.content.chars().count()).sum())
    }

    fn conversation() -> Conversation {
        let mut conversation = Conversation::new(Persona { system_prompt: "sys".into(), ..Persona::default() });
        conversation.push_exchange("aaaa", "bbbb");
        conversation.push_exchange("cccc", "dddd");
        conversation
    }

    #[test]
    fn everything_fits() {
        let messages = conversation().prompt_for("new", 100, 10, chars).unwrap();
        assert_eq!(messages.len(), 6);
    }

    #[test]
    fn oldest_exchange_leaves_first_and_persona_stays() {
        // persona 3 + second exchange 8 + new 3 = 14
        let messages = conversation().prompt_for("new", 20, 6, chars).unwrap();
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0].content, "sys");
        assert_eq!(messages[1].content, "cccc");
    }

    #[test]
    fn the_first_message_sets_the_language() {
        let mut conversation = Conversation::new(Persona::default());
        let french = conversation.prompt_for("Bonjour, ça va ?", 1000, 10, chars).unwrap();
        assert!(french[0].content.starts_with("Tu es Kira"));
        conversation.push_exchange("Bonjour, ça va ?", "Oui !");
        // An English word later does not switch the persona (and its cache) mid-conversation.
        let still = conversation.prompt_for("ok cool", 1000, 10, chars).unwrap();
        assert!(still[0].content.starts_with("Tu es Kira"));
        conversation.reset();
        assert!(conversation.openings()[0][0].content.starts_with("You are Kira"));
    }

    #[test]
    fn a_recall_note_opens_the_new_message_and_counts_in_the_budget() {
        let conversation = conversation();
        let messages = conversation.prompt_recalling("new", Some("note"), 100, 10, chars).unwrap();
        assert_eq!(messages.len(), 6);
        assert_eq!(messages[0].content, "sys", "the persona prefix stays as it is");
        assert_eq!(messages[5], history::with_note("note", "new"));
        assert!(messages[5].content.starts_with("(note)") && messages[5].content.ends_with("new"));
        // persona 3 + second exchange 8 + note and message 11 = 22: the first exchange leaves.
        let messages = conversation.prompt_recalling("new", Some("note"), 30, 6, chars).unwrap();
        assert_eq!(messages[1].content, "cccc");
    }

    #[test]
    fn a_message_that_cannot_fit_is_an_error() {
        let error = conversation().prompt_for(&"x".repeat(50), 40, 10, chars).unwrap_err();
        assert!(matches!(error, LlmError::PromptTooLong { context_size: 40, .. }));
    }

    /// The fitting rule, plainly: drop the oldest exchange until the prompt fits.
    fn fitted_plainly(conversation: &Conversation, user: &str, budget: usize) -> Option<Vec<Message>> {
        let turns = conversation.turns();
        let mut first = 0;
        loop {
            let mut messages = conversation.opening_for(user);
            messages.extend_from_slice(&turns[first..]);
            messages.push(Message::user(user));
            if chars(&messages).unwrap() <= budget {
                return Some(messages);
            }
            if first >= turns.len() {
                return None;
            }
            first = (first + 2).min(turns.len());
        }
    }

    #[test]
    fn a_long_conversation_counts_a_few_prompts_per_turn() {
        let mut conversation = conversation();
        let counted = std::cell::Cell::new(0);
        let counting = |messages: &[Message]| {
            counted.set(counted.get() + 1);
            chars(messages)
        };
        // 300 turns: far past the budget, where a count per dropped exchange
        // would be a hundred (the plain rule below is cubic in the turns).
        for turn in 0..300 {
            counted.set(0);
            let user = format!("message {turn}");
            let messages = conversation.prompt_for(&user, 400, 10, counting).unwrap();
            assert_eq!(Some(messages), fitted_plainly(&conversation, &user, 390), "turn {turn}");
            // Not hundreds of counts, one per dropped exchange, as before.
            assert!(counted.get() <= 4, "turn {turn}: {} counts", counted.get());
            conversation.push_exchange(&user, "a reply of some length");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fit_is_the_plain_rule_whatever_came_before(
            exchanges in proptest::collection::vec((1usize..40, 1usize..80), 1..60),
            budget in 5usize..400,
        ) {
            let mut conversation = conversation();
            for (turn, (asked, answered)) in exchanges.into_iter().enumerate() {
                let user = "u".repeat(asked);
                let fitted = conversation.prompt_for(&user, budget + 10, 10, chars).ok();
                proptest::prop_assert_eq!(fitted, fitted_plainly(&conversation, &user, budget), "turn {}", turn);
                conversation.push_exchange(&user, &"a".repeat(answered));
            }
        }
    }
}
