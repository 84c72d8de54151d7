//! The Unity transport: Workly as the TCP client of the Unity app's bridge,
//! per `specs/unity-bridge.md`.
//!
//! It connects (retrying with backoff for as long as the bridge runs, so the
//! chat goes on while Unity is absent), restores the avatar's state after each
//! reconnect, then writes each batch of pending commands as JSON lines in one
//! write. A sender that finds the connection idle writes what is pending
//! itself, at once, with one non-blocking write: a command does not wait for
//! the bridge's thread to wake up, which costs more than the write on most
//! machines. Whatever the socket cannot take at once is finished by the
//! transport's task when the socket is writable again, and commands handed
//! over meanwhile wait, coalescing, for the next write. Whatever Unity sends
//! back is read into a fixed buffer and discarded: its replies are empty
//! acknowledgements at best, and garbage, endless lines or a half line before
//! closing must neither stall the writer nor grow memory. It owns the
//! connection, not the batching or the encoding.

use super::batcher::Batcher;
use super::command::Command;
use super::state::AvatarState;
use super::{FrameTap, Link};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The Unity app's default bridge address.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:5555";
/// The Unity app's default port, for a `--unity HOST` without one.
pub const DEFAULT_PORT: u16 = 5555;

/// Where to connect.
#[derive(Debug, Clone)]
pub struct UnitySettings {
    /// The Unity bridge.
    pub address: SocketAddr,
    /// Delays between connection attempts.
    pub reconnect: Reconnect,
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

/// The write side of the connection to Unity, shared by the transport's task
/// and by the senders, who write through it when nobody else is.
#[derive(Debug)]
pub(crate) struct Wire {
    outbox: Mutex<Outbox>,
    /// Shortest time between two writes (`--avatar-fps`), if capped.
    min_write_interval: Option<Duration>,
    /// Told each batch written.
    tap: Option<FrameTap>,
}

/// What one write is made of, and what outlives a connection.
#[derive(Debug, Default)]
struct Outbox {
    /// The connection, while there is one.
    socket: Option<Arc<OwnedWriteHalf>>,
    /// The state written so far, for restoring a restarted Unity app.
    state: AvatarState,
    /// The batch being written; it goes back to the batcher if the
    /// connection is lost before all of it is written.
    batch: Vec<Command>,
    /// The batch's lines (or a replay's), and how much of them the socket took.
    bytes: Vec<u8>,
    written: usize,
    /// Commands of the replay in `bytes`, if it is one.
    replaying: usize,
    last_write: Option<Instant>,
}

/// Where the writing stopped.
#[derive(Debug)]
enum Stop {
    /// Nothing is left to write, or there is no connection to write to.
    Idle,
    /// The socket's buffer is full: wait until it is writable.
    Blocked(Arc<OwnedWriteHalf>),
    /// `--avatar-fps` allows the next write at this instant.
    Paced(Instant),
    /// The connection failed.
    Failed(String),
}

impl Wire {
    /// A wire with no connection yet.
    pub(crate) fn new(min_write_interval: Option<Duration>, tap: Option<FrameTap>) -> Self {
        Self { outbox: Mutex::default(), min_write_interval, tap }
    }

    /// Writes what is pending now, from the calling thread, unless another
    /// thread is writing. True if nothing is left for the transport's task.
    pub(crate) fn write_now(&self, batcher: &Batcher) -> bool {
        match self.outbox.try_lock() {
            Ok(mut outbox) => matches!(self.write(&mut outbox, batcher), Stop::Idle),
            Err(TryLockError::Poisoned(poisoned)) => {
                matches!(self.write(&mut poisoned.into_inner(), batcher), Stop::Idle)
            }
            Err(TryLockError::WouldBlock) => false,
        }
    }

    /// Writes until nothing is pending or the socket or pacing says wait.
    fn write(&self, outbox: &mut Outbox, batcher: &Batcher) -> Stop {
        loop {
            let Some(socket) = &outbox.socket else { return Stop::Idle };
            if outbox.written < outbox.bytes.len() {
                match socket.try_write(&outbox.bytes[outbox.written..]) {
                    Ok(0) => return Stop::Failed("cannot write to Unity: the connection took nothing".to_owned()),
                    Ok(wrote) => outbox.written += wrote,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => return Stop::Blocked(Arc::clone(socket)),
                    Err(error) => return Stop::Failed(format!("cannot write to Unity: {error}")),
                }
                if outbox.written == outbox.bytes.len() {
                    self.written(outbox, batcher);
                }
                continue;
            }
            if let (Some(interval), Some(last)) = (self.min_write_interval, outbox.last_write)
                && last.elapsed() < interval
            {
                return Stop::Paced(last + interval);
            }
            if !batcher.try_take(&mut outbox.batch) {
                return Stop::Idle;
            }
            let Outbox { batch, bytes, written, .. } = outbox;
            bytes.clear();
            *written = 0;
            let before = batch.len();
            batch.retain(|command| command.encode_unity(bytes));
            batcher.finished(0, before - batch.len());
        }
    }

    /// The socket took all of `outbox.bytes`.
    fn written(&self, outbox: &mut Outbox, batcher: &Batcher) {
        // Counted before `finished` wakes a flush, so a flushed bridge's stats are complete.
        batcher.record_frame(outbox.bytes.len());
        if outbox.replaying > 0 {
            batcher.record_resent(std::mem::take(&mut outbox.replaying));
        } else {
            outbox.batch.iter().for_each(|command| outbox.state.apply(command));
            if let Some(tap) = &self.tap {
                // The encoder writes ASCII JSON lines only.
                (tap.0)(std::str::from_utf8(&outbox.bytes).unwrap_or_default());
            }
            batcher.finished(outbox.batch.len(), 0);
            outbox.batch.clear();
            outbox.last_write = Some(Instant::now());
        }
        outbox.bytes.clear();
        outbox.written = 0;
    }

    /// A new connection: the avatar's state is written first.
    fn connect(&self, socket: OwnedWriteHalf) {
        let mut outbox = self.lock();
        let replay = outbox.state.replay();
        outbox.bytes.clear();
        outbox.written = 0;
        for command in &replay {
            command.encode_unity(&mut outbox.bytes);
        }
        outbox.replaying = replay.len();
        outbox.socket = Some(Arc::new(socket));
    }

    /// The connection is gone: a batch not wholly written goes back to the
    /// batcher, to follow the replay on the next connection.
    fn disconnect(&self, batcher: &Batcher) {
        let mut outbox = self.lock();
        outbox.socket = None;
        outbox.bytes.clear();
        outbox.written = 0;
        outbox.replaying = 0;
        if !outbox.batch.is_empty() {
            batcher.requeue(&mut outbox.batch);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Outbox> {
        // Every change to the outbox is a single assignment or move.
        super::lock(&self.outbox)
    }
}

/// Runs the Unity transport until the bridge stops it.
pub(crate) async fn run(settings: UnitySettings, wire: &Wire, batcher: &Batcher, link: &Link) {
    let mut delay = settings.reconnect.first;
    loop {
        match TcpStream::connect(settings.address).await {
            Ok(stream) => {
                delay = settings.reconnect.first;
                // Commands are small and latency matters more than packet
                // count; the batcher already fills each write.
                let _ = stream.set_nodelay(true);
                let (reader, writer) = stream.into_split();
                wire.connect(writer);
                link.connected();
                let reason = tokio::select! {
                    reason = discard_replies(reader, link) => reason,
                    reason = write_commands(wire, batcher) => reason,
                };
                wire.disconnect(batcher);
                tracing::info!("avatar: {reason}; reconnecting");
                link.failed(reason);
            }
            Err(error) => link.failed(format!("cannot connect to Unity at {}: {error}", settings.address)),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(settings.reconnect.max);
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

/// Writes whatever the senders left: the replay, writes the socket could not
/// take whole, commands handed over while another write was going on or
/// before the pacing allowed. Returns why the connection ended.
async fn write_commands(wire: &Wire, batcher: &Batcher) -> String {
    loop {
        let stop = wire.write(&mut wire.lock(), batcher);
        match stop {
            Stop::Idle => batcher.until_woken().await,
            Stop::Blocked(socket) => {
                if let Err(error) = socket.writable().await {
                    return format!("cannot write to Unity: {error}");
                }
            }
            Stop::Paced(at) => tokio::time::sleep_until(at.into()).await,
            Stop::Failed(reason) => return reason,
        }
    }
}
