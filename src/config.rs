//! Settings resolved once, with a written precedence: command line, then
//! environment, then the config file, then defaults.
//!
//! Command-line flags and environment variables are merged by clap (each flag
//! names its variable, listed in [`env`]); this module adds the TOML config file
//! underneath and the directories Workly reads and writes. Nothing else in
//! Workly reads the environment for settings.

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

/// Engine settings a config file may set; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Model path or URL.
    pub model: Option<String>,
    /// Context size in tokens.
    pub context_size: Option<u32>,
    /// Threads for both decode and prefill.
    pub threads: Option<usize>,
    /// Layers offloaded to the GPU.
    pub gpu_layers: Option<u32>,
    /// How the model is spread over several GPUs (`none`, `layer`, `row`).
    pub split_mode: Option<crate::hardware::SplitMode>,
    /// GPUs to use, by the index `workly doctor` shows.
    pub devices: Option<Vec<u32>>,
    /// The GPU of split mode `none`.
    pub main_gpu: Option<u32>,
    /// Share of the layers per GPU used (planned by `workly doctor` only; see `--tensor-split`).
    pub tensor_split: Option<Vec<f64>>,
    /// Prefill batch size.
    pub batch_size: Option<u32>,
    /// Chat template override (file, inline Jinja or `chatml`).
    pub chat_template: Option<String>,
    /// How the KV cache stores keys and values (`f16`, `q8_0`).
    pub kv_cache_type: Option<crate::llm::KvCacheType>,
    /// Flash attention (`auto`, `on`, `off`).
    pub flash_attention: Option<crate::llm::FlashAttention>,
    /// Which quantization of the model beside it to run (`fast`, `quality`).
    pub mode: Option<crate::model::variants::ModelMode>,
    /// Who the assistant is (the `[persona]` table); Kira when absent.
    pub persona: Option<PersonaConfig>,
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
/// line; what [`FileConfig::load`] and [`PersonaConfig::load`] do once the file
/// is read.
pub fn parse_toml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| ConfigError::Parse {
        path: path.display().to_string(),
        message: error.message().replace('\n', " "),
    })
}

impl FileConfig {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path: path.display().to_string(), source }),
        };
        parse_toml(path, &text)
    }
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
    fn missing_config_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(FileConfig::load(&dir.path().join("none.toml")).unwrap(), FileConfig::default());
    }

    #[test]
    fn config_file_values_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "context_size = 2048\nthreads = 3\n").unwrap();
        let config = FileConfig::load(&path).unwrap();
        assert_eq!(config.context_size, Some(2048));
        assert_eq!(config.threads, Some(3));

        std::fs::write(&path, "split_mode = \"row\"\ndevices = [1, 0]\nmain_gpu = 1\ntensor_split = [3, 1.5]\n")
            .unwrap();
        let config = FileConfig::load(&path).unwrap();
        assert_eq!(config.split_mode, Some(crate::hardware::SplitMode::Row));
        assert_eq!(config.devices, Some(vec![1, 0]));
        assert_eq!(config.main_gpu, Some(1));
        assert_eq!(config.tensor_split, Some(vec![3.0, 1.5]));

        std::fs::write(&path, "context_sise = 2048\n").unwrap();
        let error = FileConfig::load(&path).unwrap_err().to_string();
        assert!(error.starts_with("invalid config file"), "{error}");
        assert!(error.contains("context_sise"), "{error}");
        assert!(!error.contains('\n'));
    }

    #[test]
    fn persona_table_and_persona_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[persona]\nname = \"Mia\"\nemotion_tags = false\n").unwrap();
        let persona = FileConfig::load(&path).unwrap().persona.unwrap();
        assert_eq!(persona.name.as_deref(), Some("Mia"));
        assert_eq!(persona.emotion_tags, Some(false));

        let file = dir.path().join("mia.toml");
        std::fs::write(&file, "name = \"Mia\"\nstyle = \"Short.\"\n").unwrap();
        assert_eq!(PersonaConfig::load(&file).unwrap().style.as_deref(), Some("Short."));
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
