//! A live microphone, heard on a thread of its own: the person's speech
//! stops Kira at once (barge-in), and each utterance is recognized, the
//! recognition begun at the pause that ends it.
//!
//! The microphone's thread only listens (the [`Ear`]); the thread that asks
//! for the next utterance ([`Hearing::next`]) recognizes, between the
//! turns it runs, so a reply being written is never slowed by a guess.

use super::Audio;
use super::device::{DeviceError, Input};
use super::ear::{Ear, Heard, TooLong};
use super::listen::{EarlyTranscripts, ListenError, Listener, Transcript};
use crate::chat::persona::Language;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// What kept an utterance from being heard.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The person spoke longer than an utterance may last.
    #[error(transparent)]
    TooLong(#[from] TooLong),
    /// The utterance could not be recognized (or held no speech).
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// The microphone failed (it went away mid-sentence, say).
    #[error(transparent)]
    Device(#[from] DeviceError),
}

impl crate::error::Classify for LiveError {
    fn class(&self) -> crate::error::Class {
        match self {
            LiveError::TooLong(_) => crate::error::Class::BadInput,
            LiveError::Listen(error) => error.class(),
            LiveError::Device(error) => error.class(),
        }
    }
}

/// What the microphone's thread hands over.
enum Event {
    Pausing(Audio),
    /// An utterance, when the ear knew it was over, and the quiet it had
    /// heard after it then.
    Utterance(Audio, Instant, Duration),
    TooLong,
    Failed(DeviceError),
}

/// A microphone, listened to on a thread of its own.
pub struct Hearing {
    events: Receiver<Event>,
    /// An event taken while looking past a pause.
    next: Option<Event>,
    early: EarlyTranscripts,
}

impl std::fmt::Debug for Hearing {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Hearing").finish_non_exhaustive()
    }
}

impl Hearing {
    /// Listens to `input` hands-free on a thread of its own; `on_speech` is
    /// called the moment the person starts speaking (to stop Kira). The
    /// thread ends with the input, or once nobody asks for utterances.
    pub fn start(mut input: Box<dyn Input>, on_speech: impl Fn() + Send + 'static) -> Self {
        let (send, events) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ear = Ear::new(true);
            loop {
                let piece = match input.next_piece() {
                    Ok(Some(piece)) => piece,
                    Ok(None) => break,
                    Err(error) => {
                        let _ = send.send(Event::Failed(error));
                        return;
                    }
                };
                for heard in ear.hear_samples(&piece) {
                    let event = match heard {
                        Heard::SpeechStarted => {
                            on_speech();
                            continue;
                        }
                        Heard::Pausing(audio) => Event::Pausing(audio),
                        Heard::Utterance(audio, quiet) => Event::Utterance(audio, Instant::now(), quiet),
                        Heard::TooLong => Event::TooLong,
                    };
                    if send.send(event).is_err() {
                        return;
                    }
                }
            }
            if let Some(audio) = ear.finish() {
                // The input ended: it said the utterance was over.
                let _ = send.send(Event::Utterance(audio, Instant::now(), Duration::ZERO));
            }
        });
        Self { events, next: None, early: EarlyTranscripts::default() }
    }

    /// The next utterance, recognized in `language`, waiting for it; `None`
    /// once the input has ended. At each pause the utterance so far is
    /// recognized, unless more was already heard: if the pause ends it,
    /// that transcript is the one given.
    pub fn next(&mut self, listener: &Listener, language: Language) -> Option<Result<Transcript, LiveError>> {
        loop {
            let event = match self.next.take() {
                Some(event) => event,
                None => self.events.recv().ok()?,
            };
            match event {
                Event::Pausing(audio) => match self.events.try_recv() {
                    // A pause already behind: guessing it would only delay what came after.
                    Ok(newer) => self.next = Some(newer),
                    Err(TryRecvError::Empty) => {
                        if let Some(ahead) = self.early.begin(audio) {
                            ahead.recognize(listener, language);
                        }
                    }
                    Err(TryRecvError::Disconnected) => {}
                },
                Event::Utterance(audio, ended, quiet) => {
                    let transcript = self.early.transcribe(listener, &audio, language, ended, quiet);
                    return Some(transcript.map_err(LiveError::from));
                }
                Event::TooLong => return Some(Err(TooLong.into())),
                Event::Failed(error) => return Some(Err(error.into())),
            }
        }
    }
}
