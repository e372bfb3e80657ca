//! Errors of manifests and policy files.

/// A manifest that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not TOML, an unknown key, or a value of the wrong type; the message carries line,
    /// column and key.
    #[error("hyyve.toml: {0}")]
    Toml(String),
    /// A value that parsed but is not acceptable.
    #[error("hyyve.toml: `{key}` {message}")]
    Invalid {
        /// Dotted path of the offending key, e.g. `capabilities.http.allow[0]`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A policy layer file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The file is not a valid policy of its kind.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Line, column, key and problem.
        message: String,
    },
}
