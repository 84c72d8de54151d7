//! `workly-bench persona`: what Kira says, scored, as speed is measured.
//!
//! A fixed set of everyday messages in English and in French
//! (`bench/data/persona.tsv`: greetings, news good and bad, questions about
//! her, small talk, and a few conversations of several turns), each labelled
//! with the emotions a reader would accept in the answer, goes through the
//! one chat turn every door runs (persona, template, history, emotion) with
//! the chat's own sampling. Each reply is scored by rules anyone can check:
//!
//! - it recites the persona: six words in a row from the system prompt, or
//!   three emotion tags in a row (the prompt's list of them), the rule of
//!   the recital guard ([`workly::chat::guard`]), which is on unless
//!   `--no-guard` (so a recital left is one the guard missed), and how often
//!   the guard made a reply again or cut it;
//! - it is in the message's language (Workly's own language detector);
//! - it is empty or cut (the reply reached its token limit);
//! - it stays within the persona's length (at most four sentences);
//! - its emotion (tags, else the words) is one the label accepts;
//! - it holds a valid emotion tag, and the text shown holds no bracket (a
//!   tag the parser did not take, such as `[Joy]` or `[I smile]`, or a
//!   stage direction, reaches the screen as written);
//! - its words are real: the share found in the language's word list
//!   (Debian's `wamerican` and `wfrench`), over all replies of that language;
//! - and its time to first token.

use crate::cli::BenchPersonaArgs;
use crate::ratio;
use serde::Serialize;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;
use workly::bench::Percentiles;
use workly::chat::guard::{Recital, words};
use workly::chat::turn::{Chat, Guarded, Outcome, ReplyOptions, Sink, Turn, TurnError};
use workly::chat::{Conversation, Language, Persona};
use workly::cli::Context;
use workly::emotion::{Emotion, tags};
use workly::llm::{CancelToken, Engine, FinishReason, SamplingParams};

/// The message set, in the repository.
const SET: &str = include_str!("../data/persona.tsv");

/// The most sentences the persona asks for ("2 to 4 short sentences").
const MOST_SENTENCES: usize = 4;

/// Word lists of the Debian packages `wamerican` and `wfrench`.
const ENGLISH_WORDS: &str = "/usr/share/dict/american-english";
const FRENCH_WORDS: &str = "/usr/share/dict/french";

/// One message of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Messages of one thread are played in order in one conversation; a
    /// message without one starts a conversation of its own.
    pub thread: Option<&'static str>,
    /// The message's language.
    pub language: Language,
    /// The emotions a reader would accept in the reply.
    pub feelings: Vec<Emotion>,
    /// What the person says.
    pub text: &'static str,
}

/// Why the message set cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("bench/data/persona.tsv line {line}: {reason}")]
pub struct SetError {
    line: usize,
    reason: String,
}

// The set is built in: a bad line is a bug, not the person's input.
workly::classed!(Failure: SetError);

/// The messages of `tsv` (a header, then `thread lang feelings text`).
pub fn parse_set(tsv: &'static str) -> Result<Vec<Message>, SetError> {
    tsv.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let bad = |reason: &str| SetError { line: index + 1, reason: reason.to_owned() };
            let [thread, language, feelings, text] = line.split('\t').collect::<Vec<_>>()[..] else {
                return Err(bad("four tab-separated fields expected"));
            };
            let language = match language {
                "en" => Language::English,
                "fr" => Language::French,
                _ => return Err(bad("the language is en or fr")),
            };
            let feelings = feelings
                .split('|')
                .map(|name| name.parse::<Emotion>().map_err(|_| bad(&format!("unknown emotion {name:?}"))))
                .collect::<Result<Vec<_>, _>>()?;
            if text.trim().is_empty() {
                return Err(bad("the message is empty"));
            }
            Ok(Message { thread: (thread != "-").then_some(thread), language, feelings, text })
        })
        .collect()
}

/// The first `limit` messages of each language, in the set's order.
fn first_of_each_language(set: Vec<Message>, limit: usize) -> Vec<Message> {
    let mut taken = [0, 0];
    set.into_iter()
        .filter(|message| {
            let count = &mut taken[usize::from(message.language == Language::French)];
            *count += 1;
            *count <= limit
        })
        .collect()
}

/// One reply and its scores.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    /// The message's language (`en`, `fr`).
    pub language: &'static str,
    /// What the person said.
    pub message: String,
    /// What Kira wrote, tags and all.
    pub reply: String,
    /// It repeats the persona's words or its tag list.
    pub recites_persona: bool,
    /// What the recital guard did to it, if anything.
    pub guarded: Option<Guarded>,
    /// It is in the message's language.
    pub in_language: bool,
    /// It is empty or was cut at the token limit.
    pub empty_or_cut: bool,
    /// Its sentences.
    pub sentences: usize,
    /// At most [`MOST_SENTENCES`] sentences, and at least one.
    pub within_length: bool,
    /// The reply's emotion, as the avatar showed it.
    pub emotion: Emotion,
    /// Whether the message's label accepts it.
    pub emotion_agrees: bool,
    /// It holds a valid emotion tag.
    pub tagged: bool,
    /// The text shown holds a `[`: a false tag or a stage direction.
    pub shows_bracket: bool,
    /// Words of the reply (the name and one-letter words aside), and of those
    /// the ones in the language's word list.
    pub words: usize,
    /// Of [`Self::words`], those in the word list (0 when there is none).
    pub known_words: usize,
    /// Time to first token.
    pub ttft_ms: f64,
    /// From the message to the first text the person reads (after the
    /// recital guard, which holds back words that could open a recital);
    /// absent when nothing was shown.
    pub first_text_ms: Option<f64>,
}

/// The figures over a set of replies (each a share from 0 to 1).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Replies scored.
    pub replies: usize,
    /// Share reciting the persona.
    pub recites_persona: f64,
    /// Share the recital guard made again.
    pub regenerated: f64,
    /// Share the recital guard cut.
    pub cut_by_guard: f64,
    /// Share in the message's language.
    pub in_language: f64,
    /// Share empty or cut.
    pub empty_or_cut: f64,
    /// Share within the persona's length.
    pub within_length: f64,
    /// Share whose emotion the label accepts.
    pub emotion_agrees: f64,
    /// Share holding a valid emotion tag.
    pub tagged: f64,
    /// Share whose text shown holds a `[`.
    pub shows_bracket: f64,
    /// Share of the words found in the word list; absent without one.
    pub real_words: Option<f64>,
    /// Time to first token.
    pub ttft_ms: Percentiles,
    /// From the message to the first text shown.
    pub first_text_ms: Percentiles,
}

impl Summary {
    /// The figures of `replies`; `real_words` only where a word list was read.
    fn of<'a>(replies: impl Iterator<Item = &'a Scored> + Clone, word_list: bool) -> Self {
        let count = replies.clone().count();
        let share = |test: fn(&Scored) -> bool| ratio(replies.clone().filter(|reply| test(reply)).count(), count);
        let words: usize = replies.clone().map(|reply| reply.words).sum();
        let known: usize = replies.clone().map(|reply| reply.known_words).sum();
        let mut ttfts: Vec<f64> = replies.clone().map(|reply| reply.ttft_ms).collect();
        let mut first_texts: Vec<f64> = replies.clone().filter_map(|reply| reply.first_text_ms).collect();
        Self {
            replies: count,
            recites_persona: share(|reply| reply.recites_persona),
            regenerated: share(|reply| reply.guarded == Some(Guarded::Regenerated)),
            cut_by_guard: share(|reply| reply.guarded == Some(Guarded::Cut)),
            in_language: share(|reply| reply.in_language),
            empty_or_cut: share(|reply| reply.empty_or_cut),
            within_length: share(|reply| reply.within_length),
            emotion_agrees: share(|reply| reply.emotion_agrees),
            tagged: share(|reply| reply.tagged),
            shows_bracket: share(|reply| reply.shows_bracket),
            real_words: word_list.then(|| ratio(known, words)),
            ttft_ms: Percentiles::of(&mut ttfts),
            first_text_ms: Percentiles::of(&mut first_texts),
        }
    }
}

/// The report of `workly-bench persona`.
#[derive(Debug, Clone, Serialize)]
pub struct PersonaReport {
    /// The model.
    pub model: String,
    /// The persona's file, or Kira's own words.
    pub persona: String,
    /// How replies were sampled.
    pub sampling: String,
    /// Most tokens per reply.
    pub max_tokens: u32,
    /// The English replies.
    pub english: Summary,
    /// The French replies.
    pub french: Summary,
    /// Every reply.
    pub all: Summary,
    /// Word lists that were missing (their language has no real-word figure).
    pub missing_word_lists: Vec<String>,
    /// Each reply with its scores.
    pub replies: Vec<Scored>,
}

/// Runs `workly-bench persona`.
pub fn run(context: &Context, args: &BenchPersonaArgs) -> workly::error::Result<()> {
    let mut set = parse_set(SET)?;
    if let Some(limit) = args.limit {
        set = first_of_each_language(set, limit);
    }
    let persona = context.persona(args.persona.as_deref())?;
    let prepared = args.engine.prepare(context, Conversation::new(persona.clone()).openings())?;
    let engine = Engine::load(prepared.engine)?;
    let sampling = SamplingParams { seed: Some(args.sampling.seed.unwrap_or(1)), ..args.sampling.params() };
    let options = ReplyOptions {
        sampling: sampling.clone(),
        max_tokens: args.sampling.max_tokens,
        stop: args.sampling.stop.clone(),
        unguarded: args.no_guard,
    };
    let lists = WordLists::read(Path::new(ENGLISH_WORDS), Path::new(FRENCH_WORDS));
    let replies = play(&engine, &persona, &set, &options, &lists)?;
    let missing_word_lists = lists.missing();
    let report = PersonaReport {
        model: engine.info().model_name.clone(),
        persona: format!(
            "{}, layout {:?}",
            args.persona.as_ref().map_or_else(|| "Kira (built in)".to_owned(), |path| path.display().to_string()),
            persona.layout()
        ),
        sampling: describe(&sampling),
        max_tokens: args.sampling.max_tokens,
        english: Summary::of(replies.iter().filter(|reply| reply.language == "en"), lists.english.is_some()),
        french: Summary::of(replies.iter().filter(|reply| reply.language == "fr"), lists.french.is_some()),
        all: Summary::of(replies.iter(), lists.english.is_some() && lists.french.is_some()),
        missing_word_lists,
        replies,
    };
    workly::cli::bench::print(&report, args.json, render)
}

/// Plays `set` with `persona` on `engine`: one conversation per thread (and
/// per message without one), each message through the one chat turn.
fn play(
    engine: &Engine,
    persona: &Persona,
    set: &[Message],
    options: &ReplyOptions,
    lists: &WordLists,
) -> Result<Vec<Scored>, TurnError> {
    let mut replies = Vec::with_capacity(set.len());
    let mut chat: Option<(Option<&str>, Mutex<Chat>)> = None;
    for message in set {
        let same_thread = matches!(&chat, Some((thread, _)) if message.thread.is_some() && *thread == message.thread);
        if !same_thread {
            chat = Some((message.thread, Mutex::new(Chat::new(Conversation::new(persona.clone()), None))));
        }
        let Some((_, conversation)) = &chat else { unreachable!("a conversation was just made") };
        let system = persona.script_in(message.language);
        // Each message once the engine is idle, as after the person typed it.
        engine.wait_idle()?;
        let turn = Turn { engine, avatar: None, options, cancel: CancelToken::new() };
        let mut reader = FirstText { sent: Instant::now(), shown_ms: None };
        let outcome = turn.chat(conversation, message.text, &mut reader)?;
        let mut scored = score(message, &system, &persona.name, &outcome, lists);
        scored.first_text_ms = reader.shown_ms;
        replies.push(scored);
    }
    Ok(replies)
}

/// A reader who notes when the reply's first text reached them.
pub(crate) struct FirstText {
    /// When the message was sent.
    pub(crate) sent: Instant,
    /// How long after that the first text came, once it did.
    pub(crate) shown_ms: Option<f64>,
}

impl Sink for FirstText {
    fn text(&mut self, _piece: &str) -> bool {
        let sent = self.sent;
        self.shown_ms.get_or_insert_with(|| sent.elapsed().as_secs_f64() * 1000.0);
        true
    }
}

/// Scores one reply.
fn score(message: &Message, system: &str, name: &str, outcome: &Outcome, lists: &WordLists) -> Scored {
    let stripped = tags::strip(&outcome.text);
    let shown = stripped.text;
    let sentences = sentences(&shown);
    let empty_or_cut = shown.trim().is_empty() || outcome.stats.finish_reason == FinishReason::Length;
    let (words, known_words) = lists.count(message.language, &shown, name);
    Scored {
        language: code(message.language),
        message: message.text.to_owned(),
        reply: outcome.text.clone(),
        recites_persona: Recital::new(system).recites(&outcome.text),
        guarded: outcome.guarded,
        in_language: !shown.trim().is_empty() && Language::detect(&shown) == message.language,
        empty_or_cut,
        sentences,
        within_length: (1..=MOST_SENTENCES).contains(&sentences),
        emotion: outcome.feeling.emotion,
        emotion_agrees: message.feelings.contains(&outcome.feeling.emotion),
        tagged: !stripped.tags.is_empty(),
        shows_bracket: shown.contains('['),
        words,
        known_words,
        ttft_ms: outcome.stats.ttft_ms,
        first_text_ms: None,
    }
}

/// The sampling settings in a line.
fn describe(sampling: &SamplingParams) -> String {
    if sampling.temperature <= 0.0 {
        return "greedy".to_owned();
    }
    format!(
        "temperature {}, top-p {}, top-k {}, min-p {}, repeat penalty {}, seed {}",
        sampling.temperature,
        sampling.top_p,
        sampling.top_k,
        sampling.min_p,
        sampling.repeat_penalty,
        sampling.seed.map_or_else(|| "random".to_owned(), |seed| seed.to_string())
    )
}

fn code(language: Language) -> &'static str {
    match language {
        Language::English => "en",
        Language::French => "fr",
    }
}

/// Sentences in `text`: runs ended by `.`, `!`, `?` or `…` (or the end) that
/// hold a letter.
fn sentences(text: &str) -> usize {
    text.split(['.', '!', '?', '…']).filter(|part| part.chars().any(char::is_alphabetic)).count()
}

/// The two word lists, each absent if its package is not installed.
struct WordLists {
    english: Option<HashSet<String>>,
    french: Option<HashSet<String>>,
}

impl WordLists {
    fn read(english: &Path, french: &Path) -> Self {
        let read = |path: &Path| {
            std::fs::read_to_string(path).ok().map(|text| text.lines().map(str::to_lowercase).collect::<HashSet<_>>())
        };
        Self { english: read(english), french: read(french) }
    }

    /// The packages to install for the figures that are missing.
    fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if self.english.is_none() {
            missing.push(format!("{ENGLISH_WORDS} (Debian package wamerican)"));
        }
        if self.french.is_none() {
            missing.push(format!("{FRENCH_WORDS} (Debian package wfrench)"));
        }
        missing
    }

    /// Words of `text` (the assistant's `name` and one-letter words aside) and
    /// how many of them the list of `language` holds; (0, 0) without a list.
    fn count(&self, language: Language, text: &str, name: &str) -> (usize, usize) {
        let list = match language {
            Language::English => &self.english,
            Language::French => &self.french,
        };
        let Some(list) = list else { return (0, 0) };
        let name = name.to_lowercase();
        let counted: Vec<String> = words(text)
            .into_iter()
            .filter(|word| word.chars().count() > 1 && *word != name && !word.chars().all(|c| c.is_ascii_digit()))
            .collect();
        let known = counted.iter().filter(|word| list.contains(word.as_str())).count();
        (counted.len(), known)
    }
}

/// How one row of the table reads a summary.
type Figure = fn(&Summary) -> String;

/// A share as a percentage.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn render(report: &PersonaReport) -> String {
    let mut text = format!(
        "model {}, persona {}, sampling {}, at most {} tokens per reply\n\n\
         {:<26} {:>9} {:>9} {:>9}\n",
        report.model, report.persona, report.sampling, report.max_tokens, "", "English", "French", "all"
    );
    let rows: [(&str, Figure); 12] = [
        ("replies", |summary| summary.replies.to_string()),
        ("recite the persona", |summary| percent(summary.recites_persona)),
        ("guard: made again / cut", |summary| {
            format!("{}/{}", percent(summary.regenerated), percent(summary.cut_by_guard))
        }),
        ("in the message's language", |summary| percent(summary.in_language)),
        ("empty or cut", |summary| percent(summary.empty_or_cut)),
        ("within the length", |summary| percent(summary.within_length)),
        ("emotion a reader accepts", |summary| percent(summary.emotion_agrees)),
        ("a valid emotion tag", |summary| percent(summary.tagged)),
        ("a bracket shown", |summary| percent(summary.shows_bracket)),
        ("real words", |summary| summary.real_words.map_or_else(|| "-".to_owned(), percent)),
        ("TTFT p50 / p99 ms", |summary| format!("{:.0}/{:.0}", summary.ttft_ms.p50, summary.ttft_ms.p99)),
        ("first text shown p50 / p99 ms", |summary| {
            format!("{:.0}/{:.0}", summary.first_text_ms.p50, summary.first_text_ms.p99)
        }),
    ];
    // A language without replies (with --limit) has no figures.
    let cell = |value: Figure, summary: &Summary, name: &str| {
        if summary.replies == 0 && name != "replies" { "-".to_owned() } else { value(summary) }
    };
    for (name, value) in rows {
        text.push_str(&format!(
            "{name:<26} {:>9} {:>9} {:>9}\n",
            cell(value, &report.english, name),
            cell(value, &report.french, name),
            cell(value, &report.all, name)
        ));
    }
    for missing in &report.missing_word_lists {
        text.push_str(&format!("no word list: {missing}\n"));
    }
    let recitals: Vec<&Scored> = report.replies.iter().filter(|reply| reply.recites_persona).collect();
    if !recitals.is_empty() {
        text.push_str(&format!(
            "\nrecitals ({}), the first five:\n",
            percent(ratio(recitals.len(), report.replies.len()))
        ));
        for reply in recitals.iter().take(5) {
            text.push_str(&format!("  {} -> {}\n", reply.message, reply.reply.replace('\n', " ")));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_has_eighty_messages_or_more_in_both_languages_with_threads() {
        let set = parse_set(SET).unwrap();
        assert!(set.len() >= 80, "{}", set.len());
        for language in [Language::English, Language::French] {
            let count = set.iter().filter(|message| message.language == language).count();
            assert!(count >= 40, "{language:?}: {count}");
        }
        assert!(set.iter().filter(|message| message.thread.is_some()).count() >= 12);
        // A thread's messages follow each other.
        let threads: Vec<&str> = set.iter().filter_map(|message| message.thread).collect();
        let mut seen = Vec::new();
        for pair in threads.windows(2) {
            if pair[0] != pair[1] {
                assert!(!seen.contains(&pair[1]), "thread {} is split", pair[1]);
                seen.push(pair[0]);
            }
        }
    }

    #[test]
    fn a_limit_takes_the_first_messages_of_each_language() {
        let set = first_of_each_language(parse_set(SET).unwrap(), 2);
        let languages: Vec<Language> = set.iter().map(|message| message.language).collect();
        assert_eq!(languages, [Language::English, Language::English, Language::French, Language::French]);
    }

    #[test]
    fn the_sampling_is_said_in_a_line() {
        assert_eq!(describe(&SamplingParams::greedy()), "greedy");
        let chat = SamplingParams { seed: Some(1), ..SamplingParams::default() };
        assert_eq!(describe(&chat), "temperature 0.7, top-p 0.9, top-k 40, min-p 0.05, repeat penalty 1.1, seed 1");
    }

    #[test]
    fn a_bad_line_is_named() {
        let error = parse_set("thread\tlang\tfeelings\ttext\n-\tde\tjoy\tHallo\n").unwrap_err();
        assert_eq!(error.to_string(), "bench/data/persona.tsv line 2: the language is en or fr");
        let error = parse_set("h\n-\ten\tglee\tHi\n").unwrap_err();
        assert!(error.to_string().contains("unknown emotion \"glee\""), "{error}");
        assert!(parse_set("h\n-\ten\tjoy\n").is_err());
    }

    #[test]
    fn sentences_and_words_are_counted_as_a_reader_would() {
        assert_eq!(sentences("Hello! How are you? I'm fine..."), 3);
        assert_eq!(sentences("Bonjour… ça va ?"), 2);
        assert_eq!(sentences(""), 0);
        assert_eq!(sentences("?!"), 0);
        assert_eq!(
            words("L'ami d'Anna, c'est-à-dire Kira."),
            ["l", "ami", "d", "anna", "c", "est", "à", "dire", "kira"]
        );
    }

    #[test]
    fn real_words_leave_out_the_name_short_words_and_numbers() {
        let lists = WordLists {
            english: Some(["hello", "friend"].map(str::to_owned).into()),
            french: Some(["bonjour", "ami"].map(str::to_owned).into()),
        };
        assert_eq!(lists.count(Language::English, "Hello friend, I am Kira 42 blorp", "Kira"), (4, 2));
        assert_eq!(lists.count(Language::French, "Bonjour l'ami, je suis le désport", "Kira"), (6, 2));
        let none = WordLists { english: None, french: None };
        assert_eq!(none.count(Language::English, "hello", "Kira"), (0, 0));
        assert_eq!(none.missing().len(), 2);
    }

    #[test]
    fn summaries_are_shares_of_the_replies() {
        let reply = |recites: bool, ttft_ms: f64| Scored {
            language: "en",
            message: String::new(),
            reply: String::new(),
            recites_persona: recites,
            guarded: recites.then_some(Guarded::Cut),
            in_language: true,
            empty_or_cut: false,
            sentences: 2,
            within_length: true,
            emotion: Emotion::Joy,
            emotion_agrees: !recites,
            tagged: !recites,
            shows_bracket: recites,
            words: 10,
            known_words: 9,
            ttft_ms,
            first_text_ms: (!recites).then_some(ttft_ms + 5.0),
        };
        let replies = [reply(true, 100.0), reply(false, 50.0), reply(false, 70.0), reply(false, 60.0)];
        let summary = Summary::of(replies.iter(), true);
        assert_eq!(summary.replies, 4);
        assert_eq!((summary.recites_persona, summary.emotion_agrees), (0.25, 0.75));
        assert_eq!((summary.tagged, summary.shows_bracket), (0.75, 0.25));
        assert_eq!((summary.regenerated, summary.cut_by_guard), (0.0, 0.25));
        assert_eq!(summary.real_words, Some(0.9));
        assert_eq!(summary.ttft_ms.p50, 70.0);
        assert_eq!(summary.first_text_ms.p50, 65.0, "over the replies that showed something");
        assert_eq!(Summary::of(replies.iter(), false).real_words, None);
    }
}
