//! The Unity line reader: `LineSplitter::feed` and `parse_line`, as the
//! reference peer reads the bytes an avatar client sends.
//!
//! Checks that the lines seen do not depend on how the stream is cut into
//! reads (arbitrary cuts give the lines of the whole stream, with lines longer
//! than the cap skipped), that `parse_line` never panics, and that a command it
//! accepts is encoded by `Command::encode_unity` into a line that parses back
//! to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use workly::avatar::peer::{LineSplitter, parse_line};

fn lines(max_line: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut splitter = LineSplitter::new(max_line);
    for chunk in chunks {
        splitter.feed(chunk, |line| lines.push(line.to_vec()));
    }
    lines
}

fuzz_target!(|input: (u8, Vec<u8>, &[u8])| {
    let (max_line, cuts, stream) = input;
    let max_line = usize::from(max_line);
    let mut chunks = Vec::new();
    let mut rest = stream;
    for cut in cuts {
        let (chunk, tail) = rest.split_at(usize::from(cut).min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks.push(rest);

    // The model: every complete line up to the cap, the unfinished tail held.
    let complete = stream.split(|byte| *byte == b'\n').take(stream.iter().filter(|b| **b == b'\n').count());
    let expected: Vec<Vec<u8>> = complete.filter(|line| line.len() <= max_line).map(<[u8]>::to_vec).collect();
    assert_eq!(lines(max_line, &[stream]), expected, "one read");
    let cut = lines(max_line, &chunks);
    assert_eq!(cut, expected, "cut into {} reads", chunks.len());

    for line in &cut {
        let Ok(command) = parse_line(line) else { continue };
        let mut encoded = Vec::new();
        assert!(command.encode_unity(&mut encoded), "{command:?} has no Unity form");
        assert_eq!(encoded.pop(), Some(b'\n'));
        assert_eq!(parse_line(&encoded), Ok(command));
    }
});
