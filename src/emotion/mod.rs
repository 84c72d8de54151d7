//! Kira's emotions: the six the persona may tag a sentence with, how strongly,
//! and which avatar expressions show them.
//!
//! The set is the original companion's (and the Unity renderer's):
//! `neutral joy angry sorrow fun surprised`. VRM 0.x names its expression
//! presets the same way; VRM 1.0 renamed four of them (`happy`, `sad`,
//! `relaxed`), so [`Emotion::expression`] answers for both.

pub mod analyzer;
pub mod inspect;
pub mod lexicon;
pub mod smoothing;
pub mod tags;

pub use analyzer::{Analyzer, Update};
pub use lexicon::{Analysis, Evidence, analyze};
pub use smoothing::{Face, Reading, Smoother, TurnEmotion};
pub use tags::{TagEvent, TagParser};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One of the emotions Kira can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emotion {
    /// No particular feeling: the resting face.
    Neutral,
    /// Happiness, warmth, gratitude.
    Joy,
    /// Anger, irritation.
    Angry,
    /// Sadness, regret.
    Sorrow,
    /// Playfulness, amusement, relaxed fun.
    Fun,
    /// Surprise, astonishment.
    Surprised,
}

/// Which generation of the VRM format an avatar follows; they name expressions
/// differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VrmVersion {
    /// VRM 0.x blend-shape presets (`joy`, `angry`, `sorrow`, `fun`, `surprised`).
    V0,
    /// VRM 1.0 expression presets (`happy`, `angry`, `sad`, `relaxed`, `surprised`).
    V1,
}

impl Emotion {
    /// Every emotion, neutral first.
    pub const ALL: [Emotion; 6] =
        [Emotion::Neutral, Emotion::Joy, Emotion::Angry, Emotion::Sorrow, Emotion::Fun, Emotion::Surprised];

    /// The name used in tags (`[joy]`), the Unity protocol and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Emotion::Neutral => "neutral",
            Emotion::Joy => "joy",
            Emotion::Angry => "angry",
            Emotion::Sorrow => "sorrow",
            Emotion::Fun => "fun",
            Emotion::Surprised => "surprised",
        }
    }

    /// The expression that shows this emotion on a `version` avatar, or `None`
    /// for neutral (the resting face is every expression at zero).
    pub fn expression(self, version: VrmVersion) -> Option<&'static str> {
        match (self, version) {
            (Emotion::Neutral, _) => None,
            (Emotion::Joy, VrmVersion::V0) => Some("joy"),
            (Emotion::Joy, VrmVersion::V1) => Some("happy"),
            (Emotion::Angry, _) => Some("angry"),
            (Emotion::Sorrow, VrmVersion::V0) => Some("sorrow"),
            (Emotion::Sorrow, VrmVersion::V1) => Some("sad"),
            (Emotion::Fun, VrmVersion::V0) => Some("fun"),
            (Emotion::Fun, VrmVersion::V1) => Some("relaxed"),
            (Emotion::Surprised, _) => Some("surprised"),
        }
    }

    /// Expression weights showing this emotion at `intensity` (clamped to
    /// 0..=1; NaN counts as 0): every emotional expression of `version` with
    /// its weight, the shown one at `intensity` and the others at zero, so that
    /// applying the list never leaves an earlier expression piled underneath.
    pub fn expression_weights(self, intensity: f32, version: VrmVersion) -> Vec<(&'static str, f32)> {
        let intensity = if intensity.is_nan() { 0.0 } else { intensity.clamp(0.0, 1.0) };
        let shown = self.expression(version);
        Emotion::ALL
            .iter()
            .filter_map(|emotion| emotion.expression(version))
            .map(|name| (name, if Some(name) == shown { intensity } else { 0.0 }))
            .collect()
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the six emotion names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown emotion {0:?} (expected one of neutral, joy, angry, sorrow, fun, surprised)")]
pub struct UnknownEmotion(pub String);

impl FromStr for Emotion {
    type Err = UnknownEmotion;

    /// Parses an emotion name exactly as tags spell it (lower case).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Emotion::ALL.into_iter().find(|emotion| emotion.as_str() == text).ok_or_else(|| UnknownEmotion(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_exact() {
        for emotion in Emotion::ALL {
            assert_eq!(emotion.as_str().parse::<Emotion>(), Ok(emotion));
        }
        assert!("JOY".parse::<Emotion>().is_err());
        assert!("happy".parse::<Emotion>().is_err());
    }

    #[test]
    fn vrm1_renames_four_presets() {
        let v1: Vec<_> = Emotion::ALL.iter().filter_map(|e| e.expression(VrmVersion::V1)).collect();
        assert_eq!(v1, ["happy", "angry", "sad", "relaxed", "surprised"]);
        let v0: Vec<_> = Emotion::ALL.iter().filter_map(|e| e.expression(VrmVersion::V0)).collect();
        assert_eq!(v0, ["joy", "angry", "sorrow", "fun", "surprised"]);
    }

    #[test]
    fn weights_show_one_expression_and_clear_the_rest() {
        let weights = Emotion::Sorrow.expression_weights(0.7, VrmVersion::V1);
        assert_eq!(weights, [("happy", 0.0), ("angry", 0.0), ("sad", 0.7), ("relaxed", 0.0), ("surprised", 0.0)]);
        assert!(Emotion::Neutral.expression_weights(1.0, VrmVersion::V0).iter().all(|(_, w)| *w == 0.0));
        assert_eq!(Emotion::Joy.expression_weights(f32::NAN, VrmVersion::V0)[0], ("joy", 0.0));
        assert_eq!(Emotion::Joy.expression_weights(7.0, VrmVersion::V0)[0], ("joy", 1.0));
    }
}
