//! Chat templates: turning a list of messages into the prompt text a model expects.
//!
//! GGUF files carry their Hugging Face chat template (Jinja) in the metadata key
//! `tokenizer.chat_template`. Workly renders it with `minijinja` plus Python
//! string-method compatibility, the same way the model's authors render it,
//! instead of llama.cpp's built-in pattern matching, so any model with a template
//! works. `--chat-template` overrides it with a file, inline Jinja, or a built-in
//! name. This module owns rendering only; tokenization happens in the engine.

use minijinja::{Environment, ErrorKind, context};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation (the persona).
    System,
    /// The person.
    User,
    /// The model (Kira).
    Assistant,
}

impl Role {
    /// The name chat templates use for this role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What was said.
    pub content: String,
}

impl Message {
    /// A message from `role` saying `content`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self { role, content: content.into() }
    }
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// ChatML, the format of SmolLM2, Qwen and many fine-tunes; offered by name for
/// models whose GGUF lacks a template.
const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Gemma's turn format (Gemma 2 and 3): no system role, so the system prompt
/// opens the first user turn; the assistant's role is called `model`.
const GEMMA: &str = "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}";

/// Templates offered by name to `--chat-template`, for models whose GGUF has none.
pub const BUILTIN_TEMPLATES: &[(&str, &str)] = &[("chatml", CHATML), ("gemma", GEMMA)];

/// Why a template could not be built or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The model has no template and none was given.
    #[error(
        "model `{model}` has no chat template in its GGUF metadata: pass --chat-template with a file, inline Jinja, or a built-in name (chatml, gemma)"
    )]
    Missing {
        /// The model file.
        model: String,
    },
    /// The template file named by `--chat-template` could not be read.
    #[error("cannot read chat template file `{path}`: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The template is not valid Jinja.
    #[error("chat template does not compile: {0}")]
    Syntax(String),
    /// The model's template could not be built when the engine loaded.
    #[error("{0}")]
    Unavailable(String),
    /// The template refused the conversation (for example `raise_exception` on roles).
    #[error("chat template failed to render this conversation: {0}")]
    Render(String),
}

crate::classed!(BadInput: TemplateError);

/// A compiled chat template with the model's special-token strings.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source` (Jinja). `bos_token` and `eos_token` are the strings the
    /// template may print (`{{ bos_token }}`).
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        // Hugging Face templates call Python string methods (`.strip()`, `.startswith()`).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // Templates signal unsupported conversations through this function.
        env.add_function("raise_exception", |message: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        });
        // Hugging Face renders templates with trim_blocks and lstrip_blocks; so must
        // we, or whitespace around `{% %}` tags leaks into the prompt.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| TemplateError::Syntax(e.to_string()))?;
        env.set_syntax(syntax);
        env.add_template_owned("chat", source.to_owned()).map_err(|e| TemplateError::Syntax(e.to_string()))?;
        Ok(Self { env, bos_token: bos_token.to_owned(), eos_token: eos_token.to_owned() })
    }

    /// Picks the template: the `--chat-template` override when given (a built-in
    /// name, inline Jinja, or a file path), else the model's own.
    pub fn resolve(
        override_template: Option<&str>,
        model_template: Option<&str>,
        model_name: &str,
    ) -> Result<String, TemplateError> {
        let builtin = |name: &str| BUILTIN_TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, t)| (*t).to_owned());
        match override_template {
            Some(name) if builtin(name).is_some() => Ok(builtin(name).unwrap_or_default()),
            Some(value) if !value.contains("{%") && !value.contains("{{") => std::fs::read_to_string(Path::new(value))
                .map_err(|source| TemplateError::Read { path: value.to_owned(), source }),
            Some(inline) => Ok(inline.to_owned()),
            None => {
                model_template.map(str::to_owned).ok_or_else(|| TemplateError::Missing { model: model_name.to_owned() })
            }
        }
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the
    /// assistant's reply begins.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, TemplateError> {
        let template = self.env.get_template("chat").map_err(|e| TemplateError::Render(e.to_string()))?;
        template
            .render(context! {
                messages => minijinja::value::Serde(messages),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| TemplateError::Render(render_error_message(&e)))
    }
}

/// The message of a render error without minijinja's multi-line source excerpt.
fn render_error_message(error: &minijinja::Error) -> String {
    error.detail().map_or_else(|| error.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M-Instruct's template, as stored in its GGUF.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_with_system_and_generation_prompt() {
        let template = ChatTemplate::new(SMOLLM2, "", "<|im_end|>").unwrap();
        let text = template.render(&[Message::system("You are Kira."), Message::user("Hi!")], true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nYou are Kira.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn smollm2_inserts_its_default_system_prompt() {
        let template = ChatTemplate::new(SMOLLM2, "", "").unwrap();
        let text = template.render(&[Message::user("Hi")], false).unwrap();
        assert!(text.starts_with("<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
    }

    #[test]
    fn gemma_folds_system_into_first_user_turn_and_trims() {
        let template = ChatTemplate::new(GEMMA, "<bos>", "<eos>").unwrap();
        let text = template
            .render(&[Message::system("Be brief."), Message::user("  Hello  "), Message::assistant("Hi!")], true)
            .unwrap();
        assert_eq!(
            text,
            "<bos><start_of_turn>user\nBe brief.\n\nHello<end_of_turn>\n<start_of_turn>model\nHi!<end_of_turn>\n<start_of_turn>model\n"
        );
    }

    #[test]
    fn raise_exception_becomes_a_render_error() {
        let template = ChatTemplate::new(GEMMA, "<bos>", "<eos>").unwrap();
        let error = template.render(&[Message::user("a"), Message::user("b")], true).unwrap_err();
        assert!(matches!(error, TemplateError::Render(ref m) if m.contains("must alternate")), "{error}");
    }

    #[test]
    fn a_rendered_history_extends_the_previous_render() {
        // KV-cache reuse depends on a longer conversation rendering to a text that
        // starts with the shorter one's text (minus the generation prompt).
        let template = ChatTemplate::new(SMOLLM2, "", "").unwrap();
        let mut messages = vec![Message::system("S"), Message::user("one")];
        let first = template.render(&messages, true).unwrap();
        messages.push(Message::assistant("two"));
        messages.push(Message::user("three"));
        let second = template.render(&messages, true).unwrap();
        assert!(second.starts_with(&first));
    }

    #[test]
    fn missing_template_names_the_model() {
        let error = ChatTemplate::resolve(None, None, "tiny.gguf").unwrap_err();
        assert!(error.to_string().contains("tiny.gguf"));
        assert!(error.to_string().contains("--chat-template"));
        assert!(error.to_string().contains("gemma"));
    }

    #[test]
    fn override_by_name_inline_or_file() {
        assert_eq!(ChatTemplate::resolve(Some("chatml"), Some("x"), "m").unwrap(), CHATML);
        assert_eq!(ChatTemplate::resolve(Some("gemma"), None, "m").unwrap(), GEMMA);
        assert_eq!(ChatTemplate::resolve(Some("{{ 1 }}"), None, "m").unwrap(), "{{ 1 }}");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "{{ 2 }}").unwrap();
        let path = file.path().to_str().unwrap();
        assert_eq!(ChatTemplate::resolve(Some(path), None, "m").unwrap(), "{{ 2 }}");
        assert!(matches!(
            ChatTemplate::resolve(Some("/no/such/template.jinja"), None, "m"),
            Err(TemplateError::Read { .. })
        ));
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(ChatTemplate::new("{% for %}", "", ""), Err(TemplateError::Syntax(_))));
    }
}
