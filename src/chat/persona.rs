//! Kira, the companion's default persona, and personas from config files.
//!
//! The persona is the system prompt that frames every conversation. It is kept
//! short on purpose: every token of it is prefilled once (and then restored
//! from the prompt cache), and small models follow short instructions better.
//! Kira's is written in English and in French, and a conversation uses the one
//! in the user's language: small models follow a prompt in one language far
//! better than a bilingual one (SmolLM2-135M answers English questions in
//! broken French when the prompt mixes both). It asks the model to open each
//! sentence with an emotion tag (`[joy]`) that drives the avatar's face.

use crate::config::{ConfigError, PersonaConfig};
use crate::emotion::Emotion;

/// Kira's name.
const NAME: &str = "Kira";

/// Kira's words in one language.
struct Wording {
    /// Opens the prompt: "You are" + name.
    you_are: &'static str,
    /// Who Kira is, after "You are Kira, ".
    personality: &'static str,
    /// How Kira speaks.
    style: &'static str,
    /// Asks for the tags (the list follows).
    tags: &'static str,
    /// An example reply: small models follow an example far better than a rule.
    example: &'static str,
}

const ENGLISH: Wording = Wording {
    you_are: "You are",
    personality: "a warm and curious companion who lives on this computer",
    style: "Reply in 2 to 4 short sentences, kindly and with a little humour.",
    tags: "Always begin each sentence with an emotion tag in brackets, one of:",
    example: "Example reply: [joy] That's wonderful news! [fun] Shall we celebrate?",
};

const FRENCH: Wording = Wording {
    you_are: "Tu es",
    personality: "une compagne chaleureuse et curieuse qui vit sur cet ordinateur",
    style: "Réponds en français, en 2 à 4 phrases courtes, avec gentillesse et un peu d'humour.",
    tags: "Commence toujours chaque phrase par une étiquette d'émotion entre crochets, parmi :",
    example: "Exemple de réponse : [joy] Quelle bonne nouvelle ! [fun] On fête ça ?",
};

/// The languages Kira's own persona is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Language {
    /// English (also the fallback).
    #[default]
    English,
    /// French.
    French,
}

impl Language {
    /// The language `text` is most likely written in: French when it has
    /// French function words or letters, English otherwise.
    pub fn detect(text: &str) -> Self {
        const FRENCH_WORDS: &[&str] = &[
            "je", "j", "tu", "il", "elle", "nous", "vous", "le", "la", "les", "un", "une", "des", "du", "est", "et",
            "pas", "ne", "c", "ça", "mon", "ma", "mes", "ton", "ta", "qui", "que", "quoi", "pour", "avec", "sur",
            "dans", "bonjour", "salut", "merci", "oui", "non", "très", "suis", "es", "au", "aux",
        ];
        const ENGLISH_WORDS: &[&str] = &[
            "i", "you", "he", "she", "we", "they", "the", "a", "an", "is", "are", "and", "not", "my", "your", "what",
            "who", "for", "with", "on", "in", "hello", "hi", "thanks", "yes", "no", "very", "am", "to", "of", "it",
        ];
        let lower = text.to_lowercase();
        let words = lower.split(|c: char| !c.is_alphanumeric()).filter(|word| !word.is_empty());
        let (mut french, mut english) = (0, 0);
        for word in words {
            french += usize::from(FRENCH_WORDS.contains(&word) || word.contains(['é', 'è', 'ê', 'à', 'ç', 'ù', 'ô']));
            english += usize::from(ENGLISH_WORDS.contains(&word));
        }
        if french > english { Language::French } else { Language::English }
    }
}

/// A persona: who the assistant is and how it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persona {
    /// The assistant's name, shown in the terminal.
    pub name: String,
    /// The system prompt (in English for Kira's own words).
    pub system_prompt: String,
    /// The system prompt for French conversations, when the persona has one
    /// (Kira's own words do; a persona written by the user is used as written).
    pub french_system_prompt: Option<String>,
}

impl Default for Persona {
    fn default() -> Self {
        Self::from_config(&PersonaConfig::default()).expect("Kira's own persona is valid")
    }
}

impl Persona {
    /// The persona `config` describes, each missing field taken from Kira.
    pub fn from_config(config: &PersonaConfig) -> Result<Self, ConfigError> {
        let name = config.name.as_deref().unwrap_or(NAME).trim();
        if name.is_empty() || name.contains(['\n', '\r']) {
            return Err(ConfigError::Persona(format!("the name must be one non-empty line, not {name:?}")));
        }
        let tags = config.emotion_tags.unwrap_or(true);
        let custom = config.system_prompt.is_some() || config.personality.is_some() || config.style.is_some();
        let body = match &config.system_prompt {
            Some(_) if config.personality.is_some() || config.style.is_some() => {
                return Err(ConfigError::Persona(
                    "`system_prompt` replaces `personality` and `style`: set one or the others".to_owned(),
                ));
            }
            Some(prompt) if prompt.trim().is_empty() => {
                return Err(ConfigError::Persona("`system_prompt` is empty".to_owned()));
            }
            Some(prompt) => prompt.trim().to_owned(),
            None => {
                let personality = config.personality.as_deref().unwrap_or(ENGLISH.personality).trim();
                let style = config.style.as_deref().unwrap_or(ENGLISH.style).trim();
                introduce(&ENGLISH, name, personality, style)
            }
        };
        let system_prompt = with_tags(body, tags, &ENGLISH);
        let french_system_prompt =
            (!custom).then(|| with_tags(introduce(&FRENCH, name, FRENCH.personality, FRENCH.style), tags, &FRENCH));
        Ok(Self { name: name.to_owned(), system_prompt, french_system_prompt })
    }

    /// The system prompt for a conversation in `language`.
    pub fn system_prompt_in(&self, language: Language) -> &str {
        match (language, &self.french_system_prompt) {
            (Language::French, Some(french)) => french,
            _ => &self.system_prompt,
        }
    }
}

/// "You are NAME, PERSONALITY." and the style, in `wording`'s language.
fn introduce(wording: &Wording, name: &str, personality: &str, style: &str) -> String {
    format!("{} {name}, {personality}.\n{style}", wording.you_are)
}

/// `prompt`, followed when `tags` by the request for one tag per sentence and
/// an example of it.
fn with_tags(mut prompt: String, tags: bool, wording: &Wording) -> String {
    if tags {
        let names: Vec<String> = Emotion::ALL.iter().map(|emotion| format!("[{emotion}]")).collect();
        prompt.push_str(&format!("\n{} {}.\n{}", wording.tags, names.join(" "), wording.example));
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kira_is_bilingual_and_asks_for_every_tag() {
        let kira = Persona::default();
        assert_eq!(kira.name, "Kira");
        let english = kira.system_prompt_in(Language::English);
        let french = kira.system_prompt_in(Language::French);
        assert!(english.starts_with("You are Kira, a warm and curious companion"));
        assert!(french.starts_with("Tu es Kira, une compagne"));
        for emotion in Emotion::ALL {
            assert!(english.contains(&format!("[{emotion}]")) && french.contains(&format!("[{emotion}]")), "{emotion}");
        }
    }

    #[test]
    fn language_follows_the_words() {
        assert_eq!(Language::detect("Bonjour Kira ! Comment vas-tu ?"), Language::French);
        assert_eq!(Language::detect("J'ai trouvé un nouveau travail"), Language::French);
        assert_eq!(Language::detect("Hi Kira, I just got a new job!"), Language::English);
        assert_eq!(Language::detect("What is your favourite colour?"), Language::English);
        assert_eq!(Language::detect("ok"), Language::English);
    }

    #[test]
    fn config_fields_replace_kiras() {
        let config = PersonaConfig {
            name: Some("Mia".into()),
            style: Some("Answer in one sentence.".into()),
            emotion_tags: Some(false),
            ..PersonaConfig::default()
        };
        let mia = Persona::from_config(&config).unwrap();
        assert_eq!(mia.name, "Mia");
        assert!(mia.system_prompt.starts_with("You are Mia, a warm and curious companion"));
        assert!(mia.system_prompt.ends_with("Answer in one sentence."));
        assert!(!mia.system_prompt.contains("[joy]"));
        // The user's own words are used for every language.
        assert_eq!(mia.system_prompt_in(Language::French), mia.system_prompt);

        let whole = PersonaConfig { system_prompt: Some("Be terse.".into()), ..PersonaConfig::default() };
        assert!(
            Persona::from_config(&whole).unwrap().system_prompt.starts_with("Be terse.\nAlways begin each sentence")
        );
    }

    #[test]
    fn contradictory_or_empty_settings_are_refused() {
        let both = PersonaConfig {
            system_prompt: Some("Be terse.".into()),
            personality: Some("a cat".into()),
            ..PersonaConfig::default()
        };
        assert!(Persona::from_config(&both).unwrap_err().to_string().contains("system_prompt"));
        let unnamed = PersonaConfig { name: Some("  ".into()), ..PersonaConfig::default() };
        assert!(Persona::from_config(&unnamed).is_err());
        let blank = PersonaConfig { system_prompt: Some("\n".into()), ..PersonaConfig::default() };
        assert!(Persona::from_config(&blank).is_err());
    }
}
