//! Every way a registry operation can fail, each with a stable code for clients.

use crate::package::PackageError;
use crate::signing::KeyError;

/// A registry operation failed; [`RegistryError::code`] names the reason for clients.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The upload is larger than the registry accepts.
    #[error("package of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes uploaded.
        size: u64,
        /// Bytes accepted.
        limit: u64,
    },
    /// Not a package archive, or not of the expected entries.
    #[error("{0}")]
    Malformed(String),
    /// The manifest does not parse or validate.
    #[error("invalid manifest: {0}")]
    ManifestInvalid(String),
    /// `package.json` names another plugin or version than the manifest.
    #[error("package.json says {header}, hyyve.toml says {manifest}")]
    HeaderMismatch {
        /// What package.json says.
        header: String,
        /// What the manifest says.
        manifest: String,
    },
    /// A file changed after packaging.
    #[error("`{file}` does not match its recorded digest: the package was altered")]
    DigestMismatch {
        /// The entry.
        file: String,
    },
    /// No signature by the publisher.
    #[error("the package is not signed by its publisher `{publisher}`")]
    Unsigned {
        /// The manifest's publisher.
        publisher: String,
    },
    /// The signing key is not registered.
    #[error("key {key_id} is not registered (or revoked)")]
    UnknownKey {
        /// The key.
        key_id: String,
    },
    /// The signing key belongs to another account.
    #[error("key {key_id} belongs to `{owner}`, not to `{expected}`")]
    ForeignKey {
        /// The key.
        key_id: String,
        /// Whose it is.
        owner: String,
        /// Whose it had to be.
        expected: String,
    },
    /// The signature does not verify (package altered after signing, or forged).
    #[error("signature by key {key_id} does not verify: the package was altered after signing")]
    BadSignature {
        /// The key.
        key_id: String,
    },
    /// No such publisher account.
    #[error("publisher `{0}` is not registered")]
    UnknownPublisher(String),
    /// No such organization.
    #[error("organization `{0}` is not registered")]
    UnknownOrganization(String),
    /// An account of that name exists.
    #[error("`{0}` is already registered")]
    AlreadyRegistered(String),
    /// The namespace is someone else's or nobody's.
    #[error("namespace `{namespace}` does not belong to publisher `{publisher}`{}", owner_note(.owner))]
    NamespaceNotOwned {
        /// The namespace.
        namespace: String,
        /// Who tried to publish.
        publisher: String,
        /// Who owns it, if anyone.
        owner: Option<String>,
    },
    /// This exact version exists.
    #[error("{id}@{version} is already published; versions are immutable")]
    VersionExists {
        /// Plugin id.
        id: String,
        /// Version.
        version: String,
    },
    /// A greater version exists.
    #[error("{id}@{version} is not greater than the latest published version {latest}")]
    VersionNotGreater {
        /// Plugin id.
        id: String,
        /// Version offered.
        version: String,
        /// Greatest published version.
        latest: String,
    },
    /// The bytes are not a loadable component.
    #[error("not a component: {0}")]
    NotAComponent(String),
    /// The exports do not implement the declared kind's world.
    #[error("declared kind `{declared}` but {found}")]
    WrongWorld {
        /// Kind in the manifest.
        declared: String,
        /// What the component is instead.
        found: String,
    },
    /// An import needs a capability the manifest does not request.
    #[error("imports `{import}` but the manifest requests no {capability} capability")]
    UndeclaredImport {
        /// The import.
        import: String,
        /// The capability it needs.
        capability: String,
    },
    /// An import the host never provides.
    #[error("imports `{0}`, which this host does not provide")]
    UnsupportedImport(String),
    /// The component failed its load-time checks (e.g. `describe`).
    #[error("component rejected: {0}")]
    ComponentRejected(String),
    /// No such plugin, version, request or blob.
    #[error("{0} not found")]
    NotFound(String),
    /// The version range does not parse.
    #[error("version range `{range}`: {message}")]
    InvalidRange {
        /// The range.
        range: String,
        /// Why.
        message: String,
    },
    /// No published version matches.
    #[error("no version of {id} matches `{range}`")]
    NoMatchingVersion {
        /// Plugin id.
        id: String,
        /// The range.
        range: String,
    },
    /// Only yanked versions match.
    #[error("{id}@{version} is yanked{}; pick another version", reason_note(.reason))]
    Yanked {
        /// Plugin id.
        id: String,
        /// The best matching version.
        version: String,
        /// Why it was yanked.
        reason: Option<String>,
    },
    /// A vetting request is not pending any more.
    #[error("vetting request {id} is already {status}")]
    NotPending {
        /// Request id.
        id: i64,
        /// Its status.
        status: String,
    },
    /// A key file or key text is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The configuration (database or blob URL) is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The metadata database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The blob store failed.
    #[error("blob store: {0}")]
    Blob(#[from] object_store::Error),
}

fn owner_note(owner: &Option<String>) -> String {
    match owner {
        Some(owner) => format!(" (it belongs to `{owner}`)"),
        None => " (nobody owns it; an admin assigns namespaces)".into(),
    }
}

fn reason_note(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .map(|r| format!(" ({r})"))
        .unwrap_or_default()
}

impl From<PackageError> for RegistryError {
    fn from(e: PackageError) -> Self {
        match e {
            PackageError::Malformed(m) => Self::Malformed(m),
            PackageError::DigestMismatch { file } => Self::DigestMismatch { file },
        }
    }
}

impl RegistryError {
    /// A stable, distinct code per reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "package_too_large",
            Self::Malformed(_) => "malformed_package",
            Self::ManifestInvalid(_) => "manifest_invalid",
            Self::HeaderMismatch { .. } => "header_mismatch",
            Self::DigestMismatch { .. } => "digest_mismatch",
            Self::Unsigned { .. } => "unsigned",
            Self::UnknownKey { .. } => "unknown_key",
            Self::ForeignKey { .. } => "foreign_key",
            Self::BadSignature { .. } => "bad_signature",
            Self::UnknownPublisher(_) => "unknown_publisher",
            Self::UnknownOrganization(_) => "unknown_organization",
            Self::AlreadyRegistered(_) => "already_registered",
            Self::NamespaceNotOwned { .. } => "namespace_not_owned",
            Self::VersionExists { .. } => "version_exists",
            Self::VersionNotGreater { .. } => "version_not_greater",
            Self::NotAComponent(_) => "not_a_component",
            Self::WrongWorld { .. } => "wrong_world",
            Self::UndeclaredImport { .. } => "undeclared_import",
            Self::UnsupportedImport(_) => "unsupported_import",
            Self::ComponentRejected(_) => "component_rejected",
            Self::NotFound(_) => "not_found",
            Self::InvalidRange { .. } => "invalid_range",
            Self::NoMatchingVersion { .. } => "no_matching_version",
            Self::Yanked { .. } => "version_yanked",
            Self::NotPending { .. } => "not_pending",
            Self::Key(_) => "key_invalid",
            Self::Config(_) => "config_invalid",
            Self::Database(_) => "storage_failed",
            Self::Blob(_) => "storage_failed",
        }
    }
}
