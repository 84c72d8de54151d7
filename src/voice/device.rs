//! This machine's sound card: Kira's voice to its speaker, the person's
//! voice from its microphone, through `cpal` (ALSA on Linux).
//!
//! A conversation in the terminal talks to an [`Output`] and reads an
//! [`Input`], so that it runs the same on the sound card and on files: a
//! WAV file for the microphone ([`WavInput`]) and a folder of WAV files
//! for the speaker ([`WavOutput`]), paced as a sound card is.
//!
//! The speaker plays each sentence at the device's own rate (resampled
//! here) and can be stopped between two of its buffers: Kira stops within
//! one buffer of the person speaking over her. The microphone hands over
//! 100 ms pieces at 16 kHz. A device that goes away mid-sentence ends what
//! uses it with one line saying so; nothing panics.

use super::Audio;
use super::audio::{AudioError, LISTEN_RATE, pcm16};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// Samples in each piece of microphone audio (100 ms at 16 kHz).
pub const PIECE: usize = LISTEN_RATE as usize / 10;
/// How often a playing sentence looks at its stop switch.
const POLL: Duration = Duration::from_millis(5);

/// The sound card, or a file standing for it, failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No such device on this machine.
    #[error("no {0} on this machine (is a sound card there, and does ALSA see it?)")]
    Absent(&'static str),
    /// The device refused to open.
    #[error("cannot open the {what}: {reason}")]
    Open {
        /// `speaker` or `microphone`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The device went away, or failed, while in use.
    #[error("the {what} stopped working: {reason}")]
    Lost {
        /// `speaker` or `microphone`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A file standing for a device could not be read or written.
    #[error(transparent)]
    Audio(#[from] AudioError),
}

impl crate::error::Classify for DeviceError {
    fn class(&self) -> crate::error::Class {
        match self {
            DeviceError::Audio(error) => error.class(),
            _ => crate::error::Class::Failure,
        }
    }
}

/// Where Kira's voice is played.
pub trait Output: Send {
    /// Plays `audio` to its end, or until `stop` is set; returns the seconds
    /// of it that were played.
    fn play(&mut self, audio: &Audio, stop: &AtomicBool) -> Result<f64, DeviceError>;

    /// Reply `number` (from 1) is over.
    fn reply_done(&mut self, _number: usize) -> Result<(), DeviceError> {
        Ok(())
    }

    /// The file the last reply went to, when it went to one.
    fn last_file(&self) -> Option<PathBuf> {
        None
    }
}

/// Where the person's voice comes from.
pub trait Input: Send {
    /// The next piece of audio (16 kHz, mono), waiting for it; `None` once
    /// there is no more (a file's end).
    fn next_piece(&mut self) -> Result<Option<Vec<f32>>, DeviceError>;
}

/// What a stream's callbacks share with the thread that uses it.
#[derive(Debug, Default)]
struct Shared {
    /// Samples waiting to be played (interleaved, at the device's rate).
    queue: Mutex<VecDeque<f32>>,
    /// Frames taken by the device since the sentence began.
    played: AtomicUsize,
    /// The stream's error, once it failed.
    failed: Mutex<Option<String>>,
}

impl Shared {
    fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|failed| failed.clone())
    }

    fn fail(&self, error: &cpal::Error) {
        if let Ok(mut failed) = self.failed.lock() {
            failed.get_or_insert_with(|| error.to_string());
        }
    }
}

/// The machine's default speaker.
pub struct Speaker {
    _stream: cpal::Stream,
    shared: Arc<Shared>,
    rate: u32,
    channels: usize,
}

impl std::fmt::Debug for Speaker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Speaker").field("rate", &self.rate).field("channels", &self.channels).finish()
    }
}

impl Speaker {
    /// Opens the default output device at its own rate.
    pub fn open() -> Result<Self, DeviceError> {
        let open = |reason: String| DeviceError::Open { what: "speaker", reason };
        let device = cpal::default_host().default_output_device().ok_or(DeviceError::Absent("speaker"))?;
        let config = device.default_output_config().map_err(|error| open(error.to_string()))?;
        let (rate, channels) = (config.sample_rate(), usize::from(config.channels()));
        let shared = Arc::new(Shared::default());
        let (data, errors) = (Arc::clone(&shared), Arc::clone(&shared));
        let on_error = move |error: cpal::Error| errors.fail(&error);
        let stream = match config.sample_format() {
            cpal::SampleFormat::F32 => device.build_output_stream(
                config.into(),
                move |out: &mut [f32], _: &cpal::OutputCallbackInfo| fill(&data, channels, out, |sample| sample),
                on_error,
                None,
            ),
            cpal::SampleFormat::I16 => device.build_output_stream(
                config.into(),
                move |out: &mut [i16], _: &cpal::OutputCallbackInfo| fill(&data, channels, out, pcm16),
                on_error,
                None,
            ),
            other => return Err(open(format!("it takes {other} samples; Workly plays 32-bit float or 16-bit"))),
        }
        .map_err(|error| open(error.to_string()))?;
        stream.play().map_err(|error| open(error.to_string()))?;
        Ok(Self { _stream: stream, shared, rate, channels })
    }
}

/// Fills the device's buffer from the queue (silence when it is empty).
fn fill<T: Copy + Default>(shared: &Shared, channels: usize, out: &mut [T], convert: impl Fn(f32) -> T) {
    let Ok(mut queue) = shared.queue.lock() else { return };
    let mut frames = 0;
    for frame in out.chunks_mut(channels) {
        match queue.pop_front() {
            Some(sample) => {
                frame.fill(convert(sample));
                frames += 1;
            }
            None => frame.fill(T::default()),
        }
    }
    shared.played.fetch_add(frames, Ordering::Release);
}

impl Output for Speaker {
    fn play(&mut self, audio: &Audio, stop: &AtomicBool) -> Result<f64, DeviceError> {
        let samples = audio.resampled(self.rate)?.samples;
        let total = samples.len();
        self.shared.played.store(0, Ordering::Release);
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.extend(samples);
        }
        let lost = |reason| DeviceError::Lost { what: "speaker", reason };
        loop {
            if let Some(reason) = self.shared.failure() {
                return Err(lost(reason));
            }
            let played = self.shared.played.load(Ordering::Acquire).min(total);
            if stop.load(Ordering::Acquire) {
                // What is left is dropped: the device plays silence from its next buffer.
                if let Ok(mut queue) = self.shared.queue.lock() {
                    queue.clear();
                }
                return Ok(played as f64 / f64::from(self.rate));
            }
            if played >= total {
                return Ok(total as f64 / f64::from(self.rate));
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The machine's default microphone.
pub struct Microphone {
    _stream: cpal::Stream,
    pieces: mpsc::Receiver<Result<Vec<f32>, String>>,
    rate: u32,
}

impl std::fmt::Debug for Microphone {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Microphone").field("rate", &self.rate).finish()
    }
}

impl Microphone {
    /// Opens the default input device at its own rate.
    pub fn open() -> Result<Self, DeviceError> {
        let open = |reason: String| DeviceError::Open { what: "microphone", reason };
        let device = cpal::default_host().default_input_device().ok_or(DeviceError::Absent("microphone"))?;
        let config = device.default_input_config().map_err(|error| open(error.to_string()))?;
        let (rate, channels) = (config.sample_rate(), usize::from(config.channels()));
        // A second of audio may wait; a reader further behind loses the oldest.
        let (sender, pieces) = mpsc::sync_channel(16);
        let errors = sender.clone();
        let mut gathered = Vec::with_capacity(rate as usize / 10);
        let mut take = move |mono: &mut dyn Iterator<Item = f32>| {
            gathered.extend(mono);
            if gathered.len() >= rate as usize / 10 {
                let _ = sender.try_send(Ok(std::mem::take(&mut gathered)));
            }
        };
        let on_error = move |error: cpal::Error| {
            let _ = errors.try_send(Err(error.to_string()));
        };
        let stream = match config.sample_format() {
            cpal::SampleFormat::F32 => device.build_input_stream(
                config.into(),
                move |data: &[f32], _: &cpal::InputCallbackInfo| {
                    take(&mut data.chunks(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32));
                },
                on_error,
                None,
            ),
            cpal::SampleFormat::I16 => device.build_input_stream(
                config.into(),
                move |data: &[i16], _: &cpal::InputCallbackInfo| {
                    take(&mut data.chunks(channels).map(|frame| {
                        frame.iter().map(|sample| f32::from(*sample) / 32_768.0).sum::<f32>() / channels as f32
                    }));
                },
                on_error,
                None,
            ),
            other => return Err(open(format!("it gives {other} samples; Workly reads 32-bit float or 16-bit"))),
        }
        .map_err(|error| open(error.to_string()))?;
        stream.play().map_err(|error| open(error.to_string()))?;
        Ok(Self { _stream: stream, pieces, rate })
    }
}

impl Input for Microphone {
    fn next_piece(&mut self) -> Result<Option<Vec<f32>>, DeviceError> {
        let lost = |reason: String| DeviceError::Lost { what: "microphone", reason };
        match self.pieces.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(samples)) => Ok(Some(Audio::new(samples, self.rate).resampled(LISTEN_RATE)?.samples)),
            Ok(Err(reason)) => Err(lost(reason)),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(lost("no audio for 5 seconds".to_owned())),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(lost("the stream ended".to_owned())),
        }
    }
}

/// A WAV file standing for a microphone: its audio in pieces, at the pace
/// it was recorded, then silence for `tail` pieces, then its end.
#[derive(Debug)]
pub struct WavInput {
    samples: Vec<f32>,
    position: usize,
    paced: bool,
}

impl WavInput {
    /// `path`'s audio (at most `max_seconds`), followed by `silence` of quiet;
    /// `paced`, each piece waits its own length, as a microphone does.
    pub fn open(path: &Path, max_seconds: f64, silence: Duration, paced: bool) -> Result<Self, DeviceError> {
        Self::new(&Audio::read_wav(path, max_seconds)?, silence, paced)
    }

    /// `audio`, followed by `silence` of quiet; `paced` as for [`WavInput::open`].
    pub fn new(audio: &Audio, silence: Duration, paced: bool) -> Result<Self, DeviceError> {
        let mut samples = audio.resampled(LISTEN_RATE)?.samples;
        samples.extend(std::iter::repeat_n(0.0, (silence.as_secs_f64() * f64::from(LISTEN_RATE)) as usize));
        Ok(Self { samples, position: 0, paced })
    }
}

impl Input for WavInput {
    fn next_piece(&mut self) -> Result<Option<Vec<f32>>, DeviceError> {
        if self.position >= self.samples.len() {
            return Ok(None);
        }
        let end = (self.position + PIECE).min(self.samples.len());
        let piece = self.samples[self.position..end].to_vec();
        self.position = end;
        if self.paced {
            std::thread::sleep(Duration::from_secs_f64(piece.len() as f64 / f64::from(LISTEN_RATE)));
        }
        Ok(Some(piece))
    }
}

/// A folder standing for a speaker: each reply's sentences, as played
/// (cut where they were stopped), in `reply-N.wav`, paced as a speaker
/// plays them.
#[derive(Debug)]
pub struct WavOutput {
    dir: PathBuf,
    played: Audio,
    last: Option<PathBuf>,
}

impl WavOutput {
    /// Writes into `dir`.
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned(), played: Audio::new(Vec::new(), super::audio::SPEECH_RATE), last: None }
    }
}

impl Output for WavOutput {
    fn reply_done(&mut self, number: usize) -> Result<(), DeviceError> {
        let path = self.dir.join(format!("reply-{number}.wav"));
        self.played.write_wav(&path)?;
        self.played.samples.clear();
        self.last = Some(path);
        Ok(())
    }

    fn last_file(&self) -> Option<PathBuf> {
        self.last.clone()
    }

    fn play(&mut self, audio: &Audio, stop: &AtomicBool) -> Result<f64, DeviceError> {
        let audio = audio.resampled(self.played.rate)?;
        let mut played = 0;
        // In 10 ms steps, as a sound card's buffers go.
        for chunk in audio.samples.chunks(self.played.rate as usize / 100) {
            if stop.load(Ordering::Acquire) {
                break;
            }
            self.played.samples.extend_from_slice(chunk);
            played += chunk.len();
            std::thread::sleep(Duration::from_secs_f64(chunk.len() as f64 / f64::from(self.played.rate)));
        }
        Ok(played as f64 / f64::from(self.played.rate))
    }
}
