//! A worker that answers from a script instead of a model.
//!
//! It stands behind an ordinary [`super::Engine`] handle
//! ([`super::Engine::scripted`]), so whatever lies above the engine (the chat
//! turn, the server's routes, the page's events, queueing and cancellation)
//! runs on it exactly as on a model, in tests that are not about the model:
//! nothing to load, the same reply every time, known in advance.
//!
//! A token is a word here: a prompt counts its words (and a few per message,
//! as a template's markers would), and a reply streams word by word, each
//! word with the space before it being one token. Stop strings, `max_tokens`,
//! the context's bound and cancellation behave as with a model.

use super::generation::{
    CancelToken, EngineInfo, FinishReason, FlashAttention, GenerationEvent, GenerationStats, PerplexityReport, Prompt,
};
use super::stream::TextStream;
use super::worker::{self, Inbox, Job, Ready, Worker};
use super::{LlmError, Message};
use std::time::{Duration, Instant};

/// Tokens a message's template markers count for, besides its words.
const MESSAGE_TOKENS: usize = 3;

/// What a scripted engine answers.
#[derive(Debug, Clone)]
pub struct Script {
    /// One reply per generation, in order; the last is repeated once the
    /// others are used.
    pub replies: Vec<String>,
    /// The context size it reports, in tokens (words).
    pub context_size: u32,
    /// A pause before each token of a reply, so a test can catch a reply
    /// under way (to queue behind it, cut it, or see it stream).
    pub token_delay: Duration,
}

impl Script {
    /// Answers `replies` in order, with a 2,048-token context and no pause.
    pub fn replies<T: Into<String>>(replies: impl IntoIterator<Item = T>) -> Self {
        Self { replies: replies.into_iter().map(Into::into).collect(), context_size: 2048, token_delay: Duration::ZERO }
    }

    /// The same, pausing `delay` before each token.
    pub fn with_token_delay(self, delay: Duration) -> Self {
        Self { token_delay: delay, ..self }
    }
}

/// The engine thread's life with a script: ready at once, then serves `inbox`.
pub(super) fn run(script: Script, inbox: Inbox, ready: Ready) {
    let info = EngineInfo {
        model_path: "scripted".into(),
        model_name: "scripted".to_owned(),
        context_size: script.context_size,
        threads_decode: 1,
        threads_prefill: 1,
        gpu_layers: 0,
        batch_size: script.context_size,
        flash_attention: FlashAttention::Auto,
        can_shift: false,
        load_ms: 0.0,
        warmup_ms: 0.0,
        warm_tokens: 0,
        warm_from_disk: false,
        remote: None,
    };
    if ready.send(Ok(info)).is_err() {
        return;
    }
    worker::serve(&mut Scripted { script, inbox, generations: 0 });
}

/// The scripted worker's state.
struct Scripted {
    script: Script,
    inbox: Inbox,
    /// Generations run so far (which reply comes next).
    generations: usize,
}

impl Scripted {
    fn next_reply(&mut self) -> &str {
        let index = self.generations.min(self.script.replies.len().saturating_sub(1));
        self.generations += 1;
        self.script.replies.get(index).map_or("", String::as_str)
    }
}

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

impl Worker for Scripted {
    fn inbox(&mut self) -> &mut Inbox {
        &mut self.inbox
    }

    fn count(&self, prompt: &Prompt) -> Result<usize, LlmError> {
        Ok(match prompt {
            Prompt::Text(text) => words(text),
            // The generation prompt's markers count too, as a template's would.
            Prompt::Messages(messages) => {
                messages.iter().map(|message: &Message| words(&message.content) + MESSAGE_TOKENS).sum::<usize>()
                    + MESSAGE_TOKENS
            }
        })
    }

    fn generate(&mut self, job: &Job) -> Result<(GenerationStats, String), LlmError> {
        let request = &job.request;
        request.sampling.validate()?;
        let prompt_tokens = self.count(&request.prompt)?;
        if prompt_tokens == 0 {
            return Err(LlmError::EmptyPrompt);
        }
        let context_size = self.script.context_size as usize;
        if prompt_tokens >= context_size {
            return Err(LlmError::PromptTooLong { prompt_tokens, context_size });
        }
        let delay = self.script.token_delay;
        let reply = self.next_reply().to_owned();
        let mut stats = GenerationStats {
            prompt_tokens,
            completion_tokens: 0,
            cached_tokens: 0,
            shifted_tokens: 0,
            prefill_tokens: prompt_tokens,
            ttft_ms: 0.0,
            prefill_tokens_per_s: 0.0,
            decode_tokens_per_s: 0.0,
            context_shifted_tokens: 0,
            finish_reason: FinishReason::Stop,
        };
        let mut stream = TextStream::new(&request.stop);
        let mut text = String::new();
        for piece in reply.split_inclusive(char::is_whitespace) {
            if pause(delay, &job.cancel) {
                stats.finish_reason = FinishReason::Cancelled;
                break;
            }
            if stats.completion_tokens == 0 {
                stats.ttft_ms = job.submitted.elapsed().as_secs_f64() * 1e3;
            }
            if stats.completion_tokens >= request.max_tokens as usize {
                stats.finish_reason = FinishReason::Length;
                break;
            }
            stats.completion_tokens += 1;
            let shown = stream.push(piece.as_bytes());
            text.push_str(&shown);
            if !shown.is_empty() && job.events.blocking_send(GenerationEvent::Text(shown)).is_err() {
                stats.finish_reason = FinishReason::Cancelled;
                break;
            }
            if stream.stopped().is_some() {
                break;
            }
            self.answer_counts();
        }
        let rest = stream.finish();
        if !rest.is_empty() {
            text.push_str(&rest);
            let _ = job.events.blocking_send(GenerationEvent::Text(rest));
        }
        Ok((stats, text))
    }

    fn perplexity(&mut self, _text: &str) -> Result<PerplexityReport, LlmError> {
        Err(LlmError::Decode("a scripted engine has no model to score a text with".to_owned()))
    }

    fn clear_cache(&mut self) {}
}

/// Waits `delay` unless `cancel` fires first (checked every few
/// milliseconds); whether it fired.
fn pause(delay: Duration, cancel: &CancelToken) -> bool {
    let until = Instant::now() + delay;
    while !cancel.is_cancelled() && Instant::now() < until {
        std::thread::sleep((until - Instant::now()).min(Duration::from_millis(5)));
    }
    cancel.is_cancelled()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{Engine, GenerationRequest};

    #[test]
    fn a_scripted_engine_streams_its_replies_in_order_and_honours_the_request() {
        let engine = Engine::scripted(Script::replies(["[joy] Hello there, friend.", "Second reply here."])).unwrap();
        let ask = |max_tokens, stop: &[&str]| {
            let request = GenerationRequest {
                stop: stop.iter().map(|stop| (*stop).to_owned()).collect(),
                ..GenerationRequest::chat(vec![Message::user("Hi")], max_tokens)
            };
            engine.generate(request).unwrap().collect_blocking().unwrap()
        };
        let (text, stats) = ask(100, &[]);
        assert_eq!(text, "[joy] Hello there, friend.");
        assert_eq!((stats.completion_tokens, stats.finish_reason), (4, FinishReason::Stop));
        assert_eq!(stats.prompt_tokens, 1 + 2 * MESSAGE_TOKENS);
        assert_eq!(engine.count_tokens(Prompt::Text("one two three".into())).unwrap(), 3);
        let (text, stats) = ask(2, &[]);
        assert_eq!((text.as_str(), stats.finish_reason), ("Second reply ", FinishReason::Length));
        let (text, stats) = ask(100, &["here"]);
        assert_eq!((text.as_str(), stats.finish_reason), ("Second reply ", FinishReason::Stop));
    }

    #[test]
    fn a_prompt_beyond_the_context_is_refused() {
        let engine = Engine::scripted(Script { context_size: 4, ..Script::replies(["ok"]) }).unwrap();
        let request = GenerationRequest::chat(vec![Message::user("one two three four five")], 10);
        let error = engine.generate(request).unwrap().collect_blocking().unwrap_err();
        assert!(matches!(error, LlmError::PromptTooLong { context_size: 4, .. }), "{error}");
    }
}
