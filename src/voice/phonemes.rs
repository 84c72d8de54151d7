//! Text to phonemes, by the `espeak-ng` program.
//!
//! Kokoro reads the International Phonetic Alphabet as espeak-ng writes it,
//! with the punctuation left in (a comma is a pause, a question mark a rising
//! end). espeak-ng drops punctuation and starts a new line at every clause,
//! so the text is cut at punctuation first: each stretch between two marks
//! is phonemized alone and the marks are put back between them. espeak-ng is
//! run as a process, never linked: it is GPL, and Workly is not.

use crate::chat::persona::Language;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// The program.
pub const ESPEAK: &str = "espeak-ng";

/// The punctuation Kokoro knows, kept as it is.
const KEPT: &[char] = &[';', ':', ',', '.', '!', '?', '—', '…', '"', '(', ')', '“', '”'];

/// Phonemes could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhonemeError {
    /// espeak-ng is not installed.
    #[error(
        "{ESPEAK} is not installed: Kira's voice needs it (scripts/setup.sh installs it; on Debian, apt install {ESPEAK})"
    )]
    Missing,
    /// espeak-ng failed.
    #[error("{ESPEAK} failed: {0}")]
    Failed(String),
}

impl crate::error::Classify for PhonemeError {
    fn class(&self) -> crate::error::Class {
        match self {
            PhonemeError::Missing => crate::error::Class::BadInput,
            PhonemeError::Failed(_) => crate::error::Class::Failure,
        }
    }
}

/// The espeak-ng voice for a language and accent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accent {
    /// American English.
    American,
    /// British English.
    British,
    /// French of France.
    French,
}

impl Accent {
    /// espeak-ng's name for it.
    pub fn espeak_voice(self) -> &'static str {
        match self {
            Accent::American => "en-us",
            Accent::British => "en-gb",
            Accent::French => "fr-fr",
        }
    }

    /// The language spoken.
    pub fn language(self) -> Language {
        match self {
            Accent::American | Accent::British => Language::English,
            Accent::French => Language::French,
        }
    }
}

/// A piece of text: words to phonemize, or a mark to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Words(&'a str),
    Mark(char),
}

/// Cuts `text` at the punctuation Kokoro knows (others become the nearest
/// one it knows, or a space).
fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (index, character) in text.char_indices() {
        let mark = match character {
            mark if KEPT.contains(&mark) => Some(mark),
            '«' | '»' => Some('"'),
            '–' => Some('—'),
            _ => None,
        };
        if let Some(mark) = mark {
            pieces.push(Piece::Words(&text[start..index]));
            pieces.push(Piece::Mark(mark));
            start = index + character.len_utf8();
        }
    }
    pieces.push(Piece::Words(&text[start..]));
    pieces.retain(|piece| !matches!(piece, Piece::Words(words) if words.trim().is_empty()));
    pieces
}

/// `text` in the phonemes Kokoro reads, for `accent`.
pub fn phonemize(text: &str, accent: Accent) -> Result<String, PhonemeError> {
    let mut phonemes = String::new();
    for piece in pieces(text) {
        match piece {
            Piece::Words(words) => {
                if !phonemes.is_empty() && !phonemes.ends_with(['(', '"', '“', ' ']) {
                    phonemes.push(' ');
                }
                phonemes.push_str(&espeak(words, accent)?);
            }
            Piece::Mark(mark) => {
                if matches!(mark, '(' | '“') && !phonemes.is_empty() && !phonemes.ends_with(' ') {
                    phonemes.push(' ');
                }
                phonemes.push(mark);
            }
        }
    }
    Ok(kokoro_spelling(&phonemes))
}

/// espeak-ng's IPA for words without punctuation, on one line.
fn espeak(words: &str, accent: Accent) -> Result<String, PhonemeError> {
    let mut child = Command::new(ESPEAK)
        .args(["-q", "--ipa", "-b", "1", "--stdin", "-v", accent.espeak_voice()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => PhonemeError::Missing,
            _ => PhonemeError::Failed(error.to_string()),
        })?;
    // A line break inside the words would read as a pause: spaces only.
    let line = words.split_whitespace().collect::<Vec<_>>().join(" ");
    let written = child.stdin.take().map(|mut stdin| stdin.write_all(line.as_bytes()));
    let output = child.wait_with_output().map_err(|error| PhonemeError::Failed(error.to_string()))?;
    if let Some(Err(error)) = written {
        return Err(PhonemeError::Failed(error.to_string()));
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(PhonemeError::Failed(stderr.lines().next().unwrap_or("no message").to_owned()));
    }
    let text = without_language_switches(&String::from_utf8_lossy(&output.stdout));
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// espeak-ng's phonemes without the marks it puts around a word it reads
/// in another language (`sə (en)wˈiːkˈɛnd(fr)`): Kokoro would say them.
fn without_language_switches(phonemes: &str) -> String {
    let mut kept = String::with_capacity(phonemes.len());
    let mut rest = phonemes;
    while let Some(open) = rest.find('(') {
        kept.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(')') {
            Some(close) if close > 0 && after[..close].chars().all(|c| c.is_ascii_alphabetic() || c == '-') => {
                rest = &after[close + 1..];
            }
            _ => {
                kept.push('(');
                rest = after;
            }
        }
    }
    kept.push_str(rest);
    kept
}

/// espeak-ng's symbols as Kokoro was trained on them: a few it writes
/// differently (palatalization, the English r, and sounds Kokoro's English
/// voices do not have).
fn kokoro_spelling(phonemes: &str) -> String {
    phonemes
        .chars()
        .filter(|character| *character != '-')
        .map(|character| match character {
            'ʲ' => 'j',
            'r' => 'ɹ',
            'x' => 'k',
            'ɬ' => 'l',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_cut_at_punctuation() {
        assert_eq!(
            pieces("Hello, «you» there… ok?"),
            [
                Piece::Words("Hello"),
                Piece::Mark(','),
                Piece::Mark('"'),
                Piece::Words("you"),
                Piece::Mark('"'),
                Piece::Words(" there"),
                Piece::Mark('…'),
                Piece::Words(" ok"),
                Piece::Mark('?'),
            ]
        );
    }

    #[test]
    fn punctuation_survives_phonemization() {
        let phonemes = phonemize("Hello there, how are you?", Accent::American).unwrap();
        assert!(phonemes.starts_with("həlˈoʊ ðˈɛɹ, "), "{phonemes}");
        assert!(phonemes.ends_with('?'), "{phonemes}");
        let french = phonemize("Bonjour, je m'appelle Kira.", Accent::French).unwrap();
        assert!(french.starts_with("bɔ̃ʒˈuʁ, ʒə mapˈɛl"), "{french}");
        assert!(french.ends_with('.'), "{french}");
    }

    #[test]
    fn a_word_from_another_language_is_read_without_its_marks() {
        assert_eq!(without_language_switches("sə (en)wˈiːkˈɛnd(fr) a"), "sə wˈiːkˈɛnd a");
        let phonemes = phonemize("Qu'est-ce que tu as fait ce week-end ?", Accent::French).unwrap();
        assert!(!phonemes.contains("(en)") && !phonemes.contains("(fr)"), "{phonemes}");
    }

    #[test]
    fn numbers_are_read_out() {
        let phonemes = phonemize("42", Accent::American).unwrap();
        assert!(phonemes.starts_with("fˈoːɹɾi"), "{phonemes}");
    }
}
