//! The platform core: what local mode (`hyyve run`, `hyyve install`) and server mode
//! (`hyyve serve`) do the same way, written once.
//!
//! - [`install`]: resolve → vetting gate → effective grant → persist →
//!   audit, and uninstall, over an [`install::InstallStore`];
//! - [`audit`]: the [`AuditAction`] vocabulary, the subjects entries name, denial
//!   auditing, over an [`audit::AuditSink`];
//! - [`models`]: model aliases bound to provider installs (checked, audited) and the
//!   routes the runtime's `models` interface follows;
//! - [`usage`]: which invocations count toward creators' payouts, and how they are
//!   recorded.
//!
//! Each concern works over a small store trait. Local mode's stores are files under the
//! data directory ([`files`]); the server's are its SQL tables (in `hyyve-server`), on
//! the database `hyyve-database` opens.

pub mod audit;
pub mod files;
pub mod install;
pub mod models;
pub mod usage;

pub use audit::{AuditSink, FileAudit};
pub use hyyve_policy::AuditAction;
pub use install::{
    Acting, Candidate, InstallError, InstallRecord, InstallStore, Installer, PolicyStore,
};

/// A store failed (I/O, database, a stored record that does not parse). The message
/// names the store and what it was doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

impl StoreError {
    /// `what` failed because of `error`.
    pub fn new(what: impl std::fmt::Display, error: impl std::fmt::Display) -> Self {
        Self(format!("{what}: {error}"))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::new("database", e)
    }
}
