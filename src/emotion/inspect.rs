//! `workly emotion`: what Workly reads in a text, with the evidence, so that
//! a person can see why Kira's face did what it did.
//!
//! Text without tags is read by the lexicon alone. Text with valid tags is read
//! the way a reply is, by the [`Analyzer`]: tags win over words (except a
//! `[neutral]` tag over clearly emotional words), and the tags are listed.
//! With no text argument, every line of stdin is one text and gets one line of
//! output. No model and no config file are needed.

use super::analyzer::Analyzer;
use super::lexicon::{self, Evidence};
use super::{Emotion, tags};
use crate::cli::{EmotionArgs, write_stdout};
use anyhow::Context as _;
use serde::Serialize;
use std::io::BufRead;

/// What Workly reads in one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextReading {
    /// The emotion.
    pub emotion: Emotion,
    /// How strongly, 0..=1.
    pub intensity: f32,
    /// How sure, 0..=1.
    pub confidence: f32,
    /// The lexicon's cues in the text (tags removed).
    pub evidence: Vec<Evidence>,
    /// The valid tags in the text, in order (empty when it has none).
    pub tags: Vec<Emotion>,
}

/// Reads `text`.
pub fn read(text: &str) -> TextReading {
    let stripped = tags::strip(text);
    let analysis = lexicon::analyze(&stripped.text);
    if stripped.tags.is_empty() {
        return TextReading {
            emotion: analysis.emotion,
            intensity: analysis.intensity,
            confidence: analysis.confidence,
            evidence: analysis.evidence,
            tags: Vec::new(),
        };
    }
    let mut analyzer = Analyzer::new();
    analyzer.push(text);
    let (_, turn) = analyzer.finish();
    TextReading {
        emotion: turn.emotion,
        intensity: turn.intensity,
        confidence: turn.confidence,
        evidence: analysis.evidence,
        tags: stripped.tags,
    }
}

/// Standard input held something other than UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stdin line {line} is not UTF-8 text")]
pub struct NotUtf8 {
    /// 1-based line number.
    pub line: usize,
}

/// Runs `workly emotion`.
pub fn run(args: &EmotionArgs) -> anyhow::Result<()> {
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
    fn untagged_text_is_the_lexicon_reading() {
        let reading = read("I'm so happy!");
        let analysis = lexicon::analyze("I'm so happy!");
        assert_eq!(
            (reading.emotion, reading.intensity, reading.confidence, reading.evidence),
            (analysis.emotion, analysis.intensity, analysis.confidence, analysis.evidence)
        );
        assert!(reading.tags.is_empty());
    }

    #[test]
    fn tags_win_over_words_and_are_listed() {
        let reading = read("[angry] I'm so happy for you.");
        assert_eq!(reading.emotion, Emotion::Angry);
        assert_eq!(reading.tags, [Emotion::Angry]);
        // The words' evidence is still shown, from the text without its tag.
        assert_eq!(reading.evidence[0].cue, "happy");
    }

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
