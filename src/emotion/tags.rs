//! Emotion tags in a streamed reply: `[joy] Hello!` shows `Hello!` and says
//! "joy" as soon as the `]` arrives.
//!
//! The persona asks the model to open each sentence with one of
//! `[neutral] [joy] [angry] [sorrow] [fun] [surprised]`. Tokens arrive in
//! pieces that may split a tag anywhere (`"[jo"` then `"y] Hi"`), so
//! [`TagParser`] is a character-by-character state machine: its output does not
//! depend on how the text was cut, only on the text.
//!
//! The rule for everything else: a `[` is held back only while what follows it
//! can still become a tag (at most `[` and the longest name, [`MAX_HELD_BYTES`]);
//! as soon as it cannot (`[JOY]`, `[happy]`, `[joyful]`, `[` then a newline),
//! the held text is shown verbatim, and whatever is held when the reply ends is
//! shown too. A tag also eats the one space after it, so `[joy] Hello` reads
//! `Hello`. Visible text never contains a valid tag, even one that adversarial
//! text would assemble around a removed tag (`[jo[joy]y]`).
//!
//! Small models write tags that are not (`[Joy]`, `[sad]`, `[I smile]`,
//! `[Nearby friends]`): shown verbatim by these rules, they would reach the
//! screen. So a reply that is asked for tags is held to [`GRAMMAR`] as it is
//! written, and a `[` it writes before a word opens a tag this parser takes.
//!
//! This module does not decide what the face shows; see
//! `super::smoothing` and `super::analyzer`.

use super::Emotion;
use serde::Serialize;

/// Bytes of the longest emotion name (checked against [`Emotion::ALL`] by a test).
const LONGEST_NAME_BYTES: usize = "surprised".len();

/// Most bytes the parser holds back while it cannot yet tell whether a `[`
/// opens a tag: the `[` and the longest name (a `]` is never held).
pub const MAX_HELD_BYTES: usize = LONGEST_NAME_BYTES + 1;

/// The grammar (llama.cpp's GBNF) of a reply asked for tags: a `[` before a
/// letter opens a tag. Code is left alone: between backticks (inline or
/// fenced) anything goes, and outside them a `[` right after a word
/// (`items[index]`) or before anything but a letter (`[0]`, `[1, 2]`) stays
/// free.
pub const GRAMMAR: &str = r#"root ::= text
text ::= ([^\[`a-zA-Z0-9_)\]] text | word after-word | tag text | "[" [^a-zA-Z\u00C0-\u024F`\[] text | "`" code)?
after-word ::= ("[" after-word | word after-word | [^\[`a-zA-Z0-9_)\]] text | "`" code)?
word ::= [a-zA-Z0-9_)\]]
code ::= ("``" fence | [^`] inline)?
inline ::= ("`" text | [^`] inline)?
fence ::= ("```" text | [^`] fence | "`" [^`] fence | "``" [^`] fence)?
tag ::= "[" ("neutral" | "joy" | "angry" | "sorrow" | "fun" | "surprised") "]"
"#;

/// What the parser found, in reading order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TagEvent {
    /// Text to show (tags removed).
    Text(String),
    /// A complete, valid tag.
    Tag(Emotion),
}

/// Removes emotion tags from a stream of text pieces; see the module docs for
/// the rules.
#[derive(Debug, Clone, Default)]
pub struct TagParser {
    /// The `[` and name characters that may still become a tag. Its first
    /// `shown` bytes are already visible (see `outer`); the rest is held back.
    open: String,
    shown: usize,
    /// The visible fragment (`[` and a name prefix) just before `open` began:
    /// if `open` turns out to be a tag, the text after it continues this
    /// fragment, which must then not be allowed to complete a tag either.
    outer: String,
    /// A tag just ended: one space right after it is not shown.
    drop_space: bool,
}

impl TagParser {
    /// A parser at the start of a reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece of the reply; returns the text that can be shown
    /// now and the tags completed, in order.
    pub fn push(&mut self, piece: &str) -> Vec<TagEvent> {
        let mut events = Events::default();
        for character in piece.chars() {
            self.feed(character, &mut events);
        }
        events.0
    }

    /// Ends the reply: whatever was held back (an unfinished `[jo`) is shown.
    /// The parser is then ready for a new reply.
    pub fn finish(&mut self) -> Vec<TagEvent> {
        let mut events = Events::default();
        events.text(&self.open[self.shown..]);
        *self = Self::default();
        events.0
    }

    fn feed(&mut self, character: char, events: &mut Events) {
        if std::mem::take(&mut self.drop_space) && character == ' ' {
            return;
        }
        if self.open.is_empty() {
            if character == '[' {
                self.open.push('[');
            } else {
                events.character(character);
            }
            return;
        }
        let name = &self.open[1..];
        if character == ']' {
            if let Ok(emotion) = name.parse::<Emotion>() {
                events.tag(emotion);
                self.drop_space = true;
                if self.shown > 0 {
                    // The tag began in visible text, which still ends with
                    // that fragment: it stays live.
                    self.open.truncate(self.shown);
                } else {
                    // The visible fragment before this tag is live again.
                    self.open = std::mem::take(&mut self.outer);
                    self.shown = self.open.len();
                }
            } else {
                events.text(&self.open[self.shown..]);
                events.character(']');
                self.reset_open();
            }
            return;
        }
        if is_name_prefix(name, character) {
            self.open.push(character);
            return;
        }
        // Not a tag after all: show what was held. The whole of `open` is now
        // visible and is the fragment a `[` starting here would sit after.
        events.text(&self.open[self.shown..]);
        let visible = std::mem::take(&mut self.open);
        self.reset_open();
        if character == '[' {
            self.open.push('[');
            self.outer = visible;
        } else {
            events.character(character);
        }
    }

    fn reset_open(&mut self) {
        self.open.clear();
        self.shown = 0;
        self.outer.clear();
    }
}

/// Whether `name` followed by `next` begins some emotion's name.
fn is_name_prefix(name: &str, next: char) -> bool {
    let mut buffer = [0u8; 4];
    let next = next.encode_utf8(&mut buffer);
    Emotion::ALL.iter().any(|emotion| emotion.as_str().strip_prefix(name).is_some_and(|rest| rest.starts_with(&*next)))
}

/// Events being collected, adjacent texts merged into one.
#[derive(Default)]
struct Events(Vec<TagEvent>);

impl Events {
    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some(TagEvent::Text(last)) => last.push_str(text),
            _ => self.0.push(TagEvent::Text(text.to_owned())),
        }
    }

    fn character(&mut self, character: char) {
        self.text(character.encode_utf8(&mut [0u8; 4]));
    }

    fn tag(&mut self, emotion: Emotion) {
        self.0.push(TagEvent::Tag(emotion));
    }
}

/// A whole text with its tags taken out.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Stripped {
    /// The text as shown.
    pub text: String,
    /// The valid tags, in order.
    pub tags: Vec<Emotion>,
}

impl FromIterator<TagEvent> for Stripped {
    /// Gathers events: texts joined, tags listed.
    fn from_iter<I: IntoIterator<Item = TagEvent>>(events: I) -> Self {
        let mut stripped = Stripped::default();
        for event in events {
            match event {
                TagEvent::Text(text) => stripped.text.push_str(&text),
                TagEvent::Tag(emotion) => stripped.tags.push(emotion),
            }
        }
        stripped
    }
}

/// Parses a complete text at once (the same result as streaming it).
pub fn strip(text: &str) -> Stripped {
    let mut parser = TagParser::new();
    let events = parser.push(text);
    events.into_iter().chain(parser.finish()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Streams `pieces` and gathers the result the way [`strip`] does.
    fn stream(pieces: &[&str]) -> Stripped {
        let mut parser = TagParser::new();
        let events = pieces.iter().flat_map(|piece| parser.push(piece)).collect::<Vec<_>>();
        events.into_iter().chain(parser.finish()).collect()
    }

    fn contains_valid_tag(text: &str) -> bool {
        Emotion::ALL.iter().any(|emotion| text.contains(&format!("[{emotion}]")))
    }

    #[test]
    fn the_grammar_names_every_tag_and_only_them() {
        let rule = GRAMMAR.lines().find(|line| line.starts_with("tag ::=")).unwrap();
        let names: Vec<&str> = rule.split('"').skip(3).step_by(2).take_while(|name| *name != "]").collect();
        assert_eq!(names, Emotion::ALL.map(Emotion::as_str));
    }

    #[test]
    fn the_bound_fits_the_longest_name() {
        let longest = Emotion::ALL.iter().map(|emotion| emotion.as_str().len()).max();
        assert_eq!(Some(LONGEST_NAME_BYTES), longest);
    }

    #[test]
    fn a_split_tag_is_removed_with_the_space_after_it() {
        let mut parser = TagParser::new();
        assert_eq!(parser.push("[jo"), []);
        assert_eq!(parser.push("y] Hello"), [TagEvent::Tag(Emotion::Joy), TagEvent::Text("Hello".into())]);
        assert_eq!(parser.finish(), []);
    }

    #[test]
    fn the_tag_event_comes_as_soon_as_the_bracket_closes() {
        let mut parser = TagParser::new();
        assert_eq!(
            parser.push("Well. [surprised]"),
            [TagEvent::Text("Well. ".into()), TagEvent::Tag(Emotion::Surprised)]
        );
        // The space after the tag is dropped even when it comes in the next piece.
        assert_eq!(parser.push(" Oh!"), [TagEvent::Text("Oh!".into())]);
    }

    #[test]
    fn only_one_space_is_eaten_and_only_a_space() {
        assert_eq!(strip("[fun]  two").text, " two");
        assert_eq!(strip("[fun]\nline").text, "\nline");
        assert_eq!(strip("[fun]x").text, "x");
    }

    #[test]
    fn malformed_tags_are_shown_verbatim() {
        for text in ["[JOY] hi", "[happy] hi", "[unknown] hi", "[joyful] hi", "[jo] hi", "[] hi", "a [ b ] c"] {
            let stripped = strip(text);
            assert_eq!(stripped.text, text, "{text}");
            assert!(stripped.tags.is_empty(), "{text}");
        }
    }

    #[test]
    fn an_unclosed_tag_is_flushed_at_the_end() {
        let mut parser = TagParser::new();
        assert_eq!(parser.push("Hi [joy"), [TagEvent::Text("Hi ".into())]);
        assert_eq!(parser.finish(), [TagEvent::Text("[joy".into())]);
        assert_eq!(strip("ends with [").text, "ends with [");
    }

    #[test]
    fn very_long_bracket_text_is_released_early() {
        let mut parser = TagParser::new();
        let long = format!("[{}]", "x".repeat(10_000));
        assert_eq!(parser.push(&long), [TagEvent::Text(long.clone())]);
        // An undecided prefix is held, never more than the bound.
        assert_eq!(parser.push("[surprise"), []);
        assert_eq!(parser.open.len(), MAX_HELD_BYTES - 1);
        assert_eq!(parser.push("d]"), [TagEvent::Tag(Emotion::Surprised)]);
    }

    #[test]
    fn a_bracket_inside_a_candidate_starts_a_new_one() {
        assert_eq!(strip("[[joy] hi"), Stripped { text: "[hi".into(), tags: vec![Emotion::Joy] });
        assert_eq!(strip("[jo[sorrow] x"), Stripped { text: "[jox".into(), tags: vec![Emotion::Sorrow] });
    }

    #[test]
    fn text_around_a_removed_tag_cannot_assemble_another() {
        // "[jo" + "y]" would read "[joy]" once the inner tag is gone.
        let stripped = strip("[jo[fun]y] end");
        assert!(!contains_valid_tag(&stripped.text), "{stripped:?}");
        assert_eq!(stripped.tags, [Emotion::Fun, Emotion::Joy]);
    }

    #[test]
    fn a_fragment_completed_across_a_removed_tag_stays_live() {
        // Found by the emotion_tags fuzz target: once "[joy" + "]" had been
        // taken as a tag, the visible "[joy" was forgotten and the next "]"
        // was shown after it.
        for text in ["\u{5}[joy[fun]]]O.hh[aappy]\u{1}\0\0\0\0\0\0\u{4}", "[joy[fun]]]", "[jo[fun]y]y] end"] {
            let stripped = strip(text);
            assert!(!contains_valid_tag(&stripped.text), "{text:?} -> {stripped:?}");
        }
        assert_eq!(strip("[jo[fun]y]y] end").text, "[joend");
    }

    #[test]
    fn multibyte_text_passes_untouched() {
        assert_eq!(strip("[joy] Ça va ? 😀 [sorrow]Désolée…").text, "Ça va ? 😀 Désolée…");
        assert_eq!(stream(&["[joy", "] é", "t", "é"]).text, "été");
    }

    #[test]
    fn every_tag_name_is_recognised() {
        for emotion in Emotion::ALL {
            assert_eq!(strip(&format!("[{emotion}] x")).tags, [emotion]);
        }
    }

    /// Splits `text` at the given fractions, on character boundaries.
    fn split_at_fractions<'a>(text: &'a str, cuts: &[f64]) -> Vec<&'a str> {
        let mut boundaries: Vec<usize> = cuts
            .iter()
            .map(|fraction| {
                let mut index = ((text.len() as f64) * fraction) as usize;
                while !text.is_char_boundary(index) {
                    index -= 1;
                }
                index
            })
            .collect();
        boundaries.push(0);
        boundaries.push(text.len());
        boundaries.sort_unstable();
        boundaries.windows(2).map(|pair| &text[pair[0]..pair[1]]).collect()
    }

    /// Text rich in brackets, tag names and their fragments, and multibyte characters.
    fn tricky_text() -> impl Strategy<Value = String> {
        proptest::string::string_regex(
            r"(\[|\]|joy|jo|y|neutral|neu|sorrow|fun|angry|surprised|surpri|JOY|happy| |x|é|😀|\n){0,40}",
        )
        .expect("valid regex")
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_result(text in tricky_text(), cuts in proptest::collection::vec(0.0f64..1.0, 0..8)) {
            let pieces = split_at_fractions(&text, &cuts);
            prop_assert_eq!(stream(&pieces), strip(&text));
        }

        #[test]
        fn output_never_contains_a_valid_tag(text in tricky_text()) {
            let stripped = strip(&text);
            prop_assert!(!contains_valid_tag(&stripped.text), "{:?} -> {:?}", text, stripped.text);
        }

        #[test]
        fn the_parser_never_holds_more_than_the_bound(text in tricky_text()) {
            let mut parser = TagParser::new();
            for character in text.chars() {
                parser.push(character.encode_utf8(&mut [0u8; 4]));
                prop_assert!(parser.open.len() - parser.shown <= MAX_HELD_BYTES);
            }
        }

        #[test]
        fn arbitrary_text_never_panics_and_keeps_every_character_without_tags(text in any::<String>()) {
            // Without a valid tag nothing is removed.
            let stripped = strip(&text);
            if stripped.tags.is_empty() {
                prop_assert_eq!(stripped.text, text);
            }
        }

        #[test]
        fn tagged_sentences_read_as_their_text(
            sentences in proptest::collection::vec(
                (proptest::sample::select(Emotion::ALL.to_vec()), "[^\\[\\]]{0,20}"),
                0..6,
            ),
            cuts in proptest::collection::vec(0.0f64..1.0, 0..8),
        ) {
            let text: String = sentences.iter().map(|(emotion, sentence)| format!("[{emotion}] {sentence}")).collect();
            let expected_text: String = sentences.iter().map(|(_, sentence)| sentence.as_str()).collect();
            let expected_tags: Vec<Emotion> = sentences.iter().map(|(emotion, _)| *emotion).collect();
            let pieces = split_at_fractions(&text, &cuts);
            prop_assert_eq!(stream(&pieces), Stripped { text: expected_text, tags: expected_tags });
        }
    }
}
