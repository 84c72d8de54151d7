//! `workly-bench recall`: Kira's long-term memory, measured.
//!
//! Four measures, each on Workly's own code paths:
//! - **Extraction**: the rules on labelled messages in English and French:
//!   precision (a wrong memory is worse than a missing one) and recall. Two
//!   sets: the one the rules were written with (`data/memory-extraction.tsv`)
//!   and one written apart from them and never tuned on
//!   (`data/memory-extraction-heldout.tsv`), which is the honest figure.
//! - **Recall@5**: facts planted in one conversation (`data/recall-facts.tsv`,
//!   `data/recall-heldout.tsv` and `data/recall-validation.tsv`, which recall's
//!   rules were chosen with, and `data/recall-third.tsv`, written apart from
//!   the code and the other sets and never tuned on), then many unrelated
//!   turns in another (chit-chat and other facts, which are memories too),
//!   then questions asked as a person would: is the planted memory among the
//!   five a turn brings into its prompt? And how many memories does
//!   chit-chat bring, which asks for none (`data/chit-chat-heldout.tsv`,
//!   held out too)?
//! - **Cost**: the time recall adds before a turn's generation, with 10,
//!   1,000 and 100,000 memories kept, and the database's size per memory.
//! - **Answers** (with a model): the same questions through the chat turn,
//!   with memory and without it (the baseline): the share of replies that
//!   contain what was planted, and the time to the first text, for them and
//!   for chit-chat.
//! - **Threads** (with a model): a long conversation in each language in a
//!   small context, its recaps written aside: how many, how long they take,
//!   how many telling words of the turns they cover they keep, and the first
//!   text of the turn that prefills a new one against the others.
//!
//! Every database lives in a temporary directory inside the data directory.

use crate::cli::BenchRecallArgs;
use crate::persona::FirstText;
use serde::Serialize;
use std::sync::Mutex;
use std::time::Instant;
use workly::chat::Conversation;
use workly::chat::history::{Exchange, History};
use workly::chat::turn::{Chat, Outcome, ReplyOptions, Turn};
use workly::choice::Choice as _;
use workly::cli::Context;
use workly::emotion::smoothing::TurnEmotion;
use workly::llm::embed::{self, Embedder};
use workly::llm::{CancelToken, Engine, GenerationRequest, LlmError, SamplingParams};
use workly::memory::vectors::{self, Index};
use workly::memory::{extract, recall};
use workly::store::memories::{MemoryKind, NewMemory};
use workly::store::{Store, now_ms};

/// The labelled messages the rules were written with: language, kinds kept
/// (`-` for none), message.
const EXTRACTION_SET: &str = include_str!("../data/memory-extraction.tsv");

/// Labelled messages written apart from the rules, never tuned on: the
/// honest measure of their precision.
const HELD_OUT_SET: &str = include_str!("../data/memory-extraction-heldout.tsv");

/// The planted facts: language, fact, question, the word a reply using it contains.
const FACTS_SET: &str = include_str!("../data/recall-facts.tsv");

/// Planted facts written apart from the recall code and never tuned on.
const HELD_OUT_FACTS: &str = include_str!("../data/recall-heldout.tsv");

/// A second such set, written apart from the code and from the first: half
/// its questions ask in other words, half need a small inference.
const SECOND_HELD_OUT_FACTS: &str = include_str!("../data/recall-validation.tsv");

/// A third, written apart from the code and the other sets after recall
/// was last chosen on them, and never tuned on: a third of its questions ask
/// in other words, a third need an inference, a third are requests the
/// fact should shape.
const THIRD_HELD_OUT_FACTS: &str = include_str!("../data/recall-third.tsv");

/// Chit-chat written apart from the code, half of it in the first person
/// or asking for help: messages that need no memory.
const HELD_OUT_CHIT_CHAT: &str = include_str!("../data/chit-chat-heldout.tsv");

/// How many memories recall may bring into a prompt (what "@5" counts).
const RECALL_AT: usize = recall::MAX_MEMORIES;

/// The report of `workly-bench recall`.
#[derive(Debug, Clone, Serialize)]
pub struct RecallReport {
    /// The rules on the labelled set, by language.
    pub extraction: Vec<ExtractionScore>,
    /// Recall of planted facts after unrelated turns, by language.
    pub recall: Vec<RecallScore>,
    /// What recall costs, by number of memories kept.
    pub cost: Vec<Cost>,
    /// Replies that use the planted facts, with a model (absent with `--no-model`).
    pub answers: Option<Answers>,
    /// Long conversations and their recaps, with a model (none with `--no-model`).
    pub threads: Vec<Thread>,
    /// The chat model as a second extractor, by language (none with `--no-model`).
    pub model_extraction: Vec<ModelExtraction>,
}

/// The extraction rules on one language's labelled messages.
#[derive(Debug, Clone, Serialize)]
pub struct ExtractionScore {
    /// `written with the rules` or `held out`.
    pub set: String,
    /// `en` or `fr`.
    pub language: String,
    /// Messages in the set.
    pub messages: usize,
    /// Facts a careful reader keeps from them.
    pub labelled: usize,
    /// Facts the rules kept.
    pub kept: usize,
    /// Kept facts of a labelled kind.
    pub correct: usize,
    /// `correct / kept`.
    pub precision: f64,
    /// `correct / labelled`.
    pub recall: f64,
    /// The messages the rules got wrong: what they kept against what was labelled.
    pub mistakes: Vec<String>,
}

/// Planted facts recalled after unrelated turns, in one language.
#[derive(Debug, Clone, Serialize)]
pub struct RecallScore {
    /// `tuned on`, `held out`, `second held out` (the facts the recall rules
    /// were chosen with; the last two were held out before) or `third held
    /// out`.
    pub set: String,
    /// `en` or `fr`.
    pub language: String,
    /// Facts planted.
    pub facts: usize,
    /// Facts the rules kept as memories when they were said; the others
    /// are planted as given by hand (`workly memory add`), so that recall
    /// is measured on every fact.
    pub facts_kept: usize,
    /// Unrelated turns between the facts and the questions.
    pub unrelated_turns: usize,
    /// Memories kept in all (planted and unrelated).
    pub memories: usize,
    /// Share of questions whose planted memory was among the [`RECALL_AT`]
    /// recalled, by words and meaning fused (what a turn does).
    pub recall_at_5: f64,
    /// The same by words alone (the baseline: no embedding model).
    pub recall_at_5_words: f64,
    /// Share of questions whose planted memory was among the [`RECALL_AT`]
    /// nearest in meaning, whether they stand out or not: what the embedding
    /// model allows, apart from recall's rules.
    pub recall_at_5_meaning: f64,
    /// Each question, fused.
    pub questions: Vec<Asked>,
    /// Memories recalled on average for a message that asks for none
    /// (chit-chat): what recall adds to the prompt for nothing.
    pub chit_chat_memories: f64,
    /// The same by words alone.
    pub chit_chat_memories_words: f64,
    /// Memories recalled on average for held-out chit-chat in the language.
    pub held_out_chit_chat_memories: f64,
    /// The same by words alone.
    pub held_out_chit_chat_memories_words: f64,
}

/// One question of the recall measure.
#[derive(Debug, Clone, Serialize)]
pub struct Asked {
    /// The question.
    pub question: String,
    /// The rank of the planted memory (1 is first), by words and meaning, if recalled.
    pub rank: Option<usize>,
    /// Its rank by words alone.
    pub rank_words: Option<usize>,
    /// The cosine between the question and the planted memory.
    pub planted_cosine: f32,
    /// The highest cosine between the question and any other memory.
    pub best_other_cosine: f32,
    /// The planted memory's rank by its cosine alone (none when it was not kept).
    pub meaning_rank: Option<usize>,
}

/// What recall costs with a number of memories kept.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// Memories kept.
    pub memories: usize,
    /// Median time to find a turn's memories: the message's embedding, the
    /// nearest embeddings, the searches by words and their fusion.
    pub median_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Median time of the message's embedding alone.
    pub embed_median_ms: f64,
    /// Median time of the search among the embeddings alone.
    pub nearest_median_ms: f64,
    /// Time to load every embedding once (when a chat starts).
    pub load_ms: f64,
    /// The database file's size.
    pub database_bytes: u64,
    /// `database_bytes / memories`.
    pub bytes_per_memory: f64,
}

/// Replies to the questions through the chat turn.
#[derive(Debug, Clone, Serialize)]
pub struct Answers {
    /// The model.
    pub model: String,
    /// Share of replies containing the planted word, with memory.
    pub used_with_memory: f64,
    /// The same without memory: what the model guesses or the question gives away.
    pub used_without_memory: f64,
    /// Median time from the person's message to the reply's first text, with
    /// memory: recall, the note's tokens in the prompt, then the first token.
    pub first_text_median_ms: f64,
    /// The same without memory, the baseline.
    pub first_text_median_ms_without: f64,
    /// Each question's reply with memory, and whether it used the fact.
    pub replies: Vec<(String, String, bool)>,
    /// Median time to the first text of a chit-chat message (which recalls
    /// little or nothing) in a new conversation, with memory: the person's
    /// name in the opening, and what recall finds.
    pub chit_chat_first_text_median_ms: f64,
    /// The same without memory.
    pub chit_chat_first_text_median_ms_without: f64,
}

/// The chat model as a second extractor, on one language's held-out
/// messages: asked where the rules keep nothing (see
/// [`extract::found_by_model`]), scored by message (a message labelled with
/// a fact, or not).
#[derive(Debug, Clone, Serialize)]
pub struct ModelExtraction {
    /// `en` or `fr`.
    pub language: String,
    /// Messages labelled with at least one fact.
    pub with_facts: usize,
    /// Messages the rules keep a fact from, and how many of them are labelled with one.
    pub rules_kept: usize,
    /// See `rules_kept`.
    pub rules_right: usize,
    /// Messages the rules keep nothing from and the model finds a fact in,
    /// and how many of them are labelled with one.
    pub model_kept: usize,
    /// See `model_kept`.
    pub model_right: usize,
    /// Precision by message, the rules alone and with the model.
    pub precision_rules: f64,
    /// See `precision_rules`.
    pub precision_with_model: f64,
    /// Recall by message (of those labelled with a fact), the rules alone and with the model.
    pub recall_rules: f64,
    /// See `recall_rules`.
    pub recall_with_model: f64,
    /// Median time of one question to the model.
    pub median_ms: f64,
    /// What the model kept from messages labelled with no fact.
    pub mistakes: Vec<String>,
}

/// A long conversation in a small context: its recap, written aside.
#[derive(Debug, Clone, Serialize)]
pub struct Thread {
    /// `en` or `fr`.
    pub language: String,
    /// The context's size in tokens.
    pub context_size: u32,
    /// Turns played.
    pub turns: usize,
    /// Recaps written (each folding in the turns that had left the window).
    pub recaps: usize,
    /// The last recap.
    pub recap: String,
    /// Messages it covers.
    pub covered_messages: usize,
    /// The telling words of the covered messages (names, places, things).
    pub key_words: usize,
    /// Share of them the last recap still holds.
    pub key_words_kept: f64,
    /// Median time a recap took to write, aside, while the person would read.
    pub recap_median_ms: f64,
    /// Median time to the first text of a turn that opened on a new recap
    /// (and prefilled it).
    pub first_text_after_recap_ms: f64,
    /// The same for the other turns once turns had left the window.
    pub first_text_other_ms: f64,
}

/// One planted fact.
#[derive(Debug, Clone)]
struct Fact {
    language: &'static str,
    said: &'static str,
    question: &'static str,
    answer: &'static str,
}

/// Runs `workly-bench recall`.
pub fn run(context: &Context, args: &BenchRecallArgs) -> workly::error::Result<()> {
    let scratch = crate::scratch_dir(context, ".bench-recall-")?;
    let (held_out, second, third) =
        (facts(HELD_OUT_FACTS)?, facts(SECOND_HELD_OUT_FACTS)?, facts(THIRD_HELD_OUT_FACTS)?);
    let facts = facts(FACTS_SET)?;
    let model = context.dirs.models().join(embed::DEFAULT_FILE);
    if !model.is_file() {
        workly::fail!("{} is missing: scripts/setup.sh fetches it", model.display());
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let embedder = Embedder::load(&model, threads)?;
    let mut extraction = Vec::new();
    for (set, name) in [(EXTRACTION_SET, "written with the rules"), (HELD_OUT_SET, "held out")] {
        for language in ["en", "fr"] {
            extraction.push(extraction_on(set, name, language)?);
        }
    }
    let mut recall = Vec::new();
    let sets =
        [(&facts, "tuned on"), (&held_out, "held out"), (&second, "second held out"), (&third, "third held out")];
    for (set, name) in sets {
        for language in ["en", "fr"] {
            let path = scratch.path().join(format!("recall-{language}-{}.db", recall.len()));
            let planted: Vec<&Fact> = set.iter().filter(|fact| fact.language == language).collect();
            let mut score = recall_after(&path, language, &planted, args.unrelated_turns as usize, &embedder)?;
            score.set = name.to_owned();
            recall.push(score);
        }
    }
    let mut cost = Vec::new();
    for &memories in &args.sizes {
        cost.push(cost_with(
            &scratch.path().join(format!("cost-{memories}.db")),
            memories as usize,
            &facts,
            &embedder,
        )?);
    }
    let (answers, threads, model_extraction) = if args.no_model {
        (None, Vec::new(), Vec::new())
    } else {
        let path = scratch.path().join("answers.db");
        let planted: Vec<&Fact> = facts.iter().collect();
        recall_after(&path, "en", &planted, args.unrelated_turns as usize, &embedder)?;
        let asked: Vec<Fact> = ["en", "fr"]
            .iter()
            .flat_map(|language| {
                let of = facts.iter().filter(move |fact| fact.language == *language);
                of.take(args.questions.unwrap_or(usize::MAX)).cloned()
            })
            .collect();
        let (answers, model_extraction) = answers(context, args, &path, &asked, &embedder)?;
        let threads: workly::error::Result<Vec<Thread>> =
            ["en", "fr"].iter().map(|language| thread(context, args, &scratch, language)).collect();
        (Some(answers), threads?, model_extraction)
    };
    let report = RecallReport { extraction, recall, cost, answers, threads, model_extraction };
    workly::cli::bench::print(&report, args.json, render)
}

/// The planted facts of `set` ([`FACTS_SET`] or [`HELD_OUT_FACTS`]).
fn facts(set: &'static str) -> workly::error::Result<Vec<Fact>> {
    rows(set, 4)?
        .into_iter()
        .map(|fields| Ok(Fact { language: fields[0], said: fields[1], question: fields[2], answer: fields[3] }))
        .collect()
}

/// The tab-separated rows of `set` (comments and blank lines left out), each
/// with `width` fields.
fn rows(set: &'static str, width: usize) -> workly::error::Result<Vec<Vec<&'static str>>> {
    let mut rows = Vec::new();
    for (number, line) in set.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != width || !["en", "fr"].contains(&fields[0]) {
            workly::fail!(
                "line {} of a built-in set: expected {width} tab-separated fields, `en` or `fr` first",
                number + 1
            );
        }
        rows.push(fields);
    }
    Ok(rows)
}

/// The rules on `language`'s messages of the labelled `set` called `name`.
fn extraction_on(set: &'static str, name: &str, language: &str) -> workly::error::Result<ExtractionScore> {
    let (mut messages, mut labelled, mut kept, mut correct) = (0, 0, 0, 0);
    let mut mistakes = Vec::new();
    for fields in rows(set, 3)?.into_iter().filter(|fields| fields[0] == language) {
        let expected: Vec<&str> = fields[1].split(',').filter(|kind| *kind != "-").collect();
        let found: Vec<&str> = extract::facts(fields[2], now_ms()).iter().map(|fact| fact.kind.name()).collect();
        messages += 1;
        labelled += expected.len();
        kept += found.len();
        let right = found.iter().filter(|kind| expected.contains(kind)).count();
        correct += right;
        if right != found.len() || right != expected.len() {
            mistakes.push(format!("{:?}: kept {found:?}, labelled {expected:?}", fields[2]));
        }
    }
    Ok(ExtractionScore {
        set: name.to_owned(),
        language: language.to_owned(),
        messages,
        labelled,
        kept,
        correct,
        precision: crate::ratio(correct, kept),
        recall: crate::ratio(correct, labelled),
        mistakes,
    })
}

/// A deterministic stream of numbers (xorshift64*), so that every run plays
/// the same unrelated turns and memories.
struct Draw(u64);

impl Draw {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % below
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.next(from.len())]
    }
}

/// English chit-chat: messages that ask Kira to remember nothing.
const EN_TALK: &[&str] = &[
    "What a day it has been.",
    "Tell me something funny.",
    "Do you know any good jokes?",
    "The weather is strange today.",
    "I just had lunch.",
    "Can you help me write an email?",
    "What's the capital of Peru?",
    "That makes sense, thanks.",
    "How do you make pancakes?",
    "I'm a bit tired this afternoon.",
];

/// French chit-chat.
const FR_TALK: &[&str] = &[
    "Quelle journée aujourd'hui.",
    "Raconte-moi un truc drôle.",
    "Tu connais une bonne blague ?",
    "Il fait un temps bizarre.",
    "Je viens de manger.",
    "Tu peux m'aider à écrire un mail ?",
    "Quelle est la capitale du Pérou ?",
    "Ça se tient, merci.",
    "Comment on fait des crêpes ?",
    "Je suis un peu fatigué cet après-midi.",
];

/// An unrelated turn in `language`: chit-chat, or a fact about something
/// else (which is a memory too, competing with the planted ones).
fn unrelated(language: &str, draw: &mut Draw) -> String {
    const EN_LIKES: &[&str] = &["jazz", "chess", "hiking", "sushi", "podcasts", "tennis", "origami", "museums"];
    const EN_PEOPLE: &[&str] = &["colleague", "neighbour", "cousin", "boss", "uncle", "friend"];
    const EN_NAMES: &[&str] = &["Sam", "Alex", "Nadia", "Omar", "Lucy", "Kenji", "Rosa", "Ivan"];
    const EN_EVENTS: &[&str] = &["meeting", "party", "concert", "appointment", "trip"];
    const FR_LIKES: &[&str] = &["le jazz", "les échecs", "la randonnée", "les sushis", "le tennis", "les musées"];
    const FR_PEOPLE: &[&str] = &["mon collègue", "mon voisin", "mon cousin", "mon oncle", "mon ami"];
    const FR_EVENTS: &[&str] = &["une réunion", "une soirée", "un concert", "un rendez-vous"];
    let english = language == "en";
    match draw.next(4) {
        0 if english => format!("I like {} quite a bit.", draw.pick(EN_LIKES)),
        0 => format!("J'aime bien {}.", draw.pick(FR_LIKES)),
        1 if english => format!("My {} {} is moving soon.", draw.pick(EN_PEOPLE), draw.pick(EN_NAMES)),
        1 => format!("{} {} déménage bientôt.", capitalise(draw.pick(FR_PEOPLE)), draw.pick(EN_NAMES)),
        2 if english => format!("I have a {} on Monday.", draw.pick(EN_EVENTS)),
        2 => format!("J'ai {} lundi.", draw.pick(FR_EVENTS)),
        _ if english => draw.pick(EN_TALK).to_owned(),
        _ => draw.pick(FR_TALK).to_owned(),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Saves `user` (and a short reply) through `history`, as a chat turn does.
fn say(history: &mut History, user: &str, at_ms: i64) -> workly::error::Result<usize> {
    let words = |text: &str| Ok::<_, LlmError>(text.split_whitespace().count());
    let feeling = TurnEmotion { emotion: workly::emotion::Emotion::Neutral, intensity: 0.0, confidence: 0.0 };
    Ok(history.save(&Exchange::count(user, at_ms, "I see.", feeling, words)?)?)
}

/// Plants `facts` in one conversation of the database at `path`, plays
/// `turns` unrelated turns in another, then asks each fact's question, by
/// words and meaning (with `embedder`) and by words alone.
fn recall_after(
    path: &std::path::Path,
    language: &str,
    facts: &[&Fact],
    turns: usize,
    embedder: &Embedder,
) -> workly::error::Result<RecallScore> {
    let mut history = History::open(Store::open(path)?, Some("planted"))?;
    history.set_embedder(embedder.clone(), |_| {})?;
    // A week ago, a minute apart.
    let start = now_ms() - 7 * 86_400_000;
    let mut facts_kept = 0;
    let mut by_hand = Vec::new();
    for (index, fact) in facts.iter().enumerate() {
        let kept = say(&mut history, fact.said, start + index as i64 * 60_000)? > 0;
        facts_kept += usize::from(kept);
        if !kept {
            by_hand.push(NewMemory::given(MemoryKind::Fact, fact.said));
        }
    }
    vectors::give(Some(embedder), &mut by_hand);
    Store::open(path)?.add_memories(&by_hand)?;
    history.start_new()?;
    let mut draw = Draw(0x5eed_0000 + language.len() as u64);
    for turn in 0..turns {
        say(&mut history, &unrelated(language, &mut draw), start + 86_400_000 + turn as i64 * 60_000)?;
    }
    history.start_new()?;
    let mut words_only = History::open(Store::open(path)?, None)?;
    words_only.start_new()?;
    let kept = Store::open(path)?.memories()?;
    let contents: Vec<&str> = kept.iter().map(|memory| memory.content.as_str()).collect();
    let embeddings = embedder.embed(&contents)?;
    let mut questions = Vec::new();
    for fact in facts {
        let mut planted: Vec<String> =
            extract::facts(fact.said, start).into_iter().map(|memory| memory.content).collect();
        if planted.is_empty() {
            planted.push(fact.said.to_owned());
        }
        let rank = |history: &History| -> workly::error::Result<Option<usize>> {
            let recalled = history.recollect(fact.question, None, 0)?.memories;
            Ok(recalled.iter().position(|memory| planted.contains(&memory.content)).map(|at| at + 1))
        };
        let query = &embedder.embed(&[fact.question])?[0];
        let cosine = |memory: &Vec<f32>| memory.iter().zip(query).map(|(a, b)| a * b).sum::<f32>();
        let (mut planted_cosine, mut best_other_cosine) = (f32::MIN, f32::MIN);
        for (memory, embedding) in kept.iter().zip(&embeddings) {
            let slot = if planted.contains(&memory.content) { &mut planted_cosine } else { &mut best_other_cosine };
            *slot = slot.max(cosine(embedding));
        }
        let nearer = kept
            .iter()
            .zip(&embeddings)
            .filter(|(memory, embedding)| !planted.contains(&memory.content) && cosine(embedding) > planted_cosine)
            .count();
        questions.push(Asked {
            question: fact.question.to_owned(),
            rank: rank(&history)?,
            rank_words: rank(&words_only)?,
            planted_cosine,
            best_other_cosine,
            meaning_rank: (planted_cosine > f32::MIN).then_some(nearer + 1),
        });
    }
    // Memories recalled on average for each of `messages`, by `history`.
    let noise = |messages: &[&str], history: &History| -> workly::error::Result<f64> {
        let mut found = 0;
        for message in messages {
            // The name comes every turn by design: only what was found counts.
            let recalled = history.recollect(message, None, 0)?.memories;
            found += recalled.iter().filter(|memory| memory.kind != MemoryKind::Name).count();
        }
        Ok(found as f64 / messages.len().max(1) as f64)
    };
    let talk = if language == "en" { EN_TALK } else { FR_TALK };
    let held_out_talk: Vec<&str> = rows(HELD_OUT_CHIT_CHAT, 2)?
        .into_iter()
        .filter(|fields| fields[0] == language)
        .map(|fields| fields[1])
        .collect();
    let share = |rank: fn(&Asked) -> Option<usize>| {
        let found = questions.iter().filter(|asked| rank(asked).is_some_and(|rank| rank <= RECALL_AT)).count();
        crate::ratio(found, facts.len())
    };
    Ok(RecallScore {
        set: String::new(),
        language: language.to_owned(),
        facts: facts.len(),
        facts_kept,
        unrelated_turns: turns,
        memories: kept.len(),
        recall_at_5: share(|asked| asked.rank),
        recall_at_5_words: share(|asked| asked.rank_words),
        recall_at_5_meaning: share(|asked| asked.meaning_rank),
        questions,
        chit_chat_memories: noise(talk, &history)?,
        chit_chat_memories_words: noise(talk, &words_only)?,
        held_out_chit_chat_memories: noise(&held_out_talk, &history)?,
        held_out_chit_chat_memories_words: noise(&held_out_talk, &words_only)?,
    })
}

/// Recall's cost with `count` memories kept in the database at `path`: the
/// planted facts and made-up memories around them, with unit vectors drawn
/// at random (the search's time does not depend on what they mean).
fn cost_with(path: &std::path::Path, count: usize, facts: &[Fact], embedder: &Embedder) -> workly::error::Result<Cost> {
    let mut store = Store::open(path)?;
    let mut draw = Draw(0xc057 + count as u64);
    // Made-up words of two to four syllables: a vocabulary as wide as a
    // person's, so the index is as large as a real one.
    const SYLLABLES: &[&str] =
        &["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "be", "da", "fi", "go", "zu", "pe", "ly"];
    const STARTS: &[&str] = &["I like", "My friend", "I have a", "I work with", "I love", "My sister has a"];
    let word = |draw: &mut Draw| (0..2 + draw.next(3)).map(|_| draw.pick(SYLLABLES)).collect::<String>();
    let random_unit = |draw: &mut Draw| {
        let values: Vec<f32> = (0..embedder.dimensions()).map(|_| draw.next(2001) as f32 - 1000.0).collect();
        let norm = values.iter().map(|value| value * value).sum::<f32>().sqrt();
        vectors::encode(&values.iter().map(|value| value / norm).collect::<Vec<_>>())
    };
    let mut batch = Vec::new();
    for index in 0..count {
        let content = format!("{} {} {} {index}", draw.pick(STARTS), word(&mut draw), word(&mut draw));
        let vector = Some(random_unit(&mut draw));
        batch.push(NewMemory { vector, ..NewMemory::given(MemoryKind::ALL[index % 8], content) });
        if batch.len() == 10_000 || index + 1 == count {
            store.add_memories(&batch)?;
            batch.clear();
        }
    }
    // The planted facts too, so that questions find something, as they would.
    for fact in facts {
        let mut memories = extract::facts(fact.said, now_ms());
        for memory in &mut memories {
            memory.source = None;
        }
        vectors::give(Some(embedder), &mut memories);
        store.add_memories(&memories)?;
    }
    store.vacuum()?;
    let database_bytes = std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0);
    let loading = Instant::now();
    let mut index = Index::default();
    index.set_background(&embedder.embed(vectors::BACKGROUND)?);
    index.refresh(&store)?;
    let load_ms = loading.elapsed().as_secs_f64() * 1000.0;
    let (mut times_ms, mut embed_ms, mut nearest_ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        for (at, fact) in facts.iter().enumerate() {
            let before = facts[(at + 1) % facts.len()].question;
            let started = Instant::now();
            let query = embedder.embed(&[fact.question])?;
            let embedded = Instant::now();
            index.refresh(&store)?;
            let nearest: Vec<i64> = index
                .nearest(&query[0], recall::CANDIDATES, recall::nearest_kept(fact.question), recall::MIN_SPREAD)
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            let searched = Instant::now();
            recall::relevant(&store, fact.question, Some(before), &nearest)?;
            times_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            embed_ms.push((embedded - started).as_secs_f64() * 1000.0);
            nearest_ms.push((searched - embedded).as_secs_f64() * 1000.0);
        }
    }
    times_ms.sort_by(f64::total_cmp);
    Ok(Cost {
        memories: count,
        median_ms: workly::bench::median(&times_ms),
        p95_ms: crate::store::percentile(&times_ms, 0.95),
        embed_median_ms: workly::bench::median(&embed_ms),
        nearest_median_ms: workly::bench::median(&nearest_ms),
        load_ms,
        database_bytes,
        bytes_per_memory: database_bytes as f64 / count.max(1) as f64,
    })
}

/// Each fact's question through the chat turn, in a new conversation of the
/// database at `path` (where the facts were planted), with memory and without.
fn answers(
    context: &Context,
    args: &BenchRecallArgs,
    path: &std::path::Path,
    facts: &[Fact],
    embedder: &Embedder,
) -> workly::error::Result<(Answers, Vec<ModelExtraction>)> {
    let persona = context.persona(None)?;
    // The person told their name long ago, as most have: the doors warm the
    // openings with it, and without it for the turns without memory.
    let mut named = History::open(Store::open(path)?, None)?;
    named.start_new()?;
    say(&mut named, "My name is Sam.", now_ms() - 8 * 86_400_000)?;
    let mut warm = Conversation::new(persona.clone());
    named.start_new()?;
    named.resume(&mut warm, 0)?;
    let openings = [warm.openings(), Conversation::new(persona.clone()).openings()].concat();
    let prepared = args.engine.prepare(context, openings)?;
    let engine = Engine::load(prepared.engine)?;
    let options = ReplyOptions {
        sampling: SamplingParams { seed: Some(1), ..SamplingParams::default() },
        max_tokens: 64,
        ..ReplyOptions::default()
    };
    let mut replies = Vec::new();
    let mut used = [0, 0];
    let mut first_text_ms = [Vec::new(), Vec::new()];
    let mut chit_chat_ms = [Vec::new(), Vec::new()];
    let ask = |message: &str, memory: bool| -> workly::error::Result<(Outcome, Option<f64>)> {
        let mut history = History::open(Store::open(path)?, None)?;
        history.start_new()?;
        history.set_memory(memory);
        if memory {
            history.set_embedder(embedder.clone(), |_| {})?;
        }
        let chat = Mutex::new(Chat::new(Conversation::new(persona.clone()), Some(history)));
        engine.wait_idle()?;
        let turn = Turn { engine: &engine, avatar: None, options: &options, cancel: CancelToken::new() };
        let mut reader = FirstText { sent: Instant::now(), shown_ms: None };
        let outcome = turn.chat(&chat, message, &mut reader)?;
        Ok((outcome, reader.shown_ms))
    };
    for message in EN_TALK.iter().chain(FR_TALK) {
        for (memory, times) in [true, false].into_iter().zip(chit_chat_ms.iter_mut()) {
            times.extend(ask(message, memory)?.1);
        }
    }
    for fact in facts {
        for ((memory, used), times) in [true, false].into_iter().zip(used.iter_mut()).zip(first_text_ms.iter_mut()) {
            let (outcome, shown_ms) = ask(fact.question, memory)?;
            times.extend(shown_ms);
            let hit = outcome.shown.to_lowercase().contains(&fact.answer.to_lowercase());
            *used += usize::from(hit);
            if memory {
                replies.push((fact.question.to_owned(), outcome.shown.clone(), hit));
            }
        }
    }
    let model_extraction: workly::error::Result<Vec<ModelExtraction>> =
        ["en", "fr"].iter().map(|language| extraction_by_model(&engine, language)).collect();
    let answers = Answers {
        model: engine.info().model_name.clone(),
        used_with_memory: crate::ratio(used[0], facts.len()),
        used_without_memory: crate::ratio(used[1], facts.len()),
        first_text_median_ms: workly::bench::median(&first_text_ms[0]),
        first_text_median_ms_without: workly::bench::median(&first_text_ms[1]),
        replies,
        chit_chat_first_text_median_ms: workly::bench::median(&chit_chat_ms[0]),
        chit_chat_first_text_median_ms_without: workly::bench::median(&chit_chat_ms[1]),
    };
    Ok((answers, model_extraction?))
}

/// The chat model on `engine` as a second extractor on `language`'s
/// held-out messages, where the rules keep nothing.
fn extraction_by_model(engine: &Engine, language: &str) -> workly::error::Result<ModelExtraction> {
    let (mut with_facts, mut rules_kept, mut rules_right, mut model_kept, mut model_right) = (0, 0, 0, 0, 0);
    let (mut times, mut mistakes) = (Vec::new(), Vec::new());
    for fields in rows(HELD_OUT_SET, 3)?.into_iter().filter(|fields| fields[0] == language) {
        let labelled = fields[1] != "-";
        with_facts += usize::from(labelled);
        if !extract::facts(fields[2], now_ms()).is_empty() {
            rules_kept += 1;
            rules_right += usize::from(labelled);
            continue;
        }
        // As a turn does: the model is asked only where it may find something.
        if !extract::worth_asking(fields[2]) {
            continue;
        }
        let request = GenerationRequest {
            sampling: SamplingParams::greedy(),
            ..GenerationRequest::chat(extract::model_request(fields[2]), 48)
        };
        let asked = Instant::now();
        let (answer, _) = engine.generate(request)?.collect_blocking()?;
        times.push(asked.elapsed().as_secs_f64() * 1000.0);
        if let Some(fact) = extract::found_by_model(fields[2], &answer, now_ms()) {
            model_kept += 1;
            model_right += usize::from(labelled);
            if !labelled {
                mistakes.push(format!("{:?}: kept {:?}", fields[2], fact.content));
            }
        }
    }
    Ok(ModelExtraction {
        language: language.to_owned(),
        with_facts,
        rules_kept,
        rules_right,
        model_kept,
        model_right,
        precision_rules: crate::ratio(rules_right, rules_kept),
        precision_with_model: crate::ratio(rules_right + model_right, rules_kept + model_kept),
        recall_rules: crate::ratio(rules_right, with_facts),
        recall_with_model: crate::ratio(rules_right + model_right, with_facts),
        median_ms: workly::bench::median(&times),
        mistakes,
    })
}

/// Context of the long conversations: small, so that turns leave it soon.
const THREAD_CONTEXT: u32 = 512;

/// A long conversation in English: each message, and its telling words.
const EN_THREAD: &[(&str, &[&str])] = &[
    (
        "My sister Zelda moved to Oslo last spring and she plays the cello in an orchestra there.",
        &["Zelda", "Oslo", "cello"],
    ),
    ("I am planning to visit her in December, I have never seen snow in Norway.", &["December", "snow"]),
    ("I am a bit worried about the cold, I get sick easily in winter.", &["cold"]),
    ("Do you think I should bring her a gift from home? She loves dark chocolate.", &["chocolate"]),
    ("My flight leaves on the twelfth, early in the morning.", &["flight"]),
    ("I still need to find someone to look after my dog while I am away.", &["dog"]),
    ("The dog is called Biscuit and he is a very anxious little beagle.", &["Biscuit", "beagle"]),
    ("Work has been busy, we are moving offices next week.", &["office"]),
    ("I found a good book for the plane, a novel about sailors.", &["sailor"]),
    ("Tell me something cheerful about winter evenings.", &[]),
    ("I bought warm boots yesterday, they were on sale.", &["boots"]),
    ("Oh, and I should learn a few words of Norwegian before I go.", &["Norwegian"]),
    ("My neighbour Pablo offered to water my plants.", &["Pablo"]),
    ("What do people eat for Christmas in Norway?", &[]),
];

/// The same kind of conversation in French.
const FR_THREAD: &[(&str, &[&str])] = &[
    ("Mon frère Hugo vient de s'installer à Lyon, il ouvre une boulangerie là-bas.", &["Hugo", "Lyon", "boulangerie"]),
    ("Je vais l'aider à peindre la boutique en mars, pendant mes vacances.", &["mars", "peindre"]),
    ("J'ai un peu peur de me faire mal au dos, je porte mal les charges lourdes.", &["dos"]),
    ("Il adore les tartes aux pommes, je pourrais lui apporter ma recette.", &["pomme"]),
    ("Mon train part le samedi matin, très tôt.", &["train"]),
    ("Il faut encore que je trouve quelqu'un pour garder ma chatte.", &["chatte"]),
    ("Elle s'appelle Moka et elle déteste les inconnus.", &["Moka"]),
    ("Au travail, on change de logiciel la semaine prochaine.", &["logiciel"]),
    ("J'ai trouvé un bon roman pour le trajet, une histoire de pirates.", &["pirate"]),
    ("Raconte-moi quelque chose de gai sur le printemps.", &[]),
    ("J'ai acheté des chaussures de marche hier, elles étaient en solde.", &["chaussures"]),
    ("Et je devrais apprendre à faire du pain avant d'y aller.", &["pain"]),
    ("Ma voisine Inès a proposé d'arroser mes plantes.", &["Inès"]),
    ("Qu'est-ce qu'on mange de typique à Lyon ?", &[]),
];

/// Plays the long conversation in `language` with the model, in a context
/// of [`THREAD_CONTEXT`], giving each recap the time to be written as a
/// person's reading would.
fn thread(
    context: &Context,
    args: &BenchRecallArgs,
    scratch: &tempfile::TempDir,
    language: &str,
) -> workly::error::Result<Thread> {
    let persona = context.persona(None)?;
    let mut prepared = args.engine.prepare(context, Conversation::new(persona.clone()).openings())?;
    prepared.engine.context_size = THREAD_CONTEXT;
    let engine = Engine::load(prepared.engine)?;
    let options = ReplyOptions {
        sampling: SamplingParams { seed: Some(1), ..SamplingParams::default() },
        max_tokens: 64,
        ..ReplyOptions::default()
    };
    let path = scratch.path().join(format!("thread-{language}.db"));
    let history = History::open(Store::open(&path)?, Some("long"))?;
    let chat = Mutex::new(Chat::new(Conversation::new(persona), Some(history)));
    let turn = Turn { engine: &engine, avatar: None, options: &options, cancel: CancelToken::new() };
    let store = Store::open(&path)?;
    let conversation = store.conversation("long")?;
    let script = if language == "en" { EN_THREAD } else { FR_THREAD };
    let (mut recaps, mut recap_ms, mut after_recap, mut other) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut new_recap = false;
    let mut slid = false;
    for (message, _) in script {
        let mut reader = FirstText { sent: Instant::now(), shown_ms: None };
        let outcome = turn.chat(&chat, message, &mut reader)?;
        let shown_ms = reader.shown_ms.unwrap_or(f64::NAN);
        if new_recap {
            after_recap.push(shown_ms);
        } else if slid {
            other.push(shown_ms);
        }
        slid |= outcome.stats.shifted_tokens > 0 || recaps.last().is_some();
        let waited = Instant::now();
        if let Ok(mut chat) = chat.lock() {
            chat.wait_aside();
        }
        let recap = store.recap(&conversation)?;
        new_recap = recap.is_some() && recap.as_ref() != recaps.last();
        if let Some(recap) = recap.filter(|_| new_recap) {
            recap_ms.push(waited.elapsed().as_secs_f64() * 1000.0);
            recaps.push(recap);
        }
    }
    let last = recaps.last().cloned();
    let messages = store.messages(&conversation)?;
    // Message ids count up from 1 in this database: the user's message of
    // turn `t` is `2t + 1`.
    let covered = last.as_ref().map_or(0, |recap| recap.through as usize);
    let recap_text = last.map(|recap| recap.content).unwrap_or_default();
    let key_words: Vec<&str> = script
        .iter()
        .enumerate()
        .filter(|(turn, _)| 2 * turn < covered)
        .flat_map(|(_, (_, words))| *words)
        .copied()
        .collect();
    let kept = key_words.iter().filter(|word| recap_text.to_lowercase().contains(&word.to_lowercase())).count();
    Ok(Thread {
        language: language.to_owned(),
        context_size: THREAD_CONTEXT,
        turns: messages.len() / 2,
        recaps: recaps.len(),
        recap: recap_text,
        covered_messages: covered,
        key_words: key_words.len(),
        key_words_kept: crate::ratio(kept, key_words.len()),
        recap_median_ms: workly::bench::median(&recap_ms),
        first_text_after_recap_ms: workly::bench::median(&after_recap),
        first_text_other_ms: workly::bench::median(&other),
    })
}

fn render(report: &RecallReport) -> String {
    let mut text = String::from("Extraction (rules, labelled sets):\n");
    for score in &report.extraction {
        text.push_str(&format!(
            "  {}, {}: {} messages, {} facts labelled, {} kept, {} right: precision {}, recall {}\n",
            score.set,
            score.language,
            score.messages,
            score.labelled,
            score.kept,
            score.correct,
            crate::persona::percent(score.precision),
            crate::persona::percent(score.recall)
        ));
        for mistake in &score.mistakes {
            text.push_str(&format!("    {mistake}\n"));
        }
    }
    text.push_str("Recall of planted facts:\n");
    for score in &report.recall {
        text.push_str(&format!(
            "  {}, {}: {} facts ({} kept by the rules), {} unrelated turns, {} memories: recall@{RECALL_AT} {} \
             (by words alone {}; among the {RECALL_AT} nearest in meaning {})\n",
            score.set,
            score.language,
            score.facts,
            score.facts_kept,
            score.unrelated_turns,
            score.memories,
            crate::persona::percent(score.recall_at_5),
            crate::persona::percent(score.recall_at_5_words),
            crate::persona::percent(score.recall_at_5_meaning)
        ));
        text.push_str(&format!(
            "    chit-chat recalls {:.1} memories on average ({:.1} by words alone), held-out chit-chat {:.1} ({:.1})\n",
            score.chit_chat_memories,
            score.chit_chat_memories_words,
            score.held_out_chit_chat_memories,
            score.held_out_chit_chat_memories_words
        ));
        for asked in &score.questions {
            text.push_str(&format!(
                "    {:<55} rank {:>4} (words {:>4}), cosine {:.3} (best other {:.3})\n",
                format!("{:?}", asked.question),
                asked.rank.map_or("-".to_owned(), |rank| rank.to_string()),
                asked.rank_words.map_or("-".to_owned(), |rank| rank.to_string()),
                asked.planted_cosine,
                asked.best_other_cosine
            ));
        }
    }
    text.push_str("Cost of recall before a turn:\n");
    for cost in &report.cost {
        text.push_str(&format!(
            "  {:>7} memories: median {:.2} ms (embedding {:.2}, nearest {:.2}), p95 {:.2} ms, loaded in {:.0} ms; \
             database {:.1} MiB, {:.0} bytes per memory\n",
            cost.memories,
            cost.median_ms,
            cost.embed_median_ms,
            cost.nearest_median_ms,
            cost.p95_ms,
            cost.load_ms,
            cost.database_bytes as f64 / 1_048_576.0,
            cost.bytes_per_memory
        ));
    }
    if let Some(answers) = &report.answers {
        text.push_str(&format!(
            "Answers ({}): the fact used in {} of replies with memory, {} without; \
             first text after {:.0} ms with memory, {:.0} ms without (medians)\n",
            answers.model,
            crate::persona::percent(answers.used_with_memory),
            crate::persona::percent(answers.used_without_memory),
            answers.first_text_median_ms,
            answers.first_text_median_ms_without
        ));
        text.push_str(&format!(
            "  chit-chat in a new conversation, the name known: first text after {:.0} ms with memory, {:.0} ms \
             without (medians)\n",
            answers.chit_chat_first_text_median_ms, answers.chit_chat_first_text_median_ms_without
        ));
    }
    for by_model in &report.model_extraction {
        text.push_str(&format!(
            "Extraction with the model where the rules keep nothing (held out, {}, by message): precision {} \
             (rules alone {}), recall {} (rules alone {}); the model kept {} messages, {} right, {:.0} ms each \
             (median)\n",
            by_model.language,
            crate::persona::percent(by_model.precision_with_model),
            crate::persona::percent(by_model.precision_rules),
            crate::persona::percent(by_model.recall_with_model),
            crate::persona::percent(by_model.recall_rules),
            by_model.model_kept,
            by_model.model_right,
            by_model.median_ms
        ));
        for mistake in &by_model.mistakes {
            text.push_str(&format!("    {mistake}\n"));
        }
    }
    for thread in &report.threads {
        text.push_str(&format!(
            "Long conversation, {} ({} turns, context {}): {} recaps written aside (median {:.0} ms); the last \
             covers {} messages and keeps {} of their {} telling words; first text {:.0} ms on a turn opening on a \
             new recap, {:.0} ms on the others (medians)\n    {:?}\n",
            thread.language,
            thread.turns,
            thread.context_size,
            thread.recaps,
            thread.recap_median_ms,
            thread.covered_messages,
            crate::persona::percent(thread.key_words_kept),
            thread.key_words,
            thread.first_text_after_recap_ms,
            thread.first_text_other_ms,
            thread.recap
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sets_parse_and_have_both_languages() {
        for set in [FACTS_SET, HELD_OUT_FACTS, SECOND_HELD_OUT_FACTS, THIRD_HELD_OUT_FACTS] {
            let facts = facts(set).unwrap();
            assert!(facts.iter().filter(|fact| fact.language == "en").count() >= 10);
            assert!(facts.iter().filter(|fact| fact.language == "fr").count() >= 10);
            for fact in &facts {
                assert!(fact.said.to_lowercase().contains(&fact.answer.to_lowercase()), "{}", fact.said);
            }
        }
        let chit_chat = rows(HELD_OUT_CHIT_CHAT, 2).unwrap();
        assert!(chit_chat.iter().filter(|fields| fields[0] == "en").count() >= 20);
        assert!(chit_chat.iter().filter(|fields| fields[0] == "fr").count() >= 20);
        for (set, language) in
            [(EXTRACTION_SET, "en"), (EXTRACTION_SET, "fr"), (HELD_OUT_SET, "en"), (HELD_OUT_SET, "fr")]
        {
            let labelled = rows(set, 3).unwrap();
            let of = labelled.iter().filter(|fields| fields[0] == language);
            assert!(of.clone().count() >= 50);
            assert!(of.clone().filter(|fields| fields[1] == "-").count() >= 20, "negatives in {language}");
            for fields in of {
                for kind in fields[1].split(',').filter(|kind| *kind != "-") {
                    assert!(MemoryKind::named(kind).is_some(), "{kind}");
                }
            }
        }
    }

    #[test]
    fn unrelated_turns_are_the_same_every_run() {
        let play = || {
            let mut draw = Draw(7);
            (0..20).map(|_| unrelated("fr", &mut draw)).collect::<Vec<_>>()
        };
        assert_eq!(play(), play());
        assert!(play().iter().any(|turn| turn != &play()[0]), "they vary");
    }
}
