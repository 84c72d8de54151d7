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

use super::Emotion;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::LazyLock;

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

/// Words that negate a cue after them (folded; `n't` is already `not`).
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "nothing", "without", "neither", "nor", "hardly", "cannot", "dont", "cant", "isnt", "wasnt",
    "doesnt", "didnt", "wont", "pas", "jamais", "rien", "aucun", "aucune", "sans", "ni", "guere",
];

/// Words that make a nearby cue count more (folded).
const INTENSIFIERS: &[&str] = &[
    "very",
    "so",
    "really",
    "extremely",
    "totally",
    "completely",
    "absolutely",
    "super",
    "incredibly",
    "truly",
    "too",
    "such",
    "much",
    "tres",
    "vraiment",
    "trop",
    "tellement",
    "hyper",
    "si",
    "completement",
    "totalement",
    "absolument",
    "enormement",
    "grave",
    "carrement",
    "vachement",
    "beaucoup",
];

/// Words that, alone in a short question, express surprise.
const QUESTION_INTERJECTIONS: &[&str] = &[
    "what",
    "really",
    "seriously",
    "huh",
    "quoi",
    "hein",
    "vraiment",
    "serieux",
    "serieusement",
    "plaisantes",
    "rigoles",
];

/// Emoji and the emotion each shows (❤️ is matched by its first character).
const EMOJI: &[(char, Emotion)] = &[
    ('😀', Emotion::Joy),
    ('😃', Emotion::Joy),
    ('😄', Emotion::Joy),
    ('😁', Emotion::Joy),
    ('😊', Emotion::Joy),
    ('☺', Emotion::Joy),
    ('🙂', Emotion::Joy),
    ('🥰', Emotion::Joy),
    ('😍', Emotion::Joy),
    ('❤', Emotion::Joy),
    ('💕', Emotion::Joy),
    ('💖', Emotion::Joy),
    ('🥳', Emotion::Joy),
    ('🎉', Emotion::Joy),
    ('👍', Emotion::Joy),
    ('🤗', Emotion::Joy),
    ('😇', Emotion::Joy),
    ('😂', Emotion::Fun),
    ('🤣', Emotion::Fun),
    ('😆', Emotion::Fun),
    ('😜', Emotion::Fun),
    ('😝', Emotion::Fun),
    ('😛', Emotion::Fun),
    ('😹', Emotion::Fun),
    ('🤪', Emotion::Fun),
    ('😉', Emotion::Fun),
    ('😢', Emotion::Sorrow),
    ('😭', Emotion::Sorrow),
    ('😞', Emotion::Sorrow),
    ('😔', Emotion::Sorrow),
    ('🙁', Emotion::Sorrow),
    ('☹', Emotion::Sorrow),
    ('💔', Emotion::Sorrow),
    ('😿', Emotion::Sorrow),
    ('😥', Emotion::Sorrow),
    ('😡', Emotion::Angry),
    ('😠', Emotion::Angry),
    ('🤬', Emotion::Angry),
    ('💢', Emotion::Angry),
    ('👿', Emotion::Angry),
    ('😤', Emotion::Angry),
    ('😮', Emotion::Surprised),
    ('😲', Emotion::Surprised),
    ('😯', Emotion::Surprised),
    ('😱', Emotion::Surprised),
    ('🤯', Emotion::Surprised),
    ('😳', Emotion::Surprised),
];

/// Text emoticons, matched in the original text.
const EMOTICONS: &[(&str, Emotion)] = &[
    (":)", Emotion::Joy),
    (":-)", Emotion::Joy),
    ("<3", Emotion::Joy),
    (":D", Emotion::Fun),
    ("xD", Emotion::Fun),
    ("XD", Emotion::Fun),
    (";)", Emotion::Fun),
    (":(", Emotion::Sorrow),
    (":-(", Emotion::Sorrow),
    (":'(", Emotion::Sorrow),
    (":O", Emotion::Surprised),
    (":o", Emotion::Surprised),
];

use Emotion::{Angry, Fun, Joy, Sorrow, Surprised};

/// The lexicon, folded: a single word, a word ending in `*` (any word starting
/// so, checked after exact words), or a phrase of words separated by spaces.
/// Weights: 1 for an unmistakable cue, less for a cue that is often meant
/// otherwise.
const ENTRIES: &[(&str, Emotion, f32)] = &[
    // Joy, English.
    ("happy", Joy, 1.0),
    ("happier", Joy, 1.0),
    ("happiest", Joy, 1.0),
    ("happily", Joy, 0.7),
    ("happiness", Joy, 1.0),
    ("glad", Joy, 0.9),
    ("joy", Joy, 1.0),
    ("joyful", Joy, 1.0),
    ("overjoyed", Joy, 1.0),
    ("delight*", Joy, 1.0),
    ("pleased", Joy, 0.8),
    ("grateful", Joy, 0.9),
    ("thankful", Joy, 0.9),
    ("thanks", Joy, 0.6),
    ("thank", Joy, 0.6),
    ("love", Joy, 0.7),
    ("loved", Joy, 0.7),
    ("lovely", Joy, 0.8),
    ("wonderful", Joy, 0.9),
    ("great", Joy, 0.6),
    ("awesome", Joy, 0.8),
    ("fantastic", Joy, 0.9),
    ("excellent", Joy, 0.7),
    ("perfect", Joy, 0.7),
    ("beautiful", Joy, 0.6),
    ("proud", Joy, 0.8),
    ("relief", Joy, 0.8),
    ("relieved", Joy, 0.9),
    ("cheerful", Joy, 0.9),
    ("content", Joy, 0.7),
    ("blessed", Joy, 0.7),
    ("nice", Joy, 0.5),
    ("good", Joy, 0.35),
    ("better", Joy, 0.5),
    ("best", Joy, 0.5),
    ("yay", Joy, 1.0),
    ("hooray", Joy, 1.0),
    ("woohoo", Joy, 1.0),
    ("smile", Joy, 0.6),
    ("smiling", Joy, 0.7),
    ("enjoy*", Joy, 0.7),
    ("excited", Joy, 0.8),
    ("exciting", Joy, 0.7),
    ("thrilled", Joy, 1.0),
    ("congratulations", Joy, 0.8),
    ("congrats", Joy, 0.8),
    ("not be happier", Joy, 1.0),
    ("made my day", Joy, 1.0),
    ("makes my day", Joy, 1.0),
    ("warmed my heart", Joy, 1.0),
    ("at peace", Joy, 0.7),
    ("not bad", Joy, 0.6),
    ("feel better", Joy, 0.7),
    ("doing well", Joy, 0.6),
    ("went well", Joy, 0.7),
    ("good news", Joy, 0.8),
    ("not wait", Joy, 0.8),
    // Joy, French.
    ("heureu*", Joy, 1.0),
    ("heureusement", Joy, 0.4),
    ("content*", Joy, 0.8),
    ("ravi", Joy, 1.0),
    ("ravie", Joy, 1.0),
    ("ravis", Joy, 1.0),
    ("ravies", Joy, 1.0),
    ("joie", Joy, 1.0),
    ("joyeu*", Joy, 1.0),
    ("bonheur", Joy, 1.0),
    ("merci", Joy, 0.6),
    ("adore", Joy, 0.8),
    ("aime", Joy, 0.6),
    ("genial", Joy, 0.8),
    ("geniale", Joy, 0.8),
    ("super", Joy, 0.6),
    ("formidable", Joy, 0.9),
    ("magnifique", Joy, 0.8),
    ("parfait*", Joy, 0.7),
    ("fier", Joy, 0.8),
    ("fiere", Joy, 0.8),
    ("fiers", Joy, 0.8),
    ("soulag*", Joy, 0.9),
    ("chanceu*", Joy, 0.8),
    ("gentil*", Joy, 0.5),
    ("bravo", Joy, 0.8),
    ("felicitation*", Joy, 0.9),
    ("reussi", Joy, 0.6),
    ("delicieu*", Joy, 0.6),
    ("plaisir", Joy, 0.7),
    ("beau", Joy, 0.4),
    ("belle", Joy, 0.4),
    ("chouette", Joy, 0.7),
    ("youpi", Joy, 1.0),
    ("sourire", Joy, 0.6),
    ("mieux", Joy, 0.5),
    ("aux anges", Joy, 1.0),
    ("chaud au coeur", Joy, 1.0),
    ("bonne humeur", Joy, 1.0),
    // "J'ai hâte" folds to "hate": read as the French idiom, not English "hate".
    ("ai hate", Joy, 0.9),
    ("a hate", Joy, 0.8),
    ("pas mal", Joy, 0.6),
    ("sens bien", Joy, 0.7),
    ("va bien", Joy, 0.5),
    ("va mieux", Joy, 0.6),
    ("bien passe", Joy, 0.7),
    ("le moral", Joy, 0.6),
    ("bonne nouvelle", Joy, 0.8),
    // Angry, English.
    ("angry", Angry, 1.0),
    ("angrier", Angry, 1.0),
    ("anger", Angry, 1.0),
    ("mad", Angry, 0.8),
    ("furious", Angry, 1.0),
    ("fury", Angry, 1.0),
    ("livid", Angry, 1.0),
    ("annoy*", Angry, 0.8),
    ("irritat*", Angry, 0.9),
    ("hate", Angry, 0.9),
    ("hated", Angry, 0.9),
    ("hates", Angry, 0.9),
    ("rage", Angry, 1.0),
    ("raging", Angry, 1.0),
    ("enraged", Angry, 1.0),
    ("outrage*", Angry, 1.0),
    ("ridiculous", Angry, 0.7),
    ("stupid", Angry, 0.7),
    ("idiot*", Angry, 0.8),
    ("unfair", Angry, 0.8),
    ("disgrace*", Angry, 0.9),
    ("disgust*", Angry, 0.8),
    ("frustrat*", Angry, 0.9),
    ("infuriat*", Angry, 1.0),
    ("pissed", Angry, 1.0),
    ("boiling", Angry, 0.6),
    ("damn", Angry, 0.6),
    ("unacceptable", Angry, 0.9),
    ("resent*", Angry, 0.8),
    ("yelled", Angry, 0.6),
    ("grr", Angry, 0.8),
    ("argh", Angry, 0.7),
    ("ugh", Angry, 0.6),
    ("fed up", Angry, 1.0),
    ("sick of", Angry, 0.9),
    ("had enough", Angry, 0.9),
    ("how dare", Angry, 1.0),
    ("leave me alone", Angry, 0.8),
    ("shut up", Angry, 0.9),
    ("not stand", Angry, 0.9),
    ("drives me crazy", Angry, 0.9),
    ("drives me nuts", Angry, 0.9),
    ("waste of", Angry, 0.6),
    // Angry, French.
    ("colere", Angry, 1.0),
    ("enerv*", Angry, 0.9),
    ("agac*", Angry, 0.9),
    ("furieu*", Angry, 1.0),
    ("fache*", Angry, 0.9),
    ("exaspe*", Angry, 1.0),
    ("marre", Angry, 0.9),
    ("insupportable", Angry, 0.8),
    ("inadmissible", Angry, 0.9),
    ("inacceptable", Angry, 0.9),
    ("scandal*", Angry, 0.9),
    ("honte", Angry, 0.6),
    ("detest*", Angry, 0.9),
    ("imbecile*", Angry, 0.9),
    ("injuste", Angry, 0.8),
    ("ridicule", Angry, 0.7),
    ("stupide", Angry, 0.7),
    ("bouillonne", Angry, 0.7),
    ("outre", Angry, 0.6),
    ("outree", Angry, 0.9),
    ("zut", Angry, 0.5),
    ("merde", Angry, 0.6),
    ("fichent", Angry, 0.6),
    ("ras le bol", Angry, 1.0),
    ("n importe quoi", Angry, 0.8),
    ("rend dingue", Angry, 0.9),
    ("rend fou", Angry, 0.9),
    ("rend folle", Angry, 0.9),
    ("ca suffit", Angry, 0.9),
    ("en peux plus", Angry, 0.7),
    ("fiche moi la paix", Angry, 1.0),
    ("laisse moi tranquille", Angry, 0.8),
    ("moque de moi", Angry, 0.7),
    ("moques de moi", Angry, 0.8),
    // Sorrow, English.
    ("sad", Sorrow, 1.0),
    ("sadly", Sorrow, 0.7),
    ("sadness", Sorrow, 1.0),
    ("sadder", Sorrow, 1.0),
    ("unhappy", Sorrow, 1.0),
    ("miss", Sorrow, 0.6),
    ("lonely", Sorrow, 1.0),
    ("loneliness", Sorrow, 1.0),
    ("alone", Sorrow, 0.4),
    ("cry", Sorrow, 0.8),
    ("crying", Sorrow, 0.9),
    ("cried", Sorrow, 0.8),
    ("cries", Sorrow, 0.8),
    ("tears", Sorrow, 0.8),
    ("heartbroken", Sorrow, 1.0),
    ("heartbreak*", Sorrow, 1.0),
    ("grief", Sorrow, 1.0),
    ("grieving", Sorrow, 1.0),
    ("mourn*", Sorrow, 1.0),
    ("depress*", Sorrow, 1.0),
    ("empty", Sorrow, 0.4),
    ("died", Sorrow, 0.9),
    ("dead", Sorrow, 0.6),
    ("death", Sorrow, 0.8),
    ("funeral", Sorrow, 0.8),
    ("lost", Sorrow, 0.4),
    ("failed", Sorrow, 0.6),
    ("failure", Sorrow, 0.7),
    ("regret*", Sorrow, 0.8),
    ("sorry", Sorrow, 0.6),
    ("disappoint*", Sorrow, 0.9),
    ("hurt", Sorrow, 0.7),
    ("hurts", Sorrow, 0.7),
    ("painful", Sorrow, 0.7),
    ("miserable", Sorrow, 1.0),
    ("gloomy", Sorrow, 0.8),
    ("hopeless", Sorrow, 0.9),
    ("pointless", Sorrow, 0.6),
    ("devastated", Sorrow, 1.0),
    ("upset", Sorrow, 0.6),
    ("sob", Sorrow, 0.8),
    ("sobbing", Sorrow, 0.9),
    ("tragic", Sorrow, 0.8),
    ("passed away", Sorrow, 1.0),
    ("broke up", Sorrow, 0.8),
    ("feel down", Sorrow, 0.8),
    ("feeling down", Sorrow, 0.8),
    ("broken heart", Sorrow, 1.0),
    ("let down", Sorrow, 0.7),
    ("not okay", Sorrow, 0.7),
    ("not ok", Sorrow, 0.7),
    ("miss you", Sorrow, 0.8),
    // Sorrow, French.
    ("triste*", Sorrow, 1.0),
    ("malheureu*", Sorrow, 1.0),
    ("seul", Sorrow, 0.3),
    ("seule", Sorrow, 0.3),
    ("pleur*", Sorrow, 0.9),
    ("larmes", Sorrow, 0.8),
    ("chagrin", Sorrow, 1.0),
    ("peine", Sorrow, 0.3),
    ("deprim*", Sorrow, 1.0),
    ("decu", Sorrow, 0.9),
    ("decue", Sorrow, 0.9),
    ("decus", Sorrow, 0.9),
    ("decues", Sorrow, 0.9),
    ("decevant", Sorrow, 0.8),
    ("deception", Sorrow, 0.8),
    ("desole", Sorrow, 0.6),
    ("desolee", Sorrow, 0.6),
    ("manque", Sorrow, 0.3),
    ("mort", Sorrow, 0.7),
    ("morte", Sorrow, 0.7),
    ("deced*", Sorrow, 1.0),
    ("perdu", Sorrow, 0.4),
    ("nul", Sorrow, 0.4),
    ("cafard", Sorrow, 1.0),
    ("solitude", Sorrow, 0.8),
    ("souffr*", Sorrow, 0.8),
    ("douleur", Sorrow, 0.7),
    ("vide", Sorrow, 0.4),
    ("helas", Sorrow, 1.0),
    ("snif", Sorrow, 0.8),
    ("me manque", Sorrow, 0.9),
    ("te manque", Sorrow, 0.8),
    ("nous manque", Sorrow, 0.8),
    ("coeur brise", Sorrow, 1.0),
    ("de la peine", Sorrow, 0.9),
    ("sens seul", Sorrow, 1.0),
    ("sens seule", Sorrow, 1.0),
    ("ai rate", Sorrow, 0.7),
    ("a rate", Sorrow, 0.6),
    ("ai perdu", Sorrow, 0.6),
    ("ai mal", Sorrow, 0.6),
    ("sens nul", Sorrow, 0.8),
    ("sens nulle", Sorrow, 0.8),
    ("sens vide", Sorrow, 0.8),
    // Fun, English.
    ("haha*", Fun, 1.0),
    ("hehe*", Fun, 0.9),
    ("hihi*", Fun, 0.9),
    ("lol", Fun, 1.0),
    ("lmao", Fun, 1.0),
    ("rofl", Fun, 1.0),
    ("funny", Fun, 0.9),
    ("fun", Fun, 0.9),
    ("hilar*", Fun, 1.0),
    ("joke", Fun, 0.7),
    ("jokes", Fun, 0.7),
    ("joking", Fun, 0.6),
    ("laugh*", Fun, 0.8),
    ("silly", Fun, 0.7),
    ("goof*", Fun, 0.8),
    ("play", Fun, 0.4),
    ("playing", Fun, 0.4),
    ("playful", Fun, 0.8),
    ("game", Fun, 0.4),
    ("games", Fun, 0.4),
    ("party", Fun, 0.5),
    ("dance", Fun, 0.4),
    ("danced", Fun, 0.5),
    ("dancing", Fun, 0.5),
    ("pun", Fun, 0.6),
    ("puns", Fun, 0.6),
    ("tease", Fun, 0.6),
    ("teasing", Fun, 0.7),
    ("prank*", Fun, 0.9),
    ("karaoke", Fun, 0.6),
    ("amus*", Fun, 0.8),
    ("chill", Fun, 0.5),
    ("chilling", Fun, 0.6),
    ("relax*", Fun, 0.5),
    ("tickle", Fun, 0.6),
    ("giggl*", Fun, 0.9),
    ("kidding", Fun, 0.5),
    ("comedy", Fun, 0.6),
    ("a blast", Fun, 0.8),
    ("messing with", Fun, 0.8),
    ("just kidding", Fun, 0.8),
    ("knock knock", Fun, 0.9),
    // Fun, French.
    ("drole", Fun, 0.9),
    ("droles", Fun, 0.9),
    ("mdr", Fun, 1.0),
    ("ptdr", Fun, 1.0),
    ("rire", Fun, 0.7),
    ("ri", Fun, 0.6),
    ("rigol*", Fun, 0.9),
    ("marrant*", Fun, 0.9),
    ("marrer", Fun, 0.9),
    ("blague*", Fun, 0.8),
    ("jeu", Fun, 0.4),
    ("jeux", Fun, 0.4),
    ("joue", Fun, 0.4),
    ("jouer", Fun, 0.4),
    ("fete", Fun, 0.5),
    ("danse*", Fun, 0.5),
    ("taquin*", Fun, 0.8),
    ("farce*", Fun, 0.7),
    ("detend*", Fun, 0.6),
    ("delire", Fun, 0.6),
    ("mort de rire", Fun, 1.0),
    ("morte de rire", Fun, 1.0),
    ("mourir de rire", Fun, 1.0),
    ("ri aux larmes", Fun, 1.0),
    ("rire aux larmes", Fun, 1.0),
    ("pleure de rire", Fun, 1.0),
    ("pleurer de rire", Fun, 1.0),
    ("bien eu", Fun, 0.7),
    ("jeux de mots", Fun, 0.7),
    ("cache cache", Fun, 0.6),
    // Surprised, English.
    ("wow", Surprised, 0.9),
    ("whoa", Surprised, 0.9),
    ("woah", Surprised, 0.9),
    ("omg", Surprised, 1.0),
    ("surprised", Surprised, 1.0),
    ("surprising", Surprised, 0.9),
    ("shock*", Surprised, 0.9),
    ("amazed", Surprised, 0.9),
    ("astonish*", Surprised, 1.0),
    ("astound*", Surprised, 1.0),
    ("stunned", Surprised, 0.9),
    ("startled", Surprised, 0.9),
    ("unexpected*", Surprised, 0.9),
    ("unbelievable", Surprised, 0.8),
    ("incredible", Surprised, 0.6),
    ("gosh", Surprised, 0.6),
    ("huh", Surprised, 0.5),
    ("speechless", Surprised, 0.9),
    ("oh my god", Surprised, 1.0),
    ("oh my gosh", Surprised, 1.0),
    ("oh my", Surprised, 0.7),
    ("no way", Surprised, 0.9),
    ("not expect", Surprised, 0.9),
    ("not expecting", Surprised, 0.9),
    ("not expected", Surprised, 0.8),
    ("not believe", Surprised, 0.8),
    ("never knew", Surprised, 0.8),
    ("no idea", Surprised, 0.6),
    ("out of nowhere", Surprised, 0.9),
    ("out of the blue", Surprised, 0.9),
    ("off guard", Surprised, 0.9),
    ("kidding me", Surprised, 0.8),
    // Surprised, both languages (folded spellings agree).
    ("surprise", Surprised, 0.8),
    ("surpris*", Surprised, 0.9),
    ("surpren*", Surprised, 0.9),
    ("coincidence", Surprised, 0.7),
    // Surprised, French.
    ("incroyable", Surprised, 0.7),
    ("waouh", Surprised, 1.0),
    ("whaou", Surprised, 1.0),
    ("wouah", Surprised, 1.0),
    ("ouah", Surprised, 0.9),
    ("etonn*", Surprised, 0.9),
    ("stupef*", Surprised, 1.0),
    ("sidere*", Surprised, 1.0),
    ("abasourdi*", Surprised, 1.0),
    ("epoustoufl*", Surprised, 0.9),
    ("hallucin*", Surprised, 0.7),
    ("ca alors", Surprised, 1.0),
    ("oh la la", Surprised, 0.8),
    ("reviens pas", Surprised, 1.0),
    ("attendais pas", Surprised, 0.9),
    ("attendait pas", Surprised, 0.9),
    ("pas vrai", Surprised, 0.7),
    ("pas possible", Surprised, 0.8),
    ("oh mon dieu", Surprised, 1.0),
    ("mon dieu", Surprised, 0.8),
    ("tombe des nues", Surprised, 1.0),
    ("mince alors", Surprised, 0.9),
    ("dis donc", Surprised, 0.6),
    ("c est dingue", Surprised, 0.8),
    ("c est fou", Surprised, 0.8),
    ("jamais cru", Surprised, 0.8),
    ("pas croyable", Surprised, 0.8),
];

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
