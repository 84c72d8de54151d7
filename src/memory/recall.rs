//! Which memories a turn brings into the prompt.
//!
//! The person's name always comes (a companion who forgets it is no
//! companion); then the memories that share words with the new message, then
//! with the person's message before it (a follow-up such as "and what did I
//! say about it?" leans on it), best first, each once. The store ranks them
//! (BM25 over stems), so the cost is one indexed query per message, whatever
//! the number of memories; `workly-bench recall` measures it.

use super::dates::Day;
use crate::store::memories::{MemoryKind, StoredMemory};
use crate::store::{Store, StoreError};

/// Most memories recalled for one turn.
pub const MAX_MEMORIES: usize = 5;

/// Up to [`MAX_MEMORIES`] memories relevant to `user`, whose previous
/// message in the conversation was `before`, best first.
pub fn relevant(store: &Store, user: &str, before: Option<&str>) -> Result<Vec<StoredMemory>, StoreError> {
    let mut recalled = store.memories_of(MemoryKind::Name)?;
    recalled.truncate(1);
    for text in std::iter::once(user).chain(before) {
        if recalled.len() >= MAX_MEMORIES {
            break;
        }
        for memory in store.search_memories(text, MAX_MEMORIES)? {
            if recalled.len() < MAX_MEMORIES && !recalled.iter().any(|kept| kept.id == memory.id) {
                recalled.push(memory);
            }
        }
    }
    Ok(recalled)
}

/// A memory as the note shows it: the person's words, and the day an event
/// falls on when it has one (its "tomorrow" was said days ago, perhaps).
pub fn line(memory: &StoredMemory) -> String {
    match memory.event_date.as_deref().and_then(Day::parse_iso) {
        Some(day) => format!("{} (on {})", memory.content, day.spelled()),
        None => memory.content.clone(),
    }
}
