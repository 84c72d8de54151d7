//! `workly emotion`: what Workly reads in a text, and why.
//!
//! With a text argument, one reading in full; with none, every line of stdin
//! is one text and gets one line of output. No model and no config file are
//! needed.

use super::{EmotionArgs, write_stdout};
use crate::emotion::Emotion;
use crate::emotion::inspect::{TextReading, read};
use crate::emotion::lexicon::Evidence;
use crate::error::Context as _;
use std::io::BufRead;

/// Standard input held something other than UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stdin line {line} is not UTF-8 text")]
pub struct NotUtf8 {
    /// 1-based line number.
    pub line: usize,
}

crate::classed!(BadInput: NotUtf8);

/// Runs `workly emotion`.
pub fn run(args: &EmotionArgs) -> crate::error::Result<()> {
    if let Some(text) = &args.text {
        let reading = read(text);
        let output = if args.json { serde_json::to_string(&reading)? + "\n" } else { render_block(&reading) };
        write_stdout(&output)?;
        return Ok(());
    }
    for (index, line) in std::io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                return Err(NotUtf8 { line: index + 1 }.into());
            }
            Err(error) => return Err(error).context("cannot read stdin"),
        };
        let reading = read(&line);
        let output = if args.json { serde_json::to_string(&reading)? } else { render_line(&reading) };
        if !write_stdout(&(output + "\n"))? {
            break;
        }
    }
    Ok(())
}

fn describe(evidence: &Evidence) -> String {
    let mut text = format!("{} → {} {:+.2}", evidence.cue, evidence.emotion, evidence.weight);
    if evidence.negated {
        text.push_str(" (negated)");
    }
    if evidence.intensified {
        text.push_str(" (intensified)");
    }
    text
}

fn tag_list(tags: &[Emotion]) -> String {
    tags.iter().map(|tag| format!("[{tag}]")).collect::<Vec<_>>().join(" ")
}

/// Several lines: one text given as an argument.
fn render_block(reading: &TextReading) -> String {
    let mut text = format!(
        "emotion     {}\nintensity   {:.2}\nconfidence  {:.2}\n",
        reading.emotion, reading.intensity, reading.confidence
    );
    if !reading.tags.is_empty() {
        text.push_str(&format!("tags        {}\n", tag_list(&reading.tags)));
    }
    if reading.evidence.is_empty() {
        text.push_str("evidence    none\n");
    }
    for (index, evidence) in reading.evidence.iter().enumerate() {
        let label = if index == 0 { "evidence" } else { "" };
        text.push_str(&format!("{label:<12}{}\n", describe(evidence)));
    }
    text
}

/// One line per text read from stdin.
fn render_line(reading: &TextReading) -> String {
    let mut text = format!("{} {:.2} (confidence {:.2})", reading.emotion, reading.intensity, reading.confidence);
    if !reading.tags.is_empty() {
        text.push_str(&format!(" tags {}", tag_list(&reading.tags)));
    }
    if !reading.evidence.is_empty() {
        let cues: Vec<String> = reading.evidence.iter().map(describe).collect();
        text.push_str(&format!(": {}", cues.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renderings_show_every_figure() {
        let reading = read("[joy] Not angry, just happy!");
        let block = render_block(&reading);
        assert!(block.starts_with("emotion     joy\n"), "{block}");
        assert!(block.contains("tags        [joy]"), "{block}");
        assert!(block.contains("angry → angry +0.00 (negated)"), "{block}");
        let line = render_line(&read("plain words"));
        assert_eq!(line, "neutral 0.00 (confidence 0.50)");
    }
}
