//! The load generator's one error type: a sentence for the user, plus the
//! error that caused it, printed as a chain (`what we tried: why it failed`).
//!
//! Every failure the user can cause or meet (a bad option, an endpoint that
//! does not parse, a receiver that cannot bind, a child that dies) becomes a
//! [`BenchError`] that `main` prints to stderr before exiting non-zero; none
//! of them panics.

use std::error::Error;
use std::fmt;

/// A failure of the load generator, with its cause when there is one.
#[derive(Debug)]
pub struct BenchError {
    message: String,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl BenchError {
    /// An error described by `message` alone.
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error described by `message`, caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl BenchError {
    /// The message, then each cause in turn after a colon: what `main`
    /// prints.
    pub fn report(&self) -> String {
        let mut out = self.message.clone();
        let mut cause = self.source();
        while let Some(e) = cause {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cause = e.source();
        }
        out
    }
}

impl fmt::Display for BenchError {
    /// The message alone; its causes are [`Error::source`]'s (see
    /// [`BenchError::report`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for BenchError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// Adds a sentence saying what was being done to any error.
pub trait Context<T> {
    /// Wraps the error, if any, in a [`BenchError`] whose message is `message`.
    ///
    /// # Errors
    ///
    /// The wrapped error, when `self` is an error.
    fn context(self, message: impl Into<String>) -> Result<T, BenchError>;
}

impl<T, E> Context<T> for Result<T, E>
where
    E: Into<Box<dyn Error + Send + Sync + 'static>>,
{
    fn context(self, message: impl Into<String>) -> Result<T, BenchError> {
        self.map_err(|e| BenchError::with_source(message, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_prints_the_whole_chain_once() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let inner = BenchError::with_source("binding 127.0.0.1:4317", io);
        let outer = BenchError::with_source("starting the embedded receiver", inner);
        assert_eq!(
            outer.report(),
            "starting the embedded receiver: binding 127.0.0.1:4317: address in use"
        );
    }
}
