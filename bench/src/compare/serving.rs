//! The served conversation: each stack's OpenAI-compatible server, started
//! as a user starts it, then the scripted conversation sent turn by turn,
//! streamed and greedy, by a client that keeps the system prompt plus the
//! last exchanges (the original chat engine's way) or the whole history.

use super::process::{Spawned, free_port};
use crate::sse::{message, stream_reply};
use serde::Serialize;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use workly::bench::llm::SCRIPT;
use workly::chat::Persona;

/// Longest wait for one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// What the client measured of one turn.
#[derive(Debug, Clone, Serialize)]
pub struct ServedTurn {
    /// From sending the request to the first streamed content.
    pub ttft_ms: f64,
    /// Tokens per second the client received after the first.
    pub received_tokens_per_s: Option<f64>,
    /// The engine's own decode speed for the reply (Workly reports it).
    pub engine_decode_tokens_per_s: Option<f64>,
    /// Prompt tokens the server found cached, where it says.
    pub cached_tokens: Option<u64>,
}

/// How the conversation is sent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Script {
    /// Turns sent.
    pub(super) turns: usize,
    /// Exchanges of history sent with each turn; `None` for all of them.
    pub(super) window: Option<usize>,
    /// Most tokens per reply.
    pub(super) max_tokens: u32,
    /// Untimed wait before each turn, as a person reads and types.
    pub(super) pause: Duration,
}

/// A server child and its chat completions URL.
pub(super) struct Server {
    child: Spawned,
    url: String,
    /// From spawning to answering `ready_path`.
    pub(super) to_ready_ms: f64,
}

impl Server {
    /// Spawns the command `make` builds for a free port and waits until
    /// `ready_path` answers.
    pub(super) fn start(
        what: &str,
        ready_path: &str,
        make: impl FnOnce(u16) -> Command,
    ) -> workly::error::Result<Self> {
        let port = free_port()?;
        let spawned = Instant::now();
        let mut child = Spawned::start(&mut make(port), what, Stdio::null())?;
        let ready = child.wait_http(port, ready_path)?;
        let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
        Ok(Self { child, url, to_ready_ms: ready.saturating_duration_since(spawned).as_secs_f64() * 1e3 })
    }

    /// The API's base URL, `http://127.0.0.1:PORT/v1`, as a client is given it.
    pub(super) fn api(&self) -> &str {
        self.url.strip_suffix("/chat/completions").unwrap_or(&self.url)
    }

    /// Time to the first token of a first message sent at once: with
    /// `to_ready_ms`, the start-up a user meets.
    pub(super) fn first_token_ms(&mut self) -> workly::error::Result<f64> {
        let body = serde_json::json!({
            "model": "any",
            "messages": [message("system", &Persona::default().system_prompt), message("user", SCRIPT[0])],
            "max_tokens": 4,
            "temperature": 0,
            "stream": true,
        });
        let reply = stream_reply(&agent(), &self.url, &body, Instant::now()).map_err(|why| self.child.failure(&why))?;
        reply.ttft_ms.ok_or_else(|| self.child.failure("sent an empty first reply"))
    }

    /// Plays `script` once; a failed turn fails the run, with the server's log.
    pub(super) fn conversation(&mut self, script: Script) -> workly::error::Result<Vec<ServedTurn>> {
        let agent = agent();
        let system = message("system", &Persona::default().system_prompt);
        let mut exchanges: Vec<[serde_json::Value; 2]> = Vec::new();
        let mut turns = Vec::with_capacity(script.turns);
        for user in SCRIPT.iter().take(script.turns) {
            let kept = script.window.map_or(0, |window| exchanges.len().saturating_sub(window));
            let mut messages = vec![system.clone()];
            messages.extend(exchanges[kept..].iter().flatten().cloned());
            messages.push(message("user", user));
            let body = serde_json::json!({
                "model": "any",
                "messages": messages,
                "max_tokens": script.max_tokens,
                "temperature": 0,
                "stream": true,
                "stream_options": { "include_usage": true },
            });
            std::thread::sleep(script.pause);
            let reply =
                stream_reply(&agent, &self.url, &body, Instant::now()).map_err(|why| self.child.failure(&why))?;
            let Some(ttft_ms) = reply.ttft_ms else {
                return Err(self.child.failure(&format!("sent an empty reply to {user:?}")));
            };
            turns.push(ServedTurn {
                ttft_ms,
                received_tokens_per_s: reply.received_tokens_per_s(),
                engine_decode_tokens_per_s: reply.workly.as_ref().and_then(|w| w["decode_tokens_per_s"].as_f64()),
                cached_tokens: reply.usage.as_ref().and_then(|u| u["prompt_tokens_details"]["cached_tokens"].as_u64()),
            });
            exchanges.push([message("user", user), message("assistant", &reply.text)]);
        }
        Ok(turns)
    }
}

/// A client that reads error statuses as replies and waits at most
/// [`REPLY_TIMEOUT`].
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(REPLY_TIMEOUT)).build().new_agent()
}
