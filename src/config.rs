//! What settings resolve to, and where Workly keeps its files: the
//! environment variables Workly reads ([`env`]), the directories ([`Dirs`]),
//! a persona as a file describes it, the reading of TOML files, and an
//! engine configuration with the facts it was chosen from ([`Prepared`]).
//!
//! The resolution itself (flags, then environment, then the config file,
//! then the hardware policy) is the command line's (`cli::settings`); nothing
//! else in Workly reads the environment for settings.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// Environment variables Workly reads, as documented constants.
pub mod env {
    /// Overrides the data directory (models, conversations).
    pub const DATA_DIR: &str = "WORKLY_DATA_DIR";
    /// Overrides the cache directory (thread measurements).
    pub const CACHE_DIR: &str = "WORKLY_CACHE_DIR";
    /// Overrides the config file path.
    pub const CONFIG: &str = "WORKLY_CONFIG";
    /// The model to use (path or URL) when `--model` is absent.
    pub const MODEL: &str = "WORKLY_MODEL";
    /// A remote OpenAI-compatible back-end's URL when `--backend` is absent.
    pub const BACKEND: &str = "WORKLY_BACKEND";
    /// The remote back-end's key when `--backend-key` is absent.
    pub const BACKEND_KEY: &str = "WORKLY_BACKEND_KEY";
}

/// Why settings could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file exists but cannot be read.
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for Workly.
    #[error("invalid config file `{path}`: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, on one line.
        message: String,
    },
    /// Settings that cannot go together.
    #[error("{0}")]
    Conflict(String),
    /// A persona setting that cannot make a persona.
    #[error("invalid persona: {0}")]
    Persona(String),
    /// No home directory to put Workly's files in.
    #[error("cannot find a home directory: set {} and {}", env::DATA_DIR, env::CACHE_DIR)]
    NoHome,
}

crate::classed!(BadInput: ConfigError);

/// The `[voice]` table of the config file: how Kira speaks, unless a flag
/// or the page says otherwise (every key may be left out).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConfig {
    /// The voice: heart, michael, emma or siwis (used for its own language).
    pub voice: Option<String>,
    /// How fast she speaks, 0.5 to 2.0.
    pub speed: Option<f32>,
    /// How loud, 0 to 1.
    pub volume: Option<f32>,
}

/// The `[memory]` table of the config file: whether Kira learns facts about
/// the person and recalls them (on unless turned off).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    /// Whether long-term memory is on.
    #[serde(default = "on")]
    pub enabled: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

fn on() -> bool {
    true
}

/// A persona as a config file describes it (the `[persona]` table of the config
/// file, or a whole `--persona FILE`); every field falls back to Kira's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonaConfig {
    /// The assistant's name.
    pub name: Option<String>,
    /// Who the assistant is, completing "You are NAME, ...".
    pub personality: Option<String>,
    /// How the assistant speaks: language, length, tone.
    pub style: Option<String>,
    /// Ask the model to open each sentence with an emotion tag (default true).
    pub emotion_tags: Option<bool>,
    /// A whole system prompt, replacing `personality` and `style`.
    pub system_prompt: Option<String>,
    /// How the persona's words are laid out in the prompt (default: `rules`).
    pub layout: Option<PersonaLayout>,
    /// List the emotion tags in the system prompt (default true); without the
    /// list, only an example shows them.
    pub list_tags: Option<bool>,
}

/// How a persona's words are laid out in the prompt; `workly-bench persona`
/// compares them (docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonaLayout {
    /// Everything in the system prompt: who she is, how she speaks, the
    /// emotion tags, and an example reply in a line.
    #[default]
    Rules,
    /// Who she is, how she speaks and the emotion tags in the system prompt,
    /// and an example exchange as the conversation's first turns, its reply
    /// showing the tags in use.
    Example,
}

impl PersonaConfig {
    /// Reads a persona file (`--persona FILE`); unlike the config file, it
    /// must exist.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        parse_toml(path, &text)
    }
}

/// Parses `text` (read from `path`) as TOML, with the parser's message on one
/// line.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| toml_error(path, "", &error))
}

/// A TOML error in the file at `path` as a [`ConfigError`], its message on one
/// line after `prefix` (the table it is in, if not the top).
pub fn toml_error(path: &Path, prefix: &str, error: &toml::de::Error) -> ConfigError {
    ConfigError::Parse {
        path: path.display().to_string(),
        message: format!("{prefix}{}", error.message().replace('\n', " ")),
    }
}

/// An engine configuration with the facts it was chosen from.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Ready for [`crate::llm::Engine::load`].
    pub engine: crate::llm::EngineConfig,
    /// The machine.
    pub hardware: crate::hardware::Hardware,
    /// The chosen settings and where each came from.
    pub tuning: crate::hardware::Tuning,
}

/// Where Workly keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dirs {
    /// Models and conversations.
    pub data: PathBuf,
    /// Measurements that can be recomputed (thread benchmark results).
    pub cache: PathBuf,
    /// The config file.
    pub config_file: PathBuf,
}

impl Dirs {
    /// Resolves the directories: `--data-dir` (or its variable) wins, then the
    /// platform's user directories.
    pub fn resolve(data_dir: Option<&Path>) -> Result<Self, ConfigError> {
        let project = directories::ProjectDirs::from("", "", "workly");
        let data = match (data_dir, &project) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Some(project)) => project.data_dir().to_path_buf(),
            (None, None) => return Err(ConfigError::NoHome),
        };
        let cache = match (std::env::var_os(env::CACHE_DIR), &project) {
            (Some(dir), _) => PathBuf::from(dir),
            // A custom data directory keeps its measurements beside it, so test
            // runs with a temporary directory leave the user's cache alone.
            (None, _) if data_dir.is_some() => data.join("cache"),
            (None, Some(project)) => project.cache_dir().to_path_buf(),
            (None, None) => return Err(ConfigError::NoHome),
        };
        let config_file = match (std::env::var_os(env::CONFIG), &project) {
            (Some(file), _) => PathBuf::from(file),
            (None, _) if data_dir.is_some() => data.join("config.toml"),
            (None, Some(project)) => project.config_dir().join("config.toml"),
            (None, None) => return Err(ConfigError::NoHome),
        };
        Ok(Self { data, cache, config_file })
    }

    /// Where models live (the default model is fetched here by the set-up).
    pub fn models(&self) -> PathBuf {
        self.data.join("models")
    }

    /// The conversation database.
    pub fn database(&self) -> PathBuf {
        self.data.join(crate::store::FILE_NAME)
    }

    /// Saved persona KV states, loaded at start instead of a prefill.
    pub fn prompt_cache(&self) -> PathBuf {
        self.cache.join("prompts")
    }

    /// The saved result of `workly bench threads`.
    pub fn thread_measurements(&self) -> PathBuf {
        self.cache.join("threads.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_persona_file_must_exist_and_hold_only_persona_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mia.toml");
        std::fs::write(&file, "name = \"Mia\"\nstyle = \"Short.\"\n").unwrap();
        assert_eq!(PersonaConfig::load(&file).unwrap().style.as_deref(), Some("Short."));
        std::fs::write(&file, "layout = \"example\"\n").unwrap();
        assert_eq!(PersonaConfig::load(&file).unwrap().layout, Some(PersonaLayout::Example));
        std::fs::write(&file, "layout = \"poem\"\n").unwrap();
        assert!(PersonaConfig::load(&file).unwrap_err().to_string().contains("poem"));
        std::fs::write(&file, "nom = \"Mia\"\n").unwrap();
        assert!(PersonaConfig::load(&file).unwrap_err().to_string().contains("nom"));
        let missing = PersonaConfig::load(&dir.path().join("none.toml")).unwrap_err().to_string();
        assert!(missing.contains("none.toml"), "{missing}");
    }

    #[test]
    fn data_dir_flag_keeps_everything_beside_it() {
        let dirs = Dirs::resolve(Some(Path::new("/tmp/w"))).unwrap();
        assert_eq!(dirs.models(), Path::new("/tmp/w/models"));
        if std::env::var_os(env::CACHE_DIR).is_none() {
            assert_eq!(dirs.thread_measurements(), Path::new("/tmp/w/cache/threads.json"));
        }
    }
}
