//! The engine's handle: a cheap, cloneable way to the thread that owns a model.
//!
//! [`Engine::load`] starts one OS thread that loads the model with llama.cpp
//! ([`super::llama`]) and then serves commands in arrival order
//! ([`super::worker`]); [`Engine::remote`] starts one whose replies come from
//! a server on another machine ([`super::remote`]); [`Engine::scripted`]
//! starts one that answers from a [`Script`] instead, for tests of what lies
//! above the engine. A generation
//! streams [`GenerationEvent`]s back on its own bounded channel; dropping the
//! [`Generation`] or firing its [`CancelToken`] stops it between two tokens.

use super::LlmError;
use super::generation::{
    CancelToken, EngineConfig, EngineInfo, GenerationEvent, GenerationRequest, GenerationStats, PerplexityReport,
    Prompt,
};
use super::remote::{Faults, RemoteServer};
use super::scripted::Script;
use super::template::Message;
use super::worker::{Command, Inbox, Job, Ready};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Requests waiting for the engine beyond this are refused by the caller's
/// `send` blocking; the server puts its own, smaller bound in front.
const COMMAND_QUEUE: usize = 64;
/// Text chunks buffered per generation before the engine waits for the reader.
const EVENT_QUEUE: usize = 256;

/// A running generation: its event stream and cancel switch. Dropping it
/// cancels the generation, even one still queued or in its prefill (a client
/// that went away stops costing time at once).
#[derive(Debug)]
pub struct Generation {
    events: mpsc::Receiver<GenerationEvent>,
    cancel: CancelToken,
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Generation {
    /// The next event, blocking the current thread (CLI use).
    pub fn blocking_next(&mut self) -> Option<GenerationEvent> {
        self.events.blocking_recv()
    }
    /// The next event (async use).
    pub async fn next(&mut self) -> Option<GenerationEvent> {
        self.events.recv().await
    }
    /// A switch that stops this generation.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }
    /// Waits for the whole reply (blocking), returning its text and stats.
    pub fn collect_blocking(mut self) -> Result<(String, GenerationStats), LlmError> {
        let mut text = String::new();
        while let Some(event) = self.blocking_next() {
            match event {
                GenerationEvent::Text(piece) => text.push_str(&piece),
                GenerationEvent::Done(stats) => return Ok((text, stats)),
                GenerationEvent::Failed(error) => return Err(error),
            }
        }
        Err(LlmError::Stopped)
    }
}

/// Where replies come from: a model this machine loads, or a server on another.
#[derive(Debug, Clone)]
pub enum Backend {
    /// llama.cpp on this machine, with these settings.
    Local(EngineConfig),
    /// An OpenAI-compatible server, as probed.
    Remote(RemoteServer),
}

impl Backend {
    /// The context conversations are fitted to, in tokens.
    pub fn context_size(&self) -> u32 {
        match self {
            Backend::Local(config) => config.context_size,
            Backend::Remote(server) => server.report.context_size,
        }
    }

    /// Threads for prefill on this machine: the local engine's, or all of
    /// them beside a remote one (for the memory's embeddings).
    pub fn threads_prefill(&self) -> usize {
        match self {
            Backend::Local(config) => config.threads_prefill,
            Backend::Remote(_) => super::remote::local_threads(),
        }
    }

    /// The conversation openings to warm before the first message.
    pub fn set_warmup(&mut self, openings: Vec<Vec<Message>>) {
        match self {
            Backend::Local(config) => config.warmup = openings,
            Backend::Remote(server) => server.config.warmup = openings,
        }
    }

    /// The model's name in the API: the file's without `.gguf`, or the
    /// remote server's.
    pub fn model_id(&self) -> String {
        match self {
            Backend::Local(config) => {
                let name = &config.model.file_name;
                name.strip_suffix(".gguf").unwrap_or(name).to_owned()
            }
            Backend::Remote(server) => server.report.model.clone(),
        }
    }
}

/// A cheap, cloneable handle to the engine thread.
///
/// When the last handle goes, the thread is joined: it finishes the command
/// it is on (at most a token, or the next turn's short header) and frees the
/// model before the process may exit. Exiting while it still runs llama.cpp
/// would tear down ggml's globals under its feet.
#[derive(Debug, Clone)]
pub struct Engine {
    // Declared before `_thread` so that it is dropped first: the last handle's
    // sender must be gone before the join, or the thread would wait forever.
    commands: SyncSender<Command>,
    info: Arc<EngineInfo>,
    /// A remote back-end's failures, by kind; `None` for a local model.
    faults: Option<Arc<Faults>>,
    _thread: Arc<EngineThread>,
}

/// Joins the engine thread when the last [`Engine`] handle is dropped.
#[derive(Debug)]
struct EngineThread(Option<std::thread::JoinHandle<()>>);

impl Drop for EngineThread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            // A panic on the engine thread has already been reported by the
            // panic hook; there is nothing left to do with it here.
            let _ = handle.join();
        }
    }
}

impl Engine {
    /// Loads the model on a new engine thread and warms it; returns once it is
    /// ready to answer.
    pub fn load(config: EngineConfig) -> Result<Self, LlmError> {
        Self::spawn(move |inbox, ready| super::llama::run(config, inbox, ready))
    }

    /// An engine whose replies come from the OpenAI-compatible server that
    /// [`RemoteServer::probe`] found; returns once the persona of its
    /// warm-up has been sent there.
    pub fn remote(server: RemoteServer) -> Result<Self, LlmError> {
        let faults = Arc::new(Faults::default());
        let counted = Arc::clone(&faults);
        let mut engine = Self::spawn(move |inbox, ready| super::remote::run(server, counted, inbox, ready))?;
        engine.faults = Some(faults);
        Ok(engine)
    }

    /// The engine `backend` describes, local or remote.
    pub fn start(backend: Backend) -> Result<Self, LlmError> {
        match backend {
            Backend::Local(config) => Self::load(config),
            Backend::Remote(server) => Self::remote(server),
        }
    }

    /// An engine that answers from `script` instead of a model: the chat
    /// turn, the server and its routes run on it as on a model, in tests that
    /// are not about the model (nothing to load, replies known in advance).
    pub fn scripted(script: Script) -> Result<Self, LlmError> {
        Self::spawn(move |inbox, ready| super::scripted::run(script, inbox, ready))
    }

    /// Starts the engine thread running `worker`, which says on its [`Ready`]
    /// whether it started; returns once it has.
    fn spawn(worker: impl FnOnce(Inbox, Ready) + Send + 'static) -> Result<Self, LlmError> {
        let (commands, receiver) = std::sync::mpsc::sync_channel(COMMAND_QUEUE);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("workly-engine".into())
            .spawn(move || worker(Inbox::new(receiver), ready_tx))
            .map_err(|_| LlmError::Stopped)?;
        let thread = Arc::new(EngineThread(Some(handle)));
        let info = ready_rx.recv().map_err(|_| LlmError::Stopped)??;
        Ok(Self { commands, info: Arc::new(info), faults: None, _thread: thread })
    }

    /// What is loaded and how it is configured.
    pub fn info(&self) -> &EngineInfo {
        &self.info
    }

    /// A remote back-end's failures so far, by kind (`None` for a local model).
    pub fn faults(&self) -> Option<&Faults> {
        self.faults.as_deref()
    }

    /// Starts a generation; its events arrive on the returned [`Generation`].
    pub fn generate(&self, request: GenerationRequest) -> Result<Generation, LlmError> {
        self.generate_until(request, CancelToken::new())
    }

    /// Starts a generation that `cancel` stops: the caller may hold the switch
    /// before the generation exists (a signal that comes while the prompt is
    /// being fitted cuts the reply as soon as it starts).
    pub fn generate_until(&self, request: GenerationRequest, cancel: CancelToken) -> Result<Generation, LlmError> {
        self.submit(request, cancel, false)
    }

    /// Starts a generation on the side of a conversation (a summary written
    /// while the person reads): the engine puts its KV cache back as it was
    /// afterwards, so the conversation's next turn still finds its own turns
    /// cached. Its prompt is evaluated in small batches, so that `cancel`,
    /// fired when the person's next message comes, stops it within one.
    pub fn generate_aside(&self, request: GenerationRequest, cancel: CancelToken) -> Result<Generation, LlmError> {
        self.submit(request, cancel, true)
    }

    fn submit(&self, request: GenerationRequest, cancel: CancelToken, aside: bool) -> Result<Generation, LlmError> {
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let job = Job { request, submitted: Instant::now(), cancel: cancel.clone(), events, aside };
        self.commands.send(Command::Generate(Box::new(job))).map_err(|_| LlmError::Stopped)?;
        Ok(Generation { events: receiver, cancel })
    }

    /// Exact number of tokens `prompt` renders to (with the generation prompt
    /// for messages), as the engine would evaluate it.
    pub fn count_tokens(&self, prompt: Prompt) -> Result<usize, LlmError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::CountTokens { prompt, reply }).map_err(|_| LlmError::Stopped)?;
        answer.blocking_recv().map_err(|_| LlmError::Stopped)?
    }

    /// Returns once the engine has done everything asked of it before, the
    /// idle work after a reply included (evaluating the next turn's header):
    /// what the time a person takes to read and type gives it between turns.
    pub fn wait_idle(&self) -> Result<(), LlmError> {
        self.acknowledged(|reply| Command::Idle { reply })
    }

    /// Brings the KV cache to hold the start of the turn after `messages`
    /// (a conversation whose opening changed, say), while the person reads:
    /// the next turn then prefills only its message. It gives way to any
    /// other request that comes, and `cancel` stops it, between two small
    /// batches; returns once it is done or stopped.
    pub fn prepare(&self, messages: Vec<Message>, cancel: CancelToken) -> Result<(), LlmError> {
        self.acknowledged(|reply| Command::Prepare { messages, cancel, reply })
    }

    /// Forgets every cached token, the warmed openings' snapshots too: the
    /// next request prefills everything, as on a cold engine.
    pub fn clear_cache(&self) -> Result<(), LlmError> {
        self.acknowledged(|reply| Command::ClearCache { reply })
    }

    /// How well the model predicts `text`: every token after the first of
    /// each context-sized chunk is scored from the logits at the position
    /// before it. The cache is cleared before and after (the next request
    /// prefills everything); the warmed openings' snapshots are kept.
    pub fn perplexity(&self, text: &str) -> Result<PerplexityReport, LlmError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Perplexity { text: text.to_owned(), reply }).map_err(|_| LlmError::Stopped)?;
        answer.blocking_recv().map_err(|_| LlmError::Stopped)?
    }

    /// Sends a command that answers once done, and waits for the answer.
    fn acknowledged(&self, command: impl FnOnce(oneshot::Sender<()>) -> Command) -> Result<(), LlmError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).map_err(|_| LlmError::Stopped)?;
        answer.blocking_recv().map_err(|_| LlmError::Stopped)
    }
}
