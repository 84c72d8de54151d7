//! A remote back-end: an OpenAI-compatible server on another machine
//! (llama-server, llama-cpp-python, vLLM, Ollama, LM Studio...) answers in
//! place of the local llama.cpp worker.
//!
//! It stands behind the same [`super::Engine`] handle ([`super::Engine::remote`])
//! and the same worker loop ([`super::worker`]), so everything above the
//! engine (the chat turn, the page, the API, the events, the metrics) works
//! with it as with a local model. [`RemoteServer::probe`] finds out what the
//! server is before the first turn: its models, its context, whether it is
//! one of llama.cpp's servers (which take llama.cpp's sampling settings,
//! count tokens exactly and keep a prompt cache to reuse) or of unknown kind
//! (OpenAI's fields only, and token counts estimated). The worker ([`worker`])
//! streams each reply and drops its connection the moment the turn is
//! cancelled. What goes over the wire is in [`wire`].

pub mod wire;
mod worker;

pub(super) use worker::run;

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long to wait for a connection before calling the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default longest wait for the next bytes of a reply (a big model's
/// first prefill on a slow machine may take a while).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// The context assumed when neither the person nor the server says: the
/// default of llama-cpp-python and older Ollama, and the smallest of today's
/// chat models. A history fitted to it never overflows a larger one.
pub const ASSUMED_CONTEXT: u32 = 2048;
/// Tokens a message's template markers are counted for when the server
/// cannot render its template for Workly (more than any common template uses).
const MESSAGE_OVERHEAD: usize = 8;
/// Bytes per token assumed when the server cannot count: fewer than any
/// common vocabulary needs for prose, so the estimate stays above the truth.
const BYTES_PER_TOKEN: usize = 3;

/// This machine's threads for its own work beside a remote back-end's
/// replies (the memory's embeddings): all of them, since it runs no model.
pub fn local_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// What the person asks of a remote back-end.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The API's base URL, ending in `/v1` (added when the URL has no path).
    pub url: String,
    /// The bearer key the server wants, if any.
    pub key: Option<String>,
    /// The model to use; the server's first listed when `None`.
    pub model: Option<String>,
    /// The context to fit conversations to; the server's when `None` (and
    /// [`ASSUMED_CONTEXT`] when the server does not say).
    pub context_size: Option<u32>,
    /// The longest wait for the next bytes of a reply.
    pub timeout: Duration,
    /// Conversation openings sent once at start, so the server's prompt
    /// cache holds the persona before the first message.
    pub warmup: Vec<Vec<crate::llm::Message>>,
}

impl RemoteConfig {
    /// The back-end at `url` (checked: http or https, with a host), with
    /// everything else as the server says.
    pub fn new(url: &str) -> Result<Self, RemoteError> {
        let bad = |why: &str| RemoteError::Url { url: url.to_owned(), why: why.to_owned() };
        let parsed = reqwest::Url::parse(url).map_err(|error| bad(&error.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("only http and https are spoken"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let trimmed = url.trim_end_matches('/');
        let url = if parsed.path().trim_matches('/').is_empty() { format!("{trimmed}/v1") } else { trimmed.to_owned() };
        Ok(Self { url, key: None, model: None, context_size: None, timeout: DEFAULT_TIMEOUT, warmup: Vec::new() })
    }

    /// The server's root: the base URL without its `/v1`, where llama.cpp's
    /// servers have their own endpoints (`/props`, `/tokenize`).
    fn root(&self) -> &str {
        self.url.strip_suffix("/v1").unwrap_or(&self.url)
    }
}

/// What kind of server answers, as far as Workly needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// llama.cpp's `llama-server`: `/props`, `/apply-template`, `/tokenize`,
    /// a prompt cache reused with `cache_prompt`.
    LlamaServer,
    /// llama-cpp-python's server: `/extras/tokenize/count`; it keeps the
    /// previous prompt's prefix by itself.
    LlamaCppPython,
    /// Any other OpenAI-compatible server: OpenAI's fields only.
    Generic,
}

/// How the token counts that fit a conversation to the context are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Counting {
    /// The server renders its chat template and tokenizes the result.
    Exact,
    /// The server tokenizes each message; the template's markers are
    /// counted as [`MESSAGE_OVERHEAD`] tokens a message.
    Tokenized,
    /// Estimated from the bytes, on the high side.
    Estimated,
}

impl Counting {
    /// How reports say it.
    pub fn describe(self) -> &'static str {
        match self {
            Counting::Exact => "exact (the server renders its template and tokenizes)",
            Counting::Tokenized => "tokenized by the server, template markers estimated",
            Counting::Estimated => "estimated (1 token per 3 bytes, 8 per message): the server cannot count",
        }
    }
}

/// A remote back-end as found at start: the person's settings completed by
/// what the server said of itself.
#[derive(Debug, Clone)]
pub struct RemoteServer {
    /// The settings, with the model and the context resolved.
    pub config: RemoteConfig,
    /// What answers.
    pub report: RemoteReport,
}

/// What `doctor`, the page and `/v1/workly/doctor` say about a remote back-end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteReport {
    /// The API's base URL.
    pub url: String,
    /// The kind of server.
    pub dialect: Dialect,
    /// The model used.
    pub model: String,
    /// Every model the server lists.
    pub models: Vec<String>,
    /// The context conversations are fitted to.
    pub context_size: u32,
    /// Where that context comes from.
    pub context_source: String,
    /// How tokens are counted.
    pub counting: Counting,
    /// The time the server took to list its models.
    pub latency_ms: f64,
}

impl RemoteReport {
    /// The report as text, one fact per line.
    pub fn render_text(&self) -> String {
        let dialect = match self.dialect {
            Dialect::LlamaServer => "llama.cpp's llama-server",
            Dialect::LlamaCppPython => "llama-cpp-python's server",
            Dialect::Generic => "an OpenAI-compatible server",
        };
        let others = match self.models.len() {
            0 | 1 => String::new(),
            count => format!(", one of {count} it serves"),
        };
        format!(
            "Engine:   remote, {} ({dialect}), answered in {:.0} ms\n  model:      {}{others}\n  context:    {} tokens ({})\n  counting:   {}\n",
            self.url,
            self.latency_ms,
            self.model,
            self.context_size,
            self.context_source,
            self.counting.describe()
        )
    }
}

impl RemoteServer {
    /// Asks the server at `config.url` what it is: its models (the one asked
    /// for must be there), its context, its kind. Fails with the reason a
    /// person can act on: unreachable, a refused key, no such model, not an
    /// OpenAI API.
    pub fn probe(config: RemoteConfig) -> Result<Self, RemoteError> {
        // A runtime of its own on a thread of its own: the caller may already
        // be inside one (a server's set-up, a test).
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let client = Client::new(&config)?;
                    client.block_on(probe(&client, config.clone()))
                })
                .join()
        })
        .unwrap_or_else(|_| Err(RemoteError::Shape { url: config.url.clone(), what: "the probe failed".into() }))
    }
}

async fn probe(client: &Client, mut config: RemoteConfig) -> Result<RemoteServer, RemoteError> {
    let started = Instant::now();
    let listed = client.get_json(&format!("{}/models", config.url)).await?;
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    let models: Vec<String> = listed
        .get("data")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| RemoteError::Shape { url: config.url.clone(), what: "`/models` has no `data` list".into() })?
        .iter()
        .filter_map(|model| model.get("id").and_then(serde_json::Value::as_str).map(str::to_owned))
        .collect();
    let model = match (&config.model, models.first()) {
        (Some(model), _) if models.is_empty() || models.contains(model) => model.clone(),
        (Some(model), _) => {
            return Err(RemoteError::NoModel {
                url: config.url.clone(),
                model: model.clone(),
                available: models.join(", "),
            });
        }
        (None, Some(first)) => first.clone(),
        (None, None) => {
            return Err(RemoteError::NoModel {
                url: config.url.clone(),
                model: String::new(),
                available: String::new(),
            });
        }
    };
    // llama-server says what it is and its context (per slot) at `/props`.
    let props = client.get_json(&format!("{}/props", config.root())).await.ok();
    let server_context = props
        .as_ref()
        .and_then(|props| props.pointer("/default_generation_settings/n_ctx"))
        .and_then(serde_json::Value::as_u64)
        .and_then(|n_ctx| u32::try_from(n_ctx).ok());
    let dialect = if server_context.is_some() {
        Dialect::LlamaServer
    } else if client.count_python(config.root(), &model, "Hello").await.is_ok() {
        Dialect::LlamaCppPython
    } else {
        Dialect::Generic
    };
    let (context_size, context_source) = match (config.context_size, server_context) {
        (Some(asked), Some(server)) if server < asked => (server, "the server's, smaller than --context-size"),
        (Some(asked), _) => (asked, "set by --context-size or the config file"),
        (None, Some(server)) => (server, "the server's"),
        (None, None) => (ASSUMED_CONTEXT, "assumed: the server does not say (set --context-size)"),
    };
    let counting = match dialect {
        Dialect::LlamaServer => Counting::Exact,
        Dialect::LlamaCppPython => Counting::Tokenized,
        Dialect::Generic => Counting::Estimated,
    };
    config.model = Some(model.clone());
    config.context_size = Some(context_size);
    let report = RemoteReport {
        url: config.url.clone(),
        dialect,
        model,
        models,
        context_size,
        context_source: context_source.to_owned(),
        counting,
        latency_ms,
    };
    Ok(RemoteServer { config, report })
}

/// An HTTP client for one back-end, with the runtime that drives it.
struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    url: String,
    timeout: Duration,
}

impl Client {
    fn new(config: &RemoteConfig) -> Result<Self, RemoteError> {
        let unreachable = |why: String| RemoteError::Unreachable { url: config.url.clone(), why };
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = &config.key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                RemoteError::Url { url: config.url.clone(), why: "the key is not a header value".into() }
            })?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(config.timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|error| unreachable(error.to_string()))?;
        // A runtime thread of its own drives the connections in the
        // background: a dropped reply's connection closes at once, not at
        // the worker's next request.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("workly-remote")
            .enable_all()
            .build()
            .map_err(|error| unreachable(error.to_string()))?;
        Ok(Self { http, runtime, url: config.url.clone(), timeout: config.timeout })
    }

    /// Runs `work` on this client's runtime, blocking the thread.
    fn block_on<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(work)
    }

    /// The error a failed request is, said of this back-end.
    fn failed(&self, error: &reqwest::Error) -> RemoteError {
        if error.is_timeout() {
            RemoteError::Timeout { url: self.url.clone(), seconds: self.timeout.as_secs() }
        } else if error.is_connect() {
            RemoteError::Unreachable { url: self.url.clone(), why: cause(error) }
        } else {
            RemoteError::Cut { url: self.url.clone(), why: cause(error) }
        }
    }

    /// A refusal (`status` with `body`) as the error it is.
    fn refused(&self, status: reqwest::StatusCode, body: &str) -> RemoteError {
        let url = self.url.clone();
        match status.as_u16() {
            401 | 403 => RemoteError::Key { url, status: status.as_u16() },
            code => RemoteError::Status { url, status: code, message: wire::refusal(body) },
        }
    }

    /// GETs `url` and reads its JSON.
    async fn get_json(&self, url: &str) -> Result<serde_json::Value, RemoteError> {
        let response = self.http.get(url).send().await.map_err(|error| self.failed(&error))?;
        self.json(response).await
    }

    /// POSTs `body` to `url` and reads the JSON answer.
    async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<serde_json::Value, RemoteError> {
        let response = self.post(url, body).send().await.map_err(|error| self.failed(&error))?;
        self.json(response).await
    }

    fn post(&self, url: &str, body: &serde_json::Value) -> reqwest::RequestBuilder {
        self.http.post(url).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string())
    }

    /// A successful answer's JSON, or the refusal it is.
    async fn json(&self, response: reqwest::Response) -> Result<serde_json::Value, RemoteError> {
        let status = response.status();
        let body = response.text().await.map_err(|error| self.failed(&error))?;
        if !status.is_success() {
            return Err(self.refused(status, &body));
        }
        serde_json::from_str(&body).map_err(|_| RemoteError::Shape {
            url: self.url.clone(),
            what: format!("not JSON: {}", wire::excerpt(&body)),
        })
    }

    /// llama-cpp-python's count of the tokens of `text`.
    async fn count_python(&self, root: &str, model: &str, text: &str) -> Result<usize, RemoteError> {
        let body = serde_json::json!({ "input": text, "model": model });
        let answer = self.post_json(&format!("{root}/extras/tokenize/count"), &body).await?;
        self.count_field(&answer, "count")
    }

    /// llama-server's count of the tokens of `text`, special tokens parsed.
    async fn count_llama(&self, root: &str, text: &str) -> Result<usize, RemoteError> {
        let body = serde_json::json!({ "content": text, "add_special": true });
        let answer = self.post_json(&format!("{root}/tokenize"), &body).await?;
        self.count_field(&answer, "tokens")
    }

    /// llama-server's rendering of `messages` with its chat template.
    async fn render_llama(&self, root: &str, messages: &[crate::llm::Message]) -> Result<String, RemoteError> {
        let body = serde_json::json!({ "messages": wire::messages_json(messages) });
        let answer = self.post_json(&format!("{root}/apply-template"), &body).await?;
        answer.get("prompt").and_then(serde_json::Value::as_str).map(str::to_owned).ok_or_else(|| RemoteError::Shape {
            url: self.url.clone(),
            what: "`/apply-template` has no `prompt`".into(),
        })
    }

    /// A count in `answer`: the number at `field`, or the length of the list there.
    fn count_field(&self, answer: &serde_json::Value, field: &str) -> Result<usize, RemoteError> {
        let value = answer.get(field);
        value
            .and_then(serde_json::Value::as_u64)
            .map(|count| count as usize)
            .or_else(|| value.and_then(serde_json::Value::as_array).map(Vec::len))
            .ok_or_else(|| RemoteError::Shape { url: self.url.clone(), what: format!("no `{field}` in a token count") })
    }
}

/// The innermost cause of a request's failure (reqwest's own message says
/// only which request failed).
fn cause(error: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = error;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}

/// The token count of `messages` (or `text`) where the server cannot count:
/// high, never low.
fn estimate(texts: &[&str], messages: usize) -> usize {
    texts.iter().map(|text| text.len().div_ceil(BYTES_PER_TOKEN)).sum::<usize>() + MESSAGE_OVERHEAD * messages
}

/// What can go wrong with a remote back-end, one line each, naming it.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The back-end's URL is not one Workly can call.
    #[error("`{url}` is not a back-end URL: {why} (e.g. http://gpu-box:8080/v1)")]
    Url {
        /// As given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// No connection could be made (refused, no route, no such host).
    #[error("cannot reach the back-end at {url}: {why}")]
    Unreachable {
        /// The back-end.
        url: String,
        /// The network's reason.
        why: String,
    },
    /// The back-end went silent.
    #[error("the back-end at {url} sent nothing for {seconds} s (a slow server: raise --backend-timeout)")]
    Timeout {
        /// The back-end.
        url: String,
        /// How long Workly waited.
        seconds: u64,
    },
    /// The back-end refused the key, or wants one.
    #[error(
        "the back-end at {url} refused the key (HTTP {status}): set --backend-key or WORKLY_BACKEND_KEY to the key it expects"
    )]
    Key {
        /// The back-end.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// The model asked for is not served there.
    #[error("the back-end at {url} has no model `{model}`{}", available_models(available))]
    NoModel {
        /// The back-end.
        url: String,
        /// The model asked for (empty when the server lists none).
        model: String,
        /// What it serves, comma-separated.
        available: String,
    },
    /// The back-end answered a request with an error status.
    #[error("the back-end at {url} answered HTTP {status}: {message}")]
    Status {
        /// The back-end.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The answer is not OpenAI's.
    #[error("the back-end at {url} does not answer in OpenAI's shape: {what}")]
    Shape {
        /// The back-end.
        url: String,
        /// What came instead.
        what: String,
    },
    /// The reply's stream ended before the reply did.
    #[error("the back-end at {url} cut the reply off: {why}")]
    Cut {
        /// The back-end.
        url: String,
        /// How it ended.
        why: String,
    },
    /// The back-end said mid-reply that it failed.
    #[error("the back-end at {url} failed mid-reply: {message}")]
    Failed {
        /// The back-end.
        url: String,
        /// What it said.
        message: String,
    },
}

/// The back-end's failures so far, by kind, counted where they happen
/// (whichever door asked): what `/metrics` reports of a remote.
#[derive(Debug, Default)]
pub struct Faults([AtomicU64; FAULT_KINDS.len()]);

impl Faults {
    /// Counts `error`.
    fn record(&self, error: &RemoteError) {
        self.0[error.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Each kind's name and count.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        FAULT_KINDS.iter().zip(&self.0).map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
    }
}

/// ", it serves: a, b" or ": it lists no model (name one with --backend-model)".
fn available_models(available: &str) -> String {
    if available.is_empty() {
        " (it lists none: name one with --backend-model)".to_owned()
    } else {
        format!(" (it serves: {available})")
    }
}

/// The short names of [`RemoteError`]'s kinds, in [`RemoteError::index`]'s order.
pub const FAULT_KINDS: [&str; 9] =
    ["url", "unreachable", "timeout", "key", "no_model", "status", "shape", "cut", "failed"];

impl RemoteError {
    /// A short name for metrics and logs (one of [`FAULT_KINDS`]).
    pub fn kind(&self) -> &'static str {
        FAULT_KINDS[self.index()]
    }

    fn index(&self) -> usize {
        match self {
            RemoteError::Url { .. } => 0,
            RemoteError::Unreachable { .. } => 1,
            RemoteError::Timeout { .. } => 2,
            RemoteError::Key { .. } => 3,
            RemoteError::NoModel { .. } => 4,
            RemoteError::Status { .. } => 5,
            RemoteError::Shape { .. } => 6,
            RemoteError::Cut { .. } => 7,
            RemoteError::Failed { .. } => 8,
        }
    }

    /// Whether asking again, unchanged and at once, may succeed: the request
    /// never reached the server, or the server said it was not ready. A
    /// reply under way is never asked again (its text was shown).
    fn retryable(&self) -> bool {
        match self {
            RemoteError::Unreachable { .. } => true,
            RemoteError::Status { status, .. } => matches!(status, 502..=504),
            _ => false,
        }
    }
}

impl crate::error::Classify for RemoteError {
    /// Bad input where the person's settings are wrong (the URL, the key,
    /// the model); a failure where the server or the network fails.
    fn class(&self) -> crate::error::Class {
        match self {
            RemoteError::Url { .. } | RemoteError::Key { .. } | RemoteError::NoModel { .. } => {
                crate::error::Class::BadInput
            }
            _ => crate::error::Class::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_checked_and_given_its_api_path() {
        assert_eq!(RemoteConfig::new("http://gpu-box:8080").unwrap().url, "http://gpu-box:8080/v1");
        assert_eq!(RemoteConfig::new("http://gpu-box:8080/v1/").unwrap().url, "http://gpu-box:8080/v1");
        assert_eq!(RemoteConfig::new("https://host/api/v1").unwrap().url, "https://host/api/v1");
        assert_eq!(RemoteConfig::new("http://h:1/v1").unwrap().root(), "http://h:1");
        for bad in ["gpu-box:8080", "ftp://host/v1", "http://", "not a url"] {
            let error = RemoteConfig::new(bad).unwrap_err();
            assert!(matches!(error, RemoteError::Url { .. }), "{bad}: {error}");
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn an_estimate_is_never_below_a_byte_level_count() {
        // SmolLM2's vocabulary makes about 4.5 bytes a token of English.
        let text = "Tell me something about the stars tonight, please.";
        assert!(estimate(&[text], 1) >= text.len() / 4 + MESSAGE_OVERHEAD);
        assert_eq!(estimate(&[], 0), 0);
    }

    #[test]
    fn only_what_never_reached_the_server_or_a_gateway_is_retried() {
        let url = String::new;
        assert!(RemoteError::Unreachable { url: url(), why: String::new() }.retryable());
        assert!(RemoteError::Status { url: url(), status: 503, message: String::new() }.retryable());
        assert!(!RemoteError::Status { url: url(), status: 500, message: String::new() }.retryable());
        assert!(!RemoteError::Cut { url: url(), why: String::new() }.retryable());
        assert!(!RemoteError::Timeout { url: url(), seconds: 1 }.retryable());
    }
}
