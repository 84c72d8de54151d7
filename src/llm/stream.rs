//! From token bytes to the text a person sees, chunk by chunk.
//!
//! Two things make this harder than concatenating token pieces: a token may end
//! in the middle of a UTF-8 character (emoji, accented letters split by the
//! tokenizer), and a stop string may arrive split over several tokens, so the
//! text that could be its beginning must be held back until it is known not to
//! be one. [`TextStream`] does both, so nothing partial or past a stop string is
//! ever shown.

/// Decodes a byte stream into UTF-8 text, holding back an incomplete trailing
/// character until its remaining bytes arrive.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Appends `bytes` and returns all text that is now complete. Invalid
    /// sequences become U+FFFD rather than an error: a model can emit them.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(error) => {
                    let valid = error.valid_up_to();
                    // Safe slice: `valid_up_to` marks the end of valid UTF-8.
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match error.error_len() {
                        // Incomplete character at the end: keep it for the next push.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Whatever is still held back, as lossy text (used when generation ends).
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// Why a text stream stopped before the token budget ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopHit {
    /// The stop string that matched.
    pub stop: String,
}

/// Turns token bytes into displayable chunks, cut at the first stop string.
#[derive(Debug)]
pub struct TextStream {
    decoder: Utf8Decoder,
    stops: Vec<String>,
    /// Decoded text not yet released because it may start a stop string.
    held: String,
    stopped: Option<StopHit>,
}

impl TextStream {
    /// A stream that ends at any of `stops` (empty strings are ignored).
    pub fn new(stops: &[String]) -> Self {
        Self {
            decoder: Utf8Decoder::default(),
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
            stopped: None,
        }
    }

    /// Feeds one token's bytes; returns the text that may be shown now (possibly
    /// empty). After a stop string matched, returns nothing more.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        if self.stopped.is_some() {
            return String::new();
        }
        let text = self.decoder.push(bytes);
        self.held.push_str(&text);
        if let Some((index, stop)) = self.first_stop() {
            let released = self.held[..index].to_owned();
            self.stopped = Some(StopHit { stop });
            self.held.clear();
            return released;
        }
        let keep = self.longest_stop_prefix_suffix();
        let cut = self.held.len() - keep;
        let released = self.held[..cut].to_owned();
        self.held.drain(..cut);
        released
    }

    /// The stop string that ended the stream, if any.
    pub fn stopped(&self) -> Option<&StopHit> {
        self.stopped.as_ref()
    }

    /// Releases what was held back (generation ended without a stop string).
    pub fn finish(&mut self) -> String {
        if self.stopped.is_some() {
            return String::new();
        }
        let mut rest = std::mem::take(&mut self.held);
        rest.push_str(&self.decoder.finish());
        rest
    }

    /// The earliest match of any stop string in the held text.
    fn first_stop(&self) -> Option<(usize, String)> {
        self.stops
            .iter()
            .filter_map(|stop| self.held.find(stop.as_str()).map(|index| (index, stop.clone())))
            .min_by_key(|(index, _)| *index)
    }

    /// Length in bytes of the longest end of the held text that is the start of
    /// some stop string: that much must wait for the next token.
    fn longest_stop_prefix_suffix(&self) -> usize {
        let mut longest = 0;
        for stop in &self.stops {
            for (boundary, _) in stop.char_indices().skip(1) {
                if boundary > longest && self.held.ends_with(&stop[..boundary]) {
                    longest = boundary;
                }
            }
        }
        longest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn split_multibyte_characters_wait_for_their_end() {
        let mut decoder = Utf8Decoder::default();
        let smile = "é😊".as_bytes();
        assert_eq!(decoder.push(&smile[..1]), "");
        assert_eq!(decoder.push(&smile[1..4]), "é");
        assert_eq!(decoder.push(&smile[4..]), "😊");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut decoder = Utf8Decoder::default();
        assert_eq!(decoder.push(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn stop_string_split_across_tokens_is_never_shown() {
        let mut stream = TextStream::new(&["</end>".to_owned()]);
        let mut shown = String::new();
        for piece in ["Hello", " wor", "ld</", "en", "d> trailing"] {
            shown.push_str(&stream.push(piece.as_bytes()));
        }
        shown.push_str(&stream.finish());
        assert_eq!(shown, "Hello world");
        assert_eq!(stream.stopped(), Some(&StopHit { stop: "</end>".to_owned() }));
    }

    #[test]
    fn held_text_is_released_when_it_turns_out_not_to_be_a_stop() {
        let mut stream = TextStream::new(&["User:".to_owned()]);
        assert_eq!(stream.push(b"Hi Us"), "Hi ");
        assert_eq!(stream.push(b"ually"), "Usually");
        assert_eq!(stream.finish(), "");
        assert!(stream.stopped().is_none());
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut stream = TextStream::new(&["b".to_owned(), "a".to_owned()]);
        assert_eq!(stream.push(b"xxaxb"), "xx");
        assert_eq!(stream.stopped().unwrap().stop, "a");
    }

    proptest! {
        /// However the text is split into tokens, what is shown is exactly the
        /// text before the first stop string (or all of it).
        #[test]
        fn output_does_not_depend_on_how_text_is_split(
            text in "[a-cé😊<>/]{0,40}",
            cuts in proptest::collection::vec(0usize..60, 0..8),
        ) {
            let stops = vec!["</b>".to_owned(), "cc".to_owned()];
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort_unstable();
            let mut stream = TextStream::new(&stops);
            let mut shown = String::new();
            for pair in points.windows(2) {
                shown.push_str(&stream.push(&bytes[pair[0]..pair[1]]));
            }
            shown.push_str(&stream.finish());
            let expected_end = stops.iter().filter_map(|s| text.find(s.as_str())).min().unwrap_or(text.len());
            prop_assert_eq!(shown, &text[..expected_end]);
        }
    }
}
