//! The OpenAI-compatible API: `POST /v1/chat/completions` (streamed as
//! server-sent events or whole) and `GET /v1/models`.
//!
//! Requests are decoded by hand from the body so that every mistake gets one
//! line in OpenAI's error shape. Fields OpenAI defines and Workly has no use
//! for (`presence_penalty`, `user`, ...) are accepted and ignored, as
//! llama-server does; fields that would change the answer's meaning and are
//! not supported (`n` > 1, tools) are refused. A request naming another model
//! is served by the loaded one, and the response names the model that served it.

use super::AppState;
use super::error::ApiError;
use super::events::{Source, Voice};
use crate::chat::turn::{Outcome, ReplyOptions, Sink, Turn};
use crate::emotion::Emotion;
use crate::emotion::smoothing::{Face, TurnEmotion};
use crate::llm::{CancelToken, Engine, FinishReason, GenerationStats, Message, Role, SamplingParams};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

/// A chat completion request, as much of it as Workly reads (`model` is not
/// read: the loaded model serves every name).
#[derive(Debug, Deserialize)]
struct ChatRequest {
    messages: Vec<ChatMessage>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    stop: Option<Stop>,
    seed: Option<i64>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    n: Option<u32>,
    tools: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    role: String,
    content: Option<Content>,
}

/// Message content: a string, or parts of which only text is understood.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

/// Most stop strings a request may give (OpenAI allows 4; llama-server more).
const MAX_STOP: usize = 16;

/// A request turned into what the engine runs, with what the response needs.
#[derive(Debug)]
pub struct Decoded {
    /// The conversation as the client sent it.
    pub messages: Vec<Message>,
    /// How the reply is shaped.
    pub options: ReplyOptions,
    /// Whether the reply is streamed as server-sent events.
    pub stream: bool,
    /// Whether the last streamed chunk carries token usage.
    pub include_usage: bool,
}

/// Decodes a `/v1/chat/completions` body for a model with `context_size`
/// tokens of context; every mistake is one line in OpenAI's error shape.
pub fn decode(body: &[u8], context_size: u32) -> Result<Decoded, ApiError> {
    let chat: ChatRequest =
        serde_json::from_slice(body).map_err(|error| ApiError::invalid(format!("invalid request body: {error}")))?;
    if chat.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid_param("n", "only n = 1 is supported"));
    }
    if chat.tools.as_ref().is_some_and(|tools| !tools.is_null()) {
        return Err(ApiError::invalid_param("tools", "tools are not supported"));
    }
    if chat.messages.is_empty() {
        return Err(ApiError::invalid_param("messages", "messages must not be empty"));
    }
    let messages = chat.messages.into_iter().enumerate().map(message).collect::<Result<Vec<_>, _>>()?;
    // Replies never outgrow the context: a larger ask is capped, not refused
    // (the README documents the cap).
    let max_tokens = match chat.max_completion_tokens.or(chat.max_tokens) {
        Some(0) => return Err(ApiError::invalid_param("max_tokens", "max_tokens must be at least 1")),
        Some(asked) => asked.min(u64::from(context_size)) as u32,
        None => context_size,
    };
    let mut sampling = SamplingParams::default();
    if let Some(temperature) = chat.temperature {
        sampling.temperature = temperature;
    }
    if let Some(top_p) = chat.top_p {
        sampling.top_p = top_p;
    }
    if let Some(seed) = chat.seed {
        // OpenAI's seed is any integer; llama.cpp's is 32 bits.
        sampling.seed = Some(seed as u32);
    }
    sampling.validate().map_err(|error| ApiError::invalid(error.to_string()))?;
    let stop = match chat.stop {
        None => Vec::new(),
        Some(Stop::One(stop)) => vec![stop],
        Some(Stop::Many(stops)) => stops,
    };
    if stop.len() > MAX_STOP || stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid_param("stop", format!("stop takes 1 to {MAX_STOP} non-empty strings")));
    }
    Ok(Decoded {
        messages,
        options: ReplyOptions { sampling, max_tokens, stop, unguarded: false },
        stream: chat.stream,
        include_usage: chat.stream_options.is_some_and(|options| options.include_usage),
    })
}

fn message((index, message): (usize, ChatMessage)) -> Result<Message, ApiError> {
    let role = match message.role.as_str() {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(ApiError::invalid_param(
                "messages",
                format!("messages[{index}].role {other:?} is not supported (system, developer, user, assistant)"),
            ));
        }
    };
    let content = match message.content {
        None => String::new(),
        Some(Content::Text(text)) => text,
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), part.text) {
                    ("text", Some(piece)) => text.push_str(&piece),
                    (kind, _) => {
                        return Err(ApiError::invalid_param(
                            "messages",
                            format!("messages[{index}] has a {kind:?} part: only text parts are supported"),
                        ));
                    }
                }
            }
            text
        }
    };
    Ok(Message::new(role, content))
}

/// Token counts as OpenAI reports them.
#[derive(Debug, Serialize)]
struct Usage {
    prompt_tokens: usize,
    completion_tokens: usize,
    total_tokens: usize,
    prompt_tokens_details: PromptDetails,
}

#[derive(Debug, Serialize)]
struct PromptDetails {
    cached_tokens: usize,
}

impl Usage {
    fn of(stats: &GenerationStats) -> Self {
        Self {
            prompt_tokens: stats.prompt_tokens,
            completion_tokens: stats.completion_tokens,
            total_tokens: stats.prompt_tokens + stats.completion_tokens,
            prompt_tokens_details: PromptDetails { cached_tokens: stats.cached_tokens },
        }
    }
}

/// Workly's own fields in a response (OpenAI clients ignore unknown keys):
/// how the reply was produced.
#[derive(Debug, Serialize)]
struct Extension {
    /// The reply's emotion (its tags, else its words), as the avatar showed it.
    emotion: Emotion,
    /// How strongly, 0 to 1.
    intensity: f32,
    ttft_ms: f64,
    prefill_tokens_per_s: f64,
    decode_tokens_per_s: f64,
}

impl Extension {
    fn of(stats: &GenerationStats, feeling: &TurnEmotion) -> Self {
        Self {
            emotion: feeling.emotion,
            intensity: feeling.intensity,
            ttft_ms: stats.ttft_ms,
            prefill_tokens_per_s: stats.prefill_tokens_per_s,
            decode_tokens_per_s: stats.decode_tokens_per_s,
        }
    }
}

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Length => "length",
        // A reply is cancelled when its client has gone or the server stops;
        // OpenAI has no reason for that, and the reply does end there.
        FinishReason::Stop | FinishReason::Cancelled => "stop",
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `GET /v1/models`
pub async fn models(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "object": "list",
        "data": [{ "id": state.model_id, "object": "model", "created": state.started_unix, "owned_by": "workly" }],
    }))
}

/// `POST /v1/chat/completions`
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.metrics.request();
    complete(&state, body).await.inspect_err(|_| state.metrics.error())
}

async fn complete(state: &Arc<AppState>, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let body = ApiError::read_body(body)?;
    let engine = state.engine()?.clone();
    let decoded = decode(&body, engine.info().context_size)?;
    let permit = state.admit()?;
    let reply = Reply { id: state.reply_id(), created: unix_now(), model: state.model_id.clone() };
    let cancel = CancelToken::new();
    let voice = Voice::new(state, &reply.id, Source::Api, &cancel);
    let job = Job { state: Arc::clone(state), engine, options: decoded.options, cancel, _permit: permit };
    if decoded.stream {
        Ok(stream(job, voice, decoded.messages, reply, decoded.include_usage).into_response())
    } else {
        whole(job, voice, decoded.messages, reply).await
    }
}

struct Reply {
    id: String,
    created: u64,
    model: String,
}

/// An API request's chat turn, run on a blocking thread (the turn waits on
/// the engine). It holds the request's place in the queue until it ends.
struct Job {
    state: Arc<AppState>,
    engine: Engine,
    options: ReplyOptions,
    cancel: CancelToken,
    _permit: OwnedSemaphorePermit,
}

impl Job {
    /// The turn on the client's `messages` (its own history: no persona, no
    /// memory), told to every `/v1/events` client through `sink`'s voice.
    fn run(self, messages: Vec<Message>, sink: &mut Told) -> Result<Outcome, ApiError> {
        let turn = Turn {
            engine: &self.engine,
            avatar: self.state.avatar.as_ref(),
            options: &self.options,
            cancel: self.cancel,
        };
        match turn.reply(messages, sink) {
            Ok(outcome) => {
                sink.voice.conclude(&outcome);
                sink.voice.announce(&outcome);
                Ok(outcome)
            }
            Err(error) => {
                if sink.voice.has_started() {
                    sink.voice.fail(error.to_string());
                }
                Err(error.into())
            }
        }
    }
}

/// A reply's text on its way to the client, while the voice tells every
/// `/v1/events` client; `false` from [`Sink::text`] once the client has gone.
struct Told {
    voice: Voice,
    /// The stream's chunks (none for a whole reply).
    chunks: Option<mpsc::Sender<Streamed>>,
}

impl Sink for Told {
    fn started(&mut self) {
        self.voice.started();
    }

    fn text(&mut self, piece: &str) -> bool {
        self.voice.text(piece);
        self.chunks.as_ref().is_none_or(|chunks| chunks.blocking_send(Streamed::Text(piece.to_owned())).is_ok())
    }

    fn face(&mut self, face: Face) {
        self.voice.face(face);
    }
}

/// Cuts the reply when dropped: a client that goes away (its request or
/// stream dropped) stops costing engine time at once, even in the prefill.
struct CutOnDrop(CancelToken);

impl Drop for CutOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

async fn whole(job: Job, voice: Voice, messages: Vec<Message>, reply: Reply) -> Result<Response, ApiError> {
    let _cut = CutOnDrop(job.cancel.clone());
    let outcome = tokio::task::spawn_blocking(move || job.run(messages, &mut Told { voice, chunks: None }))
        .await
        .map_err(|_| ApiError::internal("the reply failed"))??;
    let stats = &outcome.stats;
    Ok(Json(serde_json::json!({
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": outcome.shown },
            "finish_reason": finish_reason(stats.finish_reason),
        }],
        "usage": Usage::of(stats),
        "workly": Extension::of(stats, &outcome.feeling),
    }))
    .into_response())
}

/// What the turn's thread sends the stream.
enum Streamed {
    /// The next piece of the reply.
    Text(String),
    /// The end: the measurements and the emotion, or why it failed.
    End(Result<Box<(GenerationStats, TurnEmotion)>, ApiError>),
}

/// Chunks the turn may be ahead of a slow client by before it waits.
const STREAM_BACKLOG: usize = 64;

enum Phase {
    Start,
    Text,
    Usage(Box<GenerationStats>),
    Done,
    Ended,
}

struct Streaming {
    reply: Reply,
    chunks: mpsc::Receiver<Streamed>,
    include_usage: bool,
    phase: Phase,
    _cut: CutOnDrop,
}

impl Streaming {
    fn chunk(&self, delta: serde_json::Value, finish: Option<FinishReason>) -> Event {
        Event::default().data(self.chunk_json(delta, finish).to_string())
    }

    fn chunk_json(&self, delta: serde_json::Value, finish: Option<FinishReason>) -> serde_json::Value {
        let mut chunk = serde_json::json!({
            "id": self.reply.id,
            "object": "chat.completion.chunk",
            "created": self.reply.created,
            "model": self.reply.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish.map(finish_reason) }],
        });
        if self.include_usage {
            // OpenAI sends `usage: null` on every chunk before the last one.
            chunk["usage"] = serde_json::Value::Null;
        }
        chunk
    }

    async fn next_event(&mut self) -> Option<Event> {
        match std::mem::replace(&mut self.phase, Phase::Text) {
            Phase::Start => Some(self.chunk(serde_json::json!({"role": "assistant", "content": ""}), None)),
            Phase::Text => match self.chunks.recv().await {
                Some(Streamed::Text(piece)) => Some(self.chunk(serde_json::json!({ "content": piece }), None)),
                Some(Streamed::End(Ok(end))) => {
                    let (stats, feeling) = *end;
                    let mut last = self.chunk_json(serde_json::json!({}), Some(stats.finish_reason));
                    last["workly"] = serde_json::json!(Extension::of(&stats, &feeling));
                    self.phase = if self.include_usage { Phase::Usage(Box::new(stats)) } else { Phase::Done };
                    Some(Event::default().data(last.to_string()))
                }
                Some(Streamed::End(Err(error))) => {
                    self.phase = Phase::Ended;
                    Some(Event::default().data(error.body().to_string()))
                }
                None => {
                    self.phase = Phase::Ended;
                    Some(Event::default().data(ApiError::internal("the engine stopped").body().to_string()))
                }
            },
            Phase::Usage(stats) => {
                self.phase = Phase::Done;
                let chunk = serde_json::json!({
                    "id": self.reply.id,
                    "object": "chat.completion.chunk",
                    "created": self.reply.created,
                    "model": self.reply.model,
                    "choices": [],
                    "usage": Usage::of(&stats),
                });
                Some(Event::default().data(chunk.to_string()))
            }
            Phase::Done => {
                self.phase = Phase::Ended;
                Some(Event::default().data("[DONE]"))
            }
            Phase::Ended => {
                self.phase = Phase::Ended;
                None
            }
        }
    }
}

/// The SSE response: the turn runs on a blocking thread and sends its text
/// here. If the client goes away, the stream is dropped, which cuts the
/// reply at once.
fn stream(
    job: Job,
    voice: Voice,
    messages: Vec<Message>,
    reply: Reply,
    include_usage: bool,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let (sender, chunks) = mpsc::channel(STREAM_BACKLOG);
    let cut = CutOnDrop(job.cancel.clone());
    tokio::task::spawn_blocking(move || {
        let mut told = Told { voice, chunks: Some(sender) };
        let end = job.run(messages, &mut told).map(|outcome| Box::new((outcome.stats, outcome.feeling)));
        if end.is_err() {
            // The stream's status is already sent: only the metrics count this failure.
            told.voice.count_failure();
        }
        if let Some(chunks) = told.chunks.take() {
            let _ = chunks.blocking_send(Streamed::End(end));
        }
    });
    let streaming = Streaming { reply, chunks, include_usage, phase: Phase::Start, _cut: cut };
    Sse::new(futures_util::stream::unfold(streaming, |mut streaming| async move {
        streaming.next_event().await.map(|event| (Ok(event), streaming))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_json(value: serde_json::Value) -> Result<Decoded, ApiError> {
        decode(value.to_string().as_bytes(), 2048)
    }

    #[test]
    fn a_full_request_decodes() {
        let decoded = decode_json(serde_json::json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            ],
            "max_tokens": 5, "temperature": 0, "top_p": 0.5, "seed": -1, "stop": "\n",
            "stream": true, "stream_options": {"include_usage": true}, "presence_penalty": 0.3, "user": "sam",
        }))
        .unwrap();
        assert_eq!(decoded.messages, [Message::system("Be brief."), Message::user("Hi there")]);
        assert_eq!(decoded.options.max_tokens, 5);
        assert_eq!(decoded.options.stop, ["\n"]);
        assert_eq!(decoded.options.sampling.seed, Some(u32::MAX));
        assert!(decoded.stream && decoded.include_usage);
    }

    #[test]
    fn max_tokens_is_capped_at_the_context() {
        let decoded = decode_json(
            serde_json::json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1_000_000_000u64}),
        )
        .unwrap();
        assert_eq!(decoded.options.max_tokens, 2048);
        let decoded = decode_json(serde_json::json!({"messages": [{"role": "user", "content": "x"}]})).unwrap();
        assert_eq!(decoded.options.max_tokens, 2048);
    }

    #[test]
    fn mistakes_get_one_line_naming_the_field() {
        let cases = [
            (serde_json::json!({"messages": []}), Some("messages")),
            (serde_json::json!({"messages": [{"role": "tool", "content": "x"}]}), Some("messages")),
            (serde_json::json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}), Some("messages")),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "n": 2}), Some("n")),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}), Some("max_tokens")),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "stop": [""]}), Some("stop")),
            (serde_json::json!({"messages": [{"role": "user", "content": "x"}], "temperature": -1}), None),
            (serde_json::json!({"messages": "hello"}), None),
            (serde_json::json!({"prompt": "hello"}), None),
        ];
        for (body, param) in cases {
            let error = decode_json(body.clone()).err().unwrap_or_else(|| panic!("{body} was accepted"));
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(error.param, param, "{body}: {}", error.message);
            assert!(!error.message.contains('\n'), "{}", error.message);
        }
        assert!(decode(b"{not json", 2048).is_err());
    }
}
