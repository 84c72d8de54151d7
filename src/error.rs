//! The class of an error, and the error a command ends with.
//!
//! Every typed error of the library says its own [`Class`] ([`Classify`]):
//! bad input (a flag, a file, a request the machine or the set-up cannot
//! serve) or a failure at run time. [`Error`] takes the class with it when a
//! typed error becomes the error of a command (`?` does it), keeps it through
//! the context added on the way up ([`Context`]), and the command line makes
//! its exit code from the class alone: it needs to know no module's error
//! types.

use std::fmt;

/// What an error says about its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The person's input: a flag, a file, a request that cannot be served as
    /// asked. Trying again unchanged gives the same error.
    BadInput,
    /// Something failed while running: the disk, the network, a peer, the engine.
    Failure,
}

/// An error that knows its class.
pub trait Classify {
    /// Bad input or a failure at run time.
    fn class(&self) -> Class;
}

/// Implements [`Classify`] with one class for every value of each type:
/// `classed!(BadInput: GgufError, LocateError)`.
#[macro_export]
macro_rules! classed {
    ($class:ident: $($error:ty),+ $(,)?) => {
        $(impl $crate::error::Classify for $error {
            fn class(&self) -> $crate::error::Class {
                $crate::error::Class::$class
            }
        })+
    };
}

// Errors of the standard library and of the crates the workspace meets them
// from, where `?` carries them up: a failure where they are met (reading a
// file the person named is bad input, and says so itself). One is added here
// when a command first needs it.
crate::classed!(Failure: std::io::Error, serde_json::Error, ureq::Error, std::sync::mpsc::RecvTimeoutError);

/// A command's error: what went wrong with the context added on the way up,
/// and its class. It reads as [`anyhow::Error`] does (`{:#}`: every cause on
/// one line).
pub struct Error {
    class: Class,
    error: anyhow::Error,
}

/// A command's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// `error`, classed as bad input.
    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Self { class: Class::BadInput, error: error.into() }
    }

    /// `error`, classed as a failure at run time.
    pub fn failure(error: impl Into<anyhow::Error>) -> Self {
        Self { class: Class::Failure, error: error.into() }
    }

    /// Bad input or a failure.
    pub fn class(&self) -> Class {
        self.class
    }

    /// The error with `context` said before it, of the same class.
    pub fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Self {
        Self { class: self.class, error: self.error.context(context) }
    }
}

impl<E: Classify + std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        Self { class: error.class(), error: error.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() { write!(f, "{:#}", self.error) } else { write!(f, "{}", self.error) }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({:?})", self.error, self.class)
    }
}

/// Context on the way up that keeps an error's class (what
/// `anyhow::Context` does for an error without one).
pub trait Context<T> {
    /// Says `context` before the error.
    fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Result<T>;

    /// Says what `context` returns before the error (computed only on error).
    fn with_context<C: fmt::Display + Send + Sync + 'static>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Result<T> {
        self.map_err(|error| error.into().context(context))
    }

    fn with_context<C: fmt::Display + Send + Sync + 'static>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|error| error.into().context(context()))
    }
}

/// A missing value as a failure that says what was missing.
impl<T> Context<T> for Option<T> {
    fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Result<T> {
        self.ok_or_else(|| Error::failure(anyhow::anyhow!("{context}")))
    }

    fn with_context<C: fmt::Display + Send + Sync + 'static>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| Error::failure(anyhow::anyhow!("{}", context())))
    }
}

/// Fails with a [`Class::Failure`] error made of a format string, as
/// `anyhow::bail!` does.
#[macro_export]
macro_rules! fail {
    ($($message:tt)+) => {
        return ::std::result::Result::Err($crate::error::Error::failure(::anyhow::anyhow!($($message)+)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("no such thing")]
    struct Missing;

    crate::classed!(BadInput: Missing);

    fn missing() -> std::result::Result<(), Missing> {
        Err(Missing)
    }

    #[test]
    fn a_typed_error_brings_its_class_and_keeps_it_under_context() {
        let error = missing().context("reading the list").unwrap_err();
        assert_eq!(error.class(), Class::BadInput);
        assert_eq!(format!("{error:#}"), "reading the list: no such thing");
        assert_eq!(error.to_string(), "reading the list");
        let error: Error = std::io::Error::other("disk on fire").into();
        assert_eq!(error.class(), Class::Failure);
    }

    #[test]
    fn an_error_without_a_type_is_classed_where_it_is_made() {
        let error = Error::bad_input(anyhow::anyhow!("--window 5 must be less than --turns 5"));
        assert_eq!(
            (error.class(), error.to_string().as_str()),
            (Class::BadInput, "--window 5 must be less than --turns 5")
        );
        let failed = || -> Result<()> { fail!("the peer hung up after {} lines", 3) };
        let error = failed().unwrap_err();
        assert_eq!((error.class(), error.to_string().as_str()), (Class::Failure, "the peer hung up after 3 lines"));
    }
}
