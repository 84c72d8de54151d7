//! The recital guard: a reply that starts reciting the persona is stopped.
//!
//! Small models given instructions sometimes answer with them ("You are
//! Kira, a warm and curious companion…", or the list of emotion tags). A
//! reply recites the persona when it holds [`RECITAL_WORDS`] words in a row
//! from the system prompt, or [`RECITAL_TAGS`] emotion tags in a row (the
//! prompt's list of them, not tags in use). `workly-bench persona` scores
//! replies by the same rule, so the guard and the bench cannot disagree.
//!
//! While a reply streams, [`Guard`] holds back only the words that could
//! still be the start of a recital (a run of the prompt's words shorter than
//! [`RECITAL_WORDS`], one or two tags in a row, an unfinished word that could
//! still become one of the prompt's) and lets everything else through at
//! once, so the person never reads a recital and an ordinary reply is hardly
//! delayed (docs/PERFORMANCE.md measures by how much). What the turn does
//! when one is caught (regenerate once, or cut) is [`super::turn`]'s.

use crate::emotion::Emotion;
use std::collections::HashSet;
use std::ops::Range;

/// Words in a row from the persona that make a reply a recital.
pub const RECITAL_WORDS: usize = 6;
/// Emotion tags in a row that make a reply a recital of the tag list.
pub const RECITAL_TAGS: usize = 3;

/// The lowercase words of `text` (letters and digits; apostrophes and
/// hyphens split words, as `l'ami` is `l` and `ami`).
pub fn words(text: &str) -> Vec<String> {
    units(text, true).into_iter().map(|unit| unit.word).collect()
}

/// What a system prompt's recital looks like.
#[derive(Debug, Clone)]
pub struct Recital {
    /// Every run of [`RECITAL_WORDS`] words of the prompt, and every start of
    /// one (its first 1 to `RECITAL_WORDS - 1` words).
    runs: HashSet<Vec<String>>,
    /// The prompt's words, once each: an unfinished word no one of them
    /// starts with cannot continue a recital.
    words: Vec<String>,
}

impl Recital {
    /// The recitals of `system`.
    pub fn new(system: &str) -> Self {
        let prompt = words(system);
        let mut runs = HashSet::new();
        for window in prompt.windows(RECITAL_WORDS) {
            for length in 1..=RECITAL_WORDS {
                runs.insert(window[..length].to_vec());
            }
        }
        let mut words = prompt;
        words.sort_unstable();
        words.dedup();
        Self { runs, words }
    }

    /// Whether `reply` (tags and all) recites the prompt anywhere.
    pub fn recites(&self, reply: &str) -> bool {
        self.first(&units(reply, true)).is_some()
    }

    /// The index of the unit the first recital in `units` starts at.
    fn first(&self, units: &[Unit]) -> Option<usize> {
        (0..units.len()).find(|&start| self.at(&units[start..]) == Tail::Recital)
    }

    /// What the units from here on are: a recital, possibly the start of
    /// one, or neither.
    fn at(&self, units: &[Unit]) -> Tail {
        let complete = || units.iter().take_while(|unit| unit.complete);
        let words: Vec<String> = complete().take(RECITAL_WORDS).map(|unit| unit.word.clone()).collect();
        let mut tags = 0;
        for unit in complete() {
            if !unit.tag {
                break;
            }
            tags += 1;
            if !unit.tag_follows {
                break;
            }
        }
        if (words.len() == RECITAL_WORDS && self.runs.contains(&words)) || tags >= RECITAL_TAGS {
            return Tail::Recital;
        }
        // A word being written that no word of the prompt starts with ends
        // any run that could start here.
        let unfinished = units.iter().find(|unit| !unit.complete && !unit.tag);
        if unfinished.is_some_and(|unit| !self.words.iter().any(|word| word.starts_with(&unit.word))) {
            return Tail::Clear;
        }
        // Too few words yet to tell: the next ones (or the unfinished one)
        // could make either kind of run.
        let could_be_words = words.len() < RECITAL_WORDS && (words.is_empty() || self.runs.contains(&words));
        let could_be_tags = complete().all(|unit| unit.tag && unit.tag_follows);
        if could_be_words || could_be_tags { Tail::Maybe } else { Tail::Clear }
    }
}

/// What the rest of a reply is, from one unit on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// A recital starts here.
    Recital,
    /// A recital could start here, if the next words continue it.
    Maybe,
    /// No recital starts here, whatever follows.
    Clear,
}

/// A word of a reply, or an emotion tag (its word is the emotion's name).
#[derive(Debug, Clone)]
struct Unit {
    /// Lowercase.
    word: String,
    /// Where it is in the text (a tag's brackets included).
    span: Range<usize>,
    /// Finished: something follows it, it is a closed tag, or the reply is.
    complete: bool,
    /// An emotion tag in brackets.
    tag: bool,
    /// A tag whose gap to the next unit, if any, holds no letter or digit
    /// (so the two tags are "in a row"); always true of the last unit.
    tag_follows: bool,
}

/// The words and tags of `text`, in order. Unless the text is `finished`,
/// a word it ends on is unfinished, and so is an open bracket that could
/// still become a tag.
fn units(text: &str, finished: bool) -> Vec<Unit> {
    let mut units: Vec<Unit> = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let Some(first) = rest.chars().next() else { break };
        if first == '[' {
            match rest.find(']') {
                Some(close) if rest[1..close].trim().parse::<Emotion>().is_ok() => {
                    let word = rest[1..close].trim().to_lowercase();
                    units.push(Unit { word, span: at..at + close + 1, complete: true, tag: true, tag_follows: true });
                    at += close + 1;
                    continue;
                }
                None if !finished && could_open_a_tag(&rest[1..]) => {
                    units.push(Unit {
                        word: String::new(),
                        span: at..text.len(),
                        complete: false,
                        tag: true,
                        tag_follows: true,
                    });
                    break;
                }
                _ => {}
            }
        }
        if first.is_alphanumeric() {
            let length = rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len());
            units.push(Unit {
                word: rest[..length].to_lowercase(),
                span: at..at + length,
                complete: finished || length < rest.len(),
                tag: false,
                tag_follows: true,
            });
            at += length;
        } else {
            at += first.len_utf8();
        }
    }
    // Tags are in a row when nothing but punctuation and spaces parts them.
    for index in 1..units.len() {
        let gap = &text[units[index - 1].span.end..units[index].span.start];
        let parted = !units[index].tag || gap.chars().any(char::is_alphanumeric);
        units[index - 1].tag_follows = !parted;
    }
    units
}

/// Whether `inside`, what follows an open bracket the text ends on, could
/// still become an emotion tag's name.
fn could_open_a_tag(inside: &str) -> bool {
    let name = inside.trim_start();
    name.len() <= MAX_TAG_NAME && name.chars().all(char::is_alphabetic)
}

/// The longest an emotion's name can be, with room for spaces around it.
const MAX_TAG_NAME: usize = 12;

/// What may be shown of a reply so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The text up to this byte offset may be shown.
    Show(usize),
    /// A recital starts at this byte offset: nothing from it on may be
    /// shown, and the text before it already may.
    Recital(usize),
}

/// Watches one reply as it grows.
#[derive(Debug)]
pub struct Guard<'a> {
    recital: &'a Recital,
    /// Everything before this offset has been cleared.
    cleared: usize,
}

impl<'a> Guard<'a> {
    /// A guard against `recital`, before the reply's first piece.
    pub fn new(recital: &'a Recital) -> Self {
        Self { recital, cleared: 0 }
    }

    /// How much of `reply` (the whole reply so far, which only ever grows)
    /// may be shown, or where a recital starts in it.
    pub fn check(&mut self, reply: &str) -> Verdict {
        let units = units(&reply[self.cleared..], false);
        for start in 0..units.len() {
            let offset = self.cleared + units[start].span.start;
            match self.recital.at(&units[start..]) {
                Tail::Recital => return Verdict::Recital(offset),
                Tail::Maybe => {
                    self.cleared = offset;
                    return Verdict::Show(offset);
                }
                Tail::Clear => {}
            }
        }
        // A word let through unfinished is read again whole next time (it
        // can open no recital: no word of the prompt starts as it does).
        self.cleared = match units.last() {
            Some(last) if !last.complete => self.cleared + last.span.start,
            _ => reply.len(),
        };
        Verdict::Show(reply.len())
    }

    /// At the reply's end: how much may be shown, now that nothing follows
    /// (a word the reply ends on is finished), or where a recital starts.
    pub fn finish(&mut self, reply: &str) -> Verdict {
        let units = units(&reply[self.cleared..], true);
        if let Some(start) = self.recital.first(&units) {
            return Verdict::Recital(self.cleared + units[start].span.start);
        }
        self.cleared = reply.len();
        Verdict::Show(reply.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Language, Persona};

    fn kira(language: Language) -> Recital {
        Recital::new(Persona::default().system_prompt_in(language))
    }

    #[test]
    fn a_recital_is_six_words_of_the_prompt_or_the_tag_list() {
        let (english, french) = (kira(Language::English), kira(Language::French));
        assert!(english.recites("[joy] That's wonderful news! [fun] Shall we celebrate?"), "the example");
        assert!(french.recites("Tu es Kira, chaleureuse et curieuse, et tu vis sur cet ordinateur."));
        assert!(
            !french.recites("Je suis Kira, chaleureuse et curieuse, et je vis ici."),
            "a paraphrase in the first person"
        );
        assert!(french.recites("Réponds en français, en 2 à 4 phrases courtes"));
        assert!(english.recites("Sure! [neutral] [joy] [angry] [sorrow]"), "the tag list");
        assert!(english.recites("[neutral], [joy], [angry]"));
        assert!(!english.recites("[joy] Congratulations on the new job! [fun] You must be thrilled."));
        assert!(!english.recites("[joy] Great! [fun] Fun! [surprised] Wow!"), "tags in use, not a list");
        assert!(!french.recites("[joy] Quelle bonne idée, on fête ça ce soir ?"), "five words of the example");
    }

    #[test]
    fn words_split_as_a_reader_would() {
        assert_eq!(words("L'ami [joy] d'Anna, 2 fois."), ["l", "ami", "joy", "d", "anna", "2", "fois"]);
        assert!(words("").is_empty());
    }

    /// Feeds `reply` to a guard in pieces of `step` bytes (on character
    /// boundaries), returning the offset it stopped at if it caught a
    /// recital, and checking that what it lets through only grows and never
    /// holds a recital.
    fn stream(recital: &Recital, reply: &str, step: usize) -> Option<usize> {
        let mut guard = Guard::new(recital);
        let mut shown = 0;
        let mut end = 0;
        while end < reply.len() {
            end = (end + step).min(reply.len());
            while !reply.is_char_boundary(end) {
                end += 1;
            }
            match guard.check(&reply[..end]) {
                Verdict::Show(upto) => {
                    assert!(upto >= shown && upto <= end, "{upto} after {shown}, of {end}");
                    assert!(!recital.recites(&format!("{} ", &reply[..upto])), "let through: {:?}", &reply[..upto]);
                    shown = upto;
                }
                Verdict::Recital(at) => return Some(at),
            }
        }
        match guard.finish(reply) {
            Verdict::Show(upto) => {
                assert_eq!(upto, reply.len());
                None
            }
            Verdict::Recital(at) => Some(at),
        }
    }

    #[test]
    fn a_reply_that_recites_is_caught_before_any_of_the_recital_shows() {
        let english = kira(Language::English);
        let reply = "[joy] Hello! You are Kira, a warm and curious companion who lives here.";
        let at = reply.find("You are").unwrap();
        for step in [1, 3, 7, 100] {
            assert_eq!(stream(&english, reply, step), Some(at), "step {step}");
        }
        let list = "Sure: [neutral] [joy] [angry] and more.";
        assert_eq!(stream(&english, list, 2), Some(list.find('[').unwrap()));
    }

    #[test]
    fn an_ordinary_reply_goes_through_whole_and_almost_at_once() {
        let english = kira(Language::English);
        let reply = "[joy] Congratulations on the new job! [fun] You are going to love it, I am sure.";
        for step in [1, 4, 100] {
            assert_eq!(stream(&english, reply, step), None, "step {step}");
        }
        // An unfinished word is held back only while it could still become
        // one of the prompt's words.
        let mut guard = Guard::new(&english);
        let text = "[joy] Congratulations on the new jo";
        assert_eq!(guard.check(text), Verdict::Show("[joy] Congratulations on the new ".len()), "`joy` is one");
        let text = "[joy] Congratulations on the new bik";
        assert_eq!(Guard::new(&english).check(text), Verdict::Show(text.len()), "no word of the prompt starts `bik`");
        // Words that could open a recital wait for the next ones.
        let held = "[joy] Nice! You are";
        assert_eq!(Guard::new(&english).check(held), Verdict::Show("[joy] Nice! ".len()));
    }

    proptest::proptest! {
        #[test]
        fn the_guard_catches_what_the_whole_reply_shows_and_lets_nothing_of_it_through(
            picks in proptest::collection::vec((0usize..14, 0usize..4), 1..40),
            recital_at in proptest::option::of(0usize..40),
            step in 1usize..9,
        ) {
            const WORDS: [&str; 14] = [
                "You", "are", "Kira", "a", "warm", "and", "curious", "companion", "who", "bikes",
                "[joy]", "[fun]", "Wonderful", "néanmoins",
            ];
            const GAPS: [&str; 4] = [" ", ", ", "! ", " "];
            let mut pieces: Vec<String> = picks.iter().map(|&(word, gap)| format!("{}{}", WORDS[word], GAPS[gap])).collect();
            if let Some(at) = recital_at {
                pieces.insert(at.min(pieces.len()), "You are Kira, a warm and curious companion. ".to_owned());
            }
            let reply = pieces.concat();
            let english = kira(Language::English);
            let caught = stream(&english, &reply, step);
            proptest::prop_assert_eq!(caught.is_some(), english.recites(&reply), "{:?}", reply);
        }
    }

    #[test]
    fn tags_in_use_are_not_held_long() {
        let english = kira(Language::English);
        let mut guard = Guard::new(&english);
        assert_eq!(guard.check("[joy"), Verdict::Show(0), "a tag being written");
        assert_eq!(guard.check("[joy] "), Verdict::Show(0), "one tag could open the list");
        assert_eq!(guard.check("[joy] Wo"), Verdict::Show(0), "`wo` could be `wonderful`");
        assert_eq!(guard.check("[joy] Wow"), Verdict::Show("[joy] Wow".len()), "`wow` is no word's start");
    }
}
