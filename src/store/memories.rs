//! Long-term memories in the store: facts about the person, kept across
//! conversations, each with the conversation, message and sentence it came
//! from.
//!
//! A memory is written in the same transaction as the exchange it came from
//! (one sync per turn, as before). Its words are indexed by their stems
//! ([`terms`](super::terms)) for recall. Forgetting is real: the row, its
//! index entry and the sentence in the source message go, deleted content is
//! overwritten (`secure_delete`), and the write-ahead log is emptied, so the
//! text is nowhere in the files afterwards.

use super::{ConversationRef, Store, StoreError, classify, now_ms, rfc3339, terms};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use std::ops::Range;

/// What takes a forgotten sentence's place in the message it was said in.
pub const FORGOTTEN: &str = "(forgotten)";

/// A search leaves out stems found in more than one memory in this many…
pub const COMMON_SHARE: usize = 20;

/// …once that is more than this many memories (a few hundred memories all
/// share "like" without it being noise).
pub const COMMON_FLOOR: usize = 200;

/// Longest memory kept, in characters: a fact, not a document.
pub const MAX_MEMORY_CHARS: usize = 500;

/// Refuses words that cannot be a memory: nothing, or too long.
pub fn validate(content: &str) -> Result<(), StoreError> {
    let invalid = |reason| Err(StoreError::InvalidMemory { content: content.chars().take(40).collect(), reason });
    if content.trim().is_empty() {
        return invalid("it is empty");
    }
    if content.chars().count() > MAX_MEMORY_CHARS {
        return invalid("it is longer than 500 characters");
    }
    Ok(())
}

/// What a memory is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// The person's name (one at a time: a new one replaces it).
    Name,
    /// Where they live or come from (one at a time).
    Home,
    /// Their work or studies.
    Work,
    /// People in their life.
    Person,
    /// Their animals.
    Pet,
    /// What they like.
    Like,
    /// What they dislike.
    Dislike,
    /// Something that happens, or will, often with a date.
    Event,
    /// Anything else they asked to be remembered.
    Fact,
}

impl crate::choice::Choice for MemoryKind {
    const ALL: &'static [Self] = &[
        Self::Name,
        Self::Home,
        Self::Work,
        Self::Person,
        Self::Pet,
        Self::Like,
        Self::Dislike,
        Self::Event,
        Self::Fact,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Home => "home",
            Self::Work => "work",
            Self::Person => "person",
            Self::Pet => "pet",
            Self::Like => "like",
            Self::Dislike => "dislike",
            Self::Event => "event",
            Self::Fact => "fact",
        }
    }
}

impl MemoryKind {
    /// Whether a person has one of these at a time, so a new one replaces the old.
    pub fn single(self) -> bool {
        matches!(self, Self::Name | Self::Home)
    }
}

/// A memory to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMemory {
    /// What it is about.
    pub kind: MemoryKind,
    /// The fact, in the person's words.
    pub content: String,
    /// The day of the event it tells of (`YYYY-MM-DD`), if it has one.
    pub event_date: Option<String>,
    /// Where in the person's message it was said (bytes), if it came from one.
    pub source: Option<Range<usize>>,
    /// Its embedding, encoded by the memory's semantic recall, if there is one.
    pub vector: Option<Vec<u8>>,
}

impl NewMemory {
    /// A memory of `kind` in the words `content`, given by hand: no day, no
    /// source, no embedding (each can be set after).
    pub fn given(kind: MemoryKind, content: impl Into<String>) -> Self {
        Self { kind, content: content.into(), event_date: None, source: None, vector: None }
    }
}

/// A kept memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredMemory {
    /// Its number, for `workly memory edit` and `forget`.
    pub id: i64,
    /// What it is about.
    pub kind: MemoryKind,
    /// The fact, in the person's words.
    pub content: String,
    /// The day of the event it tells of, if it has one.
    pub event_date: Option<String>,
    /// The conversation it was said in, if it still exists.
    pub conversation: Option<String>,
    /// When it was first said (RFC 3339, UTC).
    pub created_at: String,
    /// When it was last said or edited (RFC 3339, UTC).
    pub updated_at: String,
}

/// The query behind [`StoredMemory`], before its `WHERE` or `ORDER BY`.
macro_rules! memory_select {
    () => {
        concat!(
            "SELECT m.id, m.kind, m.content, m.event_date, c.name, ",
            rfc3339!("m.created_at_ms"),
            ", ",
            rfc3339!("m.updated_at_ms"),
            " FROM memories m LEFT JOIN conversations c ON c.id = m.conversation_id"
        )
    };
}

fn memory_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMemory> {
    use crate::choice::Choice as _;
    let kind = row.get_ref(1)?.as_str()?;
    Ok(StoredMemory {
        id: row.get(0)?,
        // The schema admits only the kinds' names.
        kind: MemoryKind::named(kind).unwrap_or(MemoryKind::Fact),
        content: row.get(2)?,
        event_date: row.get(3)?,
        conversation: row.get(4)?,
        created_at: row.get(5)?,
        updated_at: row.get(6)?,
    })
}

impl Store {
    /// Keeps `memories` said in `message` of `conversation` (or, without a
    /// message, given by hand), inside `transaction`. A memory already kept
    /// in the same words is only refreshed; one of a [single](MemoryKind::single)
    /// kind replaces the one before. Returns how many are new.
    pub(super) fn keep_memories(
        transaction: &Transaction<'_>,
        conversation: Option<&ConversationRef>,
        message: Option<i64>,
        memories: &[NewMemory],
        at_ms: i64,
    ) -> rusqlite::Result<usize> {
        use crate::choice::Choice as _;
        let mut kept = 0;
        for memory in memories {
            let kind = memory.kind.name();
            let same: Option<i64> = transaction
                .prepare_cached("SELECT id FROM memories WHERE kind = ?1 AND lower(content) = lower(?2)")?
                .query_row(params![kind, memory.content], |row| row.get(0))
                .optional()?;
            if let Some(id) = same {
                transaction.execute("UPDATE memories SET updated_at_ms = ?2 WHERE id = ?1", params![id, at_ms])?;
                if let Some(vector) = &memory.vector {
                    set_vector(transaction, id, vector)?;
                }
                continue;
            }
            if memory.kind.single() {
                let replaced: Vec<i64> = transaction
                    .prepare_cached("SELECT id FROM memories WHERE kind = ?1")?
                    .query_map([kind], |row| row.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for id in replaced {
                    delete_memory(transaction, id)?;
                }
            }
            let (start, end) = match &memory.source {
                Some(range) if message.is_some() => (Some(range.start as i64), Some(range.end as i64)),
                _ => (None, None),
            };
            transaction
                .prepare_cached(
                    "INSERT INTO memories (kind, content, event_date, conversation_id, message_id,
                                           source_start, source_end, created_at_ms, updated_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                )?
                .execute(params![
                    kind,
                    memory.content,
                    memory.event_date,
                    conversation.map(|c| c.id),
                    message,
                    start,
                    end,
                    at_ms
                ])?;
            let id = transaction.last_insert_rowid();
            transaction
                .prepare_cached("INSERT INTO memories_fts (rowid, terms) VALUES (?1, ?2)")?
                .execute(params![id, terms::index_terms(&memory.content)])?;
            if let Some(vector) = &memory.vector {
                set_vector(transaction, id, vector)?;
            }
            kept += 1;
        }
        Ok(kept)
    }

    /// Keeps `memories` given by hand (no conversation); returns how many are new.
    pub fn add_memories(&mut self, memories: &[NewMemory]) -> Result<usize, StoreError> {
        for memory in memories {
            validate(&memory.content)?;
        }
        self.write(|transaction| Self::keep_memories(transaction, None, None, memories, now_ms()))
    }

    /// How many memories are kept.
    pub fn memory_count(&self) -> Result<usize, StoreError> {
        self.connection
            .query_row("SELECT count(*) FROM memories", [], |row| super::count(row, 0))
            .map_err(|error| self.error(error))
    }

    /// Every memory, the most recently said first.
    pub fn memories(&self) -> Result<Vec<StoredMemory>, StoreError> {
        self.query_memories(concat!(memory_select!(), " ORDER BY m.updated_at_ms DESC, m.id DESC"), params![])
    }

    /// The memories of `kind`, the most recently said first.
    pub fn memories_of(&self, kind: MemoryKind) -> Result<Vec<StoredMemory>, StoreError> {
        use crate::choice::Choice as _;
        self.query_memories(
            concat!(memory_select!(), " WHERE m.kind = ?1 ORDER BY m.updated_at_ms DESC, m.id DESC"),
            params![kind.name()],
        )
    }

    /// The memory numbered `id`, if there is one.
    pub fn memory(&self, id: i64) -> Result<Option<StoredMemory>, StoreError> {
        Ok(self.query_memories(concat!(memory_select!(), " WHERE m.id = ?1"), params![id])?.pop())
    }

    /// Up to `limit` memories sharing a word (by its stem, in English or
    /// French) with `text`, best first: rarer shared words count more (BM25),
    /// then the most recently said.
    pub fn search_memories(&self, text: &str, limit: usize) -> Result<Vec<StoredMemory>, StoreError> {
        let ids = self.search_memory_ids(text, limit)?;
        self.memories_by_ids(&ids)
    }

    /// The numbers of the memories [`Store::search_memories`] finds, best
    /// first. Stems in more than one memory in [`COMMON_SHARE`] (and in more
    /// than [`COMMON_FLOOR`]) are left out while a rarer one is left: they
    /// tell little, and ranking their many matches is most of a search's time.
    pub fn search_memory_ids(&self, text: &str, limit: usize) -> Result<Vec<i64>, StoreError> {
        let mut stems = terms::query_stems(text);
        if stems.is_empty() {
            return Ok(Vec::new());
        }
        let common = (self.memory_count()? / COMMON_SHARE).max(COMMON_FLOOR);
        let mut counted = Vec::with_capacity(stems.len());
        for stem in stems.drain(..) {
            let documents: usize = self
                .connection
                .prepare_cached("SELECT doc FROM memories_vocab WHERE term = ?1")
                .and_then(|mut statement| statement.query_row([&stem], |row| super::count(row, 0)).optional())
                .map_err(|error| self.error(error))?
                .unwrap_or(0);
            counted.push((stem, documents));
        }
        let rarest = counted.iter().map(|(_, documents)| *documents).min().unwrap_or(0);
        let kept = counted.into_iter().filter(|(_, documents)| *documents <= common.max(rarest)).map(|(stem, _)| stem);
        let Some(query) = super::query::any_of(kept) else { return Ok(Vec::new()) };
        self.connection
            .prepare_cached(
                "SELECT f.rowid FROM memories_fts f JOIN memories m ON m.id = f.rowid
                 WHERE memories_fts MATCH ?1 ORDER BY bm25(memories_fts), m.updated_at_ms DESC LIMIT ?2",
            )
            .and_then(|mut statement| {
                statement
                    .query_map(params![query, i64::try_from(limit).unwrap_or(i64::MAX)], |row| row.get(0))?
                    .collect()
            })
            .map_err(|error| self.error(error))
    }

    /// The memories numbered `ids`, in that order (numbers of memories
    /// forgotten meanwhile are left out).
    pub fn memories_by_ids(&self, ids: &[i64]) -> Result<Vec<StoredMemory>, StoreError> {
        let mut memories = Vec::with_capacity(ids.len());
        for &id in ids {
            memories.extend(self.memory(id)?);
        }
        Ok(memories)
    }

    /// The embeddings of the memories numbered above `after`, by number: of
    /// every memory but the person's name, which recall leaves to every
    /// conversation's opening (searched, it would take a place that another
    /// memory could have).
    pub fn memory_vectors(&self, after: i64) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        self.connection
            .prepare_cached(
                "SELECT memory_vectors.memory_id, memory_vectors.vector FROM memory_vectors \
                 JOIN memories ON memories.id = memory_vectors.memory_id \
                 WHERE memory_vectors.memory_id > ?1 AND memories.kind != 'name' ORDER BY memory_vectors.memory_id",
            )
            .and_then(|mut statement| statement.query_map([after], |row| Ok((row.get(0)?, row.get(1)?)))?.collect())
            .map_err(|error| self.error(error))
    }

    /// The memories that have no embedding yet (kept while the embedding
    /// model was missing), with their words.
    pub fn memories_without_vectors(&self) -> Result<Vec<(i64, String)>, StoreError> {
        self.connection
            .prepare_cached(
                "SELECT id, content FROM memories WHERE id NOT IN (SELECT memory_id FROM memory_vectors) ORDER BY id",
            )
            .and_then(|mut statement| statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect())
            .map_err(|error| self.error(error))
    }

    /// Gives memory `id` its embedding.
    pub fn set_memory_vector(&mut self, id: i64, vector: &[u8]) -> Result<(), StoreError> {
        self.write(|transaction| set_vector(transaction, id, vector))
    }

    /// A number that changes whenever another connection (another Workly:
    /// `workly memory forget`, say) changed the database: what a cache of
    /// its contents checks before it is trusted.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.connection.pragma_query_value(None, "data_version", |row| row.get(0)).map_err(|error| self.error(error))
    }

    fn query_memories(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<Vec<StoredMemory>, StoreError> {
        let mut statement = self.connection.prepare_cached(sql).map_err(|error| self.error(error))?;
        statement.query_map(params, memory_from_row).and_then(Iterator::collect).map_err(|error| self.error(error))
    }

    /// Rewrites memory `id` as `content` (the person corrects it), with the
    /// embedding of its new words if there is one.
    pub fn edit_memory(&mut self, id: i64, content: &str, vector: Option<&[u8]>) -> Result<(), StoreError> {
        validate(content)?;
        let edited = self.write(|transaction| {
            let edited = transaction.execute(
                "UPDATE memories SET content = ?2, updated_at_ms = ?3 WHERE id = ?1",
                params![id, content, now_ms()],
            )?;
            if edited > 0 {
                transaction.execute("DELETE FROM memories_fts WHERE rowid = ?1", [id])?;
                transaction.execute(
                    "INSERT INTO memories_fts (rowid, terms) VALUES (?1, ?2)",
                    params![id, terms::index_terms(content)],
                )?;
                // The old words' embedding would find the memory by what it no longer says.
                transaction.execute("DELETE FROM memory_vectors WHERE memory_id = ?1", [id])?;
                if let Some(vector) = vector {
                    set_vector(transaction, id, vector)?;
                }
            }
            Ok(edited > 0)
        })?;
        if !edited {
            return Err(StoreError::UnknownMemory(id));
        }
        // The words it replaced are forgotten too.
        self.purge_log()
    }

    /// Keeps `memories` found after the exchange was saved (by the model,
    /// while the person read) in the person's newest message of
    /// `conversation`, their sources ranges of it, if that message still
    /// reads `said`: one changed meanwhile (a forgotten sentence) keeps
    /// nothing. Returns how many are new.
    pub fn remember_in_newest(
        &mut self,
        conversation: &ConversationRef,
        said: &str,
        memories: &[NewMemory],
    ) -> Result<usize, StoreError> {
        self.write(|transaction| {
            let newest: Option<(i64, String)> = transaction
                .query_row(
                    "SELECT id, content FROM messages WHERE conversation_id = ?1 AND role = 'user'
                     ORDER BY id DESC LIMIT 1",
                    [conversation.id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            match newest {
                Some((id, content)) if content == said => {
                    Self::keep_memories(transaction, Some(conversation), Some(id), memories, now_ms())
                }
                _ => Ok(0),
            }
        })
    }

    /// Forgets the memories numbered `ids`: each row, its index entry, the
    /// sentence it came from in the history, which becomes [`FORGOTTEN`],
    /// and the recap of that conversation (see [`super::recaps`]).
    /// Returns how many there were. An unknown number forgets nothing.
    pub fn forget_memories(&mut self, ids: &[i64]) -> Result<usize, StoreError> {
        for &id in ids {
            if self.memory(id)?.is_none() {
                return Err(StoreError::UnknownMemory(id));
            }
        }
        let forgotten = self.write(|transaction| {
            let mut forgotten = 0;
            for &id in ids {
                if forget(transaction, id)? {
                    forgotten += 1;
                }
            }
            Ok(forgotten)
        })?;
        self.purge_log()?;
        Ok(forgotten)
    }

    /// Forgets every memory (see [`Store::forget_memories`]); returns how many there were.
    pub fn forget_all_memories(&mut self) -> Result<usize, StoreError> {
        let ids: Vec<i64> = self
            .connection
            .prepare("SELECT id FROM memories")
            .and_then(|mut statement| statement.query_map([], |row| row.get(0))?.collect())
            .map_err(|error| self.error(error))?;
        self.forget_memories(&ids)
    }

    /// Runs `work` in one write transaction.
    pub(super) fn write<T>(
        &mut self,
        work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let display = self.path.display().to_string();
        let sqlite = |source| classify(&display, source);
        let transaction = self.connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sqlite)?;
        let value = work(&transaction).map_err(sqlite)?;
        transaction.commit().map_err(sqlite)?;
        Ok(value)
    }

    /// Moves the write-ahead log into the database and empties it, so the
    /// pages a deletion overwrote are not left in the log. Another Workly
    /// reading at that moment keeps the log from emptying: the next
    /// checkpoint finishes the job.
    fn purge_log(&self) -> Result<(), StoreError> {
        self.connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(|error| self.error(error))
    }

    /// Compacts the database file (`VACUUM`): freed pages leave it.
    pub fn vacuum(&self) -> Result<(), StoreError> {
        self.connection.execute_batch("VACUUM").map_err(|error| self.error(error))?;
        self.purge_log()
    }
}

/// Sets memory `id`'s embedding.
fn set_vector(transaction: &Transaction<'_>, id: i64, vector: &[u8]) -> rusqlite::Result<()> {
    transaction
        .prepare_cached("INSERT OR REPLACE INTO memory_vectors (memory_id, vector) VALUES (?1, ?2)")?
        .execute(params![id, vector])?;
    Ok(())
}

/// Removes memory `id`, its index entry and its embedding (which goes with
/// it: the foreign key cascades).
fn delete_memory(transaction: &Transaction<'_>, id: i64) -> rusqlite::Result<()> {
    transaction.prepare_cached("DELETE FROM memories_fts WHERE rowid = ?1")?.execute([id])?;
    transaction.prepare_cached("DELETE FROM memories WHERE id = ?1")?.execute([id])?;
    Ok(())
}

/// Forgets memory `id`: see [`Store::forget_memories`]. False if there is none.
fn forget(transaction: &Transaction<'_>, id: i64) -> rusqlite::Result<bool> {
    let found: Option<(Option<i64>, Option<i64>, Option<i64>)> = transaction
        .query_row("SELECT message_id, source_start, source_end FROM memories WHERE id = ?1", [id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let Some((message, start, end)) = found else { return Ok(false) };
    // The recap of the conversation it was said in may hold its words.
    transaction.execute(
        "DELETE FROM recaps WHERE conversation_id = (SELECT conversation_id FROM memories WHERE id = ?1)",
        [id],
    )?;
    delete_memory(transaction, id)?;
    let (Some(message), Some(start), Some(end)) = (message, start, end) else { return Ok(true) };
    let content: Option<String> =
        transaction.query_row("SELECT content FROM messages WHERE id = ?1", [message], |row| row.get(0)).optional()?;
    let Some(mut content) = content else { return Ok(true) };
    let (start_byte, end_byte) = (usize::try_from(start).unwrap_or(0), usize::try_from(end).unwrap_or(0));
    // A range that no longer fits the message (edited by another program) is left alone.
    if content.get(start_byte..end_byte).is_none() {
        return Ok(true);
    }
    content.replace_range(start_byte..end_byte, FORGOTTEN);
    transaction.execute("UPDATE messages SET content = ?2 WHERE id = ?1", params![message, content])?;
    // The message's other memories from within this sentence (two facts in
    // one) point at the mark now; those after it moved.
    transaction.execute(
        "UPDATE memories SET source_start = ?2, source_end = ?2 + ?3
         WHERE message_id = ?1 AND source_start >= ?2 AND source_start < ?4",
        params![message, start, FORGOTTEN.len() as i64, end],
    )?;
    let shift = FORGOTTEN.len() as i64 - (end - start);
    transaction.execute(
        "UPDATE memories SET source_start = source_start + ?3, source_end = source_end + ?3
         WHERE message_id = ?1 AND source_start >= ?2",
        params![message, end, shift],
    )?;
    Ok(true)
}
