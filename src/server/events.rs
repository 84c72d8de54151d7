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
use super::error::ApiError;
use crate::avatar::FrameTap;
use crate::chat::history::History;
use crate::chat::turn::{Chat, Outcome, ReplyOptions, Saved, Sink, Turn};
use crate::emotion::Emotion;
use crate::emotion::smoothing::Face;
use crate::llm::{CancelToken, FinishReason, GenerationStats, SamplingParams};
use crate::store::memories::StoredMemory;
use crate::store::{StoreError, StoredMessage};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade, close_code};
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
    /// Whether the model can answer, and whether the avatar's renderers are there.
    Status {
        /// `loading`, `ready` or `error`.
        status: &'static str,
        /// The model's id.
        model: String,
        /// The Unity app: `connected (ADDRESS)`, `disconnected (ADDRESS)` or `off`.
        unity: String,
        /// VMC receivers, the same way.
        vmc: String,
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
    /// The face Kira shows changed while a reply streams.
    Emotion {
        /// The reply's id.
        reply: String,
        /// The emotion.
        emotion: Emotion,
        /// How strongly, 0 to 1.
        intensity: f32,
    },
    /// A reply ended.
    ReplyDone {
        /// The reply's id.
        reply: String,
        /// Why it ended.
        finish_reason: FinishReason,
        /// Its measurements.
        stats: GenerationStats,
        /// The reply's emotion over the whole turn.
        emotion: Emotion,
        /// How strongly, 0 to 1.
        intensity: f32,
    },
    /// Commands written to the Unity app, as the lines it received.
    Avatar {
        /// The JSON lines of one write, in order.
        commands: Vec<String>,
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
    /// Whether any client listens (events for nobody need not be built).
    pub fn has_listeners(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Sends `event` to every connected client (none is fine).
    pub fn publish(&self, event: &ServerEvent) {
        publish(&self.sender, event);
    }

    /// Publishes each frame the avatar bridge writes to Unity as an `avatar`
    /// event: clients see exactly what the renderer got.
    pub fn avatar_tap(&self) -> FrameTap {
        let sender = self.sender.clone();
        FrameTap(Arc::new(move |frame: &str| {
            // Skip splitting the frame when nobody listens.
            if sender.receiver_count() > 0 {
                let commands = frame.lines().map(str::to_owned).collect();
                publish(&sender, &ServerEvent::Avatar { commands });
            }
        }))
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
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

/// One reply as the server tells it: its events on the hub (`reply_started`,
/// `token`, `emotion`, then `reply_done` or `error`), its place among the
/// replies a shutdown cuts and waits for, and its measurements. Every reply
/// has one, whoever asked for it; the chat turn reads the reply and drives the
/// avatar, this only publishes.
pub struct Voice {
    state: Arc<AppState>,
    reply: String,
    source: Source,
    /// Whether `reply_started` went out (failures after it name the reply).
    started: bool,
}

impl Voice {
    /// Reply `reply`, asked for by `source`; `cancel` cuts it when the server
    /// shuts down.
    pub fn new(state: &Arc<AppState>, reply: &str, source: Source, cancel: &CancelToken) -> Self {
        state.replies.enter(reply, cancel.clone());
        Self { state: Arc::clone(state), reply: reply.to_owned(), source, started: false }
    }

    /// Whether the reply has started (its generation is under way or done).
    pub fn has_started(&self) -> bool {
        self.started
    }

    /// Counts the finished reply's measurements, and what the recital guard did to it.
    pub fn conclude(&self, outcome: &Outcome) {
        self.state.metrics.generation(&outcome.stats);
        self.state.metrics.guarded(outcome.guarded);
    }

    /// Tells every client the reply ended (after it was saved, if it is kept).
    pub fn announce(&self, outcome: &Outcome) {
        let stats = &outcome.stats;
        self.state.hub.publish(&ServerEvent::ReplyDone {
            reply: self.reply.clone(),
            finish_reason: stats.finish_reason,
            stats: stats.clone(),
            emotion: outcome.feeling.emotion,
            intensity: outcome.feeling.intensity,
        });
    }

    /// Tells every client the reply failed, saying why.
    pub fn fail(&self, message: String) {
        self.state.hub.publish(&ServerEvent::Error { reply: Some(self.reply.clone()), message });
    }

    /// Counts a failure that no HTTP status reports: the stream was already
    /// under way (a whole reply's failure is counted where it is returned).
    pub fn count_failure(&self) {
        self.state.metrics.error();
    }
}

impl Sink for Voice {
    fn started(&mut self) {
        self.started = true;
        self.state.hub.publish(&ServerEvent::ReplyStarted { reply: self.reply.clone(), source: self.source });
    }

    fn text(&mut self, piece: &str) -> bool {
        if self.state.hub.has_listeners() {
            self.state.hub.publish(&ServerEvent::Token { reply: self.reply.clone(), text: piece.to_owned() });
        }
        true
    }

    fn face(&mut self, face: Face) {
        self.state.hub.publish(&ServerEvent::Emotion {
            reply: self.reply.clone(),
            emotion: face.emotion,
            intensity: face.intensity,
        });
    }
}

impl Drop for Voice {
    /// A reply dropped before its end (the client left) stops being waited for.
    fn drop(&mut self) {
        self.state.replies.leave(&self.reply);
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
    // A browser that offered protocols (the page does, to carry an API key)
    // needs one of them chosen.
    upgrade.protocols(["workly"]).on_upgrade(move |socket| serve_client(state, socket))
}

async fn serve_client(state: Arc<AppState>, mut socket: WebSocket) {
    let mut events = state.hub.subscribe();
    let mut closing = state.closing.subscribe();
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
            // The server is stopping and every reply has ended: send what is
            // left, then say goodbye.
            () = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                while let Ok(json) = events.try_recv() {
                    if send(&mut socket, &json).await.is_err() { return }
                }
                let frame = CloseFrame { code: close_code::AWAY, reason: "the server is stopping".into() };
                let _ = socket.send(WsMessage::Close(Some(frame))).await;
                return;
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
            if let Err(message) = state.page.start_new() {
                state.hub.publish(&ServerEvent::Error { reply: None, message });
            }
        }
        Err(error) => state.hub.publish(&ServerEvent::Error {
            reply: None,
            message: format!("cannot read the message: {error} (expected {{\"type\": \"chat\", \"text\": \"...\"}})"),
        }),
    }
}

/// What a page turn says when the conversation's lock was poisoned.
const UNAVAILABLE: &str = "the conversation is unavailable";

/// How the page's replies are shaped.
fn page_options() -> ReplyOptions {
    ReplyOptions {
        sampling: SamplingParams::default(),
        max_tokens: PAGE_MAX_TOKENS,
        stop: Vec::new(),
        unguarded: false,
    }
}

/// One exchange of the page's conversation, through the chat turn, published
/// as it happens. The exchange is saved before `reply_done` goes out; if it
/// cannot be (a full disk), the reply ends with an error instead, and the
/// conversation goes on from the last saved turn.
pub(crate) fn page_turn(state: &Arc<AppState>, user: &str) -> Result<(), String> {
    let _permit = state.admit().map_err(|error| error.message)?;
    let engine = state.engine().map_err(|error| error.message)?;
    let reply_id = state.reply_id();
    let cancel = CancelToken::new();
    let mut voice = Voice::new(state, &reply_id, Source::Page, &cancel);
    let options = page_options();
    let turn = Turn { engine, avatar: state.avatar.as_ref(), options: &options, cancel };
    match turn.chat(&state.page.chat, user, &mut voice) {
        Ok(outcome) => {
            voice.conclude(&outcome);
            match &outcome.saved {
                Saved::Failed(error) => {
                    state.metrics.error();
                    voice.fail(format!(
                        "this exchange could not be saved ({error}); the conversation goes on from the last saved one"
                    ));
                }
                Saved::Kept | Saved::NotKept => voice.announce(&outcome),
            }
            Ok(())
        }
        // The reply was announced: its failure names it.
        Err(error) if voice.has_started() => {
            voice.fail(error.to_string());
            Ok(())
        }
        Err(error) => Err(error.to_string()),
    }
}

/// The conversation the page holds with Kira (shared by every connected
/// page): what the model sees, and the stored conversation behind it.
#[derive(Debug)]
pub struct PageChat {
    chat: Mutex<Chat>,
    /// Tokens of stored history the page shows: what a context holds.
    shown_tokens: usize,
}

/// What `GET /v1/workly/conversation` answers.
#[derive(Debug, Serialize)]
pub struct Transcript {
    /// The stored conversation's name.
    pub name: String,
    /// Its newest messages, as many as the model's context holds, oldest first.
    pub messages: Vec<StoredMessage>,
}

/// A memory the store refused to show, change or forget, as the API says it:
/// an unknown number is 404, words that cannot be a memory 400.
fn memory_error(error: StoreError) -> ApiError {
    match error {
        StoreError::UnknownMemory(_) => ApiError::not_found(error.to_string()),
        StoreError::InvalidMemory { .. } => ApiError::invalid_param("content", error.to_string()),
        error => ApiError::internal(error.to_string()),
    }
}

impl PageChat {
    /// The page's chat (resumed and kept by its history), and how many tokens
    /// of it the page shows (the context size).
    pub fn new(chat: Chat, shown_tokens: usize) -> Self {
        Self { chat: Mutex::new(chat), shown_tokens }
    }

    /// The server did not start: see [`Chat::abandon`].
    pub fn abandon(&self) {
        if let Ok(mut chat) = self.chat.lock() {
            chat.abandon();
        }
    }

    /// The conversation's newest stored messages, for a page that opens.
    pub fn transcript(&self) -> Result<Transcript, String> {
        let chat = self.chat.lock().map_err(|_| UNAVAILABLE.to_owned())?;
        let Some(history) = chat.history() else { return Ok(Transcript { name: String::new(), messages: Vec::new() }) };
        let messages = history.recent(self.shown_tokens).map_err(|error: StoreError| error.to_string())?;
        Ok(Transcript { name: history.name().to_owned(), messages })
    }

    /// Every memory kept, the most recently said first (none when the page's
    /// conversation is not kept).
    pub fn memories(&self) -> Result<Vec<StoredMemory>, ApiError> {
        let chat = self.locked()?;
        chat.history().map_or(Ok(Vec::new()), History::memories).map_err(memory_error)
    }

    /// Rewrites memory `id` as `content`.
    pub fn edit_memory(&self, id: i64, content: &str) -> Result<(), ApiError> {
        self.locked()?.edit_memory(id, content).map_err(memory_error)
    }

    /// Forgets memory `id`, and its sentence leaves the conversation the model sees.
    pub fn forget_memory(&self, id: i64) -> Result<(), ApiError> {
        self.locked()?.forget_memory(id, self.shown_tokens).map_err(memory_error)
    }

    fn locked(&self) -> Result<std::sync::MutexGuard<'_, Chat>, ApiError> {
        self.chat.lock().map_err(|_| ApiError::internal(UNAVAILABLE))
    }

    /// Starts a new stored conversation (the old one stays stored).
    fn start_new(&self) -> Result<(), String> {
        let mut chat = self.chat.lock().map_err(|_| UNAVAILABLE.to_owned())?;
        chat.start_new().map_err(|error| format!("cannot start a new conversation: {error}"))
    }
}
