//! The engine's settings: one struct, [`EngineSettings`], that the command
//! line and the config file both fill. Flags (with the environment variables
//! clap reads for them) win over the config file; the two are merged once, by
//! [`EngineSettings::over`], and what is still unset after that is picked by
//! the hardware policy ([`EngineSettings::prepare`]).

use super::{VoiceArgs, choice};
use crate::chat::Persona;
use crate::choice::Choice;
use crate::config::{self, ConfigError, Dirs, MemoryConfig, PersonaConfig, Prepared, VoiceConfig};
use crate::error::Context as _;
use crate::hardware::{
    GpuBackend, GpuSelection, Hardware, ModelFootprint, SplitMode, ThreadMeasurements, ThreadSource, Tuning,
    TuningRequest, place_gpu_layers,
};
use crate::llm::remote::{RemoteConfig, RemoteServer};
use crate::llm::{EngineConfig, FlashAttention, KvCacheType, Message};
use crate::model::{self, ModelInfo, ModelMode};
use crate::voice::speak::VoiceSettings;
use clap::Args;
use serde::Deserialize;
use std::path::Path;

/// What chooses and tunes the engine, as flags and as config file keys (the
/// same names, `-` in a flag for `_` in a key; `--flash-attn` is the key
/// `flash_attention`). Every field is optional: unset, the config file or the
/// hardware policy decides.
#[derive(Debug, Clone, Default, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// GGUF model: a path, an http(s) URL or a known name such as `smollm2` (default:
    /// Qwen2.5-Coder-0.5B-Instruct; `workly model recommend` says which suits this machine).
    #[arg(long, short, env = config::env::MODEL, value_name = "PATH|URL")]
    pub model: Option<String>,
    /// Context size in tokens (default: picked from the model and free memory).
    #[arg(long, value_parser = clap::value_parser!(u32).range(64..))]
    pub context_size: Option<u32>,
    /// Threads for decode and prefill (default: measured or physical cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// Layers to offload to the GPU; 999 offloads all (default: as many as fit in the
    /// GPUs' free memory, with CUDA and Vulkan alike).
    #[arg(long)]
    pub gpu_layers: Option<u32>,
    /// How the model is spread over several GPUs (default: layer).
    #[arg(long, value_parser = choice::<SplitMode>())]
    pub split_mode: Option<SplitMode>,
    /// GPUs to use, by the index `workly doctor` shows, e.g. 0,1 (default: all).
    #[arg(long, value_delimiter = ',', value_name = "INDEX,...")]
    pub devices: Option<Vec<u32>>,
    /// The GPU of --split-mode none (default: the first one used).
    #[arg(long, value_name = "INDEX")]
    pub main_gpu: Option<u32>,
    /// Share of the layers per GPU used, e.g. 3,1 (default: by free VRAM). A CUDA
    /// build takes it in `workly doctor` only: this llama.cpp binding cannot pass it on yet.
    #[arg(long, value_delimiter = ',', value_parser = proportion, value_name = "N,...")]
    pub tensor_split: Option<Vec<f64>>,
    /// Prefill batch size in tokens.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Option<u32>,
    /// Chat template: a Jinja file, inline Jinja, or a built-in name: chatml, gemma
    /// (default: the model's own).
    #[arg(long, value_name = "FILE|JINJA|NAME")]
    pub chat_template: Option<String>,
    /// KV cache cells: f16, or q8_0 for half the memory (default: f16).
    #[arg(long, value_parser = choice::<KvCacheType>())]
    pub kv_cache_type: Option<KvCacheType>,
    /// llama.cpp's flash-attention kernels (default: auto).
    #[arg(long = "flash-attn", value_parser = choice::<FlashAttention>())]
    pub flash_attention: Option<FlashAttention>,
    /// Among quantizations of the model in its folder (`X.Q4_0.gguf`, `X.Q8_0.gguf`...):
    /// fast runs the smallest, quality the largest (default: the model as given).
    #[arg(long, value_parser = choice::<ModelMode>())]
    pub mode: Option<ModelMode>,
    /// A remote OpenAI-compatible engine that answers instead of a local model, e.g.
    /// http://gpu-box:8080/v1 (llama-server, vLLM, Ollama, LM Studio...).
    #[arg(long, env = config::env::BACKEND, value_name = "URL")]
    pub backend: Option<String>,
    /// The key the remote back-end expects (sent as a bearer token).
    #[arg(long, env = config::env::BACKEND_KEY, hide_env_values = true, value_name = "KEY")]
    pub backend_key: Option<String>,
    /// The remote back-end's model (default: the first it lists).
    #[arg(long, value_name = "NAME")]
    pub backend_model: Option<String>,
    /// Seconds to wait for the remote back-end's next bytes before giving up (default: 120).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "SECONDS")]
    pub backend_timeout: Option<u64>,
    /// llama.cpp RPC workers (`workly worker` on other machines) to spread the model's layers
    /// over, by their free memory; trusted networks only (the protocol has no authentication).
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT,...")]
    pub rpc: Option<Vec<String>>,
}

/// A finite number of 0 or more.
fn proportion(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        Ok(_) => Err("must be a proportion of 0 or more".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

impl EngineSettings {
    /// These settings where set, `lower`'s elsewhere: the one place where
    /// flags and the config file meet. The destructuring is exhaustive, so a
    /// new setting cannot be left out of the merge.
    pub fn over(self, lower: Self) -> Self {
        let Self {
            model,
            context_size,
            threads,
            gpu_layers,
            split_mode,
            devices,
            main_gpu,
            tensor_split,
            batch_size,
            chat_template,
            kv_cache_type,
            flash_attention,
            mode,
            backend,
            backend_key,
            backend_model,
            backend_timeout,
            rpc,
        } = self;
        Self {
            model: model.or(lower.model),
            context_size: context_size.or(lower.context_size),
            threads: threads.or(lower.threads),
            gpu_layers: gpu_layers.or(lower.gpu_layers),
            split_mode: split_mode.or(lower.split_mode),
            devices: devices.or(lower.devices),
            main_gpu: main_gpu.or(lower.main_gpu),
            tensor_split: tensor_split.or(lower.tensor_split),
            batch_size: batch_size.or(lower.batch_size),
            chat_template: chat_template.or(lower.chat_template),
            kv_cache_type: kv_cache_type.or(lower.kv_cache_type),
            flash_attention: flash_attention.or(lower.flash_attention),
            mode: mode.or(lower.mode),
            backend: backend.or(lower.backend),
            backend_key: backend_key.or(lower.backend_key),
            backend_model: backend_model.or(lower.backend_model),
            backend_timeout: backend_timeout.or(lower.backend_timeout),
            rpc: rpc.or(lower.rpc),
        }
    }

    /// The flags that set these tuning choices again, for a child `workly`
    /// (the model is left out: the caller passes the file it resolved).
    pub fn tuning_flags(&self) -> Vec<String> {
        fn name(value: &impl Choice) -> String {
            value.name().to_owned()
        }
        fn join(values: &[impl ToString]) -> String {
            values.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        }
        let mut flags = Vec::new();
        let mut flag = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                flags.extend([flag.to_owned(), value]);
            }
        };
        flag("--context-size", self.context_size.map(|value| value.to_string()));
        flag("--threads", self.threads.map(|value| value.to_string()));
        flag("--gpu-layers", self.gpu_layers.map(|value| value.to_string()));
        flag("--split-mode", self.split_mode.as_ref().map(name));
        flag("--devices", self.devices.as_deref().map(join));
        flag("--main-gpu", self.main_gpu.map(|value| value.to_string()));
        flag("--tensor-split", self.tensor_split.as_deref().map(join));
        flag("--batch-size", self.batch_size.map(|value| value.to_string()));
        flag("--chat-template", self.chat_template.clone());
        flag("--kv-cache-type", self.kv_cache_type.as_ref().map(name));
        flag("--flash-attn", self.flash_attention.as_ref().map(name));
        flag("--rpc", self.rpc.as_deref().map(join));
        flags
    }

    /// The remote back-end these flags (or the config file) name, probed:
    /// `None` when replies come from a local model.
    pub fn remote(&self, context: &Context) -> crate::error::Result<Option<RemoteServer>> {
        if self.model.is_some() && self.backend.is_some() {
            return Err(ConfigError::Conflict(
                "--model and --backend both given: a remote back-end serves its own models (name one with --backend-model)"
                    .to_owned(),
            )
            .into());
        }
        let settings = context.settings(self);
        let Some(url) = settings.backend.as_deref() else { return Ok(None) };
        let mut config = RemoteConfig::new(url)?;
        config.key = settings.backend_key.filter(|key| !key.is_empty());
        config.model = settings.backend_model;
        config.context_size = settings.context_size;
        if let Some(seconds) = settings.backend_timeout {
            config.timeout = std::time::Duration::from_secs(seconds);
        }
        Ok(Some(RemoteServer::probe(config)?))
    }

    /// The model file these flags (or the config file, or the default) name,
    /// validated and described; with `--mode`, the quantization of it that the
    /// mode picks, said in one line on stderr.
    pub fn model_info(&self, context: &Context) -> crate::error::Result<ModelInfo> {
        model_of(&context.settings(self), context)
    }

    /// Resolves the model and tunes the engine for this machine: these flags
    /// over the config file, then what the hardware policy picks.
    ///
    /// The GPU selection is checked against the detected GPUs (a bad one is
    /// bad input); without a GPU backend it is accepted with one warning, as
    /// `--gpu-layers` is, since the same flags may serve a CUDA build later.
    pub fn prepare(&self, context: &Context, warmup: Vec<Vec<Message>>) -> crate::error::Result<Prepared> {
        let settings = context.settings(self);
        let model = model_of(&settings, context)?;
        let hardware = Hardware::detect(context.llama_logs);
        let gpus = GpuSelection {
            split_mode: settings.split_mode.unwrap_or_default(),
            devices: settings.devices.unwrap_or_default(),
            main_gpu: settings.main_gpu,
            tensor_split: settings.tensor_split.unwrap_or_default(),
        };
        gpus.check(&hardware.gpus)?;
        let rpc = settings.rpc.clone().unwrap_or_default();
        if GpuBackend::BUILT == GpuBackend::Cpu
            && rpc.is_empty()
            && (gpus.is_set() || settings.gpu_layers.is_some_and(|layers| layers > 0))
        {
            warn_no_gpu_backend();
        }
        let measured = match ThreadMeasurements::load(&context.dirs.thread_measurements()) {
            Ok(measured) => measured.filter(|m| m.matches(&hardware.cpu)),
            Err(error) => {
                tracing::warn!("ignoring saved thread measurements: {error}");
                None
            }
        };
        let request =
            TuningRequest { context_size: settings.context_size, gpus: gpus.clone(), backend: GpuBackend::BUILT };
        let footprint = footprint(&model);
        let mut tuning = Tuning::choose(&hardware, &footprint, measured.as_ref(), &request);
        if let Some(threads) = settings.threads {
            tuning.threads_decode = usize::from(threads);
            tuning.threads_prefill = usize::from(threads);
            tuning.thread_source = ThreadSource::Configured;
        }
        if let Some(layers) = settings.gpu_layers {
            tuning.gpu_layers = layers;
            tuning.gpu_reason = "set by --gpu-layers or the config file".to_owned();
            if GpuBackend::BUILT != GpuBackend::Cpu {
                tuning.gpu_split = place_gpu_layers(&footprint, &hardware.gpus, &gpus, tuning.context_size, layers);
            }
        }
        if !rpc.is_empty() && settings.gpu_layers.is_none() {
            // Every layer goes to the workers, as GPU layers go to GPUs.
            tuning.gpu_layers = model.layers + 1;
            tuning.gpu_reason = format!("every layer, spread over {} RPC workers by their free memory", rpc.len());
        }
        if let Some(batch) = settings.batch_size {
            tuning.batch_size = batch;
        }
        let kv_cache_type = settings.kv_cache_type.unwrap_or_default();
        let mut flash_attention = settings.flash_attention.unwrap_or_default();
        if kv_cache_type != KvCacheType::F16 {
            // llama.cpp stores a quantized V cache only with flash attention.
            flash_attention = match flash_attention {
                FlashAttention::Off => {
                    return Err(ConfigError::Conflict(
                        "a q8_0 KV cache needs flash attention: drop --flash-attn off or use --kv-cache-type f16"
                            .to_owned(),
                    )
                    .into());
                }
                _ => FlashAttention::On,
            };
        }
        let engine = EngineConfig {
            model,
            threads_decode: tuning.threads_decode,
            threads_prefill: tuning.threads_prefill,
            gpu_layers: tuning.gpu_layers,
            gpus,
            context_size: tuning.context_size,
            batch_size: tuning.batch_size,
            chat_template: settings.chat_template,
            warmup,
            llama_logs: context.llama_logs,
            prompt_cache: Some(context.dirs.prompt_cache()),
            kv_cache_type,
            flash_attention,
            rpc,
        };
        Ok(Prepared { engine, hardware, tuning })
    }
}

/// The model merged `settings` name (or the default), validated and
/// described; with a mode, the quantization of it that the mode picks, said
/// in one line on stderr.
fn model_of(settings: &EngineSettings, context: &Context) -> crate::error::Result<ModelInfo> {
    let path = model::locate::resolve(settings.model.as_deref(), &context.dirs.models())?;
    let info = ModelInfo::read(&path)?;
    let Some(mode) = settings.mode else { return Ok(info) };
    let choice = model::variants::choose(info, mode);
    eprintln!("workly: {}", choice.note());
    Ok(choice.model)
}

/// Says once per process that the GPU flags do nothing in this build.
fn warn_no_gpu_backend() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::warn!(
            "--gpu-layers, --split-mode, --devices, --main-gpu and --tensor-split have no effect: \
             this build has no GPU backend (rebuild with --features cuda or --features vulkan)"
        );
    });
}

/// What the hardware policies need to know about a model.
pub fn footprint(model: &ModelInfo) -> ModelFootprint {
    ModelFootprint {
        layers: model.layers,
        layer_bytes: model.layer_bytes.clone(),
        output_bytes: model.output_bytes,
        kv_bytes_per_token: model.kv_bytes_per_token(),
        context_length_train: model.context_length,
    }
}

/// What a config file holds: the engine's settings at its top level, in its
/// `[persona]` table who the assistant is, in its `[memory]` table whether
/// she remembers, in its `[voice]` table how she speaks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileConfig {
    /// The engine's settings.
    pub engine: EngineSettings,
    /// Who the assistant is; Kira when absent.
    pub persona: Option<PersonaConfig>,
    /// Long-term memory's settings.
    pub memory: MemoryConfig,
    /// Kira's voice.
    pub voice: VoiceConfig,
}

impl FileConfig {
    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path: path.display().to_string(), source }),
        };
        Self::parse(path, &text)
    }

    /// Reads `text`, the contents of the config file at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        // The persona table is taken out first, so that every other key is
        // checked against the engine's settings (serde cannot flatten one
        // struct into another and still refuse unknown keys).
        let mut table: toml::Table = config::parse_toml(path, text)?;
        let persona = table
            .remove("persona")
            .map(|persona| persona.try_into().map_err(|error| config::toml_error(path, "[persona]: ", &error)))
            .transpose()?;
        let memory = table
            .remove("memory")
            .map(|memory| memory.try_into().map_err(|error| config::toml_error(path, "[memory]: ", &error)))
            .transpose()?
            .unwrap_or_default();
        let voice = table
            .remove("voice")
            .map(|voice| voice.try_into().map_err(|error| config::toml_error(path, "[voice]: ", &error)))
            .transpose()?
            .unwrap_or_default();
        let engine = table.try_into().map_err(|error| config::toml_error(path, "", &error))?;
        Ok(Self { engine, persona, memory, voice })
    }
}

/// What every subcommand shares: directories, the config file, verbosity.
#[derive(Debug, Clone)]
pub struct Context {
    /// Workly's directories.
    pub dirs: Dirs,
    /// The config file's settings.
    pub file: FileConfig,
    /// Whether llama.cpp's log goes to tracing.
    pub llama_logs: bool,
}

impl Context {
    /// Resolves directories (`--data-dir` or the platform's) and reads the
    /// config file.
    pub fn resolve(data_dir: Option<&Path>, llama_logs: bool) -> crate::error::Result<Self> {
        let dirs = Dirs::resolve(data_dir)?;
        let file = FileConfig::load(&dirs.config_file)?;
        Ok(Self { dirs, file, llama_logs })
    }

    /// `flags` over the config file's engine settings.
    pub fn settings(&self, flags: &EngineSettings) -> EngineSettings {
        flags.clone().over(self.file.engine.clone())
    }

    /// Whether long-term memory is on: not when `--no-memory` says so
    /// (`no_memory`), else as the config file says.
    pub fn memory(&self, no_memory: bool) -> bool {
        !no_memory && self.file.memory.enabled
    }

    /// How Kira speaks: the flags, else the config file's `[voice]`, else
    /// her own voice in the language of the words, at normal speed and
    /// full volume. A bad value is refused, saying where it came from.
    pub fn voice(&self, flags: &VoiceArgs) -> crate::error::Result<VoiceSettings> {
        let file = &self.file.voice;
        let from_file =
            VoiceSettings::new(file.voice.as_deref(), file.speed.unwrap_or(1.0), file.volume.unwrap_or(1.0))
                .with_context(|| format!("config file `{}`, [voice]", self.dirs.config_file.display()))?;
        let voice = flags.voice.as_deref().or(file.voice.as_deref());
        let speed = flags.speed.unwrap_or(from_file.speed);
        let volume = flags.volume.unwrap_or(from_file.volume);
        Ok(VoiceSettings::new(voice, speed, volume)?)
    }

    /// The persona: `--persona FILE`, else the config file's `[persona]`, else Kira.
    pub fn persona(&self, file: Option<&Path>) -> crate::error::Result<Persona> {
        match file {
            Some(path) => {
                let config = PersonaConfig::load(path)?;
                Persona::from_config(&config).with_context(|| format!("persona file `{}`", path.display()))
            }
            None => Ok(Persona::from_config(&self.file.persona.clone().unwrap_or_default())
                .with_context(|| format!("config file `{}`", self.dirs.config_file.display()))?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The engine's flags alone, as a command would parse them.
    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        engine: EngineSettings,
    }

    fn flags(args: &[&str]) -> EngineSettings {
        Flags::try_parse_from(["workly"].iter().chain(args)).unwrap().engine
    }

    fn file(text: &str) -> Result<FileConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        FileConfig::load(&path)
    }

    #[test]
    fn missing_config_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(FileConfig::load(&dir.path().join("none.toml")).unwrap(), FileConfig::default());
    }

    /// Every tuning setting as flags, in the order [`EngineSettings::tuning_flags`] gives them.
    const TUNING_FLAGS: [&str; 22] = [
        "--context-size",
        "1024",
        "--threads",
        "2",
        "--gpu-layers",
        "0",
        "--split-mode",
        "row",
        "--devices",
        "1,0",
        "--main-gpu",
        "1",
        "--tensor-split",
        "3,1.5",
        "--batch-size",
        "256",
        "--chat-template",
        "chatml",
        "--kv-cache-type",
        "q8_0",
        "--flash-attn",
        "on",
    ];

    /// The same settings as config file keys.
    const TUNING_KEYS: &str = "context_size = 1024\nthreads = 2\ngpu_layers = 0\nsplit_mode = \"row\"\n\
                               devices = [1, 0]\nmain_gpu = 1\ntensor_split = [3, 1.5]\nbatch_size = 256\n\
                               chat_template = \"chatml\"\nkv_cache_type = \"q8_0\"\nflash_attention = \"on\"\n";

    #[test]
    fn a_flag_and_a_key_fill_the_same_field() {
        let from_file = file(&format!("{TUNING_KEYS}model = \"m.gguf\"\nmode = \"fast\"\n")).unwrap().engine;
        let from_flags = flags(&[&TUNING_FLAGS[..], &["--model", "m.gguf", "--mode", "fast"]].concat());
        assert_eq!(from_file, from_flags);
        assert_eq!(from_file.devices, Some(vec![1, 0]));
        assert_eq!(from_file.tensor_split, Some(vec![3.0, 1.5]));
        assert_eq!(from_file.flash_attention, Some(FlashAttention::On));
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_fills_the_rest() {
        let from_file = file("context_size = 2048\nthreads = 3\ndevices = [1]\nbatch_size = 64\n").unwrap().engine;
        let merged = flags(&["--threads", "2", "--devices", "0,1"]).over(from_file);
        assert_eq!(merged.threads, Some(2));
        assert_eq!(merged.devices, Some(vec![0, 1]), "a list flag replaces the file's list");
        assert_eq!((merged.context_size, merged.batch_size), (Some(2048), Some(64)));
        assert_eq!(merged.gpu_layers, None, "unset in both: the hardware policy picks");
    }

    #[test]
    fn unknown_keys_are_refused_at_the_top_and_in_the_persona_table() {
        let error = file("context_sise = 2048\n").unwrap_err().to_string();
        assert!(error.starts_with("invalid config file"), "{error}");
        assert!(error.contains("context_sise"), "{error}");
        assert!(!error.contains('\n'));
        let error = file("[persona]\nnom = \"Mia\"\n").unwrap_err().to_string();
        assert!(error.contains("[persona]") && error.contains("nom"), "{error}");
        let error = file("threads = \"many\"\n").unwrap_err().to_string();
        assert!(error.contains("\"many\""), "{error}");
    }

    #[test]
    fn the_persona_table_is_read_beside_the_settings() {
        let config = file("threads = 2\n[persona]\nname = \"Mia\"\nemotion_tags = false\n").unwrap();
        let persona = config.persona.unwrap();
        assert_eq!(persona.name.as_deref(), Some("Mia"));
        assert_eq!(persona.emotion_tags, Some(false));
        assert_eq!(config.engine.threads, Some(2));
    }

    #[test]
    fn tuning_flags_give_back_what_was_set() {
        assert_eq!(flags(&TUNING_FLAGS).tuning_flags(), TUNING_FLAGS);
        assert!(flags(&[]).tuning_flags().is_empty());
    }
}
