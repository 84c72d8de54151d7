//! The original Python stack's side of the comparison: the venv that
//! `bench/baseline/setup.sh` makes (llama-cpp-python built for this CPU) and
//! the script that does what the original companion did
//! (`bench/baseline/original.py`, built into this binary so that the
//! comparison runs from anywhere).

use super::process::json_of;
use std::path::{Path, PathBuf};
use std::process::Command;
use thiserror::Error;
use workly::error::Context as _;

/// The original stack's script, as committed.
const ORIGINAL_PY: &str = include_str!("../../../bench/baseline/original.py");

/// The Python stack is not there to compare against: bad input (exit 2),
/// since the user points at it or sets it up.
#[derive(Debug, Error)]
pub enum BaselineMissing {
    /// No Python executable at the path.
    #[error("no Python baseline at {}: run bench/baseline/setup.sh, or pass --python", .0.display())]
    NoPython(PathBuf),
    /// Python runs but cannot import llama-cpp-python.
    #[error("{} cannot import llama_cpp: run bench/baseline/setup.sh, or pass --python", .0.display())]
    NoLlamaCpp(PathBuf),
}

workly::classed!(BadInput: BaselineMissing);

/// The venv's Python and the script written next to the run's other files.
pub(super) struct Baseline {
    python: PathBuf,
    script: PathBuf,
    /// llama-cpp-python's version.
    pub(super) version: String,
}

/// Where `bench/baseline/setup.sh` puts the venv's Python: Workly's cache
/// directory (`WORKLY_CACHE_DIR`, else the user's), whatever the data
/// directory of the run.
fn default_python() -> Option<PathBuf> {
    let dirs = workly::config::Dirs::resolve(None).ok()?;
    Some(dirs.cache.join("baseline-venv").join("bin").join("python"))
}

impl Baseline {
    /// Finds the venv's Python (`python`, else setup.sh's venv), checks that
    /// it imports llama-cpp-python, and writes the script into `dir`.
    pub(super) fn locate(python: Option<&Path>, dir: &Path) -> workly::error::Result<Self> {
        let python = python.map(Path::to_path_buf).or_else(default_python).unwrap_or_else(|| PathBuf::from("python3"));
        if !python.is_file() {
            return Err(BaselineMissing::NoPython(python).into());
        }
        let output = Command::new(&python)
            .args(["-c", "import llama_cpp; print(llama_cpp.__version__)"])
            .output()
            .with_context(|| format!("cannot run {}", python.display()))?;
        if !output.status.success() {
            return Err(BaselineMissing::NoLlamaCpp(python).into());
        }
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let script = dir.join("original.py");
        std::fs::write(&script, ORIGINAL_PY).with_context(|| format!("cannot write {}", script.display()))?;
        Ok(Self { python, script, version })
    }

    /// `original.py` with `args`, its output unbuffered (the cold start reads
    /// the first streamed byte).
    pub(super) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.python);
        command.arg(&self.script).args(args).env("PYTHONUNBUFFERED", "1");
        command
    }

    /// The venv's Python running llama-cpp-python's OpenAI server with `args`.
    pub(super) fn server(&self, args: &[String]) -> Command {
        let mut command = Command::new(&self.python);
        command.args(["-m", "llama_cpp.server"]).args(args);
        command
    }

    /// The thread count the original picked by itself on this machine.
    pub(super) fn own_threads(&self) -> workly::error::Result<usize> {
        #[derive(serde::Deserialize)]
        struct Threads {
            threads: usize,
        }
        Ok(json_of::<Threads>(&mut self.command(&["threads"]), "original.py threads")?.threads)
    }
}
