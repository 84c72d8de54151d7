//! OpenAI's audio endpoints, in Kira's voice: `POST /v1/audio/speech` (text
//! to a WAV or raw PCM) and `POST /v1/audio/transcriptions` (a WAV file, as
//! a multipart form, to text).
//!
//! The voice models load on the first request that needs them, not at
//! start: a server that only chats never pays for them. Each request runs on
//! a blocking thread, holding its place in the queue like a chat request.
//! OpenAI's own voice names (`alloy`, `nova`…) are taken as "Kira's voice
//! in the text's language"; formats Workly cannot write (`mp3`, `opus`…)
//! are refused in one line, and a request that names none gets a WAV.

use super::AppState;
use super::error::ApiError;
use crate::chat::persona::Language;
use crate::voice::audio::pcm16;
use crate::voice::{Audio, ListenError, Listener, SpeakError, Speech, Voice, VoiceFiles, speak, threads};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::{Arc, OnceLock};

/// Largest audio file a transcription takes (OpenAI's own limit).
pub const MAX_AUDIO_BYTES: usize = 25 * 1024 * 1024;
/// Longest recording a transcription takes.
const MAX_AUDIO_SECONDS: f64 = 600.0;
/// OpenAI's voices: each is Kira's voice in the language of the text.
const OPENAI_VOICES: &[&str] =
    &["alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"];

/// The voice models, loaded on first use.
#[derive(Debug)]
pub struct VoiceService {
    files: VoiceFiles,
    speech: OnceLock<Result<Speech, String>>,
    listener: OnceLock<Result<Listener, String>>,
}

impl VoiceService {
    /// The voice in `files`, not loaded yet.
    pub fn new(files: VoiceFiles) -> Self {
        Self { files, speech: OnceLock::new(), listener: OnceLock::new() }
    }

    /// Kokoro on its thread, loaded on the first call (blocking). Every
    /// door shares it: a reply spoken on the page and a speech request take
    /// turns sentence by sentence.
    pub(super) fn speech(&self) -> Result<&Speech, ApiError> {
        self.speech
            .get_or_init(|| Speech::start(&self.files, threads()).map_err(|error| error.to_string()))
            .as_ref()
            .map_err(|error| ApiError::internal(format!("Kira's voice cannot load: {error}")))
    }

    /// Whisper, loaded on the first call (blocking).
    pub(super) fn listener(&self) -> Result<&Listener, ApiError> {
        self.listener
            .get_or_init(|| Listener::load(&self.files, threads()).map_err(|error| error.to_string()))
            .as_ref()
            .map_err(|error| ApiError::internal(format!("speech recognition cannot load: {error}")))
    }
}

/// `POST /v1/audio/speech`, as much of it as Workly reads.
#[derive(Debug, Deserialize)]
struct SpeechRequest {
    input: String,
    voice: Option<String>,
    response_format: Option<String>,
    speed: Option<f32>,
}

/// What speech is sent back as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpeechFormat {
    Wav,
    Pcm,
}

/// `POST /v1/audio/speech`
pub async fn speech(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.metrics.request();
    speak_request(&state, body).await.inspect_err(|_| state.metrics.error())
}

async fn speak_request(state: &Arc<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let body = ApiError::read_body(body)?;
    let request: SpeechRequest =
        serde_json::from_slice(&body).map_err(|error| ApiError::invalid(format!("invalid request body: {error}")))?;
    let voice = match request.voice.as_deref() {
        None => Voice::for_language(Language::detect(&request.input)),
        Some(name) if OPENAI_VOICES.contains(&name.to_ascii_lowercase().as_str()) => {
            Voice::for_language(Language::detect(&request.input))
        }
        Some(name) => Voice::parse(name).map_err(|error| ApiError::invalid_param("voice", error.to_string()))?,
    };
    let format = match request.response_format.as_deref() {
        None | Some("wav") => SpeechFormat::Wav,
        Some("pcm") => SpeechFormat::Pcm,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "response_format",
                format!("Workly cannot write `{other}` audio: ask for wav or pcm (24 kHz, 16-bit, mono)"),
            ));
        }
    };
    let speed = request.speed.unwrap_or(1.0);
    speak::check(&request.input, speed).map_err(|error| match error {
        SpeakError::Speed(_) => ApiError::invalid_param("speed", error.to_string()),
        other => ApiError::invalid_param("input", other.to_string()),
    })?;
    if crate::voice::text::speakable(&request.input).is_empty() {
        return Err(ApiError::invalid_param("input", "nothing to say: the input has no words"));
    }
    let _permit = state.admit()?;
    let service = Arc::clone(state);
    let audio = tokio::task::spawn_blocking(move || {
        let speech = service.voice.speech()?;
        speech.say(&request.input, voice, speed).map_err(|error| ApiError::internal(error.to_string()))
    })
    .await
    .map_err(|error| ApiError::internal(format!("the speech task failed: {error}")))??;
    let samples = audio.samples.iter().flat_map(|sample| pcm16(*sample).to_le_bytes());
    let (content_type, bytes) = match format {
        SpeechFormat::Pcm => ("audio/pcm", samples.collect::<Vec<u8>>()),
        SpeechFormat::Wav => ("audio/wav", audio.wav_bytes()),
    };
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// `POST /v1/audio/transcriptions`
pub async fn transcriptions(
    State(state): State<Arc<AppState>>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    state.metrics.request();
    transcribe_request(&state, form).await.inspect_err(|_| state.metrics.error())
}

/// The form of a transcription request.
#[derive(Debug, Default)]
struct TranscriptionForm {
    file: Option<(String, Bytes)>,
    language: Option<String>,
    response_format: Option<String>,
}

async fn read_form(
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<TranscriptionForm, ApiError> {
    let mut form =
        form.map_err(|rejection| ApiError::invalid(format!("expected a multipart form: {}", rejection.body_text())))?;
    let bad = |error: axum::extract::multipart::MultipartError| ApiError {
        status: error.status(),
        ..ApiError::invalid(format!("cannot read the form: {}", error.body_text()))
    };
    let mut read = TranscriptionForm::default();
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name().unwrap_or_default() {
            "file" => {
                let name = field.file_name().unwrap_or("file").to_owned();
                read.file = Some((name, field.bytes().await.map_err(bad)?));
            }
            "language" => read.language = Some(field.text().await.map_err(bad)?),
            "response_format" => read.response_format = Some(field.text().await.map_err(bad)?),
            // model, prompt, temperature, timestamp granularities: the one model, as it decodes.
            _ => {}
        }
    }
    Ok(read)
}

async fn transcribe_request(
    state: &Arc<AppState>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = read_form(form).await?;
    let (name, bytes) = form.file.ok_or_else(|| ApiError::invalid_param("file", "the form has no `file`"))?;
    let language = match form.language.as_deref() {
        None | Some("") => Language::English,
        Some(code) => crate::voice::language(code)
            .ok_or_else(|| ApiError::invalid_param("language", format!("Workly listens in en or fr, not `{code}`")))?,
    };
    let verbose = match form.response_format.as_deref() {
        None | Some("json") => Some(false),
        Some("verbose_json") => Some(true),
        Some("text") => None,
        Some(other) => {
            return Err(ApiError::invalid_param(
                "response_format",
                format!("Workly cannot answer in `{other}`: ask for json, verbose_json or text"),
            ));
        }
    };
    let audio = Audio::from_wav_bytes(&bytes, &name, MAX_AUDIO_SECONDS)
        .map_err(|error| ApiError::invalid_param("file", error.to_string()))?;
    let _permit = state.admit()?;
    let service = Arc::clone(state);
    let heard = tokio::task::spawn_blocking(move || {
        let listener = service.voice.listener()?;
        match listener.transcribe(&audio, language) {
            Ok(transcript) => Ok(Some(transcript)),
            // Silence is heard as nothing, as OpenAI answers it.
            Err(ListenError::NoSpeech) => Ok(None),
            Err(error) => Err(ApiError::internal(error.to_string())),
        }
    })
    .await
    .map_err(|error| ApiError::internal(format!("the transcription task failed: {error}")))??;
    let text = heard.as_ref().map(|transcript| transcript.text.clone()).unwrap_or_default();
    Ok(match verbose {
        None => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        Some(false) => axum::Json(serde_json::json!({ "text": text })).into_response(),
        Some(true) => axum::Json(serde_json::json!({
            "task": "transcribe",
            "language": match language { Language::English => "english", Language::French => "french" },
            "duration": heard.as_ref().map_or(0.0, |transcript| transcript.audio_seconds),
            "text": text,
        }))
        .into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::audio::SPEECH_RATE;

    #[test]
    fn an_in_memory_wav_reads_back_as_written() {
        let audio = Audio::new(vec![0.0, 0.5, -0.5, 0.25], SPEECH_RATE);
        let read = Audio::from_wav_bytes(&audio.wav_bytes(), "reply.wav", 1.0).unwrap();
        assert_eq!(read.rate, SPEECH_RATE);
        assert_eq!(read.samples.len(), 4);
        assert!((read.samples[1] - 0.5).abs() < 1e-3);
    }
}
