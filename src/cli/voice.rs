//! `workly say` and `workly listen`: Kira's voice, one file at a time.

use super::{ListenArgs, SayArgs, write_stdout};
use crate::chat::persona::Language;
use crate::config::Dirs;
use crate::error::{Context as _, Error};
use crate::voice::{self, Audio, Listener, Speaker, Voice, VoiceFiles, audio::SPEECH_RATE};
use serde::Serialize;
use std::io::Read as _;

/// The longest recording `workly listen` takes.
pub const MAX_LISTEN_SECONDS: f64 = 600.0;

/// Threads for a voice model: every core (nothing else runs beside `say` or `listen`).
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A language code from the command line.
fn language(code: &str) -> Result<Language, Error> {
    voice::language(code).ok_or_else(|| Error::bad_input(anyhow::anyhow!("unknown language `{code}`: use en or fr")))
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
    let voice = match (&args.voice, &args.language) {
        (Some(name), _) => Voice::named(name).ok_or_else(|| {
            let names: Vec<&str> = Voice::ALL.iter().map(|voice| &voice.name()[3..]).collect();
            Error::bad_input(anyhow::anyhow!("unknown voice `{name}`: use one of {}", names.join(", ")))
        })?,
        (None, Some(code)) => Voice::for_language(language(code)?),
        (None, None) => Voice::for_language(Language::detect(&text)),
    };
    voice::speak::check(&text, args.speed)?;
    if voice::text::speakable(&text).is_empty() {
        return Err(Error::bad_input(anyhow::anyhow!("nothing to say: the text has no words")));
    }
    let started = std::time::Instant::now();
    let mut speaker = Speaker::load(&VoiceFiles::new(&dirs.models()), threads())?;
    let load_seconds = started.elapsed().as_secs_f64();
    // The file is written as the sentences come: a long text never waits whole in memory.
    let mut writer = hound::WavWriter::create(&args.out, voice::audio::wav_spec(SPEECH_RATE))
        .map_err(|error| Error::bad_input(anyhow::anyhow!("cannot write {}: {error}", args.out.display())))?;
    let mut sentences = Vec::new();
    let mut written = Ok(());
    let spoken = speaker.speak(&text, voice, args.speed, &mut |spoken| {
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
            speed: args.speed,
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
    let listener = Listener::load(&VoiceFiles::new(&dirs.models()), threads())?;
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
