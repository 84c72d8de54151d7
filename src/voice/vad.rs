//! Voice activity detection: where someone speaks, and when they stop.
//!
//! `earshot` scores 16 ms frames of 16 kHz audio (its weights are in the
//! crate). [`Detector`] turns scores into events the way a listener would:
//! speech starts after a few voiced frames in a row (so a click is not a
//! word, and an interruption is heard within a tenth of a second), and ends
//! after a pause long enough not to be a breath between words.

use super::audio::{Audio, LISTEN_RATE};
use std::ops::Range;

/// Samples in one frame (16 ms at 16 kHz).
pub const FRAME: usize = 256;
/// Score above which a frame is voiced.
const VOICED: f32 = 0.5;
/// Voiced frames in a row that start speech (48 ms).
const START_FRAMES: usize = 3;
/// Unvoiced frames in a row that end it (400 ms).
const END_FRAMES: usize = 25;
/// The pause, in milliseconds, after which speech is over.
pub const PAUSE_MS: f64 = (END_FRAMES * FRAME) as f64 * 1000.0 / LISTEN_RATE as f64;
/// Audio kept before speech starts and after it ends, so that soft first
/// and last sounds are not cut (160 ms).
pub const MARGIN: usize = 10 * FRAME;
/// Unvoiced frames in a row after which a pause may be the end: the margin
/// after the speech has been heard, so the utterance a pause would end is
/// all there (160 ms).
const PAUSING_FRAMES: usize = MARGIN / FRAME;

/// What the detector heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Speech started at this sample (the first voiced frame of the run).
    Started(usize),
    /// The speech paused just after this sample (its last voiced frame), long
    /// enough that the pause may end it: [`Event::Ended`] at the same
    /// sample follows unless the person goes on.
    Pausing(usize),
    /// Speech ended at this sample (just after the last voiced frame),
    /// known once the pause is long enough.
    Ended(usize),
}

/// A streaming voice activity detector over 16 kHz audio.
pub struct Detector {
    model: Box<earshot::Detector>,
    /// Samples not yet a whole frame.
    pending: Vec<f32>,
    /// Samples scored so far.
    position: usize,
    /// Voiced frames in a row, and where the run began.
    voiced_run: usize,
    run_start: usize,
    /// Unvoiced frames in a row while speaking.
    unvoiced_run: usize,
    /// Whether speech is under way, and where the last voiced frame ended.
    speaking: bool,
    last_voiced_end: usize,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Detector").field("position", &self.position).field("speaking", &self.speaking).finish()
    }
}

impl Default for Detector {
    fn default() -> Self {
        Self::new()
    }
}

impl Detector {
    /// A detector that has heard nothing.
    pub fn new() -> Self {
        Self {
            model: earshot::Detector::default_boxed(),
            pending: Vec::with_capacity(FRAME),
            position: 0,
            voiced_run: 0,
            run_start: 0,
            unvoiced_run: 0,
            speaking: false,
            last_voiced_end: 0,
        }
    }

    /// Feeds 16 kHz samples; returns what they made known.
    pub fn push(&mut self, samples: &[f32]) -> Vec<Event> {
        let mut events = Vec::new();
        for &sample in samples {
            self.pending.push(sample.clamp(-1.0, 1.0));
            if self.pending.len() == FRAME {
                let score = self.model.predict_f32(&self.pending);
                self.pending.clear();
                self.frame(score >= VOICED, &mut events);
            }
        }
        events
    }

    /// The end of the audio: speech under way ends where its voice did.
    pub fn finish(&mut self) -> Option<Event> {
        let ended = self.speaking.then_some(Event::Ended(self.last_voiced_end));
        self.speaking = false;
        ended
    }

    fn frame(&mut self, voiced: bool, events: &mut Vec<Event>) {
        let start = self.position;
        self.position += FRAME;
        if voiced {
            if self.voiced_run == 0 {
                self.run_start = start;
            }
            self.voiced_run += 1;
            self.unvoiced_run = 0;
            self.last_voiced_end = self.position;
            if !self.speaking && self.voiced_run >= START_FRAMES {
                self.speaking = true;
                events.push(Event::Started(self.run_start));
            }
        } else {
            self.voiced_run = 0;
            self.unvoiced_run += 1;
            if self.speaking && self.unvoiced_run == PAUSING_FRAMES {
                events.push(Event::Pausing(self.last_voiced_end));
            }
            if self.speaking && self.unvoiced_run >= END_FRAMES {
                self.speaking = false;
                events.push(Event::Ended(self.last_voiced_end));
            }
        }
    }
}

/// The stretches of `audio` (16 kHz) where someone speaks, with a margin
/// on each side, in samples.
pub fn speech(audio: &Audio) -> Vec<Range<usize>> {
    debug_assert_eq!(audio.rate, LISTEN_RATE);
    let mut detector = Detector::new();
    let mut events = detector.push(&audio.samples);
    events.extend(detector.finish());
    let mut stretches: Vec<Range<usize>> = Vec::new();
    let mut start = None;
    for event in events {
        match event {
            Event::Started(at) => start = Some(at),
            Event::Ended(at) => {
                if let Some(begin) = start.take() {
                    let range = begin.saturating_sub(MARGIN)..(at + MARGIN).min(audio.samples.len());
                    match stretches.last_mut() {
                        Some(last) if last.end >= range.start => last.end = range.end,
                        _ => stretches.push(range),
                    }
                }
            }
            Event::Pausing(_) => {}
        }
    }
    stretches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_and_a_steady_hum_are_not_speech() {
        let silence = Audio::new(vec![0.0; LISTEN_RATE as usize * 2], LISTEN_RATE);
        assert!(speech(&silence).is_empty());
        let hum = (0..LISTEN_RATE as usize * 2).map(|i| (i as f32 * 0.0314).sin() * 0.01).collect();
        assert!(speech(&Audio::new(hum, LISTEN_RATE)).is_empty());
    }

    #[test]
    fn speech_ends_only_after_a_pause() {
        let mut detector = Detector::new();
        let mut events = Vec::new();
        for voiced in [true, true, true, true, false, false, true] {
            detector.frame(voiced, &mut events);
        }
        assert_eq!(events, [Event::Started(0)]);
        for _ in 0..END_FRAMES {
            detector.frame(false, &mut events);
        }
        let end = 7 * FRAME;
        assert_eq!(events, [Event::Started(0), Event::Pausing(end), Event::Ended(end)]);
        assert_eq!(detector.finish(), None, "nothing is under way any more");
    }
}
