//! A microphone's audio as it comes, cut into utterances.
//!
//! [`Ear`] takes 16 kHz, 16-bit PCM in pieces of any size (a page's
//! WebSocket messages, a sound card's buffers), runs the voice activity
//! detector over it, and says when the person starts speaking (so that Kira
//! stops: barge-in) and, hands-free, hands over each utterance once a pause
//! ends it. Push-to-talk, the holder ends the utterance ([`Ear::finish`]).
//! Silence is not kept, and an utterance is bounded.
//!
//! Hands-free, the ear also says when a pause begins that may end the
//! utterance ([`Heard::Pausing`], 160 ms in, with the utterance as it would
//! be): recognition can start then, while the ear waits to know, rather than
//! after ([`super::listen::EarlyTranscripts`]).

use super::Audio;
use super::audio::LISTEN_RATE;
use super::vad::{Detector, Event, MARGIN};
use std::time::Duration;

/// Longest utterance heard (a minute, as `workly talk` takes from a file).
pub const MAX_UTTERANCE_SECONDS: f64 = 60.0;
/// What is said of an utterance longer than [`MAX_UTTERANCE_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("that was longer than {MAX_UTTERANCE_SECONDS} seconds without a pause: it was not heard")]
pub struct TooLong;

crate::classed!(BadInput: TooLong);

/// Samples in [`MAX_UTTERANCE_SECONDS`].
const MAX_UTTERANCE_SAMPLES: usize = (MAX_UTTERANCE_SECONDS as usize) * LISTEN_RATE as usize;

/// A microphone, while it listens.
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
    /// The person paused (hands-free): the utterance, should the pause end
    /// it; the same audio comes as [`Heard::Utterance`] if it does.
    Pausing(Audio),
    /// An utterance ended (hands-free), to recognize, and the quiet heard
    /// after it when the ear called it over (the pause, and the rest of the
    /// piece of audio the pause ended in).
    Utterance(Audio, Duration),
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
        self.hear_samples(&samples)
    }

    /// More of the microphone: 16 kHz samples.
    pub fn hear_samples(&mut self, samples: &[f32]) -> Vec<Heard> {
        self.samples.extend_from_slice(samples);
        let mut heard = Vec::new();
        for event in self.detector.push(samples) {
            match event {
                Event::Started(at) => {
                    self.speech_from = Some(at);
                    heard.push(Heard::SpeechStarted);
                }
                Event::Ended(at) if self.hands_free => {
                    let from = self.speech_from.take().unwrap_or(self.base);
                    let quiet = (self.base + self.samples.len()).saturating_sub(at);
                    let quiet = Duration::from_secs_f64(quiet as f64 / f64::from(LISTEN_RATE));
                    heard.push(Heard::Utterance(self.cut(from, at), quiet));
                }
                Event::Pausing(at) if self.hands_free => {
                    if let Some(from) = self.speech_from {
                        heard.push(Heard::Pausing(self.slice(from, at)));
                    }
                }
                Event::Ended(_) | Event::Pausing(_) => {}
            }
        }
        let end = self.base + self.samples.len();
        if self.hands_free && self.speech_from.is_none() {
            // Silence between utterances: only a margin before the next is kept.
            self.forget_before(end.saturating_sub(MARGIN));
        }
        if self.samples.len() > MAX_UTTERANCE_SAMPLES {
            self.speech_from = None;
            self.forget_before(end);
            heard.push(Heard::TooLong);
        }
        heard
    }

    /// The microphone stopped: what it heard, if anything (recognition
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
        let audio = self.slice(from, to);
        self.forget_before(to);
        audio
    }

    /// The audio from `from` to `to`, with a margin either side.
    fn slice(&self, from: usize, to: usize) -> Audio {
        let start = from.saturating_sub(MARGIN).saturating_sub(self.base).min(self.samples.len());
        let end = (to + MARGIN).saturating_sub(self.base).min(self.samples.len()).max(start);
        Audio::new(self.samples[start..end].to_vec(), LISTEN_RATE)
    }

    fn forget_before(&mut self, sample: usize) {
        let drop = sample.saturating_sub(self.base).min(self.samples.len());
        self.samples.drain(..drop);
        self.base += drop;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(quiet.samples.len() <= MARGIN, "silence is not kept");
        assert!(quiet.finish().is_none());
        let mut long = Ear::new(false);
        let minute = vec![0u8; MAX_UTTERANCE_SAMPLES * 2 + 2];
        assert!(matches!(long.hear(&minute).as_slice(), [Heard::TooLong]));
    }
}
