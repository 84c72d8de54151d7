//! What goes over the wire to an OpenAI-compatible server and back: the
//! request bodies, the server-sent events of a streamed reply, and the error
//! bodies of its refusals. Nothing here does I/O, so every shape a server may
//! answer is tested without one.

use super::Dialect;
use crate::llm::generation::{GenerationRequest, Prompt};
use crate::llm::template::Message;
use serde_json::{Value, json};

/// Stop strings OpenAI's own API takes; more are refused there, so a server
/// of unknown kind gets only these (the rest are still applied to the text
/// as it streams in).
const OPENAI_STOPS: usize = 4;

/// The path of a request's endpoint under the base URL, and its body.
pub fn request(request: &GenerationRequest, model: &str, dialect: Dialect) -> (&'static str, Value) {
    let sampling = &request.sampling;
    let (path, mut body) = match &request.prompt {
        Prompt::Messages(messages) => ("/chat/completions", json!({ "messages": messages_json(messages) })),
        Prompt::Text(text) => ("/completions", json!({ "prompt": text })),
    };
    let stops = match dialect {
        Dialect::Generic => &request.stop[..request.stop.len().min(OPENAI_STOPS)],
        _ => &request.stop[..],
    };
    let fields = body.as_object_mut().expect("a JSON object");
    fields.insert("model".into(), json!(model));
    fields.insert("stream".into(), json!(true));
    fields.insert("stream_options".into(), json!({ "include_usage": true }));
    fields.insert("max_tokens".into(), json!(request.max_tokens));
    fields.insert("temperature".into(), json!(sampling.temperature));
    fields.insert("top_p".into(), json!(sampling.top_p));
    if let Some(seed) = sampling.seed {
        fields.insert("seed".into(), json!(seed));
    }
    if !stops.is_empty() {
        fields.insert("stop".into(), json!(stops));
    }
    if dialect != Dialect::Generic {
        // llama.cpp's own sampling settings, which both of its servers take
        // and OpenAI's API would refuse.
        fields.insert("top_k".into(), json!(sampling.top_k));
        fields.insert("min_p".into(), json!(sampling.min_p));
        fields.insert("repeat_penalty".into(), json!(sampling.repeat_penalty));
    }
    if dialect == Dialect::LlamaServer {
        fields.insert("repeat_last_n".into(), json!(sampling.repeat_last_n));
        // Reuse the cached prefix: the conversation's opening and its
        // earlier turns are sent unchanged, so only the new turn is evaluated.
        fields.insert("cache_prompt".into(), json!(true));
        if request.ignore_eos {
            fields.insert("ignore_eos".into(), json!(true));
        }
    }
    (path, body)
}

/// Messages as OpenAI's API takes them.
pub fn messages_json(messages: &[Message]) -> Value {
    messages.iter().map(|message| json!({ "role": message.role.as_str(), "content": message.content })).collect()
}

/// Splits a byte stream into the data of its server-sent events: each
/// `data:` line's payload, whatever the chunks' boundaries (a line, even a
/// character, may come in two pieces).
#[derive(Debug, Default)]
pub struct EventLines {
    pending: Vec<u8>,
}

impl EventLines {
    /// The payloads completed by `bytes`, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut payloads = Vec::new();
        while let Some(end) = self.pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            // Comments (`: ping`), `event:` and `id:` lines carry no reply.
            if let Some(data) = line.trim_end_matches(['\r', '\n']).strip_prefix("data:") {
                payloads.push(data.strip_prefix(' ').unwrap_or(data).to_owned());
            }
        }
        payloads
    }

    /// Whether bytes of an unfinished line are left.
    pub fn has_partial_line(&self) -> bool {
        self.pending.iter().any(|byte| !byte.is_ascii_whitespace())
    }
}

/// One event of a streamed reply, as far as Workly reads it.
#[derive(Debug, Default, PartialEq)]
pub struct Chunk {
    /// The reply's next text.
    pub text: String,
    /// The server says the reply ended (`stop`, `length`...).
    pub finish: Option<String>,
    /// Token counts, in the last event when asked for.
    pub usage: Option<Usage>,
    /// The server failed mid-reply and said why.
    pub error: Option<String>,
}

/// Token counts and speeds a server reports of a reply.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: Option<usize>,
    /// Tokens generated.
    pub completion_tokens: Option<usize>,
    /// Prompt tokens the server found in its cache.
    pub cached_tokens: Option<usize>,
    /// Prompt evaluation speed, where the server says (llama-server's `timings`).
    pub prefill_tokens_per_s: Option<f64>,
}

/// What ended the reading of a stream early.
#[derive(Debug, PartialEq)]
pub enum Shape {
    /// The end marker, `data: [DONE]`.
    Done,
    /// A payload that is not an OpenAI stream event.
    Unknown(String),
}

/// Reads one payload: an event, or why reading stops.
pub fn chunk(payload: &str) -> Result<Chunk, Shape> {
    let payload = payload.trim();
    if payload == "[DONE]" {
        return Err(Shape::Done);
    }
    let value: Value = serde_json::from_str(payload).map_err(|_| Shape::Unknown(excerpt(payload)))?;
    if let Some(error) = value.get("error") {
        return Ok(Chunk { error: Some(error_message(error)), ..Chunk::default() });
    }
    let choices = value.get("choices").and_then(Value::as_array).ok_or_else(|| Shape::Unknown(excerpt(payload)))?;
    let mut chunk = Chunk::default();
    if let Some(choice) = choices.first() {
        // Chat streams put the text in `delta.content`, completions in `text`.
        let text = choice.pointer("/delta/content").or_else(|| choice.get("text")).and_then(Value::as_str);
        chunk.text = text.unwrap_or_default().to_owned();
        chunk.finish = choice.get("finish_reason").and_then(Value::as_str).map(str::to_owned);
    }
    chunk.usage = usage(&value);
    Ok(chunk)
}

/// The token counts of a stream's event, if it has any.
fn usage(value: &Value) -> Option<Usage> {
    let count = |value: Option<&Value>| value.and_then(Value::as_u64).map(|count| count as usize);
    let usage = value.get("usage").filter(|usage| usage.is_object());
    let timings = value.get("timings").filter(|timings| timings.is_object());
    if usage.is_none() && timings.is_none() {
        return None;
    }
    let from_usage = |pointer: &str| count(usage.and_then(|usage| usage.pointer(pointer)));
    let from_timings = |key: &str| timings.and_then(|timings| timings.get(key));
    Some(Usage {
        prompt_tokens: from_usage("/prompt_tokens"),
        completion_tokens: from_usage("/completion_tokens"),
        cached_tokens: from_usage("/prompt_tokens_details/cached_tokens").or(count(from_timings("cache_n"))),
        prefill_tokens_per_s: from_timings("prompt_per_second").and_then(Value::as_f64),
    })
}

/// The message of an OpenAI-shaped error (`{"error": {"message": ...}}`, or
/// a bare string as some servers send), else the start of the body.
pub fn error_message(error: &Value) -> String {
    match error {
        Value::String(message) => one_line(message),
        Value::Object(fields) => match fields.get("message").and_then(Value::as_str) {
            Some(message) => one_line(message),
            None => excerpt(&error.to_string()),
        },
        other => excerpt(&other.to_string()),
    }
}

/// What a refusal's body says: its OpenAI error message, FastAPI's `detail`,
/// or the start of the body.
pub fn refusal(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(value) => match (value.get("error"), value.get("detail")) {
            (Some(error), _) => error_message(error),
            (None, Some(detail)) => excerpt(&detail.to_string()),
            (None, None) => excerpt(body),
        },
        Err(_) => excerpt(body),
    }
}

/// At most 160 characters of `text`, on one line.
pub fn excerpt(text: &str) -> String {
    let line = one_line(text);
    match line.char_indices().nth(160) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// `text` with its line breaks as spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::sampling::SamplingParams;

    fn chat_request(stops: usize) -> GenerationRequest {
        GenerationRequest {
            stop: (0..stops).map(|index| format!("stop{index}")).collect(),
            sampling: SamplingParams { seed: Some(7), ..SamplingParams::default() },
            ..GenerationRequest::chat(vec![Message::system("Be brief."), Message::user("Hi")], 32)
        }
    }

    #[test]
    fn a_llama_server_gets_its_own_settings_and_keeps_its_cache() {
        let (path, body) = request(&chat_request(6), "smol", Dialect::LlamaServer);
        assert_eq!(path, "/chat/completions");
        assert_eq!(
            body["messages"],
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
        );
        assert_eq!(
            (body["model"].as_str(), body["max_tokens"].as_u64(), body["seed"].as_u64()),
            (Some("smol"), Some(32), Some(7))
        );
        assert_eq!((body["cache_prompt"].as_bool(), body["top_k"].as_i64()), (Some(true), Some(40)));
        assert_eq!(body["stop"].as_array().unwrap().len(), 6);
        assert_eq!(body["stream_options"]["include_usage"], json!(true));
    }

    #[test]
    fn a_server_of_unknown_kind_gets_only_openais_fields() {
        let (_, body) = request(&chat_request(6), "gpt", Dialect::Generic);
        for field in ["top_k", "min_p", "repeat_penalty", "cache_prompt", "ignore_eos"] {
            assert!(body.get(field).is_none(), "{field} sent");
        }
        assert_eq!(body["stop"].as_array().unwrap().len(), OPENAI_STOPS);
        let (_, body) = request(&chat_request(0), "gpt", Dialect::Generic);
        assert!(body.get("stop").is_none());
        let text = GenerationRequest { prompt: Prompt::Text("Once".into()), ..chat_request(0) };
        let (path, body) = request(&text, "gpt", Dialect::LlamaCppPython);
        assert_eq!((path, body["prompt"].as_str()), ("/completions", Some("Once")));
        assert!(body.get("cache_prompt").is_none(), "llama-cpp-python keeps its prefix by itself");
    }

    #[test]
    fn events_are_read_whatever_the_chunks_boundaries() {
        let stream = "data: {\"a\":1}\r\n\r\n: ping\n\nevent: x\ndata:{\"b\":\"é\"}\n\ndata: [DONE]\n\n";
        let whole = EventLines::default().push(stream.as_bytes());
        assert_eq!(whole, ["{\"a\":1}", "{\"b\":\"é\"}", "[DONE]"]);
        let mut lines = EventLines::default();
        let mut pieces = Vec::new();
        for byte in stream.as_bytes() {
            pieces.extend(lines.push(std::slice::from_ref(byte)));
        }
        assert_eq!(pieces, whole, "byte by byte, a split é included");
        assert!(!lines.has_partial_line());
        lines.push(b"data: {\"cho");
        assert!(lines.has_partial_line());
    }

    #[test]
    fn a_chunk_gives_its_text_its_end_and_its_counts() {
        let text = chunk(r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}"#).unwrap();
        assert_eq!((text.text.as_str(), text.finish), ("Hi", None));
        let end = chunk(r#"{"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":8}}}"#).unwrap();
        assert_eq!(end.finish.as_deref(), Some("stop"));
        let usage = end.usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens), (Some(12), Some(3), Some(8)));
        // llama-server's timings, in an event with no choices.
        let timings = chunk(r#"{"choices":[],"timings":{"cache_n":30,"prompt_per_second":250.5}}"#).unwrap();
        let usage = timings.usage.unwrap();
        assert_eq!((usage.cached_tokens, usage.prefill_tokens_per_s), (Some(30), Some(250.5)));
        let completion = chunk(r#"{"choices":[{"text":" upon","finish_reason":null}]}"#).unwrap();
        assert_eq!(completion.text, " upon");
    }

    #[test]
    fn a_payload_out_of_shape_or_an_error_is_told_apart() {
        assert_eq!(chunk("[DONE]"), Err(Shape::Done));
        assert_eq!(chunk("<html>busy</html>"), Err(Shape::Unknown("<html>busy</html>".into())));
        assert_eq!(chunk(r#"{"id":1}"#), Err(Shape::Unknown(r#"{"id":1}"#.into())));
        let error = chunk(r#"{"error":{"message":"out of\nmemory","code":500}}"#).unwrap();
        assert_eq!(error.error.as_deref(), Some("out of memory"));
    }

    #[test]
    fn a_refusal_says_the_servers_own_words_on_one_line() {
        assert_eq!(refusal(r#"{"error":{"message":"Invalid API Key","type":"auth"}}"#), "Invalid API Key");
        assert_eq!(refusal(r#"{"detail":"Not Found"}"#), "\"Not Found\"");
        assert_eq!(refusal("Bad\nGateway"), "Bad Gateway");
        assert_eq!(refusal(&"x".repeat(500)).chars().count(), 161);
    }
}
