//! What Workly reads in a text, with the evidence, so that a person can see
//! why Kira's face did what it did (`workly emotion` shows it).
//!
//! Text without tags is read by the lexicon alone. Text with valid tags is read
//! the way a reply is, by the [`Analyzer`]: tags win over words (except a
//! `[neutral]` tag over clearly emotional words), and the tags are listed.

use super::analyzer::Analyzer;
use super::lexicon::{self, Evidence};
use super::{Emotion, tags};
use serde::Serialize;

/// What Workly reads in one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextReading {
    /// The emotion.
    pub emotion: Emotion,
    /// How strongly, 0..=1.
    pub intensity: f32,
    /// How sure, 0..=1.
    pub confidence: f32,
    /// The lexicon's cues in the text (tags removed).
    pub evidence: Vec<Evidence>,
    /// The valid tags in the text, in order (empty when it has none).
    pub tags: Vec<Emotion>,
}

/// Reads `text`.
pub fn read(text: &str) -> TextReading {
    let stripped = tags::strip(text);
    let analysis = lexicon::analyze(&stripped.text);
    if stripped.tags.is_empty() {
        return TextReading {
            emotion: analysis.emotion,
            intensity: analysis.intensity,
            confidence: analysis.confidence,
            evidence: analysis.evidence,
            tags: Vec::new(),
        };
    }
    let mut analyzer = Analyzer::new();
    analyzer.push(text);
    let (_, turn) = analyzer.finish();
    TextReading {
        emotion: turn.emotion,
        intensity: turn.intensity,
        confidence: turn.confidence,
        evidence: analysis.evidence,
        tags: stripped.tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_text_is_the_lexicon_reading() {
        let reading = read("I'm so happy!");
        let analysis = lexicon::analyze("I'm so happy!");
        assert_eq!(
            (reading.emotion, reading.intensity, reading.confidence, reading.evidence),
            (analysis.emotion, analysis.intensity, analysis.confidence, analysis.evidence)
        );
        assert!(reading.tags.is_empty());
    }

    #[test]
    fn tags_win_over_words_and_are_listed() {
        let reading = read("[angry] I'm so happy for you.");
        assert_eq!(reading.emotion, Emotion::Angry);
        assert_eq!(reading.tags, [Emotion::Angry]);
        // The words' evidence is still shown, from the text without its tag.
        assert_eq!(reading.evidence[0].cue, "happy");
    }
}
