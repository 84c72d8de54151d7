//! `workly serve`: the server's settings resolved from the flags, the config
//! file and the machine, then [`crate::server::run`].

use super::{Context, ServeArgs};
use crate::avatar::AvatarBridge;
use crate::chat::Conversation;
use crate::chat::history::History;
use crate::chat::turn::Chat;
use crate::llm::Backend;
use crate::server::events::Hub;
use crate::server::security::Policy;
use crate::server::{self, ServerConfig};
use crate::store::Store;
use std::net::SocketAddr;

/// Runs `workly serve` until Ctrl-C or SIGTERM.
pub fn run(context: &Context, args: &ServeArgs) -> crate::error::Result<()> {
    let policy = Policy::new(args.host, args.api_key.clone())?;
    let voice_settings = context.voice(&args.voice)?;
    let mut conversation = Conversation::new(context.persona(args.persona.as_deref())?);
    // Opened before the model loads, so a damaged database is reported at once.
    let mut history = History::open(Store::open(&context.dirs.database())?, args.conversation.as_deref())?;
    history.set_memory(context.memory(args.no_memory));
    let Setup { engine, doctor, avatar, hub, resuming } = match prepare(context, args, &mut conversation, &history) {
        Ok(setup) => setup,
        Err(error) => {
            history.abandon();
            return Err(error);
        }
    };
    // Said after the conversation's line, once listening, like it.
    let resuming = match super::memory::attach_embedder(&context.dirs, &mut history, engine.threads_prefill()) {
        Some(notice) => format!("{resuming}\n{notice}"),
        None => resuming,
    };
    server::run(ServerConfig {
        address: SocketAddr::new(args.host, args.port),
        policy,
        max_queue: usize::from(args.max_queue),
        engine,
        page: Chat::new(conversation, Some(history)),
        doctor,
        avatar,
        hub,
        resuming,
        voice: crate::voice::VoiceFiles::new(&context.dirs.models()),
        voice_settings,
    })
}

/// What `workly serve` sets up before it listens.
struct Setup {
    /// The engine's configuration, warming the persona in every language.
    engine: Backend,
    doctor: crate::hardware::DoctorReport,
    avatar: Option<AvatarBridge>,
    hub: Hub,
    /// The line saying which conversation the page continues.
    resuming: String,
}

/// Tunes the engine, resumes `conversation` from `history` and starts the
/// avatar bridge.
fn prepare(
    context: &Context,
    args: &ServeArgs,
    conversation: &mut Conversation,
    history: &History,
) -> crate::error::Result<Setup> {
    let (mut engine, doctor) = super::backend(context, &args.engine)?;
    let resumed = history.resume(conversation, engine.context_size() as usize)?;
    let resuming = format!("workly: the page continues conversation `{}` ({resumed} earlier messages)", history.name());
    // The page chats as the persona: warm its prompt, in every language, so
    // the first reply of any conversation is fast.
    engine.set_warmup(conversation.openings());
    let hub = Hub::default();
    let avatar = super::avatar::start_bridge(&args.avatar, Some(hub.avatar_tap()))?;
    Ok(Setup { engine, doctor, avatar, hub, resuming })
}
