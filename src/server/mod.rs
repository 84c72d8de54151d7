//! `workly serve`: the companion as a local server.
//!
//! The listener is bound before the model loads, so the port answers at once:
//! `GET /health` says `loading` (503) until the engine is warm, then `ready`
//! (200) with the model's name. The OpenAI-compatible API ([`openai`]) runs on
//! the engine's one sequence, so requests queue in arrival order; a bound on
//! waiting requests turns the excess away with 503 and `Retry-After`. Every
//! request passes the local-server checks in [`security`] first. The page at
//! `/` ([`page`]) chats over [`events`] and shows Kira's avatar. OpenAI's
//! audio endpoints ([`audio`]) speak and transcribe in Kira's voice, whose
//! models load on the first request for them.

pub mod audio;
pub mod error;
pub mod events;
pub mod metrics;
pub mod openai;
pub mod page;
pub mod security;
pub mod shutdown;
pub mod talk;
#[cfg(test)]
pub(crate) mod tests;

use crate::avatar::AvatarBridge;
use crate::chat::turn::Chat;
use crate::error::Context as _;
use crate::llm::{Backend, Engine, LlmError};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::ApiError;
use security::Policy;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a shutdown waits for cut replies to end (their turns to be saved).
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Largest request body accepted (a long conversation fits many times over).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// Set once the model is loaded and warm.
    engine: OnceLock<Engine>,
    /// Set if loading failed.
    failure: OnceLock<String>,
    /// The loaded model's id in the API (the file name without `.gguf`).
    model_id: String,
    /// Requests admitted (running or waiting); its size is the queue bound.
    queue: Arc<Semaphore>,
    /// The queue bound.
    max_queue: usize,
    /// What `/metrics` reports.
    metrics: metrics::Metrics,
    /// When the server started, in Unix seconds.
    started_unix: u64,
    /// Where events go to `/v1/events` clients.
    hub: events::Hub,
    /// The conversation the page holds with Kira, and where it is stored.
    page: events::PageChat,
    /// The machine and the settings chosen for it, for `/v1/workly/doctor`.
    doctor: crate::hardware::DoctorReport,
    /// The Unity app and VMC receivers the replies' emotions go to.
    avatar: Option<AvatarBridge>,
    /// The replies under way, which a shutdown cuts and waits for.
    replies: shutdown::Replies,
    /// Becomes `true` when the WebSockets are to close (the server is stopping).
    closing: tokio::sync::watch::Sender<bool>,
    /// Kira's voice for the audio endpoints and the page, loaded on first use.
    voice: audio::VoiceService,
    /// The reply the page is speaking.
    page_voice: talk::PageVoice,
    /// How Kira speaks on the page, unless the page says otherwise.
    voice_settings: crate::voice::speak::VoiceSettings,
}

impl AppState {
    fn new(
        model_id: String,
        max_queue: usize,
        page: events::PageChat,
        doctor: crate::hardware::DoctorReport,
        avatar: Option<AvatarBridge>,
        hub: events::Hub,
        voice: crate::voice::VoiceFiles,
    ) -> Self {
        Self {
            engine: OnceLock::new(),
            failure: OnceLock::new(),
            model_id,
            queue: Arc::new(Semaphore::new(max_queue)),
            max_queue,
            metrics: metrics::Metrics::default(),
            started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            hub,
            page,
            avatar,
            doctor,
            replies: shutdown::Replies::default(),
            closing: tokio::sync::watch::Sender::new(false),
            voice: audio::VoiceService::new(voice),
            page_voice: talk::PageVoice::default(),
            voice_settings: crate::voice::speak::VoiceSettings::default(),
        }
    }

    /// A fresh `chatcmpl-...` id: unique within the process, and not repeated
    /// across restarts (the start time is part of it).
    fn reply_id(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        format!("chatcmpl-{:x}{:08x}", self.started_unix, NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The status as an event.
    fn status_event(&self) -> events::ServerEvent {
        let status = match (self.engine.get(), self.failure.get()) {
            (Some(_), _) => "ready",
            (None, Some(_)) => "error",
            (None, None) => "loading",
        };
        let (unity, vmc) = self.avatar_status();
        let voice = events::VoiceShown::of(&self.voice_settings);
        events::ServerEvent::Status { status, model: self.model_id.clone(), unity, vmc, voice }
    }

    /// How the Unity app and the VMC receivers are doing, in words.
    fn avatar_status(&self) -> (String, String) {
        let stats = self.avatar.as_ref().map(AvatarBridge::stats).unwrap_or_default();
        let describe = |kind: &str| {
            let found: Vec<String> = stats
                .iter()
                .filter_map(|transport| {
                    let address = transport.transport.strip_prefix(kind)?.trim();
                    let state = if transport.connected { "connected" } else { "disconnected" };
                    Some(format!("{state} ({address})"))
                })
                .collect();
            if found.is_empty() { "off".to_owned() } else { found.join(", ") }
        };
        (describe("unity"), describe("vmc"))
    }

    /// The engine, or why it cannot answer yet.
    fn engine(&self) -> Result<&Engine, ApiError> {
        match (self.engine.get(), self.failure.get()) {
            (Some(engine), _) => Ok(engine),
            (None, Some(failure)) => Err(ApiError::internal(format!("the model failed to load: {failure}"))),
            (None, None) => Err(ApiError::unavailable("the model is still loading", 1)),
        }
    }

    /// A place in the queue, or 503 when it is full or the server is stopping.
    fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if self.replies.stopping() {
            return Err(ApiError::unavailable("the server is shutting down", 5));
        }
        Arc::clone(&self.queue)
            .try_acquire_owned()
            .map_err(|_| ApiError::unavailable("too many requests are waiting; retry shortly", 1))
    }
}

/// `GET /health`
async fn health(State(state): State<Arc<AppState>>) -> Response {
    match state.engine() {
        Ok(_) => axum::Json(serde_json::json!({"status": "ready", "model": state.model_id})).into_response(),
        Err(error) if error.status == StatusCode::SERVICE_UNAVAILABLE => {
            let mut response =
                (error.status, axum::Json(serde_json::json!({"status": "loading", "model": state.model_id})))
                    .into_response();
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(1));
            response
        }
        Err(error) => {
            (error.status, axum::Json(serde_json::json!({"status": "error", "error": error.message}))).into_response()
        }
    }
}

/// `GET /metrics`
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let depth = state.max_queue - state.queue.available_permits();
    let mut text = state.metrics.render(depth, crate::hardware::process_rss_bytes());
    let avatar = state.avatar.as_ref().map(AvatarBridge::stats).unwrap_or_default();
    metrics::render_avatar(&mut text, &avatar);
    if let Some(faults) = state.engine.get().and_then(Engine::faults) {
        metrics::render_faults(&mut text, faults);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// The routes, behind the security checks.
pub fn router(state: Arc<AppState>, policy: Policy) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/audio/speech", post(audio::speech))
        .route(
            "/v1/audio/transcriptions",
            post(audio::transcriptions).layer(DefaultBodyLimit::max(audio::MAX_AUDIO_BYTES)),
        )
        .route("/metrics", get(metrics))
        .route("/v1/events", get(events::events))
        .route("/v1/workly/doctor", get(page::doctor))
        .route("/v1/workly/conversation", get(page::conversation))
        .route("/v1/workly/memories", get(page::memories))
        .route("/v1/workly/memories/{id}", axum::routing::patch(page::edit_memory).delete(page::forget_memory))
        .route("/", get(page::index))
        .route("/app/{file}", get(page::app_file))
        .route("/vendor/{*path}", get(page::vendor_file))
        .route("/avatar/default.vrm", get(page::default_avatar))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(Arc::new(policy), security::guard))
        .with_state(state)
}

/// Everything a server runs with, resolved by the command line.
#[derive(Debug)]
pub struct ServerConfig {
    /// Where to listen.
    pub address: SocketAddr,
    /// Who may call, and with which key.
    pub policy: Policy,
    /// Requests running or waiting at once; more are answered 503.
    pub max_queue: usize,
    /// The engine, loaded (or connected) once the server listens.
    pub engine: Backend,
    /// The page's conversation, resumed and kept in its memory.
    pub page: Chat,
    /// The machine and the settings chosen for it, for `/v1/workly/doctor`.
    pub doctor: crate::hardware::DoctorReport,
    /// The Unity app and VMC receivers, if any (tapped into `hub`).
    pub avatar: Option<AvatarBridge>,
    /// Where events go to `/v1/events` clients.
    pub hub: events::Hub,
    /// A line said once listening (which conversation the page continues).
    pub resuming: String,
    /// Where Kira's voice is, for the audio endpoints and the page.
    pub voice: crate::voice::VoiceFiles,
    /// How she speaks on the page, unless the page says otherwise.
    pub voice_settings: crate::voice::speak::VoiceSettings,
}

/// Serves until Ctrl-C or SIGTERM.
pub fn run(config: ServerConfig) -> crate::error::Result<()> {
    let ServerConfig { address, policy, max_queue, engine, page, doctor, avatar, hub, resuming, voice, voice_settings } =
        config;
    let page = events::PageChat::new(page, engine.context_size() as usize);
    let mut state = AppState::new(engine.model_id(), max_queue, page, doctor, avatar, hub, voice);
    state.voice_settings = voice_settings;
    let state = Arc::new(state);
    let served = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(serve(engine, address, policy, Arc::clone(&state), &resuming)));
    if served.is_err() {
        // A server that could not listen or load its model leaves no empty
        // conversation behind (one with messages stays).
        state.page.abandon();
    }
    served
}

async fn serve(
    backend: Backend,
    address: SocketAddr,
    policy: Policy,
    state: Arc<AppState>,
    resuming: &str,
) -> crate::error::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    let address = listener.local_addr()?;
    eprintln!("workly: listening on http://{address}/ (loading {})", state.model_id);
    eprintln!("{resuming}");

    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<LlmError>();
    let loading = Arc::clone(&state);
    tokio::task::spawn_blocking(move || match Engine::start(backend) {
        Ok(engine) => {
            eprintln!("workly: ready ({})", engine.info().describe());
            let _ = loading.engine.set(engine);
            loading.hub.publish(&loading.status_event());
        }
        Err(error) => {
            let _ = loading.failure.set(error.to_string());
            loading.hub.publish(&loading.status_event());
            let _ = failed_tx.send(error);
        }
    });

    // Tell the page when the Unity app or a VMC receiver comes or goes.
    if state.avatar.is_some() {
        let watched = Arc::clone(&state);
        tokio::spawn(async move {
            let mut shown = watched.avatar_status();
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                every.tick().await;
                let now = watched.avatar_status();
                if now != shown {
                    shown = now;
                    watched.hub.publish(&watched.status_event());
                }
            }
        });
    }
    let app = router(Arc::clone(&state), policy);
    let stopping = Arc::clone(&state);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown::signal().await;
        eprintln!("workly: stopping");
        stopping.replies.stop();
        if !stopping.replies.ended(SHUTDOWN_WAIT).await {
            tracing::warn!("replies still running at shutdown");
        }
        stopping.closing.send_replace(true);
        // Each WebSocket holds a receiver until it has said goodbye.
        let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
        while stopping.closing.receiver_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    tokio::select! {
        served = server => served.context("the server failed")?,
        // A server whose model cannot load is no use: say why and stop.
        Ok(error) = failed_rx => return Err(error.into()),
    }
    Ok(())
}
