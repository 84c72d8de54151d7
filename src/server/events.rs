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
use crate::avatar::FrameTap;
use crate::chat::Conversation;
use crate::chat::memory::{Exchange, Memory};
use crate::emotion::Emotion;
use crate::emotion::analyzer::{Analyzer, Update};
use crate::emotion::smoothing::TurnEmotion;
use crate::llm::{
    CancelToken, FinishReason, GenerationEvent, GenerationRequest, GenerationStats, LlmError, Prompt, SamplingParams,
};
use crate::store::{StoreError, StoredMessage};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
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

/// One reply as Kira says it: the engine's text with its emotion tags taken
/// out, the face it shows (published as `emotion` events and sent to the
/// avatar), and the reply's events on the hub. Every reply goes through one,
/// whoever asked for it.
pub struct Voice {
    state: Arc<AppState>,
    reply: String,
    analyzer: Option<Analyzer>,
}

/// What a reply said, as [`Voice::hear`] returns it.
pub enum Said {
    /// Text to show (possibly empty while a tag is undecided).
    Text(String),
    /// The end: the last text held back, the measurements and the reply's emotion.
    Done(String, Box<GenerationStats>, TurnEmotion),
    /// The generation failed.
    Failed(LlmError),
}

impl Voice {
    /// Announces reply `reply`, asked for by `source`; `cancel` stops it when
    /// the server shuts down.
    pub fn start(state: &Arc<AppState>, reply: &str, source: Source, cancel: CancelToken) -> Self {
        state.hub.publish(&ServerEvent::ReplyStarted { reply: reply.to_owned(), source });
        if let Some(avatar) = &state.avatar {
            avatar.reply_started();
        }
        state.replies.enter(reply, cancel);
        Self { state: Arc::clone(state), reply: reply.to_owned(), analyzer: Some(Analyzer::new()) }
    }

    /// Takes the engine's next event; publishes what it means.
    pub fn hear(&mut self, event: GenerationEvent) -> Said {
        match event {
            GenerationEvent::Text(piece) => {
                let Some(analyzer) = self.analyzer.as_mut() else { return Said::Text(String::new()) };
                let update = analyzer.push(&piece);
                self.show(&update);
                Said::Text(update.text)
            }
            GenerationEvent::Done(stats) => {
                let (tail, feeling) = self.conclude(&stats);
                self.announce(&stats, &feeling);
                Said::Done(tail, Box::new(stats), feeling)
            }
            GenerationEvent::Failed(error) => {
                self.fail(error.to_string());
                Said::Failed(error)
            }
        }
    }

    /// The reply's end, before it is announced: the text held back, shown,
    /// and the reply's emotion. The face relaxes and the metrics count it.
    pub fn conclude(&mut self, stats: &GenerationStats) -> (String, TurnEmotion) {
        let (update, feeling) = self.analyzer.take().unwrap_or_default().finish();
        self.show(&update);
        self.relax();
        self.state.metrics.generation(stats);
        (update.text, feeling)
    }

    /// Tells every client the reply ended (after [`Voice::conclude`]).
    pub fn announce(&self, stats: &GenerationStats, feeling: &TurnEmotion) {
        self.state.hub.publish(&ServerEvent::ReplyDone {
            reply: self.reply.clone(),
            finish_reason: stats.finish_reason,
            stats: stats.clone(),
            emotion: feeling.emotion,
            intensity: feeling.intensity,
        });
    }

    /// Tells every client the reply failed, saying why.
    pub fn fail(&mut self, message: String) {
        self.end();
        self.state.hub.publish(&ServerEvent::Error { reply: Some(self.reply.clone()), message });
    }

    fn show(&self, update: &Update) {
        if !update.text.is_empty() && self.state.hub.has_listeners() {
            self.state.hub.publish(&ServerEvent::Token { reply: self.reply.clone(), text: update.text.clone() });
        }
        if let Some(face) = update.face {
            self.state.hub.publish(&ServerEvent::Emotion {
                reply: self.reply.clone(),
                emotion: face.emotion,
                intensity: face.intensity,
            });
            if let Some(avatar) = &self.state.avatar {
                avatar.emotion(face.emotion, face.intensity);
            }
        }
    }

    /// Counts a failure that no HTTP status reports: the stream was already
    /// under way (a whole reply's failure is counted where it is returned).
    pub fn count_failure(&self) {
        self.state.metrics.error();
    }

    /// Ends a reply that has not ended yet (the analyzer goes at the end), so
    /// the avatar hears of it once whether it finished, failed or was dropped.
    fn end(&mut self) {
        if self.analyzer.take().is_some() {
            self.relax();
        }
    }

    fn relax(&self) {
        if let Some(avatar) = &self.state.avatar {
            avatar.reply_finished();
        }
    }
}

impl Drop for Voice {
    /// A reply dropped before its end (the client left) still lets the face
    /// relax; a shutdown stops waiting for it.
    fn drop(&mut self) {
        self.end();
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
            let started = match state.page.lock() {
                Ok(mut page) => page.start_new(),
                Err(_) => Err(UNAVAILABLE.to_owned()),
            };
            if let Err(message) = started {
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

/// One exchange of the page's conversation, published as it happens. The
/// exchange is saved before `reply_done` goes out; if it cannot be (a full
/// disk), the reply ends with an error instead, and the conversation goes on
/// from the last saved turn.
fn page_turn(state: &Arc<AppState>, user: &str) -> Result<(), String> {
    let _permit = state.admit().map_err(|error| error.message)?;
    let engine = state.engine().map_err(|error| error.message)?;
    let sent_at_ms = crate::store::now_ms();
    // A copy: counting tokens waits on the engine, which may be busy with a
    // whole reply, and the lock must not be held that long.
    let conversation = state.page.lock().map_err(|_| UNAVAILABLE.to_owned())?.conversation.clone();
    let recollect = |in_window| match state.page.lock() {
        Ok(page) => Ok(page.memory.recollect(user, in_window)?),
        Err(_) => Err(anyhow::anyhow!(UNAVAILABLE)),
    };
    let (messages, _) = crate::chat::memory::prompt(engine, &conversation, user, PAGE_MAX_TOKENS, recollect)
        .map_err(|error| format!("{error:#}"))?;
    let request = GenerationRequest {
        prompt: Prompt::Messages(messages),
        sampling: SamplingParams::default(),
        max_tokens: PAGE_MAX_TOKENS,
        stop: Vec::new(),
        ignore_eos: false,
    };
    let reply_id = state.reply_id();
    let mut generation = engine.generate(request).map_err(|error| error.to_string())?;
    let mut voice = Voice::start(state, &reply_id, Source::Page, generation.cancel_token());
    // The history keeps the reply as the model wrote it (tags and all), so
    // the next turn's prompt matches the cache; the store keeps what was shown.
    let mut text = String::new();
    let mut shown = String::new();
    let stats = loop {
        match generation.blocking_next() {
            Some(GenerationEvent::Done(stats)) => break stats,
            Some(GenerationEvent::Text(piece)) => {
                text.push_str(&piece);
                if let Said::Text(piece) = voice.hear(GenerationEvent::Text(piece)) {
                    shown.push_str(&piece);
                }
            }
            Some(failed) => {
                voice.hear(failed);
                return Ok(());
            }
            None => return Err("the engine stopped".to_owned()),
        }
    };
    let (tail, feeling) = voice.conclude(&stats);
    shown.push_str(&tail);
    let count = |text: &str| engine.count_tokens(Prompt::Text(text.to_owned()));
    let saved = Exchange::count(user, sent_at_ms, &shown, feeling, count)
        .map_err(|error| error.to_string())
        .and_then(|exchange| state.page.lock().map_err(|_| UNAVAILABLE.to_owned())?.save(&exchange, &text));
    match saved {
        Ok(()) => voice.announce(&stats, &feeling),
        Err(message) => {
            state.metrics.error();
            voice.fail(message);
        }
    }
    Ok(())
}

/// The conversation the page holds with Kira (shared by every connected
/// page): what the model sees, and the stored conversation behind it.
#[derive(Debug)]
pub struct PageChat {
    conversation: Conversation,
    memory: Memory,
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

impl PageChat {
    /// The page's chat: `conversation` (resumed from `memory`), where it is
    /// saved, and how many tokens of it the page shows (the context size).
    pub fn new(conversation: Conversation, memory: Memory, shown_tokens: usize) -> Self {
        Self { conversation, memory, shown_tokens }
    }

    /// The server did not start: see [`Memory::abandon`].
    pub fn abandon(&mut self) {
        self.memory.abandon();
    }

    /// The conversation's newest stored messages, for a page that opens.
    pub fn transcript(&self) -> Result<Transcript, StoreError> {
        Ok(Transcript { name: self.memory.name().to_owned(), messages: self.memory.recent(self.shown_tokens)? })
    }

    /// Saves `exchange` and then adds it to the conversation (`reply` as the
    /// model wrote it); a turn that cannot be saved is not added either.
    fn save(&mut self, exchange: &Exchange, reply: &str) -> Result<(), String> {
        self.memory.save(exchange).map_err(|error| {
            format!("this exchange could not be saved ({error}); the conversation goes on from the last saved one")
        })?;
        self.conversation.push_exchange(exchange.user(), reply);
        Ok(())
    }

    /// Starts a new stored conversation (the old one stays stored).
    fn start_new(&mut self) -> Result<(), String> {
        self.memory.start_new().map_err(|error| format!("cannot start a new conversation: {error}"))?;
        self.conversation.reset();
        Ok(())
    }
}
