//! `workly bench voice`: how fast and how well Kira speaks and listens.
//!
//! Word error rate is the share of a reference's words a transcript gets
//! wrong: the fewest words substituted, deleted or inserted to turn one into
//! the other, over the reference's word count. Words are compared in lower
//! case without punctuation, so "Hello, there." and "hello there" agree.

/// `text`'s words as they are compared: lower case, apostrophes kept inside
/// words, every other mark a space.
fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('’', "'")
        .split(|character: char| !(character.is_alphanumeric() || character == '\''))
        .map(|word| word.trim_matches('\''))
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The word error rate of `transcript` against `reference` (0 is perfect;
/// it can pass 1 when words are invented).
pub fn word_error_rate(reference: &str, transcript: &str) -> f64 {
    let reference = words(reference);
    let transcript = words(transcript);
    // One row of the edit-distance table at a time.
    let mut previous: Vec<usize> = (0..=transcript.len()).collect();
    for (row, expected) in reference.iter().enumerate() {
        let mut current = vec![row + 1; transcript.len() + 1];
        for (column, heard) in transcript.iter().enumerate() {
            let substitution = previous[column] + usize::from(expected != heard);
            current[column + 1] = substitution.min(previous[column + 1] + 1).min(current[column] + 1);
        }
        previous = current;
    }
    previous[transcript.len()] as f64 / reference.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_error_rate_counts_edits_over_the_reference() {
        assert_eq!(word_error_rate("Hello, there.", "hello there"), 0.0);
        assert_eq!(word_error_rate("I’m fine today", "I'm fine"), 1.0 / 3.0);
        assert_eq!(word_error_rate("one two three four", "one too three four five"), 0.5);
        assert_eq!(word_error_rate("", "anything"), 1.0);
    }
}
