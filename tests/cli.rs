//! The real `workly` binary on the real models: one-shot and interactive chat,
//! JSON output, Ctrl-C, a closed pipe, `doctor --json`, and every kind of bad
//! input (each must exit 2 with one clear line, never panic or hang).

mod common;

use common::{assert_bad_input, assert_success, chat_lines, text};

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `workly` with its writable state (cache, config) in `dir`, so tests never
/// touch the user's files.
fn workly(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_workly"));
    command
        .env("WORKLY_CACHE_DIR", dir.join("cache"))
        .env("WORKLY_CONFIG", dir.join("config.toml"))
        .env_remove("WORKLY_MODEL")
        .env_remove("RUST_LOG");
    command
}

fn model_arg() -> String {
    common::small_model().display().to_string()
}

/// Starts `command` with piped stdout and stderr and the given stdin.
fn spawn(command: &mut Command, stdin: Stdio) -> Child {
    command.stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("workly starts")
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().expect("workly runs")
}

#[test]
fn one_shot_reply_streams_only_the_reply_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        run(workly(dir.path()).args(["chat", "--temperature", "0", "--max-tokens", "24", "-p", "Hello Kira!"]));
    assert_success(&output);
    assert!(!text(&output.stdout).trim().is_empty());
    // llama.cpp's log and Workly's own messages stay silent by default.
    assert_eq!(text(&output.stderr), "");
}

#[test]
fn json_one_shot_prints_one_object_with_measurements() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args([
        "chat",
        "--model",
        &model_arg(),
        "--json",
        "--temperature",
        "0",
        "--max-tokens",
        "16",
        "-p",
        "Bonjour",
    ]));
    assert_success(&output);
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let turn: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in ["prompt_tokens", "completion_tokens", "cached_tokens", "threads", "gpu_layers"] {
        assert!(turn[key].is_u64(), "{key} in {turn}");
    }
    for key in ["ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s"] {
        assert!(turn[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {turn}");
    }
    assert!(!turn["text"].as_str().unwrap().is_empty());
    assert!(turn["completion_tokens"].as_u64().unwrap() <= 16);
    assert_eq!(turn["gpu_layers"], 0);
}

/// Runs an interactive `--json` chat over stdin; returns one object per turn.
fn interactive_json(lines: &[&str]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    // Interactive chats store their history: keep it in `dir`.
    let mut command = workly(dir.path());
    command.arg("--data-dir").arg(dir.path()).args([
        "chat",
        "--model",
        &model_arg(),
        "--json",
        "--temperature",
        "0",
        "--max-tokens",
        "24",
    ]);
    chat_lines(&mut command, lines).0
}

fn field(turn: &serde_json::Value, key: &str) -> u64 {
    turn[key].as_u64().unwrap_or_else(|| panic!("{key} in {turn}"))
}

#[test]
fn multi_turn_session_reuses_the_cache_and_prefills_less() {
    let turns = interactive_json(&[
        "Hi Kira, I'm Sam.",
        "I like green tea and long walks.",
        "What should I do this weekend?",
        "/exit",
        "this line is never read",
    ]);
    assert_eq!(turns.len(), 3);
    for pair in turns.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert!(field(after, "cached_tokens") > field(before, "cached_tokens"), "{before} then {after}");
        assert!(field(after, "prompt_tokens") > field(before, "prompt_tokens"));
        let prefilled = field(after, "prompt_tokens") - field(after, "cached_tokens");
        assert!(prefilled * 2 < field(after, "prompt_tokens"), "most of the prompt is cached: {after}");
    }
}

#[test]
fn reset_starts_a_new_conversation() {
    let turns = interactive_json(&["Hello!", "Tell me about the moon.", "/reset", "Hello!"]);
    assert_eq!(turns.len(), 3);
    assert_eq!(field(&turns[2], "prompt_tokens"), field(&turns[0], "prompt_tokens"));
    assert!(field(&turns[1], "prompt_tokens") > field(&turns[2], "prompt_tokens"));
}

/// Reads a child's stdout on a thread, forwarding chunks.
fn stream_stdout(child: &mut Child) -> mpsc::Receiver<Vec<u8>> {
    let mut stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 256];
        while let Ok(read) = stdout.read(&mut buffer) {
            if read == 0 || sender.send(buffer[..read].to_vec()).is_err() {
                break;
            }
        }
    });
    receiver
}

#[test]
fn ctrl_c_stops_the_reply_not_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(
        workly(dir.path()).arg("--data-dir").arg(dir.path()).args([
            "chat",
            "--model",
            &model_arg(),
            "--max-tokens",
            "4000",
            "--temperature",
            "0",
        ]),
        Stdio::piped(),
    );
    let stdout = stream_stdout(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "Write a very long story about a dragon and a lighthouse.").unwrap();
    stdin.flush().unwrap();
    stdout.recv_timeout(Duration::from_secs(60)).expect("the reply starts streaming");
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    // Still alive: it answers the next message.
    writeln!(stdin, "Say hi.").unwrap();
    writeln!(stdin, "/exit").unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_success(&output);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("(stopped)"), "{stderr}");
    assert_eq!(stderr.matches("Kira> ").count(), 2, "both messages were answered: {stderr}");
}

#[test]
fn closed_stdout_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(
        workly(dir.path()).args([
            "chat",
            "--model",
            &model_arg(),
            "--max-tokens",
            "2000",
            "-p",
            "Tell me a long story.",
        ]),
        Stdio::null(),
    );
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The pipe is closed now (like `| head -c1`).
    let output = child.wait_with_output().unwrap();
    assert_success(&output);
    assert!(!text(&output.stderr).contains("panicked"));
}

/// The JSON's shape: every leaf replaced by its type, so the snapshot checks
/// field names and types, not this machine's numbers.
fn shape(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Null => Value::from("null"),
        Value::Bool(_) => Value::from("bool"),
        Value::Number(_) => Value::from("number"),
        Value::String(_) => Value::from("string"),
        Value::Array(items) => Value::Array(items.iter().take(1).map(shape).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

#[test]
fn doctor_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["doctor", "--json", "--model", &model_arg()]));
    assert_success(&output);
    let mut report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // GPUs differ between machines: a machine without one is a normal answer
    // with a note, one with GPUs lists them. The rest of the shape is fixed.
    let gpus = report.as_object_mut().unwrap().remove("gpus").unwrap();
    let note = report.as_object_mut().unwrap().remove("gpu_note").unwrap();
    assert!(gpus.as_array().is_some_and(|gpus| !gpus.is_empty()) || note.is_string(), "{gpus} {note}");
    insta::assert_json_snapshot!(shape(&report));
    assert_eq!(report["tuning"]["gpu_layers"], 0);
    assert!(report["tuning"]["threads_decode"].as_u64().unwrap() >= 1);
}

#[test]
fn doctor_text_names_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["doctor", "--model", &model_arg(), "--threads", "1"]));
    assert_success(&output);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("set by --threads"), "{stdout}");
}

#[test]
fn model_info_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["model", "info", &model_arg()]));
    assert_success(&output);
    let stdout = text(&output.stdout);
    assert!(stdout.contains("llama") && stdout.contains("Q4_1") && stdout.contains("30"), "{stdout}");
    let output = run(workly(dir.path()).args(["model", "info", "--json", &model_arg()]));
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(info["layers"], 30);
    assert_eq!(info["file_size_bytes"], 98_362_432);
    assert_eq!(info["has_chat_template"], true);
}

#[test]
fn model_recommend_names_a_known_model_and_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["model", "recommend", "--json"]));
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let fits = report["fits"].as_array().unwrap();
    assert_eq!(fits.len(), workly::model::known::KNOWN.len());
    // Whatever this machine is, the test model is not recommended, and it says why.
    let gemma = fits.iter().find(|fit| fit["model"]["name"] == "gemma-3-270m").unwrap();
    assert_eq!(gemma["why_not"], "not a chat model");
    let best = report["best"]["name"].as_str().expect("a model fits the test machine");
    // Where it is installed, the report says how to run it; where not, how to fetch it.
    let output = run(workly(dir.path()).args(["model", "recommend"]));
    let stdout = text(&output.stdout);
    assert!(stdout.contains(best) && stdout.contains("recommended"), "{stdout}");
    assert!(stdout.contains("run it: workly chat"), "{stdout}");
    let empty = dir.path().join("empty");
    let output = run(workly(dir.path()).arg("--data-dir").arg(&empty).args(["model", "recommend"]));
    assert!(text(&output.stdout).contains("fetch it: scripts/setup.sh"), "{}", text(&output.stdout));
}

#[test]
fn a_known_model_is_one_short_name_away() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["doctor", "--json", "--model", "smollm2"]));
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["model"].as_str().unwrap(), common::small_model().display().to_string());
    let empty = dir.path().join("empty");
    let output = run(workly(dir.path()).arg("--data-dir").arg(&empty).args(["doctor", "--model", "smollm2"]));
    assert_bad_input(&output, &["smollm2 is not downloaded", "scripts/setup.sh"]);
}

#[test]
fn gemma3_chats_with_the_builtin_template() {
    let dir = tempfile::tempdir().unwrap();
    let gemma = common::gemma_model().display().to_string();
    let output = run(workly(dir.path()).args(["chat", "--model", &gemma, "--max-tokens", "12", "-p", "Hello!"]));
    assert_bad_input(&output, &["has no chat template", "--chat-template"]);
    let output = run(workly(dir.path()).args([
        "chat",
        "--model",
        &gemma,
        "--chat-template",
        "gemma",
        "--json",
        "--temperature",
        "0",
        "--max-tokens",
        "12",
        "-p",
        "Hello!",
    ]));
    assert_success(&output);
    let turn: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(turn["completion_tokens"].as_u64().unwrap() > 0);
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn chat_with_model(dir: &Path, model: &Path) -> Output {
    run(workly(dir).args(["chat", "--model", model.to_str().unwrap(), "-p", "hi"]))
}

#[test]
fn missing_model_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    assert_bad_input(&chat_with_model(dir.path(), &missing), &["nope.gguf", "not found"]);
}

#[test]
fn empty_model_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_file(dir.path(), "empty.gguf", b"");
    assert_bad_input(&chat_with_model(dir.path(), &empty), &["empty.gguf", "empty"]);
}

#[test]
fn non_gguf_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let html = write_file(dir.path(), "page.gguf", b"<html><body>Not found</body></html>");
    assert_bad_input(&chat_with_model(dir.path(), &html), &["page.gguf", "not a GGUF file"]);
}

#[test]
fn truncated_model_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut head = vec![0u8; 4 << 20];
    std::fs::File::open(common::small_model()).unwrap().read_exact(&mut head).unwrap();
    let truncated = write_file(dir.path(), "half.gguf", &head);
    assert_bad_input(&chat_with_model(dir.path(), &truncated), &["half.gguf", "truncated"]);
    // `model info` validates the same way.
    let output = run(workly(dir.path()).args(["model", "info", truncated.to_str().unwrap()]));
    assert_bad_input(&output, &["half.gguf", "truncated"]);
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["chat", "--no-such-flag"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("--no-such-flag"));
    let output = run(workly(dir.path()).args(["chat", "--temperature", "warm", "-p", "hi"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("warm"));
    let output = run(workly(dir.path()).args(["chat", "--model", &model_arg(), "--top-p", "2", "-p", "hi"]));
    assert_bad_input(&output, &["top_p"]);
}

#[test]
fn bad_gpu_flags_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // Values clap refuses, with its usage message.
    for (flag, value, named) in
        [("--split-mode", "diagonal", "diagonal"), ("--devices", "0,zero", "zero"), ("--tensor-split", "3,-1", "-1")]
    {
        let output = run(workly(dir.path()).args(["doctor", "--model", &model_arg(), flag, value]));
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        assert!(text(&output.stderr).contains(named), "{flag} {value}: {}", text(&output.stderr));
    }
    // Selections that contradict themselves, whatever GPUs this machine has.
    let doctor = |flags: &[&str]| run(workly(dir.path()).args(["doctor", "--model", &model_arg()]).args(flags));
    assert_bad_input(&doctor(&["--devices", "0,0"]), &["--devices names GPU 0 twice"]);
    assert_bad_input(&doctor(&["--devices", "0", "--main-gpu", "1"]), &["--main-gpu 1 is not among --devices 0"]);
    assert_bad_input(&doctor(&["--devices", "0", "--tensor-split", "3,1"]), &["2 proportions for 1 GPUs"]);
    assert_bad_input(&doctor(&["--tensor-split", "0,0"]), &["at least one proportion"]);
    // The config file's values are checked the same way.
    write_file(dir.path(), "config.toml", b"devices = [1, 1]\n");
    assert_bad_input(&doctor(&[]), &["--devices names GPU 1 twice"]);
}

#[test]
fn gpu_flags_without_a_gpu_backend_warn_once() {
    if cfg!(feature = "cuda") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let gpu_flags = ["--split-mode", "row", "--devices", "0", "--main-gpu", "0", "--tensor-split", "1"];
    let output = run(workly(dir.path()).args(["doctor", "--json", "--model", &model_arg()]).args(gpu_flags));
    assert_success(&output);
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("have no effect: this build has no GPU backend"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["tuning"]["split_mode"], "row");
    assert_eq!(report["tuning"]["gpu_split"], serde_json::json!([]));
    // A reply is unaffected by them: the engine leaves them out.
    let output = run(workly(dir.path())
        .args(["chat", "--model", &model_arg(), "--max-tokens", "4", "--gpu-layers", "99", "-p", "Hi"])
        .args(gpu_flags));
    assert_success(&output);
    let stderr = text(&output.stderr);
    assert_eq!(stderr.matches("have no effect").count(), 1, "{stderr}");
}

/// The layer sweep needs a GPU build and a GPU; a CPU-only build says so and sweeps nothing.
#[test]
fn gpu_benchmark_without_a_gpu_backend_exits_2_saying_what_it_needs() {
    if cfg!(any(feature = "cuda", feature = "vulkan")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["bench", "gpu", "--json", "--model", &model_arg()]));
    assert_bad_input(&output, &["workly bench gpu needs a GPU build", "scripts/setup.sh --cuda or --vulkan"]);
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
}

#[test]
fn a_prompt_that_cannot_fit_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let long = "tell me more about that ".repeat(60);
    let output = run(workly(dir.path()).args(["chat", "--model", &model_arg(), "--context-size", "128", "-p", &long]));
    assert_bad_input(&output, &["context holds 128"]);
}

#[test]
fn invalid_config_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "config.toml", b"context_size = \"big\"\n");
    let output = run(workly(dir.path()).args(["chat", "--model", &model_arg(), "-p", "hi"]));
    assert_bad_input(&output, &["config.toml", "invalid config file"]);
}

#[test]
fn persona_file_and_config_table_name_the_companion() {
    let dir = tempfile::tempdir().unwrap();
    let persona = write_file(dir.path(), "mia.toml", b"name = \"Mia\"\nstyle = \"Answer in one sentence.\"\n");
    let chat = |extra: &[&str]| {
        let mut child = spawn(workly(dir.path()).args(["chat", "--model", &model_arg()]).args(extra), Stdio::piped());
        writeln!(child.stdin.take().unwrap(), "/exit").unwrap();
        let output = child.wait_with_output().unwrap();
        assert_success(&output);
        text(&output.stderr)
    };
    assert!(chat(&["--persona", persona.to_str().unwrap()]).starts_with("Mia is here"));
    write_file(dir.path(), "config.toml", b"[persona]\nname = \"Zoe\"\n");
    assert!(chat(&[]).starts_with("Zoe is here"));
    // The flag wins over the config file.
    assert!(chat(&["--persona", persona.to_str().unwrap()]).starts_with("Mia is here"));
}

#[test]
fn q8_0_kv_cache_chats_and_needs_flash_attention() {
    let dir = tempfile::tempdir().unwrap();
    let chat = |extra: &[&str]| {
        run(workly(dir.path())
            .args(["chat", "--model", &model_arg(), "--json", "--temperature", "0", "--max-tokens", "8", "-p", "Hi"])
            .args(extra))
    };
    let output = chat(&["--kv-cache-type", "q8_0"]);
    assert_success(&output);
    let turn: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(turn["completion_tokens"].as_u64().unwrap() > 0);
    assert_bad_input(&chat(&["--kv-cache-type", "q8_0", "--flash-attn", "off"]), &["flash attention"]);
}

#[test]
fn bad_persona_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nobody.toml");
    let output =
        run(workly(dir.path()).args(["chat", "--model", &model_arg(), "--persona", missing.to_str().unwrap()]));
    assert_bad_input(&output, &["nobody.toml"]);
    let both = write_file(dir.path(), "both.toml", b"system_prompt = \"Be terse.\"\nstyle = \"Long.\"\n");
    let output = run(workly(dir.path()).args(["chat", "--model", &model_arg(), "--persona", both.to_str().unwrap()]));
    assert_bad_input(&output, &["both.toml", "system_prompt"]);
}

#[test]
fn thread_benchmark_is_saved_and_used_by_later_runs() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["bench", "threads", "--json", "--runs", "1", "--model", &model_arg()]));
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = report["measurements"]["rows"].as_array().unwrap();
    let logical = report["measurements"]["logical_cores"].as_u64().unwrap();
    assert_eq!(rows.len() as u64, logical, "one row per thread count");
    for row in rows {
        assert!(row["decode_tokens_per_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["prefill_tokens_per_s"].as_f64().unwrap() > 0.0, "{row}");
    }
    assert!(dir.path().join("cache/threads.json").is_file());
    let output = run(workly(dir.path()).args(["doctor", "--json", "--model", &model_arg()]));
    let doctor: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doctor["tuning"]["thread_source"], "measured");
    assert_eq!(doctor["tuning"]["threads_decode"], report["chosen"]["decode"]);
}

#[test]
fn chat_drives_the_avatar_and_stores_the_reply_emotion() {
    let dir = tempfile::tempdir().unwrap();
    let mut peer = Command::new(env!("CARGO_BIN_EXE_workly"))
        .args(["avatar", "peer", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    std::io::BufReader::new(peer.stderr.take().unwrap()).read_line(&mut banner).unwrap();
    let address = banner.split_whitespace().last().unwrap().to_owned();
    let data = dir.path().to_str().unwrap();
    let output = run(workly(dir.path()).args([
        "--data-dir",
        data,
        "chat",
        "--model",
        &model_arg(),
        "--conversation",
        "mood",
        "--unity",
        &address,
        "--json",
        "--temperature",
        "0",
        "--max-tokens",
        "40",
        "-p",
        "I'm so happy, I got the job! Thank you so much!",
    ]));
    assert_success(&output);
    let turn: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let emotion = turn["emotion"].as_str().unwrap().to_owned();
    // What the Unity-like peer applied: the director's set-up, then the face.
    peer.kill().unwrap();
    let applied = text(&peer.wait_with_output().unwrap().stdout);
    assert!(applied.contains("set_auto_blink true"), "{applied}");
    if emotion != "neutral" {
        assert!(applied.contains("set_expression"), "{emotion}: {applied}");
    }
    let export = run(workly(dir.path()).args(["--data-dir", data, "history", "export", "mood", "--format", "json"]));
    assert_success(&export);
    let export: serde_json::Value = serde_json::from_slice(&export.stdout).unwrap();
    assert_eq!(export["messages"][1]["emotion"], emotion.as_str());
    assert!(!export["messages"][1]["content"].as_str().unwrap().contains("[joy]"));
}
