//! The database schema and its migrations.
//!
//! `PRAGMA user_version` holds how many of [`MIGRATIONS`] a database has
//! applied. Opening runs the missing ones, in order, in one transaction; a
//! database whose version is above [`VERSION`] was written by a newer Workly
//! and is refused rather than guessed at. Steps are only ever appended: a
//! released step never changes, or databases that already ran it would differ
//! from new ones.

/// Migration steps; step `i` takes a database from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: conversations, messages, and a full-text index over message content.
    //
    // Timestamps are Unix milliseconds (UTC): compact, ordered, and rendered as
    // RFC 3339 by the queries that show them. The FTS table is an external
    // content table over `messages` (the text is stored once) kept in step by
    // triggers; `remove_diacritics 2` lets "ete" find "été".
    "CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        emotion TEXT CHECK (emotion IN ('neutral', 'joy', 'angry', 'sorrow', 'fun', 'surprised')),
        intensity REAL CHECK (intensity BETWEEN 0.0 AND 1.0),
        token_count INTEGER NOT NULL CHECK (token_count >= 0),
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    CREATE INDEX conversations_by_update ON conversations(updated_at_ms);
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content,
        content = 'messages',
        content_rowid = 'id',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;",
];

/// The schema version this Workly writes: every migration applied.
pub const VERSION: i64 = MIGRATIONS.len() as i64;
