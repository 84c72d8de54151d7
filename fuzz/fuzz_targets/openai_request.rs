//! The OpenAI request decoder (`openai::decode`) on arbitrary request bodies.
//!
//! Checks that it never panics, that every refusal is a 400 with a one-line
//! message, and that an accepted request is one the engine can run: at least
//! one message, 1 to context-size tokens, valid sampling settings and at most
//! 16 non-empty stop strings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use workly::llm::Prompt;
use workly::server::openai::decode;

const CONTEXT_SIZE: u32 = 4096;

fuzz_target!(|body: &[u8]| {
    match decode(body, CONTEXT_SIZE) {
        Ok(decoded) => {
            let request = decoded.request;
            let Prompt::Messages(messages) = &request.prompt else { panic!("not a chat: {request:?}") };
            assert!(!messages.is_empty());
            assert!((1..=CONTEXT_SIZE).contains(&request.max_tokens), "{}", request.max_tokens);
            assert!(request.sampling.validate().is_ok());
            assert!(request.stop.len() <= 16 && request.stop.iter().all(|stop| !stop.is_empty()));
            assert!(!request.ignore_eos);
        }
        Err(error) => {
            assert_eq!(error.status, 400);
            assert!(!error.message.contains('\n'), "{:?}", error.message);
        }
    }
});
