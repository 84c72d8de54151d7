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
//!
//! Its words are laid out one of two ways ([`PersonaLayout`]): as rules in
//! the system prompt with an example reply in a line (the default: measured
//! best, docs/PERFORMANCE.md), or as rules and an example exchange the
//! conversation opens with, its reply showing the tags in use. The tags are
//! listed in the system prompt unless `list_tags` is off, when only the
//! example shows them.

use crate::config::{ConfigError, PersonaConfig, PersonaLayout};
use crate::emotion::{Emotion, tags};
use crate::llm::Message;

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
    /// Asks for the tags without listing them (an example shows them).
    tags_unlisted: &'static str,
    /// The example exchange: the person's message, then Kira's reply with
    /// its tags in use.
    exchange: (&'static str, &'static str),
}

const ENGLISH: Wording = Wording {
    you_are: "You are",
    personality: "a warm and curious companion who lives on this computer",
    style: "Reply in 2 to 4 short sentences, kindly and with a little humour.",
    tags: "Always begin each sentence with an emotion tag in brackets, one of:",
    example: "Example reply: [joy] That's wonderful news! [fun] Shall we celebrate?",
    tags_unlisted: "Always begin each sentence with an emotion tag in brackets.",
    exchange: (
        "I finally finished painting my room!",
        "[surprised] Already? [joy] Well done, it must look lovely! [fun] Which colour did you pick?",
    ),
};

const FRENCH: Wording = Wording {
    you_are: "Tu es",
    // Not "une compagne … qui vit sur cet ordinateur": models introduced
    // themselves with that clause word for word, a recital of the persona
    // (docs/PERFORMANCE.md); with "tu vis", their "je vis" parts the run.
    personality: "chaleureuse et curieuse, et tu vis sur cet ordinateur",
    style: "Réponds en français, en 2 à 4 phrases courtes, avec gentillesse et un peu d'humour.",
    tags: "Commence toujours chaque phrase par une étiquette d'émotion entre crochets, parmi :",
    example: "Exemple de réponse : [joy] Quelle bonne nouvelle ! [fun] On fête ça ?",
    tags_unlisted: "Commence toujours chaque phrase par une étiquette d'émotion entre crochets.",
    exchange: (
        "J'ai enfin fini de repeindre ma chambre !",
        "[surprised] Déjà ? [joy] Bravo, elle doit être superbe ! [fun] Tu as choisi quelle couleur ?",
    ),
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
    /// The exchange (the person's message, then the reply) a conversation
    /// opens with, in the `example` layout.
    pub example: Option<[String; 2]>,
    /// The same for French conversations, when the persona speaks French.
    pub french_example: Option<[String; 2]>,
    /// Whether replies open their sentences with emotion tags (`[joy]`): the
    /// prompt asks for them, and the reply is held to their grammar
    /// ([`crate::emotion::tags::GRAMMAR`]).
    pub emotion_tags: bool,
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
        let layout = config.layout.unwrap_or_default();
        let tags =
            Tags { asked: config.emotion_tags.unwrap_or(true), listed: config.list_tags.unwrap_or(true), layout };
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
        let exchange = |wording: &Wording| (layout == PersonaLayout::Example).then(|| example(wording, tags.asked));
        let example = exchange(&ENGLISH);
        let french_example = if custom { None } else { exchange(&FRENCH) };
        Ok(Self {
            name: name.to_owned(),
            system_prompt,
            french_system_prompt,
            example,
            french_example,
            emotion_tags: tags.asked,
        })
    }

    /// The system prompt for a conversation in `language`.
    pub fn system_prompt_in(&self, language: Language) -> &str {
        match (language, &self.french_system_prompt) {
            (Language::French, Some(french)) => french,
            _ => &self.system_prompt,
        }
    }

    /// The messages a conversation in `language` opens with: the system
    /// prompt, and the example exchange in the `example` layout.
    pub fn opening_in(&self, language: Language) -> Vec<Message> {
        let mut opening = vec![Message::system(self.system_prompt_in(language).to_owned())];
        let french = language == Language::French && self.french_system_prompt.is_some();
        let example = if french { &self.french_example } else { &self.example };
        if let Some([message, answer]) = example {
            opening.push(Message::user(message.clone()));
            opening.push(Message::assistant(answer.clone()));
        }
        opening
    }

    /// How its words are laid out: an example exchange makes the `example` layout.
    pub fn layout(&self) -> PersonaLayout {
        if self.example.is_some() { PersonaLayout::Example } else { PersonaLayout::Rules }
    }

    /// Everything the persona says to the model in `language`: what a reply
    /// must not recite.
    pub fn script_in(&self, language: Language) -> String {
        let opening = self.opening_in(language);
        opening.iter().map(|message| message.content.as_str()).collect::<Vec<_>>().join("\n")
    }
}

/// "You are NAME, PERSONALITY." and the style, in `wording`'s language.
fn introduce(wording: &Wording, name: &str, personality: &str, style: &str) -> String {
    format!("{} {name}, {personality}.\n{style}", wording.you_are)
}

/// What a persona asks of emotion tags, and how.
#[derive(Debug, Clone, Copy)]
struct Tags {
    /// One per sentence is asked for.
    asked: bool,
    /// The system prompt lists them.
    listed: bool,
    /// Where the example of them is.
    layout: PersonaLayout,
}

/// `prompt`, followed when tags are asked for by the request for one per
/// sentence (with the list of them, or not), and in the `rules` layout by an
/// example reply (the `example` layout's exchange is in the history).
fn with_tags(mut prompt: String, tags: Tags, wording: &Wording) -> String {
    if !tags.asked {
        return prompt;
    }
    if tags.listed {
        let names: Vec<String> = Emotion::ALL.iter().map(|emotion| format!("[{emotion}]")).collect();
        prompt.push_str(&format!("\n{} {}.", wording.tags, names.join(" ")));
    } else {
        prompt.push_str(&format!("\n{}", wording.tags_unlisted));
    }
    if tags.layout == PersonaLayout::Rules {
        prompt.push_str(&format!("\n{}", wording.example));
    }
    prompt
}

/// The example exchange in `wording`'s language, its tags taken out when
/// the persona asks for none.
fn example(wording: &Wording, tags: bool) -> [String; 2] {
    let (message, answer) = wording.exchange;
    [message.to_owned(), if tags { answer.to_owned() } else { tags::strip(answer).text }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Role;

    #[test]
    fn kira_is_bilingual_and_asks_for_every_tag() {
        let kira = Persona::default();
        assert_eq!(kira.name, "Kira");
        let english = kira.system_prompt_in(Language::English);
        let french = kira.system_prompt_in(Language::French);
        assert!(english.starts_with("You are Kira, a warm and curious companion"));
        assert!(french.starts_with("Tu es Kira, chaleureuse et curieuse"));
        for emotion in Emotion::ALL {
            assert!(english.contains(&format!("[{emotion}]")) && french.contains(&format!("[{emotion}]")), "{emotion}");
        }
    }

    #[test]
    fn the_example_layout_opens_with_an_exchange_that_shows_the_tags() {
        let rules = Persona::default();
        assert_eq!(rules.opening_in(Language::French).len(), 1, "rules by default: the system prompt alone");
        assert_eq!(rules.layout(), PersonaLayout::Rules);
        let config = PersonaConfig { layout: Some(PersonaLayout::Example), ..PersonaConfig::default() };
        let kira = Persona::from_config(&config).unwrap();
        assert_eq!(kira.layout(), PersonaLayout::Example);
        for language in [Language::English, Language::French] {
            let opening = kira.opening_in(language);
            let roles: Vec<_> = opening.iter().map(|message| message.role).collect();
            assert_eq!(roles, [Role::System, Role::User, Role::Assistant], "{language:?}");
            assert!(opening[0].content.contains("[joy] [angry]"), "the tags are listed");
            let example_lines = [ENGLISH.example, FRENCH.example];
            assert!(!example_lines.iter().any(|line| opening[0].content.contains(line)), "no example reply line");
            assert!(opening[2].content.starts_with("[surprised]") && opening[2].content.contains("[joy]"));
            assert_eq!(Language::detect(&opening[1].content), language);
            assert!(kira.script_in(language).contains(&opening[2].content), "a reply must not recite the example");
        }
        let unlisted = PersonaConfig { list_tags: Some(false), ..config.clone() };
        let opening = Persona::from_config(&unlisted).unwrap().opening_in(Language::French);
        assert!(!opening[0].content.contains("[joy]") && opening[0].content.contains("étiquette d'émotion"));
        let untagged = PersonaConfig { emotion_tags: Some(false), ..config.clone() };
        let opening = Persona::from_config(&untagged).unwrap().opening_in(Language::English);
        assert!(opening.iter().all(|message| !message.content.contains('[')), "{opening:?}");
        assert!(
            kira.emotion_tags && !Persona::from_config(&untagged).unwrap().emotion_tags,
            "held to the tags' grammar"
        );
        // A persona of the user's own speaks as written, example included, in every language.
        let mia = PersonaConfig { name: Some("Mia".into()), personality: Some("a cat".into()), ..config };
        let mia = Persona::from_config(&mia).unwrap();
        assert_eq!(mia.opening_in(Language::French), mia.opening_in(Language::English));
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
