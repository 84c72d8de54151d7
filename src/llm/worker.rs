//! The engine's worker seam: what the thread behind an [`Engine`] does with
//! the handle's commands.
//!
//! The handle ([`super::engine`]) queues commands; one thread takes them in
//! arrival order and hands each to a [`Worker`]: the llama.cpp worker
//! ([`super::llama`]) that owns the model and its KV cache, or a scripted one
//! ([`super::scripted`]) that stands in for a model in tests of what lies
//! above the engine (the chat turn, the server's routes). The loop here is
//! the same for both, so the order of replies, the token counts answered
//! between a reply's steps and the idle work after a reply do not depend on
//! the worker.
//!
//! [`Engine`]: super::Engine

use super::generation::{
    CancelToken, EngineInfo, FinishReason, GenerationEvent, GenerationRequest, GenerationStats, PerplexityReport,
    Prompt,
};
use super::{LlmError, Message};
use std::collections::VecDeque;
use std::sync::mpsc::Receiver;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// How the engine thread says it is ready, with what it loaded, or why it
/// could not start.
pub(super) type Ready = std::sync::mpsc::Sender<Result<EngineInfo, LlmError>>;

/// What the handle asks of the engine thread.
pub(super) enum Command {
    Generate(Box<Job>),
    CountTokens { prompt: Prompt, reply: oneshot::Sender<Result<usize, LlmError>> },
    ClearCache { reply: oneshot::Sender<()> },
    Perplexity { text: String, reply: oneshot::Sender<Result<PerplexityReport, LlmError>> },
    Idle { reply: oneshot::Sender<()> },
    Prepare { messages: Vec<Message>, cancel: CancelToken, reply: oneshot::Sender<()> },
}

/// One generation as the worker runs it.
pub(super) struct Job {
    /// What to generate.
    pub request: GenerationRequest,
    /// When the handle queued it: time to first token counts from here.
    pub submitted: Instant,
    /// Fired by the caller (or by dropping its generation) to stop it.
    pub cancel: CancelToken,
    /// Where the reply's text goes, piece by piece.
    pub events: mpsc::Sender<GenerationEvent>,
    /// Work on the side (a summary while the person reads): the cache is
    /// left as the job found it, so the conversation's next turn prefills
    /// no more than it would have, and no next turn is prepared after it.
    pub aside: bool,
}

/// The commands waiting for the worker: those still in the channel, and
/// those that arrived during a generation and wait their turn.
pub(super) struct Inbox {
    commands: Receiver<Command>,
    backlog: VecDeque<Command>,
    /// Fired when a command other than a count comes: the aside job under
    /// way gives way to it.
    give_way: Option<CancelToken>,
}

impl Inbox {
    /// The commands the handle sends on `commands`.
    pub fn new(commands: Receiver<Command>) -> Self {
        Self { commands, backlog: VecDeque::new(), give_way: None }
    }

    /// While `cancel` is set, a command other than a count that comes (or
    /// already waits) fires it: an aside job runs only while nothing else
    /// waits.
    fn give_way(&mut self, cancel: Option<CancelToken>) {
        if let Some(cancel) = cancel.as_ref().filter(|_| !self.backlog.is_empty()) {
            cancel.cancel();
        }
        self.give_way = cancel;
    }

    /// The next command: the backlog's first, else the next to arrive;
    /// `None` once every handle is gone.
    fn next(&mut self) -> Option<Command> {
        self.backlog.pop_front().or_else(|| self.commands.recv().ok())
    }

    /// The token counts that arrived meanwhile, to be answered now; any
    /// other command is kept for later, in its order. A worker asks between
    /// the steps of a generation: a count (a server fitting a history to the
    /// context, which may take several) never waits for a whole reply, nor
    /// for the replies queued before it.
    pub fn counts(&mut self) -> Vec<(Prompt, oneshot::Sender<Result<usize, LlmError>>)> {
        let mut counts = Vec::new();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::CountTokens { prompt, reply } => counts.push((prompt, reply)),
                other => {
                    if let Some(cancel) = &self.give_way {
                        cancel.cancel();
                    }
                    self.backlog.push_back(other);
                }
            }
        }
        counts
    }
}

/// What owns a model on the engine thread.
pub(super) trait Worker {
    /// The commands waiting for this worker.
    fn inbox(&mut self) -> &mut Inbox;

    /// The tokens `prompt` makes, as a generation would evaluate it.
    fn count(&self, prompt: &Prompt) -> Result<usize, LlmError>;

    /// Runs one generation, streaming its text on `job.events` and stopping
    /// at `job.cancel`; returns its measurements and the whole reply. Between
    /// steps it answers the token counts that arrived ([`Worker::answer_counts`]).
    /// An aside job leaves the cache holding what it held before.
    fn generate(&mut self, job: &Job) -> Result<(GenerationStats, String), LlmError>;

    /// Idle-time work once a chat reply is out, while the person reads it:
    /// `messages` is the conversation with that reply last; `cancel` stops
    /// it between two batches.
    fn prepare_next_turn(&mut self, _messages: &[Message], _cancel: &CancelToken) {}

    /// See [`super::Engine::perplexity`].
    fn perplexity(&mut self, text: &str) -> Result<PerplexityReport, LlmError>;

    /// Forgets every cached token and kept snapshot.
    fn clear_cache(&mut self);

    /// Answers the token counts that arrived meanwhile.
    fn answer_counts(&mut self) {
        for (prompt, reply) in self.inbox().counts() {
            let _ = reply.send(self.count(&prompt));
        }
    }
}

/// Serves commands in arrival order until every handle is gone.
pub(super) fn serve(worker: &mut impl Worker) {
    while let Some(command) = worker.inbox().next() {
        match command {
            Command::Generate(job) => generate(worker, &job),
            Command::CountTokens { prompt, reply } => {
                let _ = reply.send(worker.count(&prompt));
            }
            Command::Perplexity { text, reply } => {
                let _ = reply.send(worker.perplexity(&text));
            }
            Command::ClearCache { reply } => {
                worker.clear_cache();
                let _ = reply.send(());
            }
            Command::Idle { reply } => {
                let _ = reply.send(());
            }
            Command::Prepare { messages, cancel, reply } => {
                // Idle-time work: it gives way to whatever comes.
                worker.inbox().give_way(Some(cancel.clone()));
                worker.prepare_next_turn(&messages, &cancel);
                worker.inbox().give_way(None);
                let _ = reply.send(());
            }
        }
    }
}

/// One generation: its events, then the idle work for the next turn.
fn generate(worker: &mut impl Worker, job: &Job) {
    worker.inbox().give_way(job.aside.then(|| job.cancel.clone()));
    let generated = worker.generate(job);
    worker.inbox().give_way(None);
    match generated {
        Ok((stats, reply)) => {
            let cancelled = stats.finish_reason == FinishReason::Cancelled;
            let _ = job.events.blocking_send(GenerationEvent::Done(stats));
            // The reply is out; while the person reads it and types, prepare
            // what the next turn will start with (not for a reply nobody
            // waited for to the end: its client may be gone).
            if let (Prompt::Messages(messages), false) = (&job.request.prompt, cancelled || job.aside) {
                let mut next = messages.clone();
                next.push(Message::assistant(reply));
                worker.prepare_next_turn(&next, &CancelToken::new());
            }
        }
        Err(error) => {
            let _ = job.events.blocking_send(GenerationEvent::Failed(error));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aside_job_gives_way_to_any_command_but_a_count() {
        let (sender, receiver) = std::sync::mpsc::sync_channel(8);
        let mut inbox = Inbox::new(receiver);
        let aside = CancelToken::new();
        inbox.give_way(Some(aside.clone()));
        let (reply, _answer) = oneshot::channel();
        sender.send(Command::CountTokens { prompt: Prompt::Text("hi".into()), reply }).unwrap();
        assert_eq!(inbox.counts().len(), 1);
        assert!(!aside.is_cancelled(), "a count is answered between steps, the job goes on");
        let (reply, _answer) = oneshot::channel();
        sender.send(Command::Idle { reply }).unwrap();
        assert!(inbox.counts().is_empty());
        assert!(aside.is_cancelled(), "a waiting command stops the aside job");
        // A job set aside while a command already waits stops at once; an
        // ordinary job does not give way.
        let late = CancelToken::new();
        inbox.give_way(Some(late.clone()));
        assert!(late.is_cancelled());
        inbox.give_way(None);
        let (reply, _answer) = oneshot::channel();
        sender.send(Command::Idle { reply }).unwrap();
        inbox.counts();
        assert!(matches!(inbox.next(), Some(Command::Idle { .. })));
    }
}
