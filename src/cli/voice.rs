//! `workly say`, `workly listen` and `workly talk`: Kira's voice in the
//! terminal. `talk` is the chat turn with one more door: each recording is
//! heard (voice activity, then Whisper) and taken as the person's message,
//! and Kira's reply is spoken sentence by sentence while she writes it.

use super::chat::{self, Door, Session};
use super::{Context, ListenArgs, SayArgs, TalkArgs, VoiceArgs, write_stdout};
use crate::chat::persona::Language;
use crate::config::Dirs;
use crate::error::{Context as _, Error};
use crate::voice::{self, Audio, Listener, Speaker, Voice, VoiceFiles, audio::SPEECH_RATE};
use serde::Serialize;
use std::io::Read as _;

/// The longest recording `workly listen` takes.
pub const MAX_LISTEN_SECONDS: f64 = 600.0;
/// The longest message `workly talk` takes: a minute of speech.
pub const MAX_MESSAGE_SECONDS: f64 = 60.0;

/// A language code from the command line.
fn language(code: &str) -> Result<Language, Error> {
    voice::language(code).ok_or_else(|| Error::bad_input(anyhow::anyhow!("unknown language `{code}`: use en or fr")))
}

/// The voice `--voice` names, if it names one.
fn chosen_voice(args: &VoiceArgs) -> Result<Option<Voice>, Error> {
    Ok(args.voice.as_deref().map(Voice::parse).transpose()?)
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
    sentences: Vec<SaidSentence>,
    audio_seconds: f64,
    load_seconds: f64,
    synthesis_seconds: f64,
    real_time_factor: f64,
}

/// Runs `workly say`.
pub fn run_say(dirs: &Dirs, args: &SayArgs) -> crate::error::Result<()> {
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
    let chosen = chosen_voice(&args.voice)?;
    let voice = match (chosen, &args.language) {
        (Some(voice), _) => voice,
        (None, Some(code)) => Voice::for_language(language(code)?),
        (None, None) => Voice::for_language(Language::detect(&text)),
    };
    let speed = args.voice.speed;
    voice::speak::check(&text, speed)?;
    if voice::text::speakable(&text).is_empty() {
        return Err(Error::bad_input(anyhow::anyhow!("nothing to say: the text has no words")));
    }
    let started = std::time::Instant::now();
    let mut speaker = Speaker::load(&VoiceFiles::new(&dirs.models()), voice::threads())?;
    let load_seconds = started.elapsed().as_secs_f64();
    // The file is written as the sentences come: a long text never waits whole in memory.
    let mut writer = hound::WavWriter::create(&args.out, voice::audio::wav_spec(SPEECH_RATE))
        .map_err(|error| Error::bad_input(anyhow::anyhow!("cannot write {}: {error}", args.out.display())))?;
    let mut sentences = Vec::new();
    let mut written = Ok(());
    let spoken = speaker.speak(&text, voice, speed, &mut |spoken| {
        written = spoken.audio.samples.iter().try_for_each(|sample| writer.write_sample(voice::audio::pcm16(*sample)));
        sentences.push(SaidSentence {
            text: spoken.sentence,
            phonemes: spoken.phonemes,
            audio_seconds: spoken.audio.seconds(),
            synthesis_seconds: spoken.synthesis_seconds,
        });
        written.is_ok()
    });
    let finished = written
        .and_then(|()| writer.finalize())
        .map_err(|error| Error::failure(anyhow::anyhow!("cannot write {}: {error}", args.out.display())))
        .and_then(|()| spoken.map_err(Error::from));
    if let Err(error) = finished {
        // No half-spoken file is left behind as if it were the whole text.
        let _ = std::fs::remove_file(&args.out);
        return Err(error);
    }
    if args.json {
        let audio_seconds = sentences.iter().map(|sentence| sentence.audio_seconds).sum::<f64>();
        let synthesis_seconds = sentences.iter().map(|sentence| sentence.synthesis_seconds).sum::<f64>();
        let report = SayReport {
            out: args.out.display().to_string(),
            voice: voice.name(),
            speed,
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

/// `workly listen --json`.
#[derive(Debug, Serialize)]
struct ListenReport {
    #[serde(flatten)]
    transcript: voice::Transcript,
    load_seconds: f64,
    real_time_factor: f64,
}

/// Runs `workly listen`.
pub fn run_listen(dirs: &Dirs, args: &ListenArgs) -> crate::error::Result<()> {
    let language = language(&args.language)?;
    let audio = Audio::read_wav(&args.file, MAX_LISTEN_SECONDS)?;
    let started = std::time::Instant::now();
    let listener = Listener::load(&VoiceFiles::new(&dirs.models()), voice::threads())?;
    let load_seconds = started.elapsed().as_secs_f64();
    let transcript = listener.transcribe(&audio, language).with_context(|| format!("{}", args.file.display()))?;
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
    /// The voice asked for; else Kira's in the message's language.
    voice: Option<Voice>,
    speed: f32,
    /// The folder the replies are written to.
    out_dir: std::path::PathBuf,
    /// Replies written so far.
    replies: std::sync::atomic::AtomicUsize,
}

/// How a spoken turn went, in `--json`.
#[derive(Debug, Serialize)]
pub struct SpokenReport {
    /// What was heard, when the message was spoken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heard: Option<String>,
    /// The voice.
    pub voice: &'static str,
    /// The file the reply was written to.
    pub audio: String,
    /// Its length.
    pub audio_seconds: f64,
    /// Sentences spoken.
    pub sentences: usize,
    /// The stages of the turn.
    pub stages: voice::speech::Stages,
}

/// A reply spoken by [`VoiceOut::speak`], to report once the turn is over.
pub(crate) struct SpokenTurn {
    reply: voice::speech::SpokenReply,
    voice: Voice,
    path: std::path::PathBuf,
    audio_seconds: f64,
    written: Result<(), Error>,
}

impl SpokenTurn {
    /// The report, for a message ready at `message_at` and heard in
    /// `transcript` if it was spoken; an error if the reply could not be
    /// spoken or written.
    pub fn report(
        self,
        transcript: Option<&voice::Transcript>,
        message_at: std::time::Instant,
    ) -> crate::error::Result<SpokenReport> {
        self.written?;
        if let Some(error) = self.reply.failed {
            return Err(error.into());
        }
        Ok(SpokenReport {
            heard: transcript.map(|transcript| transcript.text.clone()),
            voice: self.voice.name(),
            audio: self.path.display().to_string(),
            audio_seconds: self.audio_seconds,
            sentences: self.reply.sentences,
            stages: voice::speech::Stages::of(transcript, message_at, &self.reply),
        })
    }
}

impl VoiceOut {
    /// Runs `reply` (the chat turn, writing to the sink it is given) while
    /// speaking it into the next reply file.
    pub fn speak<R>(
        &self,
        user: &str,
        reply_token: &crate::llm::CancelToken,
        printer: &mut dyn crate::chat::turn::Sink,
        reply: impl FnOnce(&mut dyn crate::chat::turn::Sink) -> R,
    ) -> (R, SpokenTurn) {
        let voice = self.voice.unwrap_or_else(|| Voice::for_language(Language::detect(user)));
        let number = self.replies.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let path = self.out_dir.join(format!("reply-{number}.wav"));
        let mut audio = Audio::new(Vec::new(), SPEECH_RATE);
        let (result, spoken) = voice::speech::speak_while_writing(
            &self.speech,
            voice,
            self.speed,
            Some(reply_token),
            printer,
            reply,
            |_, _, said| {
                audio.samples.extend_from_slice(&said.audio.samples);
                true
            },
        );
        let written = audio.write_wav(&path).map_err(Error::from);
        (result, SpokenTurn { reply: spoken, voice, path, audio_seconds: audio.seconds(), written })
    }
}

/// Runs `workly talk`.
pub fn run_talk(context: &Context, args: &TalkArgs) -> crate::error::Result<()> {
    if args.chat.prompt.is_some() {
        return Err(Error::bad_input(anyhow::anyhow!("workly talk takes recordings (--in), not -p")));
    }
    let language = language(&args.language)?;
    let chosen = chosen_voice(&args.voice)?;
    voice::speak::check("", args.voice.speed)?;
    // Every recording is read before anything loads: a bad one is reported at once.
    let messages = args
        .inputs
        .iter()
        .map(|path| Audio::read_wav(path, MAX_MESSAGE_SECONDS).map(|audio| (path, audio)))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&args.out_dir).with_context(|| format!("cannot create {}", args.out_dir.display()))?;
    let files = VoiceFiles::new(&context.dirs.models());
    let listener = Listener::load(&files, voice::threads())?;
    listener.warm_up(language)?;
    let speech = voice::speech::Speech::start(&files, voice::threads())?;
    let voice_out = VoiceOut {
        speech,
        voice: chosen,
        speed: args.voice.speed,
        out_dir: args.out_dir.clone(),
        replies: std::sync::atomic::AtomicUsize::new(0),
    };
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
    let current: chat::Current = std::sync::Arc::default();
    chat::handle_signals(&current)?;
    let name = chat.lock().map(|chat| chat.conversation().persona().name.clone()).unwrap_or_default();
    for (path, audio) in messages {
        let transcript = match listener.transcribe(&audio, language) {
            Ok(transcript) => transcript,
            // Silence is not a message: the conversation goes on.
            Err(voice::ListenError::NoSpeech) => {
                eprintln!("workly: {}: no speech was heard", path.display());
                continue;
            }
            Err(error) => return Err(Error::from(error).context(path.display().to_string())),
        };
        let ready_at = std::time::Instant::now();
        if !args.chat.json {
            eprintln!("you (heard)> {}", transcript.text);
            eprint!("{name}> ");
        }
        let ending =
            chat::guarded(&current, |cancel| door.turn_heard(&transcript.text, cancel, Some((&transcript, ready_at))))?;
        if ending {
            break;
        }
    }
    Ok(())
}
