//! Turning what a person typed into a safe FTS5 query.
//!
//! FTS5 has its own query language (`AND`, `OR`, `NOT`, `NEAR`, `*`, `^`,
//! column filters, quotes); raw user text fed to `MATCH` fails with syntax
//! errors or means something else. Here text is cut into words at every
//! character that is not a letter or digit (the same rule as FTS5's
//! `unicode61` tokenizer) and each word becomes a quoted string, which FTS5
//! reads literally whatever it contains: `"NOT"` is the word "not", `"c"`
//! after `c++` is the letter c. No quote survives the cut, so none needs escaping.

/// Words too common to say what a message is about, in English and French;
/// recall ignores them so that "what do you think" does not bring back every
/// message that contains "you".
const STOPWORDS: &[&str] = &[
    "about", "and", "are", "but", "can", "could", "did", "does", "for", "from", "had", "has", "have", "her", "him",
    "his", "how", "its", "just", "like", "not", "now", "our", "she", "that", "the", "their", "them", "then", "there",
    "they", "this", "was", "were", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you",
    "your", "avec", "ces", "dans", "des", "elle", "est", "les", "mais", "mes", "moi", "mon", "nous", "pas", "pour",
    "quand", "que", "qui", "sont", "sur", "ton", "tes", "toi", "une", "vous",
];

/// Most words a recall query uses, so a long message stays a cheap query.
const MAX_RECALL_TERMS: usize = 16;

/// The words of `text`, each as an FTS5 string literal.
fn quoted_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty()).map(|word| format!("\"{word}\""))
}

/// A query matching messages that contain every word of `text` (what a search
/// box does); `None` when `text` has no words.
pub fn all_words(text: &str) -> Option<String> {
    let query = quoted_words(text).collect::<Vec<_>>().join(" ");
    (!query.is_empty()).then_some(query)
}

/// A query matching messages that share any telling word with `text`: words of
/// three letters or more that are not [`STOPWORDS`], each once. Ranking (BM25)
/// then prefers messages sharing the rarer words. `None` when nothing is left.
pub fn any_telling_word(text: &str) -> Option<String> {
    any_of(telling_words(text))
}

/// The telling words of `text`, lowercased, each once, in order: three
/// letters or more and not [`STOPWORDS`], at most [`MAX_RECALL_TERMS`].
pub fn telling_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() >= 3 && !STOPWORDS.contains(&word.as_str()) && !words.contains(&word) {
            words.push(word);
        }
    }
    words.truncate(MAX_RECALL_TERMS);
    words
}

/// A query matching any of `terms` (words without quotes, as
/// [`telling_words`] gives them); `None` when there are none.
pub fn any_of(terms: impl IntoIterator<Item = String>) -> Option<String> {
    let query = terms.into_iter().map(|term| format!("\"{term}\"")).collect::<Vec<_>>().join(" OR ");
    (!query.is_empty()).then_some(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_are_quoted_and_operators_become_words() {
        assert_eq!(all_words("green tea").as_deref(), Some("\"green\" \"tea\""));
        assert_eq!(all_words("\"tea\" AND NOT coffee*").as_deref(), Some("\"tea\" \"AND\" \"NOT\" \"coffee\""));
        assert_eq!(all_words("content:x NEAR(a b)").as_deref(), Some("\"content\" \"x\" \"NEAR\" \"a\" \"b\""));
        assert_eq!(all_words("c'est l'été").as_deref(), Some("\"c\" \"est\" \"l\" \"été\""));
        assert_eq!(all_words(" \"*^-:() "), None);
    }

    #[test]
    fn recall_keeps_telling_words_once() {
        assert_eq!(
            any_telling_word("What do you think about my Green tea? green TEA!").as_deref(),
            Some("\"think\" OR \"green\" OR \"tea\"")
        );
        assert_eq!(any_telling_word("Is it you? Are you there?"), None);
        let long = (0..40).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(any_telling_word(&long).unwrap().matches(" OR ").count(), MAX_RECALL_TERMS - 1);
    }
}
