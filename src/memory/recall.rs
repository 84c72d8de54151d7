//! Which memories a turn brings into the prompt.
//!
//! The person's name is not searched for: it stands in every turn's
//! opening (see [`crate::chat::Standing`]). Two searches are fused: by words (the store's BM25 over
//! stems, for the new message and the person's message before it, which a
//! follow-up such as "and what did I say about it?" leans on) and by meaning
//! (the memories whose embedding is nearest the new message's and stands
//! out from the rest, found by the caller, which holds the model; when the
//! message asks something of the person's own life, the nearest few whether
//! they stand out or not, see [`asks_about_the_person`]). Each list ranks its
//! memories; a memory's score is the sum over the lists of `1 / (60 +
//! rank)` (reciprocal rank fusion: ranks, unlike BM25 scores and cosines,
//! can be added), best first, each once. The cost is one indexed query per
//! message and one pass over the embeddings; `workly-bench recall` measures it.

use super::dates::Day;
use super::extract::{FIRST_PERSON, fold};
use crate::store::memories::{MemoryKind, StoredMemory};
use crate::store::{Store, StoreError};

/// Most memories recalled for one turn.
pub const MAX_MEMORIES: usize = 5;

/// How many candidates each search brings to the fusion.
pub const CANDIDATES: usize = 20;

/// How far above the rest a memory's cosine with a message must stand, in
/// standard deviations of the message's cosines with every memory, to be
/// found by meaning (see [`crate::memory::vectors::Index::nearest`]; chosen
/// with `workly-bench recall`, which reports recall and what chit-chat
/// brings back).
pub const MIN_SPREAD: f32 = 2.5;

/// Words by which a person speaks of themselves besides those of a fact's
/// subject or owner ([`FIRST_PERSON`]): as the object of a request ("remind
/// me", "dis-moi"). Folded: lowercase, straight apostrophes; a word that
/// begins with `j'` or `m'` counts too.
const OBJECT: &[&str] = &["me", "myself", "moi"];

/// Words of a request for advice or a reminder, which a question mark need
/// not end (matched once a French elision is taken off: "d'idées").
const ASKING: &[&str] = &[
    "suggest",
    "suggestion",
    "suggestions",
    "recommend",
    "recommendation",
    "recommendations",
    "remind",
    "reminder",
    "help",
    "tip",
    "tips",
    "advice",
    "idea",
    "ideas",
    "conseille",
    "conseilles",
    "conseiller",
    "conseils",
    "propose",
    "proposes",
    "proposer",
    "rappelle",
    "rappelles",
    "rappeler",
    "idée",
    "idées",
    "aide",
    "aides",
    "aider",
];

/// Whether `message` asks something of the person's own life: a question or
/// a request (for advice, a reminder) in which they speak of themselves,
/// such as "what's my other half called again?" or "tu me conseilles une
/// sortie ce week-end ?".
///
/// Such a question is often asked in other words than the memory that
/// answers it, which then sits among the nearest few without standing out
/// from the rest; so the nearest few come with it (a request such as "can
/// you give me a recipe?" too: an allergy should shape it). A message in
/// which the person does not speak of themselves ("what's the capital of
/// Peru?"), or that asks nothing ("I just had lunch"), brings only what
/// stands out, since every memory brought is read before the reply.
pub fn asks_about_the_person(message: &str) -> bool {
    let folded = fold(message);
    let words: Vec<&str> = folded.split(|c: char| c.is_whitespace() || c == '-').filter(|w| !w.is_empty()).collect();
    let of_the_person = words.iter().any(|word| {
        FIRST_PERSON.contains(word) || OBJECT.contains(word) || word.starts_with("j'") || word.starts_with("m'")
    });
    of_the_person && (message.contains('?') || words.iter().any(|word| ASKING.contains(&unelided(word))))
}

/// `word` without the French elision it may begin with ("d'idées" is "idées").
fn unelided(word: &str) -> &str {
    match word.split_once('\'') {
        Some((elided, rest)) if ["c", "d", "j", "l", "m", "n", "s", "t", "qu"].contains(&elided) => rest,
        _ => word,
    }
}

/// How many of the memories nearest `message` in meaning it brings whether
/// they stand out or not (see [`asks_about_the_person`]).
pub fn nearest_kept(message: &str) -> usize {
    if asks_about_the_person(message) { MAX_MEMORIES } else { 0 }
}

/// Reciprocal rank fusion's constant: how little the first ranks weigh more
/// than the next (60, as the method's authors found best).
const FUSION_K: f64 = 60.0;

/// Up to [`MAX_MEMORIES`] memories relevant to `user`, whose previous
/// message in the conversation was `before`, best first; `nearest` are the
/// memories nearest `user` in meaning, nearest first (empty without an
/// embedding model).
pub fn relevant(
    store: &Store,
    user: &str,
    before: Option<&str>,
    nearest: &[i64],
) -> Result<Vec<StoredMemory>, StoreError> {
    let mut lists = vec![store.search_memory_ids(user, CANDIDATES)?];
    if let Some(before) = before {
        lists.push(store.search_memory_ids(before, CANDIDATES)?);
    }
    lists.push(nearest.to_vec());
    let mut scores: Vec<(i64, f64)> = Vec::new();
    for list in &lists {
        for (rank, &id) in list.iter().enumerate() {
            let score = 1.0 / (FUSION_K + rank as f64 + 1.0);
            match scores.iter_mut().find(|(scored, _)| *scored == id) {
                Some((_, total)) => *total += score,
                None => scores.push((id, score)),
            }
        }
    }
    // Stable: a tie keeps the order the lists gave.
    scores.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut recalled = Vec::new();
    for (id, _) in scores {
        if recalled.len() == MAX_MEMORIES {
            break;
        }
        recalled.extend(store.memory(id)?.filter(|memory| memory.kind != MemoryKind::Name));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memories::NewMemory;

    fn memory(kind: MemoryKind, content: &str) -> NewMemory {
        NewMemory::given(kind, content)
    }

    #[test]
    fn words_and_meaning_are_fused_and_the_name_left_to_the_opening() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("workly.db")).unwrap();
        store
            .add_memories(&[
                memory(MemoryKind::Name, "My name is Sam"),
                memory(MemoryKind::Pet, "My cat is called Miso"),
                memory(MemoryKind::Dislike, "I'm allergic to shellfish"),
                memory(MemoryKind::Like, "I love cats and dogs"),
            ])
            .unwrap();
        let id = |text: &str| store.search_memory_ids(text, 1).unwrap()[0];
        let (cat, shellfish, cats) = (id("Miso"), id("shellfish"), id("dogs"));
        let contents = |memories: Vec<StoredMemory>| memories.into_iter().map(|m| m.content).collect::<Vec<_>>();
        // By words alone: what shares words, never the name.
        assert!(relevant(&store, "Hi there", None, &[]).unwrap().is_empty());
        assert!(relevant(&store, "What is my name?", None, &[]).unwrap().is_empty());
        let by_words = contents(relevant(&store, "How is my cat?", None, &[]).unwrap());
        assert_eq!(by_words[..1], ["My cat is called Miso"]);
        // Meaning finds what words miss; found by both, a memory comes first.
        let fused = contents(relevant(&store, "Dinner ideas? Mind my allergy.", None, &[shellfish]).unwrap());
        assert_eq!(fused, ["I'm allergic to shellfish"]);
        let both = contents(relevant(&store, "Tell me about dogs", None, &[cat, cats]).unwrap());
        assert_eq!(both, ["I love cats and dogs", "My cat is called Miso"], "{both:?}");
        // The message before counts too, and the limit holds.
        let before = contents(relevant(&store, "And what else?", Some("my cat"), &[shellfish, cats]).unwrap());
        assert!(before.contains(&"My cat is called Miso".to_owned()) && before.len() <= MAX_MEMORIES, "{before:?}");
    }

    #[test]
    fn questions_about_the_person_are_told_from_chit_chat() {
        for asks in [
            "What was my sister's dog called?",
            "Any tips for keeping my place warm this winter?",
            "Remind me what I'm studying",
            "Tu sais encore où habite ma tante ?",
            "Rappelle-moi ce que je fais comme boulot",
            "J'ai rien de prévu samedi, t'aurais pas d'idées pour moi",
        ] {
            assert!(asks_about_the_person(asks), "{asks}");
            assert_eq!(nearest_kept(asks), MAX_MEMORIES);
        }
        for chit_chat in [
            "Tell me a joke.",
            "I just had lunch.",
            "What's the capital of Peru?",
            "What's the biggest state in the US?",
            "Je suis fatigué ce matin.",
            "Merci !",
        ] {
            assert!(!asks_about_the_person(chit_chat), "{chit_chat}");
            assert_eq!(nearest_kept(chit_chat), 0);
        }
    }
}
