//! Shared helpers for the integration tests: where the real test models live.
//!
//! The models are fetched by `scripts/setup.sh` (run by `scripts/test.sh`) into
//! Workly's data directory; tests never download anything themselves.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

pub mod backend;
pub mod http;
pub mod server;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Workly's data directory as the set-up script fills it (`WORKLY_DATA_DIR` wins).
pub fn data_dir() -> PathBuf {
    let flag = std::env::var_os("WORKLY_DATA_DIR").map(PathBuf::from);
    workly::config::Dirs::resolve(flag.as_deref()).expect("a home directory").data
}

fn model(file: &str) -> PathBuf {
    let path = data_dir().join("models").join(file);
    assert!(
        path.is_file(),
        "test model {} is missing: run scripts/test.sh (it fetches the models first)",
        path.display()
    );
    path
}

/// SmolLM2-135M-Instruct Q4_1 (llama architecture, ChatML template): the
/// smallest and fastest model the set-up fetches, which most tests run.
pub fn small_model() -> PathBuf {
    model("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// The default model, Qwen2.5-Coder-0.5B-Instruct Q4_K_M (qwen2, ChatML).
pub fn default_model() -> PathBuf {
    model(workly::model::DEFAULT_MODEL_FILE)
}

/// The embedding model of the memory's semantic recall (multilingual-e5-small).
pub fn embedding_model() -> PathBuf {
    model(workly::llm::embed::DEFAULT_FILE)
}

/// Puts the embedding model in `data`'s models folder, as the set-up does in
/// the person's data directory.
pub fn link_embedder(data: &Path) {
    std::fs::create_dir_all(data.join("models")).unwrap();
    std::os::unix::fs::symlink(embedding_model(), data.join("models").join(workly::llm::embed::DEFAULT_FILE)).unwrap();
}

/// The Python of the venv `scripts/setup.sh --tests` fills with test clients
/// (the official `openai` package).
pub fn test_python() -> PathBuf {
    venv_python("test-venv", "the test clients")
}

/// The Python of the venv `bench/baseline/setup.sh` (run by `scripts/setup.sh
/// --tests`) fills with the original stack, llama-cpp-python.
pub fn baseline_python() -> PathBuf {
    venv_python("baseline-venv", "the original Python stack")
}

/// The Python of the venv `name` in Workly's cache directory, where the
/// set-up scripts make it (`WORKLY_CACHE_DIR` wins).
fn venv_python(name: &str, what: &str) -> PathBuf {
    let cache = workly::config::Dirs::resolve(None).expect("a home directory").cache;
    let python = cache.join(name).join("bin/python");
    assert!(python.is_file(), "{} is missing: run scripts/test.sh (it installs {what})", python.display());
    python
}

/// An engine configuration for `model` with a context of `context_size`
/// tokens, on two threads, nothing warmed or saved, flash attention as
/// llama.cpp picks it.
pub fn engine_config(model: &Path, context_size: u32) -> workly::llm::EngineConfig {
    // The Gemma 3 test model's GGUF carries no chat template: use the built-in one.
    let chat_template = model.to_string_lossy().contains("gemma").then(|| "gemma".to_owned());
    workly::llm::EngineConfig {
        model: workly::model::ModelInfo::read(model).expect("test model is valid"),
        threads_decode: 2,
        threads_prefill: 2,
        gpu_layers: 0,
        gpus: Default::default(),
        context_size,
        batch_size: 512,
        chat_template,
        warmup: Vec::new(),
        llama_logs: std::env::var_os("RUST_LOG").is_some(),
        prompt_cache: None,
        kv_cache_type: Default::default(),
        flash_attention: Default::default(),
        rpc: Vec::new(),
    }
}

/// Gemma 3 270M Q4_K_M: another architecture, with sliding-window attention.
pub fn gemma_model() -> PathBuf {
    model("gemma-3-270m-Q4_K_M.gguf")
}

/// A child's output as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a clean exit, showing the status (a signal, say) and stderr if not.
pub fn assert_success(output: &Output) {
    assert!(output.status.success(), "{}: {}", output.status, text(&output.stderr));
}

/// Asserts exit code 2 and a single stderr line containing every `needle`,
/// never a panic.
pub fn assert_bad_input(output: &Output, needles: &[&str]) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line expected: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The `workly` binary: Cargo names it to Workly's own tests; the
/// benchmarks' tests find it beside their own binary, where
/// `cargo test --workspace` builds it.
pub fn workly_binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_workly") {
        Some(path) => PathBuf::from(path),
        None => {
            // A test binary lives in `target/PROFILE/deps/`, the binaries one folder up.
            let exe = std::env::current_exe().unwrap();
            let path = exe.parent().and_then(Path::parent).unwrap().join("workly");
            assert!(path.is_file(), "{} is missing: run `cargo test --workspace`", path.display());
            path
        }
    }
}

/// `workly --data-dir DIR`, with nothing read from the user's own settings.
pub fn workly_in(dir: &Path) -> Command {
    binary_in(&workly_binary(), dir)
}

/// `BINARY --data-dir DIR` (Workly or its benchmarks), with nothing read
/// from the user's own settings.
pub fn binary_in(binary: &Path, dir: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("--data-dir")
        .arg(dir)
        .env("WORKLY_CACHE_DIR", dir.join("cache"))
        .env("WORKLY_CONFIG", dir.join("config.toml"))
        .env_remove("WORKLY_MODEL")
        .env_remove("RUST_LOG");
    command
}

/// Runs a `--json` command with no input to its end, asserts a clean exit
/// (showing stdout and stderr if not), and parses what it printed.
pub fn json_output(command: &mut Command) -> serde_json::Value {
    let output = command.stdin(Stdio::null()).output().unwrap();
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}: {stdout}\n{}", output.status, text(&output.stderr));
    serde_json::from_str(&stdout).unwrap()
}

/// Asserts that the JSON file at `path` holds `report`.
pub fn assert_written(report: &serde_json::Value, path: &Path) {
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(report, &written, "stdout and {} hold the same report", path.display());
}

/// Runs a `--json` chat over stdin, one line each; returns one JSON object
/// per turn and the chat's stderr, once it exited cleanly.
pub fn chat_lines(command: &mut Command, lines: &[&str]) -> (Vec<serde_json::Value>, String) {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_success(&output);
    let turns = text(&output.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    (turns, text(&output.stderr))
}

/// The conversation `name` as stored in `data`: each message's role and text.
pub fn stored(data: &Path, name: &str) -> Vec<(String, String)> {
    let export = json_output(workly_in(data).args(["history", "export", name, "--format", "json"]));
    export["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| (message["role"].as_str().unwrap().to_owned(), message["content"].as_str().unwrap().to_owned()))
        .collect()
}

/// Puts Kira's voice (Kokoro, its voices, ONNX Runtime, Whisper) in `data`'s
/// models folder, as the set-up does in the person's data directory.
pub fn link_voice(data: &Path) {
    let models = data_dir().join("models");
    std::fs::create_dir_all(data.join("models")).unwrap();
    for file in ["kokoro-v1.0.int8.onnx", "kokoro-vocab.json", "kokoro-voices", "whisper-base", "onnxruntime"] {
        let path = models.join(file);
        assert!(path.exists(), "{} is missing: run scripts/test.sh (it fetches the voice first)", path.display());
        std::os::unix::fs::symlink(path, data.join("models").join(file)).unwrap();
    }
}
