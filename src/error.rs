//! The class of an error that crosses into the command line as an
//! [`anyhow::Error`]: [`BadInput`] marks one that is the person's input (a
//! request the machine or the set-up cannot serve, a file that is not what it
//! should be), so the exit code says so without the command line knowing the
//! error's type. Typed errors that know their class themselves (`LlmError`,
//! `StoreError`, ...) are still read by type.

/// An error that is the person's input, not a failure of Workly's: the
/// command line exits with its bad-input code. It reads as the error it holds.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BadInput(Box<dyn std::error::Error + Send + Sync + 'static>);

impl BadInput {
    /// `error`, classed as bad input.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_reads_as_the_error_it_holds() {
        let error = anyhow::Error::new(BadInput::new(std::fmt::Error));
        assert_eq!(error.to_string(), std::fmt::Error.to_string());
        assert!(error.chain().any(|cause| cause.is::<BadInput>()));
    }
}
