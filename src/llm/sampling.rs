//! Sampling settings and the llama.cpp sampler chain built from them.
//!
//! The chain follows llama.cpp's own order: repetition penalty, then the
//! truncations (top-k, top-p, min-p), then temperature, then a seeded draw. At
//! temperature 0 the draw is greedy, so output is deterministic.
//!
//! A reply may also have to follow a grammar ([`Sampler`]). Checking every
//! token of the vocabulary against it at every step would cost more than the
//! step itself on a large vocabulary (Qwen's has 151,936 tokens), so the chain
//! draws first and only its pick is checked, as llama.cpp's own
//! `common_sampler` does. When the pick breaks the grammar, the chain draws
//! again from what the grammar allows among the likeliest tokens, and from
//! the whole vocabulary only if it allows none of those.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use serde::{Deserialize, Serialize};

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this total probability (1 disables).
    pub top_p: f32,
    /// Keep only the k most likely tokens (0 disables).
    pub top_k: i32,
    /// Drop tokens less likely than this fraction of the most likely one (0 disables).
    pub min_p: f32,
    /// Penalty on tokens repeated within the last `repeat_last_n` tokens (1 disables).
    pub repeat_penalty: f32,
    /// How many recent tokens the repetition penalty looks at.
    pub repeat_last_n: i32,
    /// Seed of the random draw; `None` picks a fresh one per request.
    pub seed: Option<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            seed: None,
        }
    }
}

/// Why sampling settings were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    /// A setting is outside its range.
    #[error("invalid sampling setting {name} = {value}: {expected}")]
    OutOfRange {
        /// The setting.
        name: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// llama.cpp could not parse a grammar.
    #[error("llama.cpp could not parse the reply's grammar (GBNF)")]
    Grammar,
}

crate::classed!(BadInput: SamplingError);

impl SamplingParams {
    /// Greedy decoding: always the most likely token.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }

    /// Checks every setting is in range, so llama.cpp never sees a bad value.
    pub fn validate(&self) -> Result<(), SamplingError> {
        fn check(
            ok: bool,
            name: &'static str,
            value: impl ToString,
            expected: &'static str,
        ) -> Result<(), SamplingError> {
            if ok { Ok(()) } else { Err(SamplingError::OutOfRange { name, value: value.to_string(), expected }) }
        }
        check(
            self.temperature.is_finite() && self.temperature >= 0.0,
            "temperature",
            self.temperature,
            "a number >= 0",
        )?;
        check(self.top_p > 0.0 && self.top_p <= 1.0, "top_p", self.top_p, "in (0, 1]")?;
        check(self.top_k >= 0, "top_k", self.top_k, ">= 0")?;
        check((0.0..=1.0).contains(&self.min_p), "min_p", self.min_p, "in [0, 1]")?;
        check(
            self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0,
            "repeat_penalty",
            self.repeat_penalty,
            "> 0",
        )?;
        check(self.repeat_last_n >= 0, "repeat_last_n", self.repeat_last_n, ">= 0")
    }

    /// Builds llama.cpp's sampler chain for these settings.
    pub(crate) fn build(&self, vocab_size: i32) -> LlamaSampler {
        let mut chain = Vec::with_capacity(6);
        if self.repeat_penalty != 1.0 && self.repeat_last_n > 0 {
            chain.push(LlamaSampler::penalties(vocab_size, self.repeat_last_n, self.repeat_penalty, 0.0, 0.0));
        }
        if self.temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
            return LlamaSampler::chain_simple(chain);
        }
        if self.top_k > 0 {
            chain.push(LlamaSampler::top_k(self.top_k));
        }
        if self.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(self.top_p, 1));
        }
        if self.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(self.min_p, 1));
        }
        chain.push(LlamaSampler::temp(self.temperature));
        chain.push(LlamaSampler::dist(self.seed.unwrap_or_else(fresh_seed)));
        LlamaSampler::chain_simple(chain)
    }
}

/// Picks each token of a reply: the settings' chain, and the grammar the
/// reply must follow, if any (see the module's docs).
pub(crate) struct Sampler {
    chain: LlamaSampler,
    grammar: Option<LlamaSampler>,
}

impl Sampler {
    /// The chain of `params` for `model`, held to `grammar` (GBNF, rule
    /// `root`) when one is given.
    pub(crate) fn new(
        params: &SamplingParams,
        model: &LlamaModel,
        grammar: Option<&str>,
    ) -> Result<Self, SamplingError> {
        let grammar = grammar
            .map(|grammar| LlamaSampler::grammar(model, grammar, "root").map_err(|_| SamplingError::Grammar))
            .transpose()?;
        Ok(Self { chain: params.build(model.n_vocab()), grammar })
    }

    /// The next token after the context's last evaluated one, taken as
    /// chosen: the chain and the grammar move past it.
    pub(crate) fn next(&mut self, ctx: &LlamaContext<'_>) -> LlamaToken {
        let Some(grammar) = self.grammar.as_mut() else {
            return self.chain.sample(ctx, -1);
        };
        let mut candidates = ctx.token_data_array_ith(-1);
        candidates.apply_sampler(&mut self.chain);
        let token = match candidates.selected_token() {
            Some(token) if allowed(grammar, token) => token,
            _ => draw_allowed(ctx, grammar, &mut self.chain),
        };
        self.chain.accept(token);
        grammar.accept(token);
        token
    }
}

/// How many of the likeliest tokens are checked against the grammar when
/// the chain's pick broke it: more than the chain keeps by default (top-k
/// 40), and the check takes microseconds where Qwen's whole vocabulary took
/// about 60 ms.
const SHORTLIST: usize = 64;

/// Whether `grammar` allows `token` next.
fn allowed(grammar: &mut LlamaSampler, token: LlamaToken) -> bool {
    let mut alone = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
    alone.apply_sampler(grammar);
    alone.data.first().is_some_and(|data| data.logit().is_finite())
}

/// The chain's draw from what `grammar` allows: among the likeliest tokens,
/// or, if it allows none of them, the whole vocabulary.
fn draw_allowed(ctx: &LlamaContext<'_>, grammar: &mut LlamaSampler, chain: &mut LlamaSampler) -> LlamaToken {
    let mut likeliest: Vec<LlamaTokenData> = ctx.candidates_ith(-1).collect();
    if likeliest.len() > SHORTLIST {
        likeliest.select_nth_unstable_by(SHORTLIST, |a, b| b.logit().total_cmp(&a.logit()));
        likeliest.truncate(SHORTLIST);
    }
    let mut shortlist = LlamaTokenDataArray::new(likeliest, false);
    shortlist.apply_sampler(grammar);
    shortlist.data.retain(|data| data.logit().is_finite());
    if shortlist.data.is_empty() {
        shortlist = ctx.token_data_array_ith(-1);
        shortlist.apply_sampler(grammar);
    }
    shortlist.apply_sampler(chain);
    // Every chain ends with a draw (greedy or seeded), which selects a token.
    shortlist.selected_token().expect("the sampler chain ends with a draw")
}

/// A seed that differs between requests without pulling in a RNG crate.
fn fresh_seed() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        SamplingParams::default().validate().unwrap();
        SamplingParams::greedy().validate().unwrap();
    }

    #[test]
    fn out_of_range_values_are_named() {
        let bad = SamplingParams { top_p: 1.5, ..SamplingParams::default() };
        let error = bad.validate().unwrap_err();
        assert_eq!(error.to_string(), "invalid sampling setting top_p = 1.5: in (0, 1]");
        let nan = SamplingParams { temperature: f32::NAN, ..SamplingParams::default() };
        assert!(nan.validate().is_err());
    }
}
