//! Kira's mouth while she speaks: how open it is and which vowel it shapes,
//! frame by frame, read from a sentence's audio and phonemes.
//!
//! The opening follows the audio's loudness (the RMS of each frame, against
//! the sentence's own loud frames, with a fast attack and a slower release,
//! as jaws move). The vowel comes from the phonemes: their vowels are laid
//! over the voiced frames in order, so "hello" opens on an `e` and closes
//! on an `o`. That is coarser than a phoneme aligner, and costs nothing.
//! A [`MouthTrack`] is played in step with the audio by whoever plays it:
//! the director for VMC ([`super::Director::speak`]), the page for
//! three-vrm.

use super::command::Unit;
use crate::voice::audio::loudness;
use serde::Serialize;

/// Frames per second of a mouth track (a frame per display refresh).
pub const MOUTH_FPS: u32 = 60;
/// Frames quieter than this share of the sentence's loud frames close the mouth.
const GATE: f32 = 0.12;
/// The loudness, as a share of the loud frames, that opens the mouth fully.
const FULL: f32 = 0.7;
/// Share of the way towards a closing mouth made each frame (opening is immediate).
const RELEASE: f32 = 0.45;
/// An opening under this is a shut mouth.
const SHUT: f32 = 0.02;

/// A mouth shape: the five VRM vowels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Vowel {
    /// As in "father" (VRM 0 `A`, VRM 1 `aa`).
    #[default]
    A,
    /// As in "see" (`I`, `ih`).
    I,
    /// As in "you" (`U`, `ou`).
    U,
    /// As in "bed" (`E`, `ee`).
    E,
    /// As in "go" (`O`, `oh`).
    O,
}

impl Vowel {
    /// Every vowel, in VRM's order.
    pub const ALL: [Vowel; 5] = [Vowel::A, Vowel::I, Vowel::U, Vowel::E, Vowel::O];

    /// The letter the page and the command line use.
    pub fn letter(self) -> char {
        match self {
            Vowel::A => 'a',
            Vowel::I => 'i',
            Vowel::U => 'u',
            Vowel::E => 'e',
            Vowel::O => 'o',
        }
    }

    /// The vowel written `letter`.
    pub fn from_letter(letter: &str) -> Option<Vowel> {
        Vowel::ALL.into_iter().find(|vowel| letter.len() == 1 && letter.starts_with(vowel.letter()))
    }

    /// The VMC blendshape names: VRM 0.x, then VRM 1.0.
    pub fn vmc_names(self) -> [&'static str; 2] {
        match self {
            Vowel::A => ["A", "aa"],
            Vowel::I => ["I", "ih"],
            Vowel::U => ["U", "ou"],
            Vowel::E => ["E", "ee"],
            Vowel::O => ["O", "oh"],
        }
    }

    /// The vowel a phoneme shapes, if it is one (IPA as espeak-ng writes
    /// it, and Kokoro's letters for diphthongs: `A` eɪ, `I` aɪ, `W` aʊ, `Y`
    /// ɔɪ, `O` oʊ).
    fn of_phoneme(phoneme: char) -> Option<Vowel> {
        match phoneme {
            'a' | 'ɑ' | 'æ' | 'ʌ' | 'ɐ' | 'I' | 'W' => Some(Vowel::A),
            'i' | 'ɪ' => Some(Vowel::I),
            'u' | 'ʊ' | 'y' | 'ʏ' => Some(Vowel::U),
            'e' | 'ɛ' | 'ə' | 'ɜ' | 'ɚ' | 'ø' | 'œ' | 'ᵊ' | 'A' => Some(Vowel::E),
            'o' | 'ɔ' | 'ɒ' | 'O' | 'Y' => Some(Vowel::O),
            _ => None,
        }
    }
}

/// The mouth at one moment: how open, in which shape.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Mouth {
    /// How open, 0 (closed) to 1.
    pub open: Unit,
    /// Its shape.
    pub vowel: Vowel,
}

impl Mouth {
    /// A closed mouth.
    pub const CLOSED: Mouth = Mouth { open: Unit::ZERO, vowel: Vowel::A };

    /// The weight of `vowel`'s blendshape: the opening for the shaped
    /// vowel, zero for the others.
    pub fn weight(&self, vowel: Vowel) -> f32 {
        if vowel == self.vowel { self.open.get() } else { 0.0 }
    }
}

/// A sentence's mouth, one frame every 1/[`MOUTH_FPS`] s from its first sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MouthTrack {
    frames: Vec<Mouth>,
}

impl MouthTrack {
    /// The mouth for `samples` (mono, at `rate` Hz) saying `phonemes`.
    pub fn of_speech(samples: &[f32], rate: u32, phonemes: &str) -> Self {
        // The sentence's loud frames set the scale, so a quiet voice opens
        // the mouth as wide as a loud one.
        let (loudness, loud) = loudness(samples, (rate / MOUTH_FPS) as usize).unwrap_or_default();
        if loud <= f32::EPSILON {
            return Self { frames: vec![Mouth::CLOSED; loudness.len()] };
        }
        let mut open = 0.0f32;
        let openings: Vec<f32> = loudness
            .iter()
            .map(|&level| {
                let share = level / loud;
                let target = if share < GATE { 0.0 } else { ((share - GATE) / (FULL - GATE)).min(1.0) };
                open = if target >= open { target } else { open + (target - open) * RELEASE };
                // A closing mouth shuts rather than creeping towards zero.
                if open < SHUT {
                    open = 0.0;
                }
                open
            })
            .collect();
        let vowels: Vec<Vowel> = phonemes.chars().filter_map(Vowel::of_phoneme).collect();
        let voiced = openings.iter().filter(|&&open| open > 0.0).count().max(1);
        let mut seen = 0;
        let frames = openings
            .into_iter()
            .map(|open| {
                let vowel = if vowels.is_empty() {
                    Vowel::A
                } else {
                    vowels[(seen * vowels.len() / voiced).min(vowels.len() - 1)]
                };
                if open > 0.0 {
                    seen += 1;
                }
                Mouth { open: Unit::saturating(open), vowel }
            })
            .collect();
        Self { frames }
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[Mouth] {
        &self.frames
    }

    /// The mouth `seconds` after the track's start (closed past its end).
    pub fn at(&self, seconds: f64) -> Mouth {
        let index = (seconds.max(0.0) * f64::from(MOUTH_FPS)) as usize;
        self.frames.get(index).copied().unwrap_or(Mouth::CLOSED)
    }

    /// How long the track lasts, in seconds.
    pub fn seconds(&self) -> f64 {
        self.frames.len() as f64 / f64::from(MOUTH_FPS)
    }
}

/// The page's form: `{"fps": 60, "open": [0.0, 0.42, …], "vowels": "aaeeo…"}`
/// (openings to two decimals: a sentence's track stays small).
impl Serialize for MouthTrack {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let open: Vec<f32> = self.frames.iter().map(|mouth| (mouth.open.get() * 100.0).round() / 100.0).collect();
        let vowels: String = self.frames.iter().map(|mouth| mouth.vowel.letter()).collect();
        let mut track = serializer.serialize_struct("MouthTrack", 3)?;
        track.serialize_field("fps", &MOUTH_FPS)?;
        track.serialize_field("open", &open)?;
        track.serialize_field("vowels", &vowels)?;
        track.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 24_000;

    /// `seconds` of a 200 Hz tone at `level`.
    fn tone(seconds: f32, level: f32) -> Vec<f32> {
        (0..(seconds * RATE as f32) as usize)
            .map(|i| level * (i as f32 * 200.0 * std::f32::consts::TAU / RATE as f32).sin())
            .collect()
    }

    #[test]
    fn the_mouth_opens_on_sound_and_closes_in_silence() {
        let mut samples = tone(0.5, 0.3);
        samples.extend(vec![0.0; RATE as usize / 2]);
        let track = MouthTrack::of_speech(&samples, RATE, "həlˈoʊ");
        assert_eq!(track.frames().len(), 60);
        assert!((track.seconds() - 1.0).abs() < 1e-9);
        assert!(track.at(0.25).open.get() > 0.9, "open while the tone sounds");
        assert_eq!(track.at(0.9).open, Unit::ZERO, "closed well into the silence");
        assert_eq!(track.at(5.0), Mouth::CLOSED, "closed past the end");
        // Closing takes a few frames, as a jaw does.
        let just_after = track.at(0.5 + 1.0 / 60.0).open.get();
        assert!(just_after > 0.0 && just_after < 0.9, "{just_after}");
    }

    #[test]
    fn a_quiet_voice_opens_as_wide_as_a_loud_one() {
        let quiet = MouthTrack::of_speech(&tone(0.5, 0.01), RATE, "a");
        let loud = MouthTrack::of_speech(&tone(0.5, 0.8), RATE, "a");
        assert!((quiet.at(0.2).open.get() - loud.at(0.2).open.get()).abs() < 0.01);
        assert_eq!(MouthTrack::of_speech(&vec![0.0; 4800], RATE, "a").at(0.1), Mouth::CLOSED);
    }

    #[test]
    fn the_vowels_follow_the_phonemes_in_order() {
        let track = MouthTrack::of_speech(&tone(1.0, 0.3), RATE, "həlˈO");
        assert_eq!(track.at(0.1).vowel, Vowel::E);
        assert_eq!(track.at(0.9).vowel, Vowel::O);
        let french = MouthTrack::of_speech(&tone(1.0, 0.3), RATE, "bɔ̃ʒˈuʁ");
        assert_eq!(french.at(0.1).vowel, Vowel::O);
        assert_eq!(french.at(0.9).vowel, Vowel::U);
        let shaped = Mouth { open: Unit::new(0.5).unwrap(), vowel: Vowel::O };
        assert_eq!(shaped.weight(Vowel::O), 0.5);
        assert_eq!(shaped.weight(Vowel::A), 0.0);
    }

    #[test]
    fn the_page_form_is_compact() {
        let track = MouthTrack::of_speech(&tone(0.05, 0.3), RATE, "i");
        let json = serde_json::to_value(&track).unwrap();
        assert_eq!(json["fps"], 60);
        assert_eq!(json["vowels"], "iii");
        assert_eq!(json["open"].as_array().unwrap().len(), 3);
        assert_eq!(Vowel::from_letter("o"), Some(Vowel::O));
        assert_eq!(Vowel::from_letter("oo"), None);
    }
}
