//! Recaps: what a long conversation said before its context window, in a
//! few sentences, so that it keeps its thread and not only the quotes that
//! recall brings back.
//!
//! When enough turns have left the window ([`FOLD_AFTER`] messages), the
//! model sums up what the person said in them ([`request`]: their messages
//! only, since a small model that reads both sides mixes up who said what)
//! in a few sentences of at most [`MAX_TOKENS`] ([`cleaned`]). The recap is
//! the newest [`MAX_PARTS`] of these, oldest first ([`extended`]): a small
//! model asked to rewrite an old summary with new turns copies its input
//! back instead. It is written aside, while the person reads and types, and
//! stands in the conversation's opening from then on (see
//! [`crate::chat::Standing`]). Batching the turns keeps the opening steady:
//! each new recap is prefilled once, by the turn after it.

use crate::emotion::tags;
use crate::llm::{Message, Role};
use crate::store::recaps::Unrecapped;

/// Messages out of the window, past the recap, that make a new recap worth
/// writing: two exchanges' worth would rewrite it (and prefill it again)
/// nearly every turn.
pub const FOLD_AFTER: usize = 8;

/// Most messages folded in one pass…
pub const MAX_MESSAGES: usize = 12;

/// …and most tokens of them (the first is always taken): the pass then
/// takes a few seconds of a small model, which the person's reading covers.
pub const MAX_INPUT_TOKENS: usize = 600;

/// Longest recap written, in tokens.
pub const MAX_TOKENS: u32 = 80;

/// Most parts a recap keeps: the newest, each the sum of one pass.
pub const MAX_PARTS: usize = 3;

/// What a recap request asks, in English.
const ENGLISH: &str = "The user gives you messages a person sent to {name}. Summarize what the person said in two or \
                       three short sentences, in the third person, starting with \"The person\". Keep names, places \
                       and dates. Write only the summary.";

/// The same for French messages: asked in English, which the small models
/// follow better (asked in French, the default model summed up "La personne
/// a envoyé à Kira des messages concernant…" and dropped the names), for a
/// summary in French.
const FRENCH: &str = "The user gives you messages a person sent to {name}, in French. Summarize what the person said \
                      in two or three short sentences in French, in the third person, starting with \"La personne\". \
                      Keep names, places and dates. Write only the summary.";

/// The messages of `waiting` a pass folds in: the oldest, up to
/// [`MAX_MESSAGES`] and [`MAX_INPUT_TOKENS`] (the first always).
pub fn batch(waiting: &[Unrecapped]) -> &[Unrecapped] {
    let mut tokens = 0;
    let taken = waiting
        .iter()
        .take(MAX_MESSAGES)
        .take_while(|message| {
            tokens += message.token_count;
            tokens <= MAX_INPUT_TOKENS
        })
        .count();
    &waiting[..taken.max(1).min(waiting.len())]
}

/// The prompt that asks `assistant`'s model to sum up what the person said
/// in `messages` (theirs only), in French when `french`; `None` when none
/// of them is the person's.
pub fn request(assistant: &str, french: bool, messages: &[Unrecapped]) -> Option<Vec<Message>> {
    let said: Vec<String> = messages
        .iter()
        .filter(|message| message.role == Role::User)
        .map(|message| format!("- {}", message.content.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    if said.is_empty() {
        return None;
    }
    let task = if french { FRENCH } else { ENGLISH };
    Some(vec![Message::system(task.replace("{name}", assistant)), Message::user(said.join("\n"))])
}

/// The recap `previous` with the new part `part` after it, its oldest parts
/// dropped past [`MAX_PARTS`].
pub fn extended(previous: Option<&str>, part: &str) -> String {
    let mut parts: Vec<&str> = previous.map_or_else(Vec::new, |previous| previous.lines().collect());
    parts.push(part);
    parts[parts.len().saturating_sub(MAX_PARTS)..].join("\n")
}

/// The recap in the model's reply `text`: emotion tags, a label and extra
/// spacing taken out, and cut after its last whole sentence when the
/// reply was cut at the limit (`whole` false). `None` when nothing is left
/// that reads as a sentence.
pub fn cleaned(text: &str, whole: bool) -> Option<String> {
    let text = tags::strip(text).text;
    let mut recap = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for label in ["Summary:", "Résumé :", "Résumé:"] {
        if let Some(rest) = recap.strip_prefix(label) {
            recap = rest.trim_start().to_owned();
        }
    }
    if !whole {
        let end = recap.rfind(['.', '!', '?', '…']).map_or(0, |at| at + 1);
        recap.truncate(end);
    }
    (recap.split_whitespace().count() >= 3).then_some(recap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(role: Role, content: &str, token_count: usize) -> Unrecapped {
        Unrecapped { id: 1, role, content: content.to_owned(), token_count }
    }

    #[test]
    fn a_pass_takes_the_oldest_messages_within_its_budget() {
        let waiting: Vec<Unrecapped> = (0..20).map(|_| said(Role::User, "hi", 100)).collect();
        assert_eq!(batch(&waiting).len(), MAX_INPUT_TOKENS / 100);
        let short: Vec<Unrecapped> = (0..20).map(|_| said(Role::User, "hi", 1)).collect();
        assert_eq!(batch(&short).len(), MAX_MESSAGES);
        // A message longer than the budget still goes, alone.
        assert_eq!(batch(&[said(Role::User, "long", 5000), said(Role::User, "hi", 1)]).len(), 1);
        assert!(batch(&[]).is_empty());
    }

    #[test]
    fn the_request_holds_what_the_person_said_and_only_that() {
        let messages = [said(Role::User, "My sister Lea\nmoved to Oslo.", 9), said(Role::Assistant, "Oh, nice!", 4)];
        let request = request("Kira", false, &messages).unwrap();
        assert_eq!(request[0].role, Role::System);
        assert!(request[0].content.contains("messages a person sent to Kira. Summarize"));
        assert_eq!(request[1].content, "- My sister Lea moved to Oslo.");
        let french = super::request("Kira", true, &messages).unwrap();
        assert!(french[0].content.contains("sent to Kira, in French. Summarize"));
        assert_eq!(super::request("Kira", false, &messages[1..]), None);
    }

    #[test]
    fn a_recap_keeps_its_newest_parts() {
        assert_eq!(extended(None, "One."), "One.");
        let three = extended(Some("One.\nTwo."), "Three.");
        assert_eq!(three, "One.\nTwo.\nThree.");
        assert_eq!(extended(Some(&three), "Four."), "Two.\nThree.\nFour.");
    }

    #[test]
    fn a_recap_is_cleaned_and_cut_at_a_sentence() {
        assert_eq!(
            cleaned("Summary: [joy] The person's sister Lea\n moved to Oslo.", true).as_deref(),
            Some("The person's sister Lea moved to Oslo.")
        );
        assert_eq!(
            cleaned("Lea moved to Oslo. She misses her and plans to", false).as_deref(),
            Some("Lea moved to Oslo.")
        );
        assert_eq!(cleaned("Okay.", true), None);
        assert_eq!(cleaned("She misses her and plans to", false), None);
    }
}
