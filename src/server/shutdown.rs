//! Stopping `workly serve` cleanly on Ctrl-C or SIGTERM.
//!
//! The server stops taking requests, cuts every reply under way short (each
//! ends as a cancelled reply: its stream gets its last chunk, the page's turn
//! is saved, every client hears `reply_done`), waits for those replies to end,
//! then closes the WebSockets so the HTTP server can finish. A reply's cut is
//! a token away, so this takes milliseconds, not the length of a reply.

use crate::llm::CancelToken;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The replies under way, so a shutdown can cut them and wait for them.
#[derive(Debug, Default)]
pub struct Replies {
    live: Mutex<HashMap<String, CancelToken>>,
    stopping: AtomicBool,
}

impl Replies {
    /// Reply `reply` started; `cancel` cuts it. A reply starting after the
    /// shutdown began is cut at once.
    pub fn enter(&self, reply: &str, cancel: CancelToken) {
        let Ok(mut live) = self.live.lock() else { return };
        if self.stopping.load(Ordering::Relaxed) {
            cancel.cancel();
        }
        live.insert(reply.to_owned(), cancel);
    }

    /// Reply `reply` ended (or was dropped).
    pub fn leave(&self, reply: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(reply);
        }
    }

    /// Cuts reply `reply`, if it is under way (the person interrupted it).
    pub fn cancel(&self, reply: &str) {
        if let Some(cancel) = self.live.lock().ok().and_then(|live| live.get(reply).cloned()) {
            cancel.cancel();
        }
    }

    /// Whether the server is shutting down (new requests are turned away).
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Starts the shutdown: cuts every reply under way and any that starts later.
    pub fn stop(&self) {
        // Under the lock, so a reply entering now either sees the flag or is cut here.
        let Ok(live) = self.live.lock() else { return };
        self.stopping.store(true, Ordering::Relaxed);
        for cancel in live.values() {
            cancel.cancel();
        }
    }

    /// Waits until no reply is under way, or `limit` has passed; whether they all ended.
    pub async fn ended(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if self.live.lock().map_or(true, |live| live.is_empty()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return interrupt.await.unwrap_or(()),
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    interrupt.await.unwrap_or(());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_cuts_live_and_later_replies_and_ended_waits_for_them() {
        let replies = Replies::default();
        let early = CancelToken::new();
        replies.enter("a", early.clone());
        assert!(!replies.ended(Duration::from_millis(30)).await, "a reply is under way");
        replies.stop();
        assert!(early.is_cancelled() && replies.stopping());
        let late = CancelToken::new();
        replies.enter("b", late.clone());
        assert!(late.is_cancelled(), "a reply starting during the shutdown is cut at once");
        replies.leave("a");
        replies.leave("b");
        assert!(replies.ended(Duration::ZERO).await);
    }
}
