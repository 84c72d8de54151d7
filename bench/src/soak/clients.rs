//! The load: API clients, each holding a streamed multi-turn conversation on
//! `/v1/chat/completions`, and one WebSocket client chatting in the page's
//! conversation over `/v1/events` and counting the events it hears. They run
//! on threads until the deadline and count what they see in the run's tally.

use super::{EventCounts, Tally};
use crate::sse::{message, stream_reply};
use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use workly::bench::llm::SCRIPT;
use workly::chat::Persona;

/// Exchanges an API client keeps in its history (older ones are dropped, as
/// an app with a short memory would).
const HISTORY_EXCHANGES: usize = 3;
/// Turns after which a client starts a new conversation, so prompts (and the
/// server's page conversation) stay bounded however long the soak runs.
const RESTART_EVERY: usize = 8;
/// Longest a reply may take, queueing included, before it counts as an error.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// One API client: a streamed conversation, turn after turn, until the deadline.
pub(super) fn api_client(client: usize, base_url: &str, max_tokens: u32, deadline: Instant, tally: &Tally) {
    let agent = ureq::Agent::config_builder()
        // Statuses are counted here, not turned into transport errors.
        .http_status_as_error(false)
        .timeout_global(Some(REPLY_TIMEOUT))
        .build()
        .new_agent();
    let url = format!("{base_url}/v1/chat/completions");
    let who = format!("API client {client}");
    let system = message("system", &Persona::default().system_prompt);
    let mut history: VecDeque<[serde_json::Value; 2]> = VecDeque::with_capacity(HISTORY_EXCHANGES + 1);
    // Clients start at different lines, so their prompts differ.
    let mut turn = client * 5;
    while Instant::now() < deadline {
        if turn.is_multiple_of(RESTART_EVERY) {
            history.clear();
        }
        let user = SCRIPT[turn % SCRIPT.len()];
        turn += 1;
        let mut messages = vec![system.clone()];
        messages.extend(history.iter().flatten().cloned());
        messages.push(message("user", user));
        let body = serde_json::json!({ "messages": messages, "max_tokens": max_tokens, "stream": true });
        let sent = Instant::now();
        match stream_reply(&agent, &url, &body, sent) {
            Ok(reply) => {
                tally.record(sent, |window| {
                    window.api_requests += 1;
                    window.ttft_ms.extend(reply.ttft_ms);
                    window.server_ttft_ms.extend(reply.server_ttft_ms());
                });
                history.push_back([message("user", user), message("assistant", &reply.text)]);
                if history.len() > HISTORY_EXCHANGES {
                    history.pop_front();
                }
            }
            Err(error) => {
                tally.record(sent, |window| window.api_requests += 1);
                tally.error(sent, &who, error);
                // A server in trouble is not hammered in a tight loop.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// The page's side: chat turns over `/v1/events`, one at a time, until the
/// deadline; every event heard is counted.
pub(super) fn page_client(address: SocketAddr, deadline: Instant, tally: &Tally) -> EventCounts {
    let mut counts = EventCounts::default();
    let opened = Instant::now();
    let connect = || -> workly::error::Result<tungstenite::WebSocket<TcpStream>> {
        let stream = TcpStream::connect(address)?;
        // Short reads, so the deadline and the reply timeout are noticed.
        stream.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(tungstenite::client(format!("ws://{address}/v1/events"), stream).map_err(workly::error::Error::failure)?.0)
    };
    let mut socket = match connect() {
        Ok(socket) => socket,
        Err(error) => {
            tally.error(opened, "WebSocket client", format!("cannot connect: {error:#}"));
            return counts;
        }
    };
    // The turn waiting for its reply: when it was sent, and its reply's id
    // once `reply_started` named it.
    let mut waiting: Option<(Instant, Option<String>)> = None;
    let mut turn: usize = 0;
    loop {
        if waiting.is_none() {
            if Instant::now() >= deadline {
                break;
            }
            if turn > 0 && turn.is_multiple_of(RESTART_EVERY) {
                let _ = socket.send(tungstenite::Message::text(r#"{"type":"reset"}"#));
            }
            let chat = serde_json::json!({ "type": "chat", "text": SCRIPT[turn % SCRIPT.len()] });
            turn += 1;
            let sent = Instant::now();
            tally.record(sent, |window| window.page_turns += 1);
            if let Err(error) = socket.send(tungstenite::Message::text(chat.to_string())) {
                tally.error(sent, "WebSocket client", format!("cannot send: {error}"));
                break;
            }
            waiting = Some((sent, None));
        }
        if let Some((sent, _)) = &waiting
            && sent.elapsed() > REPLY_TIMEOUT
        {
            tally.error(*sent, "WebSocket client", format!("no reply in {} s", REPLY_TIMEOUT.as_secs()));
            waiting = None;
            continue;
        }
        let text = match socket.read() {
            Ok(tungstenite::Message::Text(text)) => text,
            Ok(tungstenite::Message::Close(_)) => {
                tally.error(
                    waiting.map_or(Instant::now(), |(sent, _)| sent),
                    "WebSocket client",
                    "closed by the server".to_owned(),
                );
                return counts;
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(error))
                if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
            {
                continue;
            }
            Err(error) => {
                tally.error(
                    waiting.map_or(Instant::now(), |(sent, _)| sent),
                    "WebSocket client",
                    format!("read failed: {error}"),
                );
                return counts;
            }
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
            tally.error(Instant::now(), "WebSocket client", format!("unreadable event {text:?}"));
            continue;
        };
        counts.received += 1;
        let reply = event["reply"].as_str();
        match event["type"].as_str().unwrap_or_default() {
            "reply_started" => {
                // Only this client chats in the page: a page reply is its own.
                if event["source"] == "page"
                    && let Some((_, id @ None)) = &mut waiting
                {
                    *id = reply.map(str::to_owned);
                }
            }
            "token" => counts.token += 1,
            "avatar" => counts.avatar += 1,
            "reply_done" => {
                counts.reply_done += 1;
                if waiting.as_ref().is_some_and(|(_, id)| id.is_some() && id.as_deref() == reply) {
                    waiting = None;
                }
            }
            "error" => {
                counts.error += 1;
                // No reply named: this client's message or turn failed. A
                // named one is this client's, or an API reply its own client counts.
                let ours = reply.is_none() || waiting.as_ref().is_some_and(|(_, id)| id.as_deref() == reply);
                if ours {
                    let sent = waiting.take().map_or(Instant::now(), |(sent, _)| sent);
                    tally.error(sent, "WebSocket client", event["message"].as_str().unwrap_or_default().to_owned());
                }
            }
            _ => {}
        }
    }
    let _ = socket.close(None);
    // Read the close handshake through, so the server sees a clean goodbye.
    while socket.read().is_ok() {}
    counts
}
