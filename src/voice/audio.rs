//! Audio as the voice handles it: mono `f32` samples in `[-1, 1]` at a
//! known rate, read from and written to WAV files (`hound`) and converted
//! between rates (`rubato`).
//!
//! Whatever a person gives is checked before any model sees it: a file that
//! is not a WAV, a rate or a channel count Workly does not take, or more
//! than the longest recording it listens to, each gets one line that says
//! what and where.

use std::path::{Path, PathBuf};

/// The rate Kokoro speaks at.
pub const SPEECH_RATE: u32 = 24_000;
/// The rate Whisper and the voice activity detector listen at.
pub const LISTEN_RATE: u32 = 16_000;
/// The rates a recording may have: telephone quality to studio quality.
pub const RATES: std::ops::RangeInclusive<u32> = 8_000..=48_000;
/// The channel counts a recording may have (stereo is mixed down).
pub const MAX_CHANNELS: u16 = 2;

/// The share of a recording's loud level under which it is quiet (about
/// −34 dB): the breath before a word and the fading tail after one are
/// under it, a soft consonant is not.
const QUIET_SHARE: f32 = 0.02;
/// Windows per second in which quiet is judged (5 ms each).
const QUIET_WINDOWS_PER_SECOND: u32 = 200;

/// Mono audio.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Audio {
    /// Samples in `[-1, 1]`.
    pub samples: Vec<f32>,
    /// Samples per second.
    pub rate: u32,
}

/// Audio that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file is not a WAV file Workly can read.
    #[error("{}: not a WAV audio file ({reason})", path.display())]
    NotWav {
        /// The file.
        path: PathBuf,
        /// What the WAV reader said.
        reason: String,
    },
    /// A WAV file Workly does not take.
    #[error("{}: {what}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is wrong, with what is taken instead.
        what: String,
    },
    /// A recording longer than Workly listens to.
    #[error("{}: {seconds:.0} s of audio; Workly listens to at most {max:.0} s at a time", path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
        /// Its length.
        seconds: f64,
        /// The limit.
        max: f64,
    },
    /// Converting between rates failed.
    #[error("cannot resample audio from {from} Hz to {to} Hz: {reason}")]
    Resample {
        /// The audio's rate.
        from: u32,
        /// The rate asked for.
        to: u32,
        /// Why.
        reason: String,
    },
    /// Writing a WAV file failed.
    #[error("cannot write {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl crate::error::Classify for AudioError {
    fn class(&self) -> crate::error::Class {
        match self {
            AudioError::Write { .. } | AudioError::Resample { .. } => crate::error::Class::Failure,
            _ => crate::error::Class::BadInput,
        }
    }
}

impl Audio {
    /// `samples` at `rate`.
    pub fn new(samples: Vec<f32>, rate: u32) -> Self {
        Self { samples, rate }
    }

    /// Its length in seconds.
    pub fn seconds(&self) -> f64 {
        if self.rate == 0 { 0.0 } else { self.samples.len() as f64 / f64::from(self.rate) }
    }

    /// Where its sound is, in samples: from the first to past the last
    /// 5 ms window louder than [`QUIET_SHARE`] of its loud level; `None`
    /// when it is all quiet.
    pub fn sound(&self) -> Option<std::ops::Range<usize>> {
        let window = (self.rate / QUIET_WINDOWS_PER_SECOND).max(1) as usize;
        let (levels, loud) = loudness(&self.samples, window)?;
        let heard = |level: &f32| *level > loud * QUIET_SHARE && *level > f32::EPSILON;
        let first = levels.iter().position(heard)?;
        let last = levels.iter().rposition(heard)?;
        Some(first * window..((last + 1) * window).min(self.samples.len()))
    }

    /// Seconds of quiet before its sound (all of it when it is silent).
    pub fn quiet_before(&self) -> f64 {
        let start = self.sound().map_or(self.samples.len(), |sound| sound.start);
        start as f64 / f64::from(self.rate.max(1))
    }

    /// Cuts the quiet at its ends to at most `before` and `after` seconds
    /// (silence is left as it is).
    pub fn trim_quiet(&mut self, before: f64, after: f64) {
        let Some(sound) = self.sound() else { return };
        let samples = |seconds: f64| (seconds * f64::from(self.rate)) as usize;
        let end = (sound.end + samples(after)).min(self.samples.len());
        self.samples.truncate(end);
        self.samples.drain(..sound.start.saturating_sub(samples(before)));
    }

    /// Reads a WAV file (PCM 8 to 32 bits or float, mono or stereo, 8 to
    /// 48 kHz) of at most `max_seconds`, mixing stereo down to mono.
    pub fn read_wav(path: &Path, max_seconds: f64) -> Result<Self, AudioError> {
        Self::decode(hound::WavReader::open(path).map_err(not_wav(path))?, path, max_seconds)
    }

    /// [`Audio::read_wav`] on the bytes of a file called `name` (an upload).
    pub fn from_wav_bytes(bytes: &[u8], name: &str, max_seconds: f64) -> Result<Self, AudioError> {
        let path = Path::new(name);
        Self::decode(hound::WavReader::new(std::io::Cursor::new(bytes)).map_err(not_wav(path))?, path, max_seconds)
    }

    /// The samples of an open WAV file, checked; `path` names it in errors.
    fn decode<R: std::io::Read>(
        reader: hound::WavReader<R>,
        path: &Path,
        max_seconds: f64,
    ) -> Result<Self, AudioError> {
        let spec = reader.spec();
        let unsupported = |what: String| AudioError::Unsupported { path: path.to_path_buf(), what };
        if !RATES.contains(&spec.sample_rate) {
            return Err(unsupported(format!(
                "{} Hz audio; Workly takes {} to {} Hz",
                spec.sample_rate,
                RATES.start(),
                RATES.end()
            )));
        }
        if spec.channels == 0 || spec.channels > MAX_CHANNELS {
            return Err(unsupported(format!("{} channels; Workly takes mono or stereo", spec.channels)));
        }
        let channels = usize::from(spec.channels);
        let seconds = f64::from(reader.duration()) / f64::from(spec.sample_rate);
        if seconds > max_seconds {
            return Err(AudioError::TooLong { path: path.to_path_buf(), seconds, max: max_seconds });
        }
        let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Float, 32) => reader.into_samples::<f32>().collect::<Result<_, _>>(),
            (hound::SampleFormat::Int, bits @ 8..=32) => {
                let scale = 1.0 / (1u64 << (bits - 1)) as f32;
                reader.into_samples::<i32>().map(|sample| sample.map(|value| value as f32 * scale)).collect()
            }
            (format, bits) => {
                return Err(unsupported(format!("{bits}-bit {format:?} samples; Workly takes PCM or 32-bit float")));
            }
        }
        .map_err(not_wav(path))?;
        let samples = interleaved
            .chunks_exact(channels)
            .map(|frame| (frame.iter().sum::<f32>() / channels as f32).clamp(-1.0, 1.0))
            .collect();
        Ok(Self { samples, rate: spec.sample_rate })
    }

    /// Writes 16-bit PCM mono.
    pub fn write_wav(&self, path: &Path) -> Result<(), AudioError> {
        let write = |error: hound::Error| AudioError::Write { path: path.to_path_buf(), reason: error.to_string() };
        self.write_to(hound::WavWriter::create(path, wav_spec(self.rate)).map_err(write)?).map_err(write)
    }

    /// The bytes of [`Audio::write_wav`]'s file, in memory.
    pub fn wav_bytes(&self) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        // Writing to memory fails only if memory does.
        let written = hound::WavWriter::new(&mut bytes, wav_spec(self.rate)).and_then(|writer| self.write_to(writer));
        debug_assert!(written.is_ok());
        bytes.into_inner()
    }

    fn write_to<W: std::io::Write + std::io::Seek>(&self, mut writer: hound::WavWriter<W>) -> Result<(), hound::Error> {
        for sample in &self.samples {
            writer.write_sample(pcm16(*sample))?;
        }
        writer.finalize()
    }

    /// The same audio at `rate` (unchanged when it is already there).
    pub fn resampled(&self, rate: u32) -> Result<Self, AudioError> {
        if rate == self.rate || self.samples.is_empty() {
            return Ok(Self { samples: self.samples.clone(), rate });
        }
        use rubato::Resampler as _;
        const CHUNK: usize = 1024;
        let failed = |reason: String| AudioError::Resample { from: self.rate, to: rate, reason };
        let mut resampler =
            rubato::Fft::<f32>::new(self.rate as usize, rate as usize, CHUNK, 1, rubato::FixedSync::Input)
                .map_err(|error| failed(error.to_string()))?;
        let channels = [&self.samples[..]];
        let input =
            rubato::audioadapter_buffers::direct::SequentialSliceOfSlices::new(&channels, 1, self.samples.len())
                .map_err(|error| failed(error.to_string()))?;
        let output =
            resampler.process_all(&input, self.samples.len(), None).map_err(|error| failed(error.to_string()))?;
        Ok(Self { samples: output.take_data(), rate })
    }
}

/// The error for a file that is not a WAV Workly can read, at `path`.
fn not_wav(path: &Path) -> impl Fn(hound::Error) -> AudioError + '_ {
    move |error| AudioError::NotWav { path: path.to_path_buf(), reason: error.to_string() }
}

/// The WAV format Workly writes: 16-bit PCM mono.
pub fn wav_spec(rate: u32) -> hound::WavSpec {
    hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int }
}

/// A sample in `[-1, 1]` as 16-bit PCM (clipped).
pub fn pcm16(sample: f32) -> i16 {
    (sample.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16
}

/// How loud `samples` are, `window` samples at a time (root mean square),
/// and the level of their loud stretches (the 90th percentile: a scale
/// that a quiet recording and a loud one share); `None` for no samples.
pub fn loudness(samples: &[f32], window: usize) -> Option<(Vec<f32>, f32)> {
    let levels: Vec<f32> = samples
        .chunks(window.max(1))
        .map(|chunk| (chunk.iter().map(|sample| sample * sample).sum::<f32>() / chunk.len() as f32).sqrt())
        .collect();
    let mut sorted = levels.clone();
    sorted.sort_by(f32::total_cmp);
    let loud = sorted.get(sorted.len() * 9 / 10).copied()?;
    Some((levels, loud))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, seconds: f64) -> Audio {
        let count = (f64::from(rate) * seconds) as usize;
        let samples =
            (0..count).map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin() * 0.5).collect();
        Audio::new(samples, rate)
    }

    #[test]
    fn quiet_edges_are_found_and_cut() {
        let rate = SPEECH_RATE;
        let quiet = |seconds: f64| vec![0.0005f32; (f64::from(rate) * seconds) as usize];
        let mut samples = quiet(0.4);
        samples.extend(tone(rate, 0.5).samples);
        samples.extend(quiet(0.6));
        let mut audio = Audio::new(samples, rate);
        assert!((audio.quiet_before() - 0.4).abs() < 0.006, "{}", audio.quiet_before());
        audio.trim_quiet(0.02, 0.1);
        assert!((audio.quiet_before() - 0.02).abs() < 0.006, "{}", audio.quiet_before());
        assert!((audio.seconds() - 0.62).abs() < 0.011, "{}", audio.seconds());
        // Silence has no sound to keep: it is left whole.
        let mut silent = Audio::new(vec![0.0; 2400], rate);
        silent.trim_quiet(0.0, 0.0);
        assert_eq!(silent.samples.len(), 2400);
        assert!((silent.quiet_before() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_written_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        let audio = tone(SPEECH_RATE, 0.5);
        audio.write_wav(&path).unwrap();
        let read = Audio::read_wav(&path, 10.0).unwrap();
        assert_eq!(read.rate, SPEECH_RATE);
        assert_eq!(read.samples.len(), audio.samples.len());
        let worst = read.samples.iter().zip(&audio.samples).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-3, "{worst}");
    }

    #[test]
    fn resampling_keeps_the_length_in_time() {
        let audio = tone(SPEECH_RATE, 1.0);
        let down = audio.resampled(LISTEN_RATE).unwrap();
        assert_eq!(down.rate, LISTEN_RATE);
        assert!((down.seconds() - 1.0).abs() < 0.01, "{}", down.seconds());
        // The tone survives: its loudness is kept away from the edges.
        let middle = &down.samples[4000..12000];
        let peak = middle.iter().fold(0.0f32, |peak, sample| peak.max(sample.abs()));
        assert!((peak - 0.5).abs() < 0.02, "{peak}");
    }

    #[test]
    fn stereo_is_mixed_down_and_other_shapes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, channels: u16, rate: u32| {
            let path = dir.path().join(name);
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut writer = hound::WavWriter::create(&path, spec).unwrap();
            for i in 0..rate / 10 * u32::from(channels) {
                writer.write_sample(if i % 2 == 0 { 1000i16 } else { 3000 }).unwrap();
            }
            writer.finalize().unwrap();
            path
        };
        let stereo = Audio::read_wav(&write("stereo.wav", 2, 16_000), 10.0).unwrap();
        assert!(stereo.samples.iter().all(|sample| (sample - 2000.0 / 32768.0).abs() < 1e-6));
        let error = Audio::read_wav(&write("surround.wav", 6, 16_000), 10.0).unwrap_err().to_string();
        assert!(error.contains("6 channels"), "{error}");
        let error = Audio::read_wav(&write("bat.wav", 1, 96_000), 10.0).unwrap_err().to_string();
        assert!(error.contains("96000 Hz"), "{error}");
        let error = Audio::read_wav(&write("long.wav", 1, 16_000), 0.05).unwrap_err().to_string();
        assert!(error.contains("at most"), "{error}");
        let text = dir.path().join("notes.wav");
        std::fs::write(&text, "not audio at all").unwrap();
        let error = Audio::read_wav(&text, 10.0).unwrap_err().to_string();
        assert!(error.contains("not a WAV"), "{error}");
    }
}
