//! The reference peer: a receiver that reads command lines exactly as the
//! deployed Unity bridge does (`specs/unity-bridge.md`), quirks included.
//!
//! It dispatches on quoted command names found anywhere in the line, reads
//! string fields up to the next quote without unescaping, and reads numbers up
//! to `,` `}` or a newline with invariant-culture rules (so `NaN` fails). Tests
//! and `workly-bench ipc` run it in-process; `workly avatar peer` runs it as a
//! program. It owns the parsing and the accept loop, not what is done with an
//! applied command (the caller's sink decides: count it, print it).

use super::command::{Command, Expression, HeadMovement, ModelPath, TransitionSpeed, Unit};
use super::state::AvatarState;
use std::future::Future;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Longest line the peer buffers; the rest of a longer line is skipped up to
/// its newline, so a sender without newlines cannot grow the peer's memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The line Unity sends on connect and after each command (`JsonUtility` on an
/// anonymous object serialises to an empty object).
pub const UNITY_ACK: &[u8] = b"{}\n";

/// Unity's dispatch order: the first of these found quoted in the line wins.
const DISPATCH: [&[u8]; 7] = [
    b"load_model",
    b"unload_model",
    b"set_expression",
    b"reset_expressions",
    b"set_transition_speed",
    b"set_auto_blink",
    b"set_auto_head_movement",
];

/// Why a line was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No known command name in the line (Unity drops it silently).
    #[error("no known command")]
    UnknownCommand,
    /// A field is missing or does not parse.
    #[error("field {0:?} is missing or malformed")]
    BadField(&'static str),
    /// The expression name is not one the controller knows.
    #[error("unknown expression")]
    UnknownExpression,
}

/// Parses one line (without its newline) as the Unity bridge would.
pub fn parse_line(line: &[u8]) -> Result<Command, Refusal> {
    Ok(match dispatch(line).ok_or(Refusal::UnknownCommand)? {
        0 => {
            let path = string_field(line, "path")?;
            let path = std::str::from_utf8(path).map_err(|_| Refusal::BadField("path"))?;
            Command::LoadModel(ModelPath::new(path).map_err(|_| Refusal::BadField("path"))?)
        }
        1 => Command::UnloadModel,
        2 => {
            let name = string_field(line, "name")?;
            let expression = std::str::from_utf8(name)
                .ok()
                .and_then(Expression::from_unity_name)
                .ok_or(Refusal::UnknownExpression)?;
            let value = Unit::new(number_field(line, "value")?).map_err(|_| Refusal::BadField("value"))?;
            Command::set_expression(expression, value)
        }
        3 => Command::ResetExpressions,
        4 => Command::SetTransitionSpeed(
            TransitionSpeed::new(number_field(line, "speed")?).map_err(|_| Refusal::BadField("speed"))?,
        ),
        5 => Command::SetAutoBlink(bool_field(line, "enabled")?),
        _ => Command::SetAutoHeadMovement(
            HeadMovement::new(
                bool_field(line, "enabled")?,
                number_field(line, "min_interval")?,
                number_field(line, "max_interval")?,
                number_field(line, "max_angle")?,
            )
            .map_err(|_| Refusal::BadField("max_interval"))?,
        ),
    })
}

/// Whether `"word"` starts at `quote` (a position holding `"`).
fn quoted_at(line: &[u8], quote: usize, word: &[u8]) -> bool {
    let rest = &line[quote + 1..];
    // The first byte rules out almost every quote cheaply.
    rest.len() > word.len() && rest[0] == word[0] && rest.starts_with(word) && rest[word.len()] == b'"'
}

/// Positions of the quotes in `line`. A plain scan: lines are short, and
/// starting a vectorised search at every quote costs more than it saves.
fn quotes(line: &[u8]) -> impl Iterator<Item = usize> + '_ {
    line.iter().enumerate().filter(|(_, byte)| **byte == b'"').map(|(at, _)| at)
}

/// Which command Unity would run: the earliest in [`DISPATCH`] found quoted
/// anywhere in the line. Every quoted word starts at a quote, so one pass
/// over the quotes replaces seven substring searches.
fn dispatch(line: &[u8]) -> Option<usize> {
    let mut found: Option<usize> = None;
    for quote in quotes(line) {
        let earlier = found.unwrap_or(DISPATCH.len());
        if let Some(index) = DISPATCH[..earlier].iter().position(|name| quoted_at(line, quote, name)) {
            found = Some(index);
        }
    }
    found
}

/// Where the value of `"key"` starts: just after its first occurrence.
fn after_key(line: &[u8], key: &'static str) -> Result<usize, Refusal> {
    quotes(line)
        .find(|&quote| quoted_at(line, quote, key.as_bytes()))
        .map(|quote| quote + key.len() + 2)
        .ok_or(Refusal::BadField(key))
}

/// Unity's string reader: find `"key"`, then the next `"`, then the next `"`;
/// the value is what lies between (escapes are not understood).
fn string_field<'a>(line: &'a [u8], key: &'static str) -> Result<&'a [u8], Refusal> {
    let rest = &line[after_key(line, key)?..];
    let open = memchr::memchr(b'"', rest).ok_or(Refusal::BadField(key))? + 1;
    let close = memchr::memchr(b'"', &rest[open..]).ok_or(Refusal::BadField(key))?;
    Ok(&rest[open..open + close])
}

/// Unity's number reader: find `"key"`, then `:`, skip spaces and tabs, take
/// the text up to `,` `}` or a newline.
fn raw_field<'a>(line: &'a [u8], key: &'static str) -> Result<&'a [u8], Refusal> {
    let rest = &line[after_key(line, key)?..];
    let colon = memchr::memchr(b':', rest).ok_or(Refusal::BadField(key))?;
    let rest = &rest[colon + 1..];
    let start = rest.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(rest.len());
    let rest = &rest[start..];
    let end = memchr::memchr3(b',', b'}', b'\n', rest).unwrap_or(rest.len());
    Ok(&rest[..end])
}

/// `float.Parse` with the invariant culture: digits, sign, `.`, exponent and
/// surrounding white space; no `NaN` or `Infinity` words.
fn number_field(line: &[u8], key: &'static str) -> Result<f32, Refusal> {
    let text = raw_field(line, key)?.trim_ascii();
    if text.is_empty() || !text.iter().all(|b| b.is_ascii_digit() || b"+-.eE".contains(b)) {
        return Err(Refusal::BadField(key));
    }
    std::str::from_utf8(text).ok().and_then(|text| text.parse::<f32>().ok()).ok_or(Refusal::BadField(key))
}

/// `bool.Parse`: `true` or `false` in any case, surrounding white space allowed.
fn bool_field(line: &[u8], key: &'static str) -> Result<bool, Refusal> {
    let text = raw_field(line, key)?.trim_ascii();
    if text.eq_ignore_ascii_case(b"true") {
        Ok(true)
    } else if text.eq_ignore_ascii_case(b"false") {
        Ok(false)
    } else {
        Err(Refusal::BadField(key))
    }
}

/// Splits a byte stream into lines, as Unity's reader does, but with a cap: a
/// line longer than `max_line` is skipped up to its newline.
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    max_line: usize,
    skipping: bool,
}

impl LineSplitter {
    /// A splitter that buffers lines up to `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self { partial: Vec::new(), max_line, skipping: false }
    }

    /// Feeds the next bytes read; calls `on_line` with each complete line
    /// (without its newline). Lines wholly inside `chunk` are not copied.
    pub fn feed(&mut self, mut chunk: &[u8], mut on_line: impl FnMut(&[u8])) {
        while let Some(newline) = memchr::memchr(b'\n', chunk) {
            let line = &chunk[..newline];
            chunk = &chunk[newline + 1..];
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if self.partial.is_empty() {
                if line.len() <= self.max_line {
                    on_line(line);
                }
            } else if self.partial.len() + line.len() <= self.max_line {
                self.partial.extend_from_slice(line);
                on_line(&self.partial);
                self.partial.clear();
            } else {
                self.partial.clear();
            }
        }
        if self.skipping {
            return;
        }
        if self.partial.len() + chunk.len() > self.max_line {
            self.partial = Vec::new();
            self.skipping = true;
        } else {
            self.partial.extend_from_slice(chunk);
        }
    }
}

/// What the peer saw on one connection or in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounts {
    /// Lines parsed and applied.
    pub applied: u64,
    /// Lines refused (unknown command, bad field).
    pub refused: u64,
}

/// Serves one client at a time on `listener`, like the Unity bridge, until
/// `shutdown` completes: sends Unity's ack line on connect, parses every line,
/// applies it to an [`AvatarState`] that starts fresh for each client (a
/// restarted Unity app knows nothing), and hands each applied command and the
/// resulting state to `sink`.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    mut sink: impl FnMut(&Command, &AvatarState),
) -> PeerCounts {
    let mut counts = PeerCounts::default();
    let serving = async {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                // Out of descriptors, say: wait rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            // The ack is politeness: a client that does not read it is fine.
            let _ = stream.set_nodelay(true);
            let _ = stream.write_all(UNITY_ACK).await;
            let mut state = AvatarState::default();
            let mut splitter = LineSplitter::new(MAX_LINE_BYTES);
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(read @ 1..) = stream.read(&mut buffer).await {
                splitter.feed(&buffer[..read], |line| match parse_line(line) {
                    Ok(command) => {
                        state.apply(&command);
                        counts.applied += 1;
                        sink(&command, &state);
                    }
                    Err(_) => counts.refused += 1,
                });
            }
        }
    };
    tokio::select! {
        () = serving => unreachable!("the accept loop only ends by shutdown"),
        () = shutdown => {}
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_unity() {
        let line = br#"{"command":"set_expression","data":{"name":"joy","value":0.8}}"#;
        assert_eq!(parse_line(line), Ok(Command::set_expression(Expression::Joy, Unit::new(0.8).unwrap())));
        // Spaces and tabs after the colon, an exponent, an upper-case bool.
        let line = b"{\"command\":\"set_expression\",\"data\":{\"name\":\"fun\",\"value\": \t1e-1}}";
        assert_eq!(parse_line(line), Ok(Command::set_expression(Expression::Fun, Unit::new(0.1).unwrap())));
        assert_eq!(
            parse_line(br#"{"command":"set_auto_blink","data":{"enabled":True}}"#),
            Ok(Command::SetAutoBlink(true))
        );
        assert_eq!(parse_line(br#"{"command":"dance"}"#), Err(Refusal::UnknownCommand));
        assert_eq!(
            parse_line(br#"{"command":"set_expression","data":{"name":"joy","value":NaN}}"#),
            Err(Refusal::BadField("value"))
        );
    }

    #[test]
    fn a_quoted_command_name_in_a_value_misroutes_the_line() {
        // Valid JSON, but a string value spells a command name: Unity would
        // try to load a model. Why the encoder refuses quotes in strings.
        let line = br#"{"command":"set_expression","data":{"name":"joy","value":1},"note":"load_model"}"#;
        assert_eq!(parse_line(line), Err(Refusal::BadField("path")));
    }

    #[test]
    fn splitter_caps_long_lines_and_joins_split_ones() {
        let mut lines = Vec::new();
        let mut splitter = LineSplitter::new(8);
        splitter.feed(b"ab", |l| lines.push(l.to_vec()));
        splitter.feed(b"c\n0123456789", |l| lines.push(l.to_vec()));
        splitter.feed(b"0123456789\nok\n", |l| lines.push(l.to_vec()));
        assert_eq!(lines, [b"abc".to_vec(), b"ok".to_vec()]);
        assert!(splitter.partial.capacity() <= 16);
    }

    #[test]
    fn a_long_line_within_one_read_is_skipped_too() {
        // Found by the unity_line fuzz target: the cap held only for lines
        // split across reads, so the lines seen depended on the read sizes.
        let stream = b"{\"command\":\"set_auto_blink\",\"data\":{\"enabled\":true}}\nok\n";
        let mut whole = Vec::new();
        LineSplitter::new(8).feed(stream, |l| whole.push(l.to_vec()));
        let mut split = Vec::new();
        let mut splitter = LineSplitter::new(8);
        stream.chunks(5).for_each(|chunk| splitter.feed(chunk, |l| split.push(l.to_vec())));
        assert_eq!(whole, [b"ok".to_vec()]);
        assert_eq!(split, whole);
    }
}
