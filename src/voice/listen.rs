//! Speech to text: Whisper base (int8) through CTranslate2.
//!
//! The audio is brought to 16 kHz, cut to where someone speaks ([`vad`]),
//! and each stretch (merged up to Whisper's 30-second window) transcribed
//! in the conversation's language: Whisper is told it, not left to guess
//! (a short French clip is easily taken for Italian). Silence is an answer
//! of its own ([`ListenError::NoSpeech`]), never an invented sentence.
//!
//! Whisper reads a window of 30 seconds whatever was said, and its encoder's
//! cost grows with the window: a three-second question padded to 30 s costs
//! three times what it costs padded to 10. Each stretch is therefore heard
//! in a shorter window ([`short_window`]): at least 10 s, and 3 s of quiet
//! after the speech. Closer than that, Whisper, which never saw the end of a
//! window so near, tends to say the sentence again and again; even at 10 s
//! it may, rarely, so a transcript that repeats itself is heard again in the
//! full window.

use super::audio::{Audio, AudioError, LISTEN_RATE};
use super::mel::{HOP, MelFront};
use super::{Missing, VoiceFiles, code, vad};
use crate::chat::persona::Language;
use ct2rs::Tokenizer as _;
use serde::Serialize;
use std::ops::Range;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The longest stretch Whisper hears at once (its window is 30 s).
const WINDOW_SAMPLES: usize = 28 * LISTEN_RATE as usize;
/// Whisper's own window, in seconds.
const FULL_WINDOW_SECONDS: usize = 30;
/// The shortest window a stretch is heard in, in seconds.
const MIN_WINDOW_SECONDS: usize = 10;
/// Quiet heard after the speech in a short window, in seconds.
const QUIET_AFTER_SECONDS: usize = 3;
/// Tokens in a row that, said twice in a row, are a loop and not speech.
const LOOP_TOKENS: usize = 5;

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
    /// Seconds of quiet after the speech before it was known to be over: the
    /// voice activity detector's pause, as it would wait for it, for a
    /// recording; what the live ear heard of it, for a microphone; 0 when
    /// the person said it was over (push-to-talk).
    pub pause_seconds: f64,
    /// Seconds from the end of the utterance being known to this transcript:
    /// `recognition_seconds`, less what was done ahead, during the pause
    /// that ended it ([`EarlyTranscripts`]).
    pub waited_seconds: f64,
}

/// Whisper, loaded.
pub struct Listener {
    whisper: ct2rs::sys::Whisper,
    tokenizer: ct2rs::tokenizers::hf::Tokenizer,
    mel: MelFront,
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
        let failed = |error: anyhow::Error| ListenError::Model(format!("{}: {error:#}", folder.display()));
        let whisper = ct2rs::sys::Whisper::new(&folder, config).map_err(failed)?;
        let tokenizer = ct2rs::tokenizers::hf::Tokenizer::new(&folder).map_err(failed)?;
        let mel = MelFront::new(whisper.n_mels());
        Ok(Self { whisper, tokenizer, mel })
    }

    /// Runs Whisper once on a second of silence: its first run is slower
    /// (buffers, caches), and a conversation's first message should not pay
    /// for it.
    pub fn warm_up(&self, language: Language) -> Result<(), ListenError> {
        let silence = vec![0.0; LISTEN_RATE as usize];
        self.generate(&silence, MIN_WINDOW_SECONDS, language, 8).map(drop)
    }

    /// What is said in `audio`, in `language`.
    pub fn transcribe(&self, audio: &Audio, language: Language) -> Result<Transcript, ListenError> {
        let started = Instant::now();
        let audio = audio.resampled(LISTEN_RATE)?;
        let stretches = windows(vad::speech(&audio));
        if stretches.is_empty() {
            return Err(ListenError::NoSpeech);
        }
        let mut words = Vec::new();
        for stretch in &stretches {
            let text = self.recognize(&audio.samples[stretch.clone()], language)?;
            words.extend(Some(text.trim().to_owned()).filter(|text| !text.is_empty()));
        }
        let text = words.join(" ");
        if text.is_empty() {
            return Err(ListenError::NoSpeech);
        }
        let recognition_seconds = started.elapsed().as_secs_f64();
        Ok(Transcript {
            text,
            language: code(language),
            audio_seconds: audio.seconds(),
            speech_seconds: stretches.iter().map(|stretch| stretch.len()).sum::<usize>() as f64
                / f64::from(LISTEN_RATE),
            recognition_seconds,
            pause_seconds: vad::PAUSE_MS / 1000.0,
            waited_seconds: recognition_seconds,
        })
    }

    /// What is said in one stretch of at most [`WINDOW_SAMPLES`]: heard in a
    /// short window, and again in the full one if that made a loop.
    fn recognize(&self, samples: &[f32], language: Language) -> Result<String, ListenError> {
        let window = short_window(samples.len());
        if window < FULL_WINDOW_SECONDS {
            // A loop stops well before Whisper's own limit: speech is at most
            // about 8 tokens a second.
            let limit = (64 + 24 * samples.len() / LISTEN_RATE as usize).min(WHISPER_MAX_LENGTH);
            let tokens = self.generate(samples, window, language, limit)?;
            if !loops(&tokens) {
                return self.decode(tokens);
            }
            tracing::debug!(window, "the transcript repeats itself: heard again in the full window");
        }
        let tokens = self.generate(samples, FULL_WINDOW_SECONDS, language, WHISPER_MAX_LENGTH)?;
        self.decode(tokens)
    }

    /// Whisper's tokens for `samples` padded with silence to `window`
    /// seconds, greedy, at most `max_length` long.
    fn generate(
        &self,
        samples: &[f32],
        window: usize,
        language: Language,
        max_length: usize,
    ) -> Result<Vec<String>, ListenError> {
        let mut padded = samples.to_vec();
        padded.resize(window * LISTEN_RATE as usize, 0.0);
        let mut features = self.mel.features(&padded);
        let shape = [1, self.mel.n_mels(), padded.len() / HOP];
        let view = ct2rs::sys::StorageView::new(&shape, &mut features, Default::default()).map_err(model_error)?;
        let language = format!("<|{}|>", code(language));
        let prompt = vec!["<|startoftranscript|>", language.as_str(), "<|transcribe|>", "<|notimestamps|>"];
        let options = ct2rs::WhisperOptions { beam_size: 1, max_length, ..Default::default() };
        let result = self.whisper.generate(&view, &[prompt], &options).map_err(model_error)?;
        Ok(result.into_iter().next().and_then(|result| result.sequences.into_iter().next()).unwrap_or_default())
    }

    fn decode(&self, tokens: Vec<String>) -> Result<String, ListenError> {
        self.tokenizer.decode(tokens).map_err(model_error)
    }
}

/// CTranslate2's or the tokenizer's failure, in one line.
fn model_error(error: anyhow::Error) -> ListenError {
    ListenError::Model(format!("{error:#}"))
}

/// Recognition begun at a pause ([`super::ear::Heard::Pausing`]), before
/// the ear knows whether the pause ends the utterance: when it does, the
/// transcript is ready, or nearly; when the person goes on, it is dropped.
/// The pause costs nothing else (nobody is answered while someone speaks),
/// so a quarter of a second of recognition is hidden in it.
#[derive(Debug, Default)]
pub struct EarlyTranscripts {
    last: Mutex<Option<Arc<Guess>>>,
}

/// An utterance recognized ahead, and its transcript once made.
#[derive(Debug)]
struct Guess {
    audio: Audio,
    outcome: Mutex<Outcome>,
    settled: Condvar,
}

#[derive(Debug)]
enum Outcome {
    Pending,
    Done(Language, Result<Transcript, ListenError>),
    /// Nobody recognized it (the recognizer could not be had).
    Dropped,
}

/// An utterance to recognize ahead: [`Ahead::recognize`] on any thread;
/// dropped unrecognized, the transcript is made when asked for, as if no
/// guess had been made.
#[derive(Debug)]
pub struct Ahead(Arc<Guess>);

impl EarlyTranscripts {
    /// Keeps `audio`, the utterance a pause may end, for the recognition
    /// the returned handle runs; `None` while an earlier pause's is still
    /// being made (one guess at a time: a person who pauses often does not
    /// pile recognitions up).
    pub fn begin(&self, audio: Audio) -> Option<Ahead> {
        let mut last = self.last.lock().ok()?;
        if last.as_ref().is_some_and(|guess| guess.pending()) {
            return None;
        }
        let guess = Arc::new(Guess { audio, outcome: Mutex::new(Outcome::Pending), settled: Condvar::new() });
        *last = Some(Arc::clone(&guess));
        Some(Ahead(guess))
    }

    /// The transcript of the utterance `audio`, known to be over at `ended`
    /// after `pause` of quiet:
    /// the one begun at its pause, waited for, if that was of this very
    /// audio and language; else made now. Its `waited_seconds` count from
    /// `ended`, so a recognizer busy with the guess when the end came is not
    /// taken for a ready one.
    pub fn transcribe(
        &self,
        listener: &Listener,
        audio: &Audio,
        language: Language,
        ended: Instant,
        pause: Duration,
    ) -> Result<Transcript, ListenError> {
        let guess = self.last.lock().ok().and_then(|mut last| last.take()).filter(|guess| guess.audio == *audio);
        let result = match guess.and_then(|guess| guess.wait(language)) {
            Some(result) => result,
            None => listener.transcribe(audio, language),
        };
        result.map(|transcript| Transcript {
            pause_seconds: pause.as_secs_f64(),
            waited_seconds: ended.elapsed().as_secs_f64(),
            ..transcript
        })
    }
}

impl Ahead {
    /// Recognizes the utterance in `language`, for whoever waits on it.
    pub fn recognize(self, listener: &Listener, language: Language) {
        let result = listener.transcribe(&self.0.audio, language);
        self.0.settle(Outcome::Done(language, result));
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.0.settle(Outcome::Dropped);
    }
}

impl Guess {
    /// Whether its transcript is still being made.
    fn pending(&self) -> bool {
        self.outcome.lock().is_ok_and(|outcome| matches!(*outcome, Outcome::Pending))
    }

    /// Settles the outcome, if it was not yet.
    fn settle(&self, outcome: Outcome) {
        if let Ok(mut slot) = self.outcome.lock()
            && matches!(*slot, Outcome::Pending)
        {
            *slot = outcome;
        }
        self.settled.notify_all();
    }

    /// The transcript in `language`, once made; `None` if it was not made,
    /// or in another language.
    fn wait(&self, language: Language) -> Option<Result<Transcript, ListenError>> {
        let mut slot = self.outcome.lock().ok()?;
        while matches!(*slot, Outcome::Pending) {
            slot = self.settled.wait(slot).ok()?;
        }
        match std::mem::replace(&mut *slot, Outcome::Dropped) {
            Outcome::Done(made_in, result) if made_in == language => Some(result),
            _ => None,
        }
    }
}

/// Whisper's longest output (its text context).
const WHISPER_MAX_LENGTH: usize = 448;

/// The window, in seconds, a stretch of `samples` is heard in: the speech
/// and [`QUIET_AFTER_SECONDS`] of quiet, at least [`MIN_WINDOW_SECONDS`].
fn short_window(samples: usize) -> usize {
    let seconds = samples.div_ceil(LISTEN_RATE as usize);
    (seconds + QUIET_AFTER_SECONDS).clamp(MIN_WINDOW_SECONDS, FULL_WINDOW_SECONDS)
}

/// Whether `tokens` say the same [`LOOP_TOKENS`] or more twice in a row,
/// which speech does not and a looping decoder does.
fn loops(tokens: &[String]) -> bool {
    (LOOP_TOKENS..=tokens.len() / 2).any(|span| tokens.windows(2 * span).any(|pair| pair[..span] == pair[span..]))
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
    fn a_stretch_is_heard_in_a_short_window_with_quiet_after_it() {
        let second = LISTEN_RATE as usize;
        assert_eq!(short_window(3 * second), MIN_WINDOW_SECONDS);
        assert_eq!(short_window(12 * second + 1), 16);
        assert_eq!(short_window(WINDOW_SAMPLES), FULL_WINDOW_SECONDS);
    }

    #[test]
    fn a_loop_is_a_span_said_twice_in_a_row() {
        let tokens = |text: &str| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert!(loops(&tokens("what should I cook tonight ? what should I cook tonight ? what")));
        assert!(!loops(&tokens("what should I cook tonight ?")));
        assert!(!loops(&tokens("no no no no no I know I know")), "short repeats are speech");
    }

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
