//! The engine on the real models: streaming, cancellation, exact token counts,
//! KV-cache reuse across turns (also on Gemma 3's sliding-window cache), and
//! context shifting when a conversation outgrows the context. The cache tests
//! run with flash attention on (llama.cpp's pick on the CPU) and off.

mod common;

use workly::emotion::tags;
use workly::llm::{
    CancelToken, Engine, EngineConfig, FinishReason, FlashAttention, GenerationEvent, GenerationRequest,
    GenerationStats, LlmError, Message, Prompt, SamplingParams,
};

/// An engine with flash attention as llama.cpp picks it (on, on the CPU).
fn engine(model: std::path::PathBuf, context_size: u32, warmup: Vec<Vec<Message>>) -> Engine {
    engine_with(model, context_size, warmup, FlashAttention::Auto)
}

/// Both attention paths: the cache tests run on each, since they store V
/// differently (transposed without flash attention) and `--flash-attn` picks.
const BOTH_KERNELS: [FlashAttention; 2] = [FlashAttention::On, FlashAttention::Off];

fn engine_with(
    model: std::path::PathBuf,
    context_size: u32,
    warmup: Vec<Vec<Message>>,
    flash_attention: FlashAttention,
) -> Engine {
    Engine::load(EngineConfig { warmup, flash_attention, ..common::engine_config(&model, context_size) })
        .expect("engine loads")
}

fn greedy(messages: Vec<Message>, max_tokens: u32) -> GenerationRequest {
    GenerationRequest { sampling: SamplingParams::greedy(), ..GenerationRequest::chat(messages, max_tokens) }
}

fn run(engine: &Engine, request: GenerationRequest) -> (String, GenerationStats) {
    engine.generate(request).unwrap().collect_blocking().unwrap()
}

const SYSTEM: &str = "You are Kira, a warm and curious companion. Answer in two short sentences.";
const SCRIPT: &[&str] = &[
    "Hi! My name is Sam and I like tea.",
    "What is a good name for a cat?",
    "Tell me something about the sea.",
    "Thanks! What did I say my name was?",
];

/// Plays SCRIPT as one conversation; returns each turn's stats.
fn conversation(engine: &Engine, reply_tokens: u32) -> Vec<GenerationStats> {
    let mut messages = vec![Message::system(SYSTEM)];
    let mut all = Vec::new();
    for user in SCRIPT {
        messages.push(Message::user(*user));
        let (text, stats) = run(engine, greedy(messages.clone(), reply_tokens));
        messages.push(Message::assistant(text));
        all.push(stats);
    }
    all
}

/// Each later turn reuses the whole previous conversation except, at most, the
/// few tokens at the end of the previous reply that re-tokenize differently.
fn assert_turns_reuse_cache(turns: &[GenerationStats]) {
    for pair in turns.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert!(after.cached_tokens > before.cached_tokens, "cache must grow: {before:?} then {after:?}");
        assert!(
            after.cached_tokens + 8 >= before.prompt_tokens,
            "the previous prompt should be reused: {before:?} then {after:?}"
        );
        assert!(after.prefill_tokens < after.prompt_tokens / 2, "most of the prompt comes from cache: {after:?}");
    }
}

#[test]
fn smollm2_conversation_prefills_only_new_tokens() {
    let engine = engine(common::small_model(), 2048, vec![vec![Message::system(SYSTEM)]]);
    assert!(engine.info().warm_tokens > 10, "warm-up caches the persona: {:?}", engine.info());
    let turns = conversation(&engine, 24);
    // Warm-up cached the persona, so even the first turn reuses it.
    assert!(turns[0].cached_tokens >= engine.info().warm_tokens - 1, "{:?}", turns[0]);
    assert_turns_reuse_cache(&turns);
}

#[test]
fn gemma3_sliding_window_cache_is_reused_across_turns() {
    for flash in BOTH_KERNELS {
        let engine = engine_with(common::gemma_model(), 2048, vec![vec![Message::system(SYSTEM)]], flash);
        let turns = conversation(&engine, 24);
        assert_turns_reuse_cache(&turns);
    }
}

#[test]
fn gemma3_reuse_survives_rollback_past_the_window() {
    for flash in BOTH_KERNELS {
        // Gemma 3 270M attends to a 512-token window in most layers. Grow the cache
        // well past it, then ask again from an earlier point: the engine must either
        // reuse correctly or fall back to a full prefill, and the reply must be the
        // same as from a cold cache.
        let engine = engine_with(common::gemma_model(), 4096, Vec::new(), flash);
        let long = "The lighthouse keeper wrote in his log every night. ".repeat(60);
        let base = vec![Message::user(format!("{long}\nSummarize the text in one sentence."))];
        let (_, first) = run(&engine, greedy(base.clone(), 8));
        assert!(first.prompt_tokens > 600, "prompt must exceed the window: {first:?}");
        let (_, _) = run(&engine, GenerationRequest { ignore_eos: true, ..greedy(base.clone(), 300) });
        let mut question = base.clone();
        question[0].content.push_str(" Then say how many nights.");
        let (warm_text, warm) = run(&engine, greedy(question.clone(), 16));
        assert!(warm.cached_tokens > 0 || warm.prefill_tokens == warm.prompt_tokens, "{warm:?}");
        engine.clear_cache().unwrap();
        let (cold_text, cold) = run(&engine, greedy(question, 16));
        assert_eq!(cold.cached_tokens, 0);
        assert_eq!(warm_text, cold_text, "cached and cold evaluation must agree");
    }
}

const SYSTEM_FR: &str = "Tu es Kira, une compagne chaleureuse et curieuse. Réponds en deux phrases courtes.";

/// Warm-up keeps every opening; a conversation that starts with one the cache
/// no longer holds loads it back instead of prefilling it, and answers as a
/// cold engine does.
fn every_warmed_opening_is_reused(model: std::path::PathBuf) {
    for flash in BOTH_KERNELS {
        let openings = vec![vec![Message::system(SYSTEM)], vec![Message::system(SYSTEM_FR)]];
        let engine = engine_with(model.clone(), 2048, openings, flash);
        // Only the user's message and the turn headers around it are evaluated
        // (at most 20 tokens here), never the persona's 20 to 40 as well.
        let only_the_message = |stats: &GenerationStats| {
            assert!(stats.prefill_tokens <= 20 && stats.prompt_tokens >= 30, "{stats:?}");
        };
        // The English persona was warmed last-but-first: it is what the cache holds.
        let english_chat = vec![Message::system(SYSTEM), Message::user("Tell me about the moon.")];
        let (_, first) = run(&engine, greedy(english_chat.clone(), 24));
        only_the_message(&first);
        // A French conversation after it starts from the French snapshot.
        let french_chat = vec![Message::system(SYSTEM_FR), Message::user("Parle-moi de la lune.")];
        let (french_text, french_stats) = run(&engine, greedy(french_chat.clone(), 24));
        only_the_message(&french_stats);
        // And back: the English one comes from its snapshot again.
        let (english_text, again) = run(&engine, greedy(english_chat.clone(), 24));
        only_the_message(&again);
        for (chat, warm_text) in [(french_chat, french_text), (english_chat, english_text)] {
            engine.clear_cache().unwrap();
            let (cold_text, cold) = run(&engine, greedy(chat, 24));
            assert_eq!(cold.cached_tokens, 0, "clearing forgets the snapshots too");
            assert_eq!(warm_text, cold_text, "a loaded snapshot answers like a computed cache");
        }
    }
}

#[test]
fn smollm2_keeps_every_warmed_opening() {
    every_warmed_opening_is_reused(common::small_model());
}

#[test]
fn gemma3_keeps_every_warmed_opening() {
    every_warmed_opening_is_reused(common::gemma_model());
}

#[test]
fn cached_prefix_gives_the_same_reply_as_a_cold_cache() {
    for flash in BOTH_KERNELS {
        let engine = engine_with(common::small_model(), 2048, vec![vec![Message::system(SYSTEM)]], flash);
        let messages = vec![Message::system(SYSTEM), Message::user("Name three colours of the rainbow.")];
        let (warm_text, warm) = run(&engine, greedy(messages.clone(), 24));
        assert!(warm.cached_tokens > 0);
        engine.clear_cache().unwrap();
        let (cold_text, cold) = run(&engine, greedy(messages, 24));
        assert_eq!(cold.cached_tokens, 0);
        assert_eq!(warm_text, cold_text);
    }
}

#[test]
fn dropped_old_turns_are_shifted_not_recomputed() {
    for flash in BOTH_KERNELS {
        let engine = engine_with(common::small_model(), 2048, Vec::new(), flash);
        let turn =
            |n: usize| format!("Turn {n}: here is a longer message about my day, my cat and the weather outside.");
        let mut messages = vec![Message::system(SYSTEM)];
        for n in 0..4 {
            messages.push(Message::user(turn(n)));
            messages.push(Message::assistant(format!("Reply {n}: that sounds lovely, tell me more about it please.")));
        }
        messages.push(Message::user("And now?"));
        run(&engine, greedy(messages.clone(), 4));
        // The conversation drops its oldest exchange to fit, as the chat does.
        messages.drain(1..3);
        messages.pop();
        messages.push(Message::user("And after that?"));
        let (_, stats) = run(&engine, greedy(messages, 4));
        assert!(stats.shifted_tokens > 40, "later turns must be shifted into place: {stats:?}");
        assert!(stats.prefill_tokens < 30, "only the new message is evaluated: {stats:?}");
    }
}

#[test]
fn generation_past_the_context_shifts_and_keeps_going() {
    let engine = engine(common::small_model(), 128, Vec::new());
    let request = GenerationRequest {
        ignore_eos: true,
        ..greedy(vec![Message::system(SYSTEM), Message::user("Count slowly.")], 200)
    };
    let (text, stats) = run(&engine, request);
    assert_eq!(stats.completion_tokens, 200);
    assert!(stats.context_shifted_tokens > 0, "{stats:?}");
    assert_eq!(stats.finish_reason, FinishReason::Length);
    assert!(!text.is_empty());
}

#[test]
fn cancellation_stops_between_tokens() {
    let engine = engine(common::small_model(), 2048, Vec::new());
    let request = GenerationRequest {
        ignore_eos: true,
        ..greedy(vec![Message::user("Write a very long story about a dragon.")], 1500)
    };
    let mut generation = engine.generate(request).unwrap();
    let cancel = generation.cancel_token();
    let mut texts = 0;
    let stats = loop {
        match generation.blocking_next().expect("engine answers") {
            GenerationEvent::Text(_) => {
                texts += 1;
                if texts == 3 {
                    cancel.cancel();
                }
            }
            GenerationEvent::Done(stats) => break stats,
            GenerationEvent::Failed(error) => panic!("{error}"),
        }
    };
    assert_eq!(stats.finish_reason, FinishReason::Cancelled);
    assert!(stats.completion_tokens < 50, "{stats:?}");
    // The engine is free again right away.
    let (_, next) = run(&engine, greedy(vec![Message::user("Hi")], 4));
    assert!(next.completion_tokens > 0);
}

#[test]
fn dropping_the_stream_frees_the_engine() {
    let engine = engine(common::small_model(), 2048, Vec::new());
    let request = GenerationRequest { ignore_eos: true, ..greedy(vec![Message::user("Tell a story.")], 100_000) };
    let mut generation = engine.generate(request).unwrap();
    assert!(matches!(generation.blocking_next(), Some(GenerationEvent::Text(_))));
    drop(generation);
    let (_, next) = run(&engine, greedy(vec![Message::user("Hi")], 4));
    assert!(next.completion_tokens > 0);
}

#[test]
fn token_counts_do_not_wait_for_replies() {
    let engine = engine(common::small_model(), 2048, Vec::new());
    // Both fit their event queues, so neither waits for its reader.
    let long = |text: &str| GenerationRequest { ignore_eos: true, ..greedy(vec![Message::user(text)], 250) };
    let mut first = engine.generate(long("Tell a long story.")).unwrap();
    let queued = engine.generate(long("Tell another long story.")).unwrap();
    assert!(matches!(first.blocking_next(), Some(GenerationEvent::Text(_))));
    assert!(engine.count_tokens(Prompt::Text("Hello there".into())).unwrap() > 0);
    // Answered during the first reply: the queued one has not started, so
    // cancelling it now leaves it without a token.
    queued.cancel_token().cancel();
    let (_, queued) = queued.collect_blocking().unwrap();
    assert_eq!((queued.finish_reason, queued.completion_tokens), (FinishReason::Cancelled, 0));
    let (_, first) = first.collect_blocking().unwrap();
    assert_eq!(first.completion_tokens, 250);
}

#[test]
fn token_counts_are_exact() {
    let engine = engine(common::small_model(), 2048, Vec::new());
    let messages = vec![Message::system(SYSTEM), Message::user("Hello there")];
    let counted = engine.count_tokens(Prompt::Messages(messages.clone())).unwrap();
    let (_, stats) = run(&engine, greedy(messages, 12));
    assert_eq!(stats.prompt_tokens, counted);
    assert!(stats.completion_tokens <= 12);
    assert_eq!(stats.cached_tokens + stats.prefill_tokens, stats.prompt_tokens);
}

#[test]
fn stop_strings_end_the_reply_before_the_stop() {
    let engine = engine(common::small_model(), 2048, Vec::new());
    let messages = vec![Message::user("Describe a sunny beach in three sentences.")];
    let (free_text, _) = run(&engine, greedy(messages.clone(), 40));
    let chars: Vec<char> = free_text.chars().collect();
    assert!(chars.len() > 20, "the model should write: {free_text:?}");
    let stop: String = chars[10..14].iter().collect();
    let expected = &free_text[..free_text.find(&stop).unwrap()];
    let request = GenerationRequest { stop: vec![stop.clone()], ..greedy(messages, 40) };
    let (text, stats) = run(&engine, request);
    assert_eq!(text, expected, "the reply ends right before {stop:?}");
    assert_eq!(stats.finish_reason, FinishReason::Stop);
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let engine = engine(common::small_model(), 128, Vec::new());
    let request = greedy(vec![Message::user("word ".repeat(400))], 4);
    match engine.generate(request).unwrap().collect_blocking() {
        Err(LlmError::PromptTooLong { prompt_tokens, context_size: 128 }) => assert!(prompt_tokens > 128),
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
}

#[test]
fn bad_sampling_settings_are_refused() {
    let engine = engine(common::small_model(), 256, Vec::new());
    let request = GenerationRequest {
        sampling: SamplingParams { top_p: 0.0, ..SamplingParams::default() },
        ..GenerationRequest::chat(vec![Message::user("Hi")], 4)
    };
    let error = engine.generate(request).unwrap().collect_blocking().unwrap_err();
    assert!(error.to_string().contains("top_p"), "{error}");
}

/// Kira's persona asks for tags, and the default model, sampling, often
/// writes brackets that are none ("[Nearby friend]", "[Traç]"). Held to the
/// tags' grammar, the same draws leave no bracket once the tags are taken out.
#[test]
fn a_reply_held_to_the_tag_grammar_shows_no_false_tag() {
    use workly::chat::{Language, Persona};
    let engine = engine(common::default_model(), 1024, Vec::new());
    let kira = Persona::default();
    let mut false_tags = 0;
    for (language, message) in [
        (Language::English, "If you could be any animal, which one would you be?"),
        (Language::English, "I'm going to Lisbon next month!"),
        (Language::French, "J'ai trouvé un nouveau travail aujourd'hui !"),
    ] {
        let messages = vec![Message::system(kira.system_prompt_in(language)), Message::user(message)];
        for seed in 1..=4 {
            let sampling = SamplingParams { seed: Some(seed), ..SamplingParams::default() };
            let free = GenerationRequest { sampling, ..GenerationRequest::chat(messages.clone(), 48) };
            let held = GenerationRequest { grammar: Some(tags::GRAMMAR.to_owned()), ..free.clone() };
            false_tags += usize::from(tags::strip(&run(&engine, free).0).text.contains('['));
            let (held, stats) = run(&engine, held);
            let mut shown = tags::strip(&held).text;
            // A reply cut by the token limit may end inside a tag ("[sorr").
            if let Some((before, rest)) = shown.rsplit_once('[')
                && stats.finish_reason == FinishReason::Length
                && rest.chars().all(|letter| letter.is_ascii_lowercase())
            {
                shown = before.to_owned();
            }
            assert!(!shown.contains('[') && shown.chars().any(char::is_alphabetic), "{message} {seed}: {held:?}");
        }
    }
    assert!(false_tags > 0, "the model no longer writes false tags here: the test proves nothing");
}

/// Code is not the grammar's business: between backticks anything goes,
/// and a bracket right after a word or before a digit is no tag.
#[test]
fn the_tag_grammar_leaves_code_alone() {
    let engine = engine(common::default_model(), 1024, Vec::new());
    let messages = vec![
        Message::system("Repeat the user's message exactly, with nothing before or after it."),
        Message::user("In `items[key]` the first one is items[0] or items[index], and the pair is [1, 2]."),
    ];
    let (free, _) = run(&engine, greedy(messages.clone(), 40));
    let code = ["`items[key]`", "items[index]", "[1, 2]"];
    assert!(code.iter().all(|code| free.contains(code)), "the model no longer repeats it: {free:?}");
    let held = GenerationRequest { grammar: Some(tags::GRAMMAR.to_owned()), ..greedy(messages, 40) };
    assert_eq!(run(&engine, held).0, free);
}

/// A grammar llama.cpp cannot parse is refused before any work, in one line.
#[test]
fn a_grammar_that_does_not_parse_is_refused() {
    let engine = engine(common::small_model(), 256, Vec::new());
    let request = GenerationRequest {
        grammar: Some("root ::= (".to_owned()),
        ..GenerationRequest::chat(vec![Message::user("Hi")], 4)
    };
    let error = engine.generate(request).unwrap().collect_blocking().unwrap_err();
    assert!(error.to_string().contains("grammar"), "{error}");
}

#[test]
fn raw_text_prompts_and_seeded_sampling_are_reproducible() {
    let engine = engine(common::small_model(), 512, Vec::new());
    let request = GenerationRequest {
        prompt: Prompt::Text("The capital of France is".into()),
        sampling: SamplingParams { seed: Some(7), temperature: 0.9, ..SamplingParams::default() },
        max_tokens: 12,
        stop: Vec::new(),
        ignore_eos: false,
        grammar: None,
    };
    let (first, _) = run(&engine, request.clone());
    let (second, _) = run(&engine, request);
    assert_eq!(first, second);
}

#[test]
fn persona_state_saved_at_first_start_is_loaded_at_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        Engine::load(EngineConfig {
            warmup: vec![vec![Message::system(SYSTEM)]],
            prompt_cache: Some(dir.path().to_path_buf()),
            ..common::engine_config(&common::small_model(), 1024)
        })
        .unwrap()
    };
    let messages = vec![Message::system(SYSTEM), Message::user("What is your favourite season?")];
    let first = start();
    assert!(!first.info().warm_from_disk);
    let (first_text, first_stats) = run(&first, greedy(messages.clone(), 24));
    drop(first);
    let second = start();
    assert!(second.info().warm_from_disk, "{:?}", second.info());
    assert!(second.info().warm_tokens > 10);
    let (second_text, second_stats) = run(&second, greedy(messages, 24));
    assert_eq!(second_stats.cached_tokens, first_stats.cached_tokens);
    assert_eq!(first_text, second_text, "a restored state answers like a computed one");

    // A corrupt state file is discarded and recomputed, not trusted.
    drop(second);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = start();
    assert!(!third.info().warm_from_disk);
    let (third_text, _) = run(&third, greedy(vec![Message::system(SYSTEM), Message::user("Hi")], 8));
    assert!(!third_text.is_empty());
}

#[test]
fn the_next_turn_header_is_evaluated_before_the_person_answers() {
    let engine = engine(common::small_model(), 2048, vec![vec![Message::system(SYSTEM)]]);
    let mut messages = vec![Message::system(SYSTEM), Message::user(SCRIPT[0])];
    let (reply, _) = run(&engine, greedy(messages.clone(), 24));
    messages.push(Message::assistant(reply));
    let user = "Do you like rainy days?";
    messages.push(Message::user(user));
    let (_, stats) = run(&engine, greedy(messages, 8));
    // Left to evaluate: the message itself, the end of its turn and the
    // assistant's header (ChatML: `<|im_end|>\n<|im_start|>assistant\n`, 5
    // tokens) and the few tokens around the message boundary that tokenize
    // differently once the message is there; not the previous reply (24 tokens).
    let message_tokens = engine.count_tokens(Prompt::Text(user.to_owned())).unwrap();
    assert!(stats.prefill_tokens <= message_tokens + 8, "{stats:?} for a {message_tokens}-token message");
}

#[test]
fn an_aside_generation_leaves_the_conversation_cached_and_gives_way() {
    let engine = engine(common::small_model(), 2048, Vec::new());
    let mut messages = vec![Message::system(SYSTEM), Message::user(SCRIPT[0])];
    let (reply, _) = run(&engine, greedy(messages.clone(), 24));
    messages.push(Message::assistant(reply));
    // A recap written while the person reads: another prompt altogether.
    let notes = vec![
        Message::system("You keep short notes on a conversation."),
        Message::user("The person said their name is Sam and that they like tea. Write the notes."),
    ];
    let aside = engine.generate_aside(greedy(notes.clone(), 16), CancelToken::new()).unwrap();
    let (written, aside_stats) = aside.collect_blocking().unwrap();
    assert!(!written.trim().is_empty() && aside_stats.finish_reason != FinishReason::Cancelled, "{aside_stats:?}");
    // The next turn finds the conversation cached as if nothing had run.
    let user = "Do you like rainy days?";
    messages.push(Message::user(user));
    let (_, stats) = run(&engine, greedy(messages.clone(), 8));
    let message_tokens = engine.count_tokens(Prompt::Text(user.to_owned())).unwrap();
    assert!(stats.prefill_tokens <= message_tokens + 8, "{stats:?} for a {message_tokens}-token message");
    // An aside generation stops for the next request rather than delay it.
    let long = GenerationRequest { ignore_eos: true, ..greedy(notes, 400) };
    let aside = engine.generate_aside(long, CancelToken::new()).unwrap();
    let (_, next) = run(&engine, greedy(messages, 8));
    assert_ne!(next.finish_reason, FinishReason::Cancelled);
    let (_, aside_stats) = aside.collect_blocking().unwrap();
    assert_eq!(aside_stats.finish_reason, FinishReason::Cancelled, "{aside_stats:?}");
    assert!(aside_stats.completion_tokens < 400, "{aside_stats:?}");
}
