//! Thread counts for generation: the saved thread benchmark
//! ([`ThreadMeasurements`]), how a count is picked from it, and the core-count
//! heuristic used when no benchmark of this CPU is at hand ([`choose_threads`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::hardware::{CpuInfo, HardwareError};

/// Where a thread count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadSource {
    /// From a thread benchmark saved for this CPU.
    Measured,
    /// From the core counts alone.
    Heuristic,
    /// Set by the user (`--threads` or the config file).
    Configured,
}

impl ThreadSource {
    /// Where the count came from, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Measured => "measured by the thread benchmark",
            Self::Heuristic => "from the core count, not measured",
            Self::Configured => "set by --threads or the config file",
        }
    }
}

/// Thread counts for the two phases of generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadChoice {
    /// Threads for token-by-token generation (memory-bandwidth bound).
    pub decode: usize,
    /// Threads for prompt processing (compute bound).
    pub prefill: usize,
    /// Whether these were measured or guessed.
    pub source: ThreadSource,
}

/// One thread count tried by the thread benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThreadRow {
    /// Threads used for both phases in this run.
    pub threads: usize,
    /// Prompt-processing speed, tokens per second.
    pub prefill_tokens_per_s: f64,
    /// Generation speed, tokens per second.
    pub decode_tokens_per_s: f64,
}

/// A saved thread benchmark: speeds at several thread counts on one CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadMeasurements {
    /// [`CpuInfo::model`] of the machine measured.
    pub cpu_model: String,
    /// [`CpuInfo::logical_cores`] of the machine measured (a VM resized keeps its model name).
    pub logical_cores: usize,
    /// Model file the benchmark ran, for the record.
    pub model_file: String,
    /// One row per thread count tried.
    pub rows: Vec<ThreadRow>,
}

/// Speeds within this fraction of the best one count as a tie.
const TIE_TOLERANCE: f64 = 0.01;

impl ThreadMeasurements {
    /// The fastest decode count and the fastest prefill count, each chosen on its own.
    ///
    /// Counts within 1% of the best are a tie, and a tie goes to fewer threads:
    /// the speed is the same and the spare cores keep the desktop responsive.
    /// Rows with zero threads or non-finite speeds are ignored; with no usable
    /// row at all this falls back to one thread per logical core, marked
    /// [`ThreadSource::Heuristic`].
    pub fn pick(&self) -> ThreadChoice {
        let decode = fastest(&self.rows, |row| row.decode_tokens_per_s);
        let prefill = fastest(&self.rows, |row| row.prefill_tokens_per_s);
        match (decode, prefill) {
            (Some(decode), Some(prefill)) => ThreadChoice { decode, prefill, source: ThreadSource::Measured },
            _ => {
                let threads = self.logical_cores.max(1);
                ThreadChoice { decode: threads, prefill: threads, source: ThreadSource::Heuristic }
            }
        }
    }

    /// Whether these measurements were taken on `cpu` (same model and core count).
    pub fn matches(&self, cpu: &CpuInfo) -> bool {
        self.cpu_model == cpu.model && self.logical_cores == cpu.logical_cores
    }

    /// Writes the measurements as pretty JSON, creating parent directories.
    ///
    /// The file is written beside its destination and renamed into place, so a
    /// crash mid-write never leaves a truncated cache behind.
    pub fn save(&self, path: &Path) -> Result<(), HardwareError> {
        let write_error = |source| HardwareError::Write { path: path.to_path_buf(), source };
        let json = serde_json::to_string_pretty(self).map_err(HardwareError::Encode)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        let mut staging = path.as_os_str().to_owned();
        staging.push(".tmp");
        std::fs::write(&staging, json + "\n").map_err(write_error)?;
        std::fs::rename(&staging, path).map_err(write_error)
    }

    /// Reads measurements saved by [`save`](Self::save).
    ///
    /// A missing file is `Ok(None)` (no benchmark run yet); an unreadable or
    /// corrupt one is an error the caller may log and ignore.
    pub fn load(path: &Path) -> Result<Option<Self>, HardwareError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(HardwareError::Read { path: path.to_path_buf(), source });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| HardwareError::Parse { path: path.to_path_buf(), source })
    }
}

/// Whether a row's speed (as read by `speed`) can be compared.
fn usable(row: &ThreadRow, speed: impl Fn(&ThreadRow) -> f64) -> bool {
    row.threads > 0 && speed(row).is_finite() && speed(row) >= 0.0
}

/// The fewest threads whose speed is within [`TIE_TOLERANCE`] of the best.
fn fastest(rows: &[ThreadRow], speed: impl Fn(&ThreadRow) -> f64) -> Option<usize> {
    let usable_rows = || rows.iter().filter(|row| usable(row, &speed));
    let best = usable_rows().map(&speed).reduce(f64::max)?;
    usable_rows().filter(|row| speed(row) >= best * (1.0 - TIE_TOLERANCE)).map(|row| row.threads).min()
}

/// Thread counts for `cpu`: measured when a benchmark of this CPU is at hand,
/// otherwise one thread per physical core for both phases.
///
/// Decode is limited by memory bandwidth, and a hyper-thread shares its core's
/// load units, so logical cores beyond the physical ones do not help it; they
/// would only compete with the rest of the desktop. Measurements from another
/// CPU (a copied home directory, a resized VM) are ignored.
pub fn choose_threads(cpu: &CpuInfo, measured: Option<&ThreadMeasurements>) -> ThreadChoice {
    if let Some(measured) = measured.filter(|measured| measured.matches(cpu)) {
        let choice = measured.pick();
        // Without a usable row, the core count of this CPU beats pick's guess.
        if choice.source == ThreadSource::Measured {
            return choice;
        }
    }
    let threads = cpu.physical_cores.max(1);
    ThreadChoice { decode: threads, prefill: threads, source: ThreadSource::Heuristic }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::policy::recorded::{cpu, laptop_measurements, row};

    // --- threads ---

    #[test]
    fn heuristic_threads_are_physical_cores() {
        let choice = choose_threads(&cpu("Ryzen", 8, 16), None);
        assert_eq!(choice, ThreadChoice { decode: 8, prefill: 8, source: ThreadSource::Heuristic });
    }

    #[test]
    fn this_epyc_gets_two_threads() {
        let choice = choose_threads(&cpu("AMD EPYC", 2, 2), None);
        assert_eq!((choice.decode, choice.prefill), (2, 2));
    }

    #[test]
    fn heuristic_keeps_at_least_one_thread() {
        let choice = choose_threads(&cpu("?", 0, 0), None);
        assert_eq!((choice.decode, choice.prefill), (1, 1));
    }

    #[test]
    fn measured_threads_pick_each_phase_separately() {
        let measured = laptop_measurements();
        let laptop = cpu("AMD Ryzen 7 7840HS w/ Radeon 780M Graphics", 8, 16);
        assert_eq!(
            choose_threads(&laptop, Some(&measured)),
            ThreadChoice { decode: 6, prefill: 16, source: ThreadSource::Measured }
        );
    }

    #[test]
    fn a_tie_within_one_percent_goes_to_fewer_threads() {
        let measured = ThreadMeasurements {
            rows: vec![row(4, 40.0, 20.0), row(8, 40.3, 20.15), row(2, 30.0, 15.0)],
            ..laptop_measurements()
        };
        let choice = measured.pick();
        assert_eq!((choice.decode, choice.prefill), (4, 4));
        // Just beyond 1% is no longer a tie.
        let measured = ThreadMeasurements { rows: vec![row(4, 40.0, 20.0), row(8, 40.5, 20.3)], ..measured };
        let choice = measured.pick();
        assert_eq!((choice.decode, choice.prefill), (8, 8));
    }

    #[test]
    fn measurements_from_another_cpu_are_ignored() {
        let measured = laptop_measurements();
        let other_model = cpu("Intel(R) Core(TM) i7-12700H", 14, 16);
        assert_eq!(choose_threads(&other_model, Some(&measured)).source, ThreadSource::Heuristic);
        // Same model name, resized VM.
        let resized = cpu("AMD Ryzen 7 7840HS w/ Radeon 780M Graphics", 4, 8);
        assert!(!measured.matches(&resized));
        assert_eq!(choose_threads(&resized, Some(&measured)).decode, 4);
    }

    #[test]
    fn unusable_rows_fall_back() {
        let laptop = cpu("AMD Ryzen 7 7840HS w/ Radeon 780M Graphics", 8, 16);
        let empty = ThreadMeasurements { rows: Vec::new(), ..laptop_measurements() };
        assert_eq!(choose_threads(&laptop, Some(&empty)).decode, 8);
        assert_eq!(empty.pick(), ThreadChoice { decode: 16, prefill: 16, source: ThreadSource::Heuristic });
        let broken = ThreadMeasurements {
            rows: vec![row(0, 50.0, 50.0), row(4, f64::NAN, f64::INFINITY), row(2, 10.0, 5.0)],
            ..laptop_measurements()
        };
        let choice = choose_threads(&laptop, Some(&broken));
        assert_eq!((choice.decode, choice.prefill), (2, 2));
        assert_eq!(choice.source, ThreadSource::Measured);
    }

    #[test]
    fn measurements_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache").join("threads.json");
        let measured = laptop_measurements();
        measured.save(&path).unwrap();
        assert_eq!(ThreadMeasurements::load(&path).unwrap(), Some(measured));
        // Only the destination remains: the staging file was renamed into place.
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("threads.json")]);
    }

    #[test]
    fn a_missing_file_is_no_measurements() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = ThreadMeasurements::load(&dir.path().join("absent.json")).unwrap();
        assert_eq!(loaded, None);
    }

    #[test]
    fn a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("threads.json");
        std::fs::write(&path, "{\"cpu_model\": ").unwrap();
        let error = ThreadMeasurements::load(&path).unwrap_err();
        assert!(matches!(error, HardwareError::Parse { .. }), "{error:?}");
        // A directory where the file should be is unreadable, not absent.
        let error = ThreadMeasurements::load(dir.path()).unwrap_err();
        assert!(matches!(error, HardwareError::Read { .. }), "{error:?}");
    }
}
