//! `workly-bench compare` end to end: Workly and the original Python stack
//! (llama-cpp-python in the venv `bench/baseline/setup.sh` makes, which the
//! test set-up installs) on the real default model, shortened to one round
//! of one run and a 3-turn served conversation. Checks that every row holds
//! both stacks' figures and its ratio, and that the folder holds the same
//! report as JSON and as the Markdown table.

use super::{bench_in, common};

#[test]
fn compare_runs_both_stacks_and_writes_one_table_of_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("compare");
    let report = common::json_output(
        bench_in(dir.path())
            .args(["compare", "--json", "--rounds", "1", "--runs", "1", "--cold-runs", "1"])
            .args(["--turns", "3", "--window", "1", "--pause", "0", "--ipc-commands", "5000", "--out"])
            .arg(&out)
            .arg("--python")
            .arg(common::baseline_python())
            .arg("--model")
            .arg(common::small_model()),
    );
    common::assert_written(&report, &out.join("compare.json"));
    assert!(report["llama_cpp_python"].as_str().is_some_and(|version| !version.is_empty()), "{report}");
    assert_eq!(report["settings"]["turns"], 3);
    assert!(report["own_threads"]["original"].as_u64().unwrap() >= 1);

    let markdown = std::fs::read_to_string(out.join("COMPARE.md")).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 9, "{rows:?}");
    for row in rows {
        let figure = row["figure"].as_str().unwrap();
        let (workly, python) = (row["workly"]["median"].as_f64().unwrap(), row["python"]["median"].as_f64().unwrap());
        assert!(workly > 0.0 && python > 0.0, "{figure}: {row}");
        let expected = if row["higher_is_better"].as_bool().unwrap() { workly / python } else { python / workly };
        let advantage = row["workly_advantage"].as_f64().unwrap();
        assert!((advantage - expected).abs() < 1e-9, "{figure}: {advantage} against {expected}");
        assert!(markdown.contains(&format!("| {figure} (")), "{figure} missing from COMPARE.md:\n{markdown}");
        assert!(markdown.contains(&format!("{advantage:.2}x |")), "{figure}'s ratio missing:\n{markdown}");
    }

    let serving = &report["serving"];
    for series in ["workly_window_ttft_ms", "python_window_ttft_ms", "workly_full_ttft_ms"] {
        let turns = serving[series].as_array().unwrap();
        assert_eq!(turns.len(), 3, "{series}: {turns:?}");
        assert!(turns.iter().all(|ttft| ttft.as_f64().unwrap() > 0.0), "{series}: {turns:?}");
    }
    // Workly's server reports what it found cached: the later turns reuse the earlier ones.
    let workly_full = serving["rounds"][0]["workly_full"].as_array().unwrap();
    assert!(workly_full[2]["cached_tokens"].as_u64().unwrap() > 0, "{workly_full:?}");

    let modes = report["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 1, "one quantization beside the model: {modes:?}");
    assert_eq!(modes[0]["quantization"], "Q4_1");
    assert_eq!(modes[0]["modes"], serde_json::json!(["as given", "fast", "quality"]));
    assert!(modes[0]["perplexity"].as_f64().unwrap() > 1.0);
    assert!(markdown.contains("## Quantizations"), "{markdown}");
}

#[test]
fn compare_without_the_python_stack_says_how_to_set_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let output = bench_in(dir.path())
        .args(["compare", "--python"])
        .arg(dir.path().join("no-such-python"))
        .arg("--out")
        .arg(dir.path().join("compare"))
        .output()
        .unwrap();
    common::assert_bad_input(&output, &["no-such-python", "bench/baseline/setup.sh"]);
}

#[test]
fn compare_refuses_a_window_that_leaves_no_late_turns() {
    let dir = tempfile::tempdir().unwrap();
    let output = bench_in(dir.path())
        .args(["compare", "--turns", "5", "--window", "5", "--out"])
        .arg(dir.path().join("compare"))
        .output()
        .unwrap();
    common::assert_bad_input(&output, &["--window 5", "--turns 5"]);
}

#[test]
fn the_original_avatar_client_delivers_every_line_to_a_reader_that_falls_behind() {
    use std::io::{BufRead, BufReader, Read, Write};
    // A peer that sends Unity's ack, then reads nothing until the client has
    // sent everything: the lines wait in the socket buffers when the client
    // closes, as they do whenever the peer falls behind.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<()>();
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"{}\n").unwrap();
        sent_rx.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut received = Vec::new();
        stream.read_to_end(&mut received).map(|_| received.iter().filter(|byte| **byte == b'\n').count())
    });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline/original.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .args(["ipc", "--host", "127.0.0.1", "--port", &port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let line = b"{\"command\":\"set_auto_blink\",\"data\":{\"enabled\":true}}\n";
    for _ in 0..2000 {
        stdin.write_all(line).unwrap();
    }
    stdin.write_all(b"\n").unwrap();
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    assert_eq!(ready.trim(), "ready");
    stdin.write_all(b"go\n").unwrap();
    sent_tx.send(()).unwrap();
    // Closing with the ack unread would reset the connection and drop the
    // lines the peer had not read yet.
    assert_eq!(peer.join().unwrap().expect("the connection was reset"), 2000);
    assert!(child.wait().unwrap().success());
}

#[test]
fn remote_plays_the_conversation_both_ways_and_compares_the_late_turns() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::json_output(
        bench_in(dir.path())
            .args(["remote", "--json", "--rounds", "1", "--turns", "11", "--max-tokens", "8", "--pause", "0"])
            .args(["--context-size", "1024", "--python"])
            .arg(common::baseline_python())
            .arg("--model")
            .arg(common::small_model()),
    );
    for series in ["direct_ttft_ms", "workly_ttft_ms"] {
        let turns = report[series].as_array().unwrap();
        assert_eq!(turns.len(), 11, "{series}: {report}");
        assert!(turns.iter().all(|ttft| ttft.as_f64().unwrap() > 0.0), "{series}: {report}");
    }
    // Turn 11 is the only late one: the ratio is its two times'.
    let late = |series: &str| report[series][10].as_f64().unwrap();
    assert_eq!(report["late_direct_ttft_ms"].as_f64().unwrap(), late("direct_ttft_ms"));
    let ratio = report["late_ratio"].as_f64().unwrap();
    assert!((ratio - late("workly_ttft_ms") / late("direct_ttft_ms")).abs() < 1e-9, "{report}");
}

#[test]
fn rpc_runs_the_model_alone_and_over_workers() {
    let dir = tempfile::tempdir().unwrap();
    let report = common::json_output(
        bench_in(dir.path())
            .args(["rpc", "--json", "--rounds", "1", "--runs", "1", "--threads", "1", "--model"])
            .arg(common::small_model()),
    );
    assert_eq!(report["workers"], 2);
    for figure in ["load_ms", "warm_ttft_ms", "prefill_tokens_per_s", "decode_tokens_per_s"] {
        let compared = &report[figure];
        let (local, split) = (compared["local"].as_f64().unwrap(), compared["split"].as_f64().unwrap());
        assert!(local > 0.0 && split > 0.0, "{figure}: {report}");
        assert!((compared["ratio"].as_f64().unwrap() - split / local).abs() < 1e-9, "{figure}: {report}");
    }
}
