//! Kira's voice end to end, through the `workly` binary, on the real models:
//! Kokoro speaks (`workly say`), Whisper listens (`workly listen`), and what
//! one says the other hears; bad requests get one line and exit code 2.

mod common;

use common::{assert_bad_input, json_output, link_voice, workly_in};
use std::path::Path;
use workly::bench::voice::word_error_rate;

/// A data directory holding the voice.
fn voiced() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    link_voice(dir.path());
    dir
}

/// A WAV file's format and loudness (root mean square).
fn wav(path: &Path) -> (hound::WavSpec, f64, f64) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    let samples: Vec<f64> = reader.samples::<i16>().map(|sample| f64::from(sample.unwrap()) / 32768.0).collect();
    let rms = (samples.iter().map(|sample| sample * sample).sum::<f64>() / samples.len() as f64).sqrt();
    (spec, samples.len() as f64 / f64::from(spec.sample_rate), rms)
}

/// Writes `seconds` of silence at `rate`.
fn silence(path: &Path, rate: u32, seconds: u32) {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for _ in 0..rate * seconds {
        writer.write_sample(0i16).unwrap();
    }
    writer.finalize().unwrap();
}

#[test]
fn kira_speaks_sentence_by_sentence_in_the_text_s_language() {
    let data = voiced();
    for (said, voice, sentences) in [
        ("[joy] Hello there! I'm **so** glad you came. 🎉", "af_heart", ["Hello there!", "I'm so glad you came."]),
        (
            "[fun] Salut ! Je suis très contente de te voir.",
            "ff_siwis",
            ["Salut !", "Je suis très contente de te voir."],
        ),
    ] {
        let out = data.path().join(format!("{voice}.wav"));
        let report = json_output(workly_in(data.path()).args(["say", said, "--json", "--out"]).arg(&out));
        assert_eq!(report["voice"], voice, "{report}");
        let texts: Vec<&str> =
            report["sentences"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap()).collect();
        assert_eq!(texts, sentences, "tags, markup and emoji are not read: {report}");
        let (spec, seconds, rms) = wav(&out);
        assert_eq!((spec.sample_rate, spec.channels, spec.bits_per_sample), (24_000, 1, 16));
        assert!((seconds - report["audio_seconds"].as_f64().unwrap()).abs() < 0.01, "{seconds} s: {report}");
        assert!(seconds > 1.0 && rms > 0.01, "{seconds} s of speech at RMS {rms}");
    }
}

#[test]
fn the_config_file_sets_her_voice_speed_and_volume_and_flags_win() {
    let data = voiced();
    let out = data.path().join("said.wav");
    let say = |extra: &[&str]| {
        let mut command = workly_in(data.path());
        command.args(["say", "Hello there, how are you today?", "--json", "--out"]).arg(&out).args(extra);
        let report = json_output(&mut command);
        let (_, seconds, rms) = wav(&out);
        (report, seconds, rms)
    };
    let (plain, plain_seconds, plain_rms) = say(&[]);
    assert_eq!(
        (plain["voice"].as_str(), plain["speed"].as_f64(), plain["volume"].as_f64()),
        (Some("af_heart"), Some(1.0), Some(1.0))
    );
    std::fs::write(data.path().join("config.toml"), "[voice]\nvoice = \"emma\"\nspeed = 1.5\nvolume = 0.5\n").unwrap();
    let (set, seconds, rms) = say(&[]);
    assert_eq!((set["voice"].as_str(), set["volume"].as_f64()), (Some("bf_emma"), Some(0.5)), "{set}");
    assert!(seconds < plain_seconds * 0.8, "faster: {seconds} s against {plain_seconds} s");
    assert!(rms < plain_rms * 0.7, "quieter: RMS {rms} against {plain_rms}");
    // The config file's English voice does not read French; a flag's would.
    let (french, _, _) = say(&["--language", "fr"]);
    assert_eq!(french["voice"], "ff_siwis");
    let (flags, _, _) = say(&["--voice", "michael", "--speed", "1", "--volume", "1"]);
    assert_eq!(
        (flags["voice"].as_str(), flags["speed"].as_f64(), flags["volume"].as_f64()),
        (Some("am_michael"), Some(1.0), Some(1.0))
    );

    std::fs::write(data.path().join("config.toml"), "[voice]\nspeed = 5.0\n").unwrap();
    let refused = workly_in(data.path()).args(["say", "Hello.", "--out"]).arg(&out).output().unwrap();
    assert_bad_input(&refused, &["config.toml", "[voice]", "speed 5"]);
    std::fs::write(data.path().join("config.toml"), "[voice]\npitch = 2\n").unwrap();
    let refused = workly_in(data.path()).args(["say", "Hello.", "--out"]).arg(&out).output().unwrap();
    assert_bad_input(&refused, &["config.toml", "pitch"]);
    std::fs::remove_file(data.path().join("config.toml")).unwrap();
    let refused = workly_in(data.path()).args(["say", "Hello.", "--volume", "2", "--out"]).arg(&out).output().unwrap();
    assert_bad_input(&refused, &["volume 2"]);
}

#[test]
fn what_kira_says_whisper_hears_in_english_and_french() {
    let data = voiced();
    for (sentence, language) in [
        ("The weather is lovely today, so we could go for a walk by the river.", "en"),
        ("Il fait beau aujourd'hui, alors nous pourrions marcher au bord de la rivière.", "fr"),
        // Longer than the shortest window Whisper is given: each sentence is
        // heard once, in order (a looping decoder says them again).
        (
            "The weather is lovely today, so we could go for a walk by the river. I have been reading a book \
             about the history of lighthouses. Please turn off the lights before you go to bed.",
            "en",
        ),
    ] {
        let out = data.path().join(format!("{language}.wav"));
        let output =
            workly_in(data.path()).args(["say", sentence, "--language", language, "--out"]).arg(&out).output().unwrap();
        common::assert_success(&output);
        let heard = json_output(workly_in(data.path()).args(["listen", "--json", "--language", language]).arg(&out));
        let transcript = heard["text"].as_str().unwrap();
        let error_rate = word_error_rate(sentence, transcript);
        assert!(error_rate <= 0.2, "{sentence:?} was heard as {transcript:?} (WER {error_rate:.2})");
        assert_eq!(heard["language"], language);
        assert!(heard["speech_seconds"].as_f64().unwrap() <= heard["audio_seconds"].as_f64().unwrap());
        assert_eq!(transcript.matches("lighthouse").count(), usize::from(sentence.contains("lighthouse")));
    }
}

#[test]
fn listen_refuses_what_it_cannot_hear_in_one_line() {
    let data = voiced();
    let dir = data.path();
    let notes = dir.join("notes.wav");
    std::fs::write(&notes, "these are notes, not audio").unwrap();
    assert_bad_input(&workly_in(dir).arg("listen").arg(&notes).output().unwrap(), &["notes.wav", "not a WAV"]);
    let quiet = dir.join("quiet.wav");
    silence(&quiet, 16_000, 3);
    assert_bad_input(&workly_in(dir).arg("listen").arg(&quiet).output().unwrap(), &["quiet.wav", "no speech"]);
    let high = dir.join("high.wav");
    silence(&high, 96_000, 1);
    assert_bad_input(&workly_in(dir).arg("listen").arg(&high).output().unwrap(), &["96000 Hz", "8000 to 48000"]);
    let long = dir.join("long.wav");
    silence(&long, 8_000, 601);
    assert_bad_input(&workly_in(dir).arg("listen").arg(&long).output().unwrap(), &["601 s", "at most 600 s"]);
    let output = workly_in(dir).args(["listen", "--language", "de"]).arg(&quiet).output().unwrap();
    assert_bad_input(&output, &["unknown language `de`"]);
}

#[test]
fn say_refuses_bad_requests_in_one_line_and_leaves_no_file() {
    let data = voiced();
    let dir = data.path();
    let out = dir.join("out.wav");
    let say = |args: &[&str]| workly_in(dir).arg("say").args(args).arg("--out").arg(&out).output().unwrap();
    let long = "Kira reads. ".repeat(5_000);
    assert_bad_input(&say(&[&long]), &["60000 characters", "at most 10000"]);
    assert_bad_input(&say(&["Hi", "--voice", "nobody"]), &["unknown voice `nobody`", "heart"]);
    assert_bad_input(&say(&["Hi", "--speed", "3"]), &["speed 3", "0.5 to 2.0"]);
    assert_bad_input(&say(&["[joy] 🎉"]), &["nothing to say"]);
    assert!(!out.exists(), "a refused request writes nothing");
    let output = workly_in(dir).args(["say", "Hi", "--out"]).arg(dir.join("missing/out.wav")).output().unwrap();
    assert_bad_input(&output, &["cannot write", "missing/out.wav"]);
}

#[test]
fn a_missing_voice_or_espeak_ng_says_what_to_do() {
    let empty = tempfile::tempdir().unwrap();
    let out = empty.path().join("out.wav");
    let output = workly_in(empty.path()).args(["say", "Hi", "--out"]).arg(&out).output().unwrap();
    assert_bad_input(&output, &["is missing", "scripts/setup.sh"]);
    silence(&out, 16_000, 1);
    let output = workly_in(empty.path()).args(["listen", "--language", "fr"]).arg(&out).output().unwrap();
    assert_bad_input(&output, &["Whisper", "is missing", "scripts/setup.sh"]);

    let data = voiced();
    let no_programs = tempfile::tempdir().unwrap();
    let output =
        workly_in(data.path()).env("PATH", no_programs.path()).args(["say", "Hi", "--out"]).arg(&out).output().unwrap();
    assert_bad_input(&output, &["espeak-ng is not installed", "apt install espeak-ng"]);
}

/// `workly talk` on `inputs` with the small model into `replies`, `--json`.
fn talk(data: &Path, inputs: &[&Path], replies: &Path) -> std::process::Output {
    let model = common::small_model();
    let mut command = workly_in(data);
    command.args(["talk", "--json", "--no-memory", "--conversation", "spoken", "--no-unity", "--model"]).arg(model);
    command.arg("--out-dir").arg(replies).arg("--in").args(inputs);
    command.stdin(std::process::Stdio::null()).output().unwrap()
}

#[test]
fn talk_hears_each_recording_answers_aloud_and_keeps_the_transcript() {
    let data = voiced();
    let dir = data.path();
    let question = dir.join("question.wav");
    let asked = "What is your favourite season, and why?";
    let output = workly_in(dir).args(["say", asked, "--voice", "michael", "--out"]).arg(&question).output().unwrap();
    common::assert_success(&output);
    let quiet = dir.join("quiet.wav");
    silence(&quiet, 16_000, 2);
    let replies = dir.join("replies");

    let output = talk(dir, &[&question, &quiet], &replies);
    common::assert_success(&output);
    let stderr = common::text(&output.stderr);
    assert!(stderr.contains("quiet.wav: no speech was heard"), "silence is skipped, said: {stderr}");
    let stdout = common::text(&output.stdout);
    let turns: Vec<serde_json::Value> = stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(turns.len(), 1, "one spoken message, one turn: {stdout}");
    let voice = &turns[0]["voice"];
    let heard = voice["heard"].as_str().unwrap();
    assert!(word_error_rate(asked, heard) <= 0.2, "{asked:?} was heard as {heard:?}");
    assert_eq!(voice["voice"], "af_heart");
    assert!(voice["sentences"].as_u64().unwrap() >= 1, "{voice}");

    // The reply is spoken into its file, and the stages add up.
    let audio = Path::new(voice["audio"].as_str().unwrap());
    assert_eq!(audio, replies.join("reply-1.wav"));
    let (spec, seconds, rms) = wav(audio);
    assert_eq!(spec.sample_rate, 24_000);
    assert!((seconds - voice["audio_seconds"].as_f64().unwrap()).abs() < 0.01 && rms > 0.01, "{voice}");
    let stages = &voice["stages"];
    let stage = |name: &str| stages[name].as_f64().unwrap_or_else(|| panic!("{name} missing: {stages}"));
    assert_eq!(stage("pause_ms"), 400.0);
    let parts = ["pause_ms", "transcript_ms", "first_text_ms", "first_sentence_ms", "first_audio_ms"];
    let sum: f64 = parts.iter().map(|name| stage(name)).sum();
    assert!((sum - stage("total_ms")).abs() < 1.0, "{stages}");

    // The transcript is the person's message, stored as a typed one would be.
    let stored = common::stored(dir, "spoken");
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(stored[0], ("user".to_owned(), heard.to_owned()));
    assert_eq!(stored[1].0, "assistant");
}

#[test]
fn talk_refuses_a_bad_recording_before_loading_anything() {
    let data = voiced();
    let dir = data.path();
    let notes = dir.join("notes.wav");
    std::fs::write(&notes, "not audio").unwrap();
    let output = talk(dir, &[&notes], &dir.join("replies"));
    assert_bad_input(&output, &["notes.wav", "not a WAV"]);
    assert!(!dir.join("replies").exists(), "nothing was made");
    let long = dir.join("long.wav");
    silence(&long, 8_000, 61);
    assert_bad_input(&talk(dir, &[&long], &dir.join("replies")), &["61 s", "at most 60 s"]);
}

/// Writes `parts` (WAV files, or seconds of quiet) one after the other, at 24 kHz.
fn recording(path: &Path, parts: &[Result<&Path, f64>]) {
    let mut writer = hound::WavWriter::create(path, wav(parts.iter().find_map(|part| part.ok()).unwrap()).0).unwrap();
    for part in parts {
        match part {
            Ok(file) => {
                let mut reader = hound::WavReader::open(file).unwrap();
                for sample in reader.samples::<i16>() {
                    writer.write_sample(sample.unwrap()).unwrap();
                }
            }
            Err(seconds) => {
                for _ in 0..(seconds * 24_000.0) as usize {
                    writer.write_sample(0i16).unwrap();
                }
            }
        }
    }
    writer.finalize().unwrap();
}

/// `text` said in another voice than Kira's (a person's), into `dir/name`.
fn asked(dir: &Path, text: &str, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    common::assert_success(
        &workly_in(dir).args(["say", text, "--voice", "michael", "--out"]).arg(&path).output().unwrap(),
    );
    path
}

#[test]
fn a_live_utterance_is_recognized_from_its_pause_and_a_pause_it_goes_on_after_is_not_its_end() {
    use workly::chat::persona::Language;
    use workly::voice::ear::{Ear, Heard};
    use workly::voice::{Audio, Listener, VoiceFiles, device::WavInput, live::Hearing};
    let data = voiced();
    let dir = data.path();
    let say = |text: &str, name: &str| asked(dir, text, name);
    let thanks = say("Thank you very much.", "thanks.wav");
    let first = say("I would like to learn the piano", "first.wav");
    let second = say("and maybe the violin too.", "second.wav");
    // The quiet Workly leaves at the ends is taken off, for a pause of a
    // quarter of a second between the two.
    let trim = |path: &Path, end: bool| {
        let audio = Audio::read_wav(path, 60.0).unwrap();
        let loud = |sample: &f32| sample.abs() > 0.02;
        let samples = if end {
            audio.samples[..audio.samples.iter().rposition(loud).unwrap() + 1].to_vec()
        } else {
            audio.samples[audio.samples.iter().position(loud).unwrap()..].to_vec()
        };
        Audio::new(samples, audio.rate).write_wav(path).unwrap();
    };
    trim(&first, true);
    trim(&second, false);
    let mic = dir.join("mic.wav");
    recording(&mic, &[Err(0.3), Ok(&thanks), Err(4.0), Ok(&first), Err(0.25), Ok(&second), Err(1.0)]);
    // The premise: the ear paused between the two halves (recognition began
    // there), and only the second pause ended that utterance.
    let mut ear = Ear::new(true);
    let heard = ear.hear_samples(&Audio::read_wav(&mic, 60.0).unwrap().resampled(16_000).unwrap().samples);
    let kinds: Vec<&str> = heard
        .iter()
        .map(|heard| match heard {
            Heard::SpeechStarted => "started",
            Heard::Pausing(_) => "pausing",
            Heard::Utterance(..) => "utterance",
            Heard::TooLong => "too long",
        })
        .collect();
    let expected = ["started", "pausing", "utterance", "started", "pausing", "pausing", "utterance"];
    assert_eq!(kinds, expected);
    // A pause's utterance is the very audio the ear hands over if it ends it.
    let [_, Heard::Pausing(early), Heard::Utterance(utterance, _), ..] = &heard[..] else { unreachable!() };
    assert_eq!(early, utterance);
    let listener = Listener::load(&VoiceFiles::new(&dir.join("models")), 2).unwrap();
    listener.warm_up(Language::English).unwrap();
    let input = WavInput::open(&mic, 60.0, std::time::Duration::from_secs(1), true).unwrap();
    let mut hearing = Hearing::start(Box::new(input), || {});
    let mut next = || hearing.next(&listener, Language::English).map(Result::unwrap);
    let thanks = next().unwrap();
    assert!(thanks.text.to_lowercase().contains("thank"), "{thanks:?}");
    // Recognition began at the pause, and was done by the time the pause
    // ended the utterance.
    assert!(thanks.waited_seconds < thanks.recognition_seconds, "{thanks:?}");
    let text = next().unwrap().text.to_lowercase();
    assert!(text.contains("piano") && text.contains("violin"), "one utterance: {text:?}");
    assert!(next().is_none(), "nothing more was said");
}

/// A microphone that goes away after `pieces` pieces of `audio` (a sound
/// card unplugged mid-sentence, which cannot be done on this machine).
struct Unplugged {
    input: workly::voice::device::WavInput,
    pieces: usize,
}

impl workly::voice::device::Input for Unplugged {
    fn next_piece(&mut self) -> Result<Option<Vec<f32>>, workly::voice::device::DeviceError> {
        if self.pieces == 0 {
            return Err(workly::voice::device::DeviceError::Lost {
                what: "microphone",
                reason: "the device was unplugged".to_owned(),
            });
        }
        self.pieces -= 1;
        self.input.next_piece()
    }
}

#[test]
fn a_microphone_that_goes_away_mid_sentence_is_one_error_and_nothing_hangs() {
    use workly::chat::persona::Language;
    use workly::voice::live::{Hearing, LiveError};
    use workly::voice::{Listener, VoiceFiles, device::WavInput};
    let data = voiced();
    let dir = data.path();
    let question = asked(dir, "What should I cook for dinner tonight?", "question.wav");
    let listener = Listener::load(&VoiceFiles::new(&dir.join("models")), 2).unwrap();
    // Gone after a second: in the middle of the question.
    let input = WavInput::open(&question, 60.0, std::time::Duration::ZERO, false).unwrap();
    let mut hearing = Hearing::start(Box::new(Unplugged { input, pieces: 10 }), || {});
    let lost = hearing.next(&listener, Language::English).expect("the failure is told");
    let Err(error @ LiveError::Device(_)) = lost else { panic!("{lost:?}") };
    let message = error.to_string();
    assert_eq!(message, "the microphone stopped working: the device was unplugged");
    assert!(hearing.next(&listener, Language::English).is_none(), "the microphone's thread has ended");
}

#[test]
fn live_talk_stops_when_the_person_speaks_over_her_and_keeps_what_she_said() {
    let data = voiced();
    let dir = data.path();
    let say = |text: &str, name: &str| asked(dir, text, name);
    let story = say("Please tell me a long story about the sea, with many sentences.", "story.wav");
    let over = say("Wait, stop there, thank you.", "over.wav");
    // The person asks, waits for her to start, then speaks over her.
    let mic = dir.join("mic.wav");
    recording(&mic, &[Err(0.5), Ok(&story), Err(6.0), Ok(&over)]);
    let replies = dir.join("replies");
    let model = common::small_model();
    // A VMC receiver sees her mouth move while she speaks.
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let vmc = receiver.local_addr().unwrap().to_string();
    let widest = std::thread::spawn(move || {
        let (mut widest, mut buffer) = (0.0f32, [0u8; 2048]);
        while let Ok(read) = receiver.recv(&mut buffer) {
            let Ok((_, rosc::OscPacket::Bundle(bundle))) = rosc::decoder::decode_udp(&buffer[..read]) else { continue };
            for packet in bundle.content {
                if let rosc::OscPacket::Message(message) = packet
                    && let [rosc::OscType::String(name), rosc::OscType::Float(value)] = &message.args[..]
                    && ["aa", "ih", "ou", "ee", "oh"].contains(&name.as_str())
                {
                    widest = widest.max(*value);
                }
            }
        }
        widest
    });
    let output = workly_in(dir)
        .args(["talk", "--json", "--no-memory", "--conversation", "live", "--no-unity", "--vmc", &vmc, "--model"])
        .arg(model)
        .arg("--mic")
        .arg(&mic)
        .arg("--out-dir")
        .arg(&replies)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    common::assert_success(&output);
    let widest = widest.join().unwrap();
    assert!(widest > 0.3, "the mouth opened to {widest}");
    let stdout = common::text(&output.stdout);
    let turns: Vec<serde_json::Value> = stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(turns.len(), 2, "the question, then what interrupted her: {stdout}");
    let first = &turns[0]["voice"];
    let kept = first["interrupted"].as_str().unwrap_or_else(|| panic!("she was interrupted: {first}"));
    assert!(kept.ends_with("(interrupted)"), "{kept}");
    // What was played stopped where she was interrupted.
    let (_, seconds, _) = wav(&replies.join("reply-1.wav"));
    assert!((seconds - first["audio_seconds"].as_f64().unwrap()).abs() < 0.05, "{seconds} s: {first}");
    let heard = turns[1]["voice"]["heard"].as_str().unwrap();
    assert!(heard.to_lowercase().contains("stop"), "{heard}");

    let stored = common::stored(dir, "live");
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert_eq!(stored[1], ("assistant".to_owned(), kept.to_owned()), "only what she said is kept");
    assert_eq!(stored[2], ("user".to_owned(), heard.to_owned()));
}

#[test]
fn live_talk_needs_a_microphone_or_says_so() {
    let data = voiced();
    let dir = data.path();
    // A recording of nothing stands for a microphone that hears no one.
    let quiet = dir.join("quiet.wav");
    silence(&quiet, 16_000, 1);
    let output = workly_in(dir).args(["talk", "--mic"]).arg(&quiet).arg("--in").arg(&quiet).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "--mic and --in conflict");
    let output = workly_in(dir).args(["talk", "--in"]).arg(&quiet).output().unwrap();
    assert_bad_input(&output, &["--out-dir"]);
    let missing = dir.join("missing.wav");
    let output = workly_in(dir).args(["talk", "--mic"]).arg(&missing).arg("--out-dir").arg(dir).output().unwrap();
    assert_bad_input(&output, &["missing.wav"]);
}

/// ALSA's configuration with the default speaker writing into `dir/out.raw`
/// and the default microphone reading `dir/in.raw` (16 kHz, 16-bit, mono):
/// the real sound-card path (`cpal`, ALSA) on a machine without a sound card.
fn file_sound_card(dir: &Path) -> std::ffi::OsString {
    let config = dir.join("asound.conf");
    let file = |name: &str| dir.join(name).display().to_string();
    std::fs::write(
        &config,
        format!(
            "pcm.!default {{ type asym; playback.pcm \"speaker\"; capture.pcm \"mic\" }}\n\
             pcm.speaker {{ type plug; slave {{ pcm \"speakerfile\"; rate 24000; format S16_LE; channels 1 }} }}\n\
             pcm.speakerfile {{ type file; slave.pcm \"null\"; file \"{}\"; format \"raw\" }}\n\
             pcm.mic {{ type plug; slave {{ pcm \"micfile\"; rate 16000; format S16_LE; channels 1 }} }}\n\
             pcm.micfile {{ type file; slave.pcm \"null\"; file \"/dev/null\"; infile \"{}\"; format \"raw\" }}\n",
            file("out.raw"),
            file("in.raw"),
        ),
    )
    .unwrap();
    format!("/usr/share/alsa/alsa.conf:{}", config.display()).into()
}

#[test]
fn say_plays_on_the_speaker_and_listen_hears_the_microphone() {
    let data = voiced();
    let dir = data.path();
    let alsa = file_sound_card(dir);
    let said = "Hello there, this is Kira speaking.";
    let report = json_output(workly_in(dir).env("ALSA_CONFIG_PATH", &alsa).args(["say", said, "--json"]));
    assert_eq!(report["out"], "speaker");
    // ALSA's null device takes audio as fast as it comes, silence around
    // the speech: count the stretches with sound in them.
    let raw = std::fs::read(dir.join("out.raw")).unwrap();
    let samples: Vec<f64> =
        raw.chunks_exact(2).map(|pair| f64::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0).collect();
    let loud = samples.chunks(240).filter(|window| window.iter().map(|s| s * s).sum::<f64>() / 240.0 > 1e-4).count();
    let spoken = report["audio_seconds"].as_f64().unwrap();
    assert!(loud as f64 / 100.0 > spoken * 0.5, "{loud} loud 10 ms windows for {spoken} s of speech");

    // A question, then quiet, as the microphone hears it.
    let question = dir.join("question.wav");
    let output = workly_in(dir)
        .args(["say", "What is your favourite colour?", "--voice", "michael", "--out"])
        .arg(&question)
        .output();
    common::assert_success(&output.unwrap());
    let audio = workly::voice::Audio::read_wav(&question, 60.0).unwrap().resampled(16_000).unwrap();
    let pcm: Vec<u8> = std::iter::repeat_n(0.0, 8_000)
        .chain(audio.samples)
        .chain(std::iter::repeat_n(0.0, 32_000))
        .flat_map(|sample| workly::voice::audio::pcm16(sample).to_le_bytes())
        .collect();
    std::fs::write(dir.join("in.raw"), pcm).unwrap();
    let heard = json_output(workly_in(dir).env("ALSA_CONFIG_PATH", &alsa).args(["listen", "--json"]));
    let text = heard["text"].as_str().unwrap();
    assert!(word_error_rate("What is your favorite color?", text) <= 0.2, "{text}");

    // No microphone at all: one line.
    std::fs::remove_file(dir.join("in.raw")).unwrap();
    let output = workly_in(dir).env("ALSA_CONFIG_PATH", &alsa).args(["listen"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", common::text(&output.stderr));
    let stderr = common::text(&output.stderr);
    assert!(stderr.lines().any(|line| line.starts_with("workly: cannot open the microphone")), "{stderr}");
}
