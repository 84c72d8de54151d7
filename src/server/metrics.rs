//! `GET /metrics`: counters, gauges and histograms in Prometheus' text format.
//!
//! Everything is a relaxed atomic, updated once per request (never per token),
//! so measuring costs nothing a user could notice.

use crate::avatar::TransportStats;
use crate::chat::turn::Guarded;
use crate::llm::GenerationStats;
use crate::voice::speech::Stages;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds, as Prometheus defines it.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Observations at or under each bound (not cumulative; summed on render).
    counts: Vec<AtomicU64>,
    /// Observations above the last bound.
    over: AtomicU64,
    /// Sum of observations, in millionths (atomics hold integers).
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            over: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: f64) {
        if !value.is_finite() || value < 0.0 {
            return;
        }
        match self.bounds.iter().position(|bound| value <= *bound) {
            Some(index) => self.counts[index].fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros.fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.over.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// Everything `/metrics` reports about the API.
#[derive(Debug)]
pub struct Metrics {
    requests: AtomicU64,
    errors: AtomicU64,
    prompt_tokens: AtomicU64,
    cached_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    recitals_regenerated: AtomicU64,
    recitals_cut: AtomicU64,
    ttft_seconds: Histogram,
    decode_tokens_per_second: Histogram,
    /// Spoken turns' stages, in the order [`VOICE_STAGES`] names them.
    voice_stages: [Histogram; 5],
}

/// Spoken turns' stages as `/metrics` names them, and what each measures.
const VOICE_STAGES: [(&str, &str); 5] = [
    ("workly_voice_transcript_seconds", "Recognizing a spoken message, after the pause that ended it."),
    ("workly_voice_first_text_seconds", "From a spoken or typed message to the reply's first text."),
    ("workly_voice_first_sentence_seconds", "From the reply's first text to the end of its first sentence."),
    ("workly_voice_first_audio_seconds", "From the end of the first sentence to its first sound."),
    ("workly_voice_total_seconds", "From the end of the person's speech (or message) to Kira's first sound."),
];
/// Bounds of the voice stage histograms, in seconds.
const VOICE_BOUNDS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            cached_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
            recitals_regenerated: AtomicU64::new(0),
            recitals_cut: AtomicU64::new(0),
            ttft_seconds: Histogram::new(&[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            decode_tokens_per_second: Histogram::new(&[5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 500.0, 1000.0]),
            voice_stages: std::array::from_fn(|_| Histogram::new(VOICE_BOUNDS)),
        }
    }
}

impl Metrics {
    /// A chat request arrived.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A chat request failed (refused, or the engine failed).
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A generation finished with these measurements.
    pub fn generation(&self, stats: &GenerationStats) {
        self.prompt_tokens.fetch_add(stats.prompt_tokens as u64, Ordering::Relaxed);
        self.cached_tokens.fetch_add(stats.cached_tokens as u64, Ordering::Relaxed);
        self.completion_tokens.fetch_add(stats.completion_tokens as u64, Ordering::Relaxed);
        if stats.completion_tokens > 0 {
            self.ttft_seconds.observe(stats.ttft_ms / 1e3);
        }
        if stats.completion_tokens > 1 {
            self.decode_tokens_per_second.observe(stats.decode_tokens_per_s);
        }
    }

    /// A reply of Kira's finished, `guarded` if the recital guard caught it.
    pub fn guarded(&self, guarded: Option<Guarded>) {
        match guarded {
            Some(Guarded::Regenerated) => self.recitals_regenerated.fetch_add(1, Ordering::Relaxed),
            Some(Guarded::Cut) => self.recitals_cut.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
    }

    /// A spoken reply went through these stages (a typed message's has no
    /// transcript stage).
    pub fn voice(&self, stages: &Stages) {
        let [transcript, first_text, first_sentence, first_audio, total] = &self.voice_stages;
        if stages.transcript_ms > 0.0 {
            transcript.observe(stages.transcript_ms / 1e3);
        }
        first_text.observe(stages.first_text_ms / 1e3);
        for (histogram, stage) in
            [(first_sentence, stages.first_sentence_ms), (first_audio, stages.first_audio_ms), (total, stages.total_ms)]
        {
            if let Some(ms) = stage {
                histogram.observe(ms / 1e3);
            }
        }
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, queue_depth: usize, rss_bytes: Option<u64>) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        counter("workly_requests_total", "Chat completion requests received.", self.requests.load(Ordering::Relaxed));
        counter(
            "workly_request_errors_total",
            "Chat completion requests that failed.",
            self.errors.load(Ordering::Relaxed),
        );
        let prompt = self.prompt_tokens.load(Ordering::Relaxed);
        let cached = self.cached_tokens.load(Ordering::Relaxed);
        counter("workly_prompt_tokens_total", "Prompt tokens of finished requests.", prompt);
        counter("workly_cached_prompt_tokens_total", "Prompt tokens reused from the KV cache.", cached);
        counter("workly_completion_tokens_total", "Tokens generated.", self.completion_tokens.load(Ordering::Relaxed));
        counter(
            "workly_recitals_regenerated_total",
            "Replies of Kira's that began by reciting her persona, made again.",
            self.recitals_regenerated.load(Ordering::Relaxed),
        );
        counter(
            "workly_recitals_cut_total",
            "Replies of Kira's cut where they began reciting her persona.",
            self.recitals_cut.load(Ordering::Relaxed),
        );
        let mut gauge = |name: &str, help: &str, value: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge("workly_queue_depth", "Chat requests running or waiting.", queue_depth as f64);
        let ratio = if prompt == 0 { 0.0 } else { cached as f64 / prompt as f64 };
        gauge("workly_cache_reuse_ratio", "Share of prompt tokens reused from the KV cache.", ratio);
        if let Some(rss) = rss_bytes {
            gauge("workly_resident_memory_bytes", "Resident memory of the process.", rss as f64);
        }
        self.ttft_seconds.render(&mut out, "workly_time_to_first_token_seconds", "Time to the first token.");
        self.decode_tokens_per_second.render(
            &mut out,
            "workly_decode_tokens_per_second",
            "Generation speed after the first token.",
        );
        for (histogram, (name, help)) in self.voice_stages.iter().zip(VOICE_STAGES) {
            histogram.render(&mut out, name, help);
        }
        out
    }
}

/// An avatar counter: its name, its help, and how to read it.
type AvatarCounter = (&'static str, &'static str, fn(&TransportStats) -> u64);

/// Appends each avatar transport's counters, labelled by transport.
pub fn render_avatar(out: &mut String, transports: &[TransportStats]) {
    let rows: [AvatarCounter; 4] = [
        ("workly_avatar_commands_sent_total", "Avatar commands written to a renderer.", |t| t.batch.commands_sent),
        ("workly_avatar_commands_coalesced_total", "Avatar commands replaced by a newer one before leaving.", |t| {
            t.batch.commands_coalesced
        }),
        ("workly_avatar_commands_dropped_total", "Avatar commands dropped.", |t| t.batch.commands_dropped),
        ("workly_avatar_frames_total", "Writes (Unity) or frames (VMC) sent to a renderer.", |t| t.batch.frames),
    ];
    for (name, help, value) in rows {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for transport in transports {
            let label = transport.transport.replace(['"', '\\', '\n'], "_");
            let _ = writeln!(out, "{name}{{transport=\"{label}\"}} {}", value(transport));
        }
    }
}

/// Appends a remote back-end's failures, labelled by kind.
pub fn render_faults(out: &mut String, faults: &crate::llm::remote::Faults) {
    let name = "workly_backend_errors_total";
    let _ = writeln!(out, "# HELP {name} Failures of the remote back-end, by kind.\n# TYPE {name} counter");
    for (kind, count) in faults.counts() {
        let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::new(&[1.0, 2.0]);
        for value in [0.5, 1.5, 1.5, 9.0, f64::NAN] {
            histogram.observe(value);
        }
        let mut out = String::new();
        histogram.render(&mut out, "h", "help");
        assert!(out.contains("h_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"2\"} 3\n"), "{out}");
        assert!(out.contains("h_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("h_sum 12.5\n") && out.contains("h_count 4\n"), "{out}");
    }

    #[test]
    fn the_recital_guard_is_counted_by_what_it_did() {
        let metrics = Metrics::default();
        for guarded in [None, Some(Guarded::Cut), Some(Guarded::Regenerated), Some(Guarded::Cut)] {
            metrics.guarded(guarded);
        }
        let out = metrics.render(0, None);
        assert!(out.contains("\nworkly_recitals_regenerated_total 1\n"), "{out}");
        assert!(out.contains("\nworkly_recitals_cut_total 2\n"), "{out}");
    }
}
