//! The Unity transport: Workly as the TCP client of the Unity app's bridge,
//! per `specs/unity-bridge.md`.
//!
//! It connects (retrying with backoff for as long as the bridge runs, so the
//! chat goes on while Unity is absent), restores the avatar's state after each
//! reconnect, then writes each batch of pending commands as JSON lines in one
//! write. Whatever Unity sends back is read into a fixed buffer and discarded:
//! its replies are empty acknowledgements at best, and garbage, endless lines
//! or a half line before closing must neither stall the writer nor grow
//! memory. It owns the connection, not the batching or the encoding.

use super::Link;
use super::batcher::Batcher;
use super::command::Command;
use super::state::AvatarState;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The Unity app's default bridge address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:5555";
/// The Unity app's default port, for a `--unity HOST` without one.
pub const DEFAULT_PORT: u16 = 5555;

/// Where to connect and how to pace.
#[derive(Debug, Clone)]
pub struct UnitySettings {
    /// The Unity bridge.
    pub address: SocketAddr,
    /// Delays between connection attempts.
    pub reconnect: Reconnect,
    /// Shortest time between two writes (`--avatar-fps`), if capped.
    pub min_write_interval: Option<Duration>,
    /// Told each frame written.
    pub tap: Option<super::FrameTap>,
}

/// Backoff between connection attempts: doubling from `first` up to `max`,
/// back to `first` after a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// The first delay.
    pub first: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Self { first: Duration::from_millis(100), max: Duration::from_secs(3) }
    }
}

/// What outlives one connection.
#[derive(Debug, Default)]
struct Session {
    /// The state written so far, for restoring a restarted Unity app.
    state: AvatarState,
    /// The batch being written; kept here so a write cut short by a lost
    /// connection can go back to the batcher.
    batch: Vec<Command>,
}

/// Runs the Unity transport until the bridge stops it.
pub(crate) async fn run(settings: UnitySettings, batcher: &Batcher, link: &Link) {
    let mut session = Session::default();
    let mut delay = settings.reconnect.first;
    loop {
        match TcpStream::connect(settings.address).await {
            Ok(stream) => {
                delay = settings.reconnect.first;
                link.connected();
                let reason = serve(stream, &settings, batcher, link, &mut session).await;
                if !session.batch.is_empty() {
                    batcher.requeue(&mut session.batch);
                }
                tracing::info!("avatar: {reason}; reconnecting");
                link.failed(reason);
            }
            Err(error) => link.failed(format!("cannot connect to Unity at {}: {error}", settings.address)),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(settings.reconnect.max);
    }
}

/// Serves one connection until it fails; returns why it ended.
async fn serve(
    stream: TcpStream,
    settings: &UnitySettings,
    batcher: &Batcher,
    link: &Link,
    session: &mut Session,
) -> String {
    // Commands are small and latency matters more than packet count; the
    // batcher already fills each write.
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    tokio::select! {
        reason = discard_replies(reader, link) => reason,
        reason = write_commands(writer, settings, batcher, session) => reason,
    }
}

/// Reads and throws away what Unity sends, counting its lines.
async fn discard_replies(mut reader: OwnedReadHalf, link: &Link) -> String {
    let mut buffer = [0u8; 4096];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) => return "Unity closed the connection".to_owned(),
            Ok(read) => link.record_replies(memchr::memchr_iter(b'\n', &buffer[..read]).count()),
            Err(error) => return format!("cannot read from Unity: {error}"),
        }
    }
}

/// Restores the session's state, then writes each batch in one write.
async fn write_commands(
    mut writer: OwnedWriteHalf,
    settings: &UnitySettings,
    batcher: &Batcher,
    session: &mut Session,
) -> String {
    let Session { state, batch } = session;
    let mut bytes = Vec::with_capacity(16 * 1024);
    let replay = state.replay();
    if !replay.is_empty() {
        for command in &replay {
            command.encode_unity(&mut bytes);
        }
        if let Err(error) = writer.write_all(&bytes).await {
            return format!("cannot write to Unity: {error}");
        }
        batcher.record_frame(bytes.len());
        batcher.record_resent(replay.len());
    }
    let mut last_write: Option<Instant> = None;
    loop {
        if let (Some(interval), Some(last)) = (settings.min_write_interval, last_write) {
            tokio::time::sleep_until((last + interval).into()).await;
        }
        batcher.take(batch).await;
        bytes.clear();
        let before = batch.len();
        batch.retain(|command| command.encode_unity(&mut bytes));
        batcher.finished(0, before - batch.len());
        if batch.is_empty() {
            continue;
        }
        if let Err(error) = writer.write_all(&bytes).await {
            return format!("cannot write to Unity: {error}");
        }
        batch.iter().for_each(|command| state.apply(command));
        if let Some(tap) = &settings.tap {
            // The encoder writes ASCII JSON lines only.
            (tap.0)(std::str::from_utf8(&bytes).unwrap_or_default());
        }
        // Counted before `finished` wakes a flush, so a flushed bridge's stats are complete.
        batcher.record_frame(bytes.len());
        batcher.finished(batch.len(), 0);
        batch.clear();
        last_write = Some(Instant::now());
    }
}
