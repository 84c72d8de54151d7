//! `workly bench voice`: how fast and how well Kira speaks and listens, on
//! a fixed set of sentences in English and French (no names, numbers
//! written out).
//!
//! - **Synthesis**: each sentence spoken by Kira's voice in its language;
//!   the real-time factor is synthesis time over audio length.
//! - **Recognition**: the same audio heard back by Whisper; its real-time
//!   factor, and the word error rate of the round trip (Kokoro, then
//!   Whisper) against the sentence.
//! - **Spoken turns**: recorded questions (another voice than Kira's in
//!   English) go through the whole path a person's voice takes: played in
//!   real time to the live microphone's ear, the pause the voice activity
//!   detector waits for (recognition begins during it), what was left of
//!   recognition once it ended, the chat turn, the first sentence, its
//!   audio. Each stage's median and 95th percentile.
//! - **Barge-in**: the same recordings, after half a second of quiet, fed
//!   to the microphone's ear in the 100 ms pieces the page sends: from the
//!   start of the speech to the moment the ear says the person speaks (and
//!   Kira's voice is stopped), in audio time plus the time taken to hear
//!   the piece.
//! - **The mouth on VMC**: a reply's first sentence's mouth played to a VMC
//!   receiver on this machine: from the moment the audio would start to the
//!   first frame with the mouth open, against when the track opens it.
//!
//! Word error rate is the share of a reference's words a transcript gets
//! wrong: the fewest words substituted, deleted or inserted to turn one into
//! the other, over the reference's word count. Words are compared in lower
//! case without punctuation, so "Hello, there." and "hello there" agree.

use super::nearest_rank;
use crate::avatar::mouth::{MOUTH_FPS, MouthTrack, Vowel};
use crate::avatar::unity::Reconnect;
use crate::avatar::{AvatarBridge, BridgeConfig, DirectorConfig};
use crate::chat::persona::Language;
use crate::chat::turn::{Chat, ReplyOptions, Turn, TurnError};
use crate::chat::{Conversation, Persona};
use crate::llm::{CancelToken, Engine, SamplingParams};
use crate::voice::audio::{LISTEN_RATE, loudness, pcm16};
use crate::voice::device::WavInput;
use crate::voice::ear::{Ear, Heard};
use crate::voice::live::{Hearing, LiveError};
use crate::voice::speak::Spoken;
use crate::voice::speech::{Speech, Stages, speak_while_writing};
use crate::voice::{Audio, ListenError, Listener, SpeakError, Speaker, Transcript, Voice, VoiceFiles, code};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sentences the round trip is measured on.
const SENTENCES: [(Language, &[&str]); 2] = [
    (
        Language::English,
        &[
            "The weather is lovely today, so we could go for a walk by the river.",
            "I have been reading a book about the history of lighthouses.",
            "Could you remind me to water the plants tomorrow morning?",
            "My sister bought a small house near the mountains last spring.",
            "We cooked pasta with fresh tomatoes and a little garlic.",
            "The train was late again, but the view from the window was beautiful.",
            "I would like to learn how to play the piano this winter.",
            "There are three cats sleeping on the sofa in the living room.",
            "Please turn off the lights before you go to bed.",
            "It took us two hours to finish the puzzle on the kitchen table.",
        ],
    ),
    (
        Language::French,
        &[
            "Il fait beau aujourd'hui, alors nous pourrions marcher au bord de la rivière.",
            "Je lis un livre sur l'histoire des phares depuis quelques jours.",
            "Peux-tu me rappeler d'arroser les plantes demain matin ?",
            "Ma sœur a acheté une petite maison près des montagnes au printemps dernier.",
            "Nous avons préparé des pâtes avec des tomates fraîches et un peu d'ail.",
            "Le train était encore en retard, mais la vue était magnifique.",
            "J'aimerais apprendre à jouer du piano cet hiver.",
            "Il y a trois chats qui dorment sur le canapé du salon.",
            "N'oublie pas d'éteindre la lumière avant d'aller te coucher.",
            "Nous avons mis deux heures à finir le puzzle sur la table de la cuisine.",
        ],
    ),
];

/// Questions of the spoken turns.
const QUESTIONS: [(Language, &[&str]); 2] = [
    (
        Language::English,
        &[
            "What is your favourite season, and why?",
            "Can you give me an idea for a rainy afternoon?",
            "I feel a bit tired today. Any advice?",
            "What should I cook for dinner tonight?",
            "Tell me something that makes you happy.",
        ],
    ),
    (
        Language::French,
        &[
            "Quelle est ta saison préférée, et pourquoi ?",
            "Tu as une idée pour un après-midi de pluie ?",
            "Je suis un peu fatigué aujourd'hui. Un conseil ?",
            "Qu'est-ce que je pourrais cuisiner ce soir ?",
            "Dis-moi quelque chose qui te rend heureuse.",
        ],
    ),
];

/// The voice the questions are asked in: not Kira's, where there is another.
fn asker(language: Language) -> Voice {
    match language {
        Language::English => Voice::Michael,
        Language::French => Voice::Siwis,
    }
}

/// The median and the 95th percentile of a set of measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    /// Median.
    pub p50: f64,
    /// 95th percentile (nearest rank).
    pub p95: f64,
}

impl Spread {
    /// Of `values` (0 for none).
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self { p50: super::median(&values), p95: nearest_rank(&values, 0.95) }
    }
}

/// One language's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LanguageReport {
    /// `en` or `fr`.
    pub language: &'static str,
    /// Kira's voice in it.
    pub voice: &'static str,
    /// Sentences of the round trip.
    pub sentences: usize,
    /// Synthesis time over audio length, per sentence.
    pub synthesis_rtf: Spread,
    /// Recognition time over audio length, per sentence.
    pub recognition_rtf: Spread,
    /// Word error rate of the round trip over every sentence's words.
    pub word_error_rate: f64,
    /// The sentences Whisper did not hear exactly, and what it heard.
    pub misheard: Vec<(String, String)>,
    /// Spoken turns measured.
    pub turns: usize,
    /// The stages of the spoken turns, the reply paused while its first
    /// sentence is made (as Workly runs them).
    pub stages: StageSpreads,
    /// The same turns with the reply written on while the first sentence is
    /// made: the baseline the pause is measured against.
    pub stages_unpaused: StageSpreads,
    /// The seam after the first piece, in the paused turns whose reply has a
    /// second: how long after the first piece's audio ends (its closing
    /// pause included) the second is ready (0 when it is ready in time). A
    /// short first piece is heard sooner but may leave a longer silence
    /// after it.
    pub seam_ms: Spread,
    /// From the start of the person's speech to the ear hearing it, per recording.
    pub barge_in_ms: Spread,
    /// How late the VMC mouth opens against its track, per run.
    pub mouth_lag_ms: Spread,
}

/// Each stage of the spoken turns, spread over the turns.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageSpreads {
    /// The pause before the speech is called ended.
    pub pause_ms: Spread,
    /// What was left of recognition once the pause ended the speech.
    pub transcript_ms: Spread,
    /// Recognition in all, part of it during the pause.
    pub recognition_ms: Spread,
    /// To the reply's first text.
    pub first_text_ms: Spread,
    /// To the end of its first sentence (or clause).
    pub first_sentence_ms: Spread,
    /// To that sentence's first sound.
    pub first_audio_ms: Spread,
    /// End of speech to the first sound.
    pub total_ms: Spread,
}

/// The report of `workly bench voice`.
#[derive(Debug, Clone, Serialize)]
pub struct VoiceReport {
    /// The chat model.
    pub model: String,
    /// Threads of each voice model.
    pub voice_threads: usize,
    /// Runs of each spoken turn (after a discarded one).
    pub runs: u32,
    /// Loading Kokoro, and Whisper.
    pub load_ms: (f64, f64),
    /// English, then French.
    pub languages: Vec<LanguageReport>,
}

/// A voice bench failed.
#[derive(Debug, thiserror::Error)]
pub enum VoiceBenchError {
    /// Speech could not be made.
    #[error(transparent)]
    Speak(#[from] SpeakError),
    /// Speech could not be heard.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// A recording could not be heard as a microphone is.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// A chat turn failed.
    #[error(transparent)]
    Turn(#[from] TurnError),
}

impl crate::error::Classify for VoiceBenchError {
    fn class(&self) -> crate::error::Class {
        match self {
            VoiceBenchError::Speak(error) => error.class(),
            VoiceBenchError::Listen(error) => error.class(),
            VoiceBenchError::Live(error) => error.class(),
            VoiceBenchError::Turn(error) => error.class(),
        }
    }
}

/// Runs the bench with `engine` (warmed for Kira), the voice models from
/// `files` on `threads` threads, each spoken turn `runs` times after a
/// discarded one.
pub fn measure_voice(
    engine: &Engine,
    files: &VoiceFiles,
    threads: usize,
    runs: u32,
) -> Result<VoiceReport, VoiceBenchError> {
    let started = Instant::now();
    let mut speaker = Speaker::load(files, threads)?;
    let kokoro_ms = started.elapsed().as_secs_f64() * 1000.0;
    let started = Instant::now();
    let listener = Listener::load(files, threads)?;
    let whisper_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut languages = Vec::new();
    for ((language, sentences), (_, questions)) in SENTENCES.iter().zip(&QUESTIONS) {
        let voice = Voice::for_language(*language);
        listener.warm_up(*language)?;
        let (mut synthesis, mut recognition, mut misheard) = (Vec::new(), Vec::new(), Vec::new());
        let (mut errors, mut words) = (0.0, 0usize);
        for sentence in *sentences {
            let spoken = speaker.sentence(sentence, voice, 1.0)?;
            synthesis.push(spoken.synthesis_seconds / spoken.audio.seconds());
            let heard = listener.transcribe(&spoken.audio, *language)?;
            recognition.push(heard.recognition_seconds / heard.audio_seconds);
            let count = word_count(sentence);
            let error_rate = word_error_rate(sentence, &heard.text);
            errors += error_rate * count as f64;
            words += count;
            if error_rate > 0.0 {
                misheard.push(((*sentence).to_owned(), heard.text));
            }
        }
        let recordings = questions
            .iter()
            .map(|question| Ok(speaker.sentence(question, asker(*language), 1.0)?.audio))
            .collect::<Result<Vec<Audio>, SpeakError>>()?;
        let barge_in =
            recordings.iter().map(barge_in_ms).collect::<Result<Vec<_>, _>>()?.into_iter().flatten().collect();
        let mouth_lag = mouth_lag_ms(&speaker.sentence(sentences[0], voice, 1.0)?, runs)?;
        let (paused, seams) = spoken_turns(engine, files, threads, &listener, *language, &recordings, runs, true)?;
        let (unpaused, _) = spoken_turns(engine, files, threads, &listener, *language, &recordings, runs, false)?;
        languages.push(LanguageReport {
            language: code(*language),
            voice: voice.name(),
            sentences: sentences.len(),
            synthesis_rtf: Spread::of(synthesis),
            recognition_rtf: Spread::of(recognition),
            word_error_rate: errors / words.max(1) as f64,
            misheard,
            turns: paused.len(),
            stages: spreads(&paused),
            stages_unpaused: spreads(&unpaused),
            seam_ms: Spread::of(seams),
            barge_in_ms: Spread::of(barge_in),
            mouth_lag_ms: Spread::of(mouth_lag),
        });
    }
    Ok(VoiceReport {
        model: engine.info().model_name.clone(),
        voice_threads: threads,
        runs,
        load_ms: (kokoro_ms, whisper_ms),
        languages,
    })
}

/// Each recording heard and answered aloud, `runs` times after a discarded
/// round, each in a new conversation, the reply paused while its first
/// sentence is made or not; a reply is cut once its second piece is made
/// (what follows is not waited for). Gives each turn's stages, and the seam
/// after the first piece of each reply that has a second.
#[allow(clippy::too_many_arguments)]
fn spoken_turns(
    engine: &Engine,
    files: &VoiceFiles,
    threads: usize,
    listener: &Listener,
    language: Language,
    recordings: &[Audio],
    runs: u32,
    pause: bool,
) -> Result<(Vec<Stages>, Vec<f64>), VoiceBenchError> {
    let speech = Speech::start(files, threads)?;
    let options = ReplyOptions { sampling: SamplingParams::greedy(), max_tokens: 64, ..Default::default() };
    let (mut stages, mut seams) = (Vec::new(), Vec::new());
    for round in 0..=runs {
        for recording in recordings {
            engine.wait_idle().map_err(TurnError::from)?;
            let transcript = hear_live(listener, recording, language)?;
            let message_at = Instant::now();
            let chat = Mutex::new(Chat::new(Conversation::new(Persona::default()), None));
            let cancel = CancelToken::new();
            let turn = Turn { engine, avatar: None, options: &options, cancel: cancel.clone() };
            let voice = Voice::for_language(language);
            // When the first piece's sound would end, played as soon as it
            // was made; then how late the second piece came.
            let mut first_ends = None;
            let mut seam = None;
            let (outcome, reply) = speak_while_writing(
                &speech,
                voice,
                1.0,
                pause.then_some(&cancel),
                &mut (),
                |sink| turn.chat(&chat, &transcript.text, sink),
                |index, _, spoken| {
                    let now = Instant::now();
                    if index == 0 {
                        first_ends = Some(now + Duration::from_secs_f64(spoken.audio.seconds()));
                        return true;
                    }
                    seam = first_ends.map(|ends| now.saturating_duration_since(ends).as_secs_f64() * 1000.0);
                    cancel.cancel();
                    false
                },
            );
            outcome?;
            if let Some(error) = reply.failed {
                return Err(error.into());
            }
            if round > 0 {
                stages.push(Stages::of(Some(&transcript), message_at, &reply));
                seams.extend(seam);
            }
        }
    }
    Ok((stages, seams))
}

/// `recording` heard as `workly talk` hears its microphone: in real time,
/// then quiet, recognized from the pause that ends it.
fn hear_live(listener: &Listener, recording: &Audio, language: Language) -> Result<Transcript, VoiceBenchError> {
    let input = WavInput::new(recording, Duration::from_secs(1), true).map_err(LiveError::from)?;
    let mut hearing = Hearing::start(Box::new(input), || {});
    Ok(hearing.next(listener, language).unwrap_or(Err(LiveError::Listen(ListenError::NoSpeech)))?)
}

/// Quiet before the speech in the barge-in measurement.
const LEAD_IN: usize = LISTEN_RATE as usize / 2;
/// Samples in each piece of microphone audio, as the page sends them (100 ms).
const PIECE: usize = 1600;

/// From the start of the speech in `recording` (after [`LEAD_IN`] of
/// quiet, heard in [`PIECE`]s) to the ear saying the person speaks: the
/// audio up to the end of the piece that made it known, and the time taken
/// to hear that piece. `None` if the ear never heard speech.
fn barge_in_ms(recording: &Audio) -> Result<Option<f64>, VoiceBenchError> {
    let audio = recording.resampled(LISTEN_RATE).map_err(ListenError::from)?;
    let Some(onset) = onset(&audio.samples) else { return Ok(None) };
    let samples = std::iter::repeat_n(0.0, LEAD_IN).chain(audio.samples.iter().copied());
    let pcm: Vec<u8> = samples.flat_map(|sample| pcm16(sample).to_le_bytes()).collect();
    let mut ear = Ear::new(true);
    for (index, piece) in pcm.chunks(PIECE * 2).enumerate() {
        let started = Instant::now();
        let heard = ear.hear(piece);
        if heard.iter().any(|heard| matches!(heard, Heard::SpeechStarted)) {
            let audio_samples = ((index + 1) * PIECE).saturating_sub(LEAD_IN + onset);
            let audio_ms = audio_samples as f64 * 1000.0 / f64::from(LISTEN_RATE);
            return Ok(Some(audio_ms + started.elapsed().as_secs_f64() * 1000.0));
        }
    }
    Ok(None)
}

/// Where speech starts in `samples`: the first 10 ms louder than a tenth
/// of the recording's loud stretches.
fn onset(samples: &[f32]) -> Option<usize> {
    let window = LISTEN_RATE as usize / 100;
    let (levels, loud) = loudness(samples, window)?;
    levels.iter().position(|&level| level > loud / 10.0).map(|index| index * window)
}

/// `spoken`'s mouth played to a VMC receiver on this machine, `runs`
/// times: how much later than its track says the receiver first sees the
/// mouth open, from the moment its audio would start.
fn mouth_lag_ms(spoken: &Spoken, runs: u32) -> Result<Vec<f64>, VoiceBenchError> {
    let failed = |error: std::io::Error| SpeakError::Runtime(format!("the VMC receiver: {error}"));
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").map_err(failed)?;
    receiver.set_read_timeout(Some(Duration::from_secs(2))).map_err(failed)?;
    let config = BridgeConfig {
        unity: None,
        vmc: vec![receiver.local_addr().map_err(failed)?],
        fps: None,
        director: Some(DirectorConfig::default()),
        model: None,
        reconnect: Reconnect::default(),
        tap: None,
    };
    let bridge = AvatarBridge::start(config).map_err(|error| SpeakError::Runtime(error.to_string()))?;
    let track = Arc::new(MouthTrack::of_speech(&spoken.audio.samples, spoken.audio.rate, &spoken.phonemes));
    let Some(first_open) = track.frames().iter().position(|mouth| mouth.open.get() > 0.0) else {
        return Ok(Vec::new());
    };
    let opens_at = first_open as f64 * 1000.0 / f64::from(MOUTH_FPS);
    let mut lags = Vec::new();
    let mut buffer = [0u8; 2048];
    for _ in 0..runs.max(1) * 5 {
        bridge.hush();
        std::thread::sleep(Duration::from_millis(100));
        while receiver.set_nonblocking(true).is_ok() && receiver.recv(&mut buffer).is_ok() {}
        receiver.set_nonblocking(false).map_err(failed)?;
        let started = Instant::now();
        bridge.speak(&track);
        while started.elapsed() < Duration::from_secs(2) {
            let Ok(read) = receiver.recv(&mut buffer) else { break };
            if mouth_open(&buffer[..read]) {
                lags.push(started.elapsed().as_secs_f64() * 1000.0 - opens_at);
                break;
            }
        }
    }
    Ok(lags)
}

/// Whether a VMC datagram shows the mouth open.
fn mouth_open(datagram: &[u8]) -> bool {
    let Ok((_, rosc::OscPacket::Bundle(bundle))) = rosc::decoder::decode_udp(datagram) else { return false };
    bundle.content.iter().any(|packet| match packet {
        rosc::OscPacket::Message(message) => match &message.args[..] {
            [rosc::OscType::String(name), rosc::OscType::Float(value)] => {
                Vowel::ALL.iter().any(|vowel| vowel.vmc_names()[0] == name) && *value > 0.0
            }
            _ => false,
        },
        rosc::OscPacket::Bundle(_) => false,
    })
}

/// Spreads of each stage over `stages`.
fn spreads(stages: &[Stages]) -> StageSpreads {
    let of = |stage: fn(&Stages) -> Option<f64>| Spread::of(stages.iter().filter_map(stage).collect());
    StageSpreads {
        pause_ms: of(|stages| Some(stages.pause_ms)),
        transcript_ms: of(|stages| Some(stages.transcript_ms)),
        recognition_ms: of(|stages| Some(stages.recognition_ms)),
        first_text_ms: of(|stages| Some(stages.first_text_ms)),
        first_sentence_ms: of(|stages| stages.first_sentence_ms),
        first_audio_ms: of(|stages| stages.first_audio_ms),
        total_ms: of(|stages| stages.total_ms),
    }
}

/// The report as text.
pub fn render(report: &VoiceReport) -> String {
    let mut text = format!(
        "voice models on {} threads (Kokoro loads in {:.0} ms, Whisper in {:.0} ms); chat model {}; {} runs\n",
        report.voice_threads, report.load_ms.0, report.load_ms.1, report.model, report.runs
    );
    for language in &report.languages {
        let stages = &language.stages;
        text.push_str(&format!(
            "\n{} ({}): {} sentences, {} spoken turns\n\
             synthesis RTF    p50 {:.2}  p95 {:.2}\n\
             recognition RTF  p50 {:.2}  p95 {:.2}\n\
             word error rate  {:.3} (Kokoro then Whisper)\n\
             stages (ms)          p50      p95\n",
            language.language,
            language.voice,
            language.sentences,
            language.turns,
            language.synthesis_rtf.p50,
            language.synthesis_rtf.p95,
            language.recognition_rtf.p50,
            language.recognition_rtf.p95,
            language.word_error_rate,
        ));
        for (name, spread) in [
            ("pause", stages.pause_ms),
            ("transcript", stages.transcript_ms),
            ("(recognition in all)", stages.recognition_ms),
            ("first text", stages.first_text_ms),
            ("first sentence", stages.first_sentence_ms),
            ("first sound", stages.first_audio_ms),
            ("end of speech → sound", stages.total_ms),
        ] {
            text.push_str(&format!("  {name:<22} {:>7.0}  {:>7.0}\n", spread.p50, spread.p95));
        }
        let unpaused = &language.stages_unpaused;
        text.push_str(&format!(
            "  without the pause: first sound p50 {:.0} ms, end of speech → sound p50 {:.0} ms\n",
            unpaused.first_audio_ms.p50, unpaused.total_ms.p50
        ));
        text.push_str(&format!(
            "  silence after the first piece p50 {:.0} ms  p95 {:.0} ms\n",
            language.seam_ms.p50, language.seam_ms.p95
        ));
        text.push_str(&format!(
            "  barge-in (speech start → heard) p50 {:.0} ms  p95 {:.0} ms\n\
             \x20 VMC mouth opens late by       p50 {:.1} ms  p95 {:.1} ms\n",
            language.barge_in_ms.p50, language.barge_in_ms.p95, language.mouth_lag_ms.p50, language.mouth_lag_ms.p95
        ));
    }
    text
}

/// `text`'s words as they are compared: lower case, ligatures spelt out
/// (`sœur` is `soeur`), apostrophes kept inside words, every other mark a
/// space.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('œ', "oe")
        .replace('æ', "ae")
        .replace('’', "'")
        .split(|character: char| !(character.is_alphanumeric() || character == '\''))
        .map(|word| word.trim_matches('\''))
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Words in `text`.
fn word_count(text: &str) -> usize {
    words(text).len()
}

/// The word error rate of `transcript` against `reference` (0 is perfect;
/// it can pass 1 when words are invented).
pub fn word_error_rate(reference: &str, transcript: &str) -> f64 {
    let reference = words(reference);
    let transcript = words(transcript);
    // One row of the edit-distance table at a time.
    let mut previous: Vec<usize> = (0..=transcript.len()).collect();
    for (row, expected) in reference.iter().enumerate() {
        let mut current = vec![row + 1; transcript.len() + 1];
        for (column, heard) in transcript.iter().enumerate() {
            let substitution = previous[column] + usize::from(expected != heard);
            current[column + 1] = substitution.min(previous[column + 1] + 1).min(current[column] + 1);
        }
        previous = current;
    }
    previous[transcript.len()] as f64 / reference.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_error_rate_counts_edits_over_the_reference() {
        assert_eq!(word_error_rate("Hello, there.", "hello there"), 0.0);
        assert_eq!(word_error_rate("Ma sœur", "ma soeur"), 0.0);
        assert_eq!(word_error_rate("I’m fine today", "I'm fine"), 1.0 / 3.0);
        assert_eq!(word_error_rate("one two three four", "one too three four five"), 0.5);
        assert_eq!(word_error_rate("", "anything"), 1.0);
    }
}
