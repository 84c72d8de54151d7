//! Facts about the person in what they say, by rules, in English and French.
//!
//! A wrong memory is worse than a missing one: Kira would bring it up again
//! and again. So the rules are narrow: a fact is a statement (not a question)
//! in the first person that matches a known pattern ("my name is", "je
//! m'appelle", "I love", "j'adore", "my sister…", "I have an interview…"),
//! not said hypothetically ("if my name were…") nor about what the person
//! feels for Kira ("I love you"). What is kept is the clause as the person
//! said it, with where it is in the message and, for events, the day it
//! names. Where the rules find nothing in a statement in the first person,
//! the chat model is asked aside, after the turn ([`model_request`]); its
//! answer counts only as a clause of the message that passes the same
//! filters ([`found_by_model`]). `workly-bench recall` measures the rules'
//! precision and recall on labelled sets in both languages, and what the
//! model adds.

use super::dates::{Day, day_in};
use crate::llm::Message;
use crate::store::memories::{MemoryKind, NewMemory};
use std::ops::Range;

/// A pattern's words must be followed by at least one word (the fact's object).
struct Rule {
    kind: MemoryKind,
    /// Phrases (folded words) that make the clause a fact of `kind`.
    triggers: &'static [&'static str],
    /// What must follow the trigger.
    then: Then,
}

/// What must follow a rule's trigger in the clause.
#[derive(Clone, Copy)]
enum Then {
    /// Any word that is not one of [`NOT_AN_OBJECT`].
    Object,
    /// A word the person wrote with a capital (a name, for ambiguous triggers: "call me").
    Capitalised,
    /// One of these words within the next four.
    Within(&'static [&'static str]),
    /// A day ("tomorrow", "on Friday") somewhere in the clause.
    ADay,
    /// At least this many more words (the fact is in what follows).
    Words(usize),
}

/// Words after "I love" or "j'adore" that make the clause about Kira or about
/// nothing in particular, not a preference.
const NOT_AN_OBJECT: &[&str] = &[
    "you", "it", "that", "this", "them", "him", "her", "when", "how", "what", "your", "talking", "chatting", "ça",
    "ca", "cela", "te", "toi", "vous", "quand", "comment", "not", "back", "later", "again", "now", "maybe", "pas",
    "ce", "cet", "cette", "ces",
];

/// Words that make a clause about Kira, not about the person's life ("I
/// like talking to you", "j'aime ta voix").
const TO_KIRA: &[&str] = &["you", "your", "yours", "toi", "te", "t'", "vous", "ton", "ta", "tes"];

/// Words of reported speech: "my friend says I love drama" is not the
/// person telling.
const REPORTED: &[&str] = &["said", "says", "say", "thinks", "dit", "disent", "pense", "trouve"];

/// Words that only strengthen what follows ("I really like", "j'aime bien"):
/// the object is the word after them.
const FILLERS: &[&str] = &["really", "so", "very", "much", "bien", "beaucoup", "vraiment", "trop", "tellement"];

/// Words that, before a trigger in the same clause, make it hypothetical,
/// reported or past.
const HEDGES: &[&str] = &[
    "if",
    "whether",
    "would",
    "wish",
    "maybe",
    "pretend",
    "imagine",
    "says",
    "said",
    "thinks",
    "thought",
    "used",
    "dreamt",
    "dreamed",
    "si",
    "s'il",
    "peut-être",
    "imaginons",
    "dit",
    "pense",
    "rêvé",
    "comme",
    "aimerais",
    "voudrais",
    "jamais",
    "never",
    "once",
];

/// Animals people keep.
const PETS: &[&str] = &[
    "cat",
    "cats",
    "kitten",
    "dog",
    "dogs",
    "puppy",
    "rabbit",
    "bunny",
    "hamster",
    "parrot",
    "bird",
    "fish",
    "horse",
    "turtle",
    "chat",
    "chats",
    "chatte",
    "chaton",
    "chien",
    "chiens",
    "chienne",
    "lapin",
    "perroquet",
    "poisson",
    "cheval",
    "tortue",
];

/// Things that happen on a day.
const EVENTS: &[&str] = &[
    "interview",
    "exam",
    "exams",
    "test",
    "appointment",
    "meeting",
    "date",
    "flight",
    "trip",
    "wedding",
    "birthday",
    "party",
    "concert",
    "surgery",
    "operation",
    "presentation",
    "deadline",
    "holiday",
    "holidays",
    "vacation",
    "match",
    "race",
    "marathon",
    "dentist",
    "doctor",
    "entretien",
    "examen",
    "partiel",
    "partiels",
    "rendez-vous",
    "rdv",
    "réunion",
    "vol",
    "voyage",
    "mariage",
    "anniversaire",
    "soirée",
    "fête",
    "opération",
    "présentation",
    "vacances",
    "course",
    "dentiste",
    "médecin",
    "oral",
    "concours",
    "permis",
];

/// Jobs and studies said with "I'm a" / "je suis".
const JOBS: &[&str] = &[
    "nurse",
    "teacher",
    "developer",
    "engineer",
    "doctor",
    "designer",
    "student",
    "programmer",
    "lawyer",
    "writer",
    "artist",
    "chef",
    "musician",
    "accountant",
    "retired",
    "infirmier",
    "infirmière",
    "professeur",
    "prof",
    "développeur",
    "développeuse",
    "ingénieur",
    "ingénieure",
    "médecin",
    "étudiant",
    "étudiante",
    "avocat",
    "avocate",
    "retraité",
    "retraitée",
    "cuisinier",
    "cuisinière",
    "musicien",
    "musicienne",
    "comptable",
    "graphiste",
    "écrivain",
    "boulanger",
    "boulangère",
];

/// The rules, the first that matches a clause wins: explicit requests first,
/// then the narrowest patterns.
const RULES: &[Rule] = &[
    Rule {
        kind: MemoryKind::Fact,
        triggers: &[
            "remember that",
            "don't forget that",
            "do not forget that",
            "souviens-toi que",
            "souviens toi que",
            "n'oublie pas que",
            "rappelle-toi que",
        ],
        then: Then::Words(2),
    },
    Rule {
        kind: MemoryKind::Name,
        triggers: &["my name is", "my name's", "je m'appelle", "mon nom est", "mon prénom est", "mon prénom c'est"],
        then: Then::Object,
    },
    Rule {
        kind: MemoryKind::Name,
        triggers: &[
            "call me",
            "i'm called",
            "i am called",
            "everyone calls me",
            "my friends call me",
            "appelle-moi",
            "appelle moi",
            "on m'appelle",
        ],
        then: Then::Capitalised,
    },
    Rule {
        kind: MemoryKind::Pet,
        triggers: &[
            "my",
            "i have a",
            "i have an",
            "i have two",
            "i have three",
            "i've got a",
            "we have a",
            "mon",
            "ma",
            "mes",
            "j'ai un",
            "j'ai une",
            "j'ai deux",
            "j'ai trois",
            "on a un",
            "on a une",
        ],
        then: Then::Within(PETS),
    },
    Rule {
        kind: MemoryKind::Event,
        triggers: &[
            "i have",
            "i have a",
            "i have an",
            "i've got",
            "i've got a",
            "i've got an",
            "i'm having",
            "my",
            "i'm taking",
            "j'ai",
            "j'ai un",
            "j'ai une",
            "mon",
            "ma",
            "mes",
            "je passe",
            "je passe un",
            "je passe mon",
        ],
        then: Then::Within(EVENTS),
    },
    Rule {
        kind: MemoryKind::Event,
        triggers: &[
            "i'm worried about",
            "i'm nervous about",
            "i'm stressed about",
            "i'm anxious about",
            "i'm excited about",
            "i am worried about",
            "i am nervous about",
            "je suis stressé pour",
            "je suis stressée pour",
            "je suis stressé par",
            "je suis stressée par",
            "je suis inquiet pour",
            "je suis inquiète pour",
            "j'ai hâte de",
        ],
        then: Then::Object,
    },
    Rule {
        kind: MemoryKind::Event,
        triggers: &[
            "i'm going to",
            "i am going to",
            "i'm flying to",
            "i'm leaving for",
            "i'm visiting",
            "i'm moving to",
            "i'm starting",
            "i start",
            "i'm getting married",
            "je pars",
            "je vais à",
            "je vais au",
            "je vais en",
            "je vais voir",
            "je déménage",
            "je commence",
            "je me marie",
        ],
        then: Then::ADay,
    },
    Rule {
        kind: MemoryKind::Person,
        triggers: &[
            "my wife",
            "my husband",
            "my partner",
            "my girlfriend",
            "my boyfriend",
            "my son",
            "my daughter",
            "my mother",
            "my mom",
            "my mum",
            "my father",
            "my dad",
            "my sister",
            "my brother",
            "my grandma",
            "my grandmother",
            "my grandpa",
            "my grandfather",
            "my aunt",
            "my uncle",
            "my cousin",
            "my best friend",
            "my friend",
            "my boss",
            "my colleague",
            "my roommate",
            "my kids",
            "my children",
            "my parents",
            "mon mari",
            "ma femme",
            "mon copain",
            "ma copine",
            "mon fils",
            "ma fille",
            "ma mère",
            "ma maman",
            "mon père",
            "mon papa",
            "ma sœur",
            "ma soeur",
            "mon frère",
            "ma grand-mère",
            "mon grand-père",
            "ma tante",
            "mon oncle",
            "mon cousin",
            "ma cousine",
            "mon meilleur ami",
            "ma meilleure amie",
            "mon ami",
            "mon amie",
            "mon patron",
            "ma patronne",
            "mon chef",
            "mon collègue",
            "ma collègue",
            "mes enfants",
            "mes parents",
            "mon compagnon",
            "ma compagne",
        ],
        then: Then::Words(2),
    },
    Rule {
        kind: MemoryKind::Home,
        triggers: &[
            "i live in",
            "i live near",
            "i'm from",
            "i am from",
            "i come from",
            "i grew up in",
            "i moved to",
            "i just moved to",
            "j'habite à",
            "j'habite en",
            "j'habite au",
            "j'habite dans",
            "je vis à",
            "je vis en",
            "je vis au",
            "je suis originaire de",
            "j'ai grandi à",
            "j'ai grandi en",
            "j'ai déménagé à",
        ],
        then: Then::Object,
    },
    Rule {
        kind: MemoryKind::Home,
        // "Je viens de Lyon", not "je viens de manger" (I have just eaten).
        triggers: &["je viens de"],
        then: Then::Capitalised,
    },
    Rule {
        kind: MemoryKind::Work,
        triggers: &[
            "i work as",
            "i work at",
            "i work for",
            "i work in",
            "my job is",
            "i study",
            "i'm studying",
            "i am studying",
            "je travaille comme",
            "je travaille chez",
            "je travaille dans",
            "je travaille à",
            "je travaille en",
            "je travaille pour",
            "j'étudie",
            "mon métier",
            "mon travail c'est",
        ],
        then: Then::Object,
    },
    Rule {
        kind: MemoryKind::Work,
        triggers: &["i'm a", "i am a", "i'm an", "i am an", "i'm", "je suis", "je suis un", "je suis une"],
        then: Then::Within(JOBS),
    },
    Rule {
        kind: MemoryKind::Dislike,
        triggers: &[
            "i hate",
            "i don't like",
            "i do not like",
            "i can't stand",
            "i cannot stand",
            "i dislike",
            "i'm allergic to",
            "i am allergic to",
            "i don't eat",
            "je déteste",
            "je n'aime pas",
            "j'aime pas",
            "je ne supporte pas",
            "j'ai horreur de",
            "j'ai horreur du",
            "j'ai horreur des",
            "je suis allergique",
            "je ne mange pas",
        ],
        then: Then::Object,
    },
    Rule {
        kind: MemoryKind::Like,
        triggers: &["mon", "ma", "mes"],
        then: Then::Within(&["préféré", "préférée", "préférés", "préférées"]),
    },
    Rule {
        kind: MemoryKind::Like,
        triggers: &[
            "i love",
            "i really love",
            "i like",
            "i really like",
            "i enjoy",
            "i really enjoy",
            "i adore",
            "i'm into",
            "i am into",
            "i'm a big fan of",
            "i'm a fan of",
            "my favorite",
            "my favourite",
            "i'm passionate about",
            "j'adore",
            "j'aime",
            "j'aime beaucoup",
            "j'aime bien",
            "je kiffe",
            "je suis fan de",
            "je suis passionné de",
            "je suis passionnée de",
            "je suis passionné par",
            "je suis passionnée par",
        ],
        then: Then::Object,
    },
];

/// The facts in `message`, said at `said_at_ms` (Unix milliseconds): one per
/// clause at most, each once.
pub fn facts(message: &str, said_at_ms: i64) -> Vec<NewMemory> {
    let today = Day::of_ms(said_at_ms);
    let mut found: Vec<NewMemory> = Vec::new();
    for sentence in sentences(message) {
        // A question asks; it does not tell.
        if message[sentence.clone()].contains('?') {
            continue;
        }
        for clause in clauses(message, sentence) {
            let text = &message[clause.clone()];
            let folded = fold(text);
            let words: Vec<&str> = folded.split(' ').filter(|word| !word.is_empty()).collect();
            let Some(kind) = classify(text, &words, today) else { continue };
            let event_date = day_in(&words, today).map(Day::iso);
            let memory = NewMemory { kind, content: text.to_owned(), event_date, source: Some(clause), vector: None };
            if !found.iter().any(|other| other.kind == memory.kind && other.content == memory.content) {
                found.push(memory);
            }
        }
    }
    found
}

/// Whether the chat model is worth asking for a fact in `message`, where
/// the rules found none: a statement of three words or more, in the first
/// person (a question, or words about someone else, cannot give one).
pub fn worth_asking(message: &str) -> bool {
    let folded = fold(message);
    let words: Vec<&str> = folded.split_whitespace().collect();
    !message.contains('?') && words.len() >= 3 && words.iter().any(|word| FIRST_PERSON.contains(word))
}

/// What the chat model is asked to find a fact the rules missed in
/// `message`: it answers with the message's own words that state one, or
/// `NONE` (see [`found_by_model`]).
pub fn model_request(message: &str) -> Vec<Message> {
    vec![Message::system(MODEL_TASK), Message::user(message.split_whitespace().collect::<Vec<_>>().join(" "))]
}

/// The chat model's task, for [`model_request`].
const MODEL_TASK: &str = "You find facts a person tells about their own life: their name, where they live, their \
                          work or studies, their family, friends and pets, what they like or dislike, their health, \
                          their plans. Answer with the words of the message that state such a fact, copied exactly. \
                          Answer NONE when the message states none: a question, an opinion, small talk, something \
                          about someone else, something about you.";

/// Words of a clause in the first person, as its subject or owner: a
/// model's fact must be the person's own ("tell me a joke" asks, it does
/// not tell).
pub(super) const FIRST_PERSON: &[&str] = &[
    "i",
    "i'm",
    "i've",
    "i'd",
    "i'll",
    "im",
    "my",
    "mine",
    "we",
    "we're",
    "we've",
    "our",
    "je",
    "j'",
    "j'ai",
    "j'adore",
    "j'aime",
    "j'habite",
    "m'appelle",
    "mon",
    "ma",
    "mes",
    "nous",
    "notre",
    "nos",
    "suis",
];

/// The fact the chat model's `answer` to [`model_request`] points at in
/// `message`, said at `said_at_ms`, if it holds one: the model's words must
/// be the message's (it copies, it does not write), and the clause they are
/// in must pass what the rules ask of any fact (a statement in the first
/// person, not hedged, not about Kira, not reported). The whole clause is
/// kept, as the rules keep it, as a plain fact.
pub fn found_by_model(message: &str, answer: &str, said_at_ms: i64) -> Option<NewMemory> {
    let answer = answer.trim().trim_matches(|c: char| c == '"' || c == '«' || c == '»' || c.is_whitespace());
    let answer = answer.trim_end_matches(['.', '!']);
    if answer.split_whitespace().count() < 3 || answer.to_uppercase().starts_with("NONE") {
        return None;
    }
    let plain = |text: &str| fold(text).split_whitespace().collect::<Vec<_>>().join(" ");
    let copied = plain(answer);
    if !plain(message).contains(&copied) {
        return None;
    }
    let today = Day::of_ms(said_at_ms);
    let statements = sentences(message).into_iter().filter(|sentence| !message[sentence.clone()].contains('?'));
    let (clause, words) = statements
        .flat_map(|sentence| clauses(message, sentence))
        .filter(|clause| {
            let own = plain(&message[clause.clone()]);
            !own.is_empty() && (copied.contains(&own) || own.contains(&copied))
        })
        .map(|clause| {
            let words: Vec<String> = plain(&message[clause.clone()]).split(' ').map(str::to_owned).collect();
            (clause, words)
        })
        .find(|(_, words)| {
            let told = words.iter().any(|word| FIRST_PERSON.contains(&word.as_str()));
            let aside = words.iter().any(|word| {
                let word = word.as_str();
                TO_KIRA.contains(&word) || REPORTED.contains(&word) || HEDGES.contains(&word)
            });
            told && !aside && words.len() >= 3
        })?;
    let text = &message[clause.clone()];
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let event_date = day_in(&words, today).map(Day::iso);
    Some(NewMemory { kind: MemoryKind::Fact, content: text.to_owned(), event_date, source: Some(clause), vector: None })
}

/// The kind of fact the clause `text` (folded into `words`) tells, if any.
fn classify(text: &str, words: &[&str], today: Day) -> Option<MemoryKind> {
    if words.iter().any(|word| TO_KIRA.contains(word) || REPORTED.contains(word)) {
        return None;
    }
    RULES.iter().find_map(|rule| {
        rule.triggers.iter().find_map(|trigger| {
            let trigger: Vec<&str> = trigger.split(' ').collect();
            let at = words.windows(trigger.len()).position(|window| window == trigger.as_slice())?;
            if words[..at].iter().any(|word| HEDGES.contains(word)) {
                return None;
            }
            let rest = &words[at + trigger.len()..];
            let first = rest.iter().find(|word| !FILLERS.contains(word))?;
            let follows = match rule.then {
                Then::Object => !NOT_AN_OBJECT.contains(first),
                Then::Capitalised => {
                    !NOT_AN_OBJECT.contains(first)
                        && text
                            .split(|c: char| !c.is_alphanumeric())
                            .any(|word| word.to_lowercase() == *first && word.starts_with(|c: char| c.is_uppercase()))
                }
                // "my dog's name": the noun without its possessive.
                Then::Within(nouns) => {
                    rest.iter().take(4).any(|word| nouns.contains(&word.strip_suffix("'s").unwrap_or(word)))
                }
                Then::ADay => day_in(words, today).is_some(),
                Then::Words(count) => rest.len() >= count,
            };
            follows.then_some(rule.kind)
        })
    })
}

/// `text` lowercased, with curly apostrophes made straight and every other
/// character that is not part of a word made a space.
pub(super) fn fold(text: &str) -> String {
    let mut folded = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        match c {
            '’' | '‘' | '`' | '\'' => folded.push('\''),
            c if c.is_alphanumeric() || c == '-' => folded.extend(c.to_lowercase()),
            _ => folded.push(' '),
        }
    }
    folded
}

/// The byte ranges of `message`'s sentences, trimmed, each with its closing
/// punctuation.
fn sentences(message: &str) -> Vec<Range<usize>> {
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut chars = message.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let ends = match c {
            '\n' => true,
            '.' | '!' | '?' | '…' => chars.peek().is_none_or(|&(_, next)| next.is_whitespace()),
            _ => false,
        };
        if ends {
            push_trimmed(message, start..at + c.len_utf8(), &mut sentences);
            start = at + c.len_utf8();
        }
    }
    push_trimmed(message, start..message.len(), &mut sentences);
    sentences
}

/// Separators that start a new clause: a conjunction, or a conjunction
/// before the person speaks of themselves again (the pronoun stays).
const CLAUSE_BREAKS: &[&str] = &[
    " but ",
    " mais ",
    " and i ",
    " and i'm ",
    " and my ",
    " et je ",
    " et j'",
    " et j’",
    " et mon ",
    " et ma ",
    " et mes ",
];

/// The clauses of `sentence` (a range of `message`): split at commas,
/// semicolons, colons and [`CLAUSE_BREAKS`], each trimmed.
fn clauses(message: &str, sentence: Range<usize>) -> Vec<Range<usize>> {
    let text = &message[sentence.clone()];
    // ASCII lowercase keeps every byte where it was.
    let lower = text.to_ascii_lowercase();
    let mut cuts: Vec<(usize, usize)> = text.match_indices([',', ';', ':']).map(|(at, _)| (at, at + 1)).collect();
    for separator in CLAUSE_BREAKS {
        let trimmed = separator.trim();
        // A lone conjunction goes; with a pronoun, the pronoun starts the next clause.
        let resume = match trimmed.rfind(' ') {
            Some(space) => space + 2,
            None => separator.len(),
        };
        cuts.extend(lower.match_indices(separator).map(|(at, _)| (at, at + resume)));
    }
    cuts.sort_unstable();
    let mut clauses = Vec::new();
    let mut start = 0;
    for (cut, resume) in cuts {
        if cut >= start {
            push_trimmed(message, sentence.start + start..sentence.start + cut, &mut clauses);
            start = resume;
        }
    }
    push_trimmed(message, sentence.start + start..sentence.end, &mut clauses);
    clauses
}

/// Pushes `range` of `text` without its surrounding spaces, if anything is left.
fn push_trimmed(text: &str, range: Range<usize>, ranges: &mut Vec<Range<usize>>) {
    let piece = &text[range.clone()];
    let start = range.start + (piece.len() - piece.trim_start().len());
    let end = range.end - (piece.len() - piece.trim_end().len());
    if start < end {
        ranges.push(start..end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Thursday 3 December 2026, noon UTC.
    const THURSDAY: i64 = 1_796_299_200_000;

    fn kinds(message: &str) -> Vec<(MemoryKind, String)> {
        facts(message, THURSDAY).into_iter().map(|fact| (fact.kind, fact.content)).collect()
    }

    #[test]
    fn facts_are_clauses_said_in_the_first_person() {
        use MemoryKind::*;
        assert_eq!(
            kinds("Hi Kira! My name is Sam and I love jazz."),
            [(Name, "My name is Sam".to_owned()), (Like, "I love jazz.".to_owned())]
        );
        assert_eq!(
            kinds("Je m’appelle Léa, j'adore les chats."),
            [(Name, "Je m’appelle Léa".to_owned()), (Like, "j'adore les chats.".to_owned())]
        );
        assert_eq!(kinds("My cat is called Miso."), [(Pet, "My cat is called Miso.".to_owned())]);
        assert_eq!(
            kinds("ma sœur habite à Lyon depuis deux ans"),
            [(Person, "ma sœur habite à Lyon depuis deux ans".to_owned())]
        );
        assert_eq!(
            kinds("I work as a nurse in a big hospital."),
            [(Work, "I work as a nurse in a big hospital.".to_owned())]
        );
        assert_eq!(kinds("I'm a teacher."), [(Work, "I'm a teacher.".to_owned())]);
        assert_eq!(kinds("I can't stand mushrooms"), [(Dislike, "I can't stand mushrooms".to_owned())]);
    }

    #[test]
    fn a_models_fact_is_a_clause_of_the_message_that_passes_the_rules_filters() {
        let found = |message: &str, answer: &str| {
            found_by_model(message, answer, THURSDAY).map(|fact| (fact.kind, fact.content, fact.source))
        };
        let message = "Hey Kira, it’s Marco. I’m a plumber and today was a long one.";
        assert_eq!(
            found(message, " \"I'm a plumber\""),
            Some((MemoryKind::Fact, "I’m a plumber and today was a long one.".to_owned(), Some(24..65)))
        );
        // Words the message does not hold, and answers of no fact, are not taken.
        assert_eq!(found(message, "Marco is a plumber."), None);
        assert_eq!(found(message, "NONE"), None);
        assert_eq!(found(message, "plumber"), None, "too few words to be a copy");
        // The rules' filters hold: a question, Kira, reported speech, a hedge.
        assert_eq!(found("should I get a dog for my flat?", "I get a dog for my flat"), None);
        assert_eq!(found("my boss says I work too much", "I work too much"), None);
        assert_eq!(found("I used to live in Paris", "I used to live in Paris"), None);
        assert_eq!(found("I really like talking to you", "I really like talking to you"), None);
        assert_eq!(found("the delivery guy was called Bob", "the delivery guy was called Bob"), None);
        // The clause is kept whole, with the day it names.
        let moving =
            found_by_model("we're moving house on Monday!! so much to pack", "moving house on Monday", THURSDAY);
        let moving = moving.unwrap();
        assert_eq!(
            (moving.content.as_str(), moving.event_date.as_deref()),
            ("we're moving house on Monday!!", Some("2026-12-07"))
        );
        assert_eq!(model_request("a\n b")[1].content, "a b");
        assert!(worth_asking("we live just outside Dublin") && worth_asking("je bosse chez Airbus"));
        assert!(!worth_asking("should I get a dog?") && !worth_asking("tell me a joke") && !worth_asking("I see"));
    }

    #[test]
    fn events_carry_their_day() {
        let found = facts("I have a job interview tomorrow and I'm so nervous.", THURSDAY);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].kind, found[0].event_date.as_deref()), (MemoryKind::Event, Some("2026-12-04")));
        let found = facts("Je pars à Rome vendredi !", THURSDAY);
        assert_eq!((found[0].kind, found[0].event_date.as_deref()), (MemoryKind::Event, Some("2026-12-04")));
        assert!(facts("I'm going to bed", THURSDAY).is_empty(), "a plan needs a day");
    }

    #[test]
    fn questions_hedges_and_words_for_kira_are_not_facts() {
        for message in [
            "What's my name?",
            "Do you like cats?",
            "If my name were Bob, would you laugh",
            "I love you, Kira.",
            "I like that.",
            "Call me later.",
            "I'd like a coffee.",
            "J'aimerais un café.",
            "Je viens de manger.",
            "Je t'aime.",
            "j'adore ça",
            "She loves jazz.",
            "I used to live in Paris.",
            "My name is not important.",
            "",
            "…",
        ] {
            assert!(kinds(message).is_empty(), "{message:?}: {:?}", kinds(message));
        }
    }

    #[test]
    fn sources_point_at_the_clause_in_the_message() {
        let message = "Well. Honestly, my dog’s name is Rex; I hate rain!";
        for fact in facts(message, THURSDAY) {
            assert_eq!(&message[fact.source.clone().unwrap()], fact.content);
        }
        assert_eq!(facts(message, THURSDAY).len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn any_text_gives_facts_within_it(message in "\\PC{0,200}") {
            for fact in facts(&message, THURSDAY) {
                let source = fact.source.clone().unwrap();
                proptest::prop_assert_eq!(&message[source], fact.content.as_str());
            }
        }
    }
}
