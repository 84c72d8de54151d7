//! Words as the memory index keeps them: lowercased and stemmed, in English
//! and in French at once.
//!
//! SQLite's FTS5 stems English only (`porter`), and a memory said in French
//! must be found by its other forms too ("chats" by "chat", "travaille" by
//! "travailler"). So Workly stems the words itself with the Snowball
//! stemmers and indexes the stems. Each word gives its English and its French
//! stem (often the same), so neither the memory's language nor the
//! question's needs guessing. (Across languages, "cat" and "chat", only
//! meaning can tell: that is semantic search's part.) FTS5's tokenizer folds
//! the diacritics of the stems afterwards, on both sides.

use super::query;
use rust_stemmers::{Algorithm, Stemmer};
use std::sync::LazyLock;

/// The two stemmers, built once (each holds its tables).
static STEMMERS: LazyLock<[Stemmer; 2]> =
    LazyLock::new(|| [Stemmer::create(Algorithm::English), Stemmer::create(Algorithm::French)]);

/// The stems of `word` (lowercase): its English and French stems, once each.
fn stems(word: &str) -> impl Iterator<Item = String> + '_ {
    let [english, french] = &*STEMMERS;
    let english = english.stem(word).into_owned();
    let french = french.stem(word).into_owned();
    let other = (french != english).then_some(french);
    std::iter::once(english).chain(other)
}

/// What the index keeps of `text`: the stems of every word, space separated.
pub fn index_terms(text: &str) -> String {
    let words = text.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty());
    words.flat_map(|word| stems(&word.to_lowercase()).collect::<Vec<_>>()).collect::<Vec<_>>().join(" ")
}

/// The stems of the telling words of `text` (see [`query::telling_words`]),
/// each once: what a search for memories looks for.
pub fn query_stems(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in query::telling_words(text) {
        for stem in stems(&word) {
            if !terms.contains(&stem) {
                terms.push(stem);
            }
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_stemmed_both_ways() {
        assert_eq!(index_terms("My cats"), "my cat");
        assert_eq!(index_terms("Mes chats"), "mes me chat");
        assert_eq!(index_terms("je travaille"), "je travaill");
        assert_eq!(index_terms("travailler"), "travail travaill");
        assert_eq!(query_stems("my cats at work"), ["cat", "work"]);
        assert_eq!(query_stems("travailler"), ["travail", "travaill"]);
        assert!(query_stems("is it you?").is_empty());
    }
}
