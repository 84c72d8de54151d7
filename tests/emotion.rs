//! The real `workly` binary reading emotions: `workly emotion` on an argument
//! and on stdin lines, text and JSON, bad input. (`workly-bench emotion`
//! scores the reader on the labelled set.)

mod common;

use common::text;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `workly` with its writable state in `dir` and a config file that does not
/// parse: `workly emotion` must not read it.
fn workly(dir: &Path) -> Command {
    let config = dir.join("config.toml");
    std::fs::write(&config, "this is = = not toml").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_workly"));
    command
        .env("WORKLY_CACHE_DIR", dir.join("cache"))
        .env("WORKLY_CONFIG", config)
        .env_remove("WORKLY_MODEL")
        .env_remove("RUST_LOG");
    command
}

fn run(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("workly starts");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().expect("workly runs")
}

fn assert_success(output: &Output) {
    assert!(output.status.success(), "{}: {}", output.status, text(&output.stderr));
    assert_eq!(text(&output.stderr), "");
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))
}

#[test]
fn text_form_names_emotion_figures_and_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["emotion", "Je ne suis pas en colère, je suis très contente !"]), b"");
    assert_success(&output);
    let stdout = text(&output.stdout);
    assert!(stdout.starts_with("emotion     joy\n"), "{stdout}");
    assert!(stdout.contains("intensity   0."), "{stdout}");
    assert!(stdout.contains("confidence  0."), "{stdout}");
    assert!(stdout.contains("colere → angry +0.00 (negated)"), "{stdout}");
    assert!(stdout.contains("contente → joy +1.20 (intensified)"), "{stdout}");
}

#[test]
fn json_is_one_object_with_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["emotion", "--json", "I'm not happy about this 😡"]), b"");
    assert_success(&output);
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let reading = json(&stdout);
    assert_eq!(reading["emotion"], "angry");
    assert!(reading["intensity"].as_f64().is_some_and(|x| x > 0.0 && x <= 1.0));
    assert!(reading["confidence"].as_f64().is_some_and(|x| x > 0.0 && x <= 1.0));
    let evidence = reading["evidence"].as_array().unwrap();
    assert_eq!(evidence[0]["cue"], "happy");
    assert_eq!(evidence[0]["emotion"], "sorrow");
    assert_eq!(evidence[0]["negated"], true);
    assert_eq!(evidence[1]["kind"], "emoji");
    assert_eq!(reading["tags"], serde_json::json!([]));
}

#[test]
fn json_shape_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["emotion", "--json", "[surprised] Wow, really?! I'm so happy."]), b"");
    assert_success(&output);
    insta::assert_json_snapshot!(json(&text(&output.stdout)));
}

#[test]
fn tags_win_and_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["emotion", "--json", "[sorrow] I'm so happy for you."]), b"");
    assert_success(&output);
    let reading = json(&text(&output.stdout));
    assert_eq!(reading["emotion"], "sorrow");
    assert_eq!(reading["tags"], serde_json::json!(["sorrow"]));
    // A malformed tag is text, not a tag.
    let output = run(workly(dir.path()).args(["emotion", "--json", "[unknown] the bus leaves at five"]), b"");
    let reading = json(&text(&output.stdout));
    assert_eq!((reading["emotion"].as_str(), reading["tags"].as_array().map(Vec::len)), (Some("neutral"), Some(0)));
}

#[test]
fn stdin_lines_give_one_answer_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = "Haha, trop drôle !\nThe meeting is at three.\n\nI miss my dad so much 😢\n[fun] Let's play!\n";
    let output = run(workly(dir.path()).args(["emotion", "--json"]), input.as_bytes());
    assert_success(&output);
    let emotions: Vec<String> =
        text(&output.stdout).lines().map(|line| json(line)["emotion"].as_str().unwrap().to_owned()).collect();
    assert_eq!(emotions, ["fun", "neutral", "neutral", "sorrow", "fun"]);

    let output = run(workly(dir.path()).arg("emotion"), input.as_bytes());
    assert_success(&output);
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(lines[0].starts_with("fun "), "{stdout}");
    assert!(lines[1].starts_with("neutral 0.00"), "{stdout}");
    assert!(lines[4].contains("tags [fun]"), "{stdout}");
}

#[test]
fn traps_are_read_as_a_person_would() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // Words inside words.
        ("Le courage est une vertu.", "neutral"),
        ("Combien ça coûte ?", "neutral"),
        ("Les dragées sont sur la table.", "neutral"),
        ("The storage room is full.", "neutral"),
        ("The funding arrived.", "neutral"),
        // Negations cancel, or flip joy.
        ("I'm not angry, just asking.", "neutral"),
        ("Je ne suis pas triste.", "neutral"),
        ("Il n'est pas content.", "sorrow"),
        ("I'm no longer happy here.", "sorrow"),
        ("Je ne serai jamais heureuse ici.", "sorrow"),
        // Idioms that hold a negation.
        ("C'est pas mal du tout !", "joy"),
        ("I couldn't be happier.", "joy"),
        // Emoji and punctuation.
        ("ok 😂", "fun"),
        ("You did what?!", "surprised"),
        // A valid tag wins; a malformed one is text.
        ("[angry] What a lovely day.", "angry"),
        ("[grumpy] What a lovely day.", "joy"),
    ];
    let input: String = cases.iter().map(|(text, _)| format!("{text}\n")).collect();
    let output = run(workly(dir.path()).args(["emotion", "--json"]), input.as_bytes());
    assert_success(&output);
    let stdout = text(&output.stdout);
    for ((case, expected), line) in cases.iter().zip(stdout.lines()) {
        assert_eq!(json(line)["emotion"], *expected, "{case}: {line}");
    }
    assert_eq!(stdout.lines().count(), cases.len());
}

#[test]
fn stdin_that_is_not_text_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(workly(dir.path()).args(["emotion", "--json"]), b"fine\n\xff\xfe broken\n");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("stdin line 2 is not UTF-8"), "{stderr}");
    // The line before the bad one was answered.
    assert_eq!(text(&output.stdout).lines().count(), 1);
}
