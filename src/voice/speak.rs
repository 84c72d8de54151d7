//! Text to speech: Kokoro-82M (int8 ONNX) run by ONNX Runtime.
//!
//! ONNX Runtime is loaded at run time from the library the set-up unpacks
//! (nothing is downloaded or linked at build time); it is loaded once per
//! process, on the first voice. Kokoro takes the phonemes as token ids
//! wrapped in 0 at both ends, the voice's style vector for that many tokens,
//! and a speed, and gives 24 kHz audio. A text is spoken sentence by
//! sentence ([`Speaker::speak`] hands each one's audio on as soon as it is
//! made), and a sentence longer than Kokoro's 510 tokens is cut at a pause.
//!
//! Kokoro leaves 0.25–0.4 s of quiet before the first word and about as much
//! after the last: kept, the person would wait through it before her first
//! word, and hear nearly a second between two sentences. Each piece keeps
//! a breath before its sound and a pause after it that fits how it ends.

use super::audio::{Audio, SPEECH_RATE};
use super::phonemes::{self, Accent, PhonemeError};
use super::{Missing, VoiceFiles, text};
use crate::chat::persona::Language;
use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

/// Most phoneme tokens Kokoro reads at once (its style tables have a row
/// for each count up to this).
pub const MAX_TOKENS: usize = 510;
/// Floats in one style vector.
const STYLE_WIDTH: usize = 256;
/// Quiet kept before a piece's first sound.
const QUIET_BEFORE_SECONDS: f64 = 0.02;
/// Quiet kept after a sentence: the pause before the next one.
const PAUSE_AFTER_SENTENCE_SECONDS: f64 = 0.3;
/// Quiet kept after a piece that ends within a sentence (the voice's first
/// clause, or a run of a sentence too long for Kokoro): a breath.
const PAUSE_AFTER_CLAUSE_SECONDS: f64 = 0.12;
/// The slowest and fastest speeds a voice takes.
pub const SPEEDS: std::ops::RangeInclusive<f32> = 0.5..=2.0;
/// Most characters `workly say` and the API read in one request: about ten
/// minutes of speech.
pub const MAX_CHARACTERS: usize = 10_000;

/// The voices Workly ships (Kokoro's own, from npm's `kokoro-js`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Voice {
    /// American English, a woman's voice (Kira's English voice).
    Heart,
    /// American English, a man's voice.
    Michael,
    /// British English, a woman's voice.
    Emma,
    /// French, a woman's voice (Kira's French voice).
    Siwis,
}

impl Voice {
    /// Every voice.
    pub const ALL: [Voice; 4] = [Voice::Heart, Voice::Michael, Voice::Emma, Voice::Siwis];

    /// Kokoro's name for it (its file's name).
    pub fn name(self) -> &'static str {
        match self {
            Voice::Heart => "af_heart",
            Voice::Michael => "am_michael",
            Voice::Emma => "bf_emma",
            Voice::Siwis => "ff_siwis",
        }
    }

    /// The voice called `name` (Kokoro's name, or its short form: `heart`).
    pub fn named(name: &str) -> Option<Voice> {
        let name = name.to_ascii_lowercase();
        Voice::ALL.into_iter().find(|voice| voice.name() == name || voice.name()[3..] == name)
    }

    /// The voice called `name`, or an error that lists the voices.
    pub fn parse(name: &str) -> Result<Voice, UnknownVoice> {
        Voice::named(name).ok_or_else(|| UnknownVoice(name.to_owned()))
    }

    /// How it pronounces.
    pub fn accent(self) -> Accent {
        match self {
            Voice::Heart | Voice::Michael => Accent::American,
            Voice::Emma => Accent::British,
            Voice::Siwis => Accent::French,
        }
    }

    /// Kira's voice in `language`.
    pub fn for_language(language: Language) -> Voice {
        match language {
            Language::English => Voice::Heart,
            Language::French => Voice::Siwis,
        }
    }

    /// The language it speaks.
    pub fn language(self) -> Language {
        match self.accent() {
            Accent::French => Language::French,
            Accent::American | Accent::British => Language::English,
        }
    }
}

/// Loudness of Kira's voice: 0 (silent) to 1 (as made).
pub const VOLUMES: std::ops::RangeInclusive<f32> = 0.0..=1.0;

/// How Kira speaks, as the person set it (a flag, the config file's
/// `[voice]` table, the page): her voice, its speed and its loudness.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceSettings {
    /// The voice chosen, if one was.
    pub voice: Option<Voice>,
    /// How fast she speaks (see [`SPEEDS`]).
    pub speed: f32,
    /// How loud (see [`VOLUMES`]).
    pub volume: f32,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        Self { voice: None, speed: 1.0, volume: 1.0 }
    }
}

impl VoiceSettings {
    /// Checked settings: a voice Workly has, a speed and a volume in range.
    pub fn new(voice: Option<&str>, speed: f32, volume: f32) -> Result<Self, SpeakError> {
        check("", speed)?;
        if !VOLUMES.contains(&volume) {
            return Err(SpeakError::Volume(volume));
        }
        Ok(Self { voice: voice.map(Voice::parse).transpose()?, speed, volume })
    }

    /// The voice for words in `language`: the one chosen if it speaks that
    /// language (an English voice would mangle French), else Kira's own.
    pub fn voice_for(&self, language: Language) -> Voice {
        self.voice.filter(|voice| voice.language() == language).unwrap_or_else(|| Voice::for_language(language))
    }

    /// `samples` at this volume.
    pub fn apply_volume(&self, samples: &mut [f32]) {
        if self.volume < 1.0 {
            samples.iter_mut().for_each(|sample| *sample *= self.volume);
        }
    }
}

/// A voice name Workly does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown voice `{0}`: use one of heart, michael, emma, siwis")]
pub struct UnknownVoice(pub String);

crate::classed!(BadInput: UnknownVoice);

/// Speech could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SpeakError {
    /// A file of the voice is missing.
    #[error(transparent)]
    Missing(#[from] Missing),
    /// Phonemes could not be made.
    #[error(transparent)]
    Phonemes(#[from] PhonemeError),
    /// ONNX Runtime could not be loaded, or Kokoro could not run.
    #[error("speech synthesis: {0}")]
    Runtime(String),
    /// A voice or vocabulary file is damaged.
    #[error("{}: {what}", path.display())]
    Damaged {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// A speed out of range.
    #[error("speed {0} is out of range: 0.5 to 2.0")]
    Speed(f32),
    /// A volume out of range.
    #[error("volume {0} is out of range: 0 to 1")]
    Volume(f32),
    /// A voice Workly does not have.
    #[error(transparent)]
    UnknownVoice(#[from] UnknownVoice),
    /// A text longer than one request may be.
    #[error("the text is {0} characters long; Kira reads at most {MAX_CHARACTERS} at a time")]
    TooLong(usize),
    /// Whoever took the audio stopped taking it (an interruption).
    #[error("stopped")]
    Stopped,
}

impl crate::error::Classify for SpeakError {
    fn class(&self) -> crate::error::Class {
        use crate::error::Class;
        match self {
            SpeakError::Missing(_)
            | SpeakError::Speed(_)
            | SpeakError::Volume(_)
            | SpeakError::UnknownVoice(_)
            | SpeakError::TooLong(_) => Class::BadInput,
            SpeakError::Phonemes(error) => error.class(),
            SpeakError::Runtime(_) | SpeakError::Damaged { .. } | SpeakError::Stopped => Class::Failure,
        }
    }
}

/// Whether `text` at `speed` can be spoken in one request (checked before
/// anything is loaded, and again by [`Speaker::speak`]).
pub fn check(text: &str, speed: f32) -> Result<(), SpeakError> {
    if !SPEEDS.contains(&speed) {
        return Err(SpeakError::Speed(speed));
    }
    let characters = text.chars().count();
    if characters > MAX_CHARACTERS {
        return Err(SpeakError::TooLong(characters));
    }
    Ok(())
}

/// The ONNX Runtime environment, made once per process from the first
/// library asked for (ONNX Runtime can be loaded only once).
fn environment(library: &Path) -> Result<&'static ort::environment::Environment, SpeakError> {
    static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENVIRONMENT
        .get_or_init(|| {
            let builder = ort::init_from(library)
                .map_err(|error| format!("cannot load ONNX Runtime from {}: {error}", library.display()))?;
            builder.with_name("workly").build().map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|error| SpeakError::Runtime(error.clone()))
}

/// A sentence's audio, and what it took to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Spoken {
    /// The sentence as read (speakable text).
    pub sentence: String,
    /// Its phonemes.
    pub phonemes: String,
    /// Its audio.
    pub audio: Audio,
    /// Seconds it took to synthesize (phonemes included).
    pub synthesis_seconds: f64,
}

/// Kokoro, loaded: speaks any of the shipped voices.
pub struct Speaker {
    session: ort::session::Session,
    vocabulary: HashMap<char, i64>,
    files: VoiceFiles,
    styles: HashMap<Voice, Vec<f32>>,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Speaker").field("voices", &self.styles.keys().collect::<Vec<_>>()).finish()
    }
}

impl Speaker {
    /// Loads ONNX Runtime (once per process) and Kokoro, to run on `threads` threads.
    pub fn load(files: &VoiceFiles, threads: usize) -> Result<Self, SpeakError> {
        let environment = environment(&files.onnx_runtime()?)?;
        let model = files.kokoro()?;
        let vocabulary = read_vocabulary(&files.kokoro_vocabulary()?)?;
        let runtime = |error: ort::Error| SpeakError::Runtime(format!("{}: {error}", model.display()));
        let session = ort::session::Session::builder(environment)
            .and_then(|builder| builder.with_intra_threads(threads.max(1)).map_err(Into::into))
            // Waiting threads sleep rather than spin: the cores are shared with
            // the model writing the reply.
            .and_then(|builder| builder.with_intra_op_spinning(false).map_err(Into::into))
            .and_then(|mut builder| builder.commit_from_file(&model))
            .map_err(runtime)?;
        Ok(Self { session, vocabulary, files: files.clone(), styles: HashMap::new() })
    }

    /// Speaks `text` in `voice` at `speed`, handing each sentence's audio
    /// to `sink` as soon as it is made; `sink` returns `false` to stop.
    pub fn speak(
        &mut self,
        text: &str,
        voice: Voice,
        speed: f32,
        sink: &mut dyn FnMut(Spoken) -> bool,
    ) -> Result<(), SpeakError> {
        check(text, speed)?;
        let spoken = text::speakable(text);
        let mut sentences = text::Sentences::new();
        let mut all = sentences.push(&spoken);
        all.extend(sentences.finish());
        for sentence in all {
            if !sink(self.sentence(&sentence, voice, speed)?) {
                return Err(SpeakError::Stopped);
            }
        }
        Ok(())
    }

    /// One sentence (speakable text, at most a few hundred characters)
    /// spoken in `voice` at `speed`.
    pub fn sentence(&mut self, sentence: &str, voice: Voice, speed: f32) -> Result<Spoken, SpeakError> {
        let started = std::time::Instant::now();
        let phonemes = phonemes::phonemize(sentence, voice.accent())?;
        let runs = self.tokens(&phonemes);
        let mut samples = Vec::new();
        for (index, tokens) in runs.iter().enumerate() {
            let mut run = Audio::new(self.synthesize(tokens, voice, speed)?, SPEECH_RATE);
            let pause = if index + 1 == runs.len() && text::ends_sentence_mark(sentence) {
                PAUSE_AFTER_SENTENCE_SECONDS
            } else {
                PAUSE_AFTER_CLAUSE_SECONDS
            };
            run.trim_quiet(QUIET_BEFORE_SECONDS, pause);
            samples.extend(run.samples);
        }
        Ok(Spoken {
            sentence: sentence.to_owned(),
            phonemes,
            audio: Audio::new(samples, SPEECH_RATE),
            synthesis_seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// `phonemes` as token ids, in runs of at most [`MAX_TOKENS`] cut after
    /// a pause (punctuation, else a space) where one is needed. Symbols
    /// Kokoro does not know are left out.
    fn tokens(&self, phonemes: &str) -> Vec<Vec<i64>> {
        let ids: Vec<(char, i64)> = phonemes
            .chars()
            .filter_map(|character| self.vocabulary.get(&character).map(|id| (character, *id)))
            .collect();
        let mut runs = Vec::new();
        let mut rest = &ids[..];
        while rest.len() > MAX_TOKENS {
            let window = &rest[..MAX_TOKENS];
            let cut = window
                .iter()
                .rposition(|(character, _)| ",;:.!?—…".contains(*character))
                .or_else(|| window.iter().rposition(|(character, _)| *character == ' '))
                .map_or(MAX_TOKENS, |position| position + 1);
            runs.push(rest[..cut].iter().map(|(_, id)| *id).collect());
            rest = &rest[cut..];
        }
        if !rest.is_empty() {
            runs.push(rest.iter().map(|(_, id)| *id).collect());
        }
        runs
    }

    /// One run of tokens spoken.
    fn synthesize(&mut self, tokens: &[i64], voice: Voice, speed: f32) -> Result<Vec<f32>, SpeakError> {
        let style = self.style(voice, tokens.len())?.to_vec();
        let mut ids = Vec::with_capacity(tokens.len() + 2);
        ids.push(0);
        ids.extend_from_slice(tokens);
        ids.push(0);
        let runtime = |error: ort::Error| SpeakError::Runtime(error.to_string());
        let inputs = ort::inputs![
            "tokens" => ort::value::Tensor::from_array(([1usize, ids.len()], ids)).map_err(runtime)?,
            "style" => ort::value::Tensor::from_array(([1usize, STYLE_WIDTH], style)).map_err(runtime)?,
            "speed" => ort::value::Tensor::from_array(([1usize], vec![speed])).map_err(runtime)?,
        ];
        let outputs = self.session.run(inputs).map_err(runtime)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(runtime)?;
        Ok(audio.to_vec())
    }

    /// `voice`'s style vector for `tokens` tokens (its table is read on first use).
    fn style(&mut self, voice: Voice, tokens: usize) -> Result<&[f32], SpeakError> {
        if !self.styles.contains_key(&voice) {
            let path = self.files.kokoro_voice(&voice)?;
            let bytes = std::fs::read(&path)
                .map_err(|error| SpeakError::Damaged { path: path.clone(), what: error.to_string() })?;
            if bytes.len() != MAX_TOKENS * STYLE_WIDTH * 4 {
                return Err(SpeakError::Damaged {
                    path,
                    what: format!("{} bytes, not a style table of {MAX_TOKENS}×{STYLE_WIDTH} floats", bytes.len()),
                });
            }
            let table = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            self.styles.insert(voice, table);
        }
        let row = tokens.min(MAX_TOKENS - 1) * STYLE_WIDTH;
        Ok(&self.styles[&voice][row..row + STYLE_WIDTH])
    }
}

/// Kokoro's phoneme vocabulary: `{"vocab": {"a": 43, …}}`.
fn read_vocabulary(path: &Path) -> Result<HashMap<char, i64>, SpeakError> {
    #[derive(serde::Deserialize)]
    struct File {
        vocab: HashMap<String, i64>,
    }
    let damaged = |what: String| SpeakError::Damaged { path: path.to_path_buf(), what };
    let text = std::fs::read_to_string(path).map_err(|error| damaged(error.to_string()))?;
    let file: File = serde_json::from_str(&text).map_err(|error| damaged(error.to_string()))?;
    file.vocab
        .into_iter()
        .map(|(symbol, id)| {
            let mut characters = symbol.chars();
            match (characters.next(), characters.next()) {
                (Some(character), None) => Ok((character, id)),
                _ => Err(damaged(format!("`{symbol}` is not one symbol"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voices_are_found_by_either_name() {
        assert_eq!(Voice::named("ff_siwis"), Some(Voice::Siwis));
        assert_eq!(Voice::named("Heart"), Some(Voice::Heart));
        assert_eq!(Voice::named("nobody"), None);
        let names: Vec<&str> = Voice::ALL.iter().map(|voice| &voice.name()[3..]).collect();
        assert!(Voice::parse("nobody").unwrap_err().to_string().ends_with(&names.join(", ")));
        assert_eq!(Voice::for_language(Language::French).accent().language(), Language::French);
    }

    #[test]
    fn settings_are_checked_and_the_voice_follows_the_language() {
        let emma = VoiceSettings::new(Some("emma"), 1.2, 0.5).unwrap();
        assert_eq!(emma.voice_for(Language::English), Voice::Emma);
        assert_eq!(emma.voice_for(Language::French), Voice::Siwis, "an English voice does not read French");
        assert_eq!(VoiceSettings::default().voice_for(Language::English), Voice::Heart);
        assert!(matches!(VoiceSettings::new(Some("alloy"), 1.0, 1.0), Err(SpeakError::UnknownVoice(_))));
        assert!(matches!(VoiceSettings::new(None, 3.0, 1.0), Err(SpeakError::Speed(_))));
        assert!(matches!(VoiceSettings::new(None, 1.0, 1.5), Err(SpeakError::Volume(_))));
        let mut samples = [0.5, -1.0];
        emma.apply_volume(&mut samples);
        assert_eq!(samples, [0.25, -0.5]);
    }
}
