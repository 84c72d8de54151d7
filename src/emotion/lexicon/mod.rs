//! The lexicon analyzer: an emotion for text that carries no tag, from the
//! words, emoji and punctuation in it (English and French).
//!
//! Small models often forget the tags, and a person's own messages never have
//! them. The analyzer is deliberately plain, so that every answer can be
//! explained by its [`Evidence`]:
//!
//! - Text is lower-cased and its accents folded (`Énervé` and `enerve` are the
//!   same word, since people type both), then cut into clauses at punctuation
//!   and into whole words: `rage` never matches inside `courage` or `orage`,
//!   nor `bien` inside `combien`.
//! - Set phrases (`fed up`, `ras le bol`, `mort de rire`) are matched before
//!   single words and use their words up. Some phrases hold a negation
//!   themselves (`pas mal`, `no way`, `je n'en reviens pas`) and are read as
//!   the idiom, not as a negated word.
//! - A negation (`not`, `n't`, `never`, `no longer`, `pas`, `jamais`, `ne … plus`)
//!   up to [`NEGATION_WINDOW`] words before a cue, in the same clause, flips a
//!   joyful cue to a weaker sorrow ("not happy") and cancels any other ("not
//!   angry" is not a feeling to show).
//! - An intensifier (`very`, `so`, `really`, `très`, `vraiment`, `trop`, `super`)
//!   next to a cue makes it count more.
//! - Emoji and emoticons count for their emotion; `?!` counts for surprise; a
//!   short question such as "Really?" or "Quoi ?" counts for surprise; `!`
//!   raises the intensity of whatever emotion the rest found.
//!
//! With no cue strong enough the answer is neutral. It does not read tags (see
//! [`super::tags`]) nor smooth across sentences (see `super::smoothing`).

mod words;

use super::Emotion;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::LazyLock;
use words::{EMOJI, EMOTICONS, ENTRIES, INTENSIFIERS, NEGATIONS, QUESTION_INTERJECTIONS};

/// How many words before a cue a negation reaches.
pub const NEGATION_WINDOW: usize = 3;
/// How many words before or after a cue an intensifier reaches.
const INTENSIFIER_WINDOW: usize = 2;
/// What an intensifier multiplies a cue's weight by.
const INTENSIFIER_FACTOR: f32 = 1.5;
/// A negated joyful cue counts this much of its weight towards sorrow.
const NEGATED_JOY_FACTOR: f32 = 0.7;
/// The least score an emotion needs to win over neutral: one weak word ("good")
/// is not enough.
const MIN_SCORE: f32 = 0.4;
/// Score each `!` adds to the winning emotion, up to [`MAX_EXCLAMATIONS`].
const EXCLAMATION_WEIGHT: f32 = 0.2;
const MAX_EXCLAMATIONS: usize = 3;
/// Weight of `?!` or `!?` towards surprise.
const INTERROBANG_WEIGHT: f32 = 0.6;
/// Weight of a short interjected question ("Really?") towards surprise.
const QUESTION_WEIGHT: f32 = 0.8;
/// Most words in a clause read as an interjected question.
const QUESTION_MAX_WORDS: usize = 3;
/// Weight of one emoji or emoticon.
const EMOJI_WEIGHT: f32 = 0.8;
/// Confidence of a neutral answer: no known cue is weak evidence of calm, not
/// proof of it.
const NEUTRAL_CONFIDENCE: f32 = 0.5;

/// What kind of cue a piece of evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CueKind {
    /// One word of the lexicon.
    Word,
    /// A set phrase of several words.
    Phrase,
    /// An emoji or a text emoticon such as `:)`.
    Emoji,
    /// `!`, `?!` or a short interjected question.
    Punctuation,
}

/// One cue the analyzer used and what it counted for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    /// The cue as matched (lower case, accents folded for words).
    pub cue: String,
    /// Word, phrase, emoji or punctuation.
    pub kind: CueKind,
    /// The emotion it counted for (sorrow for a negated joyful word).
    pub emotion: Emotion,
    /// What it added to that emotion's score (0 when a negation cancelled it).
    pub weight: f32,
    /// A negation was in reach.
    pub negated: bool,
    /// An intensifier was in reach.
    pub intensified: bool,
}

/// The analyzer's answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The strongest emotion, or neutral.
    pub emotion: Emotion,
    /// How strongly it is felt, 0..=1 (0 for neutral).
    pub intensity: f32,
    /// How sure the analyzer is of `emotion`, 0..=1: high when the evidence is
    /// plentiful and agrees.
    pub confidence: f32,
    /// Every cue found, in reading order, punctuation last.
    pub evidence: Vec<Evidence>,
}

/// Analyzes `text`.
pub fn analyze(text: &str) -> Analysis {
    let folded = fold(text);
    let mut evidence = Vec::new();
    for clause in clauses(&folded) {
        clause_evidence(&clause, &mut evidence);
    }
    emoji_evidence(text, &mut evidence);
    if text.contains("?!") || text.contains("!?") {
        evidence.push(punctuation("?!", Emotion::Surprised, INTERROBANG_WEIGHT));
    }
    let mut scores = [0.0f32; Emotion::ALL.len()];
    for item in &evidence {
        scores[index(item.emotion)] += item.weight;
    }
    let (winner, best) =
        Emotion::ALL.iter().zip(scores).skip(1).fold((Emotion::Neutral, 0.0f32), |best, (emotion, score)| {
            if score > best.1 { (*emotion, score) } else { best }
        });
    if best < MIN_SCORE {
        return Analysis { emotion: Emotion::Neutral, intensity: 0.0, confidence: NEUTRAL_CONFIDENCE, evidence };
    }
    let exclamations = text.matches('!').count().min(MAX_EXCLAMATIONS);
    let mut best = best;
    if exclamations > 0 {
        let weight = EXCLAMATION_WEIGHT * exclamations as f32;
        evidence.push(punctuation(&"!".repeat(exclamations), winner, weight));
        best += weight;
    }
    let total: f32 = scores.iter().sum::<f32>() + (best - scores[index(winner)]);
    Analysis {
        emotion: winner,
        intensity: round(1.0 - (-0.7 * best).exp()),
        // Share of the evidence that agrees, times how much evidence there is.
        confidence: round(best / total * (1.0 - (-1.5 * best).exp())),
        evidence,
    }
}

fn index(emotion: Emotion) -> usize {
    Emotion::ALL.iter().position(|e| *e == emotion).unwrap_or(0)
}

/// Three decimals: reports stay readable and stable.
pub(crate) fn round(value: f32) -> f32 {
    (value * 1000.0).round() / 1000.0
}

fn punctuation(cue: &str, emotion: Emotion, weight: f32) -> Evidence {
    Evidence { cue: cue.to_owned(), kind: CueKind::Punctuation, emotion, weight, negated: false, intensified: false }
}

/// Lower case with accents folded, `’` as `'`, and English `n't` spelled out
/// (`don't` → `do not`) so that it reads as a negation word.
fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len());
    for character in text.chars().flat_map(char::to_lowercase) {
        match character {
            'à' | 'â' | 'ä' | 'á' | 'ã' => folded.push('a'),
            'é' | 'è' | 'ê' | 'ë' => folded.push('e'),
            'î' | 'ï' | 'í' | 'ì' => folded.push('i'),
            'ô' | 'ö' | 'ó' | 'ò' | 'õ' => folded.push('o'),
            'û' | 'ü' | 'ù' | 'ú' => folded.push('u'),
            'ç' => folded.push('c'),
            'ÿ' => folded.push('y'),
            'ñ' => folded.push('n'),
            'œ' => folded.push_str("oe"),
            'æ' => folded.push_str("ae"),
            '’' | '‘' => folded.push('\''),
            other => folded.push(other),
        }
    }
    folded.replace("n't", " not")
}

/// A clause's words and the punctuation that ended it.
struct Clause {
    words: Vec<String>,
    end: Option<char>,
}

/// Cuts folded text into clauses at punctuation, and clauses into words
/// (letters and digits; an apostrophe or hyphen separates words, so `c'est` is
/// `c est` and `fiche-moi` is `fiche moi`).
fn clauses(folded: &str) -> Vec<Clause> {
    let mut clauses = Vec::new();
    let mut words = Vec::new();
    let mut word = String::new();
    for character in folded.chars() {
        if character.is_alphanumeric() {
            word.push(character);
            continue;
        }
        if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        if matches!(character, '.' | ',' | ';' | ':' | '!' | '?' | '…' | '(' | ')' | '"' | '«' | '»' | '\n') {
            if !words.is_empty() {
                clauses.push(Clause { words: std::mem::take(&mut words), end: Some(character) });
            } else if let Some(last) = clauses.last_mut() {
                // "Really?!" ends at its first mark; keep a question a question.
                if last.end != Some('?') {
                    last.end = Some(character);
                }
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    if !words.is_empty() {
        clauses.push(Clause { words, end: None });
    }
    clauses
}

/// A cue found in a clause: words `start..end`.
struct Found {
    start: usize,
    end: usize,
    kind: CueKind,
    emotion: Emotion,
    weight: f32,
}

fn clause_evidence(clause: &Clause, evidence: &mut Vec<Evidence>) {
    let words = &clause.words;
    let lexicon = &*LEXICON;
    let mut used = vec![false; words.len()];
    let mut found = Vec::new();
    let mut position = 0;
    while position < words.len() {
        if let Some((length, emotion, weight)) = lexicon.phrase_at(words, position) {
            found.push(Found { start: position, end: position + length, kind: CueKind::Phrase, emotion, weight });
            used[position..position + length].fill(true);
            position += length;
            continue;
        }
        if let Some((emotion, weight)) = lexicon.word(&words[position]) {
            found.push(Found { start: position, end: position + 1, kind: CueKind::Word, emotion, weight });
            used[position] = true;
        }
        position += 1;
    }
    for cue in found {
        let negated = (cue.start.saturating_sub(NEGATION_WINDOW)..cue.start)
            .any(|at| !used[at] && is_negation(&words[at], &words[..at]));
        let intensified = (cue.start.saturating_sub(INTENSIFIER_WINDOW)..cue.start)
            .chain(cue.end..(cue.end + INTENSIFIER_WINDOW).min(words.len()))
            .any(|at| INTENSIFIERS.contains(&words[at].as_str()));
        let (emotion, weight) = match (negated, cue.emotion) {
            (true, Emotion::Joy) => (Emotion::Sorrow, cue.weight * NEGATED_JOY_FACTOR),
            (true, other) => (other, 0.0),
            (false, other) if intensified => (other, cue.weight * INTENSIFIER_FACTOR),
            (false, other) => (other, cue.weight),
        };
        evidence.push(Evidence {
            cue: words[cue.start..cue.end].join(" "),
            kind: cue.kind,
            emotion,
            weight,
            negated,
            intensified: intensified && !negated,
        });
    }
    // "Really?", "Quoi ?", "Tu plaisantes ?": a bare interjected question.
    if clause.end == Some('?')
        && words.len() <= QUESTION_MAX_WORDS
        && words.iter().any(|word| QUESTION_INTERJECTIONS.contains(&word.as_str()))
    {
        evidence.push(Evidence {
            cue: format!("{}?", words.join(" ")),
            kind: CueKind::Punctuation,
            emotion: Emotion::Surprised,
            weight: QUESTION_WEIGHT,
            negated: false,
            intensified: false,
        });
    }
}

/// Whether `word`, after the clause's `before` words, negates what follows.
/// French `plus` negates only after `ne` (`ne … plus`; alone it means "more").
fn is_negation(word: &str, before: &[String]) -> bool {
    match word {
        "plus" => before.iter().any(|w| w == "ne" || w == "n"),
        _ => NEGATIONS.contains(&word),
    }
}

fn emoji_evidence(text: &str, evidence: &mut Vec<Evidence>) {
    for character in text.chars() {
        if let Some((_, emotion)) = EMOJI.iter().find(|(emoji, _)| *emoji == character) {
            evidence.push(Evidence {
                cue: character.to_string(),
                kind: CueKind::Emoji,
                emotion: *emotion,
                weight: EMOJI_WEIGHT,
                negated: false,
                intensified: false,
            });
        }
    }
    for (emoticon, emotion) in EMOTICONS {
        for _ in text.match_indices(emoticon) {
            evidence.push(Evidence {
                cue: (*emoticon).to_owned(),
                kind: CueKind::Emoji,
                emotion: *emotion,
                weight: EMOJI_WEIGHT,
                negated: false,
                intensified: false,
            });
        }
    }
}

/// [`ENTRIES`] indexed for lookup.
struct Lexicon {
    words: HashMap<&'static str, (Emotion, f32)>,
    /// Longest prefix first.
    prefixes: Vec<(&'static str, Emotion, f32)>,
    /// Longest phrase first.
    phrases: Vec<(Vec<&'static str>, Emotion, f32)>,
}

static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| {
    let mut lexicon = Lexicon { words: HashMap::new(), prefixes: Vec::new(), phrases: Vec::new() };
    for &(entry, emotion, weight) in ENTRIES {
        if entry.contains(' ') {
            lexicon.phrases.push((entry.split(' ').collect(), emotion, weight));
        } else if let Some(prefix) = entry.strip_suffix('*') {
            lexicon.prefixes.push((prefix, emotion, weight));
        } else {
            lexicon.words.insert(entry, (emotion, weight));
        }
    }
    lexicon.prefixes.sort_by_key(|(prefix, ..)| std::cmp::Reverse(prefix.len()));
    lexicon.phrases.sort_by_key(|(words, ..)| std::cmp::Reverse(words.len()));
    lexicon
});

impl Lexicon {
    fn word(&self, word: &str) -> Option<(Emotion, f32)> {
        self.words.get(word).copied().or_else(|| {
            self.prefixes
                .iter()
                .find(|(prefix, ..)| word.starts_with(prefix))
                .map(|&(_, emotion, weight)| (emotion, weight))
        })
    }

    /// The longest phrase starting at `words[position]`: its length in words.
    fn phrase_at(&self, words: &[String], position: usize) -> Option<(usize, Emotion, f32)> {
        self.phrases.iter().find_map(|(phrase, emotion, weight)| {
            let candidate = words.get(position..position + phrase.len())?;
            candidate.iter().zip(phrase).all(|(word, expected)| word == expected).then_some((
                phrase.len(),
                *emotion,
                *weight,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn emotion(text: &str) -> Emotion {
        analyze(text).emotion
    }

    #[test]
    fn plain_text_is_neutral_with_no_evidence() {
        let analysis = analyze("The meeting is at three o'clock.");
        assert_eq!(analysis.emotion, Emotion::Neutral);
        assert_eq!(analysis.intensity, 0.0);
        assert!(analysis.evidence.is_empty());
        assert_eq!(analyze("").emotion, Emotion::Neutral);
    }

    #[test]
    fn each_emotion_has_clear_cues_in_both_languages() {
        for (text, expected) in [
            ("I'm so happy today", Emotion::Joy),
            ("Je suis heureuse", Emotion::Joy),
            ("I'm furious with them", Emotion::Angry),
            ("Je suis en colère", Emotion::Angry),
            ("I feel so sad", Emotion::Sorrow),
            ("Je suis triste", Emotion::Sorrow),
            ("Haha that's hilarious", Emotion::Fun),
            ("C'est trop drôle", Emotion::Fun),
            ("Wow, I'm amazed", Emotion::Surprised),
            ("Je suis stupéfaite", Emotion::Surprised),
        ] {
            assert_eq!(emotion(text), expected, "{text}");
        }
    }

    #[test]
    fn words_inside_words_do_not_match() {
        for text in [
            "Courage is rare.",
            "Le courage est rare.",
            "Combien ça coûte ?",
            "L'orage arrive.",
            "The garage is closed.",
            "It was a fundamental change.",
            "The funding came through.",
            "Crystal glasses.",
            "She made a cake.",
            "Madame Martin est là.",
            "Les dragées sont bleues.",
            "C'est un animal normal.",
        ] {
            let analysis = analyze(text);
            assert_eq!(analysis.emotion, Emotion::Neutral, "{text}: {:?}", analysis.evidence);
        }
    }

    #[test]
    fn accents_and_case_fold() {
        assert_eq!(emotion("ÉNERVÉ"), Emotion::Angry);
        assert_eq!(emotion("enerve"), Emotion::Angry);
        assert_eq!(emotion("Très Déçue"), Emotion::Sorrow);
    }

    #[test]
    fn negation_flips_joy_and_cancels_the_rest() {
        for text in ["I'm not happy", "I don't feel happy anymore", "Je ne suis pas content", "Il n'est pas heureux"] {
            let analysis = analyze(text);
            assert_eq!(analysis.emotion, Emotion::Sorrow, "{text}");
            assert!(analysis.evidence[0].negated, "{text}");
        }
        for text in [
            "I'm not angry",
            "Je ne suis pas en colère",
            "I'm never sad",
            "Je ne suis jamais triste",
            "I'm no longer angry",
            "Je ne suis plus fâchée",
            "It's not funny",
        ] {
            let analysis = analyze(text);
            assert_eq!(analysis.emotion, Emotion::Neutral, "{text}: {:?}", analysis.evidence);
            assert_eq!(analysis.evidence[0].weight, 0.0, "{text}");
        }
    }

    #[test]
    fn negation_stops_at_the_clause_and_the_window() {
        assert_eq!(emotion("Not sad, happy!"), Emotion::Joy);
        // "plus" alone means "more", not "no longer".
        assert_eq!(emotion("Je suis plus heureux que jamais"), Emotion::Joy);
        // Too far back to reach.
        assert_eq!(emotion("I did not think that I would be this happy"), Emotion::Joy);
    }

    #[test]
    fn idioms_with_a_negation_read_as_idioms() {
        assert_eq!(emotion("Pas mal du tout"), Emotion::Joy);
        assert_eq!(emotion("Not bad at all"), Emotion::Joy);
        assert_eq!(emotion("I couldn't be happier"), Emotion::Joy);
        assert_eq!(emotion("No way!"), Emotion::Surprised);
        assert_eq!(emotion("Je n'en reviens pas"), Emotion::Surprised);
        assert_eq!(emotion("J'ai hâte de partir"), Emotion::Joy);
        assert_eq!(emotion("I hate mondays"), Emotion::Angry);
    }

    #[test]
    fn intensifiers_raise_intensity() {
        let plain = analyze("I'm happy");
        let strong = analyze("I'm really happy");
        assert!(strong.intensity > plain.intensity);
        assert!(strong.evidence[0].intensified);
        assert!(analyze("Je suis très contente").intensity > analyze("Je suis contente").intensity);
        assert!(analyze("C'est trop drôle").intensity > analyze("C'est drôle").intensity);
    }

    #[test]
    fn emoji_and_emoticons_count() {
        assert_eq!(emotion("😂"), Emotion::Fun);
        assert_eq!(emotion("ok 😢"), Emotion::Sorrow);
        assert_eq!(emotion("😡"), Emotion::Angry);
        assert_eq!(emotion("😮"), Emotion::Surprised);
        assert_eq!(emotion("🎉"), Emotion::Joy);
        assert_eq!(emotion("❤️"), Emotion::Joy);
        assert_eq!(emotion("see you :)"), Emotion::Joy);
        assert_eq!(emotion("oh :("), Emotion::Sorrow);
    }

    #[test]
    fn punctuation_adds_evidence() {
        assert_eq!(emotion("You did what?!"), Emotion::Surprised);
        assert_eq!(emotion("Really?"), Emotion::Surprised);
        assert_eq!(emotion("Quoi ? Déjà ?"), Emotion::Surprised);
        // A long question is a question, not surprise.
        assert_eq!(emotion("What time does the shop open?"), Emotion::Neutral);
        let calm = analyze("I'm happy.");
        let loud = analyze("I'm happy!!!");
        assert!(loud.intensity > calm.intensity);
        assert_eq!(loud.evidence.last().map(|e| e.cue.as_str()), Some("!!!"));
        // "!" alone is no emotion.
        assert_eq!(emotion("Go!"), Emotion::Neutral);
    }

    #[test]
    fn weak_cues_alone_stay_neutral_and_mixed_cues_lower_confidence() {
        assert_eq!(emotion("Good morning"), Emotion::Neutral);
        let clear = analyze("I'm so happy and grateful");
        let mixed = analyze("I'm happy but also sad");
        assert!(clear.confidence > mixed.confidence);
    }

    #[test]
    fn evidence_serializes_with_its_fields() {
        let json = serde_json::to_value(analyze("Not angry, just happy")).unwrap();
        assert_eq!(json["emotion"], "joy");
        assert_eq!(json["evidence"][0]["cue"], "angry");
        assert_eq!(json["evidence"][0]["negated"], true);
        assert_eq!(json["evidence"][0]["kind"], "word");
    }

    #[test]
    fn every_prefix_is_long_enough_to_be_a_stem() {
        // A short prefix would match unrelated words.
        for (entry, ..) in ENTRIES {
            if let Some(prefix) = entry.strip_suffix('*') {
                assert!(prefix.len() >= 4, "{entry}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_text_gives_bounded_figures(text in any::<String>()) {
            let analysis = analyze(&text);
            prop_assert!((0.0..=1.0).contains(&analysis.intensity));
            prop_assert!((0.0..=1.0).contains(&analysis.confidence));
            if analysis.emotion == Emotion::Neutral {
                prop_assert_eq!(analysis.intensity, 0.0);
            }
        }
    }
}
