//! The avatar bridge: from Kira's emotions to the avatar's face and head.
//!
//! [`AvatarBridge`] is the handle the chat holds. Calling it never blocks or
//! awaits the network: emotion events go through a [`Director`] per transport
//! and become [`Command`]s, commands go into that transport's [`Batcher`], and
//! the transports run on the bridge's own thread, each sending everything
//! pending in one write: the Unity app over TCP ([`unity`]) and VMC receivers
//! over UDP ([`vmc`]). A caller that finds the Unity connection idle writes
//! what is pending itself, without waiting for the bridge's thread to wake. When Unity is absent the bridge keeps retrying in the
//! background and the chat does not notice. [`peer`] is a reference receiver
//! that parses like the Unity app, for tests, the benchmark and
//! `workly avatar peer`.
//!
//! # Layout
//! - [`command`]: the commands, their checked arguments and Unity encoding.
//! - [`state`]: what a renderer holds after applying commands.
//! - [`director`]: emotions and reply life cycle to commands; blink, head motion and mouth.
//! - [`mouth`]: the mouth's opening and vowel, frame by frame, from Kira's voice.
//! - [`batcher`]: pending commands per transport, coalescing, counters.
//! - [`unity`], [`vmc`]: the transports.
//! - [`peer`]: the reference Unity-like receiver.

pub mod batcher;
pub mod command;
pub mod director;
pub mod mouth;
pub mod peer;
pub mod state;
pub mod unity;
pub mod vmc;

pub use batcher::{BatchStats, Batcher};
pub use command::{Command, CommandError, Expression, ModelPath, Unit};
pub use director::{Director, DirectorConfig, IdleMotion};

use crate::emotion::Emotion;
use crate::error::{Class, Classify};
use serde::Serialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use unity::{Reconnect, UnitySettings, Wire};
use vmc::VmcSettings;

/// Frame rate of motion the director draws and of VMC frames while something
/// moves, unless `--avatar-fps` says otherwise.
pub const DEFAULT_FPS: u32 = 60;

/// Why the avatar bridge could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AvatarError {
    /// A command or argument was refused.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// An address that does not parse or resolve.
    #[error("bad address {address:?}: {reason}")]
    Address {
        /// What was given.
        address: String,
        /// Why it is bad.
        reason: String,
    },
    /// Neither Unity nor any VMC receiver to send to.
    #[error("no avatar transport: --no-unity needs at least one --vmc")]
    NoTransport,
    /// A command only VMC carries, with no VMC receiver to send it to.
    #[error("{0} goes to VMC receivers only (the Unity app has no such command): add --vmc")]
    VmcOnly(&'static str),
    /// The bridge's thread or runtime could not start.
    #[error("cannot start the avatar bridge: {0}")]
    Start(#[source] std::io::Error),
    /// Commands were still waiting when the flush timed out.
    #[error("{transport}: commands not delivered within {waited_ms} ms ({reason})")]
    NotDelivered {
        /// Which transport.
        transport: String,
        /// How long the flush waited.
        waited_ms: u128,
        /// The transport's last error, if any.
        reason: String,
    },
    /// The reference peer could not listen.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Classify for AvatarError {
    fn class(&self) -> Class {
        match self {
            AvatarError::Command(_)
            | AvatarError::Address { .. }
            | AvatarError::NoTransport
            | AvatarError::VmcOnly(_) => Class::BadInput,
            AvatarError::Start(_) | AvatarError::NotDelivered { .. } | AvatarError::Listen { .. } => Class::Failure,
        }
    }
}

/// Everything the bridge needs, resolved.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// The Unity app's bridge, if Workly should connect to it.
    pub unity: Option<SocketAddr>,
    /// VMC receivers.
    pub vmc: Vec<SocketAddr>,
    /// Cap on writes and frames per second (`--avatar-fps`).
    pub fps: Option<u32>,
    /// The director's timings (its frame interval follows `fps`), or `None`
    /// for manual control (only commands sent with [`AvatarBridge::send`] go
    /// out).
    pub director: Option<DirectorConfig>,
    /// A model to load when the bridge starts.
    pub model: Option<ModelPath>,
    /// Backoff between attempts to connect to Unity.
    pub reconnect: Reconnect,
    /// Told each frame written to Unity (its JSON lines), e.g. to show clients
    /// the same commands the renderer got.
    pub tap: Option<FrameTap>,
}

/// Something told each frame written to the Unity app.
#[derive(Clone)]
pub struct FrameTap(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for FrameTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameTap")
    }
}

/// `HOST:PORT` or `HOST` (with `default_port`) to one socket address.
pub fn resolve(address: &str, default_port: u16) -> Result<SocketAddr, AvatarError> {
    let bad = |reason: String| AvatarError::Address { address: address.to_owned(), reason };
    let resolved = match address.parse::<SocketAddr>() {
        Ok(socket) => return Ok(socket),
        Err(_) if address.contains(':') => address.to_socket_addrs(),
        Err(_) => (address, default_port).to_socket_addrs(),
    };
    resolved.map_err(|error| bad(error.to_string()))?.next().ok_or_else(|| bad("resolves to nothing".to_owned()))
}

/// How one transport's connection is doing.
#[derive(Debug, Default)]
pub(crate) struct Link {
    connected: AtomicBool,
    connects: AtomicU64,
    replies: AtomicU64,
    moving: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Link {
    fn connected(&self) {
        self.connected.store(true, Ordering::Relaxed);
        self.connects.fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, reason: String) {
        tracing::debug!("avatar: {reason}");
        self.connected.store(false, Ordering::Relaxed);
        *lock(&self.last_error) = Some(reason);
    }

    fn record_replies(&self, lines: usize) {
        self.replies.fetch_add(lines as u64, Ordering::Relaxed);
    }

    fn set_moving(&self, moving: bool) {
        self.moving.store(moving, Ordering::Relaxed);
    }
}

/// How one transport is doing, for metrics and `--verbose`.
#[derive(Debug, Clone, Serialize)]
pub struct TransportStats {
    /// `unity ADDRESS` or `vmc ADDRESS...`.
    pub transport: String,
    /// Whether it is connected now (VMC: its socket is open).
    pub connected: bool,
    /// Successful connections so far.
    pub connects: u64,
    /// Lines Unity sent back (acknowledgements, read and discarded).
    pub replies_received: u64,
    /// Whether shown values are still easing towards their targets (VMC;
    /// Unity eases on its side).
    pub moving: bool,
    /// The last connection or send error.
    pub last_error: Option<String>,
    /// What became of the commands.
    #[serde(flatten)]
    pub batch: BatchStats,
}

/// One transport with its batcher, connection status and director.
#[derive(Debug)]
struct Outlet {
    name: String,
    batcher: Batcher,
    /// The Unity connection's write side, which senders write through
    /// themselves when it is idle (VMC frames are paced by its own task).
    wire: Option<Arc<Wire>>,
    link: Link,
    director: Option<Mutex<Director>>,
    /// Wakes the director task when an event may have moved its deadline.
    director_changed: Notify,
}

impl Outlet {
    fn new(name: String, wire: Option<Arc<Wire>>, director: Option<Director>) -> Arc<Self> {
        Arc::new(Self {
            name,
            batcher: Batcher::default(),
            wire,
            link: Link::default(),
            director: director.map(Mutex::new),
            director_changed: Notify::new(),
        })
    }

    /// Hands commands to the transport: written at once from this thread if
    /// the Unity connection is idle, else left to the transport's task.
    fn hand(&self, commands: impl IntoIterator<Item = Command>) {
        if self.batcher.add(commands) && !self.wire.as_ref().is_some_and(|wire| wire.write_now(&self.batcher)) {
            self.batcher.wake();
        }
    }

    /// Runs `event` on the director, if any, and sends what it says.
    fn direct(&self, event: impl FnOnce(&mut Director, Instant) -> Vec<Command>) {
        let Some(director) = &self.director else { return };
        let commands = event(&mut lock(director), Instant::now());
        self.hand(commands);
        self.director_changed.notify_one();
    }

    /// Calls the director's `tick` whenever it is due, until the bridge stops.
    async fn run_director(&self) {
        let Some(director) = &self.director else { return };
        loop {
            let deadline = lock(director).next_deadline();
            let changed = self.director_changed.notified();
            match deadline {
                Some(at) => tokio::select! {
                    () = changed => continue,
                    () = tokio::time::sleep_until(at.into()) => {}
                },
                None => {
                    changed.await;
                    continue;
                }
            }
            let commands = lock(director).tick(Instant::now());
            self.hand(commands);
        }
    }

    fn stats(&self) -> TransportStats {
        TransportStats {
            transport: self.name.clone(),
            connected: self.link.connected.load(Ordering::Relaxed),
            connects: self.link.connects.load(Ordering::Relaxed),
            replies_received: self.link.replies.load(Ordering::Relaxed),
            moving: self.link.moving.load(Ordering::Relaxed),
            last_error: lock(&self.link.last_error).clone(),
            batch: self.batcher.stats(),
        }
    }
}

/// Locks `mutex`, taking over a poisoned one: every value behind these locks
/// is changed by single assignments or moves, so a panicking holder cannot
/// leave it half-updated.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The handle the chat holds: send emotions, reply events and commands; read
/// stats. Dropping it stops the bridge's thread and every transport.
#[derive(Debug)]
pub struct AvatarBridge {
    outlets: Vec<Arc<Outlet>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AvatarBridge {
    /// Starts the bridge's thread and transports. Returns at once: Unity is
    /// connected in the background, and commands wait (coalesced) until it is.
    pub fn start(config: BridgeConfig) -> Result<Self, AvatarError> {
        if config.unity.is_none() && config.vmc.is_empty() {
            return Err(AvatarError::NoTransport);
        }
        let fps = config.fps.unwrap_or(DEFAULT_FPS).max(1);
        let frame_interval = Duration::from_secs_f64(1.0 / f64::from(fps));
        let min_write_interval = config.fps.map(|_| frame_interval);
        let now = Instant::now();
        // Blink and head timing only need to differ between runs.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos() as u64);
        let director = |idle| {
            config
                .director
                .map(|director| Director::new(DirectorConfig { frame_interval, ..director }, idle, now, seed))
        };
        let mut transports: Vec<(Arc<Outlet>, Transport)> = Vec::new();
        if let Some(address) = config.unity {
            let wire = Arc::new(Wire::new(min_write_interval, config.tap.clone()));
            let outlet =
                Outlet::new(format!("unity {address}"), Some(Arc::clone(&wire)), director(IdleMotion::Renderer));
            let settings = UnitySettings { address, reconnect: config.reconnect };
            transports.push((outlet, Transport::Unity(settings, wire)));
        }
        if !config.vmc.is_empty() {
            let names: Vec<String> = config.vmc.iter().map(ToString::to_string).collect();
            let outlet = Outlet::new(format!("vmc {}", names.join(",")), None, director(IdleMotion::Director));
            let settings = VmcSettings { targets: config.vmc.clone(), frame_interval, paced: config.fps.is_some() };
            transports.push((outlet, Transport::Vmc(settings)));
        }
        for (outlet, _) in &transports {
            let start = outlet.director.as_ref().map(|director| lock(director).start()).unwrap_or_default();
            // No connection yet: these wait for the transport's first write.
            outlet.batcher.push_all(config.model.clone().map(Command::LoadModel).into_iter().chain(start));
        }
        let outlets = transports.iter().map(|(outlet, _)| Arc::clone(outlet)).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(AvatarError::Start)?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("workly-avatar".to_owned())
            .spawn(move || runtime.block_on(serve(transports, stopped)))
            .map_err(AvatarError::Start)?;
        Ok(Self { outlets, stop: Some(stop), thread: Some(thread) })
    }

    /// Sends one command to every transport, as is.
    pub fn send(&self, command: Command) {
        for outlet in &self.outlets {
            outlet.hand([command.clone()]);
        }
    }

    /// Sends several commands to every transport; they leave in one write.
    pub fn send_all(&self, commands: &[Command]) {
        for outlet in &self.outlets {
            outlet.hand(commands.iter().cloned());
        }
    }

    /// Kira now feels `emotion` at `intensity` (0..1).
    pub fn emotion(&self, emotion: Emotion, intensity: f32) {
        for outlet in &self.outlets {
            outlet.direct(|director, now| director.emotion(now, emotion, intensity));
        }
    }

    /// Kira started a reply: the face holds until it is finished.
    pub fn reply_started(&self) {
        for outlet in &self.outlets {
            outlet.direct(|director, _| {
                director.reply_started();
                Vec::new()
            });
        }
    }

    /// The reply is finished: the face eases back to neutral after a while.
    pub fn reply_finished(&self) {
        for outlet in &self.outlets {
            outlet.direct(|director, now| {
                director.reply_finished(now);
                Vec::new()
            });
        }
    }

    /// Kira's voice starts saying a sentence now: the mouth follows `track`
    /// from this moment (on VMC; the Unity app has no mouth command).
    pub fn speak(&self, track: &Arc<mouth::MouthTrack>) {
        for outlet in &self.outlets {
            outlet.direct(|director, now| {
                director.speak(Arc::clone(track), now);
                Vec::new()
            });
        }
    }

    /// Kira's voice stopped before the sentence's end: the mouth closes now.
    pub fn hush(&self) {
        for outlet in &self.outlets {
            outlet.direct(|director, _| director.hush());
        }
    }

    /// Commands waiting for a writer on the transport furthest behind. A
    /// sender that wants every command delivered rather than superseded
    /// hands more only when this is zero: the writer has taken the last
    /// ones, and the next ones go out as soon as its write is done.
    pub fn pending(&self) -> usize {
        self.outlets.iter().map(|outlet| outlet.batcher.pending()).max().unwrap_or(0)
    }

    /// Each transport's counters and connection status.
    pub fn stats(&self) -> Vec<TransportStats> {
        self.outlets.iter().map(|outlet| outlet.stats()).collect()
    }

    /// Waits until every transport has written everything handed to it, or
    /// `timeout` passes; blocks the calling thread.
    pub fn flush(&self, timeout: Duration) -> Result<(), AvatarError> {
        let deadline = Instant::now() + timeout;
        for outlet in &self.outlets {
            if !outlet.batcher.wait_drained(deadline.saturating_duration_since(Instant::now())) {
                let reason = outlet.stats().last_error.unwrap_or_else(|| "the peer is not reading".to_owned());
                return Err(AvatarError::NotDelivered {
                    transport: outlet.name.clone(),
                    waited_ms: timeout.as_millis(),
                    reason,
                });
            }
        }
        Ok(())
    }
}

// The chat may hold the handle behind an `Arc` and call it from any thread.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<AvatarBridge>();
};

impl Drop for AvatarBridge {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One transport's settings.
#[derive(Debug)]
enum Transport {
    Unity(UnitySettings, Arc<Wire>),
    Vmc(VmcSettings),
}

/// The bridge thread: every transport and director as a task, until `stopped`.
async fn serve(transports: Vec<(Arc<Outlet>, Transport)>, stopped: tokio::sync::oneshot::Receiver<()>) {
    let mut tasks = tokio::task::JoinSet::new();
    for (outlet, transport) in transports {
        let director = Arc::clone(&outlet);
        tasks.spawn(async move { director.run_director().await });
        tasks.spawn(async move {
            match transport {
                Transport::Unity(settings, wire) => unity::run(settings, &wire, &outlet.batcher, &outlet.link).await,
                Transport::Vmc(settings) => vmc::run(settings, &outlet.batcher, &outlet.link).await,
            }
        });
    }
    // A dropped sender also means stop.
    let _ = stopped.await;
    tasks.shutdown().await;
}
