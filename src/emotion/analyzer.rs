//! The reply analyzer: a streamed reply in, the text to show and the face to
//! show out, and the reply's emotion at the end.
//!
//! It ties the pieces together for the chat loop: [`TagParser`] removes the
//! tags, the visible text is cut into sentences, each sentence is read (its tag
//! if it has one, the lexicon otherwise, see [`Reading::of_sentence`]) and the
//! [`Smoother`] decides the face. A tag applies to the text after it until the
//! next tag, since models often tag only the first of several sentences.
//!
//! A sentence is read once it ends (at `.`, `!`, `?` or `…` followed by white
//! space, a line break, the next tag, or the end of the reply), so the face
//! follows the reply by at most one sentence; reading half a sentence would
//! miss "not" in "I am not happy".

use super::Emotion;
use super::lexicon;
use super::smoothing::{Face, Reading, Smoother, TurnEmotion};
use super::tags::{TagEvent, TagParser};

/// What one piece of a reply changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// Text to show now (tags removed; may be empty while a tag is undecided).
    pub text: String,
    /// Tags completed in this piece, in order.
    pub tags: Vec<Emotion>,
    /// The face to show, when it changed (the latest change if several did).
    pub face: Option<Face>,
}

/// Reads one streamed reply; make a new one per reply.
#[derive(Debug, Clone, Default)]
pub struct Analyzer {
    parser: TagParser,
    sentence: String,
    tag: Option<Emotion>,
    smoother: Smoother,
}

impl Analyzer {
    /// An analyzer for a new reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next piece of the reply as the model produced it.
    pub fn push(&mut self, piece: &str) -> Update {
        let mut update = Update::default();
        let events = self.parser.push(piece);
        self.apply(events, &mut update);
        update
    }

    /// Ends the reply: shows what was held back, reads the last sentence and
    /// returns the reply's emotion.
    pub fn finish(mut self) -> (Update, TurnEmotion) {
        let mut update = Update::default();
        let events = self.parser.finish();
        self.apply(events, &mut update);
        self.close_sentence(&mut update);
        (update, self.smoother.turn())
    }

    /// What the face shows now.
    pub fn face(&self) -> Face {
        self.smoother.face()
    }

    fn apply(&mut self, events: Vec<TagEvent>, update: &mut Update) {
        for event in events {
            match event {
                TagEvent::Tag(emotion) => {
                    self.close_sentence(update);
                    self.tag = Some(emotion);
                    update.tags.push(emotion);
                }
                TagEvent::Text(text) => {
                    for character in text.chars() {
                        self.character(character, update);
                    }
                    update.text.push_str(&text);
                }
            }
        }
    }

    fn character(&mut self, character: char, update: &mut Update) {
        let ends_sentence = character == '\n'
            || (character.is_whitespace() && self.sentence.trim_end().ends_with(['.', '!', '?', '…']));
        if ends_sentence {
            self.close_sentence(update);
        } else if !(character.is_whitespace() && self.sentence.is_empty()) {
            self.sentence.push(character);
        }
    }

    fn close_sentence(&mut self, update: &mut Update) {
        let words = self.sentence.split_whitespace().count();
        if words > 0 {
            let analysis = lexicon::analyze(&self.sentence);
            if let Some(face) = self.smoother.observe(&Reading::of_sentence(self.tag, &analysis, words)) {
                update.face = Some(face);
            }
        }
        self.sentence.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Streams `pieces`; returns the shown text, every face change and the turn.
    fn run(pieces: &[&str]) -> (String, Vec<Face>, TurnEmotion) {
        let mut analyzer = Analyzer::new();
        let mut text = String::new();
        let mut faces = Vec::new();
        for piece in pieces {
            let update = analyzer.push(piece);
            text.push_str(&update.text);
            faces.extend(update.face);
        }
        let (update, turn) = analyzer.finish();
        text.push_str(&update.text);
        faces.extend(update.face);
        (text, faces, turn)
    }

    #[test]
    fn tagged_reply_shows_clean_text_and_follows_the_tags() {
        let (text, faces, turn) =
            run(&["[jo", "y] I'm so glad you came", "! [surpr", "ised] Wait, you brought cake?! ", "Amazing."]);
        assert_eq!(text, "I'm so glad you came! Wait, you brought cake?! Amazing.");
        let emotions: Vec<Emotion> = faces.iter().map(|face| face.emotion).collect();
        assert_eq!(emotions.first(), Some(&Emotion::Joy));
        assert_eq!(emotions.last(), Some(&Emotion::Surprised));
        assert!(matches!(turn.emotion, Emotion::Joy | Emotion::Surprised), "{turn:?}");
    }

    #[test]
    fn untagged_reply_falls_back_to_the_lexicon() {
        let (text, faces, turn) = run(&["Oh no, I'm so sorry to hear that. ", "That must be really sad."]);
        assert_eq!(text, "Oh no, I'm so sorry to hear that. That must be really sad.");
        assert_eq!(faces.first().map(|face| face.emotion), Some(Emotion::Sorrow));
        assert_eq!(turn.emotion, Emotion::Sorrow);
    }

    #[test]
    fn the_tag_event_is_reported_in_the_piece_that_completes_it() {
        let mut analyzer = Analyzer::new();
        assert_eq!(analyzer.push("[fu").tags, []);
        assert_eq!(analyzer.push("n]").tags, [Emotion::Fun]);
    }

    #[test]
    fn a_sentence_is_read_when_it_ends() {
        let mut analyzer = Analyzer::new();
        // "not" comes after "happy" would have been seen.
        assert_eq!(analyzer.push("I am not happy about it").face, None);
        let update = analyzer.push(". ");
        assert_eq!(update.face.map(|face| face.emotion), Some(Emotion::Sorrow));
        assert_eq!(update.face, Some(analyzer.face()));
    }

    #[test]
    fn neutral_tags_do_not_hide_clear_feelings() {
        let (_, _, turn) = run(&["[neutral] I'm so happy and grateful for you, thank you!"]);
        assert_eq!(turn.emotion, Emotion::Joy);
        let (_, faces, turn) = run(&["[neutral] The train leaves at four. [neutral] It takes an hour."]);
        assert!(faces.is_empty());
        assert_eq!(turn.emotion, Emotion::Neutral);
    }

    #[test]
    fn an_empty_reply_is_neutral() {
        let (text, faces, turn) = run(&[]);
        assert_eq!((text.as_str(), faces.len(), turn.emotion), ("", 0, Emotion::Neutral));
    }
}
