//! Fast and quality modes on the real default model: `workly model quantize`
//! writes a valid smaller GGUF, the engine's perplexity tells the two
//! quantizations apart, and `--mode fast|quality` picks the expected file.
//! Every bad input exits 2 with one line.

mod common;

use common::{assert_bad_input, assert_success, text, workly_in};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use workly::llm::Engine;

/// The default model's base name, as its sibling quantizations are named.
const BASE: &str = "SmolLM2-135M-Instruct";

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("workly runs")
}

fn json(output: &Output) -> serde_json::Value {
    assert_success(output);
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// A folder holding the default model (linked, not copied) as `BASE.Q4_1.gguf`.
fn folder_with_small_model() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let q4_1 = dir.path().join(format!("{BASE}.Q4_1.gguf"));
    std::os::unix::fs::symlink(common::small_model(), &q4_1).unwrap();
    (dir, q4_1)
}

/// The file `workly doctor --mode MODE --model MODEL` would run, and its stderr.
fn mode_pick(dir: &Path, mode: &str, model: &Path) -> (String, String) {
    let output = run(workly_in(dir).args(["doctor", "--json", "--mode", mode, "--model"]).arg(model));
    let report = json(&output);
    (report["model"].as_str().expect("model path").to_owned(), text(&output.stderr))
}

/// Perplexity of `model` on the start of the benchmarks' built-in text (a
/// few hundred tokens keep the test short; `workly-bench perplexity` scores
/// the whole text).
fn perplexity(model: &Path) -> f64 {
    let words: Vec<&str> = include_str!("../bench/src/perplexity.txt").split_whitespace().take(250).collect();
    let engine = Engine::load(common::engine_config(model, 512)).expect("engine loads");
    let report = engine.perplexity(&words.join(" ")).expect("perplexity");
    assert!(report.tokens_scored > 250, "{report:?}");
    assert_eq!(report.chunks, 1, "{report:?}");
    report.perplexity
}

#[test]
fn quantizing_to_q4_0_gives_a_smaller_model_that_modes_pick_and_perplexity_tells_apart() {
    let (dir, q4_1) = folder_with_small_model();
    let q4_0 = dir.path().join(format!("{BASE}.Q4_0.gguf"));

    let output = run(workly_in(dir.path()).args(["model", "quantize"]).arg(&q4_1).arg(&q4_0).args(["--type", "q4_0"]));
    assert_success(&output);
    assert_eq!(text(&output.stdout).trim_end(), q4_0.display().to_string());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("quantizing") && stderr.contains("to q4_0"), "{stderr}");
    assert!(stderr.contains("already Q4_1"), "the requantization note is missing: {stderr}");
    assert!(stderr.contains("(Q4_0, "), "the end line names the result: {stderr}");
    // Nothing but the output is left in the folder (no temporary file).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);

    let info = |path: &Path| json(&run(workly_in(dir.path()).args(["model", "info", "--json"]).arg(path)));
    let (source, written) = (info(&q4_1), info(&q4_0));
    assert_eq!(written["quantization"], "Q4_0");
    assert_eq!(written["architecture"], source["architecture"]);
    assert_eq!(written["parameters"], source["parameters"]);
    assert!(written["file_size_bytes"].as_u64() < source["file_size_bytes"].as_u64(), "{written} vs {source}");

    let (ppl_q4_1, ppl_q4_0) = (perplexity(&q4_1), perplexity(&q4_0));
    for ppl in [ppl_q4_1, ppl_q4_0] {
        assert!(ppl.is_finite() && ppl > 1.0, "{ppl}");
    }
    assert_ne!(ppl_q4_1, ppl_q4_0, "two quantizations score the same");

    let (fast, note) = mode_pick(dir.path(), "fast", &q4_1);
    assert_eq!(fast, q4_0.display().to_string());
    assert!(note.contains("the smallest of 2 quantizations"), "{note}");
    let (quality, note) = mode_pick(dir.path(), "quality", &q4_0);
    assert_eq!(quality, q4_1.display().to_string());
    assert!(note.contains("the largest of 2 quantizations"), "{note}");
    // The config file's `mode` does the same; the flag wins over it.
    std::fs::write(dir.path().join("config.toml"), "mode = \"fast\"\n").unwrap();
    let output = run(workly_in(dir.path()).args(["doctor", "--json", "--model"]).arg(&q4_1));
    assert_eq!(json(&output)["model"], q4_0.display().to_string());
    assert_eq!(mode_pick(dir.path(), "quality", &q4_1).0, q4_1.display().to_string());
    std::fs::remove_file(dir.path().join("config.toml")).unwrap();

    // An existing output needs --force; the source itself is never overwritten.
    let again = || {
        let mut command = workly_in(dir.path());
        command.args(["model", "quantize"]).arg(&q4_1).arg(&q4_0).args(["--type", "q8_0"]);
        command
    };
    assert_bad_input(&run(&mut again()), &["already exists", "--force"]);
    assert_success(&run(again().arg("--force")));
    assert_eq!(info(&q4_0)["quantization"], "Q8_0");
    let onto_source = run(workly_in(dir.path())
        .args(["model", "quantize"])
        .arg(&q4_1)
        .arg(&q4_1)
        .args(["--type", "q4_0", "--force"]));
    assert_bad_input(&onto_source, &["is the source model"]);
}

#[test]
fn a_model_without_siblings_is_used_as_is() {
    let (dir, q4_1) = folder_with_small_model();
    let (fast, note) = mode_pick(dir.path(), "fast", &q4_1);
    assert_eq!(fast, q4_1.display().to_string());
    assert!(note.contains("no other quantization") && note.trim_end().ends_with("as is"), "{note}");
    assert_eq!(note.trim_end().lines().count(), 1, "{note}");
}

#[test]
fn a_bad_source_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.gguf");
    std::fs::write(&broken, b"GGUF but nothing after").unwrap();
    let out = dir.path().join("out.gguf");
    let output = run(workly_in(dir.path()).args(["model", "quantize"]).arg(&broken).arg(&out).args(["--type", "q4_0"]));
    assert_bad_input(&output, &["broken.gguf"]);
    assert!(!out.exists());

    let missing = dir.path().join("missing.gguf");
    let output =
        run(workly_in(dir.path()).args(["model", "quantize"]).arg(&missing).arg(&out).args(["--type", "q4_0"]));
    assert_bad_input(&output, &["missing.gguf"]);

    let output = run(workly_in(dir.path()).args(["model", "quantize"]).arg(&broken).arg(&out).args(["--type", "q9_9"]));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}
