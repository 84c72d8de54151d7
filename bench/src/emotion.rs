//! `workly-bench emotion`: how well Kira's emotions are read.
//!
//! Two figures. First, the lexicon analyzer on the labelled set
//! (`data/emotion/labelled.tsv`, English and French sentences written for it,
//! embedded in the binary): accuracy, macro-F1, per-class precision, recall
//! and F1, the confusion matrix and every mistake. Second, unless `--no-model`,
//! the share of the default model's replies that carried a valid emotion tag
//! over the scripted conversation of `bench llm`, played with the default
//! persona and greedy sampling, so both figures are reproducible.

use crate::cli::BenchEmotionArgs;
use crate::ratio;
use serde::Serialize;
use std::collections::BTreeMap;
use workly::chat::turn::{Chat, TurnError};
use workly::chat::{Conversation, Persona};
use workly::cli::{Context, EngineSettings};
use workly::emotion::{Emotion, lexicon, tags};
use workly::llm::Engine;

/// The labelled set: a header line, then `label<TAB>lang<TAB>text` lines.
const LABELLED_SET: &str = include_str!("../../data/emotion/labelled.tsv");

/// One sentence of the labelled set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    /// The emotion a reader sees in it.
    pub emotion: Emotion,
    /// `en` or `fr`.
    pub language: &'static str,
    /// The sentence.
    pub text: &'static str,
}

/// A line of the labelled set is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("labelled set, line {line}: {reason}")]
pub struct LabelledSetError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

// The labelled set is built in: a bad line is a bug, not the person's input.
workly::classed!(Failure: LabelledSetError);

/// The embedded labelled set.
pub fn labelled_set() -> Result<Vec<Labelled>, LabelledSetError> {
    parse_labelled(LABELLED_SET)
}

fn parse_labelled(tsv: &'static str) -> Result<Vec<Labelled>, LabelledSetError> {
    tsv.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let error = |reason: String| LabelledSetError { line: index + 1, reason };
            let mut columns = line.split('\t');
            let (Some(label), Some(language), Some(text), None) =
                (columns.next(), columns.next(), columns.next(), columns.next())
            else {
                return Err(error("expected label, language and text separated by tabs".to_owned()));
            };
            let emotion = label.parse::<Emotion>().map_err(|unknown| error(unknown.to_string()))?;
            if !matches!(language, "en" | "fr") {
                return Err(error(format!("unknown language {language:?} (expected en or fr)")));
            }
            Ok(Labelled { emotion, language, text })
        })
        .collect()
}

/// Precision, recall and F1 of one emotion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    /// The emotion.
    pub emotion: Emotion,
    /// Sentences labelled with it.
    pub support: usize,
    /// Sentences the analyzer gave it.
    pub predicted: usize,
    /// Of those predicted, the share that were right.
    pub precision: f64,
    /// Of those labelled, the share found.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
}

/// A sentence the analyzer got wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mistake {
    /// The label.
    pub expected: Emotion,
    /// The analyzer's answer.
    pub predicted: Emotion,
    /// The sentence.
    pub text: String,
}

/// The lexicon analyzer against the labelled set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LexiconScores {
    /// Sentences in the set.
    pub sentences: usize,
    /// Share of sentences given their label.
    pub accuracy: f64,
    /// Accuracy on each language's sentences.
    pub accuracy_by_language: BTreeMap<String, f64>,
    /// Mean of the per-class F1 scores (every emotion counts the same).
    pub macro_f1: f64,
    /// Per-class scores, in [`Emotion::ALL`] order.
    pub classes: Vec<ClassScore>,
    /// `confusion[expected][predicted]`: how many sentences.
    pub confusion: BTreeMap<Emotion, BTreeMap<Emotion, usize>>,
    /// Every wrong answer, in set order.
    pub mistakes: Vec<Mistake>,
}

/// The model's use of tags over the scripted conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TagShare {
    /// The model.
    pub model: String,
    /// Replies generated.
    pub replies: usize,
    /// Of those, replies with at least one valid tag.
    pub replies_with_tag: usize,
    /// `replies_with_tag / replies`.
    pub share: f64,
    /// Valid tags written, by emotion.
    pub tags: BTreeMap<Emotion, usize>,
    /// Each reply as the model wrote it, tags included.
    pub transcript: Vec<String>,
}

/// The report of `workly-bench emotion`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmotionReport {
    /// The lexicon analyzer on the labelled set.
    pub lexicon: LexiconScores,
    /// The model's tags; absent with `--no-model`.
    pub tags: Option<TagShare>,
}

/// Runs `workly-bench emotion`.
pub fn run(context: &Context, args: &BenchEmotionArgs) -> workly::error::Result<()> {
    let engine = (!args.no_model).then_some(&args.engine);
    workly::cli::bench::print(&report(context, engine, args.turns)?, args.json, render)
}

/// Scores the lexicon, and the model's tags over `turns` turns when an
/// engine is given.
pub fn report(context: &Context, engine: Option<&EngineSettings>, turns: u32) -> workly::error::Result<EmotionReport> {
    let lexicon = score_lexicon(&labelled_set()?);
    let tags = match engine {
        None => None,
        Some(engine) => {
            let persona = Persona::default();
            let prepared = engine.prepare(context, Conversation::new(persona.clone()).openings())?;
            let engine = Engine::load(prepared.engine)?;
            Some(measure_tag_share(&engine, persona, turns as usize)?)
        }
    };
    Ok(EmotionReport { lexicon, tags })
}

/// Scores [`lexicon::analyze`] on `set`.
pub fn score_lexicon(set: &[Labelled]) -> LexiconScores {
    let answers: Vec<(&Labelled, Emotion)> =
        set.iter().map(|labelled| (labelled, lexicon::analyze(labelled.text).emotion)).collect();
    let mut confusion: BTreeMap<Emotion, BTreeMap<Emotion, usize>> = Emotion::ALL
        .iter()
        .map(|expected| (*expected, Emotion::ALL.iter().map(|predicted| (*predicted, 0)).collect()))
        .collect();
    let mut by_language: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (labelled, predicted) in &answers {
        *confusion.entry(labelled.emotion).or_default().entry(*predicted).or_default() += 1;
        let (right, total) = by_language.entry(labelled.language.to_owned()).or_default();
        *right += usize::from(labelled.emotion == *predicted);
        *total += 1;
    }
    let classes: Vec<ClassScore> = Emotion::ALL
        .iter()
        .map(|&emotion| {
            let right = confusion[&emotion][&emotion];
            let support: usize = confusion[&emotion].values().sum();
            let predicted: usize = confusion.values().map(|row| row[&emotion]).sum();
            let precision = ratio(right, predicted);
            let recall = ratio(right, support);
            let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
            ClassScore { emotion, support, predicted, precision, recall, f1 }
        })
        .collect();
    let right = answers.iter().filter(|(labelled, predicted)| labelled.emotion == *predicted).count();
    LexiconScores {
        sentences: set.len(),
        accuracy: ratio(right, set.len()),
        accuracy_by_language: by_language
            .into_iter()
            .map(|(language, (right, total))| (language, ratio(right, total)))
            .collect(),
        macro_f1: classes.iter().map(|class| class.f1).sum::<f64>() / classes.len() as f64,
        classes,
        confusion,
        mistakes: answers
            .iter()
            .filter(|(labelled, predicted)| labelled.emotion != *predicted)
            .map(|(labelled, predicted)| Mistake {
                expected: labelled.emotion,
                predicted: *predicted,
                text: labelled.text.to_owned(),
            })
            .collect(),
    }
}

/// Plays `turns` turns of [`workly::bench::llm::SCRIPT`] (from the start again if
/// longer) with `persona`, and counts the replies that carry a valid tag.
pub fn measure_tag_share(engine: &Engine, persona: Persona, turns: usize) -> Result<TagShare, TurnError> {
    let chat = std::sync::Mutex::new(Chat::new(Conversation::new(persona), None));
    let mut tags: BTreeMap<Emotion, usize> = Emotion::ALL.iter().map(|emotion| (*emotion, 0)).collect();
    let mut transcript = Vec::with_capacity(turns);
    let mut replies_with_tag = 0;
    for user in workly::bench::llm::SCRIPT.iter().cycle().take(turns) {
        let reply = workly::bench::llm::chat_turn(engine, &chat, user, workly::bench::llm::REPLY_TOKENS)?.text;
        let found = tags::strip(&reply).tags;
        replies_with_tag += usize::from(!found.is_empty());
        for emotion in found {
            *tags.entry(emotion).or_default() += 1;
        }
        transcript.push(reply);
    }
    Ok(TagShare {
        model: engine.info().model_name.clone(),
        replies: turns,
        replies_with_tag,
        share: ratio(replies_with_tag, turns),
        tags,
        transcript,
    })
}

pub(super) fn render(report: &EmotionReport) -> String {
    let scores = &report.lexicon;
    let languages: Vec<String> = scores
        .accuracy_by_language
        .iter()
        .map(|(language, accuracy)| format!("{language} {:.1}%", accuracy * 100.0))
        .collect();
    let mut text = format!(
        "lexicon analyzer on {} labelled sentences\n\
         accuracy  {:.1}% ({})\n\
         macro-F1  {:.3}\n\n\
         {:<10} {:>9} {:>9} {:>6} {:>8} {:>9}\n",
        scores.sentences,
        scores.accuracy * 100.0,
        languages.join(", "),
        scores.macro_f1,
        "emotion",
        "precision",
        "recall",
        "F1",
        "support",
        "predicted",
    );
    for class in &scores.classes {
        text.push_str(&format!(
            "{:<10} {:>9.3} {:>9.3} {:>6.3} {:>8} {:>9}\n",
            class.emotion.as_str(),
            class.precision,
            class.recall,
            class.f1,
            class.support,
            class.predicted
        ));
    }
    text.push_str("\nconfusion (rows: label, columns: answer)\n          ");
    for emotion in Emotion::ALL {
        text.push_str(&format!("{:>10}", emotion.as_str()));
    }
    text.push('\n');
    for (expected, row) in &scores.confusion {
        text.push_str(&format!("{:<10}", expected.as_str()));
        for count in row.values() {
            text.push_str(&format!("{count:>10}"));
        }
        text.push('\n');
    }
    text.push_str(&format!("\n{} mistakes:\n", scores.mistakes.len()));
    for mistake in &scores.mistakes {
        text.push_str(&format!(
            "  {:<9} -> {:<9} {}\n",
            mistake.expected.as_str(),
            mistake.predicted.as_str(),
            mistake.text
        ));
    }
    match &report.tags {
        Some(share) => text.push_str(&format!(
            "\nmodel {}: {} of {} replies carried a valid tag ({:.0}%)\n",
            share.model,
            share.replies_with_tag,
            share.replies,
            share.share * 100.0
        )),
        None => text.push_str("\nmodel tags not measured (--no-model)\n"),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_set_parses_and_is_balanced() {
        let set = labelled_set().unwrap();
        assert!(set.len() >= 300, "{}", set.len());
        for emotion in Emotion::ALL {
            assert!(set.iter().filter(|l| l.emotion == emotion).count() >= 40, "{emotion}");
        }
        for language in ["en", "fr"] {
            assert!(set.iter().filter(|l| l.language == language).count() >= 100, "{language}");
        }
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let error = parse_labelled("label\tlang\ttext\njoy\ten\tfine\nhappy\ten\tno\n").unwrap_err();
        assert_eq!(error.line, 3);
        assert!(error.reason.contains("happy"));
        assert_eq!(parse_labelled("h\njoy\tde\tnein\n").unwrap_err().line, 2);
        assert_eq!(parse_labelled("h\njoy only\n").unwrap_err().line, 2);
    }

    #[test]
    fn scores_follow_their_definitions() {
        // joy: 2 labelled, found once; sorrow: 1 labelled, found, plus one false alarm.
        let set = [
            Labelled { emotion: Emotion::Joy, language: "en", text: "I'm so happy" },
            Labelled { emotion: Emotion::Joy, language: "fr", text: "Je suis triste" },
            Labelled { emotion: Emotion::Sorrow, language: "en", text: "I'm sad" },
        ];
        let scores = score_lexicon(&set);
        assert_eq!(scores.accuracy, 2.0 / 3.0);
        assert_eq!(scores.accuracy_by_language["fr"], 0.0);
        let joy = &scores.classes[1];
        assert_eq!((joy.precision, joy.recall), (1.0, 0.5));
        let sorrow = &scores.classes[3];
        assert_eq!((sorrow.precision, sorrow.recall), (0.5, 1.0));
        assert_eq!(scores.confusion[&Emotion::Joy][&Emotion::Sorrow], 1);
        // Classes with no support and no answer count as F1 0 in the mean.
        assert!((scores.macro_f1 - (2.0 / 3.0 + 2.0 / 3.0) / 6.0).abs() < 1e-9);
        assert_eq!(scores.mistakes.len(), 1);
    }

    #[test]
    fn the_lexicon_clears_its_floor_on_the_set() {
        let scores = score_lexicon(&labelled_set().unwrap());
        assert!(scores.macro_f1 >= 0.75, "macro-F1 {:.3}", scores.macro_f1);
    }
}
