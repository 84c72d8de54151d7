//! Unit tests of the store on real SQLite files in temporary directories.

use super::*;

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join(FILE_NAME)).unwrap()
}

fn exchange(store: &mut Store, conversation: &ConversationRef, user: &str, reply: &str) {
    store.append_exchange(conversation, &NewMessage::new(user, 4), &NewMessage::new(reply, 6)).unwrap();
}

#[test]
fn bundled_sqlite_has_fts5_and_the_schema_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let version: i64 = store.connection.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap();
    assert_eq!(version, schema::VERSION);
    let fts5: bool =
        store.connection.query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |row| row.get(0)).unwrap();
    assert!(fts5);
    let journal: String = store.connection.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
    assert_eq!(journal, "wal");
    // 2 is FULL: see the module documentation.
    let synchronous: i64 = store.connection.pragma_query_value(None, "synchronous", |row| row.get(0)).unwrap();
    assert_eq!(synchronous, 2);
}

#[test]
fn exchanges_round_trip_with_emotion_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let conversation = store.open_conversation("tea").unwrap();
    let user = NewMessage { created_at_ms: 1_764_176_400_000, ..NewMessage::new("I like green tea", 5) };
    let reply = NewMessage { emotion: Some(Emotion::Joy), intensity: Some(0.75), ..NewMessage::new("Me too!", 3) };
    store.append_exchange(&conversation, &user, &reply).unwrap();
    exchange(&mut store, &conversation, "And coffee?", "Less so.");
    let messages = store.messages(&conversation).unwrap();
    let contents: Vec<_> = messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["I like green tea", "Me too!", "And coffee?", "Less so."]);
    assert_eq!(messages[0].role, Role::User);
    assert_eq!(messages[0].created_at, "2025-11-26T17:00:00.000Z");
    assert_eq!((messages[0].emotion, messages[0].intensity, messages[0].token_count), (None, None, 5));
    assert_eq!(
        (messages[1].role, messages[1].emotion, messages[1].intensity),
        (Role::Assistant, Some(Emotion::Joy), Some(0.75))
    );
    // Opening it again by name finds the same conversation.
    assert_eq!(store.open_conversation("tea").unwrap(), conversation);
    let summary = store.summary(&conversation).unwrap();
    assert_eq!((summary.name.as_str(), summary.message_count), ("tea", 4));
}

#[test]
fn an_exchange_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let conversation = store.open_conversation("x").unwrap();
    // The schema refuses an intensity above 1: the reply fails, so the user
    // message written before it in the same transaction must not stay.
    let bad = NewMessage { intensity: Some(3.0), ..NewMessage::new("reply", 1) };
    assert!(store.append_exchange(&conversation, &NewMessage::new("hello", 1), &bad).is_err());
    assert!(store.messages(&conversation).unwrap().is_empty());
}

#[test]
fn recent_messages_fit_a_token_budget_and_start_with_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let conversation = store.open_conversation("long").unwrap();
    for i in 0..5 {
        exchange(&mut store, &conversation, &format!("question {i}"), &format!("answer {i}"));
    }
    // Each exchange is 4 + 6 tokens: 24 tokens hold two exchanges and a lone
    // answer, which is dropped so that the history starts with the user.
    let recent = store.recent_messages(&conversation, 24).unwrap();
    let contents: Vec<_> = recent.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["question 3", "answer 3", "question 4", "answer 4"]);
    assert!(store.recent_messages(&conversation, 5).unwrap().is_empty());
    assert_eq!(store.recent_messages(&conversation, usize::MAX).unwrap().len(), 10);
}

#[test]
fn fresh_names_count_up_and_latest_follows_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    assert_eq!(store.latest_conversation().unwrap(), None);
    let first = store.new_conversation().unwrap();
    assert_eq!(first.name, "chat-1");
    store.open_conversation("chat-7").unwrap();
    store.open_conversation("chat-x").unwrap();
    let next = store.new_conversation().unwrap();
    assert_eq!(next.name, "chat-8");
    std::thread::sleep(Duration::from_millis(5));
    exchange(&mut store, &first, "hi", "hello");
    assert_eq!(store.latest_conversation().unwrap(), Some(first));
}

#[test]
fn bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    for name in ["", "  ", " padded", "line\nbreak", &"x".repeat(101)] {
        let error = store.open_conversation(name).unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidName { .. }) && error.class() == Class::BadInput,
            "{name:?}: {error}"
        );
    }
    let error = store.conversation("nobody").unwrap_err();
    assert_eq!(error.to_string(), "no conversation named `nobody` (see `workly history list`)");
    assert_eq!(error.class(), Class::BadInput);
}

#[test]
fn delete_removes_messages_and_their_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let kept = store.open_conversation("kept").unwrap();
    let gone = store.open_conversation("gone").unwrap();
    exchange(&mut store, &kept, "lighthouse keeper", "a quiet job");
    exchange(&mut store, &gone, "lighthouse dreams", "blue light");
    assert_eq!(store.delete_conversation("gone").unwrap(), 2);
    assert!(matches!(store.conversation("gone"), Err(StoreError::UnknownConversation(_))));
    let hits = store.search("lighthouse", None, 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].conversation, "kept");
    let rows: i64 = store.connection.query_row("SELECT count(*) FROM messages_fts", [], |row| row.get(0)).unwrap();
    assert_eq!(rows, 2);
    // Writing to a conversation deleted under our feet is an error, not a crash.
    let error = store.append_exchange(&gone, &NewMessage::new("a", 1), &NewMessage::new("b", 1)).unwrap_err();
    assert!(matches!(error, StoreError::Deleted(_)));
    assert!(matches!(store.delete_conversation("gone"), Err(StoreError::UnknownConversation(_))));
}

#[test]
fn search_treats_quotes_and_operators_as_words() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let conversation = store.open_conversation("q").unwrap();
    exchange(&mut store, &conversation, "Do you like \"green\" tea AND NOT coffee?", "C'est l'été, I prefer iced tea.");
    exchange(&mut store, &conversation, "What about c++ or NEAR(x y)?", "Curly braces * everywhere ^^");
    for text in ["\"green", "AND NOT", "c++", "NEAR(x", "tea*", "^^ *", "content:tea", "\"\"", "(", "-tea"] {
        store.search(text, None, 10).unwrap_or_else(|error| panic!("{text:?}: {error}"));
    }
    let hits = store.search("\"green\" coffee", None, 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].snippet, "Do you like \"[green]\" tea AND NOT [coffee]?");
    assert_eq!(store.search("NOT", None, 10).unwrap().len(), 1);
    // Diacritics are folded both ways.
    assert_eq!(store.search("ete", None, 10).unwrap()[0].role, Role::Assistant);
    assert_eq!(store.search("tea", Some(&conversation), 1).unwrap().len(), 1);
    assert!(store.search("!!!", None, 10).unwrap().is_empty());
    let empty = store.open_conversation("empty").unwrap();
    assert!(store.search("tea", Some(&empty), 10).unwrap().is_empty());
}

#[test]
fn recall_skips_the_messages_still_in_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let conversation = store.open_conversation("r").unwrap();
    let other = store.open_conversation("other").unwrap();
    exchange(&mut store, &conversation, "My cat is called Miso.", "What a lovely name for a cat!");
    exchange(&mut store, &other, "Miso soup is great.", "Indeed.");
    exchange(&mut store, &conversation, "I went hiking today.", "Sounds fun.");
    let all = store.recall(&conversation, "Do you remember my cat Miso?", 0, 3).unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0], Recollection { role: Role::User, snippet: "My cat is called Miso.".to_owned() });
    // With the newest two messages in the window, the older ones still come back...
    assert_eq!(store.recall(&conversation, "Miso", 2, 3).unwrap().len(), 1);
    // ...but not once the window holds them all, nor from another conversation.
    assert!(store.recall(&conversation, "Miso", 4, 3).unwrap().is_empty());
    assert!(store.recall(&conversation, "hiking", 2, 3).unwrap().is_empty());
    assert_eq!(store.recall(&conversation, "cat", 0, 1).unwrap().len(), 1);
    assert!(store.recall(&conversation, "what do you think?", 0, 3).unwrap().is_empty());
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let conversation = store.open_conversation("kept").unwrap();
    exchange(&mut store, &conversation, "remember the lighthouse", "I will");
    drop(store);
    let store = open(&dir);
    let conversation = store.conversation("kept").unwrap();
    assert_eq!(store.messages(&conversation).unwrap().len(), 2);
    assert_eq!(store.search("lighthouse", None, 5).unwrap().len(), 1);
}

/// The file's bytes and the names of every file beside it.
fn snapshot(dir: &Path, path: &Path) -> (Vec<u8>, Vec<std::ffi::OsString>) {
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    names.sort();
    (std::fs::read(path).unwrap(), names)
}

#[test]
fn foreign_and_damaged_files_are_refused_and_left_untouched() {
    let random: Vec<u8> = (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut damaged = SQLITE_HEADER.to_vec();
    damaged.extend_from_slice(&random);
    let foreign = tempfile::tempdir().unwrap();
    let foreign_path = foreign.path().join("other.db");
    Connection::open(&foreign_path).unwrap().execute_batch("CREATE TABLE notes (text TEXT);").unwrap();
    let foreign_bytes = std::fs::read(&foreign_path).unwrap();
    let cases: [(&str, &[u8]); 5] = [
        ("text", b"my notes about Kira\nnothing to see here\n"),
        ("random", &random),
        ("damaged", &damaged),
        ("short", b"SQLite"),
        ("another program's", &foreign_bytes),
    ];
    for (name, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, bytes).unwrap();
        let before = snapshot(dir.path(), &path);
        let error = Store::open(&path).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt { .. }) && error.class() == Class::BadInput, "{name}: {error}");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()) && !message.contains('\n'), "{name}: {message}");
        assert_eq!(snapshot(dir.path(), &path), before, "{name}: the file or its directory changed");
    }
}

#[test]
fn a_database_whose_tables_were_changed_is_refused_and_left_untouched() {
    let altered = [
        "DROP TABLE memory_vectors; CREATE TABLE memory_vectors (id INTEGER PRIMARY KEY, data BLOB);",
        "ALTER TABLE memories DROP COLUMN event_date;",
        "DROP TABLE messages_fts;",
    ];
    for change in altered {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        drop(open(&dir));
        Connection::open(&path).unwrap().execute_batch(change).unwrap();
        let before = snapshot(dir.path(), &path);
        let error = Store::open(&path).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt { .. }) && error.class() == Class::BadInput, "{change}: {error}");
        assert!(error.to_string().contains("not the ones Workly's schema"), "{error}");
        assert_eq!(snapshot(dir.path(), &path), before, "{change}: the file or its directory changed");
    }
}

#[test]
fn a_database_from_a_newer_workly_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    drop(open(&dir));
    {
        let connection = Connection::open(&path).unwrap();
        connection.pragma_update(None, "user_version", schema::VERSION + 1).unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let error = Store::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::TooNew { found, .. } if found == schema::VERSION + 1), "{error}");
    assert_eq!(error.class(), Class::BadInput);
    assert!(error.to_string().contains("newer Workly"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn an_empty_file_becomes_a_database_and_missing_directories_are_made() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, b"").unwrap();
    Store::open(&path).unwrap().open_conversation("a").unwrap();
    let nested = dir.path().join("a/b").join(FILE_NAME);
    Store::open(&nested).unwrap();
    assert!(nested.is_file());
}

#[test]
fn an_unreadable_path_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: reading it fails.
    let path = dir.path().join(FILE_NAME);
    std::fs::create_dir(&path).unwrap();
    let error = Store::open(&path).unwrap_err();
    assert!(error.to_string().contains(&path.display().to_string()), "{error}");
    assert_eq!(error.class(), Class::Failure);
}

mod memories {
    use super::*;
    use crate::store::memories::{FORGOTTEN, MemoryKind, NewMemory, StoredMemory};

    /// A memory said as `range` of a message.
    fn said(kind: MemoryKind, message: &str, range: std::ops::Range<usize>) -> NewMemory {
        NewMemory { source: Some(range.clone()), ..NewMemory::given(kind, &message[range]) }
    }

    /// Writes an exchange whose user message is `user`, keeping `memories` from it.
    fn tell(store: &mut Store, conversation: &ConversationRef, user: &str, memories: &[NewMemory]) -> usize {
        store
            .append_exchange_remembering(
                conversation,
                &NewMessage::new(user, 8),
                &NewMessage::new("Noted!", 2),
                memories,
            )
            .unwrap()
    }

    fn contents(memories: &[StoredMemory]) -> Vec<&str> {
        memories.iter().map(|memory| memory.content.as_str()).collect()
    }

    #[test]
    fn memories_are_kept_with_their_exchange_and_found_by_their_stems() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let week = store.open_conversation("week").unwrap();
        let cat = "Hello! My cat is called Miso.";
        assert_eq!(tell(&mut store, &week, cat, &[said(MemoryKind::Pet, cat, 7..29)]), 1);
        let french = "Je travaille comme infirmière à Lyon.";
        tell(&mut store, &week, french, &[said(MemoryKind::Work, french, 0..french.len())]);
        assert_eq!(store.memory_count().unwrap(), 2);
        let kept = store.memories().unwrap();
        assert_eq!(contents(&kept), [french, "My cat is called Miso."]);
        assert_eq!((kept[1].kind, kept[1].conversation.as_deref()), (MemoryKind::Pet, Some("week")));
        // Other forms of the words find them: "cats", "travailler", "infirmiere".
        assert_eq!(contents(&store.search_memories("How are the cats?", 5).unwrap()), ["My cat is called Miso."]);
        assert_eq!(contents(&store.search_memories("tu aimes travailler ?", 5).unwrap()), [french]);
        assert_eq!(contents(&store.search_memories("infirmiere", 5).unwrap()), [french]);
        assert!(store.search_memories("the weather", 5).unwrap().is_empty());
        // The same words again refresh the memory rather than double it.
        assert_eq!(tell(&mut store, &week, cat, &[said(MemoryKind::Pet, cat, 7..29)]), 0);
        assert_eq!(store.memory_count().unwrap(), 2);
    }

    #[test]
    fn words_in_too_many_memories_are_left_out_while_a_rarer_one_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let by_hand = |content: String| NewMemory::given(MemoryKind::Like, content);
        let mut memories: Vec<NewMemory> = (0..400).map(|i| by_hand(format!("I like thing number {i}"))).collect();
        memories.push(by_hand("I like jazz".to_owned()));
        store.add_memories(&memories).unwrap();
        // "thing" is in 400 memories: with "jazz" there, only "jazz" counts.
        assert_eq!(contents(&store.search_memories("my favourite thing? jazz", 50).unwrap()), ["I like jazz"]);
        // Alone, the common word still finds what it can.
        assert_eq!(store.search_memories("thing", 10).unwrap().len(), 10);
    }

    #[test]
    fn a_new_name_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let chat = store.open_conversation("c").unwrap();
        for message in ["My name is Sam", "Call me Alex"] {
            tell(&mut store, &chat, message, &[said(MemoryKind::Name, message, 0..message.len())]);
        }
        assert_eq!(contents(&store.memories_of(MemoryKind::Name).unwrap()), ["Call me Alex"]);
        assert!(store.search_memories("Sam", 5).unwrap().is_empty(), "the old name left the index too");
    }

    #[test]
    fn editing_reindexes_and_deleting_a_conversation_takes_its_memories() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let chat = store.open_conversation("c").unwrap();
        let message = "I love jazz";
        tell(&mut store, &chat, message, &[said(MemoryKind::Like, message, 0..11)]);
        let id = store.memories().unwrap()[0].id;
        store.edit_memory(id, "I love salsa", None).unwrap();
        assert!(matches!(store.edit_memory(id + 100, "nothing", None), Err(StoreError::UnknownMemory(_))));
        assert!(matches!(store.edit_memory(id, " ", None), Err(StoreError::InvalidMemory { .. })));
        assert_eq!(store.memory(id).unwrap().unwrap().content, "I love salsa");
        assert!(store.search_memories("jazz", 5).unwrap().is_empty());
        assert_eq!(store.search_memories("salsa", 5).unwrap().len(), 1);
        let by_hand = NewMemory::given(MemoryKind::Fact, "I keep bees");
        assert_eq!(store.add_memories(&[by_hand]).unwrap(), 1);
        store.delete_conversation("c").unwrap();
        assert_eq!(contents(&store.memories().unwrap()), ["I keep bees"], "memories given by hand stay");
        assert!(store.search_memories("salsa", 5).unwrap().is_empty());
    }

    /// Whether `text` is anywhere in the database's files, in any case (the
    /// index keeps words lowercased).
    fn on_disk(dir: &tempfile::TempDir, text: &str) -> bool {
        let text = text.to_ascii_lowercase();
        std::fs::read_dir(dir.path()).unwrap().any(|entry| {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap().to_ascii_lowercase();
            bytes.windows(text.len()).any(|window| window == text.as_bytes())
        })
    }

    #[test]
    fn forgetting_leaves_no_trace_in_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let chat = store.open_conversation("c").unwrap();
        let message = "Hi! My sister Zorblaxia lives in Quixotica; I hate rain.";
        let sister = said(MemoryKind::Person, message, 4..42);
        let rain = said(MemoryKind::Dislike, message, 44..55);
        tell(&mut store, &chat, message, &[sister, rain]);
        // Enough other memories that the index holds several pages and segments.
        for turn in 0..200 {
            let other = format!("I like topic number {turn} quite a lot");
            tell(&mut store, &chat, &other, &[said(MemoryKind::Like, &other, 0..other.len())]);
        }
        // A recap of the conversation that kept the words.
        let recap = crate::store::recaps::Recap {
            content: "They spoke of Zorblaxia, who lives in Quixotica.".to_owned(),
            through: 2,
        };
        assert!(store.set_recap(&chat, None, &[], &recap).unwrap());
        assert!(on_disk(&dir, "Zorblaxia"));
        let forgotten = store.search_memories("Zorblaxia", 5).unwrap();
        assert_eq!(store.forget_memories(&[forgotten[0].id]).unwrap(), 1);
        let again = store.forget_memories(&[forgotten[0].id]).unwrap_err();
        assert_eq!(again.to_string(), format!("no memory numbered {} (see `workly memory list`)", forgotten[0].id));
        store.vacuum().unwrap();
        assert!(!on_disk(&dir, "Zorblaxia") && !on_disk(&dir, "Quixotica"), "a trace is left");
        assert_eq!(store.recap(&chat).unwrap(), None, "the recap that held the words went");
        // The sentence left the history, and the rest of the message stayed.
        let messages = store.messages(&chat).unwrap();
        assert_eq!(messages[0].content, format!("Hi! {FORGOTTEN}; I hate rain."));
        assert!(store.search("Zorblaxia", None, 5).unwrap().is_empty());
        // The other memory of that message still points at its own words.
        let rain = store.search_memories("rain", 5).unwrap();
        assert_eq!(store.forget_memories(&[rain[0].id]).unwrap(), 1);
        assert_eq!(store.messages(&chat).unwrap()[0].content, format!("Hi! {FORGOTTEN}; {FORGOTTEN}."));
        assert_eq!(store.forget_all_memories().unwrap(), 200);
        assert_eq!(store.memory_count().unwrap(), 0);
        store.vacuum().unwrap();
        assert!(!on_disk(&dir, "topic number 17 quite"));
    }

    #[test]
    fn embeddings_go_with_their_memories_and_other_writers_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = open(&dir);
        let chat = store.open_conversation("c").unwrap();
        let message = "I love jazz";
        let with_vector = NewMemory { vector: Some(vec![1, 2, 3]), ..said(MemoryKind::Like, message, 0..11) };
        tell(&mut store, &chat, message, &[with_vector]);
        let other = "I hate rain";
        tell(&mut store, &chat, other, &[said(MemoryKind::Dislike, other, 0..11)]);
        let (jazz, rain) =
            (store.search_memory_ids("jazz", 1).unwrap()[0], store.search_memory_ids("rain", 1).unwrap()[0]);
        assert_eq!(store.memory_vectors(0).unwrap(), [(jazz, vec![1, 2, 3])]);
        assert_eq!(store.memories_without_vectors().unwrap(), [(rain, other.to_owned())]);
        store.set_memory_vector(rain, &[4, 5, 6]).unwrap();
        assert_eq!(store.memory_vectors(jazz).unwrap(), [(rain, vec![4, 5, 6])], "only those after `jazz`");
        // New words drop the old words' embedding, unless a new one comes.
        store.edit_memory(jazz, "I love salsa", None).unwrap();
        store.edit_memory(rain, "I hate snow", Some(&[7, 8, 9])).unwrap();
        assert_eq!(store.memory_vectors(0).unwrap(), [(rain, vec![7, 8, 9])]);
        // Another connection's write changes the data version; this one's does not.
        let version = store.data_version().unwrap();
        store.set_memory_vector(jazz, &[1, 1, 1]).unwrap();
        assert_eq!(store.data_version().unwrap(), version);
        open(&dir).forget_memories(&[rain]).unwrap();
        assert_ne!(store.data_version().unwrap(), version);
        assert_eq!(store.memory_vectors(0).unwrap(), [(jazz, vec![1, 1, 1])], "forgetting took the embedding");
        // The name is left to the opening: recall does not search it.
        let name = "My name is Sam";
        let named = NewMemory { vector: Some(vec![2, 2, 2]), ..said(MemoryKind::Name, name, 0..14) };
        tell(&mut store, &chat, name, &[named]);
        assert_eq!(store.memory_vectors(0).unwrap(), [(jazz, vec![1, 1, 1])]);
    }

    #[test]
    fn a_database_from_before_memories_is_migrated_with_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        {
            let connection = Connection::open(&path).unwrap();
            connection.execute_batch(schema::MIGRATIONS[0]).unwrap();
            connection.pragma_update(None, "user_version", 1).unwrap();
            connection
                .execute("INSERT INTO conversations (name, created_at_ms, updated_at_ms) VALUES ('old', 0, 0)", [])
                .unwrap();
            connection
                .execute(
                    "INSERT INTO messages (conversation_id, role, content, token_count, created_at_ms)
                     VALUES (1, 'user', 'My cat is called Miso', 5, 0)",
                    [],
                )
                .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        let old = store.conversation("old").unwrap();
        assert_eq!(store.messages(&old).unwrap()[0].content, "My cat is called Miso");
        assert_eq!(store.search("Miso", None, 5).unwrap().len(), 1);
        assert_eq!(store.memory_count().unwrap(), 0);
        let message = "I like tea";
        tell(&mut store, &old, message, &[said(MemoryKind::Like, message, 0..10)]);
        assert_eq!(store.search_memories("tea", 5).unwrap().len(), 1);
    }

    #[test]
    fn embeddings_made_before_version_4_go_and_their_memories_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        {
            let connection = Connection::open(&path).unwrap();
            for migration in &schema::MIGRATIONS[..3] {
                connection.execute_batch(migration).unwrap();
            }
            connection.pragma_update(None, "user_version", 3).unwrap();
            connection
                .execute(
                    "INSERT INTO memories (kind, content, created_at_ms, updated_at_ms) VALUES ('pet', 'My cat is Miso', 0, 0)",
                    [],
                )
                .unwrap();
            connection.execute("INSERT INTO memory_vectors (memory_id, vector) VALUES (1, x'010203')", []).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert!(store.memory_vectors(0).unwrap().is_empty());
        assert_eq!(store.memories_without_vectors().unwrap(), [(1, "My cat is Miso".to_owned())]);
    }
}
