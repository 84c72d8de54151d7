//! Kira's voice: text to speech and speech to text, offline, in English and
//! French.
//!
//! Speaking: the reply's text is made speakable ([`text`]: no emotion tags,
//! no markup), turned into phonemes by the `espeak-ng` program
//! ([`phonemes`]; run as a process, never linked: it is GPL), then into
//! 24 kHz audio by Kokoro-82M, an ONNX model run by ONNX Runtime
//! ([`speak`]). Listening: audio of any common rate ([`audio`]) is cut to
//! where someone speaks by a voice activity detector ([`vad`]) and
//! transcribed by Whisper base through CTranslate2 ([`listen`]), told the
//! conversation's language rather than left to guess it (a short French clip
//! is easily taken for Italian); a live microphone is cut into utterances
//! as it comes ([`ear`]). Kira speaks a reply while she writes it
//! ([`speech`]).
//!
//! Every file comes from a package registry and is fetched and checked by
//! `scripts/setup.sh` ([`VoiceFiles`] says where it put them). Nothing here
//! is loaded until a voice is first used: a person who only types pays for
//! none of it.

use crate::chat::persona::Language;
use std::path::{Path, PathBuf};

pub mod audio;
pub mod device;
pub mod ear;
pub mod listen;
pub mod live;
pub mod mel;
pub mod phonemes;
pub mod speak;
pub mod speech;
pub mod text;
pub mod vad;

pub use audio::{Audio, AudioError};
pub use listen::{ListenError, Listener, Transcript};
pub use speak::{SpeakError, Speaker, Voice};
pub use speech::Speech;

/// Where the voice's files are, under the models directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceFiles {
    /// The models directory.
    models: PathBuf,
}

/// The ONNX Runtime library the set-up unpacks from PyPI's `onnxruntime` wheel.
pub const ONNX_RUNTIME: &str = "onnxruntime/libonnxruntime.so.1.31.1";

/// A file of the voice is not where the set-up puts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is missing: {} (scripts/setup.sh fetches it)", path.display())]
pub struct Missing {
    /// What the file is.
    pub what: &'static str,
    /// Where it was looked for.
    pub path: PathBuf,
}

crate::classed!(BadInput: Missing);

impl VoiceFiles {
    /// The voice's files in `models` (`config::Dirs::models`).
    pub fn new(models: &Path) -> Self {
        Self { models: models.to_path_buf() }
    }

    /// `relative` in the models directory, if it is there.
    fn existing(&self, what: &'static str, relative: &str) -> Result<PathBuf, Missing> {
        let path = self.models.join(relative);
        if path.exists() { Ok(path) } else { Err(Missing { what, path }) }
    }

    /// The ONNX Runtime library: `ORT_DYLIB_PATH` when set (ONNX Runtime's
    /// own convention, for a build of one's own), else the set-up's.
    pub fn onnx_runtime(&self) -> Result<PathBuf, Missing> {
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(path) => {
                let path = PathBuf::from(path);
                if path.exists() { Ok(path) } else { Err(Missing { what: "ONNX Runtime (ORT_DYLIB_PATH)", path }) }
            }
            None => self.existing("ONNX Runtime", ONNX_RUNTIME),
        }
    }

    /// Kokoro-82M, int8.
    pub fn kokoro(&self) -> Result<PathBuf, Missing> {
        self.existing("the Kokoro speech model", "kokoro-v1.0.int8.onnx")
    }

    /// Kokoro's phoneme vocabulary.
    pub fn kokoro_vocabulary(&self) -> Result<PathBuf, Missing> {
        self.existing("Kokoro's vocabulary", "kokoro-vocab.json")
    }

    /// A Kokoro voice's style table.
    pub fn kokoro_voice(&self, voice: &Voice) -> Result<PathBuf, Missing> {
        self.existing("the voice", &format!("kokoro-voices/{}.bin", voice.name()))
    }

    /// Whisper base in CTranslate2's format (a folder).
    pub fn whisper(&self) -> Result<PathBuf, Missing> {
        self.existing("the Whisper speech recognition model", "whisper-base/model.bin")
            .map(|model| model.parent().map(Path::to_path_buf).unwrap_or_default())
    }
}

/// Threads for a voice model: every core this process may use. Kokoro's
/// and Whisper's threads sleep while idle, and are idle while the chat
/// model writes, apart from the sentence being spoken.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The two-letter code Whisper and the page know a language by.
pub fn code(language: Language) -> &'static str {
    match language {
        Language::English => "en",
        Language::French => "fr",
    }
}

/// The language a two-letter code names (`en`, `fr`).
pub fn language(code: &str) -> Option<Language> {
    match code.to_ascii_lowercase().as_str() {
        "en" | "english" => Some(Language::English),
        "fr" | "french" | "français" => Some(Language::French),
        _ => None,
    }
}
