//! Kira's emotions: the six the persona may tag a sentence with, and how they
//! are read from a reply.
//!
//! The set is the original companion's (and the Unity renderer's):
//! `neutral joy angry sorrow fun surprised`. Which avatar expression shows
//! each, under its VRM 0.x and 1.0 names, is the avatar's business
//! (`crate::avatar::command::Expression::of_emotion`).

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
}
