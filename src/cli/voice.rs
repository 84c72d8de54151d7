//! `workly say`, `workly listen` and `workly talk`: Kira's voice in the
//! terminal. `talk` is the chat turn with one more door: each recording is
//! heard (voice activity, then Whisper) and taken as the person's message,
//! and Kira's reply is spoken sentence by sentence while she writes it.

use super::chat::{self, Door, Session};
use super::{Context, ListenArgs, SayArgs, TalkArgs, VoiceArgs, write_stdout};
use crate::avatar::mouth::MouthTrack;
use crate::chat::persona::Language;
use crate::config::Dirs;
use crate::error::{Context as _, Error};
use crate::voice::device::{Input, Microphone, Output, Speaker, WavInput, WavOutput};
use crate::voice::live::{Hearing, LiveError};
use crate::voice::speak::VoiceSettings;
use crate::voice::{self, Audio, Listener, Voice, VoiceFiles, audio::SPEECH_RATE};
use serde::Serialize;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

/// The longest recording `workly listen` takes.
pub const MAX_LISTEN_SECONDS: f64 = 600.0;
/// The longest message `workly talk` takes: a minute of speech.
pub const MAX_MESSAGE_SECONDS: f64 = 60.0;

/// A language code from the command line.
fn language(code: &str) -> Result<Language, Error> {
    voice::language(code).ok_or_else(|| Error::bad_input(anyhow::anyhow!("unknown language `{code}`: use en or fr")))
}

/// The voice named on the command line, taken as it is for any language
/// (one from the config file speaks only its own: see
/// [`VoiceSettings::voice_for`]).
fn named_voice(args: &VoiceArgs, settings: &VoiceSettings) -> Option<Voice> {
    args.voice.as_ref().and(settings.voice)
}

/// One sentence of `workly say --json`.
#[derive(Debug, Serialize)]
struct SaidSentence {
    text: String,
    phonemes: String,
    audio_seconds: f64,
    synthesis_seconds: f64,
}

/// `workly say --json`.
#[derive(Debug, Serialize)]
struct SayReport {
    out: String,
    voice: &'static str,
    speed: f32,
    volume: f32,
    sentences: Vec<SaidSentence>,
    audio_seconds: f64,
    load_seconds: f64,
    synthesis_seconds: f64,
    real_time_factor: f64,
}

/// Runs `workly say`.
pub fn run_say(context: &Context, args: &SayArgs) -> crate::error::Result<()> {
    let text = if args.text == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|error| match error.kind() {
            std::io::ErrorKind::InvalidData => Error::bad_input(anyhow::anyhow!("standard input is not UTF-8 text")),
            _ => Error::from(error),
        })?;
        text
    } else {
        args.text.clone()
    };
    let settings = context.voice(&args.voice)?;
    let language = match &args.language {
        Some(code) => language(code)?,
        None => Language::detect(&text),
    };
    let voice = named_voice(&args.voice, &settings).unwrap_or_else(|| settings.voice_for(language));
    let speed = settings.speed;
    voice::speak::check(&text, speed)?;
    if voice::text::speakable(&text).is_empty() {
        return Err(Error::bad_input(anyhow::anyhow!("nothing to say: the text has no words")));
    }
    // The speaker opens before anything loads: a missing one is said at once.
    let speaker = match &args.out {
        Some(_) => None,
        None => Some(Speaker::open()?),
    };
    let started = std::time::Instant::now();
    let mut kokoro = voice::Speaker::load(&VoiceFiles::new(&context.dirs.models()), voice::threads())?;
    let load_seconds = started.elapsed().as_secs_f64();
    let mut sentences = Vec::new();
    let mut said = |spoken: voice::speak::Spoken| {
        sentences.push(SaidSentence {
            text: spoken.sentence,
            phonemes: spoken.phonemes,
            audio_seconds: spoken.audio.seconds(),
            synthesis_seconds: spoken.synthesis_seconds,
        });
        let mut audio = spoken.audio;
        settings.apply_volume(&mut audio.samples);
        audio
    };
    match (&args.out, speaker) {
        (Some(out), _) => {
            say_into(out, &mut |sink| kokoro.speak(&text, voice, speed, &mut |spoken| sink(said(spoken))))?
        }
        (None, Some(speaker)) => {
            say_aloud(speaker, &mut |sink| kokoro.speak(&text, voice, speed, &mut |spoken| sink(said(spoken))))?;
        }
        (None, None) => unreachable!("the speaker is opened when there is no file"),
    }
    if args.json {
        let audio_seconds = sentences.iter().map(|sentence| sentence.audio_seconds).sum::<f64>();
        let synthesis_seconds = sentences.iter().map(|sentence| sentence.synthesis_seconds).sum::<f64>();
        let report = SayReport {
            out: args.out.as_ref().map_or_else(|| "speaker".to_owned(), |out| out.display().to_string()),
            voice: voice.name(),
            speed,
            volume: settings.volume,
            sentences,
            audio_seconds,
            load_seconds,
            synthesis_seconds,
            real_time_factor: synthesis_seconds / audio_seconds.max(f64::EPSILON),
        };
        write_stdout(&(serde_json::to_string(&report)? + "\n"))?;
    }
    Ok(())
}

/// Speaks a text, handing each sentence's audio to the sink it is given,
/// which says `false` to stop.
type Speak<'a> = &'a mut dyn FnMut(&mut dyn FnMut(Audio) -> bool) -> Result<(), voice::SpeakError>;

/// Each sentence `speak` hands its sink goes into the WAV file `out` as it
/// comes (a long text never waits whole in memory); the sink says `false`
/// once the file cannot be written. No half-spoken file is left behind as
/// if it were the whole text.
fn say_into(out: &std::path::Path, speak: Speak<'_>) -> crate::error::Result<()> {
    let cannot_write = |error: hound::Error| Error::failure(anyhow::anyhow!("cannot write {}: {error}", out.display()));
    let mut writer = hound::WavWriter::create(out, voice::audio::wav_spec(SPEECH_RATE))
        .map_err(|error| Error::bad_input(anyhow::anyhow!("cannot write {}: {error}", out.display())))?;
    let mut written = Ok(());
    let spoken = speak(&mut |audio| {
        written = audio.samples.iter().try_for_each(|sample| writer.write_sample(voice::audio::pcm16(*sample)));
        written.is_ok()
    });
    let finished =
        written.and_then(|()| writer.finalize()).map_err(cannot_write).and_then(|()| spoken.map_err(Error::from));
    if finished.is_err() {
        let _ = std::fs::remove_file(out);
    }
    finished
}

/// Each sentence `speak` hands its sink plays on `speaker`, on a thread of
/// its own, while the next is made; returns once the last has played.
fn say_aloud(mut speaker: Speaker, speak: Speak<'_>) -> crate::error::Result<()> {
    let (sentences, to_play) = mpsc::channel::<Audio>();
    std::thread::scope(|scope| {
        let player = scope.spawn(move || {
            let never = AtomicBool::new(false);
            for audio in to_play {
                speaker.play(&audio, &never)?;
            }
            Ok::<(), voice::device::DeviceError>(())
        });
        let spoken = speak(&mut |audio| sentences.send(audio).is_ok());
        drop(sentences);
        let played = player.join().unwrap_or_else(|_| {
            Err(voice::device::DeviceError::Lost { what: "speaker", reason: "its thread failed".to_owned() })
        });
        played?;
        spoken.map_err(Error::from)
    })
}

/// `workly listen --json`.
#[derive(Debug, Serialize)]
struct ListenReport {
    #[serde(flatten)]
    transcript: voice::Transcript,
    load_seconds: f64,
    real_time_factor: f64,
}

/// What `workly listen` hears: a recording (and its name), or the microphone.
enum ListenFrom {
    File(Audio, String),
    Microphone(Microphone),
}

/// Runs `workly listen`.
pub fn run_listen(dirs: &Dirs, args: &ListenArgs) -> crate::error::Result<()> {
    let language = language(&args.language)?;
    // The file is read, or the microphone opened, before Whisper loads: a
    // bad one is said at once.
    let from = match &args.file {
        Some(path) => ListenFrom::File(Audio::read_wav(path, MAX_LISTEN_SECONDS)?, path.display().to_string()),
        None => ListenFrom::Microphone(Microphone::open()?),
    };
    let started = std::time::Instant::now();
    let listener = Listener::load(&VoiceFiles::new(&dirs.models()), voice::threads())?;
    let load_seconds = started.elapsed().as_secs_f64();
    let transcript = match from {
        ListenFrom::File(audio, source) => listener.transcribe(&audio, language).with_context(|| source)?,
        // The first utterance, up to the first pause after speech.
        ListenFrom::Microphone(microphone) => Hearing::start(Box::new(microphone), || {})
            .next(&listener, language)
            .ok_or_else(|| Error::bad_input(anyhow::anyhow!("the microphone heard no speech")))?
            .with_context(|| "the microphone")?,
    };
    let output = if args.json {
        let real_time_factor = transcript.recognition_seconds / transcript.audio_seconds.max(f64::EPSILON);
        serde_json::to_string(&ListenReport { transcript, load_seconds, real_time_factor })? + "\n"
    } else {
        transcript.text + "\n"
    };
    write_stdout(&output)?;
    Ok(())
}

/// Kira's voice for a terminal door: Kokoro loaded, the voice, and where
/// the spoken replies go.
pub(crate) struct VoiceOut {
    speech: voice::speech::Speech,
    /// The voice named on the command line, for every message.
    voice: Option<Voice>,
    /// Else the voice for the message's language; the speed and volume.
    settings: VoiceSettings,
    /// Where the replies go.
    to: Destination,
    /// Replies written so far.
    replies: AtomicUsize,
}

/// Where a terminal door's spoken replies go.
enum Destination {
    /// Each reply, whole, into `reply-N.wav` in this folder.
    Files(PathBuf),
    /// Each sentence played as soon as it is made, on the speaker (or what
    /// stands for it); `stop` cuts the sentence playing (the person spoke).
    Live { output: Mutex<Box<dyn Output>>, stop: Arc<AtomicBool> },
}

/// How a spoken turn went, in `--json`.
#[derive(Debug, Serialize)]
pub struct SpokenReport {
    /// What was heard, when the message was spoken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard: Option<String>,
    /// The voice.
    pub voice: &'static str,
    /// The file the reply was written to (`speaker` when played).
    pub audio: String,
    /// Its length (as played, when the person interrupted).
    pub audio_seconds: f64,
    /// Sentences spoken.
    pub sentences: usize,
    /// What the history keeps of a reply the person interrupted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// The stages of the turn.
    pub stages: voice::speech::Stages,
}

/// A reply spoken by [`VoiceOut::speak`], to report once the turn is over.
pub(crate) struct SpokenTurn {
    reply: voice::speech::SpokenReply,
    voice: Voice,
    /// Where it went: a file, or `speaker`.
    audio: String,
    audio_seconds: f64,
    written: Result<(), Error>,
    /// What was said of it, when the person spoke over her.
    pub cut: Option<String>,
}

impl SpokenTurn {
    /// The report, for a message ready at `message_at` and heard in
    /// `transcript` if it was spoken, and what the history kept of an
    /// interrupted reply; an error if the reply could not be spoken or
    /// written.
    pub fn report(
        self,
        transcript: Option<&voice::Transcript>,
        message_at: std::time::Instant,
        interrupted: Option<String>,
    ) -> crate::error::Result<SpokenReport> {
        self.written?;
        if let Some(error) = self.reply.failed {
            return Err(error.into());
        }
        Ok(SpokenReport {
            heard: transcript.map(|transcript| transcript.text.clone()),
            voice: self.voice.name(),
            audio: self.audio,
            audio_seconds: self.audio_seconds,
            sentences: self.reply.sentences,
            interrupted,
            stages: voice::speech::Stages::of(transcript, message_at, &self.reply),
        })
    }
}

impl VoiceOut {
    /// Runs `reply` (the chat turn, writing to the sink it is given) while
    /// speaking it: into the next reply file, or sentence by sentence on
    /// the speaker, with `avatar`'s mouth following each sentence.
    pub fn speak<R>(
        &self,
        user: &str,
        avatar: Option<&crate::avatar::AvatarBridge>,
        reply_token: &crate::llm::CancelToken,
        printer: &mut dyn crate::chat::turn::Sink,
        reply: impl FnOnce(&mut dyn crate::chat::turn::Sink) -> R,
    ) -> (R, SpokenTurn) {
        let voice = self.voice.unwrap_or_else(|| self.settings.voice_for(Language::detect(user)));
        let speak = |play: &mut (dyn FnMut(usize, &str, &voice::speak::Spoken) -> bool + Send)| {
            voice::speech::speak_while_writing(
                &self.speech,
                voice,
                self.settings.speed,
                Some(reply_token),
                printer,
                reply,
                play,
            )
        };
        match &self.to {
            Destination::Files(dir) => {
                let number = self.replies.fetch_add(1, Ordering::Relaxed) + 1;
                let path = dir.join(format!("reply-{number}.wav"));
                let mut audio = Audio::new(Vec::new(), SPEECH_RATE);
                let (result, spoken) = speak(&mut |_, _, said| {
                    audio.samples.extend_from_slice(&said.audio.samples);
                    true
                });
                self.settings.apply_volume(&mut audio.samples);
                let written = audio.write_wav(&path).map_err(Error::from);
                let audio_seconds = audio.seconds();
                let audio = path.display().to_string();
                (result, SpokenTurn { reply: spoken, voice, audio, audio_seconds, written, cut: None })
            }
            Destination::Live { output, stop } => {
                stop.store(false, Ordering::Release);
                let mut sentences: Vec<(String, f64)> = Vec::new();
                let (mut played_seconds, mut cut_at, mut failed) = (0.0, None, None);
                let (result, spoken) = speak(&mut |index, written, said| {
                    let mut audio = said.audio.clone();
                    self.settings.apply_volume(&mut audio.samples);
                    sentences.push((written.to_owned(), audio.seconds()));
                    // The avatar's mouth follows the sentence from now, as it plays.
                    if let Some(avatar) = avatar {
                        avatar.speak(&Arc::new(MouthTrack::of_speech(&audio.samples, audio.rate, &said.phonemes)));
                    }
                    let played = output
                        .lock()
                        .map_err(|_| "the speaker failed earlier".to_owned())
                        .and_then(|mut output| output.play(&audio, stop).map_err(|error| error.to_string()));
                    match played {
                        Ok(seconds) => {
                            played_seconds += seconds;
                            let stopped = stop.load(Ordering::Acquire);
                            if stopped {
                                cut_at = Some((index, seconds));
                                if let Some(avatar) = avatar {
                                    avatar.hush();
                                }
                            }
                            !stopped
                        }
                        Err(error) => {
                            failed = Some(error);
                            false
                        }
                    }
                });
                let done = output.lock().map_err(|_| "the speaker failed earlier".to_owned()).and_then(|mut output| {
                    output
                        .reply_done(self.replies.fetch_add(1, Ordering::Relaxed) + 1)
                        .map_err(|error| error.to_string())
                });
                let written = match (failed, done) {
                    (Some(error), _) | (None, Err(error)) => Err(Error::failure(anyhow::anyhow!(error))),
                    (None, Ok(_)) => Ok(()),
                };
                let audio = match output.lock().ok().and_then(|output| output.last_file()) {
                    Some(path) => path.display().to_string(),
                    None => "speaker".to_owned(),
                };
                let cut = cut_at.map(|(index, seconds)| {
                    let pairs: Vec<(&str, f64)> =
                        sentences.iter().map(|(text, length)| (text.as_str(), *length)).collect();
                    voice::speech::said_of(&pairs, index, seconds)
                });
                (result, SpokenTurn { reply: spoken, voice, audio, audio_seconds: played_seconds, written, cut })
            }
        }
    }
}

/// Runs `workly talk`: recordings (`--in`), or a live conversation on the
/// microphone (or `--mic FILE`) and the speaker (or `--out-dir`).
pub fn run_talk(context: &Context, args: &TalkArgs) -> crate::error::Result<()> {
    if args.chat.prompt.is_some() {
        return Err(Error::bad_input(anyhow::anyhow!(
            "workly talk takes speech (the microphone, --mic or --in), not -p"
        )));
    }
    let language = language(&args.language)?;
    let settings = context.voice(&args.voice)?;
    // Every recording is read before anything loads: a bad one is reported at once.
    let messages = args
        .inputs
        .iter()
        .map(|path| Audio::read_wav(path, MAX_MESSAGE_SECONDS).map(|audio| (path, audio)))
        .collect::<Result<Vec<_>, _>>()?;
    let live = args.inputs.is_empty();
    if !live && args.out_dir.is_none() {
        return Err(Error::bad_input(anyhow::anyhow!("workly talk --in needs --out-dir for the spoken replies")));
    }
    if let Some(dir) = &args.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // The devices open before the models load: a missing one is said at once.
    let input: Option<Box<dyn Input>> = match (&args.mic, live) {
        (Some(path), _) => Some(Box::new(WavInput::open(path, MAX_LISTEN_SECONDS, TRAILING_QUIET, true)?)),
        (None, true) => Some(Box::new(Microphone::open()?)),
        (None, false) => None,
    };
    let to = match (&args.out_dir, live) {
        (Some(dir), false) => Destination::Files(dir.clone()),
        (Some(dir), true) => {
            Destination::Live { output: Mutex::new(Box::new(WavOutput::new(dir))), stop: Arc::default() }
        }
        (None, _) => Destination::Live { output: Mutex::new(Box::new(Speaker::open()?)), stop: Arc::default() },
    };
    let files = VoiceFiles::new(&context.dirs.models());
    let listener = Listener::load(&files, voice::threads())?;
    listener.warm_up(language)?;
    let speech = voice::speech::Speech::start(&files, voice::threads())?;
    let voice_out =
        VoiceOut { speech, voice: named_voice(&args.voice, &settings), settings, to, replies: AtomicUsize::new(0) };
    let Session { engine, avatar, chat, options, .. } = chat::open(context, &args.chat)?;
    let door = Door {
        engine: &engine,
        avatar: avatar.as_ref(),
        options: &options,
        chat: &chat,
        args: &args.chat,
        out: &write_stdout,
        voice: Some(&voice_out),
    };
    let current: chat::Current = Arc::default();
    chat::handle_signals(&current)?;
    let name = chat.lock().map(|chat| chat.conversation().persona().name.clone()).unwrap_or_default();
    let answer = |transcript: &voice::Transcript| -> crate::error::Result<bool> {
        let ready_at = std::time::Instant::now();
        if !args.chat.json {
            eprintln!("you (heard)> {}", transcript.text);
            eprint!("{name}> ");
        }
        chat::guarded(&current, |cancel| door.turn_heard(&transcript.text, cancel, Some((transcript, ready_at))))
    };
    let Some(input) = input else {
        for (path, audio) in messages {
            match listener.transcribe(&audio, language) {
                Ok(transcript) if answer(&transcript)? => break,
                Ok(_) => {}
                // Silence is not a message: the conversation goes on.
                Err(voice::ListenError::NoSpeech) => eprintln!("workly: {}: no speech was heard", path.display()),
                Err(error) => return Err(Error::from(error).context(path.display().to_string())),
            }
        }
        return Ok(());
    };
    let stop = match &voice_out.to {
        Destination::Live { stop, .. } => Arc::clone(stop),
        Destination::Files(_) => Arc::default(),
    };
    // As soon as the person speaks, Kira's voice stops and the reply being
    // written is cut: barge-in.
    let cut = Arc::clone(&current);
    let mut hearing = Hearing::start(input, move || {
        stop.store(true, Ordering::Release);
        chat::cut_current(&cut);
    });
    if !args.chat.json {
        eprintln!("(listening: speak to {name}; Ctrl-C ends)");
    }
    while let Some(heard) = hearing.next(&listener, language) {
        match heard {
            Ok(transcript) if answer(&transcript)? => break,
            Ok(_) => {}
            Err(LiveError::Listen(voice::ListenError::NoSpeech)) => {
                eprintln!("workly: the microphone: no speech was heard");
            }
            Err(LiveError::TooLong(error)) => eprintln!("workly: {error}"),
            Err(error) => return Err(Error::from(error).context("the microphone")),
        }
    }
    Ok(())
}

/// Quiet after a `--mic` recording, so that its last words end as a pause would end them.
const TRAILING_QUIET: std::time::Duration = std::time::Duration::from_secs(2);
