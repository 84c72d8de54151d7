//! Durable memory through the real binary: a conversation survives a restart
//! and a `kill -9`, `workly history` lists, shows, searches, exports and
//! deletes, and a damaged or newer database is refused with exit 2 and left
//! untouched. Every test keeps its database in a temporary directory.

mod common;

use common::{assert_bad_input, assert_success, chat_lines, text, workly_in};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use workly::store::{FILE_NAME, NewMessage, Store};

/// `workly chat --conversation NAME --json` on the default model, short
/// greedy replies.
fn chat(dir: &Path, conversation: &str) -> Command {
    let mut command = workly_in(dir);
    command.args(["chat", "--model", common::small_model().to_str().unwrap(), "--json", "--temperature", "0"]);
    command.args(["--max-tokens", "8", "--conversation", conversation]);
    command
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("workly runs")
}

fn history(dir: &Path, args: &[&str]) -> Output {
    run(workly_in(dir).arg("history").args(args))
}

fn json(output: &Output) -> serde_json::Value {
    assert_success(output);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The contents of a conversation's messages, as `history export` gives them.
fn contents(dir: &Path, name: &str) -> Vec<String> {
    let export = json(&history(dir, &["export", name, "--format", "json"]));
    export["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_conversation_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (turns, _) = chat_lines(&mut chat(dir.path(), "trip"), &["I am planning a trip to Lisbon.", "I love trams."]);
    assert_eq!(turns.len(), 2);
    let stored = contents(dir.path(), "trip");
    assert_eq!(stored.len(), 4);
    assert_eq!((stored[0].as_str(), stored[2].as_str()), ("I am planning a trip to Lisbon.", "I love trams."));
    assert_eq!(stored[1], turns[0]["text"].as_str().unwrap(), "the reply is stored as it was shown");

    // A new process: the same question costs more prompt in `trip` than in a
    // fresh conversation, because the history came back with it.
    let (resumed, stderr) = chat_lines(&mut chat(dir.path(), "trip"), &["What should I see?"]);
    assert!(stderr.contains("Conversation `trip` (4 earlier messages loaded)"), "{stderr}");
    let (fresh, _) = chat_lines(&mut chat(dir.path(), "other"), &["What should I see?"]);
    let prompt = |turns: &[serde_json::Value]| turns[0]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt(&resumed) > prompt(&fresh) + 20, "{resumed:?} vs {fresh:?}");
    assert_eq!(contents(dir.path(), "trip").len(), 6);

    // `-p` with a conversation continues and stores it too; without one it
    // neither reads nor writes history.
    let output = run(chat(dir.path(), "trip").args(["-p", "And the food?"]));
    assert_success(&output);
    assert_eq!(contents(dir.path(), "trip")[6], "And the food?");
    let empty = tempfile::tempdir().unwrap();
    let output = run(workly_in(empty.path()).args([
        "chat",
        "--model",
        common::small_model().to_str().unwrap(),
        "--max-tokens",
        "4",
        "-p",
        "hi",
    ]));
    assert_success(&output);
    assert!(!empty.path().join(FILE_NAME).exists());
}

#[test]
fn without_a_name_the_chat_continues_the_latest_and_reset_starts_another() {
    let dir = tempfile::tempdir().unwrap();
    let plain = || {
        let mut command = workly_in(dir.path());
        let model = common::small_model();
        command.args(["chat", "--model", model.to_str().unwrap(), "--json", "--temperature", "0", "--max-tokens", "4"]);
        command
    };
    let (_, stderr) = chat_lines(&mut plain(), &["Hello!", "/reset", "Hi again."]);
    assert!(stderr.contains("Conversation `chat-1`") && stderr.contains("(new conversation `chat-2`)"), "{stderr}");
    assert_eq!(contents(dir.path(), "chat-1").len(), 2);
    assert_eq!(contents(dir.path(), "chat-1")[0], "Hello!");
    assert_eq!(contents(dir.path(), "chat-2")[0], "Hi again.");
    let (_, stderr) = chat_lines(&mut plain(), &["Still there?"]);
    assert!(stderr.contains("Conversation `chat-2` (2 earlier messages loaded)"), "{stderr}");
}

#[test]
fn older_turns_come_back_when_relevant_without_spoiling_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join(FILE_NAME)).unwrap();
    let long = store.open_conversation("long").unwrap();
    let mut exchange = |user: &str, reply: &str| {
        store.append_exchange(&long, &NewMessage::new(user, 20), &NewMessage::new(reply, 20)).unwrap();
    };
    exchange("My cat is called Miso and she loves cardboard boxes.", "Miso sounds like a wonderful cat!");
    for i in 0..12 {
        exchange(
            &format!("Let us talk about the weather on day {i}."),
            "It looks mild and sunny today, perfect for a walk.",
        );
    }
    drop(store);
    // A 256-token context holds the persona and a few recent exchanges: the
    // one about Miso is long gone from the window, but not from memory.
    let (turns, _) = chat_lines(
        chat(dir.path(), "long").args(["--context-size", "256"]),
        &["Do you remember my cat Miso?", "Which boxes does Miso like?"],
    );
    for turn in &turns {
        assert!(turn["recalled_messages"].as_u64().unwrap() >= 1, "{turn}");
    }
    // The note sits with the newest message, so the persona and the history
    // before it are still reused from the cache on the next turn.
    let second = &turns[1];
    let (prompt, cached) = (second["prompt_tokens"].as_u64().unwrap(), second["cached_tokens"].as_u64().unwrap());
    assert!(cached * 3 > prompt * 2, "most of the prompt is cached: {second}");
    // Stored messages stay as the person wrote them, without the note.
    assert_eq!(contents(dir.path(), "long")[26], "Do you remember my cat Miso?");
}

#[test]
fn every_reported_exchange_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child =
        chat(dir.path(), "crash").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..200 {
        writeln!(stdin, "Message number {i}, tell me a word.").unwrap();
    }
    stdin.flush().unwrap();
    // A turn's JSON line is written only once its exchange is committed.
    let mut reported = 0;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while reported < 5 {
        let line = lines.next().expect("the chat answers").unwrap();
        serde_json::from_str::<serde_json::Value>(&line).unwrap();
        reported += 1;
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();

    let path = dir.path().join(FILE_NAME);
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        let check: String = connection.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
        assert_eq!(check, "ok");
    }
    let store = Store::open(&path).unwrap();
    let messages = store.messages(&store.conversation("crash").unwrap()).unwrap();
    assert!(messages.len() >= reported * 2, "{} messages for {reported} reported exchanges", messages.len());
    assert!(messages.len().is_multiple_of(2), "exchanges are written whole");
    for (i, pair) in messages.chunks(2).enumerate() {
        assert_eq!(pair[0].content, format!("Message number {i}, tell me a word."));
    }
}

/// A database with two conversations, written through the library.
fn seeded() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let mut store = Store::open(&path).unwrap();
    let tea = store.open_conversation("tea").unwrap();
    let trip = store.open_conversation("trip").unwrap();
    let exchanges = [
        (&tea, "Do you like \"green\" tea AND NOT coffee?", "I love green tea, *especially* jasmine."),
        (&trip, "Lisbon has trams.", "Tram 28 is famous!"),
        (&tea, "What about oolong?", "Oolong is lovely too."),
    ];
    for (conversation, user, reply) in exchanges {
        store.append_exchange(conversation, &NewMessage::new(user, 10), &NewMessage::new(reply, 10)).unwrap();
    }
    (dir, path)
}

#[test]
fn a_start_that_fails_leaves_no_empty_conversation_behind() {
    let names = |dir: &Path| -> Vec<(String, u64)> {
        let list = json(&history(dir, &["list", "--json"]));
        let rows = list.as_array().unwrap().iter();
        rows.map(|row| (row["name"].as_str().unwrap().to_owned(), row["message_count"].as_u64().unwrap())).collect()
    };
    let (dir, _) = seeded();
    let broken = dir.path().join("page.gguf");
    std::fs::write(&broken, "<html><body>Not found</body></html>").unwrap();
    let broken = broken.to_str().unwrap();
    let before = names(dir.path());
    // A new name, an existing one, and the server's page conversation: the
    // model is refused before anything is said.
    for args in [
        &["chat", "--conversation", "fresh"][..],
        &["chat", "--conversation", "tea"],
        &["serve", "--port", "0", "--no-unity", "--conversation", "page"],
    ] {
        assert_bad_input(&run(workly_in(dir.path()).args(args).args(["--model", broken])), &["not a GGUF file"]);
    }
    // A server that cannot listen, after its conversation was opened.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let model = common::small_model();
    let args = ["serve", "--port", &port, "--no-unity", "--conversation", "late", "--model", model.to_str().unwrap()];
    let output = run(workly_in(dir.path()).args(args));
    assert!(!output.status.success() && text(&output.stderr).contains("cannot listen"), "{}", text(&output.stderr));
    assert_eq!(names(dir.path()), before, "only the seeded conversations, untouched");

    // Without a name, into an empty database: the chat would have started `chat-1`.
    let empty = tempfile::tempdir().unwrap();
    assert_bad_input(&run(workly_in(empty.path()).args(["chat", "--model", broken])), &["not a GGUF file"]);
    assert_eq!(names(empty.path()), []);
}

#[test]
fn history_lists_shows_and_searches() {
    let (dir, _) = seeded();
    let list = json(&history(dir.path(), &["list", "--json"]));
    let names: Vec<_> = list.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tea", "trip"], "most recently updated first");
    assert_eq!(list[0]["message_count"], 4);
    let text = text(&history(dir.path(), &["list"]).stdout);
    assert!(text.starts_with("NAME") && text.contains("tea") && text.contains("trip"), "{text}");

    let show = history(dir.path(), &["show", "trip"]);
    assert_success(&show);
    let transcript = String::from_utf8(show.stdout).unwrap();
    assert!(transcript.contains("you> Lisbon has trams.\n") && transcript.contains("Kira> Tram 28 is famous!"));

    // FTS syntax in what the user types is plain text, never an SQL error.
    for query in ["\"green", "AND NOT", "tea*", "NEAR(", "-coffee", "content:tea", "^", "'"] {
        assert_success(&history(dir.path(), &["search", "--", query]));
    }
    let hits = json(&history(dir.path(), &["search", "--json", "\"green\"", "tea"]));
    assert_eq!(hits.as_array().unwrap().len(), 2, "{hits}");
    assert!(hits[0]["snippet"].as_str().unwrap().contains("[green]"), "{hits}");
    let hits = json(&history(dir.path(), &["search", "--json", "--conversation", "trip", "tea", "OR", "tram"]));
    assert_eq!(hits.as_array().unwrap().len(), 0, "words are all required, OR is one of them");
    let hits = json(&history(dir.path(), &["search", "--json", "--conversation", "trip", "tram"]));
    assert_eq!(hits[0]["conversation"], "trip");
    // Flags after the words work as well as before them.
    let hits = json(&history(dir.path(), &["search", "tram", "--conversation", "trip", "--json"]));
    assert_eq!(hits[0]["conversation"], "trip");
    assert_bad_input(&history(dir.path(), &["search", "tea", "--conversation", "nope"]), &["nope"]);
}

#[test]
fn history_exports_json_and_markdown() {
    let (dir, _) = seeded();
    let export = json(&history(dir.path(), &["export", "tea", "--format", "json"]));
    assert_eq!(export["name"], "tea");
    let messages = export["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["emotion"], serde_json::Value::Null);
    assert_eq!(messages[3]["content"], "Oolong is lovely too.");
    assert!(messages[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let markdown = history(dir.path(), &["export", "tea", "--format", "markdown"]);
    assert_success(&markdown);
    let markdown = String::from_utf8(markdown.stdout).unwrap();
    assert!(markdown.starts_with("# tea\n"), "{markdown}");
    assert!(markdown.contains("> I love green tea, *especially* jasmine.\n"), "{markdown}");
    assert_eq!(markdown.matches("**you**").count(), 2);
}

#[test]
fn history_deletes_and_names_unknown_conversations() {
    let (dir, _) = seeded();
    let output = history(dir.path(), &["delete", "tea"]);
    assert_success(&output);
    assert!(text(&output.stderr).contains("deleted conversation `tea` (4 messages)"));
    let list = json(&history(dir.path(), &["list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(json(&history(dir.path(), &["search", "--json", "tea"])).as_array().unwrap().len(), 0);
    for args in [&["show", "tea"][..], &["export", "tea", "--format", "markdown"], &["delete", "tea"]] {
        assert_bad_input(&history(dir.path(), args), &["no conversation named `tea`"]);
    }
}

#[test]
fn a_damaged_database_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let name = path.display().to_string();
    assert_bad_input(&history(dir.path(), &["list"]), &[&name, "not a usable Workly database"]);
    // The chat refuses it before loading a model.
    let output = run(workly_in(dir.path()).args(["chat", "--model", "/nonexistent.gguf", "--conversation", "x"]));
    assert_bad_input(&output, &[&name]);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, [FILE_NAME], "no WAL or journal was created beside it");
}

#[test]
fn a_database_from_a_newer_workly_is_refused() {
    let (dir, path) = seeded();
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let before = std::fs::read(&path).unwrap();
    assert_bad_input(&history(dir.path(), &["list"]), &["newer Workly", "schema version 99"]);
    assert_eq!(std::fs::read(&path).unwrap(), before);
}
