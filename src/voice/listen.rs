//! Speech to text: Whisper base (int8) through CTranslate2.
//!
//! The audio is brought to 16 kHz, cut to where someone speaks ([`vad`]),
//! and each stretch (merged up to Whisper's 30-second window) transcribed
//! in the conversation's language: Whisper is told it, not left to guess
//! (a short French clip is easily taken for Italian). Silence is an answer
//! of its own ([`ListenError::NoSpeech`]), never an invented sentence.

use super::audio::{Audio, AudioError, LISTEN_RATE};
use super::{Missing, VoiceFiles, code, vad};
use crate::chat::persona::Language;
use serde::Serialize;
use std::ops::Range;
use std::time::Instant;

/// The longest stretch Whisper hears at once (its window is 30 s).
const WINDOW_SAMPLES: usize = 28 * LISTEN_RATE as usize;

/// Speech could not be transcribed.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// A file of the model is missing.
    #[error(transparent)]
    Missing(#[from] Missing),
    /// The audio could not be used.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// Nobody speaks in the audio.
    #[error("no speech was heard")]
    NoSpeech,
    /// Whisper could not be loaded or failed.
    #[error("speech recognition: {0}")]
    Model(String),
}

impl crate::error::Classify for ListenError {
    fn class(&self) -> crate::error::Class {
        use crate::error::Class;
        match self {
            ListenError::Missing(_) | ListenError::NoSpeech => Class::BadInput,
            ListenError::Audio(error) => error.class(),
            ListenError::Model(_) => Class::Failure,
        }
    }
}

/// What was heard, and what it took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// The words.
    pub text: String,
    /// The language it was heard in (`en`, `fr`).
    pub language: &'static str,
    /// Seconds of audio given.
    pub audio_seconds: f64,
    /// Seconds of it where someone spoke.
    pub speech_seconds: f64,
    /// Seconds the recognition took (detection included).
    pub recognition_seconds: f64,
}

/// Whisper, loaded.
pub struct Listener {
    whisper: ct2rs::Whisper,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    /// Loads Whisper to run on `threads` threads.
    pub fn load(files: &VoiceFiles, threads: usize) -> Result<Self, ListenError> {
        let folder = files.whisper()?;
        let config = ct2rs::Config {
            compute_type: ct2rs::ComputeType::INT8,
            num_threads_per_replica: threads.max(1),
            ..Default::default()
        };
        let whisper = ct2rs::Whisper::new(&folder, config)
            .map_err(|error| ListenError::Model(format!("{}: {error:#}", folder.display())))?;
        Ok(Self { whisper })
    }

    /// Runs Whisper once on a second of silence: its first run is slower
    /// (buffers, caches), and a conversation's first message should not pay
    /// for it.
    pub fn warm_up(&self, language: Language) -> Result<(), ListenError> {
        let silence = vec![0.0; LISTEN_RATE as usize];
        let options = ct2rs::WhisperOptions { beam_size: 1, max_length: 8, ..Default::default() };
        self.whisper
            .generate(&silence, Some(code(language)), false, &options)
            .map(drop)
            .map_err(|error| ListenError::Model(format!("{error:#}")))
    }

    /// What is said in `audio`, in `language`.
    pub fn transcribe(&self, audio: &Audio, language: Language) -> Result<Transcript, ListenError> {
        let started = Instant::now();
        let audio = audio.resampled(LISTEN_RATE)?;
        let stretches = windows(vad::speech(&audio));
        if stretches.is_empty() {
            return Err(ListenError::NoSpeech);
        }
        let options = ct2rs::WhisperOptions { beam_size: 1, ..Default::default() };
        let mut words = Vec::new();
        for stretch in &stretches {
            let texts = self
                .whisper
                .generate(&audio.samples[stretch.clone()], Some(code(language)), false, &options)
                .map_err(|error| ListenError::Model(format!("{error:#}")))?;
            words.extend(texts.iter().map(|text| text.trim().to_owned()).filter(|text| !text.is_empty()));
        }
        let text = words.join(" ");
        if text.is_empty() {
            return Err(ListenError::NoSpeech);
        }
        Ok(Transcript {
            text,
            language: code(language),
            audio_seconds: audio.seconds(),
            speech_seconds: stretches.iter().map(|stretch| stretch.len()).sum::<usize>() as f64
                / f64::from(LISTEN_RATE),
            recognition_seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Stretches of speech merged into windows Whisper hears at once: each
/// gathers the stretches that follow while they fit; a stretch longer than
/// a window is cut into windows.
fn windows(stretches: Vec<Range<usize>>) -> Vec<Range<usize>> {
    let mut windows: Vec<Range<usize>> = Vec::new();
    for stretch in stretches {
        let mut start = stretch.start;
        while stretch.end - start > WINDOW_SAMPLES {
            windows.push(start..start + WINDOW_SAMPLES);
            start += WINDOW_SAMPLES;
        }
        match windows.last_mut() {
            Some(last) if stretch.end - last.start <= WINDOW_SAMPLES && last.end <= start => last.end = stretch.end,
            _ => windows.push(start..stretch.end),
        }
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretches_gather_into_windows() {
        let second = LISTEN_RATE as usize;
        let gathered = windows(vec![0..second, 2 * second..3 * second]);
        assert_eq!((gathered.len(), gathered[0].start, gathered[0].end), (1, 0, 3 * second));
        let long = windows(std::iter::once(0..60 * second).collect());
        assert_eq!(long.len(), 3);
        assert!(long.iter().all(|window| window.len() <= WINDOW_SAMPLES));
        assert_eq!(long.last().map(|window| window.end), Some(60 * second));
        let apart = windows(vec![0..20 * second, 25 * second..40 * second]);
        assert_eq!(apart, [0..20 * second, 25 * second..40 * second]);
    }
}
