//! The emotion tag stream parser (`TagParser`) on arbitrary text cut into
//! arbitrary pieces, as a model's tokens arrive.
//!
//! Checks that the events (shown text and tags, adjacent texts joined) do not
//! depend on where the text was cut, that `strip` agrees with them, that no
//! text event is empty and that the shown text never contains a valid tag.
#![no_main]

use libfuzzer_sys::fuzz_target;
use workly::emotion::Emotion;
use workly::emotion::tags::{Stripped, TagEvent, TagParser, strip};

/// Streams `pieces`, checking each event, and joins adjacent texts.
fn stream(pieces: &[&str]) -> Vec<TagEvent> {
    let mut parser = TagParser::new();
    let mut all = Vec::new();
    for piece in pieces {
        all.extend(parser.push(piece));
    }
    all.extend(parser.finish());
    let mut joined: Vec<TagEvent> = Vec::new();
    for event in all {
        match (joined.last_mut(), event) {
            (_, TagEvent::Text(text)) if text.is_empty() => panic!("an empty text event"),
            (Some(TagEvent::Text(last)), TagEvent::Text(text)) => last.push_str(&text),
            (_, event) => joined.push(event),
        }
    }
    joined
}

fuzz_target!(|input: (Vec<u8>, &str)| {
    let (cuts, text) = input;
    let mut pieces = Vec::new();
    let mut rest = text;
    for cut in cuts {
        let mut at = usize::from(cut).min(rest.len());
        while !rest.is_char_boundary(at) {
            at -= 1;
        }
        let (piece, tail) = rest.split_at(at);
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);

    let whole = stream(&[text]);
    assert_eq!(stream(&pieces), whole, "cut into {pieces:?}");
    let stripped = strip(text);
    assert_eq!(stripped, whole.into_iter().collect::<Stripped>());
    for emotion in Emotion::ALL {
        let tag = format!("[{}]", emotion.as_str());
        assert!(!stripped.text.contains(&tag), "{text:?} shows {:?}", stripped.text);
    }
});
