//! The batcher: the set of commands waiting for one transport, and its
//! counters.
//!
//! Senders push without blocking or awaiting; the transport's writer takes
//! everything pending the moment it can write and sends it in one write, and
//! whatever arrives while that write is in flight waits for the next one. No
//! timer holds a lone command back. A command that supersedes a pending one
//! (same expression, same setting, a reset after emotional targets) removes
//! it, so the pending set never holds two commands with the same key: a
//! stalled peer costs at most one command per key, whatever the senders do.
//! How bytes reach the wire is the transports' business.

use super::command::Command;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Commands waiting for one transport, and what became of those handed to it.
#[derive(Debug, Default)]
pub struct Batcher {
    queue: Mutex<Queue>,
    ready: Notify,
    drained: Condvar,
    /// `pending.len()`, readable without the lock by a sender that polls it.
    pending_len: AtomicUsize,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Queue {
    pending: Vec<Command>,
    /// Commands taken by the writer whose write has not finished.
    in_flight: usize,
}

impl Queue {
    fn is_drained(&self) -> bool {
        self.pending.is_empty() && self.in_flight == 0
    }
}

#[derive(Debug, Default)]
struct Counters {
    handed: AtomicU64,
    coalesced: AtomicU64,
    sent: AtomicU64,
    resent: AtomicU64,
    dropped: AtomicU64,
    frames: AtomicU64,
    bytes: AtomicU64,
}

/// What became of the commands handed to one transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BatchStats {
    /// Commands handed to the batcher.
    pub commands_handed: u64,
    /// Commands removed because a later one superseded them before sending.
    pub commands_coalesced: u64,
    /// Commands written to the transport.
    pub commands_sent: u64,
    /// Commands written again to restore the avatar after a reconnect.
    pub commands_resent: u64,
    /// Commands the transport could not carry (a Unity write that failed, a
    /// command Unity does not have).
    pub commands_dropped: u64,
    /// Writes (Unity) or frames (VMC).
    pub frames: u64,
    /// Bytes written.
    pub bytes_sent: u64,
}

impl Batcher {
    /// Hands one command to the transport; never blocks on the network.
    pub fn push(&self, command: Command) {
        self.push_all(std::iter::once(command));
    }

    /// Hands several commands at once: they go out in the same write unless
    /// one is already in flight.
    pub fn push_all(&self, commands: impl IntoIterator<Item = Command>) {
        if self.add(commands) {
            self.wake();
        }
    }

    /// Adds commands to the pending set without waking the writer, for a
    /// sender that may write them itself; false if there were none.
    pub fn add(&self, commands: impl IntoIterator<Item = Command>) -> bool {
        let (mut handed, mut coalesced) = (0, 0);
        {
            let mut queue = self.lock();
            for command in commands {
                handed += 1;
                coalesced += coalesce(&mut queue.pending, command);
            }
            self.pending_len.store(queue.pending.len(), Ordering::Release);
        }
        self.counters.handed.fetch_add(handed, Ordering::Relaxed);
        self.counters.coalesced.fetch_add(coalesced, Ordering::Relaxed);
        handed > 0
    }

    /// Wakes the writer waiting in [`Batcher::take`] or [`Batcher::until_woken`].
    pub fn wake(&self) {
        self.ready.notify_one();
    }

    /// Waits until something is pending, then moves all of it to the end of
    /// `batch`. Cancel-safe: commands move only when it returns.
    pub async fn take(&self, batch: &mut Vec<Command>) {
        loop {
            if self.try_take(batch) {
                return;
            }
            self.ready.notified().await;
        }
    }

    /// Waits until something is pending (without taking it) or a sender
    /// woke the writer. A sender that wrote inline and was cut short by a full
    /// socket leaves the rest of its write to the writer with nothing pending
    /// (it took the commands): waiting for pending commands alone would leave
    /// that rest unwritten until the next command came, if ever.
    pub async fn until_woken(&self) {
        if self.pending() == 0 {
            self.ready.notified().await;
        }
    }

    /// Moves whatever is pending to the end of `batch`; false if nothing was.
    pub fn try_take(&self, batch: &mut Vec<Command>) -> bool {
        let mut queue = self.lock();
        if queue.pending.is_empty() {
            return false;
        }
        queue.in_flight += queue.pending.len();
        batch.append(&mut queue.pending);
        self.pending_len.store(0, Ordering::Release);
        true
    }

    /// Commands from [`Batcher::take`] are done with: `sent` written, `dropped`
    /// refused by the transport.
    pub fn finished(&self, sent: usize, dropped: usize) {
        self.counters.sent.fetch_add(sent as u64, Ordering::Relaxed);
        self.counters.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        let mut queue = self.lock();
        queue.in_flight = queue.in_flight.saturating_sub(sent + dropped);
        if queue.is_drained() {
            self.drained.notify_all();
        }
    }

    /// A write of `batch` (taken earlier) failed: its commands go back in
    /// front of what is pending, where later commands still supersede them.
    pub fn requeue(&self, batch: &mut Vec<Command>) {
        let count = batch.len();
        {
            let mut queue = self.lock();
            let newer = std::mem::replace(&mut queue.pending, std::mem::take(batch));
            // What the newer commands supersede is coalesced like at `push`,
            // so handed = sent + coalesced + dropped still holds.
            let coalesced: u64 = newer.into_iter().map(|command| coalesce(&mut queue.pending, command)).sum();
            self.counters.coalesced.fetch_add(coalesced, Ordering::Relaxed);
            self.pending_len.store(queue.pending.len(), Ordering::Release);
            queue.in_flight = queue.in_flight.saturating_sub(count);
        }
        self.ready.notify_one();
    }

    /// One write or frame of `bytes` left.
    pub fn record_frame(&self, bytes: usize) {
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `commands` were written again after a reconnect.
    pub fn record_resent(&self, commands: usize) {
        self.counters.resent.fetch_add(commands as u64, Ordering::Relaxed);
    }

    /// Commands waiting for the writer to take them (not counting those
    /// being written).
    pub fn pending(&self) -> usize {
        self.pending_len.load(Ordering::Acquire)
    }

    /// Waits until nothing is pending or in flight; false if `timeout` passed first.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut queue = self.lock();
        while !queue.is_drained() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queue = self.drained.wait_timeout(queue, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }

    /// The counters so far.
    pub fn stats(&self) -> BatchStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = &self.counters;
        BatchStats {
            commands_handed: read(&counters.handed),
            commands_coalesced: read(&counters.coalesced),
            commands_sent: read(&counters.sent),
            commands_resent: read(&counters.resent),
            commands_dropped: read(&counters.dropped),
            frames: read(&counters.frames),
            bytes_sent: read(&counters.bytes),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue stays consistent even if a holder panicked: every update
        // is a single push or move.
        super::lock(&self.queue)
    }
}

/// Appends `command`, first removing the pending commands it supersedes;
/// returns how many it removed. Removing rather than replacing in place keeps
/// the order of last writes, so a reset and a later target still apply in
/// the order they were given.
fn coalesce(pending: &mut Vec<Command>, command: Command) -> u64 {
    let before = pending.len();
    pending.retain(|earlier| !command.supersedes(earlier));
    let removed = (before - pending.len()) as u64;
    pending.push(command);
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avatar::command::{Expression, TransitionSpeed, Unit};
    use crate::avatar::state::AvatarState;
    use proptest::prelude::*;

    fn set(expression: Expression, value: f32) -> Command {
        Command::set_expression(expression, Unit::new(value).unwrap())
    }

    #[test]
    fn later_commands_supersede_pending_ones() {
        let batcher = Batcher::default();
        batcher.push_all([set(Expression::Joy, 0.2), set(Expression::Blink, 1.0), set(Expression::Joy, 0.9)]);
        batcher.push(Command::ResetExpressions);
        batcher.push(set(Expression::Sorrow, 0.5));
        let mut batch = Vec::new();
        assert!(batcher.try_take(&mut batch));
        assert_eq!(batch, [set(Expression::Blink, 1.0), Command::ResetExpressions, set(Expression::Sorrow, 0.5)]);
        let stats = batcher.stats();
        assert_eq!((stats.commands_handed, stats.commands_coalesced), (5, 2));
        assert!(!batcher.wait_drained(Duration::ZERO), "taken but not yet written");
        assert_eq!(batcher.pending(), 0);
        batcher.finished(3, 0);
        assert!(batcher.wait_drained(Duration::ZERO));
    }

    #[test]
    fn a_failed_write_goes_back_before_newer_commands() {
        let batcher = Batcher::default();
        batcher.push_all([set(Expression::Joy, 0.2), Command::SetAutoBlink(true)]);
        let mut batch = Vec::new();
        batcher.try_take(&mut batch);
        batcher.push(set(Expression::Joy, 0.7));
        batcher.requeue(&mut batch);
        let mut again = Vec::new();
        batcher.try_take(&mut again);
        assert_eq!(again, [Command::SetAutoBlink(true), set(Expression::Joy, 0.7)]);
    }

    fn any_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            (0..Expression::ALL.len(), 0.0f32..=1.0).prop_map(|(i, v)| set(Expression::ALL[i], v)),
            Just(Command::ResetExpressions),
            (0.1f32..10.0).prop_map(|s| Command::SetTransitionSpeed(TransitionSpeed::new(s).unwrap())),
            any::<bool>().prop_map(Command::SetAutoBlink),
        ]
    }

    proptest! {
        /// Coalescing never changes where the avatar ends up, and the pending
        /// set stays bounded by the number of keys.
        #[test]
        fn coalescing_keeps_the_final_state(commands in proptest::collection::vec(any_command(), 0..200)) {
            let (mut direct, mut batched) = (AvatarState::default(), AvatarState::default());
            let mut pending = Vec::new();
            for command in &commands {
                direct.apply(command);
                coalesce(&mut pending, command.clone());
                prop_assert!(pending.len() <= Expression::ALL.len() + 3);
            }
            pending.iter().for_each(|command| batched.apply(command));
            prop_assert_eq!(direct, batched);
        }
    }
}
