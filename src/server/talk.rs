//! Talking with Kira on the page: its microphone in, her voice out, over
//! `/v1/events`.
//!
//! The page sends its microphone as binary WebSocket messages (16 kHz,
//! 16-bit little-endian mono PCM) after `{"type": "listen", "hands_free":
//! bool}`. Push-to-talk ends with `{"type": "listen_end"}`; hands-free, the
//! voice activity detector ends each utterance after a pause. Either way,
//! as soon as the person speaks every page hears `speech_started`, so a
//! page playing Kira's voice stops it (barge-in). What was said is
//! recognized (`heard`) and becomes the page's chat message, answered
//! aloud: each sentence's audio goes out as an `audio` event (a WAV and its
//! mouth track) as soon as it is made, while the reply is still being
//! written, then the turn's `voice_stages`. The page plays the sentences in
//! order and says `{"type": "playing", "reply", "index"}` as each starts,
//! from which the VMC avatar's mouth follows it; `{"type": "stop", "reply",
//! "index", "seconds"}` says the person stopped her there (Esc, the stop
//! button, or speaking over her): the reply's generation is cut, and the
//! history keeps only what she said, marked as interrupted
//! (`interrupted`).

use super::AppState;
use super::events::ServerEvent;
use crate::avatar::mouth::MouthTrack;
use crate::chat::persona::Language;
use crate::chat::turn::Chat;
use crate::llm::Prompt;
use crate::voice::listen::{Ahead, EarlyTranscripts};
use crate::voice::speak::{Spoken, VoiceSettings};
use crate::voice::speech::said_of;
use crate::voice::{Audio, ListenError, Transcript};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The reply the page is speaking, as far as the history needs to know.
#[derive(Debug, Default)]
pub struct PageVoice {
    current: Mutex<Option<Speaking>>,
}

/// A reply being spoken on the page.
#[derive(Debug)]
struct Speaking {
    reply: String,
    /// Its sentences sent so far, in order.
    sentences: Vec<Sentence>,
    /// The turn is over (its exchange saved): an interruption from now on
    /// rewrites the history itself.
    over: bool,
    /// What she had said when she was interrupted.
    cut: Option<String>,
}

/// A sentence sent to the page.
#[derive(Debug)]
struct Sentence {
    written: String,
    seconds: f64,
    mouth: Arc<MouthTrack>,
}

/// What a stop did.
#[derive(Debug, PartialEq)]
pub enum Stopped {
    /// The reply was still being written: cut it; the turn keeps what she said.
    Writing,
    /// The reply was written and saved: the history must now keep only this.
    Written(String),
}

impl PageVoice {
    /// Reply `reply` starts being spoken.
    pub fn begin(&self, reply: &str) {
        *self.lock() = Some(Speaking { reply: reply.to_owned(), sentences: Vec::new(), over: false, cut: None });
    }

    /// A sentence of `reply` went to the page; false once the person has
    /// stopped her (nothing more is sent).
    pub fn sent(&self, reply: &str, written: &str, seconds: f64, mouth: Arc<MouthTrack>) -> bool {
        let mut current = self.lock();
        match current.as_mut().filter(|speaking| speaking.reply == reply && speaking.cut.is_none()) {
            Some(speaking) => {
                speaking.sentences.push(Sentence { written: written.to_owned(), seconds, mouth });
                true
            }
            None => false,
        }
    }

    /// The mouth of sentence `index` of `reply`, which the page starts playing.
    pub fn playing(&self, reply: &str, index: usize) -> Option<Arc<MouthTrack>> {
        let current = self.lock();
        let speaking = current.as_ref().filter(|speaking| speaking.reply == reply && speaking.cut.is_none())?;
        speaking.sentences.get(index).map(|sentence| Arc::clone(&sentence.mouth))
    }

    /// The person stopped `reply` `seconds` into sentence `index`; `None`
    /// when that reply is not the one being spoken, or was stopped already.
    pub fn stop(&self, reply: &str, index: usize, seconds: f64) -> Option<Stopped> {
        let mut current = self.lock();
        let speaking = current.as_mut().filter(|speaking| speaking.reply == reply && speaking.cut.is_none())?;
        let sentences: Vec<(&str, f64)> =
            speaking.sentences.iter().map(|sentence| (sentence.written.as_str(), sentence.seconds)).collect();
        let said = said_of(&sentences, index, seconds);
        speaking.cut = Some(said.clone());
        Some(if speaking.over { Stopped::Written(said) } else { Stopped::Writing })
    }

    /// The turn of `reply` is over; what she said if she was interrupted
    /// while it was written (the history must keep only that).
    pub fn end(&self, reply: &str) -> Option<String> {
        let mut current = self.lock();
        let speaking = current.as_mut().filter(|speaking| speaking.reply == reply)?;
        speaking.over = true;
        speaking.cut.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Speaking>> {
        // The state is a plain record: one a panic left behind is still sound.
        self.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Recognizes `audio` in the page's conversation's language (else
/// `language`), tells every page what was heard, and answers it aloud in
/// `voice`. The utterance was known to be over at `ended`, after `pause` of
/// quiet (none for push-to-talk); its recognition may have begun during
/// that pause, in `early`.
pub fn listen_turn(
    state: &Arc<AppState>,
    audio: &Audio,
    language: Language,
    voice: VoiceSettings,
    early: &EarlyTranscripts,
    (ended, pause): (Instant, Duration),
) -> Result<(), String> {
    let listener = state.voice.listener().map_err(|error| error.message)?;
    let language = heard_in(state, language);
    let transcript = match early.transcribe(listener, audio, language, ended, pause) {
        Ok(transcript) => transcript,
        Err(ListenError::NoSpeech) => {
            state.hub.publish(&ServerEvent::Heard { text: String::new(), seconds: audio.seconds() });
            return Ok(());
        }
        Err(error) => return Err(error.to_string()),
    };
    state.hub.publish(&ServerEvent::Heard { text: transcript.text.clone(), seconds: transcript.audio_seconds });
    let text = transcript.text.clone();
    let spoken = SpokenTurn { heard: Some(transcript), message_at: Instant::now(), voice };
    super::events::page_turn(state, &text, Some(spoken))
}

/// Recognizes, at a pause, the utterance it may end, in the language
/// [`listen_turn`] will ask for.
pub fn recognize_ahead(state: &Arc<AppState>, ahead: Ahead, language: Language) -> Result<(), String> {
    let listener = state.voice.listener().map_err(|error| error.message)?;
    ahead.recognize(listener, heard_in(state, language));
    Ok(())
}

/// The language speech is heard in: the page's conversation's, else the
/// one the page asked for.
fn heard_in(state: &AppState, language: Language) -> Language {
    state.page.language().unwrap_or(language)
}

/// A page turn answered aloud: what was heard, if the message was spoken,
/// and when the message was ready.
#[derive(Debug)]
pub struct SpokenTurn {
    /// The recognized speech.
    pub heard: Option<Transcript>,
    /// When the message was ready (recognized, or received).
    pub message_at: Instant,
    /// How Kira answers.
    pub voice: VoiceSettings,
}

/// The sentence's mouth and the `audio` event that carries it to the pages.
pub fn audio_event(reply: &str, index: usize, written: &str, spoken: &Spoken) -> (Arc<MouthTrack>, ServerEvent) {
    let audio = &spoken.audio;
    let mouth = Arc::new(MouthTrack::of_speech(&audio.samples, audio.rate, &spoken.phonemes));
    let event = ServerEvent::Audio {
        reply: reply.to_owned(),
        index,
        text: written.to_owned(),
        seconds: audio.seconds(),
        wav: super::page::base64(&audio.wav_bytes()),
        mouth: (*mouth).clone(),
    };
    (mouth, event)
}

/// Kira was interrupted after reply `reply` was written and saved: the
/// page's conversation keeps only `said` of it, and the pages are told.
pub fn interrupt_written(state: &Arc<AppState>, reply: &str, said: &str) -> Result<(), String> {
    let engine = state.engine().map_err(|error| error.message)?;
    let mut chat = state.page.lock_chat()?;
    let count = |text: &str| engine.count_tokens(Prompt::Text(text.to_owned()));
    let kept: Option<String> = Chat::interrupted(&mut chat, said, count).map_err(|error| error.to_string())?;
    if let Some(kept) = kept {
        state.hub.publish(&ServerEvent::Interrupted { reply: reply.to_owned(), kept });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_while_writing_is_kept_for_the_turn_and_after_it_is_applied_at_once() {
        let voice = PageVoice::default();
        voice.begin("r1");
        assert!(voice.sent("r1", "One two three four.", 1.0, Arc::default()));
        assert!(voice.playing("r1", 0).is_some());
        assert!(voice.playing("r1", 1).is_none());
        assert_eq!(voice.stop("other", 0, 0.5), None);
        assert_eq!(voice.stop("r1", 0, 0.5), Some(Stopped::Writing));
        assert!(!voice.sent("r1", "More.", 1.0, Arc::default()), "nothing more after a stop");
        assert_eq!(voice.stop("r1", 0, 0.9), None, "stopped once");
        assert_eq!(voice.end("r1").as_deref(), Some("One two"));

        voice.begin("r2");
        assert!(voice.sent("r2", "Done already.", 1.0, Arc::default()));
        assert_eq!(voice.end("r2"), None);
        assert_eq!(voice.stop("r2", 0, 0.5), Some(Stopped::Written("Done".to_owned())));
    }

    #[test]
    fn a_stop_between_two_sentences_keeps_the_first_whole_and_none_of_the_next() {
        let voice = PageVoice::default();
        voice.begin("r1");
        assert!(voice.sent("r1", "The first one, said to its end.", 2.0, Arc::default()));
        assert!(voice.sent("r1", "The second, not begun.", 1.5, Arc::default()));
        // The page played the first to its end and stopped before the second
        // began: it says the second, at no seconds in.
        assert_eq!(voice.stop("r1", 1, 0.0), Some(Stopped::Writing));
        assert_eq!(voice.end("r1").as_deref(), Some("The first one, said to its end."));
    }
}
