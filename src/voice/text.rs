//! What of a reply is read aloud, and where its sentences end.
//!
//! Emotion tags and markup are for the face and the screen, never for the
//! ears: [`speakable`] keeps words, numbers and the punctuation that shapes
//! how they are said. [`Sentences`] cuts a reply that is still being written
//! into sentences as soon as each is complete, so that the first one can be
//! spoken while the model writes the next.

use crate::emotion::tags;

/// Abbreviations whose period does not end a sentence (lower case, without it).
const ABBREVIATIONS: &[&str] =
    &["mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "m", "mme", "mlle", "cf", "p", "no"];

/// `text` as it is read aloud: no emotion tags, no markup (`*bold*`,
/// `# headings`, `` `code` ``, links' brackets), no emoji or other symbols;
/// words, numbers and punctuation kept, runs of spaces made one.
pub fn speakable(text: &str) -> String {
    let visible = without_stage_directions(&tags::strip(text).text);
    let mut spoken = String::with_capacity(visible.len());
    for character in visible.chars() {
        let kept = character.is_alphanumeric()
            || character.is_whitespace()
            || ".,;:!?…'’\"“”«»()—–-%€$£&+/@".contains(character);
        if !kept {
            continue;
        }
        let character = if character == '’' { '\'' } else { character };
        if character.is_whitespace() {
            if !spoken.is_empty() && !spoken.ends_with(' ') {
                spoken.push(' ');
            }
        } else {
            spoken.push(character);
        }
    }
    spoken.trim().to_owned()
}

/// Longest text in square brackets that is taken for a stage direction.
const MAX_DIRECTION_CHARACTERS: usize = 40;

/// `text` without what a reply writes in square brackets on one line: a
/// stage direction (`[laughs]`) or an emotion tag the model got wrong
/// (`[Joy]`, `[happy]`), which the screen shows but nobody would say.
fn without_stage_directions(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let inside = &rest[open + 1..];
        let close = inside
            .char_indices()
            .take(MAX_DIRECTION_CHARACTERS + 1)
            .find(|(_, character)| matches!(character, ']' | '[' | '\n'))
            .filter(|(_, character)| *character == ']');
        kept.push_str(&rest[..open]);
        match close {
            Some((end, _)) => rest = &inside[end + 1..],
            None => {
                kept.push('[');
                rest = inside;
            }
        }
    }
    kept.push_str(rest);
    kept
}

/// Whether the text so far ends a sentence at byte `end` (just after a
/// `.`, `!`, `?` or `…`): not after an abbreviation or a lone initial.
fn ends_sentence(text: &str, end: usize) -> bool {
    let before = &text[..end];
    if !before.ends_with('.') {
        return true;
    }
    let word = before[..before.len() - 1].rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
    let word = word.trim_start_matches(['(', '"', '“', '«']).to_lowercase();
    !(ABBREVIATIONS.contains(&word.as_str()) || word.chars().count() == 1 && word.chars().all(char::is_alphabetic))
}

/// The marks that end a sentence.
const END_MARKS: [char; 4] = ['.', '!', '?', '…'];
/// Closing quotes and brackets, which still belong to the sentence before them.
const CLOSING_MARKS: [char; 5] = ['"', '”', '»', ')', '\''];

/// Whether a piece of speech ends with a sentence's end mark (`.` `!` `?`
/// `…`, before any closing quote or bracket), not within a sentence.
pub fn ends_sentence_mark(piece: &str) -> bool {
    piece
        .trim_end_matches(|mark: char| CLOSING_MARKS.contains(&mark) || matches!(mark, ' ' | '\u{a0}' | '\u{202f}'))
        .ends_with(END_MARKS)
}

/// Words a first clause needs before its comma ends it (so that "Oh," or
/// "Well," stays with what follows).
const FIRST_CLAUSE_WORDS: usize = 2;

/// Words of a first clause after which it may end before a joining word
/// (below), when no comma came: the voice's first piece is made before the
/// reply goes on, so a long one keeps the person waiting.
const FIRST_BREATH_WORDS: usize = 5;
/// Words after which the first piece ends anyway.
const FIRST_PIECE_MAX_WORDS: usize = 10;
/// Words a breath is taken before, in English and French.
const JOINING_WORDS: [&str; 28] = [
    "and", "but", "or", "so", "because", "to", "with", "when", "while", "which", "that", "for", "if", "where", "et",
    "mais", "ou", "donc", "car", "parce", "pour", "avec", "quand", "qui", "que", "si", "où", "comme",
];

/// Where a long first clause with no comma ends: before its first joining
/// word once it has [`FIRST_BREATH_WORDS`], else after
/// [`FIRST_PIECE_MAX_WORDS`]; only before a word already whole.
fn breath_end(text: &str) -> Option<usize> {
    let mut words = 0;
    let mut start = None;
    for (index, character) in text.char_indices() {
        match (character.is_whitespace(), start) {
            (false, None) => start = Some(index),
            (true, Some(from)) => {
                let word = text[from..index].to_lowercase();
                if words >= FIRST_BREATH_WORDS && JOINING_WORDS.contains(&word.as_str()) {
                    return Some(from);
                }
                words += 1;
                start = None;
                if words == FIRST_PIECE_MAX_WORDS {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

/// Sentences of a text that arrives in pieces.
#[derive(Debug, Clone, Default)]
pub struct Sentences {
    /// Text not yet part of a complete sentence.
    pending: String,
    /// Whether the first piece may end at a clause (`,` `;` `:`) rather than
    /// wait for its sentence's end.
    first_clause: bool,
    /// Pieces given so far.
    given: usize,
}

impl Sentences {
    /// Cuts nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts the text for a voice: the first piece ends at its first clause
    /// of a few words, or takes a breath in a long one, so that the voice
    /// starts sooner; then whole sentences.
    pub fn for_speech() -> Self {
        Self { first_clause: true, ..Self::default() }
    }

    /// Adds `piece`; returns the sentences it completes. A sentence is
    /// complete at a line break, or at `.`, `!`, `?` or `…` (and any closing
    /// quote or bracket after them) once the next character is a space: a
    /// period inside `3.5` or `e.g.` is not an end.
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.pending.push_str(piece);
        let mut sentences = Vec::new();
        while let Some(end) = self.next_end() {
            let sentence = self.pending[..end].trim().to_owned();
            self.pending.drain(..end);
            if !sentence.is_empty() {
                sentences.push(sentence);
                self.given += 1;
            }
        }
        sentences
    }

    /// The rest, once the text is complete.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_owned())
    }

    /// Where the first complete sentence in `pending` ends.
    fn next_end(&self) -> Option<usize> {
        let text = &self.pending;
        let first = self.first_clause && self.given == 0;
        let breath = first.then(|| breath_end(text)).flatten();
        for (index, character) in text.char_indices() {
            if Some(index) == breath {
                return breath;
            }
            if character == '\n' {
                return Some(index + 1);
            }
            let after = index + character.len_utf8();
            if matches!(character, ',' | ';' | ':')
                && first
                && text[after..].starts_with(char::is_whitespace)
                && text[..index].split_whitespace().count() >= FIRST_CLAUSE_WORDS
            {
                return Some(after);
            }
            if !END_MARKS.contains(&character) || !ends_sentence(text, index + character.len_utf8()) {
                continue;
            }
            let end = index + character.len_utf8() + closing_marks(&text[index + character.len_utf8()..]);
            if text[end..].starts_with(char::is_whitespace) {
                return Some(end);
            }
        }
        None
    }
}

/// Bytes of the marks that still belong to a sentence at the start of
/// `rest`: more end marks, closing quotes and brackets, and a French closing
/// guillemet after its space (`Oui ! »`).
fn closing_marks(rest: &str) -> usize {
    let mut length = 0;
    loop {
        let after = &rest[length..];
        if let Some(mark) = after.chars().next().filter(|mark| END_MARKS.contains(mark) || CLOSING_MARKS.contains(mark))
        {
            length += mark.len_utf8();
            continue;
        }
        let spaced = after.trim_start_matches([' ', '\u{a0}', '\u{202f}']);
        if spaced.starts_with('»') {
            length += after.len() - spaced.len() + '»'.len_utf8();
            continue;
        }
        return length;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_markup_and_symbols_are_not_read() {
        assert_eq!(speakable("[joy] **Great** news! 🎉 See `this`."), "Great news! See this.");
        assert_eq!(speakable("# Title\n- one *two*"), "Title - one two");
        assert_eq!(speakable("[sorrow] C’est dommage…"), "C'est dommage…");
        // Brackets the tags do not know are not read either.
        assert_eq!(speakable("[Try to relax] [Joy] Try a walk. [laughs]"), "Try a walk.");
        assert_eq!(speakable("a [ b\n c ] d [unclosed"), "a b c d unclosed");
    }

    fn cut(pieces: &[&str]) -> Vec<String> {
        let mut sentences = Sentences::new();
        let mut all: Vec<String> = pieces.iter().flat_map(|piece| sentences.push(piece)).collect();
        all.extend(sentences.finish());
        all
    }

    #[test]
    fn a_piece_that_ends_a_sentence_is_told_from_a_clause() {
        for piece in ["Hello there!", "« Oui ! »", "(Really?)", "Well…", "He said \"no.\""] {
            assert!(ends_sentence_mark(piece), "{piece}");
        }
        for piece in ["Oh, that sounds lovely,", "I think a walk by the sea", "Bon ;"] {
            assert!(!ends_sentence_mark(piece), "{piece}");
        }
    }

    #[test]
    fn sentences_end_where_a_reader_would_stop() {
        assert_eq!(cut(&["Hello there! How", " are you? I'm fine"]), ["Hello there!", "How are you?", "I'm fine"]);
        assert_eq!(cut(&["It costs 3.5 euros. Dr. Smith agrees."]), ["It costs 3.5 euros.", "Dr. Smith agrees."]);
        assert_eq!(cut(&["« Oui ! » dit-elle. Bon…", " d'accord"]), ["« Oui ! »", "dit-elle.", "Bon…", "d'accord"]);
        assert_eq!(cut(&["one\ntwo"]), ["one", "two"]);
    }

    #[test]
    fn a_voice_starts_on_the_first_clause_of_a_few_words() {
        let mut sentences = Sentences::for_speech();
        assert!(sentences.push("Well, I love the summer").is_empty(), "one word is not a clause");
        assert_eq!(sentences.push(", truly: it is warm. Then,"), ["Well, I love the summer,", "truly: it is warm."]);
        assert_eq!(sentences.push(" more comes."), Vec::<String>::new());
        assert_eq!(sentences.push(" Done"), ["Then, more comes."]);
    }

    #[test]
    fn a_long_first_clause_takes_a_breath_before_a_joining_word() {
        let mut sentences = Sentences::for_speech();
        assert!(sentences.push("Sure, a rainy afternoon could be a great way to").is_empty(), "the word may go on");
        assert_eq!(
            sentences.push(" unwind and enjoy the outdoors. Maybe"),
            ["Sure, a rainy afternoon could be a great way", "to unwind and enjoy the outdoors."]
        );
        let mut french = Sentences::for_speech();
        let long = "Je crois que la plus belle saison de toute l'année est sans doute l'automne qui";
        assert_eq!(french.push(long), ["Je crois que la plus belle saison de toute l'année"], "ten words at most");
        let mut short = Sentences::for_speech();
        assert_eq!(short.push("Oh oui, tu sais."), ["Oh oui,"], "a clause of two words");
        let mut later = Sentences::for_speech();
        assert_eq!(later.push("Yes. Then a long sentence comes with many words and no comma at all in it"), ["Yes."]);
    }

    #[test]
    fn a_sentence_is_given_as_soon_as_the_next_word_starts() {
        let mut sentences = Sentences::new();
        assert!(sentences.push("Hi.").is_empty());
        assert_eq!(sentences.push(" Then"), ["Hi."]);
        assert_eq!(sentences.finish().as_deref(), Some("Then"));
    }
}
