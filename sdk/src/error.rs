//! What a node returns when it cannot produce outputs.

use crate::__private::PluginError;

/// Why a node did not succeed; the host reports each kind distinctly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The inputs or configuration are unusable; retrying will not help.
    InvalidInput(String),
    /// The work failed.
    Failed(String),
    /// A transient failure; the host may retry.
    Retryable(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid_input(message: impl std::fmt::Display) -> Self {
        Self::InvalidInput(message.to_string())
    }

    /// Shorthand for [`Error::Failed`].
    pub fn failed(message: impl std::fmt::Display) -> Self {
        Self::Failed(message.to_string())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Self::Failed(m) => write!(f, "failed: {m}"),
            Self::Retryable(m) => write!(f, "retryable: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for PluginError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidInput(m) => Self::InvalidInput(m),
            Error::Failed(m) => Self::Failed(m),
            Error::Retryable(m) => Self::Retryable(m),
        }
    }
}
