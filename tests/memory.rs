//! Long-term memory through the real binary and the real models: what the
//! person says in one conversation is learnt, recalled in another (by its
//! words, and by its meaning with the real embedding model), and can be
//! listed, searched, corrected, exported and forgotten; `--no-memory` and
//! `[memory] enabled = false` turn it off; bad input gets one line and exit 2.
//! While the person reads, the chat model finds a fact the rules missed,
//! and a long conversation's turns that left the context are recapped; the
//! recap stands in the opening of the turns after.

mod common;

use common::{assert_bad_input, assert_success, chat_lines, text, workly_in};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use workly::chat::history::History;
use workly::chat::turn::{Chat, ReplyOptions, Turn};
use workly::chat::{Conversation, Persona};
use workly::llm::{CancelToken, Engine, SamplingParams};
use workly::store::Store;

/// `workly chat --conversation NAME --json`, short greedy replies.
fn chat(dir: &Path, conversation: &str) -> Command {
    let mut command = workly_in(dir);
    command.args(["chat", "--model", common::small_model().to_str().unwrap(), "--json", "--temperature", "0"]);
    command.args(["--max-tokens", "8", "--conversation", conversation]);
    command
}

fn memory(dir: &Path, args: &[&str]) -> Output {
    workly_in(dir).arg("memory").args(args).stdin(Stdio::null()).output().expect("workly runs")
}

fn listed(dir: &Path) -> Vec<serde_json::Value> {
    let output = memory(dir, &["list", "--json"]);
    assert_success(&output);
    serde_json::from_slice::<Vec<serde_json::Value>>(&output.stdout).unwrap()
}

fn count(turn: &serde_json::Value, field: &str) -> u64 {
    turn[field].as_u64().unwrap_or_else(|| panic!("{field} missing from {turn}"))
}

#[test]
fn kira_remembers_across_conversations_and_the_person_is_in_charge() {
    let dir = tempfile::tempdir().unwrap();
    let (turns, _) = chat_lines(
        &mut chat(dir.path(), "monday"),
        &["My name is Zephyrine. My cat is called Pistachio!", "What a day."],
    );
    assert_eq!((count(&turns[0], "learned_memories"), count(&turns[1], "learned_memories")), (2, 0));
    let kept = listed(dir.path());
    let kinds: Vec<&str> = kept.iter().map(|memory| memory["kind"].as_str().unwrap()).collect();
    // Said at the same moment: the later in the message first.
    assert_eq!(kinds, ["pet", "name"]);
    assert_eq!(kept[0]["content"], "My cat is called Pistachio!");
    assert_eq!(kept[0]["conversation"], "monday");

    // Days later, another conversation: her name stands in its opening, and
    // the cat comes back into the prompt.
    let (turns, _) = chat_lines(&mut chat(dir.path(), "friday"), &["How is my cat doing, do you think?"]);
    assert_eq!(count(&turns[0], "recalled_memories"), 1, "{}", turns[0]);
    let (plain, _) = chat_lines(chat(dir.path(), "other").arg("--no-memory"), &["How is my cat doing, do you think?"]);
    assert_eq!(count(&plain[0], "recalled_memories"), 0);
    assert!(count(&turns[0], "prompt_tokens") > count(&plain[0], "prompt_tokens") + 10);

    // Search finds it by another form of the word; edit corrects it.
    let found = memory(dir.path(), &["search", "cats", "--json"]);
    assert_success(&found);
    let found: Vec<serde_json::Value> = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(found.len(), 1);
    let id = found[0]["id"].to_string();
    assert_success(&memory(dir.path(), &["edit", &id, "My", "cat", "is", "called", "Noisette"]));
    assert_eq!(listed(dir.path())[0]["content"], "My cat is called Noisette");
    let markdown = memory(dir.path(), &["export", "--format", "markdown"]);
    assert!(text(&markdown.stdout).contains("## pet\n\n- My cat is called Noisette"), "{}", text(&markdown.stdout));

    // Forgetting is for good: the memory goes, and so does its sentence in the history.
    let forgot = memory(dir.path(), &["forget", &id]);
    assert_success(&forgot);
    assert_eq!(text(&forgot.stderr), "forgot 1 memory\n");
    assert_bad_input(&memory(dir.path(), &["forget", &id]), &["no memory numbered", "workly memory list"]);
    let history = workly_in(dir.path()).args(["history", "show", "monday"]).output().unwrap();
    assert!(text(&history.stdout).contains("My name is Zephyrine. (forgotten)"), "{}", text(&history.stdout));
    assert_success(&memory(dir.path(), &["forget", "--all"]));
    assert!(listed(dir.path()).is_empty());
    let none = memory(dir.path(), &["list"]);
    assert!(text(&none.stdout).starts_with("Kira remembers nothing about you yet"));
}

#[test]
fn a_memory_comes_back_by_its_meaning_when_no_word_is_shared() {
    let dir = tempfile::tempdir().unwrap();
    common::link_embedder(dir.path());
    let (turns, stderr) = chat_lines(&mut chat(dir.path(), "monday"), &["I'm allergic to shellfish."]);
    assert_eq!(count(&turns[0], "learned_memories"), 1);
    assert!(!stderr.contains("recall by meaning is off"), "{stderr}");
    // "allergy" is not "allergic", "dinner" is not "shellfish": only meaning links them.
    let question = "Can you suggest a dinner? Keep my allergy in mind.";
    let (turns, _) = chat_lines(&mut chat(dir.path(), "friday"), &[question]);
    assert_eq!(count(&turns[0], "recalled_memories"), 1, "{}", turns[0]);
    // Without the embedding model, recall goes on by words, and says so once.
    std::fs::remove_file(dir.path().join("models").join(workly::llm::embed::DEFAULT_FILE)).unwrap();
    let (turns, stderr) = chat_lines(&mut chat(dir.path(), "saturday"), &[question, "What about shellfish?"]);
    assert!(stderr.contains("memory: recall by meaning is off"), "{stderr}");
    assert_eq!(stderr.matches("recall by meaning is off").count(), 1);
    assert_eq!((count(&turns[0], "recalled_memories"), count(&turns[1], "recalled_memories")), (0, 1));
    // A memory added while the model was missing gets its embedding when it is back.
    assert_success(&memory(dir.path(), &["add", "My", "cat", "is", "called", "Pistachio"]));
    common::link_embedder(dir.path());
    let (turns, _) = chat_lines(&mut chat(dir.path(), "sunday"), &["How is my kitty doing?"]);
    assert!(count(&turns[0], "recalled_memories") >= 1, "{}", turns[0]);
}

#[test]
fn memories_without_embeddings_get_them_at_the_next_start_and_a_long_wait_is_told() {
    use workly::store::memories::{MemoryKind, NewMemory};
    let dir = tempfile::tempdir().unwrap();
    common::link_embedder(dir.path());
    // As after an upgrade that changed how memories are embedded (or a
    // while without the embedding model): kept, but with no embedding.
    let likes: Vec<NewMemory> =
        (0..200).map(|at| NewMemory::given(MemoryKind::Like, format!("I like the number {at}"))).collect();
    Store::open(&dir.path().join("workly.db")).unwrap().add_memories(&likes).unwrap();
    let (_, stderr) = chat_lines(&mut chat(dir.path(), "first"), &["Hello"]);
    assert!(stderr.contains("memory: embedding 200 memories for recall by meaning (once)"), "{stderr}");
    let store = Store::open(&dir.path().join("workly.db")).unwrap();
    assert!(store.memories_without_vectors().unwrap().is_empty());
    assert_eq!(store.memory_vectors(0).unwrap().len(), 200);
    let (_, stderr) = chat_lines(&mut chat(dir.path(), "second"), &["Hello"]);
    assert!(!stderr.contains("embedding"), "once: {stderr}");
}

#[test]
fn memory_can_be_turned_off_and_given_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let (turns, _) = chat_lines(chat(dir.path(), "quiet").arg("--no-memory"), &["My name is Zephyrine."]);
    assert_eq!(count(&turns[0], "learned_memories"), 0);
    std::fs::write(dir.path().join("config.toml"), "[memory]\nenabled = false\n").unwrap();
    let (turns, _) = chat_lines(&mut chat(dir.path(), "quiet"), &["I love jazz."]);
    assert_eq!(count(&turns[0], "learned_memories"), 0);
    assert!(listed(dir.path()).is_empty());
    std::fs::write(dir.path().join("config.toml"), "[memory]\nenabeld = false\n").unwrap();
    assert_bad_input(&memory(dir.path(), &["list"]), &["config.toml", "[memory]", "enabeld"]);
    std::fs::remove_file(dir.path().join("config.toml")).unwrap();

    let added = memory(dir.path(), &["add", "I", "am", "allergic", "to", "peanuts"]);
    assert_success(&added);
    assert_eq!(text(&added.stderr), "remembered (dislike)\n");
    assert_eq!(
        text(&memory(dir.path(), &["add", "I am allergic to peanuts"]).stderr),
        "already remembered (dislike)\n"
    );
    let kept = listed(dir.path());
    assert_eq!((kept.len(), kept[0]["conversation"].is_null()), (1, true));

    assert_bad_input(&memory(dir.path(), &["add", " "]), &["invalid memory", "empty"]);
    assert_bad_input(&memory(dir.path(), &["add", &"x".repeat(600)]), &["longer than 500"]);
    assert_bad_input(&memory(dir.path(), &["edit", "999", "words"]), &["no memory numbered 999"]);
    let usage = memory(dir.path(), &["forget"]);
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage.stderr));
}

#[test]
fn the_embedding_model_brings_a_question_near_its_fact_in_both_languages() {
    use workly::llm::embed::Embedder;
    let embedder = Embedder::load(&common::embedding_model(), 2).unwrap();
    assert_eq!(embedder.dimensions(), 384);
    let facts = [
        "My cat is called Pistachio.",
        "I work as a pharmacist.",
        "Je déteste les hivers froids d'ici.",
        "Mon chat s'appelle Caramel.",
    ];
    let memories = embedder.embed(&facts).unwrap();
    let questions = [
        "What's the name of my cat?",
        "What do I do for a living?",
        "Quelle saison je n'aime pas ?",
        "Comment s'appelle mon chat ?",
    ];
    let queries = embedder.embed(&questions).unwrap();
    let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for vector in memories.iter().chain(&queries) {
        assert_eq!(vector.len(), 384);
        assert!((cosine(vector, vector) - 1.0).abs() < 1e-4, "unit length");
    }
    let nearest = |query: &[f32], among: std::ops::Range<usize>| {
        among.max_by(|&a, &b| cosine(query, &memories[a]).total_cmp(&cosine(query, &memories[b])))
    };
    // Each question is nearest its own fact in its language...
    for (index, query) in queries.iter().enumerate() {
        assert_eq!(nearest(query, 0..facts.len()), Some(index), "{:?}", questions[index]);
    }
    // ...and, among the other language's facts, nearest the one it asks about.
    let english = embedder.embed(&["Which season do I dislike?"]).unwrap();
    assert_eq!(nearest(&english[0], 2..4), Some(2));
    // The same text gives the same vector.
    assert_eq!(embedder.embed(&[facts[0]]).unwrap()[0], memories[0]);
    let missing = Embedder::load(std::path::Path::new("/nonexistent/e5.gguf"), 1).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/e5.gguf"), "{missing}");
}

/// A chat with Kira kept in a new database (`workly.db` in the folder
/// returned) as conversation `name`, on `model` with a context of
/// `context_size` tokens.
fn kept_chat(model: &Path, context_size: u32, name: &str) -> (tempfile::TempDir, Engine, Mutex<Chat>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::load(common::engine_config(model, context_size)).unwrap();
    let history = History::open(Store::open(&dir.path().join("workly.db")).unwrap(), Some(name)).unwrap();
    (dir, engine, Mutex::new(Chat::new(Conversation::new(Persona::default()), Some(history))))
}

#[test]
fn a_long_conversation_keeps_its_thread_in_a_recap_written_aside() {
    // A small context, so that turns leave it after a few exchanges.
    let (dir, engine, chat) = kept_chat(&common::small_model(), 512, "long");
    let path = dir.path().join("workly.db");
    let options = ReplyOptions { sampling: SamplingParams::greedy(), max_tokens: 40, ..ReplyOptions::default() };
    let turn = Turn { engine: &engine, avatar: None, options: &options, cancel: CancelToken::new() };
    let said = [
        "My sister Zelda moved to Oslo last spring and she plays the cello in an orchestra there.",
        "I am planning to visit her in December, I have never seen snow in Norway.",
        "I am a bit worried about the cold, I get sick easily in winter.",
        "Do you think I should bring her a gift from home? She loves dark chocolate.",
        "My flight leaves on the twelfth, early in the morning.",
        "I still need to find someone to look after my dog while I am away.",
        "The dog is called Biscuit and he is a very anxious little beagle.",
        "Work has been busy, we are moving offices next week.",
        "I found a good book for the plane, a novel about sailors.",
        "Tell me something cheerful about winter evenings.",
        "I bought warm boots yesterday, they were on sale.",
        "Oh, and I should learn a few words of Norwegian before I go.",
    ];
    let store = Store::open(&path).unwrap();
    let conversation = store.conversation("long").unwrap();
    let mut recaps = Vec::new();
    let mut after_recap = Vec::new();
    for message in said {
        let recapped = recaps.len();
        let outcome = turn.chat(&chat, message, &mut ()).unwrap();
        assert!(matches!(outcome.saved, workly::chat::turn::Saved::Kept));
        if recapped > 0 && after_recap.len() < recapped {
            after_recap.push((message, outcome.stats));
        }
        // The person reads and types meanwhile.
        chat.lock().unwrap().wait_aside();
        if let Some(recap) = store.recap(&conversation).unwrap()
            && recaps.last() != Some(&recap)
        {
            recaps.push(recap);
        }
    }
    // The opening with the new recap was evaluated while the person read:
    // the turn after it prefilled its message, not the recap.
    assert!(!after_recap.is_empty());
    for (message, stats) in &after_recap {
        let message_tokens = engine.count_tokens(workly::llm::Prompt::Text(message.to_string())).unwrap();
        assert!(stats.prefill_tokens <= message_tokens + 12, "{stats:?} for {message_tokens} tokens of message");
    }
    let first = recaps.first().expect("turns left the window and a recap was written");
    assert!(first.content.split_whitespace().count() >= 3, "{first:?}");
    // It covers the oldest turns only: the newest are still in the window.
    let messages = store.messages(&conversation).unwrap();
    assert!(first.through > 0 && (first.through as usize) < messages.len(), "{first:?}");
    // The next turn stands on the newest recap: its opening ends with it.
    let newest = recaps.last().unwrap().clone();
    turn.chat(&chat, "What were we saying at the start?", &mut ()).unwrap();
    let chat = chat.lock().unwrap();
    assert_eq!(chat.conversation().standing().recap.as_deref(), Some(newest.content.as_str()));
    let opening = &chat.conversation().opening_for("hi")[0].content;
    assert!(opening.ends_with(&format!("Earlier in this conversation: {}", newest.content)), "{opening}");
}

#[test]
fn the_model_finds_a_fact_the_rules_miss_while_the_person_reads() {
    use workly::store::memories::MemoryKind;

    let (dir, engine, chat) = kept_chat(&common::default_model(), 2048, "casual");
    let path = dir.path().join("workly.db");
    let options = ReplyOptions { max_tokens: 24, ..ReplyOptions::default() };
    let turn = Turn { engine: &engine, avatar: None, options: &options, cancel: CancelToken::new() };
    // No rule knows "we live": the rules keep nothing from it.
    let said = "we live just outside Dublin, near the sea";
    assert_eq!(turn.chat(&chat, said, &mut ()).unwrap().learned_memories, 0);
    chat.lock().unwrap().wait_aside();
    let kept = Store::open(&path).unwrap().memories().unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0].kind, MemoryKind::Fact);
    assert!(said.contains(kept[0].content.as_str()) && kept[0].content.contains("Dublin"), "{kept:?}");
    // What is not a fact of the person's life is not asked about, or not kept.
    for message in ["what should I cook tonight?", "haha that's so true"] {
        turn.chat(&chat, message, &mut ()).unwrap();
        chat.lock().unwrap().wait_aside();
    }
    assert_eq!(Store::open(&path).unwrap().memories().unwrap().len(), 1);
}
