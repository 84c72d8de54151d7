//! Kira speaks while she writes: Kokoro on a thread of its own, fed the
//! reply's sentences as soon as each is complete.
//!
//! [`Speech`] owns the loaded model on its thread (the handle is cheap, the
//! thread is stopped and joined when the handle goes). A reply is an
//! [`Utterance`]: its text arrives in pieces, complete sentences are queued
//! for synthesis at once, and their audio comes back in order on the
//! utterance's receiver, for the door to play, send or write. Stopping an
//! utterance (the person interrupts) drops what is queued; the sentence
//! being made is dropped when it is done. [`SpeakingSink`] is the turn's
//! side: it passes the reply to the door's own sink and to the utterance.

use super::audio::{Audio, SPEECH_RATE};
use super::speak::{SpeakError, Speaker, Spoken, Voice};
use super::text::Sentences;
use super::{VoiceFiles, text};
use crate::chat::turn::Sink;
use crate::emotion::smoothing::Face;
use crate::llm::CancelToken;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// A sentence's audio, or why it has none, in the order the sentences came.
#[derive(Debug)]
pub struct Said {
    /// 0 for the reply's first sentence.
    pub index: usize,
    /// The sentence as the reply wrote it (tags aside): what the history
    /// keeps of it when it is said.
    pub written: String,
    /// The audio, or the failure.
    pub result: Result<Spoken, SpeakError>,
    /// When the sentence was complete in the reply.
    pub written_at: Instant,
    /// When its audio was ready.
    pub ready_at: Instant,
}

/// A sentence to speak.
struct Job {
    index: usize,
    written: String,
    sentence: String,
    voice: Voice,
    speed: f32,
    written_at: Instant,
    stopped: Arc<AtomicBool>,
    said: mpsc::Sender<Said>,
}

/// Kokoro on its own thread.
pub struct Speech {
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Speech {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Speech").field("running", &self.worker.is_some()).finish()
    }
}

impl Speech {
    /// Loads Kokoro on a new thread, to run on `threads` threads; returns
    /// once it is loaded (or could not be).
    pub fn start(files: &VoiceFiles, threads: usize) -> Result<Self, SpeakError> {
        let (loaded, load_result) = mpsc::sync_channel(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let files = files.clone();
        let worker = std::thread::Builder::new()
            .name("workly-speech".to_owned())
            .spawn(move || {
                let mut speaker = match Speaker::load(&files, threads) {
                    Ok(speaker) => {
                        let _ = loaded.send(Ok(()));
                        speaker
                    }
                    Err(error) => {
                        let _ = loaded.send(Err(error));
                        return;
                    }
                };
                for job in queue {
                    if job.stopped.load(Ordering::Acquire) {
                        continue;
                    }
                    let result = speaker.sentence(&job.sentence, job.voice, job.speed);
                    // Where a late voice loses its time: the queue, or Kokoro.
                    if let Ok(spoken) = &result {
                        let making = std::time::Duration::from_secs_f64(spoken.synthesis_seconds);
                        tracing::debug!(
                            index = job.index,
                            queued_ms = job.written_at.elapsed().saturating_sub(making).as_millis() as u64,
                            made_ms = making.as_millis() as u64,
                            audio_ms = (spoken.audio.seconds() * 1000.0) as u64,
                            "spoken: {:?}",
                            job.sentence
                        );
                    }
                    if job.stopped.load(Ordering::Acquire) {
                        continue;
                    }
                    let said = Said {
                        index: job.index,
                        written: job.written,
                        result,
                        written_at: job.written_at,
                        ready_at: Instant::now(),
                    };
                    // The door may have stopped listening: nothing to do then.
                    let _ = job.said.send(said);
                }
            })
            .map_err(|error| SpeakError::Runtime(format!("cannot start the speech thread: {error}")))?;
        match load_result.recv() {
            Ok(Ok(())) => Ok(Self { jobs: Some(jobs), worker: Some(worker) }),
            Ok(Err(error)) => {
                let _ = worker.join();
                Err(error)
            }
            Err(_) => {
                let _ = worker.join();
                Err(SpeakError::Runtime("the speech thread ended while loading".to_owned()))
            }
        }
    }

    /// A new reply to speak in `voice` at `speed`, and the receiver its
    /// sentences' audio comes back on (it ends once the utterance is
    /// finished or dropped and every queued sentence is said). With `reply`,
    /// the token of the generation writing the text, that generation is
    /// paused from the moment its first sentence is complete until that
    /// sentence's audio is made: on a machine with few cores, the model and
    /// the voice would otherwise slow each other down, and the person waits
    /// for the voice, not for the text.
    pub fn utterance(&self, voice: Voice, speed: f32, reply: Option<CancelToken>) -> (Utterance, mpsc::Receiver<Said>) {
        let (said, heard) = mpsc::channel();
        let utterance = Utterance {
            jobs: self.jobs.clone(),
            voice,
            speed,
            sentences: Sentences::for_speech(),
            queued: 0,
            stopped: Arc::new(AtomicBool::new(false)),
            said: Some(said),
            reply,
        };
        (utterance, heard)
    }
}

impl Speech {
    /// The whole of `text` in `voice` at `speed`, as one piece of audio
    /// (sentence by sentence on the speech thread, in turn with any reply
    /// being spoken).
    pub fn say(&self, text: &str, voice: Voice, speed: f32) -> Result<Audio, SpeakError> {
        super::speak::check(text, speed)?;
        let (mut utterance, heard) = self.utterance(voice, speed, None);
        utterance.push(text);
        utterance.finish();
        drop(utterance);
        let mut samples = Vec::new();
        for said in heard {
            samples.extend(said.result?.audio.samples);
        }
        Ok(Audio::new(samples, SPEECH_RATE))
    }
}

impl Drop for Speech {
    fn drop(&mut self) {
        // The queue closes; the thread ends after the sentence it is making.
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// One reply being spoken.
#[derive(Debug)]
pub struct Utterance {
    jobs: Option<mpsc::Sender<Job>>,
    voice: Voice,
    speed: f32,
    sentences: Sentences,
    queued: usize,
    stopped: Arc<AtomicBool>,
    said: Option<mpsc::Sender<Said>>,
    /// The generation paused while the first sentence is made.
    reply: Option<CancelToken>,
}

impl Utterance {
    /// More of the reply's text; complete sentences are queued at once.
    pub fn push(&mut self, piece: &str) {
        for sentence in self.sentences.push(piece) {
            self.queue(sentence);
        }
    }

    /// The reply is complete: its last words are queued, and the receiver
    /// ends after them.
    pub fn finish(&mut self) {
        if let Some(rest) = self.sentences.finish() {
            self.queue(rest);
        }
        self.said.take();
    }

    /// A switch that stops this utterance from another thread: nothing
    /// queued is said any more, nothing new is queued.
    pub fn stopper(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stopped)
    }

    fn queue(&mut self, sentence: String) {
        let spoken = text::speakable(&sentence);
        let (Some(jobs), Some(said)) = (&self.jobs, &self.said) else { return };
        if spoken.is_empty() || self.stopped.load(Ordering::Acquire) {
            return;
        }
        let job = Job {
            index: self.queued,
            written: sentence.trim().to_owned(),
            sentence: spoken,
            voice: self.voice,
            speed: self.speed,
            written_at: Instant::now(),
            stopped: Arc::clone(&self.stopped),
            said: said.clone(),
        };
        if jobs.send(job).is_ok() {
            if self.queued == 0
                && let Some(reply) = &self.reply
            {
                reply.pause();
            }
            self.queued += 1;
        }
    }
}

/// The turn's sink for a spoken reply: the door's own sink sees the text as
/// before, and the utterance hears it too.
pub struct SpeakingSink<'a> {
    /// The door's sink.
    pub inner: &'a mut dyn Sink,
    /// The reply being spoken.
    pub utterance: &'a mut Utterance,
    /// When the first piece of text came.
    pub first_text_at: Option<Instant>,
}

impl Sink for SpeakingSink<'_> {
    fn started(&mut self) {
        self.inner.started();
    }

    fn text(&mut self, piece: &str) -> bool {
        self.first_text_at.get_or_insert_with(Instant::now);
        self.utterance.push(piece);
        self.inner.text(piece)
    }

    fn face(&mut self, face: Face) {
        self.inner.face(face);
    }
}

/// How a spoken reply went: when each stage was reached, and the audio.
#[derive(Debug, Default)]
pub struct SpokenReply {
    /// When the reply's first text came.
    pub first_text_at: Option<Instant>,
    /// When its first sentence was complete.
    pub first_sentence_at: Option<Instant>,
    /// When the first sentence's first sound plays: its audio handed out,
    /// and the quiet it begins with.
    pub first_audio_at: Option<Instant>,
    /// Sentences spoken.
    pub sentences: usize,
    /// The first sentence that could not be spoken, if one could not.
    pub failed: Option<SpeakError>,
}

/// Runs `reply` (a chat turn writing to the sink it is given) while
/// speaking what it writes: the door's `inner` sink sees the text as
/// before; each sentence's audio goes to `play` as soon as it is made (with
/// its index and its text as written), on a thread of its own, while the
/// reply goes on. Returns once the reply is
/// written and every sentence handed out (or dropped, when `play` returns
/// `false`: the person interrupted). With `reply`, the generation's token,
/// the generation pauses while the first sentence is made
/// ([`Speech::utterance`]).
pub fn speak_while_writing<R>(
    speech: &Speech,
    voice: Voice,
    speed: f32,
    reply_token: Option<&CancelToken>,
    inner: &mut dyn Sink,
    reply: impl FnOnce(&mut dyn Sink) -> R,
    mut play: impl FnMut(usize, &str, &Spoken) -> bool + Send,
) -> (R, SpokenReply) {
    let (mut utterance, heard) = speech.utterance(voice, speed, reply_token.cloned());
    let stopper = utterance.stopper();
    let paused = reply_token.cloned();
    std::thread::scope(|scope| {
        let player = scope.spawn(move || {
            let mut report = SpokenReply::default();
            for said in heard {
                if said.index == 0 {
                    report.first_sentence_at = Some(said.written_at);
                    if let Some(paused) = &paused {
                        paused.resume();
                    }
                }
                match said.result {
                    Ok(spoken) => {
                        // What the person waits for is the first sound, not
                        // the quiet before it.
                        report.first_audio_at.get_or_insert_with(|| {
                            Instant::now() + std::time::Duration::from_secs_f64(spoken.audio.quiet_before())
                        });
                        report.sentences += 1;
                        if !play(said.index, &said.written, &spoken) {
                            stopper.store(true, Ordering::Release);
                            break;
                        }
                    }
                    Err(error) => {
                        report.failed.get_or_insert(error);
                    }
                }
            }
            report
        });
        let mut sink = SpeakingSink { inner, utterance: &mut utterance, first_text_at: None };
        let result = reply(&mut sink);
        let first_text_at = sink.first_text_at;
        utterance.finish();
        drop(utterance);
        let mut report = player.join().unwrap_or_default();
        if let Some(token) = reply_token {
            token.resume();
        }
        report.first_text_at = first_text_at;
        (result, report)
    })
}

/// What was said of a reply's `sentences` (each as written, and its
/// audio's length in seconds) when its audio stopped `seconds` into
/// sentence `index`: the sentences before it, and the words of that one
/// its share of the time covers (speech runs at an even pace, near enough).
pub fn said_of(sentences: &[(&str, f64)], index: usize, seconds: f64) -> String {
    let mut said: Vec<&str> = sentences.iter().take(index).map(|(written, _)| *written).collect();
    if let Some((written, length)) = sentences.get(index) {
        let share = if *length > 0.0 { (seconds / length).clamp(0.0, 1.0) } else { 0.0 };
        let words: Vec<&str> = written.split_whitespace().collect();
        let count = (share * words.len() as f64).round() as usize;
        if let Some(last) = count.checked_sub(1).and_then(|last| words.get(last)) {
            // The words are slices of `written`: it is cut just after the last one said.
            let end = last.as_ptr() as usize - written.as_ptr() as usize + last.len();
            said.push(&written[..end]);
        }
    }
    said.join(" ")
}

/// A spoken turn's stages, in milliseconds, each from the one before: what
/// the person waits for between the end of their speech and Kira's voice.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Stages {
    /// The quiet after the speech before it was called over: the voice
    /// activity detector's pause, as heard live (0 for a typed message or
    /// push-to-talk).
    pub pause_ms: f64,
    /// From there to the transcript: what was left of recognizing the
    /// speech once the pause ended it (0 for a typed message).
    pub transcript_ms: f64,
    /// Recognizing the speech, in all: part of it may have been done during
    /// the pause (0 for a typed message). Not a stage of its own.
    pub recognition_ms: f64,
    /// From the message to the reply's first text (fitting the prompt,
    /// recall, prefill, the first tokens).
    pub first_text_ms: f64,
    /// From there to the end of the reply's first sentence.
    pub first_sentence_ms: Option<f64>,
    /// From there to its first sound, handed out.
    pub first_audio_ms: Option<f64>,
    /// From the end of speech (or the message) to the first sound: the sum.
    pub total_ms: Option<f64>,
}

impl Stages {
    /// The stages of a reply to a message ready at `message_at`, heard in
    /// `transcript` if it was spoken.
    pub fn of(transcript: Option<&super::Transcript>, message_at: Instant, reply: &SpokenReply) -> Self {
        let between = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1000.0;
        let (pause_ms, transcript_ms, recognition_ms) = match transcript {
            Some(transcript) => (
                transcript.pause_seconds * 1000.0,
                transcript.waited_seconds * 1000.0,
                transcript.recognition_seconds * 1000.0,
            ),
            None => (0.0, 0.0, 0.0),
        };
        let first_text_ms = reply.first_text_at.map_or(0.0, |at| between(message_at, at));
        let first_sentence_ms = reply.first_text_at.zip(reply.first_sentence_at).map(|(text, end)| between(text, end));
        let first_audio_ms = reply.first_sentence_at.zip(reply.first_audio_at).map(|(end, audio)| between(end, audio));
        let total_ms = reply.first_audio_at.map(|audio| pause_ms + transcript_ms + between(message_at, audio));
        Self { pause_ms, transcript_ms, recognition_ms, first_text_ms, first_sentence_ms, first_audio_ms, total_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_was_said_ends_at_the_word_the_audio_reached() {
        let sentences = [("Hello there.", 1.0), ("I was about to say something long.", 2.0)];
        assert_eq!(said_of(&sentences, 0, 0.0), "");
        assert_eq!(said_of(&sentences, 1, 0.0), "Hello there.");
        assert_eq!(said_of(&sentences, 1, 1.0), "Hello there. I was about to");
        assert_eq!(said_of(&sentences, 1, 9.0), "Hello there. I was about to say something long.");
        assert_eq!(said_of(&sentences, 5, 0.0), "Hello there. I was about to say something long.");
    }
}
