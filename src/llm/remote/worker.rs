//! The remote back-end's worker: the engine thread's commands carried out by
//! an OpenAI-compatible server.
//!
//! A reply is one streamed request. Between its events the worker answers
//! the token counts that arrived ([`Worker::answer_counts`]), and it waits
//! for the turn's cancel switch beside the server's bytes: a cancelled turn
//! (or a reader gone) drops the response, which closes its connection at
//! once, so the server stops generating for nobody. Stop
//! strings are applied to the text as it comes, as the local engine does; a
//! request that never reached the server, or met a gateway not yet ready, is
//! sent again after a short pause; a reply under way never is.

use super::wire::{self, EventLines, Shape};
use super::{Client, Dialect, Faults, MESSAGE_OVERHEAD, RemoteError, RemoteServer, estimate};
use crate::llm::LlmError;
use crate::llm::generation::{
    CancelToken, EngineInfo, FinishReason, FlashAttention, GenerationEvent, GenerationRequest, GenerationStats,
    PerplexityReport, Prompt,
};
use crate::llm::stream::TextStream;
use crate::llm::worker::{self, Inbox, Job, Ready, Worker};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Times a request that never reached the server is sent again.
const RETRIES: u32 = 2;
/// The pause before the first retry; the next waits twice as long.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// The engine thread's life with a remote back-end: a client, the persona
/// sent once so the server caches it, then the commands of `inbox`.
pub(in crate::llm) fn run(server: RemoteServer, faults: Arc<Faults>, inbox: Inbox, ready: Ready) {
    let started = Instant::now();
    let client = match Client::new(&server.config) {
        Ok(client) => client,
        Err(error) => {
            let _ = ready.send(Err(error.into()));
            return;
        }
    };
    let mut remote = Remote { client, server, inbox, faults, known: KnownCounts::default() };
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let warmup_ms = remote.warm();
    let report = &remote.server.report;
    let info = EngineInfo {
        model_path: report.url.clone().into(),
        model_name: report.model.clone(),
        context_size: report.context_size,
        threads_decode: 0,
        // No prefill here either: the threads for this machine's own work.
        threads_prefill: super::local_threads(),
        gpu_layers: 0,
        batch_size: 0,
        flash_attention: FlashAttention::Auto,
        can_shift: false,
        load_ms,
        warmup_ms,
        warm_tokens: 0,
        warm_from_disk: false,
        remote: Some(report.clone()),
    };
    if ready.send(Ok(info)).is_err() {
        return;
    }
    worker::serve(&mut remote);
}

/// The remote worker's state.
struct Remote {
    client: Client,
    server: RemoteServer,
    inbox: Inbox,
    faults: Arc<Faults>,
    known: KnownCounts,
}

/// What waiting for a reply's next bytes gave.
enum Next {
    Bytes(Vec<u8>),
    End,
    Cancelled,
    Failed(RemoteError),
}

impl Remote {
    /// Sends the first conversation opening with a one-token reply, so the
    /// server's prompt cache holds the persona before the first message;
    /// returns the time it took. A failure here is said, not fatal: the
    /// first turn will meet it and say it to the person.
    fn warm(&mut self) -> f64 {
        let Some(opening) = self.server.config.warmup.first().cloned() else { return 0.0 };
        let started = Instant::now();
        let (events, _kept) = mpsc::channel(8);
        let job = Job {
            request: GenerationRequest {
                sampling: crate::llm::SamplingParams { temperature: 0.0, ..Default::default() },
                ..GenerationRequest::chat(opening, 1)
            },
            submitted: started,
            cancel: CancelToken::new(),
            events,
            aside: false,
        };
        if let Err(error) = self.reply(&job) {
            tracing::warn!("warming the back-end failed: {error}");
        }
        started.elapsed().as_secs_f64() * 1e3
    }

    fn model(&self) -> &str {
        &self.server.report.model
    }

    fn dialect(&self) -> Dialect {
        self.server.report.dialect
    }
}

impl Client {
    /// POSTs a streamed request, sending it again while that is safe;
    /// `None` if `cancel` fired first.
    async fn stream(
        &self,
        url: &str,
        body: &serde_json::Value,
        cancel: &CancelToken,
    ) -> Result<Option<reqwest::Response>, RemoteError> {
        let mut attempt = 0;
        loop {
            let sent = tokio::select! {
                sent = self.post(url, body).send() => sent,
                () = stopped(cancel, None) => return Ok(None),
            };
            let error = match sent {
                Ok(response) if response.status().is_success() => return Ok(Some(response)),
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    self.refused(status, &body)
                }
                Err(error) => self.failed(&error),
            };
            if attempt == RETRIES || !error.retryable() {
                return Err(error);
            }
            attempt += 1;
            tracing::warn!("{error}; trying again");
            tokio::select! {
                () = tokio::time::sleep(RETRY_PAUSE * 2u32.pow(attempt - 1)) => {}
                () = stopped(cancel, None) => return Ok(None),
            }
        }
    }

    /// The reply's next bytes, unless the turn is cancelled or its reader
    /// gone first.
    async fn next(
        &self,
        response: &mut reqwest::Response,
        cancel: &CancelToken,
        events: &mpsc::Sender<GenerationEvent>,
    ) -> Next {
        tokio::select! {
            chunk = response.chunk() => match chunk {
                Ok(Some(bytes)) => Next::Bytes(bytes.to_vec()),
                Ok(None) => Next::End,
                Err(error) => Next::Failed(self.failed(&error)),
            },
            () = stopped(cancel, Some(events)) => Next::Cancelled,
        }
    }

    /// The tokens `prompt` makes, as well as `dialect`'s server can tell;
    /// `known` keeps the counts of texts already asked about.
    async fn count(
        &self,
        dialect: Dialect,
        root: &str,
        model: &str,
        prompt: &Prompt,
        known: &KnownCounts,
    ) -> Result<usize, RemoteError> {
        match (dialect, prompt) {
            (Dialect::LlamaServer, Prompt::Text(text)) => self.count_llama(root, text).await,
            (Dialect::LlamaServer, Prompt::Messages(messages)) => {
                let rendered = self.render_llama(root, messages).await?;
                self.count_llama(root, &rendered).await
            }
            (Dialect::LlamaCppPython, Prompt::Text(text)) => self.count_each(root, model, &[text], known).await,
            (Dialect::LlamaCppPython, Prompt::Messages(messages)) => {
                // Each message's words are counted once (a conversation's
                // earlier turns are asked about again at every turn); the
                // template's markers, which the server does not show, are
                // estimated.
                let texts: Vec<&str> = messages.iter().map(|message| message.content.as_str()).collect();
                let words = self.count_each(root, model, &texts, known).await?;
                Ok(words + MESSAGE_OVERHEAD * (messages.len() + 1))
            }
            (Dialect::Generic, Prompt::Text(text)) => Ok(estimate(&[text], 0)),
            (Dialect::Generic, Prompt::Messages(messages)) => {
                let texts: Vec<&str> = messages.iter().map(|message| message.content.as_str()).collect();
                Ok(estimate(&texts, messages.len() + 1))
            }
        }
    }

    /// The sum of llama-cpp-python's counts of `texts`, asking (all at once)
    /// only about those `known` does not hold.
    async fn count_each(
        &self,
        root: &str,
        model: &str,
        texts: &[&str],
        known: &KnownCounts,
    ) -> Result<usize, RemoteError> {
        let keys: Vec<u64> = texts.iter().map(|text| KnownCounts::key(text)).collect();
        let mut missing: Vec<(u64, &str)> =
            keys.iter().zip(texts).filter(|(key, _)| known.get(**key).is_none()).map(|(k, t)| (*k, *t)).collect();
        missing.sort_unstable_by_key(|(key, _)| *key);
        missing.dedup_by_key(|(key, _)| *key);
        let asked = futures_util::future::try_join_all(missing.iter().map(|(key, text)| async move {
            Ok::<_, RemoteError>((*key, self.count_python(root, model, text).await?))
        }))
        .await?;
        // Summed before they are kept: keeping them may start the cache afresh.
        let count = |key: &u64| asked.iter().find(|(asked, _)| asked == key).map(|(_, count)| *count);
        let total = keys.iter().map(|key| count(key).or_else(|| known.get(*key)).unwrap_or(0)).sum();
        known.insert(asked);
        Ok(total)
    }
}

/// Token counts of texts already asked about, by a hash of the text: at
/// most [`KNOWN_COUNTS`], forgotten all at once beyond.
#[derive(Default)]
struct KnownCounts(std::cell::RefCell<std::collections::HashMap<u64, usize>>);

/// Counts kept before [`KnownCounts`] starts afresh (a long conversation's
/// messages, many times over).
const KNOWN_COUNTS: usize = 4096;

impl KnownCounts {
    fn key(text: &str) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(text)
    }

    fn get(&self, key: u64) -> Option<usize> {
        self.0.borrow().get(&key).copied()
    }

    fn insert(&self, counts: impl IntoIterator<Item = (u64, usize)>) {
        let mut known = self.0.borrow_mut();
        for (key, count) in counts {
            if known.len() >= KNOWN_COUNTS {
                known.clear();
            }
            known.insert(key, count);
        }
    }
}

/// Returns once `cancel` fires or `events`' reader is gone (woken by
/// either, never by polling: a wake-up per token is already enough for a
/// machine whose cores the engine shares).
async fn stopped(cancel: &CancelToken, events: Option<&mpsc::Sender<GenerationEvent>>) {
    match events {
        Some(events) => tokio::select! {
            () = cancel.cancelled() => {}
            () = events.closed() => {}
        },
        None => cancel.cancelled().await,
    }
}

impl Worker for Remote {
    fn inbox(&mut self) -> &mut Inbox {
        &mut self.inbox
    }

    fn count(&self, prompt: &Prompt) -> Result<usize, LlmError> {
        let root = self.server.config.root();
        let counted = self.client.block_on(self.client.count(self.dialect(), root, self.model(), prompt, &self.known));
        Ok(counted.inspect_err(|error| self.faults.record(error))?)
    }

    fn generate(&mut self, job: &Job) -> Result<(GenerationStats, String), LlmError> {
        self.reply(job).inspect_err(|error| {
            if let LlmError::Remote(error) = error {
                self.faults.record(error);
            }
        })
    }

    fn perplexity(&mut self, _text: &str) -> Result<PerplexityReport, LlmError> {
        Err(LlmError::LocalOnly("scoring a text"))
    }

    /// The server's cache is its own: nothing here to forget.
    fn clear_cache(&mut self) {}
}

impl Remote {
    /// One streamed reply; see [`Worker::generate`].
    fn reply(&mut self, job: &Job) -> Result<(GenerationStats, String), LlmError> {
        let request = &job.request;
        request.sampling.validate()?;
        let (path, body) = wire::request(request, self.model(), self.dialect());
        let url = format!("{}{path}", self.server.config.url);
        let mut stats = GenerationStats {
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            shifted_tokens: 0,
            prefill_tokens: 0,
            ttft_ms: 0.0,
            prefill_tokens_per_s: 0.0,
            decode_tokens_per_s: 0.0,
            context_shifted_tokens: 0,
            finish_reason: FinishReason::Stop,
        };
        let Some(mut response) = self.client.block_on(self.client.stream(&url, &body, &job.cancel))? else {
            stats.finish_reason = FinishReason::Cancelled;
            return Ok((stats, String::new()));
        };
        let mut reading = Reading::new(&request.stop);
        loop {
            let next = self.client.block_on(self.client.next(&mut response, &job.cancel, &job.events));
            match next {
                Next::Bytes(bytes) => {
                    if let Err(error) = reading.read(&bytes, job, &self.server.config.url) {
                        return Err(error.into());
                    }
                }
                Next::End => break,
                Next::Cancelled => {
                    reading.cancelled = true;
                    break;
                }
                Next::Failed(error) => return Err(error.into()),
            }
            if reading.ended() {
                break;
            }
            self.answer_counts();
        }
        // Dropping the response closes the connection if the reply did not
        // end by itself (cancelled, or cut at a stop string).
        drop(response);
        let url = &self.server.config.url;
        if !reading.whole() {
            return Err(reading.cut(url).into());
        }
        let rest = reading.text.finish();
        if !rest.is_empty() {
            reading.reply.push_str(&rest);
            let _ = job.events.blocking_send(GenerationEvent::Text(rest));
        }
        reading.fill(&mut stats, job.submitted);
        if stats.prompt_tokens == 0 {
            // The server did not report its usage: count the prompt.
            stats.prompt_tokens = self.count(&request.prompt).unwrap_or(0);
            stats.prefill_tokens = stats.prompt_tokens.saturating_sub(stats.cached_tokens);
        }
        Ok((stats, reading.reply))
    }
}

/// What has been read of one streamed reply.
struct Reading {
    events: EventLines,
    text: TextStream,
    /// The reply's text as shown.
    reply: String,
    /// Text events received (a token each, for servers that send no usage).
    pieces: usize,
    first_at: Option<Instant>,
    last_at: Option<Instant>,
    usage: wire::Usage,
    finish: Option<String>,
    /// The end marker came.
    done: bool,
    /// As many text events as `max_tokens` came.
    full: bool,
    cancelled: bool,
    /// Whether any event came (a body without one is not an OpenAI stream).
    evented: bool,
    /// The body's first bytes, to show when it was not a stream.
    head: Vec<u8>,
}

impl Reading {
    fn new(stops: &[String]) -> Self {
        Self {
            events: EventLines::default(),
            text: TextStream::new(stops),
            reply: String::new(),
            pieces: 0,
            first_at: None,
            last_at: None,
            usage: wire::Usage::default(),
            finish: None,
            done: false,
            full: false,
            cancelled: false,
            evented: false,
            head: Vec::new(),
        }
    }

    /// Reads `bytes` of the stream, sending the text they complete to `job`.
    fn read(&mut self, bytes: &[u8], job: &Job, url: &str) -> Result<(), RemoteError> {
        if self.head.len() < 200 {
            self.head.extend_from_slice(&bytes[..bytes.len().min(200 - self.head.len())]);
        }
        for payload in self.events.push(bytes) {
            self.evented = true;
            let chunk = match wire::chunk(&payload) {
                Ok(chunk) => chunk,
                Err(Shape::Done) => {
                    self.done = true;
                    break;
                }
                Err(Shape::Unknown(what)) => return Err(RemoteError::Shape { url: url.to_owned(), what }),
            };
            if let Some(message) = chunk.error {
                return Err(RemoteError::Failed { url: url.to_owned(), message });
            }
            if let Some(usage) = chunk.usage {
                self.usage = usage;
            }
            if chunk.finish.is_some() {
                self.finish = chunk.finish;
            }
            if chunk.text.is_empty() || self.text.stopped().is_some() {
                continue;
            }
            let now = Instant::now();
            self.first_at.get_or_insert(now);
            self.last_at = Some(now);
            self.pieces += 1;
            let shown = self.text.push(chunk.text.as_bytes());
            if !shown.is_empty() {
                self.reply.push_str(&shown);
                if job.events.blocking_send(GenerationEvent::Text(shown)).is_err() {
                    self.cancelled = true;
                }
            }
            if job.request.max_tokens as usize <= self.pieces {
                // A server that does not honour `max_tokens` is held to it.
                self.finish = Some("length".to_owned());
                self.full = true;
            }
        }
        Ok(())
    }

    /// Whether the reply is over: the server said so, a stop string
    /// matched, it has its tokens, or the reader went.
    fn ended(&self) -> bool {
        self.done || self.cancelled || self.full || self.text.stopped().is_some()
    }

    /// Whether the reply is whole: over, or its end said though the stream
    /// closed without the end marker (as some servers do).
    fn whole(&self) -> bool {
        self.ended() || self.finish.is_some()
    }

    /// The error a stream that ended early is.
    fn cut(&self, url: &str) -> RemoteError {
        let url = url.to_owned();
        if !self.evented {
            let head = String::from_utf8_lossy(&self.head);
            return RemoteError::Shape { url, what: format!("not a stream of events: {}", wire::excerpt(&head)) };
        }
        let partial = if self.events.has_partial_line() { " in the middle of an event" } else { "" };
        RemoteError::Cut { url, why: format!("the stream ended{partial} before the reply did") }
    }

    /// The reply's measurements, from what the server said and what was seen.
    fn fill(&self, stats: &mut GenerationStats, submitted: Instant) {
        stats.completion_tokens = self.usage.completion_tokens.unwrap_or(self.pieces);
        stats.prompt_tokens = self.usage.prompt_tokens.unwrap_or(0);
        stats.cached_tokens = self.usage.cached_tokens.unwrap_or(0).min(stats.prompt_tokens);
        stats.prefill_tokens = stats.prompt_tokens - stats.cached_tokens;
        stats.prefill_tokens_per_s = self.usage.prefill_tokens_per_s.unwrap_or(0.0);
        if let Some(first) = self.first_at {
            stats.ttft_ms = first.saturating_duration_since(submitted).as_secs_f64() * 1e3;
            let decoding = self.last_at.map_or(0.0, |last| last.saturating_duration_since(first).as_secs_f64());
            if self.pieces > 1 && decoding > 0.0 {
                stats.decode_tokens_per_s = (self.pieces - 1) as f64 / decoding;
            }
        }
        stats.finish_reason = if self.cancelled {
            FinishReason::Cancelled
        } else if self.finish.as_deref() == Some("length") {
            FinishReason::Length
        } else {
            FinishReason::Stop
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_counts_are_kept_by_text_and_forgotten_past_their_bound() {
        let known = KnownCounts::default();
        known.insert([(KnownCounts::key("Hello there"), 2)]);
        assert_eq!(known.get(KnownCounts::key("Hello there")), Some(2));
        assert_eq!(known.get(KnownCounts::key("Hello there!")), None);
        known.insert((0..KNOWN_COUNTS as u64).map(|key| (key, 1)));
        assert_eq!(known.get(KnownCounts::key("Hello there")), None, "forgotten once full");
        assert!(known.0.borrow().len() <= KNOWN_COUNTS);
    }
}
