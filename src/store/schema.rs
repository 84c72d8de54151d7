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
    // 2: long-term memories: facts about the person, each with where it was said.
    //
    // `source_start`/`source_end` are the byte range of the sentence in the
    // source message, so that forgetting a memory can take its sentence out of
    // the history too. The memory index is contentless (the text is stored
    // once, in `memories`) and holds stemmed terms computed by Workly, which
    // SQLite cannot do for French; `contentless_delete` lets rows leave it.
    // FTS5's `secure-delete` makes a deleted row's terms leave the index at
    // once rather than at the next merge, here and for messages: forgetting
    // leaves no trace. `memories_by_words` finds a memory said again (and
    // the one of a single kind to replace) without reading them all. A
    // memory's embedding (for semantic recall) is a blob Workly encodes; it
    // goes with its memory. `memories_vocab` tells in how many memories each
    // stem is, so a search can leave out the words too common to tell.
    "CREATE TABLE memories (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('name', 'home', 'work', 'person', 'pet', 'like', 'dislike', 'event', 'fact')),
        content TEXT NOT NULL CHECK (length(content) > 0),
        event_date TEXT CHECK (event_date IS NULL OR event_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
        conversation_id INTEGER REFERENCES conversations(id) ON DELETE SET NULL,
        message_id INTEGER REFERENCES messages(id) ON DELETE SET NULL,
        source_start INTEGER,
        source_end INTEGER,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    );
    CREATE INDEX memories_by_words ON memories(kind, lower(content));
    CREATE INDEX memories_by_message ON memories(message_id);
    CREATE INDEX memories_by_conversation ON memories(conversation_id);
    CREATE TABLE memory_vectors (
        memory_id INTEGER PRIMARY KEY REFERENCES memories(id) ON DELETE CASCADE,
        vector BLOB NOT NULL
    );
    CREATE VIRTUAL TABLE memories_fts USING fts5(
        terms,
        content = '',
        contentless_delete = 1,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE VIRTUAL TABLE memories_vocab USING fts5vocab(memories_fts, 'row');
    INSERT INTO memories_fts(memories_fts, rank) VALUES ('secure-delete', 1);
    INSERT INTO messages_fts(messages_fts, rank) VALUES ('secure-delete', 1);",
    // 3: each conversation's recap: a summary of its turns that left the
    // context window, up to and including message `through_message_id`,
    // rewritten as more turns leave. It goes with its conversation.
    "CREATE TABLE recaps (
        conversation_id INTEGER PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
        content TEXT NOT NULL CHECK (length(content) > 0),
        through_message_id INTEGER NOT NULL,
        created_at_ms INTEGER NOT NULL
    );",
    // 4: the memories' embeddings are made as e5 queries, as messages are
    // (see `llm::embed`); those made before as passages cannot be compared
    // with them, and go. The next start embeds every memory again.
    "DELETE FROM memory_vectors;",
];

/// The schema version this Workly writes: every migration applied.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Statements that name every table and column a database of at least the
/// given version has. Preparing them reads the schema only; a database they
/// do not fit had its tables changed by another program (or damaged) and is
/// refused, untouched, like a damaged file.
pub const SHAPE: &[(i64, &str)] = &[
    (1, "SELECT id, name, created_at_ms, updated_at_ms FROM conversations"),
    (1, "SELECT id, conversation_id, role, content, emotion, intensity, token_count, created_at_ms FROM messages"),
    (1, "SELECT rowid, content FROM messages_fts"),
    (
        2,
        "SELECT id, kind, content, event_date, conversation_id, message_id, source_start, source_end, \
         created_at_ms, updated_at_ms FROM memories",
    ),
    (2, "SELECT memory_id, vector FROM memory_vectors"),
    (2, "SELECT rowid, terms FROM memories_fts"),
    (2, "SELECT term, doc FROM memories_vocab"),
    (3, "SELECT conversation_id, content, through_message_id, created_at_ms FROM recaps"),
];
