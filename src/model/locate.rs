//! Turning what the user asked for (`--model`) into a model file on disk.
//!
//! It owns the rules: nothing means the default model in the models
//! directory, a known model's short name (`smollm2`) its file there, a URL a
//! download into that directory (once), anything else a path.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;

use super::gguf::GgufError;
use super::info::ModelInfo;
use super::pull::{PullError, PullOptions, file_name_from_url, pull};

/// The model used when none is given; `scripts/setup.sh` downloads it.
pub const DEFAULT_MODEL_FILE: &str = super::known::DEFAULT.file;

/// Why no model file could be found; each message is one line.
#[derive(Debug, Error)]
pub enum LocateError {
    /// No model was asked for and the default one is not there.
    #[error(
        "the default model {} is missing: run scripts/setup.sh to download it, or pass a model path or URL",
        .path.display()
    )]
    DefaultMissing {
        /// Where the default model should be.
        path: PathBuf,
    },
    /// A known model was asked for by name and is not downloaded.
    #[error(
        "model {name} is not downloaded ({}): run scripts/setup.sh to download it, or pass a model path or URL",
        .path.display()
    )]
    KnownMissing {
        /// Its short name.
        name: &'static str,
        /// Where its file should be.
        path: PathBuf,
    },
    /// The model path given does not exist.
    #[error("model file {} not found", .path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The model path given is not a regular file.
    #[error("model path {} is not a file", .path.display())]
    NotAFile {
        /// The path as given.
        path: PathBuf,
    },
    /// The models directory could not be created for a download.
    #[error("cannot create the models directory {}: {source}", .path.display())]
    ModelsDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Downloading the model failed.
    #[error(transparent)]
    Pull(#[from] PullError),
}

impl crate::error::Classify for LocateError {
    /// Bad input, but for a download that failed as a download does.
    fn class(&self) -> crate::error::Class {
        match self {
            Self::Pull(error) => crate::error::Classify::class(error),
            _ => crate::error::Class::BadInput,
        }
    }
}

/// Finds the model file for `model`:
///
/// - `None`: [`DEFAULT_MODEL_FILE`] in `models_dir`;
/// - a known model's short name (see [`super::known`]), unless a file of
///   that name is in the working directory: its file in `models_dir`;
/// - an `http://` or `https://` URL: the file of that name in `models_dir`,
///   downloaded first (with a progress bar) if it is not there yet;
/// - anything else: a path that must exist. A bare file name that does not
///   exist relative to the working directory is also looked up in `models_dir`.
///
/// The file is not validated here; see [`validate`].
pub fn resolve(model: Option<&str>, models_dir: &Path) -> Result<PathBuf, LocateError> {
    let Some(model) = model else {
        let path = models_dir.join(DEFAULT_MODEL_FILE);
        return if path.is_file() { Ok(path) } else { Err(LocateError::DefaultMissing { path }) };
    };
    if model.starts_with("http://") || model.starts_with("https://") {
        let path = models_dir.join(file_name_from_url(model)?);
        if path.is_file() {
            return Ok(path);
        }
        fs::create_dir_all(models_dir)
            .map_err(|source| LocateError::ModelsDir { path: models_dir.to_path_buf(), source })?;
        let options = PullOptions { sha256: None, progress: true };
        return Ok(pull(model, &path, &options)?);
    }
    let path = PathBuf::from(model);
    let short_name = super::known::named(model).filter(|known| known.name.eq_ignore_ascii_case(model));
    if let Some(known) = short_name
        && !path.exists()
    {
        let path = models_dir.join(known.file);
        return if path.is_file() { Ok(path) } else { Err(LocateError::KnownMissing { name: known.name, path }) };
    }
    if !path.exists() && is_bare_file_name(&path) {
        let in_models_dir = models_dir.join(&path);
        if in_models_dir.is_file() {
            return Ok(in_models_dir);
        }
    }
    match fs::metadata(&path) {
        Ok(metadata) if metadata.is_file() => Ok(path),
        Ok(_) => Err(LocateError::NotAFile { path }),
        Err(_) => Err(LocateError::NotFound { path }),
    }
}

/// Reads and validates the model at `path`, describing it; a convenience for
/// callers that must refuse a corrupt file before llama.cpp opens it.
pub fn validate(path: &Path) -> Result<ModelInfo, GgufError> {
    ModelInfo::read(path)
}

/// Whether `path` is a single normal component, like `model.gguf`.
fn is_bare_file_name(path: &Path) -> bool {
    let mut components = path.components();
    matches!((components.next(), components.next()), (Some(Component::Normal(_)), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_model_is_looked_up_in_the_models_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = resolve(None, dir.path()).expect_err("missing default");
        assert!(matches!(error, LocateError::DefaultMissing { .. }));
        assert!(error.to_string().contains("scripts/setup.sh"), "{error}");

        let default = dir.path().join(DEFAULT_MODEL_FILE);
        fs::write(&default, b"GGUF").expect("write");
        assert_eq!(resolve(None, dir.path()).expect("default"), default);
    }

    #[test]
    fn known_models_are_found_by_their_short_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = resolve(Some("SmolLM2"), dir.path()).expect_err("not downloaded");
        assert!(matches!(error, LocateError::KnownMissing { name: "smollm2", .. }), "{error}");
        assert!(error.to_string().contains("scripts/setup.sh"), "{error}");
        let file = dir.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
        fs::write(&file, b"GGUF").expect("write");
        assert_eq!(resolve(Some("smollm2"), dir.path()).expect("downloaded"), file);
    }

    #[test]
    fn paths_must_exist_and_be_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("x.gguf");
        fs::write(&file, b"GGUF").expect("write");
        let file_text = file.to_str().expect("utf-8 temp path");
        assert_eq!(resolve(Some(file_text), dir.path()).expect("path"), file);

        let missing = dir.path().join("missing.gguf");
        let error = resolve(missing.to_str(), dir.path()).expect_err("missing");
        assert!(matches!(error, LocateError::NotFound { .. }), "{error}");

        let error = resolve(dir.path().to_str(), dir.path()).expect_err("directory");
        assert!(matches!(error, LocateError::NotAFile { .. }), "{error}");
    }

    #[test]
    fn bare_names_fall_back_to_the_models_dir() {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = "workly-locate-test-only-in-models-dir.gguf";
        fs::write(dir.path().join(name), b"GGUF").expect("write");
        assert_eq!(resolve(Some(name), dir.path()).expect("bare name"), dir.path().join(name));
        assert!(is_bare_file_name(Path::new("a.gguf")));
        assert!(!is_bare_file_name(Path::new("./a.gguf")));
        assert!(!is_bare_file_name(Path::new("d/a.gguf")));
    }

    #[test]
    fn urls_already_downloaded_are_not_fetched_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let present = dir.path().join("here.gguf");
        fs::write(&present, b"GGUF").expect("write");
        // Port 9 (discard) on localhost would fail if anything were fetched.
        let url = "http://127.0.0.1:9/models/here.gguf?download=true";
        assert_eq!(resolve(Some(url), dir.path()).expect("cached"), present);

        let error = resolve(Some("https://example.com/"), dir.path()).expect_err("no name");
        assert!(matches!(error, LocateError::Pull(PullError::BadUrl { .. })), "{error}");
    }
}
