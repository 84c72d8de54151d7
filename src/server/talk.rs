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
use crate::voice::speak::Spoken;
use crate::voice::vad::{self, Detector, Event};
use crate::voice::{Audio, ListenError, Transcript};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Longest utterance the page may send (a minute, as `workly talk` takes).
pub const MAX_UTTERANCE_SECONDS: f64 = 60.0;
/// Samples in [`MAX_UTTERANCE_SECONDS`].
const MAX_UTTERANCE_SAMPLES: usize = (MAX_UTTERANCE_SECONDS as usize) * crate::voice::audio::LISTEN_RATE as usize;

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
        let said = said_of(&speaking.sentences, index, seconds);
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

/// What was said of `sentences` when the audio stopped `seconds` into
/// sentence `index`: the sentences before it, and the words of that one
/// its share of the time covers (speech runs at an even pace, near enough).
fn said_of(sentences: &[Sentence], index: usize, seconds: f64) -> String {
    let mut said: Vec<&str> = sentences.iter().take(index).map(|sentence| sentence.written.as_str()).collect();
    if let Some(sentence) = sentences.get(index) {
        let share = if sentence.seconds > 0.0 { (seconds / sentence.seconds).clamp(0.0, 1.0) } else { 0.0 };
        let words: Vec<&str> = sentence.written.split_whitespace().collect();
        let count = (share * words.len() as f64).round() as usize;
        if count > 0 {
            let end = words[count - 1].as_ptr() as usize - sentence.written.as_ptr() as usize + words[count - 1].len();
            said.push(&sentence.written[..end]);
        }
    }
    said.join(" ")
}

/// One page's microphone, while it listens.
#[derive(Debug)]
pub struct Ear {
    hands_free: bool,
    detector: Detector,
    /// Audio kept, from sample `base` of what was heard.
    samples: Vec<f32>,
    base: usize,
    /// Where the speech under way started, if any.
    speech_from: Option<usize>,
    /// Half a sample pair left over from the last message.
    odd_byte: Option<u8>,
}

/// What the microphone's audio made known.
#[derive(Debug)]
pub enum Heard {
    /// The person started speaking.
    SpeechStarted,
    /// An utterance ended (hands-free), to recognize.
    Utterance(Audio),
    /// Longer than [`MAX_UTTERANCE_SECONDS`]: dropped.
    TooLong,
}

impl Ear {
    /// A microphone that has heard nothing; `hands_free` ends utterances at
    /// pauses, else the page ends them ([`Ear::finish`]).
    pub fn new(hands_free: bool) -> Self {
        Self { hands_free, detector: Detector::new(), samples: Vec::new(), base: 0, speech_from: None, odd_byte: None }
    }

    /// More of the microphone: 16 kHz, 16-bit little-endian PCM.
    pub fn hear(&mut self, pcm: &[u8]) -> Vec<Heard> {
        let mut bytes = Vec::with_capacity(pcm.len() + 1);
        bytes.extend(self.odd_byte.take());
        bytes.extend_from_slice(pcm);
        if bytes.len() % 2 == 1 {
            self.odd_byte = bytes.pop();
        }
        let samples: Vec<f32> =
            bytes.chunks_exact(2).map(|pair| f32::from(i16::from_le_bytes([pair[0], pair[1]])) / 32_768.0).collect();
        self.samples.extend_from_slice(&samples);
        let mut heard = Vec::new();
        for event in self.detector.push(&samples) {
            match event {
                Event::Started(at) => {
                    self.speech_from = Some(at);
                    heard.push(Heard::SpeechStarted);
                }
                Event::Ended(at) if self.hands_free => {
                    let from = self.speech_from.take().unwrap_or(self.base);
                    heard.push(Heard::Utterance(self.cut(from, at)));
                }
                Event::Ended(_) => {}
            }
        }
        let end = self.base + self.samples.len();
        if self.hands_free && self.speech_from.is_none() {
            // Silence between utterances: only a margin before the next is kept.
            self.forget_before(end.saturating_sub(vad::MARGIN));
        }
        if self.samples.len() > MAX_UTTERANCE_SAMPLES {
            self.speech_from = None;
            self.forget_before(end);
            heard.push(Heard::TooLong);
        }
        heard
    }

    /// The page stopped listening: what it heard, if anything (recognition
    /// finds the speech in it, or none).
    pub fn finish(mut self) -> Option<Audio> {
        let from = if self.hands_free { self.speech_from? } else { self.base };
        let end = self.base + self.samples.len();
        let audio = self.cut(from, end);
        (!audio.samples.is_empty()).then_some(audio)
    }

    /// The audio from `from` to `to` (with a margin either side), after
    /// which nothing before `to` is kept.
    fn cut(&mut self, from: usize, to: usize) -> Audio {
        let start = from.saturating_sub(vad::MARGIN).saturating_sub(self.base).min(self.samples.len());
        let end = (to + vad::MARGIN).saturating_sub(self.base).min(self.samples.len()).max(start);
        let audio = Audio::new(self.samples[start..end].to_vec(), crate::voice::audio::LISTEN_RATE);
        self.forget_before(to);
        audio
    }

    fn forget_before(&mut self, sample: usize) {
        let drop = sample.saturating_sub(self.base).min(self.samples.len());
        self.samples.drain(..drop);
        self.base += drop;
    }
}

/// Recognizes `audio` in the page's conversation's language (else
/// `language`), tells every page what was heard, and answers it aloud.
pub fn listen_turn(state: &Arc<AppState>, audio: &Audio, language: Language) -> Result<(), String> {
    let listener = state.voice.listener().map_err(|error| error.message)?;
    let language = state.page.language().unwrap_or(language);
    let transcript = match listener.transcribe(audio, language) {
        Ok(transcript) => transcript,
        Err(ListenError::NoSpeech) => {
            state.hub.publish(&ServerEvent::Heard { text: String::new(), seconds: audio.seconds() });
            return Ok(());
        }
        Err(error) => return Err(error.to_string()),
    };
    state.hub.publish(&ServerEvent::Heard { text: transcript.text.clone(), seconds: transcript.audio_seconds });
    let text = transcript.text.clone();
    super::events::page_turn(state, &text, Some(SpokenTurn { heard: Some(transcript), message_at: Instant::now() }))
}

/// A page turn answered aloud: what was heard, if the message was spoken,
/// and when the message was ready.
#[derive(Debug)]
pub struct SpokenTurn {
    /// The recognized speech.
    pub heard: Option<Transcript>,
    /// When the message was ready (recognized, or received).
    pub message_at: Instant,
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

    fn sentence(written: &str, seconds: f64) -> Sentence {
        Sentence { written: written.to_owned(), seconds, mouth: Arc::default() }
    }

    #[test]
    fn what_was_said_ends_at_the_word_the_audio_reached() {
        let sentences = [sentence("Hello there.", 1.0), sentence("I was about to say something long.", 2.0)];
        assert_eq!(said_of(&sentences, 0, 0.0), "");
        assert_eq!(said_of(&sentences, 1, 0.0), "Hello there.");
        assert_eq!(said_of(&sentences, 1, 1.0), "Hello there. I was about to");
        assert_eq!(said_of(&sentences, 1, 9.0), "Hello there. I was about to say something long.");
        assert_eq!(said_of(&sentences, 5, 0.0), "Hello there. I was about to say something long.");
    }

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
    fn push_to_talk_hands_over_everything_hands_free_only_speech() {
        let tone: Vec<u8> =
            (0..16_000).flat_map(|i| ((f32::sin(i as f32 * 0.2) * 8_000.0) as i16).to_le_bytes()).collect();
        let mut push = Ear::new(false);
        // Split mid-sample: the half is kept for the next message.
        push.hear(&tone[..1001]);
        push.hear(&tone[1001..]);
        assert_eq!(push.finish().map(|audio| audio.samples.len()), Some(16_000));
        let mut quiet = Ear::new(true);
        assert!(quiet.hear(&vec![0; 64_000]).is_empty());
        assert!(quiet.samples.len() <= vad::MARGIN, "silence is not kept");
        assert!(quiet.finish().is_none());
        let mut long = Ear::new(false);
        let minute = vec![0u8; MAX_UTTERANCE_SAMPLES * 2 + 2];
        assert!(matches!(long.hear(&minute).as_slice(), [Heard::TooLong]));
    }
}
