//! `/v1/events`: a WebSocket that streams what Kira does (status, every reply's
//! text as it is generated, its end) to the page and any other client, and
//! takes chat messages from them.
//!
//! Every reply is published, whichever client asked for it (an API request
//! or a page), so the avatar shows Kira speaking to anyone. Events go through
//! one broadcast channel as serialized JSON (serialized once, however many
//! clients listen). A client too slow to keep up skips the events it missed
//! rather than making the server hold them: memory stays bounded.
//!
//! A client sends `{"type": "chat", "text": "..."}` to talk to Kira in the
//! page's conversation (the persona, the history fitted to the context) and
//! `{"type": "reset"}` to start it over.

use super::AppState;
use crate::chat::Conversation;
use crate::llm::{FinishReason, GenerationEvent, GenerationRequest, GenerationStats, Prompt, SamplingParams};
use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Events a slow client may fall behind by before it skips some.
const BACKLOG: usize = 1024;
/// Longest reply the page asks for.
const PAGE_MAX_TOKENS: u32 = 256;

/// Who asked for a reply.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// An OpenAI API request.
    Api,
    /// A chat message over `/v1/events`.
    Page,
}

/// One event, as clients receive it (`{"type": ..., ...}`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// Whether the model can answer.
    Status {
        /// `loading`, `ready` or `error`.
        status: &'static str,
        /// The model's id.
        model: String,
    },
    /// A reply started.
    ReplyStarted {
        /// The reply's id (as in the API response).
        reply: String,
        /// Who asked.
        source: Source,
    },
    /// The next piece of a reply's text.
    Token {
        /// The reply's id.
        reply: String,
        /// The text.
        text: String,
    },
    /// A reply ended.
    ReplyDone {
        /// The reply's id.
        reply: String,
        /// Why it ended.
        finish_reason: FinishReason,
        /// Its measurements.
        stats: GenerationStats,
    },
    /// Something failed (a reply, or a client's message).
    Error {
        /// The reply concerned, if any.
        reply: Option<String>,
        /// One line saying what.
        message: String,
    },
}

/// The broadcast channel all events go through.
#[derive(Debug)]
pub struct Hub {
    sender: broadcast::Sender<Arc<str>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self { sender: broadcast::channel(BACKLOG).0 }
    }
}

impl Hub {
    /// Sends `event` to every connected client (none is fine).
    pub fn publish(&self, event: &ServerEvent) {
        publish(&self.sender, event);
    }

    /// Announces reply `reply`, asked for by `source`; its events follow
    /// through the returned publisher.
    pub fn reply(&self, reply: &str, source: Source) -> ReplyEvents {
        self.publish(&ServerEvent::ReplyStarted { reply: reply.to_owned(), source });
        ReplyEvents { sender: self.sender.clone(), reply: reply.to_owned() }
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.sender.subscribe()
    }
}

fn publish(sender: &broadcast::Sender<Arc<str>>, event: &ServerEvent) {
    // Nobody listening: skip the serialization too.
    if sender.receiver_count() == 0 {
        return;
    }
    if let Ok(json) = serde_json::to_string(event) {
        let _ = sender.send(json.into());
    }
}

/// Publishes one reply's events.
#[derive(Debug)]
pub struct ReplyEvents {
    sender: broadcast::Sender<Arc<str>>,
    reply: String,
}

impl ReplyEvents {
    /// Publishes an engine event of this reply.
    pub fn forward(&self, event: &GenerationEvent) {
        let reply = self.reply.clone();
        publish(
            &self.sender,
            &match event {
                GenerationEvent::Text(text) => ServerEvent::Token { reply, text: text.clone() },
                GenerationEvent::Done(stats) => {
                    ServerEvent::ReplyDone { reply, finish_reason: stats.finish_reason, stats: stats.clone() }
                }
                GenerationEvent::Failed(error) => ServerEvent::Error { reply: Some(reply), message: error.to_string() },
            },
        );
    }
}

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    /// Talk to Kira.
    Chat { text: String },
    /// Start the page's conversation over.
    Reset,
}

/// `GET /v1/events` (a WebSocket upgrade; the origin was checked by the guard).
pub async fn events(State(state): State<Arc<AppState>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| serve_client(state, socket))
}

async fn serve_client(state: Arc<AppState>, mut socket: WebSocket) {
    let mut events = state.hub.subscribe();
    let status = state.status_event();
    if send(&mut socket, &serde_json::to_string(&status).unwrap_or_default()).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(json) => if send(&mut socket, &json).await.is_err() { return },
                // Too slow: skip what was missed, keep going with what comes next.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Text(text))) => handle(&state, text.as_str()),
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn send(socket: &mut WebSocket, json: &str) -> Result<(), axum::Error> {
    socket.send(WsMessage::Text(json.into())).await
}

fn handle(state: &Arc<AppState>, text: &str) {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Chat { text }) => {
            let state = Arc::clone(state);
            // The turn blocks on the engine (token counts, generation): keep it
            // off the async workers.
            tokio::task::spawn_blocking(move || {
                if let Err(message) = page_turn(&state, &text) {
                    state.hub.publish(&ServerEvent::Error { reply: None, message });
                }
            });
        }
        Ok(ClientMessage::Reset) => {
            if let Ok(mut conversation) = state.page.lock() {
                conversation.reset();
            }
        }
        Err(error) => state.hub.publish(&ServerEvent::Error {
            reply: None,
            message: format!("cannot read the message: {error} (expected {{\"type\": \"chat\", \"text\": \"...\"}})"),
        }),
    }
}

/// One exchange of the page's conversation, published as it happens.
fn page_turn(state: &AppState, user: &str) -> Result<(), String> {
    let _permit = state.admit().map_err(|error| error.message)?;
    let engine = state.engine().map_err(|error| error.message)?;
    let context = engine.info().context_size as usize;
    let messages = {
        let conversation = state.page.lock().map_err(|_| "the conversation is unavailable".to_owned())?;
        let reserve = (PAGE_MAX_TOKENS as usize).min(context / 2);
        conversation
            .prompt_for(user, context, reserve, |messages| engine.count_tokens(Prompt::Messages(messages.to_vec())))
            .map_err(|error| error.to_string())?
    };
    let request = GenerationRequest {
        prompt: Prompt::Messages(messages),
        sampling: SamplingParams::default(),
        max_tokens: PAGE_MAX_TOKENS,
        stop: Vec::new(),
        ignore_eos: false,
    };
    let reply_id = state.reply_id();
    let mut generation = engine.generate(request).map_err(|error| error.to_string())?;
    let events = state.hub.reply(&reply_id, Source::Page);
    let mut text = String::new();
    while let Some(event) = generation.blocking_next() {
        events.forward(&event);
        match event {
            GenerationEvent::Text(piece) => text.push_str(&piece),
            GenerationEvent::Done(stats) => {
                state.metrics.generation(&stats);
                if let Ok(mut conversation) = state.page.lock() {
                    conversation.push_exchange(user, &text);
                }
                return Ok(());
            }
            GenerationEvent::Failed(_) => return Ok(()),
        }
    }
    Err("the engine stopped".to_owned())
}

/// The page's conversation, shared by every connected page.
pub type PageConversation = Mutex<Conversation>;
