//! Workly in front of another engine (`--backend URL`): the real
//! llama-cpp-python server answers the terminal, the page and the API; a
//! small misbehaving server plays every fault a remote can have, one per
//! request, and each comes back as one clear line (an HTTP status of a
//! gateway through the API) while the conversation keeps its saved turns.

mod common;

use common::backend::{Act, LlamaCppPython, Misbehaving};
use common::http::{assert_openai_error, chat, request, sse_data, wait_ready};
use common::server::{ends_reply, read_until, ready_events, reply_text, say, start};
use common::{assert_bad_input, chat_lines, json_output, stored, text, workly_in};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Asks `workly serve` at `address` for a streamed reply to `message`, and
/// goes away once its first words came.
fn leave_after_first_words(address: std::net::SocketAddr, message: &str) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body =
        serde_json::json!({"stream": true, "max_tokens": 200, "messages": [{"role": "user", "content": message}]})
            .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(format!("{head}{body}").as_bytes()).unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0; 1024];
    // The first chunk carries the role and no words: wait for words.
    let has_words =
        |seen: &[u8]| String::from_utf8_lossy(seen).split("\"content\":\"").skip(1).any(|rest| !rest.starts_with('"'));
    while !has_words(&seen) {
        let read = stream.read(&mut buffer).unwrap();
        assert!(read > 0, "the stream ended: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..read]);
    }
}

#[test]
fn a_real_llama_cpp_python_server_answers_the_terminal_the_page_and_the_api() {
    let engine = LlamaCppPython::start(2048);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();

    // The terminal: two turns, stored like any others.
    let (turns, stderr) =
        chat_lines(
            workly_in(data)
                .args(["chat", "--json", "--no-memory", "--conversation", "far", "--temperature", "0"])
                .args(["--max-tokens", "24", "--backend", &engine.url]),
            &["Hello! Who are you?", "Tell me about the sea."],
        );
    assert!(stderr.contains(&format!("smollm2 at {}", engine.url)), "{stderr}");
    assert_eq!(turns.len(), 2, "{stderr}");
    for turn in &turns {
        assert!(!turn["text"].as_str().unwrap().trim().is_empty(), "{turn}");
        assert!(turn["completion_tokens"].as_u64().unwrap() > 0, "{turn}");
        assert!(turn["prompt_tokens"].as_u64().unwrap() > 0, "{turn}");
    }
    let messages = stored(data, "far");
    let roles: Vec<&str> = messages.iter().map(|(role, _)| role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(messages[2].1, "Tell me about the sea.");

    // `doctor` says what it found there.
    let doctor = json_output(workly_in(data).args(["doctor", "--json", "--backend", &engine.url]));
    let backend = &doctor["backend"];
    assert_eq!((backend["dialect"].as_str(), backend["model"].as_str()), (Some("llama-cpp-python"), Some("smollm2")));
    assert_eq!(backend["counting"], "tokenized");
    assert!(backend["latency_ms"].as_f64().unwrap() >= 0.0);

    // The page and the API of a `workly serve` in front of it.
    let server = start(&["--backend", &engine.url, "--no-memory"]);
    wait_ready(server.address);
    let streamed = chat(
        server.address,
        serde_json::json!({"model": "smollm2", "stream": true, "max_tokens": 16, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hello."}]}),
    );
    assert_eq!(streamed.status, 200, "{streamed:?}");
    let data_lines = sse_data(&streamed.body);
    assert_eq!(data_lines.last().map(String::as_str), Some("[DONE]"), "{}", streamed.body);
    let content: String = data_lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert!(!content.trim().is_empty(), "{}", streamed.body);
    // A client that leaves mid-reply cuts it, and the next request is answered.
    leave_after_first_words(server.address, "Tell me a very long story about the sea.");
    let after =
        chat(server.address, serde_json::json!({"max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]}));
    assert_eq!(after.status, 200, "{after:?}");
    let mut events = ready_events(server.address);
    say(&mut events, "Hi Kira, how are you?");
    let reply = read_until(&mut events, ends_reply);
    assert_eq!(reply.last().unwrap()["type"], "reply_done", "{reply:?}");
    assert!(!reply_text(&reply).trim().is_empty(), "{reply:?}");
    let doctor = request(server.address, "GET", "/v1/workly/doctor", &[], "").json();
    assert_eq!(doctor["engine"]["remote"]["url"], engine.url.as_str());
    let metrics = request(server.address, "GET", "/metrics", &[], "").body;
    assert!(metrics.contains("workly_backend_errors_total{kind=\"unreachable\"} 0"), "{metrics}");
    // Four replies had a first token: the streamed one, the cut one, the one after it, the page's.
    assert!(metrics.contains("workly_time_to_first_token_seconds_count 4"), "{metrics}");
}

#[test]
fn a_cancelled_reply_closes_the_remote_stream_and_the_next_one_comes() {
    // The persona's warm-up takes the first reply.
    let backend = Misbehaving::start(vec![Act::Reply("Ready."), Act::Endless, Act::Reply("Back again.")], None);
    let server = start(&["--backend", &backend.url, "--no-memory"]);
    wait_ready(server.address);
    // The client goes away mid-reply: the remote's stream, which would go on
    // for a minute, is closed.
    leave_after_first_words(server.address, "Sing.");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !backend.hung_up.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(backend.hung_up.load(Ordering::SeqCst), "the remote stream was left open");
    let next = chat(server.address, serde_json::json!({"messages": [{"role": "user", "content": "Again?"}]}));
    assert_eq!(next.json()["choices"][0]["message"]["content"], "Back again.", "{next:?}");
    assert_eq!(backend.requests.load(Ordering::SeqCst), 3);
}

#[test]
fn each_fault_is_one_line_in_the_chat_and_the_conversation_keeps_its_turns() {
    let backend = Misbehaving::start(
        vec![
            Act::Reply("Ready."),
            Act::Reply("Hello there."),
            Act::Status(500),
            Act::Cut,
            Act::WebPage,
            Act::FailMidway,
            // A gateway not ready yet is asked again, and answers.
            Act::Status(503),
            Act::Reply("Back again."),
        ],
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let (turns, stderr) = chat_lines(
        workly_in(dir.path()).args([
            "chat",
            "--json",
            "--no-memory",
            "--conversation",
            "faults",
            "--backend",
            &backend.url,
        ]),
        &["one", "two", "three", "four", "five", "six"],
    );
    let texts: Vec<&str> = turns.iter().map(|turn| turn["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Hello there.", "Back again."], "{stderr}");
    let faults: Vec<&str> = stderr.lines().filter(|line| line.contains("workly: the back-end")).collect();
    assert_eq!(faults.len(), 4, "{stderr}");
    for (fault, words) in faults.iter().zip([
        "answered HTTP 500: the model is overloaded",
        "cut the reply off",
        "does not answer in OpenAI's shape: not a stream of events: <html>",
        "failed mid-reply: CUDA out of memory",
    ]) {
        assert!(fault.contains(&backend.url) && fault.contains(words), "{fault:?} should say {words:?}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Nothing is sent twice but the request the gateway turned away.
    assert_eq!(backend.requests.load(Ordering::SeqCst), 8);
    let messages = stored(dir.path(), "faults");
    let said: Vec<&str> = messages.iter().map(|(_, content)| content.as_str()).collect();
    assert_eq!(said, ["one", "Hello there.", "six", "Back again."]);
    // The last turn was sent with the saved turns only.
    let last = backend.bodies.lock().unwrap().last().unwrap().clone();
    let sent: Vec<&str> = last["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(sent[1..], ["one", "Hello there.", "six"]);
    assert_eq!(last["stream"], true);
}

#[test]
fn the_api_answers_a_gateways_statuses_and_the_page_an_error_event() {
    let mut backend = Misbehaving::start(
        vec![Act::Reply("Ready."), Act::Status(500), Act::WebPage, Act::Silent, Act::Cut, Act::Reply("Fine.")],
        None,
    );
    let server = start(&["--backend", &backend.url, "--backend-timeout", "1", "--no-memory"]);
    wait_ready(server.address);
    let ask = || chat(server.address, serde_json::json!({"messages": [{"role": "user", "content": "Hi"}]}));
    for (status, code) in [(502, "status"), (502, "shape"), (504, "timeout")] {
        let error = assert_openai_error(&ask(), status);
        assert_eq!((error["code"].as_str(), error["type"].as_str()), (Some(code), Some("server_error")), "{error}");
    }
    let mut events = ready_events(server.address);
    say(&mut events, "Hello?");
    let failed = read_until(&mut events, ends_reply);
    let last = failed.last().unwrap();
    assert_eq!(last["type"], "error", "{failed:?}");
    assert!(last["message"].as_str().unwrap().contains("cut the reply off"), "{last}");
    say(&mut events, "Still there?");
    let reply = read_until(&mut events, ends_reply);
    assert_eq!(reply_text(&reply), "Fine.", "{reply:?}");
    // The page's conversation kept the exchange that was answered, not the cut one.
    let transcript = request(server.address, "GET", "/v1/workly/conversation", &[], "").json();
    let said: Vec<&str> =
        transcript["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(said, ["Still there?", "Fine."], "{transcript}");

    // The back-end goes away: the API says so, and so does /metrics.
    backend.stop();
    let error = assert_openai_error(&ask(), 502);
    assert_eq!(error["code"], "unreachable", "{error}");
    let metrics = request(server.address, "GET", "/metrics", &[], "").body;
    for kind in ["status", "shape", "timeout", "cut", "unreachable"] {
        assert!(metrics.contains(&format!("workly_backend_errors_total{{kind=\"{kind}\"}} 1")), "{kind}: {metrics}");
    }
}

#[test]
fn a_wrong_key_a_missing_model_or_no_server_is_said_at_start() {
    let backend = Misbehaving::start(vec![Act::Reply("Ready."), Act::Reply("Open sesame.")], Some("sesame"));
    let dir = tempfile::tempdir().unwrap();
    let ask = |extra: &[&str]| {
        workly_in(dir.path()).args(["chat", "-p", "Hi"]).args(extra).env_remove("WORKLY_BACKEND_KEY").output().unwrap()
    };
    let refused = ask(&["--backend", &backend.url]);
    assert_bad_input(&refused, &["refused the key (HTTP 401)", "WORKLY_BACKEND_KEY"]);
    let wrong = ask(&["--backend", &backend.url, "--backend-key", "open"]);
    assert_bad_input(&wrong, &["refused the key"]);
    let missing = ask(&["--backend", &backend.url, "--backend-key", "sesame", "--backend-model", "gpt-9"]);
    assert_bad_input(&missing, &["has no model `gpt-9`", "it serves: fake"]);
    let answered = workly_in(dir.path())
        .args(["chat", "-p", "Hi", "--backend", &backend.url])
        .env("WORKLY_BACKEND_KEY", "sesame")
        .output()
        .unwrap();
    assert_eq!(text(&answered.stdout).trim(), "Open sesame.", "{}", text(&answered.stderr));
    assert_bad_input(&ask(&["--backend", "ftp://gpu-box/v1"]), &["is not a back-end URL"]);
    assert_bad_input(&ask(&["--backend", &backend.url, "--model", "smollm2"]), &["--model"]);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nobody = ask(&["--backend", &format!("http://127.0.0.1:{port}/v1")]);
    let stderr = text(&nobody.stderr);
    assert_eq!(nobody.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot reach the back-end") && stderr.contains("refused"), "{stderr}");
}
