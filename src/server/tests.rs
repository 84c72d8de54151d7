//! The router tested in-process: every request goes through the same
//! middleware and handlers as a served one (tower's `oneshot`, no socket),
//! answered by a scripted engine instead of a model. Request errors, the SSE
//! sequence, the queue bound, the Host/Origin guard and the API key are about
//! the server, not the model, so they run here, in parallel and in
//! milliseconds; `tests/serve.rs` keeps what needs the real model and binary.

use super::*;
use crate::avatar::AvatarBridge;
use crate::avatar::state::AvatarState;
use crate::chat::history::History;
use crate::chat::turn::Chat;
use crate::chat::{Conversation, Persona};
use crate::hardware::{DoctorReport, GpuBackend, Hardware};
use crate::llm::scripted::Script;
use crate::store::Store;
use axum::body::Body;
use axum::http::{Request, header};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tower::ServiceExt as _;

/// What the scripted model says: an emotion tag the reader never sees.
const REPLY: &str = "[joy] What a lovely day! I am glad you are here.";

/// A server's state, ready, with a scripted engine and a page conversation
/// stored under `dir`.
fn state(dir: &std::path::Path, max_queue: usize, script: Script) -> Arc<AppState> {
    with_avatar(dir, max_queue, script, None)
}

/// The same, showing Kira's face on `avatar`.
pub(crate) fn with_avatar(
    dir: &std::path::Path,
    max_queue: usize,
    script: Script,
    avatar: Option<AvatarBridge>,
) -> Arc<AppState> {
    let history = History::open(Store::open(&dir.join("workly.db")).unwrap(), None).unwrap();
    let page = events::PageChat::new(Chat::new(Conversation::new(Persona::default()), Some(history)), 2048);
    let doctor = DoctorReport::new(Hardware::detect(false), GpuBackend::BUILT, None, None);
    let state = AppState::new(
        "scripted".to_owned(),
        max_queue,
        page,
        doctor,
        avatar,
        events::Hub::default(),
        crate::voice::VoiceFiles::new(std::path::Path::new("no-models")),
    );
    state.engine.set(Engine::scripted(script).unwrap()).unwrap();
    Arc::new(state)
}

pub(crate) fn loopback(api_key: Option<&str>) -> Policy {
    Policy::new(IpAddr::V4(Ipv4Addr::LOCALHOST), api_key.map(str::to_owned)).unwrap()
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get(path).header(header::HOST, "127.0.0.1:8080");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).unwrap()
}

pub(crate) fn chat(body: serde_json::Value) -> Request<Body> {
    post("/v1/chat/completions", body.to_string())
}

pub(crate) async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Asserts OpenAI's error shape with `status`; returns the error object.
async fn openai_error(app: &Router, request: Request<Body>, status: StatusCode) -> serde_json::Value {
    let (got, _, body) = send(app, request).await;
    assert_eq!(got, status, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let error = json["error"].clone();
    assert!(error["message"].as_str().is_some_and(|message| !message.contains('\n')), "{body}");
    assert!(error["type"].is_string(), "{body}");
    error
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(state(dir.path(), 4, Script::replies([REPLY])), loopback(None));
    let error = openai_error(&app, post("/v1/chat/completions", "{oops"), StatusCode::BAD_REQUEST).await;
    assert_eq!(error["type"], "invalid_request_error");
    let error = openai_error(&app, chat(serde_json::json!({"messages": []})), StatusCode::BAD_REQUEST).await;
    assert_eq!(error["param"], "messages");
    let huge = format!("{{\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}", "a".repeat(5 << 20));
    openai_error(&app, post("/v1/chat/completions", huge), StatusCode::PAYLOAD_TOO_LARGE).await;
    // A message longer than the context is refused, not truncated.
    let long = serde_json::json!({"messages": [{"role": "user", "content": "word ".repeat(5000)}]});
    let error = openai_error(&app, chat(long), StatusCode::BAD_REQUEST).await;
    assert_eq!(error["code"], "context_length_exceeded");
    openai_error(&app, get("/v1/nothing", &[]), StatusCode::NOT_FOUND).await;
    // Still serving after all that.
    let (status, _, body) =
        send(&app, chat(serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A multipart form with one `file` field holding `bytes`, and `fields`.
fn form(path: &str, bytes: &[u8], fields: &[(&str, &str)]) -> Request<Body> {
    const BOUNDARY: &str = "workly-test-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    body.extend(
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"said.wav\"\r\n\r\n").bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend(format!("\r\n--{BOUNDARY}--\r\n").bytes());
    Request::post(path)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn bad_audio_requests_get_openai_errors_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(state(dir.path(), 4, Script::replies([REPLY])), loopback(None));
    let speech = |body: serde_json::Value| post("/v1/audio/speech", body.to_string());
    let error =
        openai_error(&app, speech(serde_json::json!({"input": "Hi", "voice": "nobody"})), StatusCode::BAD_REQUEST)
            .await;
    assert_eq!(error["param"], "voice");
    let opus = serde_json::json!({"input": "Hi", "response_format": "opus"});
    assert_eq!(openai_error(&app, speech(opus), StatusCode::BAD_REQUEST).await["param"], "response_format");
    let fast = serde_json::json!({"input": "Hi", "speed": 4.0});
    assert_eq!(openai_error(&app, speech(fast), StatusCode::BAD_REQUEST).await["param"], "speed");
    let long = serde_json::json!({"input": "word ".repeat(3000)});
    assert_eq!(openai_error(&app, speech(long), StatusCode::BAD_REQUEST).await["param"], "input");
    // Nothing is missing until a voice is needed: then the answer says what is.
    let error = openai_error(&app, speech(serde_json::json!({"input": "Hi"})), StatusCode::INTERNAL_SERVER_ERROR).await;
    assert!(error["message"].as_str().unwrap().contains("scripts/setup.sh"), "{error}");

    let transcriptions = "/v1/audio/transcriptions";
    openai_error(&app, post(transcriptions, "{}"), StatusCode::BAD_REQUEST).await;
    let error = openai_error(&app, form(transcriptions, b"not audio", &[]), StatusCode::BAD_REQUEST).await;
    assert_eq!(error["param"], "file");
    assert!(error["message"].as_str().unwrap().contains("said.wav: not a WAV"), "{error}");
    let error = openai_error(&app, form(transcriptions, b"", &[("language", "de")]), StatusCode::BAD_REQUEST).await;
    assert_eq!(error["param"], "language");
    let error =
        openai_error(&app, form(transcriptions, b"", &[("response_format", "srt")]), StatusCode::BAD_REQUEST).await;
    assert_eq!(error["param"], "response_format");
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: &str) -> Vec<String> {
    body.lines().filter_map(|line| line.strip_prefix("data: ")).map(str::to_owned).collect()
}

#[tokio::test]
async fn a_whole_reply_and_a_streamed_one_say_the_same_without_their_tags() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(state(dir.path(), 4, Script::replies([REPLY])), loopback(None));
    let ask = |stream: bool| {
        chat(serde_json::json!({
            "messages": [{"role": "user", "content": "Hello!"}],
            "stream": stream, "stream_options": {"include_usage": true},
        }))
    };
    let (status, _, body) = send(&app, ask(false)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let whole: serde_json::Value = serde_json::from_str(&body).unwrap();
    let text = "What a lovely day! I am glad you are here.";
    assert_eq!(whole["choices"][0]["message"]["content"], text);
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert_eq!(whole["workly"]["emotion"], "joy");
    assert_eq!(whole["usage"]["completion_tokens"], 11);

    let (status, headers, body) = send(&app, ask(true)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/event-stream");
    let data = sse_data(&body);
    let chunks: Vec<serde_json::Value> =
        data[..data.len() - 1].iter().map(|chunk| serde_json::from_str(chunk).unwrap()).collect();
    // The role first, then the text, then the end with Workly's extension,
    // then the usage, then [DONE].
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks.iter().filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(streamed, text);
    let last = &chunks[chunks.len() - 2];
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_eq!(last["workly"]["emotion"], "joy");
    assert_eq!(chunks[chunks.len() - 1]["usage"]["completion_tokens"], 11);
    assert!(chunks[..chunks.len() - 1].iter().all(|chunk| chunk["usage"].is_null()));
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn requests_beyond_the_queue_bound_get_503_and_a_gone_client_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    // A reply of 200 words at 50 ms each: ten seconds unless it is cut.
    let script = Script::replies(["word ".repeat(200)]).with_token_delay(Duration::from_millis(50));
    let state = state(dir.path(), 1, script);
    let app = router(Arc::clone(&state), loopback(None));
    let long = serde_json::json!({"messages": [{"role": "user", "content": "A long story"}], "stream": true});
    // The streamed reply holds the only place in the queue while its body is unread.
    let streaming = app.clone().oneshot(chat(long)).await.unwrap();
    assert_eq!(streaming.status(), StatusCode::OK);
    let hi = || chat(serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}));
    let (status, headers, body) = send(&app, hi()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(headers[header::RETRY_AFTER], "1");

    // Going away frees the place and cuts the reply: the next request is
    // answered long before the ten seconds that reply would have taken.
    drop(streaming);
    let started = tokio::time::Instant::now();
    loop {
        let (status, _, body) = send(&app, hi()).await;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(started.elapsed() < Duration::from_secs(5), "the abandoned reply was not cut");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(state(dir.path(), 4, Script::replies([REPLY])), loopback(None));
    let health = |host: &str, origin: Option<&str>| {
        let mut request = Request::get("/health").header(header::HOST, host);
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.body(Body::empty()).unwrap()
    };
    // DNS rebinding: the browser names the attacker's host.
    openai_error(&app, health("evil.example:8080", None), StatusCode::FORBIDDEN).await;
    openai_error(&app, health("127.0.0.1.evil.example", None), StatusCode::FORBIDDEN).await;
    assert_eq!(send(&app, health("localhost:8080", None)).await.0, StatusCode::OK);
    assert_eq!(send(&app, health("[::1]:8080", None)).await.0, StatusCode::OK);
    // A page from another site, a pre-flight from it, and one from a local page.
    openai_error(&app, health("127.0.0.1:8080", Some("https://evil.example")), StatusCode::FORBIDDEN).await;
    let preflight = |origin: &str| {
        Request::options("/v1/chat/completions")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(Body::empty())
            .unwrap()
    };
    openai_error(&app, preflight("https://evil.example"), StatusCode::FORBIDDEN).await;
    let (status, headers, _) = send(&app, preflight("http://localhost:3000")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://localhost:3000");
    // A WebSocket upgrade from a foreign page.
    let upgrade = get(
        "/v1/events",
        &[
            ("Origin", "https://evil.example"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
    );
    openai_error(&app, upgrade, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn the_api_key_is_required_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(state(dir.path(), 4, Script::replies([REPLY])), loopback(Some("s3cret")));
    openai_error(&app, get("/v1/models", &[]), StatusCode::UNAUTHORIZED).await;
    openai_error(&app, get("/v1/models", &[("Authorization", "Bearer wrong")]), StatusCode::UNAUTHORIZED).await;
    let (status, _, body) = send(&app, get("/v1/models", &[("Authorization", "Bearer s3cret")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The health probe and the page need no key.
    assert_eq!(send(&app, get("/health", &[])).await.0, StatusCode::OK);
}

/// A reply whose face changes twice, so the avatar gets several commands.
pub(crate) const FEELINGS: &str = "[joy] I love this idea! [sorrow] But I will miss you so much.";

/// A Unity-like peer on a free port; the state it ends up in.
pub(crate) async fn unity_peer() -> (std::net::SocketAddr, Arc<std::sync::Mutex<AvatarState>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let state = Arc::new(std::sync::Mutex::new(AvatarState::default()));
    let seen = Arc::clone(&state);
    tokio::spawn(crate::avatar::peer::serve(listener, std::future::pending(), move |_, now: &AvatarState| {
        *seen.lock().unwrap() = now.clone();
    }));
    (address, state)
}

/// A bridge to the Unity-like peer at `address`, as `--unity` starts one.
pub(crate) fn bridge(address: std::net::SocketAddr) -> AvatarBridge {
    AvatarBridge::start(crate::avatar::BridgeConfig {
        unity: Some(address),
        vmc: Vec::new(),
        fps: None,
        director: Some(crate::avatar::DirectorConfig::default()),
        model: None,
        reconnect: crate::avatar::unity::Reconnect::default(),
        tap: None,
    })
    .unwrap()
}

/// What the peer shows once the bridge has written everything and the
/// peer has read it: the face the reply left, held for two seconds after it.
pub(crate) async fn shown(bridge: &AvatarBridge, peer: &std::sync::Mutex<AvatarState>) -> AvatarState {
    bridge.flush(Duration::from_secs(2)).unwrap();
    let mut last = peer.lock().unwrap().clone();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = peer.lock().unwrap().clone();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// The reply's emotion and intensity as a door reported them, and the
/// avatar's state after.
pub(crate) type Seen = (String, f32, AvatarState);

/// The emotion and intensity a door's JSON gives.
pub(crate) fn feeling(emotion: &serde_json::Value, intensity: &serde_json::Value) -> (String, f32) {
    (emotion.as_str().unwrap().to_owned(), intensity.as_f64().unwrap() as f32)
}

pub(crate) async fn through_the_page() -> Seen {
    let (address, peer) = unity_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let state = with_avatar(dir.path(), 4, Script::replies([FEELINGS]), Some(bridge(address)));
    let mut events = state.hub.subscribe();
    let page = Arc::clone(&state);
    tokio::task::spawn_blocking(move || events::page_turn(&page, "Guess what!", None)).await.unwrap().unwrap();
    let done = loop {
        let event: serde_json::Value = serde_json::from_str(&events.recv().await.unwrap()).unwrap();
        if event["type"] == "reply_done" {
            break event;
        }
    };
    let avatar = state.avatar.as_ref().unwrap();
    let (emotion, intensity) = feeling(&done["emotion"], &done["intensity"]);
    (emotion, intensity, shown(avatar, &peer).await)
}

pub(crate) async fn through_the_api() -> Seen {
    let (address, peer) = unity_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let state = with_avatar(dir.path(), 4, Script::replies([FEELINGS]), Some(bridge(address)));
    let app = router(Arc::clone(&state), loopback(None));
    let (status, _, body) =
        send(&app, chat(serde_json::json!({"messages": [{"role": "user", "content": "Guess what!"}]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    let avatar = state.avatar.as_ref().unwrap();
    let (emotion, intensity) = feeling(&reply["workly"]["emotion"], &reply["workly"]["intensity"]);
    (emotion, intensity, shown(avatar, &peer).await)
}

#[tokio::test]
async fn the_page_lists_edits_and_forgets_memories() {
    use crate::store::NewMessage;
    use crate::store::memories::{FORGOTTEN, MemoryKind, NewMemory};
    let dir = tempfile::tempdir().unwrap();
    let state = state(dir.path(), 4, Script::replies([REPLY]));
    let app = router(Arc::clone(&state), loopback(None));
    let (status, _, body) = send(&app, get("/v1/workly/memories", &[])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "[]"));
    // Another connection writes, as a chat turn or `workly memory add` would.
    let mut store = Store::open(&dir.path().join("workly.db")).unwrap();
    let said = store.latest_conversation().unwrap().unwrap();
    let message = "My cat is called Miso. I love jazz.";
    let memory = |kind, range: std::ops::Range<usize>| NewMemory {
        source: Some(range.clone()),
        ..NewMemory::given(kind, &message[range])
    };
    let memories = [memory(MemoryKind::Pet, 0..22), memory(MemoryKind::Like, 23..35)];
    store
        .append_exchange_remembering(&said, &NewMessage::new(message, 9), &NewMessage::new("Lovely!", 2), &memories)
        .unwrap();
    let (_, _, body) = send(&app, get("/v1/workly/memories", &[])).await;
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{body}");
    let cat = listed.as_array().unwrap().iter().find(|memory| memory["kind"] == "pet").unwrap()["id"].as_i64().unwrap();

    let patch = |path: String, body: &str| {
        Request::patch(path)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let delete =
        |path: String| Request::delete(path).header(header::HOST, "127.0.0.1:8080").body(Body::empty()).unwrap();
    let (status, _, body) =
        send(&app, patch(format!("/v1/workly/memories/{cat}"), r#"{"content": "My cat is called Noisette"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["content"], "My cat is called Noisette");
    let error =
        openai_error(&app, patch(format!("/v1/workly/memories/{cat}"), r#"{"content": " "}"#), StatusCode::BAD_REQUEST)
            .await;
    assert_eq!(error["param"], "content");
    openai_error(&app, patch(format!("/v1/workly/memories/{cat}"), "not json"), StatusCode::BAD_REQUEST).await;
    openai_error(&app, patch("/v1/workly/memories/9999".into(), r#"{"content": "x"}"#), StatusCode::NOT_FOUND).await;
    openai_error(&app, delete("/v1/workly/memories/cat".into()), StatusCode::NOT_FOUND).await;

    // Forgotten: gone from the list, and its sentence from the stored message.
    let (status, _, _) = send(&app, delete(format!("/v1/workly/memories/{cat}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    openai_error(&app, delete(format!("/v1/workly/memories/{cat}")), StatusCode::NOT_FOUND).await;
    let (_, _, body) = send(&app, get("/v1/workly/memories", &[])).await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap().as_array().unwrap().len(), 1);
    assert_eq!(store.messages(&said).unwrap()[0].content, format!("{FORGOTTEN} I love jazz."));
}
