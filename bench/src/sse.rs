//! The benchmarks' OpenAI client: one streamed chat completion read event by
//! event, timed as a user's client meets it. The soak benchmark drives
//! `workly serve` with it, the comparison both Workly's and the Python
//! stack's servers.

use std::io::{BufRead, BufReader};
use std::time::Instant;

/// A streamed reply as a client saw it.
#[derive(Debug, Clone)]
pub(super) struct StreamedReply {
    /// The reply's text.
    pub(super) text: String,
    /// Time to the first chunk carrying content (none if the reply was empty).
    pub(super) ttft_ms: Option<f64>,
    /// When the first and the last chunk carrying content arrived.
    pub(super) content_span: Option<(Instant, Instant)>,
    /// Chunks that carried content.
    pub(super) content_chunks: u64,
    /// The `usage` object, where the server sends one.
    pub(super) usage: Option<serde_json::Value>,
    /// The final chunk's `workly` object: the engine's own figures (Workly only).
    pub(super) workly: Option<serde_json::Value>,
}

impl StreamedReply {
    /// The server's own time to first token, from its `workly` object.
    pub(super) fn server_ttft_ms(&self) -> Option<f64> {
        self.workly.as_ref()?["ttft_ms"].as_f64()
    }

    /// Tokens generated: the server's count, else one per content chunk.
    pub(super) fn completion_tokens(&self) -> u64 {
        self.usage.as_ref().and_then(|usage| usage["completion_tokens"].as_u64()).unwrap_or(self.content_chunks)
    }

    /// Tokens per second the client received after the first, from the
    /// arrival of the first to that of the last (none for fewer than two).
    pub(super) fn received_tokens_per_s(&self) -> Option<f64> {
        let (first, last) = self.content_span?;
        let seconds = last.saturating_duration_since(first).as_secs_f64();
        let tokens = self.completion_tokens();
        (tokens > 1 && seconds > 0.0).then(|| (tokens - 1) as f64 / seconds)
    }
}

/// A chat message in the API's shape.
pub(super) fn message(role: &str, content: &str) -> serde_json::Value {
    serde_json::json!({ "role": role, "content": content })
}

/// Sends one streamed request and reads its events to `[DONE]`; any failure
/// is an error in words. `sent` is when the caller started the clock.
pub(super) fn stream_reply(
    agent: &ureq::Agent,
    url: &str,
    body: &serde_json::Value,
    sent: Instant,
) -> Result<StreamedReply, String> {
    let mut response = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body.to_string())
        .map_err(|error| format!("request failed: {error}"))?;
    let status = response.status();
    if !status.is_success() {
        let detail = response.body_mut().read_to_string().unwrap_or_default();
        return Err(format!("HTTP {status}: {}", detail.trim()));
    }
    let mut reply = StreamedReply {
        text: String::new(),
        ttft_ms: None,
        content_span: None,
        content_chunks: 0,
        usage: None,
        workly: None,
    };
    let mut finished = false;
    for line in BufReader::new(response.into_body().into_reader()).lines() {
        let line = line.map_err(|error| format!("stream broken: {error}"))?;
        // Blank lines end events; `:` lines are keep-alive comments.
        let Some(data) = line.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            return if finished { Ok(reply) } else { Err("[DONE] before a final chunk".to_owned()) };
        }
        let chunk: serde_json::Value =
            serde_json::from_str(data).map_err(|error| format!("unreadable chunk {data:?}: {error}"))?;
        if let Some(error) = chunk.get("error") {
            return Err(format!("error in the stream: {}", error["message"].as_str().unwrap_or_default()));
        }
        if chunk["usage"].is_object() {
            reply.usage = Some(chunk["usage"].clone());
        }
        let choice = &chunk["choices"][0];
        if let Some(content) = choice["delta"]["content"].as_str()
            && !content.is_empty()
        {
            let now = Instant::now();
            reply.ttft_ms.get_or_insert_with(|| now.saturating_duration_since(sent).as_secs_f64() * 1e3);
            reply.content_span = Some((reply.content_span.map_or(now, |(first, _)| first), now));
            reply.content_chunks += 1;
            reply.text.push_str(content);
        }
        if choice["finish_reason"].is_string() {
            finished = true;
            if chunk["workly"].is_object() {
                reply.workly = Some(chunk["workly"].clone());
            }
        }
    }
    Err(if finished { "the stream ended without [DONE]" } else { "the stream ended without a final chunk" }.to_owned())
}
