//! `workly memory`: what Kira remembers about the person, for them to see,
//! search, correct, export and forget.
//!
//! Listings go to stdout so they pipe, confirmations to stderr. Every
//! command works on the store alone: no model is loaded.

use super::{ExportFormat, MemoryCommand, write_stdout};
use crate::chat::history::History;
use crate::choice::Choice as _;
use crate::config::Dirs;
use crate::llm::embed::{self, Embedder};
use crate::memory::{extract, vectors};
use crate::store::memories::{self, MemoryKind, NewMemory, StoredMemory};
use crate::store::{Store, now_ms};

/// Runs `workly memory ...`.
pub fn run(dirs: &Dirs, command: &MemoryCommand) -> crate::error::Result<()> {
    let mut store = Store::open(&dirs.database())?;
    match command {
        MemoryCommand::List { json } => {
            let memories = store.memories()?;
            write_stdout(&if *json { serde_json::to_string(&memories)? + "\n" } else { render_list(&memories) })?;
        }
        MemoryCommand::Search { text, limit, json } => {
            let memories = store.search_memories(&text.join(" "), *limit as usize)?;
            let text = match (json, memories.is_empty()) {
                (true, _) => serde_json::to_string(&memories)? + "\n",
                (false, true) => "no memory matches\n".to_owned(),
                (false, false) => render_list(&memories),
            };
            write_stdout(&text)?;
        }
        MemoryCommand::Add { text } => {
            let content = text.join(" ").trim().to_owned();
            memories::validate(&content)?;
            // The kind the rules see in it, if they see one.
            let kind = extract::facts(&content, now_ms()).first().map_or(MemoryKind::Fact, |fact| fact.kind);
            let vector = embed(dirs, &content);
            let memory = NewMemory { vector, ..NewMemory::given(kind, content) };
            let added = store.add_memories(std::slice::from_ref(&memory))?;
            eprintln!("{} ({})", if added == 0 { "already remembered" } else { "remembered" }, kind.name());
        }
        MemoryCommand::Edit { id, text } => {
            let content = text.join(" ").trim().to_owned();
            store.edit_memory(*id, &content, embed(dirs, &content).as_deref())?;
            eprintln!("memory {id} edited");
        }
        MemoryCommand::Forget { ids, all } => {
            let forgotten = if *all { store.forget_all_memories()? } else { store.forget_memories(ids)? };
            eprintln!("forgot {forgotten} {}", if forgotten == 1 { "memory" } else { "memories" });
        }
        MemoryCommand::Export { format } => {
            let memories = store.memories()?;
            write_stdout(&match format {
                ExportFormat::Json => serde_json::to_string_pretty(&memories)? + "\n",
                ExportFormat::Markdown => render_markdown(&memories),
            })?;
        }
    }
    Ok(())
}

/// The embedding model's file, if the set-up put it in the models folder.
fn embedder_file(dirs: &Dirs) -> Option<std::path::PathBuf> {
    Some(dirs.models().join(embed::DEFAULT_FILE)).filter(|path| path.is_file())
}

/// How many memories left to embed at start are worth a line: about a
/// second's wait (e5 takes a few milliseconds a memory).
const NOTICE_AT_MEMORIES: usize = 200;

/// Lets `history` recall by meaning when memory is on and the embedding model
/// is there, on `threads` threads. Without it (or when it fails to load),
/// recall goes on by words alone, and the line returned says so.
pub fn attach_embedder(dirs: &Dirs, history: &mut History, threads: usize) -> Option<String> {
    if !history.remembers() {
        return None;
    }
    let attached = match embedder_file(dirs) {
        Some(path) => Embedder::load(&path, threads).map_err(|error| error.to_string()).and_then(|embedder| {
            // Said before the wait, unlike the notice returned.
            let waiting = |count| {
                if count >= NOTICE_AT_MEMORIES {
                    eprintln!("memory: embedding {count} memories for recall by meaning (once)");
                }
            };
            history.set_embedder(embedder, waiting).map_err(|error| error.to_string())
        }),
        None => {
            Err(format!("{} is not in {} (scripts/setup.sh fetches it)", embed::DEFAULT_FILE, dirs.models().display()))
        }
    };
    attached.err().map(|error| format!("memory: recall by meaning is off ({error}); recall by words goes on"))
}

/// The embedding of `content`, when the embedding model is there (else the
/// memory gets one when a chat next starts: see [`History::set_embedder`]).
fn embed(dirs: &Dirs, content: &str) -> Option<Vec<u8>> {
    let path = embedder_file(dirs)?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let embedded = Embedder::load(&path, threads).and_then(|embedder| vectors::of_memories(&embedder, &[content]));
    match embedded {
        Ok(mut vectors) => vectors.pop(),
        Err(error) => {
            tracing::warn!("cannot embed the memory: {error}");
            None
        }
    }
}

/// Where and when a memory was said, for people.
fn said(memory: &StoredMemory) -> String {
    let when = memory.updated_at.get(..10).unwrap_or(&memory.updated_at);
    match &memory.conversation {
        Some(conversation) => format!("{when}, in {conversation}"),
        None => when.to_owned(),
    }
}

/// One line per memory, or a hint when there are none.
fn render_list(memories: &[StoredMemory]) -> String {
    if memories.is_empty() {
        return "Kira remembers nothing about you yet: tell her in `workly chat`, or `workly memory add`\n".to_owned();
    }
    let width = memories.iter().map(|memory| memory.id.to_string().len()).max().unwrap_or(1);
    memories
        .iter()
        .map(|memory| {
            let day = memory.event_date.as_deref().map(|day| format!(" [{day}]")).unwrap_or_default();
            format!("{:>width$}  {:<7}  {}{day}  ({})\n", memory.id, memory.kind.name(), memory.content, said(memory))
        })
        .collect()
}

/// The memories as a Markdown document, grouped by kind.
fn render_markdown(memories: &[StoredMemory]) -> String {
    let mut text = format!("# What Kira remembers about you\n\n{} memories.\n", memories.len());
    for &kind in MemoryKind::ALL {
        let of_kind: Vec<_> = memories.iter().filter(|memory| memory.kind == kind).collect();
        if of_kind.is_empty() {
            continue;
        }
        text.push_str(&format!("\n## {}\n\n", kind.name()));
        for memory in of_kind {
            // One line each, so a memory's text cannot break the document.
            let content = memory.content.replace('\n', " ");
            let day = memory.event_date.as_deref().map(|day| format!(" (on {day})")).unwrap_or_default();
            text.push_str(&format!("- {content}{day} ({}, #{})\n", said(memory), memory.id));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(id: i64, kind: MemoryKind, content: &str, conversation: Option<&str>) -> StoredMemory {
        StoredMemory {
            id,
            kind,
            content: content.to_owned(),
            event_date: None,
            conversation: conversation.map(str::to_owned),
            created_at: "2026-12-01T10:00:00.000Z".to_owned(),
            updated_at: "2026-12-03T10:00:00.000Z".to_owned(),
        }
    }

    #[test]
    fn memories_render_as_a_list_and_a_document() {
        let memories = [
            memory(12, MemoryKind::Pet, "My cat is called Miso.", Some("week")),
            StoredMemory {
                event_date: Some("2026-12-04".into()),
                ..memory(3, MemoryKind::Event, "Exam\nFriday", None)
            },
        ];
        assert_eq!(
            render_list(&memories),
            "12  pet      My cat is called Miso.  (2026-12-03, in week)\n 3  event    Exam\nFriday [2026-12-04]  (2026-12-03)\n"
        );
        assert_eq!(
            render_markdown(&memories),
            "# What Kira remembers about you\n\n2 memories.\n\n## pet\n\n- My cat is called Miso. (2026-12-03, in week, #12)\n\n\
             ## event\n\n- Exam Friday (on 2026-12-04) (2026-12-03, #3)\n"
        );
        assert!(render_list(&[]).starts_with("Kira remembers nothing"));
    }
}
