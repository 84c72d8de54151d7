//! Smoothing across a turn: what the face shows while a reply streams, and
//! the reply's overall emotion once it ends.
//!
//! Each sentence yields a [`Reading`] (from its tag, or from the lexicon when
//! it has none). Reacting to every reading would make the face flicker, so the
//! [`Smoother`] follows three plain rules:
//!
//! - A sentence's **strength** is its confidence times a length weight: a
//!   sentence counts fully from [`FULL_WEIGHT_WORDS`] words, a shorter one
//!   proportionally less (an "Oh." carries little).
//! - The shown emotion has a **hold**, the strength of the sentence that set or
//!   last confirmed it, which fades with every new sentence. Another emotion
//!   takes the face only when it is strong enough in itself and clearly
//!   stronger than the fading hold: changing needs more than keeping.
//! - A reading that agrees moves the intensity halfway towards its own, and a
//!   move smaller than [`INTENSITY_STEP`] is not reported.
//!
//! The turn's emotion weighs every sentence by its strength: the strongest
//! emotion wins unless neutral sentences clearly outweigh it, so a few plain
//! sentences around an emotional one do not erase it.

use super::lexicon::round;
use super::{Analysis, Emotion};
use serde::Serialize;

/// Words from which a sentence counts fully.
pub const FULL_WEIGHT_WORDS: usize = 6;
/// The least a very short sentence counts, as a share of a full one.
const MIN_LENGTH_WEIGHT: f32 = 0.3;
/// How much of the hold is left after each new sentence.
const HOLD_DECAY: f32 = 0.6;
/// The least strength with which another emotion can take the face.
const SWITCH_MIN_STRENGTH: f32 = 0.35;
/// How much stronger than the current hold another emotion must be.
const SWITCH_MARGIN: f32 = 1.25;
/// The smallest intensity change worth a new face.
pub const INTENSITY_STEP: f32 = 0.15;
/// The turn stays neutral unless its strongest emotion has at least this
/// share of the neutral sentences' weight.
const NEUTRAL_SHARE: f32 = 0.5;
/// How sure a tag is: the model said so, but small models tag loosely.
const TAG_CONFIDENCE: f32 = 0.9;
/// Intensity of a tagged sentence whose words do not say how strongly.
const TAG_INTENSITY: f32 = 0.6;
/// A lexicon answer at least this confident overrides a `[neutral]` tag.
const CLEAR_CONFIDENCE: f32 = 0.5;

/// One sentence's emotion, as the smoother weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reading {
    /// The sentence's emotion.
    pub emotion: Emotion,
    /// How strongly, 0..=1.
    pub intensity: f32,
    /// How sure, 0..=1.
    pub confidence: f32,
    /// The sentence's length in words.
    pub words: usize,
}

impl Reading {
    /// A sentence's reading from its tag, if it has one, and the lexicon's
    /// `analysis` of its text. The tag wins, with the words' intensity when
    /// they agree; but a `[neutral]` tag never wins over clearly emotional
    /// words (small models tag almost everything neutral).
    pub fn of_sentence(tag: Option<Emotion>, analysis: &Analysis, words: usize) -> Self {
        let from_words =
            Self { emotion: analysis.emotion, intensity: analysis.intensity, confidence: analysis.confidence, words };
        match tag {
            None => from_words,
            Some(Emotion::Neutral)
                if analysis.emotion != Emotion::Neutral && analysis.confidence >= CLEAR_CONFIDENCE =>
            {
                from_words
            }
            Some(Emotion::Neutral) => {
                Self { emotion: Emotion::Neutral, intensity: 0.0, confidence: TAG_CONFIDENCE, words }
            }
            Some(tag) => Self {
                emotion: tag,
                intensity: if analysis.emotion == tag { analysis.intensity } else { TAG_INTENSITY },
                confidence: TAG_CONFIDENCE,
                words,
            },
        }
    }

    /// Confidence weighed by length.
    fn strength(&self) -> f32 {
        let length = (self.words as f32 / FULL_WEIGHT_WORDS as f32).clamp(MIN_LENGTH_WEIGHT, 1.0);
        self.confidence.clamp(0.0, 1.0) * length
    }
}

/// What the face shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Face {
    /// The emotion shown.
    pub emotion: Emotion,
    /// Its intensity, 0..=1 (0 for neutral).
    pub intensity: f32,
}

/// A whole reply's emotion, to store with the message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TurnEmotion {
    /// The reply's emotion.
    pub emotion: Emotion,
    /// How strongly, 0..=1: the emotion's mean intensity times its share of
    /// all the evidence.
    pub intensity: f32,
    /// How sure, 0..=1, on the same footing (0 when nothing was read).
    pub confidence: f32,
}

/// Decides what the face shows over one reply; see the module docs.
#[derive(Debug, Clone)]
pub struct Smoother {
    face: Face,
    hold: f32,
    /// Per emotion, in [`Emotion::ALL`] order: summed strength, and intensity
    /// and confidence summed weighted by strength.
    strength: [f32; 6],
    intensity: [f32; 6],
    confidence: [f32; 6],
}

impl Default for Smoother {
    fn default() -> Self {
        Self {
            face: Face { emotion: Emotion::Neutral, intensity: 0.0 },
            hold: 0.0,
            strength: [0.0; 6],
            intensity: [0.0; 6],
            confidence: [0.0; 6],
        }
    }
}

impl Smoother {
    /// A smoother for a new reply; the face starts neutral.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the face shows now.
    pub fn face(&self) -> Face {
        self.face
    }

    /// Takes the next sentence's reading; returns the new face when it changed.
    pub fn observe(&mut self, reading: &Reading) -> Option<Face> {
        let strength = reading.strength();
        let intensity = if reading.emotion == Emotion::Neutral { 0.0 } else { reading.intensity.clamp(0.0, 1.0) };
        let slot = Emotion::ALL.iter().position(|e| *e == reading.emotion).unwrap_or(0);
        self.strength[slot] += strength;
        self.intensity[slot] += strength * intensity;
        self.confidence[slot] += strength * reading.confidence.clamp(0.0, 1.0);

        self.hold *= HOLD_DECAY;
        if reading.emotion == self.face.emotion {
            self.hold = self.hold.max(strength);
            let moved = (self.face.intensity + intensity) / 2.0;
            if (moved - self.face.intensity).abs() < INTENSITY_STEP {
                return None;
            }
            self.face.intensity = moved;
            return Some(self.face);
        }
        if strength >= SWITCH_MIN_STRENGTH && strength >= self.hold * SWITCH_MARGIN {
            self.face = Face { emotion: reading.emotion, intensity };
            self.hold = strength;
            return Some(self.face);
        }
        None
    }

    /// The emotion of the reply so far.
    pub fn turn(&self) -> TurnEmotion {
        let total: f32 = self.strength.iter().sum();
        let (best, best_strength) = (1..Emotion::ALL.len())
            .map(|slot| (slot, self.strength[slot]))
            .fold((0, 0.0f32), |best, candidate| if candidate.1 > best.1 { candidate } else { best });
        let slot = if best_strength > 0.0 && best_strength >= NEUTRAL_SHARE * self.strength[0] { best } else { 0 };
        if self.strength[slot] <= 0.0 {
            return TurnEmotion { emotion: Emotion::Neutral, intensity: 0.0, confidence: 0.0 };
        }
        let share = self.strength[slot] / total;
        TurnEmotion {
            emotion: Emotion::ALL[slot],
            intensity: round(self.intensity[slot] / self.strength[slot] * share),
            confidence: round(self.confidence[slot] / self.strength[slot] * share),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reading(emotion: Emotion, confidence: f32, words: usize) -> Reading {
        Reading { emotion, intensity: 0.7, confidence, words }
    }

    #[test]
    fn a_clear_sentence_changes_the_face() {
        let mut smoother = Smoother::new();
        let face = smoother.observe(&reading(Emotion::Joy, 0.9, 8));
        assert_eq!(face, Some(Face { emotion: Emotion::Joy, intensity: 0.7 }));
        assert_eq!(smoother.face().emotion, Emotion::Joy);
    }

    #[test]
    fn a_weak_contrary_sentence_does_not_flicker_the_face() {
        let mut smoother = Smoother::new();
        smoother.observe(&reading(Emotion::Joy, 0.9, 8));
        assert_eq!(smoother.observe(&reading(Emotion::Sorrow, 0.5, 8)), None);
        assert_eq!(smoother.face().emotion, Emotion::Joy);
        // Once the joy has faded, the same sentence is enough.
        smoother.observe(&reading(Emotion::Neutral, 0.2, 8));
        assert_eq!(smoother.observe(&reading(Emotion::Sorrow, 0.5, 8)).map(|f| f.emotion), Some(Emotion::Sorrow));
    }

    #[test]
    fn short_sentences_weigh_less() {
        let mut short = Smoother::new();
        assert_eq!(short.observe(&reading(Emotion::Surprised, 0.9, 1)), None);
        let mut long = Smoother::new();
        assert!(long.observe(&reading(Emotion::Surprised, 0.9, FULL_WEIGHT_WORDS)).is_some());
    }

    #[test]
    fn small_intensity_moves_are_not_reported() {
        let mut smoother = Smoother::new();
        smoother.observe(&Reading { intensity: 0.4, ..reading(Emotion::Fun, 0.9, 8) });
        let similar = Reading { intensity: 0.5, ..reading(Emotion::Fun, 0.9, 8) };
        assert_eq!(smoother.observe(&similar), None);
        let stronger = Reading { intensity: 1.0, ..reading(Emotion::Fun, 0.9, 8) };
        assert_eq!(smoother.observe(&stronger), Some(Face { emotion: Emotion::Fun, intensity: 0.7 }));
    }

    #[test]
    fn the_turn_keeps_an_emotion_among_plain_sentences() {
        let mut smoother = Smoother::new();
        smoother.observe(&reading(Emotion::Neutral, 0.5, 8));
        smoother.observe(&reading(Emotion::Sorrow, 0.9, 8));
        smoother.observe(&reading(Emotion::Neutral, 0.5, 8));
        let turn = smoother.turn();
        assert_eq!(turn.emotion, Emotion::Sorrow);
        // A third of the evidence: milder than the sentence itself.
        assert!(turn.intensity > 0.0 && turn.intensity < 0.7, "{turn:?}");
    }

    #[test]
    fn a_mostly_plain_turn_is_neutral_and_an_empty_one_is_unsure() {
        let mut smoother = Smoother::new();
        for _ in 0..4 {
            smoother.observe(&reading(Emotion::Neutral, 0.5, 8));
        }
        smoother.observe(&reading(Emotion::Joy, 0.5, 2));
        assert_eq!(smoother.turn().emotion, Emotion::Neutral);
        assert_eq!(Smoother::new().turn(), TurnEmotion { emotion: Emotion::Neutral, intensity: 0.0, confidence: 0.0 });
    }

    #[test]
    fn tags_win_except_neutral_over_clear_words() {
        let happy = crate::emotion::analyze("I am so happy and grateful");
        assert_eq!(Reading::of_sentence(Some(Emotion::Neutral), &happy, 6).emotion, Emotion::Joy);
        assert_eq!(Reading::of_sentence(Some(Emotion::Fun), &happy, 6).emotion, Emotion::Fun);
        let joy = Reading::of_sentence(Some(Emotion::Joy), &happy, 6);
        assert_eq!((joy.intensity, joy.confidence), (happy.intensity, TAG_CONFIDENCE));
        let plain = crate::emotion::analyze("The train leaves at four");
        assert_eq!(Reading::of_sentence(Some(Emotion::Neutral), &plain, 5).emotion, Emotion::Neutral);
        assert_eq!(Reading::of_sentence(Some(Emotion::Angry), &plain, 5).intensity, TAG_INTENSITY);
        assert_eq!(Reading::of_sentence(None, &happy, 6).emotion, Emotion::Joy);
    }

    fn any_reading() -> impl Strategy<Value = Reading> {
        (proptest::sample::select(Emotion::ALL.to_vec()), -1.0f32..2.0, -1.0f32..2.0, 0usize..30)
            .prop_map(|(emotion, intensity, confidence, words)| Reading { emotion, intensity, confidence, words })
    }

    proptest! {
        #[test]
        fn figures_stay_in_range_and_reported_faces_are_the_face(readings in proptest::collection::vec(any_reading(), 0..20)) {
            let mut smoother = Smoother::new();
            for reading in &readings {
                if let Some(face) = smoother.observe(reading) {
                    prop_assert_eq!(face, smoother.face());
                }
                let face = smoother.face();
                prop_assert!((0.0..=1.0).contains(&face.intensity));
                prop_assert!(face.emotion != Emotion::Neutral || face.intensity == 0.0);
            }
            let turn = smoother.turn();
            prop_assert!((0.0..=1.0).contains(&turn.intensity), "{:?}", turn);
            prop_assert!((0.0..=1.0).contains(&turn.confidence), "{:?}", turn);
        }
    }
}
