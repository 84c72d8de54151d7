//! Durable memory: every conversation with Kira, in one SQLite file.
//!
//! The store owns `workly.db` in the data directory: its schema and migrations
//! ([`schema`]), writing completed exchanges, reading conversations back,
//! full-text search over what was said ([`query`] makes user text safe for
//! FTS5), and the `workly history` commands ([`history`]). It does not build
//! prompts or count tokens: `chat` decides what to load and what to recall.
//!
//! # Durability
//! The database runs in WAL mode with `synchronous = FULL`. A process killed
//! (`kill -9`, a crash) loses nothing committed under any setting, since a
//! commit is in the operating system's hands once it returns; but on a power
//! cut or a kernel panic, WAL with `NORMAL` may roll back the last commits,
//! because the WAL is only synced at checkpoints. `FULL` syncs the WAL at every
//! commit, so a turn reported done survives a power cut too. It costs one
//! `fsync` per turn: `workly-bench store` measured a median `append_exchange`
//! of 0.3 to 4 ms with FULL on the development VM's disk (depending on its
//! load), against 0.08 ms with NORMAL. That is the price of the guarantee, paid
//! once at the end of a reply that took seconds, and not noticeable there. WAL
//! (over a rollback journal) keeps it to one sync of one file, and lets
//! `workly history` read while a chat writes.
//!
//! # Damaged and foreign files
//! A file that is not a SQLite database, or that SQLite finds corrupt, is
//! refused with an error naming it, and left exactly as it was: the header is
//! checked before SQLite opens the file, and nothing is written (not even the
//! switch to WAL) before the schema version has been read successfully.

pub mod memories;
pub mod query;
pub mod recaps;
pub mod schema;
pub mod terms;

use crate::emotion::Emotion;
use crate::error::{Class, Classify};
use crate::llm::Role;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The database's file name in the data directory.
pub const FILE_NAME: &str = "workly.db";

/// How long a write waits for another Workly process (a chat and a `history
/// delete`, say) to finish its own before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Names given to conversations started without one: `chat-1`, `chat-2`, ...
const FRESH_NAME_PREFIX: &str = "chat-";

/// Longest conversation name accepted.
const MAX_NAME_CHARS: usize = 100;

/// The first bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Timestamps in milliseconds rendered as RFC 3339 (UTC), for queries.
macro_rules! rfc3339 {
    ($column:literal) => {
        concat!("strftime('%Y-%m-%dT%H:%M:%fZ', ", $column, " / 1000.0, 'unixepoch')")
    };
}
use rfc3339;

/// Most recent first. Two writes can share a millisecond, so the newest
/// message breaks the tie (ids only grow).
macro_rules! recency {
    () => {
        "updated_at_ms DESC, (SELECT max(id) FROM messages WHERE conversation_id = c.id) DESC, c.id DESC"
    };
}

/// The query behind [`ConversationSummary`], before its `WHERE` or `ORDER BY`.
macro_rules! summary_select {
    () => {
        concat!(
            "SELECT name, (SELECT count(*) FROM messages WHERE conversation_id = c.id), ",
            rfc3339!("created_at_ms"),
            ", ",
            rfc3339!("updated_at_ms"),
            " FROM conversations c"
        )
    };
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file is not a Workly database (not SQLite, another program's), or SQLite finds it damaged.
    #[error("`{path}` is not a usable Workly database ({reason}); it was left untouched: move it away to start afresh")]
    Corrupt {
        /// The database file.
        path: String,
        /// What is wrong, on one line.
        reason: String,
    },
    /// The database was written by a newer Workly with a schema this one does not know.
    #[error(
        "`{path}` was written by a newer Workly (schema version {found}, this one knows up to {supported}): upgrade Workly to open it"
    )]
    TooNew {
        /// The database file.
        path: String,
        /// Its schema version.
        found: i64,
        /// The newest version this Workly knows.
        supported: i64,
    },
    /// No conversation has this name.
    #[error("no conversation named `{0}` (see `workly history list`)")]
    UnknownConversation(String),
    /// A conversation name that cannot be used.
    #[error("invalid conversation name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No memory has this number.
    #[error("no memory numbered {0} (see `workly memory list`)")]
    UnknownMemory(i64),
    /// A memory's words that cannot be kept.
    #[error("invalid memory {content:?}: {reason}")]
    InvalidMemory {
        /// The words given.
        content: String,
        /// What is wrong with them.
        reason: &'static str,
    },
    /// The conversation was deleted (by another Workly process) while in use.
    #[error("conversation `{0}` was deleted while in use")]
    Deleted(String),
    /// The file or its directory could not be read or made.
    #[error("cannot access `{path}`: {source}")]
    Io {
        /// The database file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("database `{path}`: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl Classify for StoreError {
    /// Bad input when it comes from what the user gave (a file, a name).
    fn class(&self) -> Class {
        match self {
            StoreError::Corrupt { .. }
            | StoreError::TooNew { .. }
            | StoreError::UnknownConversation(_)
            | StoreError::InvalidName { .. }
            | StoreError::UnknownMemory(_)
            | StoreError::InvalidMemory { .. } => Class::BadInput,
            StoreError::Deleted(_) | StoreError::Io { .. } | StoreError::Sqlite { .. } => Class::Failure,
        }
    }
}

/// A stored conversation's handle, valid for the store that returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRef {
    id: i64,
    /// Its unique name.
    pub name: String,
}

/// A conversation as `workly history list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationSummary {
    /// Its unique name.
    pub name: String,
    /// Messages in it.
    pub message_count: usize,
    /// When it was started (RFC 3339, UTC).
    pub created_at: String,
    /// When its last exchange was written (RFC 3339, UTC).
    pub updated_at: String,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredMessage {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
    /// The emotion it showed, once analysed.
    pub emotion: Option<Emotion>,
    /// How strongly (0 to 1), once analysed.
    pub intensity: Option<f32>,
    /// Tokens in its content, as the model that wrote or read it counts them.
    pub token_count: usize,
    /// When it was sent (RFC 3339, UTC).
    pub created_at: String,
}

/// A message to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage<'a> {
    /// What was said.
    pub content: &'a str,
    /// Tokens in `content`.
    pub token_count: usize,
    /// The emotion it showed, if analysed.
    pub emotion: Option<Emotion>,
    /// How strongly (0 to 1), if analysed.
    pub intensity: Option<f32>,
    /// When it was sent, in Unix milliseconds.
    pub created_at_ms: i64,
}

impl<'a> NewMessage<'a> {
    /// A message sent now, not analysed for emotion.
    pub fn new(content: &'a str, token_count: usize) -> Self {
        Self { content, token_count, emotion: None, intensity: None, created_at_ms: now_ms() }
    }
}

/// A message found by [`Store::search`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The conversation it belongs to.
    pub conversation: String,
    /// Who said it.
    pub role: Role,
    /// The matching part, matched words in `[brackets]`.
    pub snippet: String,
    /// When it was sent (RFC 3339, UTC).
    pub created_at: String,
}

/// A piece of an earlier message brought back by [`Store::recall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recollection {
    /// Who said it.
    pub role: Role,
    /// The relevant words and a few around them.
    pub snippet: String,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// An open `workly.db`.
#[derive(Debug)]
pub struct Store {
    connection: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating it and its directory if needed) the database at `path`,
    /// migrating an older schema. A foreign, corrupt or newer file is refused
    /// and left untouched.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let display = path.display().to_string();
        check_header(path)?;
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io { path: display.clone(), source })?;
        }
        let sqlite = |source| classify(&display, source);
        let connection = Connection::open(path).map_err(sqlite)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        // The first reads: a damaged header or schema fails here, before anything
        // is written. (Switching to WAL writes the header of a database that is
        // not in WAL mode yet; every database Workly wrote already is.)
        let found: i64 = connection.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(sqlite)?;
        let objects: i64 =
            connection.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0)).map_err(sqlite)?;
        // Version 0 with tables in it is another program's database: Workly's
        // tables must not be added to it.
        if found == 0 && objects > 0 {
            return Err(StoreError::Corrupt {
                path: display,
                reason: "a SQLite database, but not Workly's".to_owned(),
            });
        }
        if found > schema::VERSION {
            return Err(StoreError::TooNew { path: display, found, supported: schema::VERSION });
        }
        for (since, statement) in schema::SHAPE.iter().filter(|(since, _)| *since <= found) {
            if let Err(error) = connection.prepare(statement) {
                let reason = format!(
                    "its tables are not the ones Workly's schema version {since} makes ({})",
                    error.to_string().replace('\n', " ")
                );
                return Err(StoreError::Corrupt { path: display, reason });
            }
        }
        // See the module documentation for why FULL.
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(())).map_err(sqlite)?;
        connection.pragma_update(None, "synchronous", "FULL").map_err(sqlite)?;
        connection.pragma_update(None, "foreign_keys", true).map_err(sqlite)?;
        // Deleted content is overwritten, not left in free space: forgetting is real.
        connection.pragma_update(None, "secure_delete", true).map_err(sqlite)?;
        let mut store = Self { connection, path: path.to_path_buf() };
        if found < schema::VERSION {
            store.migrate()?;
        }
        Ok(store)
    }

    /// Applies the migrations this database lacks, in one transaction. The
    /// version is read again under the write lock: another Workly may have
    /// migrated in between.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let display = self.path.display().to_string();
        let sqlite = |source| classify(&display, source);
        let transaction = self.connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sqlite)?;
        let found: i64 = transaction.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(sqlite)?;
        if found > schema::VERSION {
            return Err(StoreError::TooNew { path: display, found, supported: schema::VERSION });
        }
        for step in &schema::MIGRATIONS[usize::try_from(found).unwrap_or(0)..] {
            transaction.execute_batch(step).map_err(sqlite)?;
        }
        transaction.pragma_update(None, "user_version", schema::VERSION).map_err(sqlite)?;
        transaction.commit().map_err(sqlite)
    }

    /// The database's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        classify(&self.path.display().to_string(), source)
    }

    /// The conversation named `name`.
    pub fn conversation(&self, name: &str) -> Result<ConversationRef, StoreError> {
        self.find(name)?.ok_or_else(|| StoreError::UnknownConversation(name.to_owned()))
    }

    /// The conversation named `name`, if there is one.
    pub fn find(&self, name: &str) -> Result<Option<ConversationRef>, StoreError> {
        self.connection
            .prepare_cached("SELECT id FROM conversations WHERE name = ?1")
            .and_then(|mut statement| statement.query_row([name], |row| row.get(0)).optional())
            .map(|id| id.map(|id| ConversationRef { id, name: name.to_owned() }))
            .map_err(|error| self.error(error))
    }

    /// The conversation named `name`, started empty if there is none yet.
    pub fn open_conversation(&mut self, name: &str) -> Result<ConversationRef, StoreError> {
        validate_name(name)?;
        if let Some(conversation) = self.find(name)? {
            return Ok(conversation);
        }
        match insert_conversation(&self.connection, name) {
            Ok(id) => Ok(ConversationRef { id, name: name.to_owned() }),
            // Another process may have started it between the look-up and the insert.
            Err(error) => self.find(name)?.ok_or_else(|| self.error(error)),
        }
    }

    /// Starts a conversation with a name not used yet (`chat-N`, one more than
    /// the highest so far).
    pub fn new_conversation(&mut self) -> Result<ConversationRef, StoreError> {
        let display = self.path.display().to_string();
        let sqlite = |source| classify(&display, source);
        // Under the write lock, so two Workly processes cannot pick the same name.
        let transaction = self.connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sqlite)?;
        let highest: i64 = transaction
            .query_row(
                "SELECT coalesce(max(CAST(substr(name, ?2) AS INTEGER)), 0) FROM conversations WHERE name GLOB ?1",
                params![format!("{FRESH_NAME_PREFIX}[1-9]*"), FRESH_NAME_PREFIX.len() as i64 + 1],
                |row| row.get(0),
            )
            .map_err(sqlite)?;
        let name = format!("{FRESH_NAME_PREFIX}{}", highest + 1);
        let id = insert_conversation(&transaction, &name).map_err(sqlite)?;
        transaction.commit().map_err(sqlite)?;
        Ok(ConversationRef { id, name })
    }

    /// The conversation written to last, if any.
    pub fn latest_conversation(&self) -> Result<Option<ConversationRef>, StoreError> {
        self.connection
            .query_row(concat!("SELECT id, name FROM conversations c ORDER BY ", recency!(), " LIMIT 1"), [], |row| {
                Ok(ConversationRef { id: row.get(0)?, name: row.get(1)? })
            })
            .optional()
            .map_err(|error| self.error(error))
    }

    /// Every conversation, most recently updated first.
    pub fn conversations(&self) -> Result<Vec<ConversationSummary>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached(concat!(summary_select!(), " ORDER BY ", recency!()))
            .map_err(|error| self.error(error))?;
        statement.query_map([], summary_from_row).and_then(Iterator::collect).map_err(|error| self.error(error))
    }

    /// `conversation`'s name, size and times.
    pub fn summary(&self, conversation: &ConversationRef) -> Result<ConversationSummary, StoreError> {
        self.connection
            .prepare_cached(concat!(summary_select!(), " WHERE id = ?1"))
            .and_then(|mut statement| statement.query_row([conversation.id], summary_from_row).optional())
            .map_err(|error| self.error(error))?
            .ok_or_else(|| StoreError::UnknownConversation(conversation.name.clone()))
    }

    /// Every message of `conversation`, oldest first.
    pub fn messages(&self, conversation: &ConversationRef) -> Result<Vec<StoredMessage>, StoreError> {
        self.newest_within(conversation, i64::MAX)
    }

    /// The newest messages of `conversation` whose token counts add up to at
    /// most `max_tokens`, oldest first, starting with a user message so that
    /// roles alternate: what can still fit a context of that size, without
    /// reading a long history whole.
    pub fn recent_messages(
        &self,
        conversation: &ConversationRef,
        max_tokens: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let mut messages = self.newest_within(conversation, i64::try_from(max_tokens).unwrap_or(i64::MAX))?;
        let first_user = messages.iter().position(|message| message.role == Role::User).unwrap_or(messages.len());
        messages.drain(..first_user);
        Ok(messages)
    }

    /// The newest messages whose token counts add up to at most `max_tokens`, oldest first.
    fn newest_within(&self, conversation: &ConversationRef, max_tokens: i64) -> Result<Vec<StoredMessage>, StoreError> {
        let sql = concat!(
            "SELECT role, content, emotion, intensity, token_count, ",
            rfc3339!("created_at_ms"),
            " FROM (SELECT *, sum(token_count) OVER (ORDER BY id DESC) AS tokens_from_end
                    FROM messages WHERE conversation_id = ?1)
              WHERE tokens_from_end <= ?2 ORDER BY id"
        );
        let mut statement = self.connection.prepare_cached(sql).map_err(|error| self.error(error))?;
        statement
            .query_map(params![conversation.id, max_tokens], |row| {
                Ok(StoredMessage {
                    role: role_from(row.get_ref(0)?.as_str()?),
                    content: row.get(1)?,
                    emotion: row.get::<_, Option<String>>(2)?.and_then(|name| name.parse().ok()),
                    intensity: row.get::<_, Option<f64>>(3)?.map(|value| value as f32),
                    token_count: count(row, 4)?,
                    created_at: row.get(5)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(|error| self.error(error))
    }

    /// Writes a completed exchange, the person's message and Kira's reply, in
    /// one transaction: after a crash either both are there or neither is.
    /// When this returns, the exchange is durable (see the module documentation).
    pub fn append_exchange(
        &mut self,
        conversation: &ConversationRef,
        user: &NewMessage<'_>,
        assistant: &NewMessage<'_>,
    ) -> Result<(), StoreError> {
        self.append_exchange_remembering(conversation, user, assistant, &[]).map(|_| ())
    }

    /// Like [`Store::append_exchange`], keeping in the same transaction the
    /// `memories` found in the person's message (their sources are ranges of
    /// `user`'s content). Returns how many memories are new.
    pub fn append_exchange_remembering(
        &mut self,
        conversation: &ConversationRef,
        user: &NewMessage<'_>,
        assistant: &NewMessage<'_>,
        memories: &[memories::NewMemory],
    ) -> Result<usize, StoreError> {
        let display = self.path.display().to_string();
        let sqlite = |source| classify(&display, source);
        // IMMEDIATE takes the write lock up front, so a concurrent writer makes
        // this wait (busy timeout) instead of failing halfway.
        let transaction = self.connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sqlite)?;
        let updated = transaction
            .prepare_cached("UPDATE conversations SET updated_at_ms = ?2 WHERE id = ?1")
            .and_then(|mut statement| statement.execute(params![conversation.id, assistant.created_at_ms]))
            .map_err(sqlite)?;
        if updated == 0 {
            return Err(StoreError::Deleted(conversation.name.clone()));
        }
        {
            let mut insert = transaction
                .prepare_cached(
                    "INSERT INTO messages
                     (conversation_id, role, content, emotion, intensity, token_count, created_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sqlite)?;
            for (role, message) in [(Role::User, user), (Role::Assistant, assistant)] {
                insert
                    .execute(params![
                        conversation.id,
                        role.as_str(),
                        message.content,
                        message.emotion.map(Emotion::as_str),
                        message.intensity,
                        i64::try_from(message.token_count).unwrap_or(i64::MAX),
                        message.created_at_ms,
                    ])
                    .map_err(sqlite)?;
            }
        }
        // The assistant's message was written last: the person's is the one before.
        let said_in = transaction.last_insert_rowid() - 1;
        let kept =
            Self::keep_memories(&transaction, Some(conversation), Some(said_in), memories, assistant.created_at_ms)
                .map_err(sqlite)?;
        transaction.commit().map_err(sqlite)?;
        Ok(kept)
    }

    /// Deletes the conversation named `name`, its messages and the memories
    /// said in it; returns how many messages went.
    pub fn delete_conversation(&mut self, name: &str) -> Result<usize, StoreError> {
        let conversation = self.conversation(name)?;
        let display = self.path.display().to_string();
        let sqlite = |source| classify(&display, source);
        let transaction = self.connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sqlite)?;
        // What was learnt in it goes with it, index entries first.
        transaction
            .execute(
                "DELETE FROM memories_fts WHERE rowid IN (SELECT id FROM memories WHERE conversation_id = ?1)",
                [conversation.id],
            )
            .map_err(sqlite)?;
        transaction.execute("DELETE FROM memories WHERE conversation_id = ?1", [conversation.id]).map_err(sqlite)?;
        // Messages first and explicitly, so the FTS triggers see every row go.
        let messages = transaction
            .execute("DELETE FROM messages WHERE conversation_id = ?1", [conversation.id])
            .map_err(sqlite)?;
        transaction.execute("DELETE FROM conversations WHERE id = ?1", [conversation.id]).map_err(sqlite)?;
        transaction.commit().map_err(sqlite)?;
        Ok(messages)
    }

    /// Rewrites Kira's last reply in `conversation` as `content`, of
    /// `token_count` tokens (what she said of it before she was
    /// interrupted); false when the conversation has no reply.
    pub fn replace_last_reply(
        &mut self,
        conversation: &ConversationRef,
        content: &str,
        token_count: usize,
    ) -> Result<bool, StoreError> {
        self.connection
            .execute(
                "UPDATE messages SET content = ?2, token_count = ?3 WHERE id = \
                 (SELECT MAX(id) FROM messages WHERE conversation_id = ?1 AND role = ?4)",
                params![
                    conversation.id,
                    content,
                    i64::try_from(token_count).unwrap_or(i64::MAX),
                    Role::Assistant.as_str()
                ],
            )
            .map(|updated| updated > 0)
            .map_err(|error| self.error(error))
    }

    /// Deletes `conversation` if it holds no message (another process may
    /// have written to it since it was opened); true if it went.
    pub fn delete_if_empty(&mut self, conversation: &ConversationRef) -> Result<bool, StoreError> {
        self.connection
            .execute(
                "DELETE FROM conversations WHERE id = ?1 \
                 AND NOT EXISTS (SELECT 1 FROM messages WHERE conversation_id = ?1)",
                [conversation.id],
            )
            .map(|deleted| deleted > 0)
            .map_err(|error| self.error(error))
    }

    /// Messages containing every word of `text`, best matches first, in every
    /// conversation or only `within` one. Text with no words finds nothing.
    pub fn search(
        &self,
        text: &str,
        within: Option<&ConversationRef>,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let Some(query) = query::all_words(text) else { return Ok(Vec::new()) };
        let sql = concat!(
            "SELECT c.name, m.role, snippet(messages_fts, 0, '[', ']', '…', 16), ",
            rfc3339!("m.created_at_ms"),
            " FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
              JOIN conversations c ON c.id = m.conversation_id
              WHERE messages_fts MATCH ?1 AND (?2 IS NULL OR m.conversation_id = ?2)
              ORDER BY bm25(messages_fts), m.id LIMIT ?3"
        );
        let mut statement = self.connection.prepare_cached(sql).map_err(|error| self.error(error))?;
        statement
            .query_map(params![query, within.map(|c| c.id), i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
                Ok(SearchHit {
                    conversation: row.get(0)?,
                    role: role_from(row.get_ref(1)?.as_str()?),
                    snippet: row.get(2)?,
                    created_at: row.get(3)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(|error| self.error(error))
    }

    /// Up to `limit` pieces of `conversation`'s messages that share telling
    /// words with `text`, best first, leaving out its newest `skip_newest`
    /// messages (those still in the context window, which the model sees
    /// anyway). Each piece is a dozen words around the match at most.
    pub fn recall(
        &self,
        conversation: &ConversationRef,
        text: &str,
        skip_newest: usize,
        limit: usize,
    ) -> Result<Vec<Recollection>, StoreError> {
        let Some(query) = query::any_telling_word(text) else { return Ok(Vec::new()) };
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT m.role, snippet(messages_fts, 0, '', '', '…', 12)
                 FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid
                 WHERE messages_fts MATCH ?1 AND m.conversation_id = ?2
                   AND m.id NOT IN (SELECT id FROM messages WHERE conversation_id = ?2 ORDER BY id DESC LIMIT ?3)
                 ORDER BY bm25(messages_fts), m.id DESC LIMIT ?4",
            )
            .map_err(|error| self.error(error))?;
        let skip = i64::try_from(skip_newest).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        statement
            .query_map(params![query, conversation.id, skip, limit], |row| {
                Ok(Recollection { role: role_from(row.get_ref(0)?.as_str()?), snippet: row.get(1)? })
            })
            .and_then(Iterator::collect)
            .map_err(|error| self.error(error))
    }
}

/// A count stored as SQLite's signed integer (never negative: the schema checks).
fn count(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<usize> {
    Ok(usize::try_from(row.get::<_, i64>(index)?).unwrap_or_default())
}

fn summary_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationSummary> {
    Ok(ConversationSummary {
        name: row.get(0)?,
        message_count: count(row, 1)?,
        created_at: row.get(2)?,
        updated_at: row.get(3)?,
    })
}

/// Adds an empty conversation named `name`; returns its id.
fn insert_conversation(connection: &Connection, name: &str) -> rusqlite::Result<i64> {
    connection.execute(
        "INSERT INTO conversations (name, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?2)",
        params![name, now_ms()],
    )?;
    Ok(connection.last_insert_rowid())
}

/// The role stored as `name`; the schema only admits `user` and `assistant`.
fn role_from(name: &str) -> Role {
    if name == Role::User.as_str() { Role::User } else { Role::Assistant }
}

/// Refuses a file that exists, is not empty, and does not start like a SQLite
/// database, without letting SQLite near it. (An empty file is a valid empty
/// database to SQLite, and there is nothing in it to lose.)
fn check_header(path: &Path) -> Result<(), StoreError> {
    let display = || path.display().to_string();
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(StoreError::Io { path: display(), source }),
    };
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    file.by_ref()
        .take(SQLITE_HEADER.len() as u64)
        .read_to_end(&mut header)
        .map_err(|source| StoreError::Io { path: display(), source })?;
    if header.is_empty() || header == SQLITE_HEADER {
        return Ok(());
    }
    Err(StoreError::Corrupt { path: display(), reason: "not a SQLite database".to_owned() })
}

/// SQLite's error, told apart: a damaged file is [`StoreError::Corrupt`].
fn classify(path: &str, source: rusqlite::Error) -> StoreError {
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
            StoreError::Corrupt { path: path.to_owned(), reason: source.to_string().replace('\n', " ") }
        }
        _ => StoreError::Sqlite { path: path.to_owned(), source },
    }
}

/// Names are for people to type: not empty, not padded, no control characters.
fn validate_name(name: &str) -> Result<(), StoreError> {
    let invalid = |reason| Err(StoreError::InvalidName { name: name.to_owned(), reason });
    if name.trim().is_empty() {
        return invalid("it is empty");
    }
    if name.trim() != name {
        return invalid("it starts or ends with spaces");
    }
    if name.chars().any(char::is_control) {
        return invalid("it contains control characters");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return invalid("it is longer than 100 characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
