//! Settings with a fixed set of values ([`Choice`]), each value with the one
//! name that the command line, the config file and the reports all use.
//!
//! It sits under every module that defines such a setting (the model's mode,
//! the KV cache type, flash attention, the GPU split, the quantization), so
//! that none of them needs the command line to be named.

/// A setting with a fixed set of values, each with the one name that the
/// command line, the config file and the reports all use (`q8_0`, `on`).
/// The command line offers [`Choice::ALL`] as its possible values.
pub trait Choice: Copy + Send + Sync + 'static {
    /// Every value, in the order help texts list them.
    const ALL: &'static [Self];
    /// The value's name.
    fn name(self) -> &'static str;
    /// The value a name stands for.
    fn named(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|value| value.name() == name)
    }
}
