//! `workly history`: list, show, search, export and delete stored conversations.
//!
//! Each command reads the store, builds data, and renders it as text, JSON or
//! Markdown; listings go to stdout so they pipe, confirmations to stderr.

use super::{ExportFormat, HistoryCommand, write_stdout};
use crate::config::Dirs;
use crate::llm::Role;
use crate::store::{ConversationSummary, SearchHit, Store, StoredMessage};
use serde::Serialize;

/// A conversation with its messages, as `export --format json` writes it.
#[derive(Debug, Serialize)]
pub struct Export<'a> {
    /// The conversation.
    #[serde(flatten)]
    pub conversation: &'a ConversationSummary,
    /// Its messages, oldest first.
    pub messages: &'a [StoredMessage],
}

/// Runs `workly history ...`.
pub fn run(dirs: &Dirs, command: &HistoryCommand) -> crate::error::Result<()> {
    let mut store = Store::open(&dirs.database())?;
    match command {
        HistoryCommand::List { json } => {
            let conversations = store.conversations()?;
            let text = if *json { serde_json::to_string(&conversations)? + "\n" } else { render_list(&conversations) };
            write_stdout(&text)?;
        }
        HistoryCommand::Show { name } => {
            let (summary, messages) = load(&store, name)?;
            write_stdout(&render_transcript(&summary, &messages))?;
        }
        HistoryCommand::Search { text, conversation, limit, json } => {
            let within = conversation.as_deref().map(|name| store.conversation(name)).transpose()?;
            let hits = store.search(&text.join(" "), within.as_ref(), *limit as usize)?;
            let text = if *json { serde_json::to_string(&hits)? + "\n" } else { render_hits(&hits) };
            write_stdout(&text)?;
        }
        HistoryCommand::Export { name, format } => {
            let (summary, messages) = load(&store, name)?;
            let text = match format {
                ExportFormat::Json => {
                    serde_json::to_string_pretty(&Export { conversation: &summary, messages: &messages })? + "\n"
                }
                ExportFormat::Markdown => render_markdown(&summary, &messages),
            };
            write_stdout(&text)?;
        }
        HistoryCommand::Delete { name } => {
            let messages = store.delete_conversation(name)?;
            eprintln!("deleted conversation `{name}` ({messages} messages)");
        }
    }
    Ok(())
}

/// The conversation named `name`, summarised, with its messages.
fn load(store: &Store, name: &str) -> crate::error::Result<(ConversationSummary, Vec<StoredMessage>)> {
    let conversation = store.conversation(name)?;
    Ok((store.summary(&conversation)?, store.messages(&conversation)?))
}

/// Who said a message, for people.
fn speaker(role: Role) -> &'static str {
    match role {
        Role::User => "you",
        Role::System => "system",
        Role::Assistant => "Kira",
    }
}

/// A table of conversations, or a hint when there are none.
fn render_list(conversations: &[ConversationSummary]) -> String {
    if conversations.is_empty() {
        return "no conversations yet: `workly chat` starts one\n".to_owned();
    }
    let width = conversations.iter().map(|c| c.name.chars().count()).max().unwrap_or(0).max("NAME".len());
    let mut text = format!("{:<width$}  {:>8}  LAST UPDATED\n", "NAME", "MESSAGES");
    for conversation in conversations {
        text.push_str(&format!(
            "{:<width$}  {:>8}  {}\n",
            conversation.name, conversation.message_count, conversation.updated_at
        ));
    }
    text
}

/// A conversation as a plain transcript.
fn render_transcript(summary: &ConversationSummary, messages: &[StoredMessage]) -> String {
    let mut text = format!("{} ({} messages, started {})\n", summary.name, summary.message_count, summary.created_at);
    for message in messages {
        text.push_str(&format!("\n{}> {}\n", speaker(message.role), message.content));
    }
    text
}

/// Search results, one block per message.
fn render_hits(hits: &[SearchHit]) -> String {
    if hits.is_empty() {
        return "no message matches\n".to_owned();
    }
    hits.iter()
        .map(|hit| format!("{} {} {}> {}\n", hit.conversation, hit.created_at, speaker(hit.role), hit.snippet))
        .collect()
}

/// A conversation as a Markdown document.
fn render_markdown(summary: &ConversationSummary, messages: &[StoredMessage]) -> String {
    let mut text = format!(
        "# {}\n\nStarted {}, last updated {}, {} messages.\n",
        summary.name, summary.created_at, summary.updated_at, summary.message_count
    );
    for message in messages {
        let feeling = match (message.emotion, message.intensity) {
            (Some(emotion), Some(intensity)) => format!(" ({emotion}, {intensity:.2})"),
            (Some(emotion), None) => format!(" ({emotion})"),
            _ => String::new(),
        };
        // Quoted, so Markdown in a message cannot break the document's structure.
        let body = message.content.lines().map(|line| format!("> {line}\n")).collect::<String>();
        text.push_str(&format!("\n**{}**{feeling}, {}:\n\n{body}", speaker(message.role), message.created_at));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::Emotion;

    fn message(role: Role, content: &str) -> StoredMessage {
        StoredMessage {
            role,
            content: content.to_owned(),
            emotion: None,
            intensity: None,
            token_count: 3,
            created_at: "2026-11-26T17:00:00.000Z".to_owned(),
        }
    }

    fn summary() -> ConversationSummary {
        ConversationSummary {
            name: "tea".to_owned(),
            message_count: 2,
            created_at: "2026-11-26T17:00:00.000Z".to_owned(),
            updated_at: "2026-11-26T17:01:00.000Z".to_owned(),
        }
    }

    #[test]
    fn markdown_quotes_every_line_and_shows_emotion() {
        let mut reply = message(Role::Assistant, "Green tea!\n# not a heading");
        reply.emotion = Some(Emotion::Joy);
        reply.intensity = Some(0.5);
        let text = render_markdown(&summary(), &[message(Role::User, "I like tea"), reply]);
        insta::assert_snapshot!(text, @r"
        # tea

        Started 2026-11-26T17:00:00.000Z, last updated 2026-11-26T17:01:00.000Z, 2 messages.

        **you**, 2026-11-26T17:00:00.000Z:

        > I like tea

        **Kira** (joy, 0.50), 2026-11-26T17:00:00.000Z:

        > Green tea!
        > # not a heading
        ");
    }

    #[test]
    fn list_aligns_columns_and_says_when_empty() {
        assert!(render_list(&[]).starts_with("no conversations yet"));
        let text = render_list(&[summary()]);
        assert_eq!(text, "NAME  MESSAGES  LAST UPDATED\ntea          2  2026-11-26T17:01:00.000Z\n");
    }
}
