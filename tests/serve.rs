//! `workly serve` as a real process on the real model, spoken to over real
//! loopback sockets with plain HTTP/1.1: health while loading, chat completions
//! whole and streamed (an SSE transcript snapshot), KV-cache reuse across
//! requests, real clients, the events WebSocket, and what the model's limits
//! make of huge requests. Request errors, the queue bound, cancellation and
//! the local-server refusals are about the router, not the model: they are
//! tested in-process (`src/server/tests.rs`).

mod common;

use common::http::{assert_openai_error, chat, request, sse_data, wait_ready};
use common::server::{connect_events, ends_reply, read_until, reply_text, say, start};

use std::process::Command;

#[test]
fn health_says_loading_then_ready_with_the_model() {
    let server = start(&[]);
    let first = request(server.address, "GET", "/health", &[], "");
    // The port answers before the model has loaded.
    assert_eq!(first.status, 503, "{first:?}");
    assert_eq!(first.json()["status"], "loading");
    assert_eq!(first.header("retry-after"), Some("1"));
    let early = chat(server.address, serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}));
    if early.status != 200 {
        assert_openai_error(&early, 503);
    }
    wait_ready(server.address);
    let ready = request(server.address, "GET", "/health", &[], "").json();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["model"], "SmolLM2-135M-Instruct.Q4_1");
    let models = request(server.address, "GET", "/v1/models", &[], "").json();
    assert_eq!(models["data"][0]["id"], "SmolLM2-135M-Instruct.Q4_1");
}

#[test]
fn whole_completions_report_usage_and_reuse_the_cache() {
    let server = start(&[]);
    wait_ready(server.address);
    let mut messages = vec![
        serde_json::json!({"role": "system", "content": "You are a helpful assistant who answers briefly."}),
        serde_json::json!({"role": "user", "content": "Name a colour."}),
    ];
    let first = chat(
        server.address,
        serde_json::json!({"model": "gpt-4o", "messages": messages, "max_tokens": 12, "temperature": 0}),
    );
    assert_eq!(first.status, 200, "{first:?}");
    let first = first.json();
    assert_eq!(first["object"], "chat.completion");
    assert_eq!(first["model"], "SmolLM2-135M-Instruct.Q4_1", "the model that served it is named");
    let reply = first["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    assert!(!reply.is_empty());
    let usage = &first["usage"];
    assert!(usage["completion_tokens"].as_u64().unwrap() <= 12);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );

    messages.push(serde_json::json!({"role": "assistant", "content": reply}));
    messages.push(serde_json::json!({"role": "user", "content": "And another one?"}));
    let second =
        chat(server.address, serde_json::json!({"messages": messages, "max_tokens": 12, "temperature": 0})).json();
    let prompt = second["usage"]["prompt_tokens"].as_u64().unwrap();
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    let first_prompt = usage["prompt_tokens"].as_u64().unwrap();
    assert!(cached >= first_prompt && cached < prompt, "the first exchange is reused: {cached} of {prompt}");

    let metrics = request(server.address, "GET", "/metrics", &[], "");
    assert_eq!(metrics.status, 200);
    let value = |name: &str| -> f64 {
        metrics
            .body
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {}", metrics.body))
    };
    assert_eq!(value("workly_requests_total"), 2.0);
    assert_eq!(value("workly_request_errors_total"), 0.0);
    assert_eq!(
        value("workly_cached_prompt_tokens_total"),
        (first["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap() + cached) as f64
    );
    assert_eq!(value("workly_time_to_first_token_seconds_count"), 2.0);
    assert!(value("workly_cache_reuse_ratio") > 0.0);
    assert!(value("workly_resident_memory_bytes") > 1e6);
    assert_eq!(value("workly_queue_depth"), 0.0);
}

#[test]
fn streamed_completion_transcript() {
    let server = start(&[]);
    wait_ready(server.address);
    let reply = chat(
        server.address,
        serde_json::json!({
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 6, "temperature": 0, "stream": true, "stream_options": {"include_usage": true},
        }),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let data = sse_data(&reply.body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> =
        data[..data.len() - 1].iter().map(|chunk| serde_json::from_str(chunk).unwrap()).collect();
    let text: String =
        chunks.iter().filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str()).collect::<String>();
    assert!(!text.is_empty());
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 6);
    // The transcript's shape, with what varies (ids, times, text, counts) redacted.
    let transcript: Vec<serde_json::Value> = chunks
        .iter()
        .map(|chunk| {
            let mut chunk = chunk.clone();
            chunk["id"] = "[id]".into();
            chunk["created"] = "[created]".into();
            if let Some(content) = chunk["choices"].get_mut(0).and_then(|choice| choice["delta"].get_mut("content"))
                && content != ""
            {
                *content = "[text]".into();
            }
            if let Some(workly) = chunk.get_mut("workly").and_then(serde_json::Value::as_object_mut) {
                workly.values_mut().for_each(|value| *value = "[n]".into());
            }
            if chunk["usage"].is_object() {
                for key in ["prompt_tokens", "total_tokens"] {
                    chunk["usage"][key] = "[n]".into();
                }
                chunk["usage"]["prompt_tokens_details"]["cached_tokens"] = "[n]".into();
            }
            chunk
        })
        .collect();
    // How many text chunks there are depends on the text: keep one of a run.
    let mut transcript = transcript;
    transcript.dedup();
    insta::assert_json_snapshot!("sse_transcript", transcript);
}

/// The key itself is tested in-process (`src/server/tests.rs`); this is the
/// command line refusing to expose the server without one.
#[test]
fn exposing_the_server_needs_an_api_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_workly"))
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--model"])
        .arg(common::small_model())
        .env_remove("WORKLY_API_KEY")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--api-key"), "{stderr}");
}

#[test]
fn a_sliding_history_window_is_shifted_not_recomputed() {
    // The original chat engine sent the system prompt and the last exchanges
    // only, so the start of the prompt changed every turn once the window was full.
    const WINDOW: usize = 2;
    let server = start(&[]);
    wait_ready(server.address);
    let system = serde_json::json!({"role": "system", "content": "You are Kira, a friendly companion. Answer in one short sentence."});
    let mut exchanges: Vec<(String, String)> = Vec::new();
    for turn in 0..6 {
        let user = format!("Tell me one thing about the number {turn}, please, in a few words.");
        let mut messages = vec![system.clone()];
        for (asked, answered) in exchanges.iter().rev().take(WINDOW).rev() {
            messages.push(serde_json::json!({"role": "user", "content": asked}));
            messages.push(serde_json::json!({"role": "assistant", "content": answered}));
        }
        messages.push(serde_json::json!({"role": "user", "content": user}));
        let reply =
            chat(server.address, serde_json::json!({"messages": messages, "max_tokens": 16, "temperature": 0})).json();
        let usage = &reply["usage"];
        let (prompt, cached) = (
            usage["prompt_tokens"].as_u64().unwrap(),
            usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap(),
        );
        if exchanges.len() > WINDOW {
            // Only the newest message (and its template tokens) is new.
            let new = prompt - cached;
            assert!(new < 40, "turn {turn}: {new} of {prompt} prompt tokens were evaluated again");
        }
        exchanges.push((user, reply["choices"][0]["message"]["content"].as_str().unwrap().to_owned()));
    }
}

#[test]
fn the_official_openai_client_works() {
    let server = start(&[]);
    wait_ready(server.address);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/openai_client.py");
    let output = Command::new(common::test_python())
        .arg(script)
        .arg(format!("http://{}/v1", server.address))
        .env("NO_PROXY", "*")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["models"], serde_json::json!(["SmolLM2-135M-Instruct.Q4_1"]));
    assert_eq!(seen["whole"]["model"], "SmolLM2-135M-Instruct.Q4_1");
    assert!(!seen["whole"]["text"].as_str().unwrap().is_empty());
    assert!(seen["whole"]["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    // Same request, greedy: streamed and whole replies agree.
    assert_eq!(seen["stream"]["text"], seen["whole"]["text"]);
    assert_eq!(seen["stream"]["finish_reason"], seen["whole"]["finish_reason"]);
    assert_eq!(seen["stream"]["usage"]["completion_tokens"], seen["whole"]["usage"]["completion_tokens"]);
    assert!(seen["stream"]["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap() > 0);
    assert_eq!(seen["error"]["status"], 400);
}

#[test]
fn plain_curl_streams_and_gets_whole_replies() {
    let server = start(&[]);
    wait_ready(server.address);
    let curl = |body: serde_json::Value| {
        let output = Command::new("curl")
            .args(["-sS", "-N", "-H", "Content-Type: application/json", "-d"])
            .arg(body.to_string())
            .arg(format!("http://{}/v1/chat/completions", server.address))
            .output()
            .expect("curl runs (scripts/setup.sh --tests installs it)");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let messages = serde_json::json!([{"role": "user", "content": "Hi"}]);
    let whole: serde_json::Value =
        serde_json::from_str(&curl(serde_json::json!({"messages": messages, "max_tokens": 4}))).unwrap();
    assert_eq!(whole["object"], "chat.completion");
    let streamed = curl(serde_json::json!({"messages": messages, "max_tokens": 4, "stream": true}));
    assert!(streamed.starts_with("data: {"), "{streamed}");
    assert!(streamed.trim_end().ends_with("data: [DONE]"), "{streamed}");
}

#[test]
fn events_stream_replies_and_take_chat_messages() {
    let server = start(&["--no-unity"]);
    let (mut socket, first) = connect_events(server.address);
    assert_eq!(first["unity"], "off", "started with --no-unity");
    if first["status"] == "loading" {
        let ready = read_until(&mut socket, |event| event["type"] == "status");
        assert_eq!(ready.last().unwrap()["status"], "ready");
    }

    // A chat message from this client: the reply streams back as events.
    say(&mut socket, "Hi Kira!");
    let events = read_until(&mut socket, ends_reply);
    assert_eq!(events[0]["type"], "reply_started");
    assert_eq!(events[0]["source"], "page");
    let reply = events[0]["reply"].clone();
    let text = reply_text(&events);
    assert!(!text.is_empty());
    let done = events.last().unwrap();
    assert_eq!(done["type"], "reply_done", "{done}");
    assert_eq!(done["reply"], reply);
    assert!(done["emotion"].is_string() && done["intensity"].is_number(), "{done}");
    // What the page shows never carries the persona's emotion tags.
    for tag in ["[joy]", "[neutral]", "[fun]", "[sorrow]", "[angry]", "[surprised]"] {
        assert!(!text.contains(tag), "{text}");
    }

    // The second message continues the same conversation: its history is cached.
    say(&mut socket, "What did I just say?");
    let events = read_until(&mut socket, |event| event["type"] == "reply_done");
    let stats = &events.last().unwrap()["stats"];
    assert!(stats["cached_tokens"].as_u64().unwrap() > 0, "{stats}");

    // An API request's reply is published too (the avatar shows Kira speaking to anyone).
    let api =
        chat(server.address, serde_json::json!({"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3}));
    assert_eq!(api.status, 200);
    let events = read_until(&mut socket, |event| event["type"] == "reply_done");
    assert!(events.iter().any(|event| event["type"] == "reply_started" && event["source"] == "api"));
    assert_eq!(events.last().unwrap()["reply"], api.json()["id"]);

    // Nonsense gets an error event, and the stream goes on.
    socket.send(tungstenite::Message::text("not json")).unwrap();
    let events = read_until(&mut socket, |event| event["type"] == "error");
    assert!(events.last().unwrap()["message"].as_str().unwrap().contains("cannot read the message"));
}

#[test]
fn events_show_the_unity_app_connecting_and_the_commands_it_gets() {
    // A port with nobody on it yet: the bridge retries until the peer comes.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unity = format!("127.0.0.1:{port}");
    let server = start(&["--unity", &unity]);
    let (mut socket, first) = connect_events(server.address);
    assert_eq!(first["unity"], format!("disconnected ({unity})"));

    let mut peer = Command::new(env!("CARGO_BIN_EXE_workly"))
        .args(["avatar", "peer", "--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Both come: the first write to Unity, and the status saying it is there.
    let connected = format!("connected ({unity})");
    let (mut commands, mut seen_connected) = (None, false);
    while commands.is_none() || !seen_connected {
        let event = read_until(&mut socket, |_| true).remove(0);
        match event["type"].as_str() {
            Some("avatar") if commands.is_none() => commands = Some(event["commands"].clone()),
            Some("status") => seen_connected |= event["unity"] == connected.as_str(),
            _ => {}
        }
    }
    // The director's set-up, as the JSON lines Unity received.
    let commands = commands.unwrap();
    let lines = commands.as_array().unwrap();
    assert!(lines.iter().any(|line| line.as_str().unwrap().contains("\"set_auto_blink\"")), "{lines:?}");
    peer.kill().unwrap();
    peer.wait().unwrap();
}

#[test]
fn huge_messages_many_messages_and_huge_max_tokens_get_clear_answers() {
    let server = start(&["--no-unity"]);
    wait_ready(server.address);
    // A 1 MB message: refused in OpenAI's shape, not truncated, no memory blow-up.
    let huge = "word ".repeat(200_000);
    let error = assert_openai_error(
        &chat(server.address, serde_json::json!({"messages": [{"role": "user", "content": huge}]})),
        400,
    );
    assert_eq!(error["code"], "context_length_exceeded");
    // 10,000 messages: the same.
    let many: Vec<_> = (0..10_000).map(|i| serde_json::json!({"role": "user", "content": format!("m{i}")})).collect();
    let error = assert_openai_error(&chat(server.address, serde_json::json!({"messages": many})), 400);
    assert_eq!(error["code"], "context_length_exceeded");
    // max_tokens of a billion: capped at the context (documented), and the reply ends.
    let capped = chat(
        server.address,
        serde_json::json!({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 1_000_000_000u64}),
    );
    assert_eq!(capped.status, 200, "{capped:?}");
    assert!(capped.json()["usage"]["completion_tokens"].as_u64().unwrap() < 8192);
}

#[test]
fn the_official_openai_client_speaks_and_transcribes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::link_voice(&data);
    let server = common::server::start_in(&data, dir.path(), &[]);
    wait_ready(server.address);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/openai_audio.py");
    let output = Command::new(common::test_python())
        .arg(script)
        .arg(format!("http://{}/v1", server.address))
        .arg(dir.path())
        .env("NO_PROXY", "*")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for language in ["en", "fr"] {
        let (said, heard) = (seen[language]["said"].as_str().unwrap(), seen[language]["heard"].as_str().unwrap());
        let error_rate = workly::bench::voice::word_error_rate(said, heard);
        assert!(error_rate <= 0.2, "{language}: {said:?} came back as {heard:?}");
        // A WAV: its header, then seconds of 24 kHz 16-bit audio.
        let bytes = std::fs::read(dir.path().join(format!("{language}.wav"))).unwrap();
        assert_eq!(&bytes[..4], b"RIFF");
        assert!(bytes.len() > 24_000 * 2 * 2, "{} bytes", bytes.len());
    }
    assert_eq!(seen["mp3"], serde_json::json!({"status": 400, "param": "response_format"}));
}
