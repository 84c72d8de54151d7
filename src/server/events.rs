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
use super::talk::{self, SpokenTurn, Stopped};
use crate::avatar::FrameTap;
use crate::avatar::mouth::MouthTrack;
use crate::chat::history::History;
use crate::chat::persona::Language;
use crate::chat::turn::{Chat, Outcome, ReplyOptions, Saved, Sink, Turn};
use crate::emotion::Emotion;
use crate::emotion::smoothing::Face;
use crate::llm::{CancelToken, FinishReason, GenerationStats, SamplingParams};
use crate::store::memories::StoredMemory;
use crate::store::{StoreError, StoredMessage};
use crate::voice::Voice as VoiceName;
use crate::voice::ear::{Ear, Heard, TooLong};
use crate::voice::listen::EarlyTranscripts;
use crate::voice::speak::VoiceSettings;
use crate::voice::speech::{Stages, speak_while_writing};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
        /// How Kira speaks, unless the page says otherwise.
        voice: VoiceShown,
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
    /// A page's microphone heard the person start speaking (a page playing
    /// Kira's voice stops it).
    SpeechStarted,
    /// What a page's microphone heard, recognized (empty: no speech).
    Heard {
        /// The words, which become the person's message.
        text: String,
        /// Seconds of audio heard.
        seconds: f64,
    },
    /// A sentence of a spoken reply, to play after the one before.
    Audio {
        /// The reply's id.
        reply: String,
        /// 0 for the reply's first sentence.
        index: usize,
        /// The sentence as written.
        text: String,
        /// How long it lasts.
        seconds: f64,
        /// The audio: a WAV (24 kHz, 16-bit, mono), in base64.
        wav: String,
        /// The mouth, frame by frame from the audio's start.
        mouth: MouthTrack,
    },
    /// How long a spoken reply's stages took.
    VoiceStages {
        /// The reply's id.
        reply: String,
        /// The stages, in milliseconds.
        stages: Stages,
    },
    /// Kira was interrupted: the history keeps only what she said of the reply.
    Interrupted {
        /// The reply's id.
        reply: String,
        /// What the history keeps of it.
        kept: String,
    },
    /// Something failed (a reply, or a client's message).
    Error {
        /// The reply concerned, if any.
        reply: Option<String>,
        /// One line saying what.
        message: String,
    },
}

/// Kira's voice settings as the page shows them.
#[derive(Debug, Clone, Serialize)]
pub struct VoiceShown {
    /// The voice chosen (`af_heart`…), or `null` for hers in each language.
    pub voice: Option<&'static str>,
    /// How fast she speaks.
    pub speed: f32,
    /// How loud.
    pub volume: f32,
}

impl VoiceShown {
    /// `settings`, shown.
    pub fn of(settings: &VoiceSettings) -> Self {
        Self { voice: settings.voice.map(VoiceName::name), speed: settings.speed, volume: settings.volume }
    }
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

/// What a client may send (besides its microphone, as binary messages;
/// see [`super::talk`]).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    /// Talk to Kira; with `speak`, she answers aloud, in `voice` at `speed`
    /// when the page sets them.
    Chat {
        text: String,
        #[serde(default)]
        speak: bool,
        #[serde(flatten)]
        voice: PageVoiceSettings,
    },
    /// Start the page's conversation over.
    Reset,
    /// The microphone's audio follows; `language` (`en` or `fr`) is the one
    /// to hear until the conversation has its own.
    Listen {
        #[serde(default)]
        hands_free: bool,
        language: Option<String>,
        #[serde(flatten)]
        voice: PageVoiceSettings,
    },
    /// The microphone stopped: what it heard is the message.
    ListenEnd,
    /// The page started playing sentence `index` of `reply`.
    Playing { reply: String, index: usize },
    /// The person stopped Kira `seconds` into sentence `index` of `reply`.
    Stop { reply: String, index: usize, seconds: f64 },
}

/// The voice and speed a page asks for its spoken replies (the server's
/// settings where it says nothing).
#[derive(Debug, Default, Deserialize)]
struct PageVoiceSettings {
    voice: Option<String>,
    speed: Option<f32>,
}

impl PageVoiceSettings {
    /// The server's `settings` with the page's choices over them.
    fn over(&self, settings: &VoiceSettings) -> Result<VoiceSettings, String> {
        let voice = self.voice.as_deref().or(settings.voice.map(VoiceName::name));
        VoiceSettings::new(voice, self.speed.unwrap_or(settings.speed), settings.volume)
            .map_err(|error| error.to_string())
    }
}

/// A page's microphone while it listens, the language it hears, and how
/// Kira answers.
struct Listening {
    ear: Ear,
    language: Language,
    voice: VoiceSettings,
    /// The utterance recognized at its pause, for the turn it may end.
    early: Arc<EarlyTranscripts>,
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
    let mut listening: Option<Listening> = None;
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
                Some(Ok(WsMessage::Text(text))) => handle(&state, text.as_str(), &mut listening),
                Some(Ok(WsMessage::Binary(pcm))) => hear(&state, &pcm, &mut listening),
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

fn handle(state: &Arc<AppState>, text: &str, listening: &mut Option<Listening>) {
    let fail = |message: String| state.hub.publish(&ServerEvent::Error { reply: None, message });
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(ClientMessage::Chat { text, speak, voice }) => {
            let voice = match voice.over(&state.voice_settings) {
                Ok(voice) => voice,
                Err(message) => return fail(message),
            };
            let spoken = speak.then(|| SpokenTurn { heard: None, message_at: Instant::now(), voice });
            // The turn blocks on the engine (token counts, generation): keep it
            // off the async workers.
            in_background(state, move |state| page_turn(state, &text, spoken));
        }
        Ok(ClientMessage::Reset) => {
            if let Err(message) = state.page.start_new() {
                fail(message);
            }
        }
        Ok(ClientMessage::Listen { hands_free, language, voice }) => {
            let language = match language.as_deref().map(crate::voice::language) {
                None => Language::English,
                Some(Some(language)) => language,
                Some(None) => return fail("Workly listens in en or fr".to_owned()),
            };
            match voice.over(&state.voice_settings) {
                Ok(voice) => {
                    let early = Arc::default();
                    *listening = Some(Listening { ear: Ear::new(hands_free), language, voice, early });
                }
                Err(message) => fail(message),
            }
        }
        Ok(ClientMessage::ListenEnd) => {
            let Some(Listening { ear, language, voice, early }) = listening.take() else { return };
            if let Some(audio) = ear.finish() {
                // The person said it was over: no pause.
                let ended = (Instant::now(), Duration::ZERO);
                in_background(state, move |state| talk::listen_turn(state, &audio, language, voice, &early, ended));
            }
        }
        Ok(ClientMessage::Playing { reply, index }) => {
            if let (Some(avatar), Some(mouth)) = (&state.avatar, state.page_voice.playing(&reply, index)) {
                avatar.speak(&mouth);
            }
        }
        Ok(ClientMessage::Stop { reply, index, seconds }) => {
            if let Some(avatar) = &state.avatar {
                avatar.hush();
            }
            match state.page_voice.stop(&reply, index, seconds) {
                Some(Stopped::Writing) => state.replies.cancel(&reply),
                Some(Stopped::Written(said)) => {
                    in_background(state, move |state| talk::interrupt_written(state, &reply, &said));
                }
                None => {}
            }
        }
        Err(error) => {
            fail(format!("cannot read the message: {error} (expected {{\"type\": \"chat\", \"text\": \"...\"}})"))
        }
    }
}

/// The microphone's audio: heard, and acted on (a barge-in, an utterance).
fn hear(state: &Arc<AppState>, pcm: &[u8], listening: &mut Option<Listening>) {
    let Some(Listening { ear, language, voice, early }) = listening.as_mut() else { return };
    for heard in ear.hear(pcm) {
        match heard {
            Heard::SpeechStarted => state.hub.publish(&ServerEvent::SpeechStarted),
            Heard::Pausing(audio) => {
                if let Some(ahead) = early.begin(audio) {
                    let language = *language;
                    in_background(state, move |state| talk::recognize_ahead(state, ahead, language));
                }
            }
            Heard::Utterance(audio, quiet) => {
                let (language, voice, early, ended) = (*language, *voice, Arc::clone(early), (Instant::now(), quiet));
                in_background(state, move |state| talk::listen_turn(state, &audio, language, voice, &early, ended));
            }
            Heard::TooLong => state.hub.publish(&ServerEvent::Error { reply: None, message: TooLong.to_string() }),
        }
    }
}

/// Runs `work` on a blocking thread (it waits on the engine or the voice);
/// its failure is told to every page.
fn in_background(state: &Arc<AppState>, work: impl FnOnce(&Arc<AppState>) -> Result<(), String> + Send + 'static) {
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || {
        if let Err(message) = work(&state) {
            state.hub.publish(&ServerEvent::Error { reply: None, message });
        }
    });
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
/// as it happens; with `spoken`, answered aloud too ([`super::talk`]). The
/// exchange is saved before `reply_done` goes out; if it cannot be (a full
/// disk), the reply ends with an error instead, and the conversation goes on
/// from the last saved turn.
pub(crate) fn page_turn(state: &Arc<AppState>, user: &str, spoken: Option<SpokenTurn>) -> Result<(), String> {
    let _permit = state.admit().map_err(|error| error.message)?;
    let engine = state.engine().map_err(|error| error.message)?;
    let reply_id = state.reply_id();
    let cancel = CancelToken::new();
    let mut voice = Voice::new(state, &reply_id, Source::Page, &cancel);
    let options = page_options();
    let turn = Turn { engine, avatar: state.avatar.as_ref(), options: &options, cancel: cancel.clone() };
    // With the part of the reply that was said, when she was interrupted.
    let (result, cut) = match spoken {
        None => (turn.chat(&state.page.chat, user, &mut voice), None),
        Some(spoken) => {
            let speech = state.voice.speech().map_err(|error| error.message)?;
            let language = state.page.language().unwrap_or_else(|| Language::detect(user));
            state.page_voice.begin(&reply_id);
            let play = |index: usize, written: &str, said: &crate::voice::speak::Spoken| {
                let (mouth, event) = talk::audio_event(&reply_id, index, written, said);
                let more = state.page_voice.sent(&reply_id, written, said.audio.seconds(), mouth);
                if more {
                    state.hub.publish(&event);
                }
                more
            };
            let (result, reply) = speak_while_writing(
                speech,
                spoken.voice.voice_for(language),
                spoken.voice.speed,
                Some(&cancel),
                &mut voice,
                |sink| turn.chat(&state.page.chat, user, sink),
                play,
            );
            let stages = Stages::of(spoken.heard.as_ref(), spoken.message_at, &reply);
            state.metrics.voice(&stages);
            state.hub.publish(&ServerEvent::VoiceStages { reply: reply_id.clone(), stages });
            if let Some(error) = reply.failed {
                state.hub.publish(&ServerEvent::Error {
                    reply: Some(reply_id.clone()),
                    message: format!("Kira could not say this: {error}"),
                });
            }
            (result, state.page_voice.end(&reply_id))
        }
    };
    match result {
        Ok(outcome) => {
            voice.conclude(&outcome);
            match &outcome.saved {
                Saved::Failed(error) => {
                    state.metrics.error();
                    voice.fail(format!(
                        "this exchange could not be saved ({error}); the conversation goes on from the last saved one"
                    ));
                }
                Saved::Kept | Saved::NotKept => {
                    voice.announce(&outcome);
                    // After `reply_done`: the page shows the cut over the whole.
                    if let Some(said) = cut {
                        return talk::interrupt_written(state, &reply_id, &said);
                    }
                }
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

    /// The language the conversation speaks, once its first message set it.
    pub fn language(&self) -> Option<Language> {
        self.chat.lock().ok().and_then(|chat| chat.conversation().language())
    }

    /// The conversation, locked.
    pub(super) fn lock_chat(&self) -> Result<std::sync::MutexGuard<'_, Chat>, String> {
        self.chat.lock().map_err(|_| UNAVAILABLE.to_owned())
    }

    /// Starts a new stored conversation (the old one stays stored).
    fn start_new(&self) -> Result<(), String> {
        let mut chat = self.chat.lock().map_err(|_| UNAVAILABLE.to_owned())?;
        chat.start_new().map_err(|error| format!("cannot start a new conversation: {error}"))
    }
}
