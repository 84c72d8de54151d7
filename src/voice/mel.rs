//! Whisper's input: the log-mel spectrogram of 16 kHz audio, for any length.
//!
//! Computed the way Whisper's own front end computes it (and as it was
//! trained): a 25 ms Hann window every 10 ms over the audio reflected at
//! both ends, the power spectrum through Slaney-scaled mel filters, `log10`,
//! floored 8 below the loudest value of the whole window, then scaled to
//! about −1…1. The floor is taken over the whole window, silence included,
//! not frame by frame: a frame of silence must read as silence.

use realfft::RealFftPlanner;
use realfft::RealToComplex;
use std::sync::Arc;

/// Samples in one analysis window (25 ms at 16 kHz).
const N_FFT: usize = 400;
/// Samples between two frames (10 ms at 16 kHz).
pub const HOP: usize = 160;
/// Frequency bins of the power spectrum.
const BINS: usize = N_FFT / 2 + 1;
/// The rate the filters are laid out for.
const RATE: f32 = 16_000.0;

/// The front end, its filters and FFT planned once.
pub struct MelFront {
    n_mels: usize,
    /// `n_mels` rows of `BINS` weights.
    filters: Vec<f32>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for MelFront {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("MelFront").field("n_mels", &self.n_mels).finish_non_exhaustive()
    }
}

impl MelFront {
    /// A front end with `n_mels` filters (80 for Whisper base).
    pub fn new(n_mels: usize) -> Self {
        // A periodic Hann window, as `torch.hann_window` makes.
        let window =
            (0..N_FFT).map(|n| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / N_FFT as f32).cos()).collect();
        Self { n_mels, filters: slaney_filters(n_mels), window, fft: RealFftPlanner::new().plan_fft_forward(N_FFT) }
    }

    /// The filters' count: the features' first dimension.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// The features of `samples`, `n_mels` rows of `samples.len() / HOP`
    /// frames, row after row.
    pub fn features(&self, samples: &[f32]) -> Vec<f32> {
        let frames = samples.len() / HOP;
        let half = N_FFT / 2;
        // Reflected at both ends, as `torch.stft(center=True)` does; audio
        // shorter than half a window is padded with silence first.
        let mut padded = Vec::with_capacity(samples.len().max(half + 1) + N_FFT);
        let body: Vec<f32> =
            samples.iter().copied().chain(std::iter::repeat(0.0)).take(samples.len().max(half + 1)).collect();
        padded.extend(body[1..=half].iter().rev());
        padded.extend_from_slice(&body);
        padded.extend(body[body.len() - half - 1..body.len() - 1].iter().rev());
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = [0.0f32; BINS];
        let mut features = vec![0.0f32; self.n_mels * frames];
        for frame in 0..frames {
            let start = frame * HOP;
            for ((slot, sample), weight) in input.iter_mut().zip(&padded[start..start + N_FFT]).zip(&self.window) {
                *slot = sample * weight;
            }
            // The lengths are the plan's own: this cannot fail.
            if self.fft.process_with_scratch(&mut input, &mut spectrum, &mut scratch).is_err() {
                continue;
            }
            for (value, bin) in power.iter_mut().zip(&spectrum) {
                *value = bin.norm_sqr();
            }
            for (mel, filter) in self.filters.chunks_exact(BINS).enumerate() {
                let energy: f32 = filter.iter().zip(&power).map(|(weight, value)| weight * value).sum();
                features[mel * frames + frame] = energy.max(1e-10).log10();
            }
        }
        let loudest = features.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for value in &mut features {
            *value = (value.max(loudest - 8.0) + 4.0) / 4.0;
        }
        features
    }
}

/// Mel filters on the Slaney scale (linear below 1 kHz, logarithmic above),
/// each normalized to the same area, from 0 Hz to half the rate.
fn slaney_filters(n_mels: usize) -> Vec<f32> {
    let top = hz_to_mel(RATE / 2.0);
    let edges: Vec<f32> = (0..n_mels + 2).map(|i| mel_to_hz(top * i as f32 / (n_mels + 1) as f32)).collect();
    let mut filters = vec![0.0; n_mels * BINS];
    for (mel, row) in filters.chunks_exact_mut(BINS).enumerate() {
        let (low, centre, high) = (edges[mel], edges[mel + 1], edges[mel + 2]);
        let area = 2.0 / (high - low);
        for (bin, weight) in row.iter_mut().enumerate() {
            let hz = bin as f32 * RATE / N_FFT as f32;
            let rising = (hz - low) / (centre - low);
            let falling = (high - hz) / (high - centre);
            *weight = rising.min(falling).max(0.0) * area;
        }
    }
    filters
}

/// Hertz below which the Slaney scale is linear.
const LINEAR_HZ: f32 = 1000.0;
/// Hertz per mel in the linear part.
const HZ_PER_MEL: f32 = 200.0 / 3.0;

/// The log part's step: 27 mels per factor 6.4.
fn log_step() -> f32 {
    6.4f32.ln() / 27.0
}

fn hz_to_mel(hz: f32) -> f32 {
    if hz < LINEAR_HZ { hz / HZ_PER_MEL } else { LINEAR_HZ / HZ_PER_MEL + (hz / LINEAR_HZ).ln() / log_step() }
}

fn mel_to_hz(mel: f32) -> f32 {
    let linear_top = LINEAR_HZ / HZ_PER_MEL;
    if mel < linear_top { mel * HZ_PER_MEL } else { LINEAR_HZ * (log_step() * (mel - linear_top)).exp() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_linear_then_logarithmic_and_invertible() {
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-4);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-4);
        for hz in [0.0, 300.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 0.05, "{hz}");
        }
    }

    #[test]
    fn a_tone_lights_the_filter_of_its_pitch_and_silence_reads_as_the_floor() {
        let front = MelFront::new(80);
        // One second of a 440 Hz tone, then one of silence.
        let samples: Vec<f32> = (0..32_000)
            .map(|i| if i < 16_000 { (2.0 * std::f32::consts::PI * 440.0 * i as f32 / RATE).sin() * 0.5 } else { 0.0 })
            .collect();
        let features = front.features(&samples);
        let frames = samples.len() / HOP;
        assert_eq!(features.len(), 80 * frames);
        let at = |mel: usize, frame: usize| features[mel * frames + frame];
        let middle = frames / 4;
        let loudest = (0..80).max_by(|a, b| at(*a, middle).total_cmp(&at(*b, middle))).unwrap_or(0);
        let centre = |mel: usize| mel_to_hz(hz_to_mel(RATE / 2.0) * (mel + 1) as f32 / 81.0);
        assert!((centre(loudest) - 440.0).abs() < 60.0, "the loudest filter is centred at {} Hz", centre(loudest));
        // The loudest value maps to (max + 4) / 4, the floor 2 below it.
        let top = features.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let bottom = features.iter().copied().fold(f32::INFINITY, f32::min);
        assert!((top - bottom - 2.0).abs() < 1e-4);
        assert!((0..80).all(|mel| at(mel, frames - 10) == bottom), "silence is the floor");
    }
}
